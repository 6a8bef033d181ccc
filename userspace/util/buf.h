/* A growable byte buffer: the one type every encoder writes into. */
#ifndef SLUICE_BUF_H
#define SLUICE_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
    uint8_t *data;
    size_t len;
    size_t cap;
};

/* Buffers of BUF_BIG bytes and more get a power-of-two capacity and, when freed, are kept for reuse
 * (per process, up to BUF_BIG_KEPT bytes, any thread): fetch answers, object reads and large
 * requests come and go at hundreds per second, and a fresh mapping would cost a page fault per
 * 4 KiB every time. */
#define BUF_BIG (1u << 20)
#define BUF_BIG_KEPT (8u << 20)

/* A buffer's memory taken out of its struct buf, with its capacity, to be freed later. */
struct buf_mem {
    void *p;
    size_t cap;
    void (*release)(void *p); /* if set, frees p instead (memory counted by its owner) */
};

void buf_init(struct buf *b);
void buf_free(struct buf *b);
/* Frees memory that was a buffer's (p = its data, cap = its capacity; cap 0: plain malloc'd memory). */
void buf_mem_free(void *p, size_t cap);
/* Frees m: m->release(m->p) if set, else buf_mem_free. */
void buf_mem_release(const struct buf_mem *m);
void buf_reset(struct buf *b);               /* len = 0, keeps memory */
void buf_reserve(struct buf *b, size_t extra); /* aborts on out-of-memory */
void buf_append(struct buf *b, const void *p, size_t n);
void buf_consume(struct buf *b, size_t n);   /* drop n bytes from the front */
uint8_t *buf_extend(struct buf *b, size_t n); /* grow len by n, return pointer to the new bytes */

/* Big-endian helpers (Kafka is big-endian on the wire). */
void buf_put_i8(struct buf *b, int8_t v);
void buf_put_i16(struct buf *b, int16_t v);
void buf_put_i32(struct buf *b, int32_t v);
void buf_put_i64(struct buf *b, int64_t v);
void buf_put_uvarint(struct buf *b, uint64_t v);
void buf_put_varint(struct buf *b, int64_t v); /* zig-zag */

static inline void be16_put(uint8_t *p, uint16_t v) { p[0] = v >> 8; p[1] = (uint8_t)v; }
static inline void be32_put(uint8_t *p, uint32_t v)
{
    p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = (uint8_t)v;
}
static inline void be64_put(uint8_t *p, uint64_t v)
{
    be32_put(p, (uint32_t)(v >> 32));
    be32_put(p + 4, (uint32_t)v);
}
static inline uint16_t be16_get(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t be32_get(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t be64_get(const uint8_t *p)
{
    return (uint64_t)be32_get(p) << 32 | be32_get(p + 4);
}

#endif
