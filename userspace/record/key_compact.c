#include "record/key_compact.h"

#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

#include "record/batch.h"
#include "record/crc32c.h"

struct km_slot {
    uint8_t hash[16];
    int64_t offset; /* -1: empty */
};

struct key_map {
    struct km_slot *slots;
    size_t mask;  /* capacity - 1 (a power of two) */
    size_t count, max_count;
};

struct key_map *key_map_new(size_t max_bytes)
{
    size_t cap = 1024;
    while (cap * 2 * sizeof(struct km_slot) <= max_bytes)
        cap *= 2;
    struct key_map *km = calloc(1, sizeof(*km));
    if (!km)
        return NULL;
    km->slots = malloc(cap * sizeof(struct km_slot));
    if (!km->slots) {
        free(km);
        return NULL;
    }
    for (size_t i = 0; i < cap; i++)
        km->slots[i].offset = -1;
    km->mask = cap - 1;
    km->max_count = cap / 4 * 3; /* probes stay short below three quarters full */
    return km;
}

void key_map_free(struct key_map *km)
{
    if (km) {
        free(km->slots);
        free(km);
    }
}

size_t key_map_count(const struct key_map *km) { return km->count; }

static void key_hash(const uint8_t *key, size_t len, uint8_t out[16])
{
    uint8_t d[SHA256_DIGEST_LENGTH];
    SHA256(key, len, d);
    memcpy(out, d, 16);
}

static struct km_slot *find(const struct key_map *km, const uint8_t h[16])
{
    uint64_t start;
    memcpy(&start, h, sizeof(start));
    for (size_t i = (size_t)start & km->mask;; i = (i + 1) & km->mask) {
        struct km_slot *s = &km->slots[i];
        if (s->offset < 0 || !memcmp(s->hash, h, 16))
            return s;
    }
}

int key_map_put(struct key_map *km, const uint8_t *key, size_t key_len, int64_t offset)
{
    uint8_t h[16];
    key_hash(key, key_len, h);
    struct km_slot *s = find(km, h);
    if (s->offset < 0) {
        if (km->count >= km->max_count)
            return -1;
        memcpy(s->hash, h, 16);
        km->count++;
    }
    if (offset > s->offset)
        s->offset = offset;
    return 0;
}

int64_t key_map_get(const struct key_map *km, const uint8_t *key, size_t key_len)
{
    uint8_t h[16];
    key_hash(key, key_len, h);
    return find(km, h)->offset;
}

/* Calls fn for each batch of a chunk with its absolute base offset and its records section
 * decompressed (in plain). Returns 0, -1 (does not parse), or what fn returned when not 0. */
typedef int (*batch_fn)(void *arg, const struct batch_header *h, const uint8_t *batch, size_t size,
                        int64_t base, const struct buf *plain);

static int walk(const uint8_t *data, size_t len, int64_t base, int64_t last_offset, batch_fn fn, void *arg)
{
    size_t pos = 0, size;
    struct batch_header h;
    const uint8_t *batch;
    struct buf plain;
    buf_init(&plain);
    int rc;
    while ((rc = batch_next(data, len, &pos, &h, &batch, &size)) == 1) {
        if (batch_walk_base(&h, last_offset, &base) != 0) {
            rc = -1;
            break;
        }
        buf_reset(&plain);
        if (!(h.attributes & BATCH_ATTR_CONTROL) && batch_records_decompress(batch, size, &plain) != 0) {
            rc = -1;
            break;
        }
        if ((rc = fn(arg, &h, batch, size, base, &plain)) != 0)
            break;
        base += (int64_t)h.last_offset_delta + 1;
    }
    buf_free(&plain);
    if (rc == 0 && base > last_offset + 1)
        rc = -1;
    return rc;
}

static int add_batch(void *arg, const struct batch_header *h, const uint8_t *batch, size_t size, int64_t base,
                     const struct buf *plain)
{
    (void)batch;
    (void)size;
    struct key_map *km = arg;
    if (h->attributes & BATCH_ATTR_CONTROL)
        return 0;
    size_t pos = 0;
    struct record_view r;
    int rc;
    while ((rc = record_next(plain->data, plain->len, &pos, &r)) == 1)
        if (r.key && key_map_put(km, r.key, (size_t)r.key_len, base + r.offset_delta) != 0)
            return 1;
    return rc < 0 ? -1 : 0;
}

int key_map_add_chunk(struct key_map *km, const uint8_t *data, size_t len, int64_t base_offset,
                      int64_t last_offset)
{
    return walk(data, len, base_offset, last_offset, add_batch, km);
}

struct rewrite {
    const struct key_map *km;
    int64_t horizon;
    struct buf *out;
    struct key_compact_stats *st;
    struct buf kept; /* the kept records of the batch being rewritten */
};

static int rewrite_batch(void *arg, const struct batch_header *h, const uint8_t *batch, size_t size, int64_t base,
                         const struct buf *plain)
{
    struct rewrite *w = arg;
    if (h->attributes & BATCH_ATTR_CONTROL) {
        size_t at = w->out->len;
        buf_append(w->out, batch, size);
        batch_set_base_offset(w->out->data + at, base);
        w->st->batches_out++;
        return 0;
    }
    buf_reset(&w->kept);
    size_t pos = 0, start = 0;
    struct record_view r;
    int rc, n = 0, kept = 0;
    while ((rc = record_next(plain->data, plain->len, &pos, &r)) == 1) {
        n++;
        bool keep = true;
        int64_t ts = h->attributes & BATCH_ATTR_LOG_APPEND_TIME ? h->max_timestamp
                                                                 : h->base_timestamp + r.timestamp_delta;
        if (r.key) {
            int64_t offset = base + r.offset_delta;
            if (key_map_get(w->km, r.key, (size_t)r.key_len) > offset)
                keep = false;
            else if (!r.value && ts < w->horizon) {
                keep = false;
                w->st->tombstones_removed++;
            }
        }
        if (keep) {
            buf_append(&w->kept, plain->data + start, pos - start);
            kept++;
            if (r.key && !r.value && ts < w->st->first_tombstone_kept)
                w->st->first_tombstone_kept = ts;
        }
        start = pos;
    }
    if (rc < 0)
        return -1;
    w->st->records_in += n;
    w->st->records_kept += kept;
    if (kept == 0)
        return 0;
    w->st->batches_out++;
    size_t at = w->out->len;
    if (kept == n && (h->attributes & BATCH_ATTR_CODEC_MASK) == CODEC_NONE) {
        buf_append(w->out, batch, size);
        batch_set_base_offset(w->out->data + at, base);
        return 0;
    }
    buf_append(w->out, batch, BATCH_HEADER_SIZE);
    buf_append(w->out, w->kept.data, w->kept.len);
    uint8_t *p = w->out->data + at;
    batch_set_base_offset(p, base);
    be32_put(p + 8, (uint32_t)(BATCH_HEADER_SIZE + w->kept.len - BATCH_LOG_OVERHEAD));
    be16_put(p + 21, (uint16_t)(h->attributes & ~BATCH_ATTR_CODEC_MASK));
    be32_put(p + 57, (uint32_t)kept);
    be32_put(p + 17, crc32c(0, p + 21, BATCH_HEADER_SIZE - 21 + w->kept.len));
    return 0;
}

int key_compact_chunk(const struct key_map *km, const uint8_t *data, size_t len, int64_t base_offset,
                      int64_t last_offset, int64_t tombstone_horizon_ms, struct buf *out,
                      struct key_compact_stats *st)
{
    struct rewrite w = {.km = km, .horizon = tombstone_horizon_ms, .out = out, .st = st};
    buf_init(&w.kept);
    size_t start = out->len;
    struct key_compact_stats before = *st;
    int rc = walk(data, len, base_offset, last_offset, rewrite_batch, &w);
    buf_free(&w.kept);
    if (rc != 0) {
        out->len = start;
        *st = before;
        return -1;
    }
    return 0;
}
