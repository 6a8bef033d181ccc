#include "broker/read_cache.h"

#include <stdlib.h>
#include <string.h>

struct cache_entry {
    struct cache_entry *hash_next;
    struct cache_entry *prev, *next; /* LRU list */
    char *key;
    uint64_t pos;
    uint32_t len;
    uint64_t hash;
    struct buf data;
};

static uint64_t hash_of(const char *key, uint64_t pos, uint32_t len)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (const char *p = key; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ULL;
    h = (h ^ pos) * 1099511628211ULL;
    return (h ^ len) * 1099511628211ULL;
}

void read_cache_init(struct read_cache *c, size_t max_bytes)
{
    memset(c, 0, sizeof(*c));
    c->nslots = 4096;
    c->slots = calloc(c->nslots, sizeof(*c->slots));
    c->max_bytes = max_bytes;
}

static void lru_unlink(struct read_cache *c, struct cache_entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        c->lru_head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        c->lru_tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push_front(struct read_cache *c, struct cache_entry *e)
{
    e->prev = NULL;
    e->next = c->lru_head;
    if (c->lru_head)
        c->lru_head->prev = e;
    c->lru_head = e;
    if (!c->lru_tail)
        c->lru_tail = e;
}

static void entry_remove(struct read_cache *c, struct cache_entry *e)
{
    struct cache_entry **pp = &c->slots[e->hash % c->nslots];
    while (*pp != e)
        pp = &(*pp)->hash_next;
    *pp = e->hash_next;
    lru_unlink(c, e);
    c->bytes -= e->data.len;
    buf_free(&e->data);
    free(e->key);
    free(e);
}

void read_cache_free(struct read_cache *c)
{
    while (c->lru_head)
        entry_remove(c, c->lru_head);
    free(c->slots);
    c->slots = NULL;
}

const struct buf *read_cache_get(struct read_cache *c, const char *key, uint64_t pos, uint32_t len)
{
    uint64_t h = hash_of(key, pos, len);
    for (struct cache_entry *e = c->slots[h % c->nslots]; e; e = e->hash_next) {
        if (e->hash == h && e->pos == pos && e->len == len && !strcmp(e->key, key)) {
            lru_unlink(c, e);
            lru_push_front(c, e);
            c->hits++;
            return &e->data;
        }
    }
    c->misses++;
    return NULL;
}

const struct buf *read_cache_put(struct read_cache *c, const char *key, uint64_t pos, uint32_t len, struct buf *data)
{
    struct cache_entry *e = calloc(1, sizeof(*e));
    if (!e || !(e->key = strdup(key)))
        abort();
    e->pos = pos;
    e->len = len;
    e->hash = hash_of(key, pos, len);
    e->data = *data;
    buf_init(data);
    /* Evict least recently used entries first; a single entry larger than the budget still stays
     * until the next insert, so the caller can use it. */
    while (c->lru_tail && c->bytes + e->data.len > c->max_bytes)
        entry_remove(c, c->lru_tail);
    struct cache_entry **slot = &c->slots[e->hash % c->nslots];
    e->hash_next = *slot;
    *slot = e;
    lru_push_front(c, e);
    c->bytes += e->data.len;
    return &e->data;
}
