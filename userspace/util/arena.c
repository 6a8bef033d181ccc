#include "util/arena.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct arena_block {
    struct arena_block *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

#define ARENA_BLOCK_MIN 4096

struct arena_adopted {
    struct arena_adopted *next;
    struct buf_mem mem;
};

void arena_init(struct arena *a)
{
    a->head = NULL;
    a->adopted = NULL;
}

void arena_adopt(struct arena *a, void *p, size_t cap)
{
    struct arena_adopted *node = arena_alloc(a, sizeof(*node));
    node->mem = (struct buf_mem){p, cap, NULL};
    node->next = a->adopted;
    a->adopted = node;
}

void arena_adopt_release(struct arena *a, void *p, void (*release)(void *p))
{
    struct arena_adopted *node = arena_alloc(a, sizeof(*node));
    node->mem = (struct buf_mem){p, 0, release};
    node->next = a->adopted;
    a->adopted = node;
}

void *arena_alloc(struct arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    struct arena_block *b = a->head;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > ARENA_BLOCK_MIN ? n : ARENA_BLOCK_MIN;
        b = malloc(sizeof(*b) + cap);
        if (!b) {
            fprintf(stderr, "sluice: out of memory (arena block of %zu bytes)\n", cap);
            abort();
        }
        b->used = 0;
        b->cap = cap;
        b->next = a->head;
        a->head = b;
    }
    void *p = b->data + b->used;
    b->used += n;
    memset(p, 0, n);
    return p;
}

char *arena_strndup(struct arena *a, const char *s, size_t n)
{
    char *p = arena_alloc(a, n + 1);
    memcpy(p, s, n);
    return p;
}

int arena_take(struct arena *a, struct buf_mem **out)
{
    int n = 0;
    for (struct arena_adopted *d = a->adopted; d; d = d->next)
        n++;
    for (struct arena_block *b = a->head; b; b = b->next)
        n++;
    *out = NULL;
    if (!n)
        return 0;
    struct buf_mem *v = malloc(sizeof(*v) * (size_t)n);
    if (!v) {
        fprintf(stderr, "sluice: out of memory (arena hand-over)\n");
        abort();
    }
    int i = 0;
    for (struct arena_adopted *d = a->adopted; d; d = d->next) /* the nodes live in the blocks */
        v[i++] = d->mem;
    for (struct arena_block *b = a->head; b; b = b->next)
        v[i++] = (struct buf_mem){b, 0, NULL};
    a->adopted = NULL;
    a->head = NULL;
    *out = v;
    return n;
}

void arena_free(struct arena *a)
{
    for (struct arena_adopted *n = a->adopted; n; n = n->next)
        buf_mem_release(&n->mem);
    a->adopted = NULL;
    struct arena_block *b = a->head;
    while (b) {
        struct arena_block *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
}
