#include "util/buf.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Kept big blocks. A block is reused for a size it fits closely (at most a quarter larger), so
 * that reusing one whose pages were all touched does not make a smaller buffer cost more. */
#define BIG_KEPT_MAX 32
#define BIG_GRAIN (256u * 1024)
static struct {
    pthread_mutex_t lock;
    struct buf_mem blocks[BIG_KEPT_MAX];
    int n;
    size_t bytes;
} big = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* A block of at least need bytes; *cap gets its size. A kept block only for a buffer that will be
 * filled (reuse = true): one that grows by doubling would leave much of it unused, and a kept
 * block's pages are all resident already. */
static void *big_get(size_t need, bool reuse, size_t *cap)
{
    void *p = NULL;
    if (reuse) {
        pthread_mutex_lock(&big.lock);
        int best = -1;
        for (int i = 0; i < big.n; i++)
            if (big.blocks[i].cap >= need && big.blocks[i].cap - need <= need / 4 &&
                (best < 0 || big.blocks[i].cap < big.blocks[best].cap))
                best = i;
        if (best >= 0) {
            p = big.blocks[best].p;
            *cap = big.blocks[best].cap;
            big.bytes -= *cap;
            big.blocks[best] = big.blocks[--big.n];
        }
        pthread_mutex_unlock(&big.lock);
    }
    if (p)
        return p;
    *cap = (need + BIG_GRAIN - 1) / BIG_GRAIN * BIG_GRAIN;
    return malloc(*cap);
}

void buf_mem_free(void *p, size_t cap)
{
    if (!p)
        return;
    if (cap >= BUF_BIG) {
        pthread_mutex_lock(&big.lock);
        if (big.n == BIG_KEPT_MAX || big.bytes + cap > BUF_BIG_KEPT) { /* make room: drop the oldest */
            while (big.n > 0 && (big.n == BIG_KEPT_MAX || big.bytes + cap > BUF_BIG_KEPT)) {
                free(big.blocks[0].p);
                big.bytes -= big.blocks[0].cap;
                big.blocks[0] = big.blocks[--big.n];
            }
        }
        bool keep = big.bytes + cap <= BUF_BIG_KEPT;
        if (keep) {
            big.blocks[big.n++] = (struct buf_mem){p, cap};
            big.bytes += cap;
        }
        pthread_mutex_unlock(&big.lock);
        if (keep)
            return;
    }
    free(p);
}

void buf_mem_release(const struct buf_mem *m)
{
    if (m->release)
        m->release(m->p);
    else
        buf_mem_free(m->p, m->cap);
}

void buf_init(struct buf *b) { memset(b, 0, sizeof(*b)); }

void buf_free(struct buf *b)
{
    buf_mem_free(b->data, b->cap);
    buf_init(b);
}

void buf_reset(struct buf *b) { b->len = 0; }

void buf_reserve(struct buf *b, size_t extra)
{
    if (b->len + extra <= b->cap)
        return;
    size_t need = b->len + extra;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    uint8_t *p;
    if (cap < BUF_BIG) {
        p = realloc(b->data, cap);
    } else {
        /* Big: an empty buffer gets about what it asks (a request, a read of known size), maybe
         * a kept block; one that grows keeps doubling, into fresh memory. */
        p = big_get(b->len ? cap : need, b->len == 0, &cap);
        if (p && b->len)
            memcpy(p, b->data, b->len);
        if (p)
            buf_mem_free(b->data, b->cap);
    }
    if (!p) {
        fprintf(stderr, "sluice: out of memory growing a buffer to %zu bytes\n", cap);
        abort();
    }
    b->data = p;
    b->cap = cap;
}

uint8_t *buf_extend(struct buf *b, size_t n)
{
    buf_reserve(b, n);
    uint8_t *p = b->data + b->len;
    b->len += n;
    return p;
}

void buf_append(struct buf *b, const void *p, size_t n)
{
    if (n)
        memcpy(buf_extend(b, n), p, n);
}

void buf_consume(struct buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

void buf_put_i8(struct buf *b, int8_t v) { *buf_extend(b, 1) = (uint8_t)v; }
void buf_put_i16(struct buf *b, int16_t v) { be16_put(buf_extend(b, 2), (uint16_t)v); }
void buf_put_i32(struct buf *b, int32_t v) { be32_put(buf_extend(b, 4), (uint32_t)v); }
void buf_put_i64(struct buf *b, int64_t v) { be64_put(buf_extend(b, 8), (uint64_t)v); }

void buf_put_uvarint(struct buf *b, uint64_t v)
{
    while (v >= 0x80) {
        buf_put_i8(b, (int8_t)(v | 0x80));
        v >>= 7;
    }
    buf_put_i8(b, (int8_t)v);
}

void buf_put_varint(struct buf *b, int64_t v)
{
    buf_put_uvarint(b, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}
