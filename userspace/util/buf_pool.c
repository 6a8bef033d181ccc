/* Recycled buffers (see buf_pool.h). */
#include "util/buf_pool.h"

#include <stdlib.h>

void buf_pool_init(struct buf_pool *p, size_t max_bytes)
{
    *p = (struct buf_pool){.max_bytes = max_bytes};
}

void buf_pool_free(struct buf_pool *p)
{
    for (int i = 0; i < p->n; i++)
        buf_free(&p->v[i]);
    free(p->v);
    *p = (struct buf_pool){0};
}

struct buf buf_pool_get(struct buf_pool *p)
{
    struct buf b;
    buf_init(&b);
    if (p->n > 0) {
        b = p->v[--p->n];
        p->bytes -= b.cap;
        b.len = 0;
    }
    return b;
}

void buf_pool_put(struct buf_pool *p, struct buf *b)
{
    if (!b->data || p->bytes > p->max_bytes || b->cap > p->max_bytes - p->bytes) {
        buf_free(b);
        return;
    }
    if (p->n == p->cap) {
        int cap = p->cap ? p->cap * 2 : 16;
        struct buf *v = realloc(p->v, (size_t)cap * sizeof(*v));
        if (!v) {
            buf_free(b);
            return;
        }
        p->v = v;
        p->cap = cap;
    }
    p->bytes += b->cap;
    p->v[p->n++] = *b;
    buf_init(b);
}
