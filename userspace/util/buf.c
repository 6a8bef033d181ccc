#include "util/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void buf_init(struct buf *b) { memset(b, 0, sizeof(*b)); }

void buf_free(struct buf *b)
{
    free(b->data);
    buf_init(b);
}

void buf_reset(struct buf *b) { b->len = 0; }

void buf_reserve(struct buf *b, size_t extra)
{
    if (b->len + extra <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra)
        cap *= 2;
    uint8_t *p = realloc(b->data, cap);
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
