/* Key compaction's pure part: the key map and the rewrite of a chunk, on real batches (one
 * uncompressed, one lz4), and walking chunks whose batches skip offsets. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch_builder.h"
#include "check.h"
#include "record/batch.h"
#include "record/crc32c.h"
#include "record/key_compact.h"

#define R(k, v, ts) {k, sizeof(k) - 1, v, v ? sizeof(v) - 1 : 0, ts, 0, NULL}

/* A chunk at offsets 100..105 as produce stores it (baseOffset 0 in each batch):
 * batch 1: a=a1 b=b1 a=a2 (100..102), batch 2 (lz4): b=b2 c=<tombstone> d=d1 (103..105). */
static void build_chunk(struct buf *chunk)
{
    struct bb_record one[] = {R("a", "a1", 1000), R("b", "b1", 1001), R("a", "a2", 1002)};
    struct bb_record two[] = {R("b", "b2", 2000), {"c", 1, NULL, 0, 2001, 0, NULL}, R("d", "d1", 2002)};
    struct bb_options o = bb_defaults(CODEC_NONE);
    bb_build(chunk, &o, one, 3);
    o.codec = CODEC_LZ4;
    bb_build(chunk, &o, two, 3);
}

struct seen {
    int n;
    int64_t offset[8];
    char key[8][4], value[8][4]; /* value "-": null */
};

/* Reads every record of a rewritten chunk with its absolute offset, checking each batch's CRC and
 * header. */
static int read_chunk(const struct buf *c, int64_t base, int64_t last, struct seen *s, int *failed_)
{
    size_t pos = 0, size;
    struct batch_header h;
    const uint8_t *batch;
    int batches = 0;
    memset(s, 0, sizeof(*s));
    while (batch_next(c->data, c->len, &pos, &h, &batch, &size) == 1) {
        batches++;
        CHECK(batch_walk_base(&h, last, &base) == 0);
        CHECK(h.crc == crc32c(0, batch + 21, size - 21));
        struct buf plain;
        buf_init(&plain);
        CHECK(batch_records_decompress(batch, size, &plain) == 0);
        size_t rp = 0;
        struct record_view r;
        int n = 0;
        while (record_next(plain.data, plain.len, &rp, &r) == 1 && s->n < 8) {
            s->offset[s->n] = base + r.offset_delta;
            memcpy(s->key[s->n], r.key, (size_t)r.key_len);
            if (r.value)
                memcpy(s->value[s->n], r.value, (size_t)r.value_len);
            else
                strcpy(s->value[s->n], "-");
            s->n++;
            n++;
        }
        CHECK(n == h.records_count);
        buf_free(&plain);
        base += h.last_offset_delta + 1;
    }
    CHECK(base <= last + 1);
    return batches;
}

TEST(key_compact_keeps_latest_per_key_and_tombstones_until_horizon)
{
    struct buf chunk, out;
    buf_init(&chunk);
    buf_init(&out);
    build_chunk(&chunk);
    struct key_map *km = key_map_new(1 << 16);
    CHECK(key_map_add_chunk(km, chunk.data, chunk.len, 100, 105) == 0);
    CHECK(key_map_count(km) == 4);
    CHECK(key_map_get(km, (const uint8_t *)"a", 1) == 102);
    CHECK(key_map_get(km, (const uint8_t *)"b", 1) == 103);

    /* tombstones younger than the horizon stay */
    struct key_compact_stats st = {.first_tombstone_kept = INT64_MAX};
    CHECK(key_compact_chunk(km, chunk.data, chunk.len, 100, 105, 0, &out, &st) == 0);
    CHECK(st.records_in == 6 && st.records_kept == 4 && st.tombstones_removed == 0 && st.batches_out == 2);
    CHECK(st.first_tombstone_kept == 2001);
    struct seen s;
    CHECK(read_chunk(&out, 100, 105, &s, failed_) == 2);
    CHECK(s.n == 4);
    CHECK(s.offset[0] == 102 && !strcmp(s.key[0], "a") && !strcmp(s.value[0], "a2"));
    CHECK(s.offset[1] == 103 && !strcmp(s.key[1], "b") && !strcmp(s.value[1], "b2"));
    CHECK(s.offset[2] == 104 && !strcmp(s.key[2], "c") && !strcmp(s.value[2], "-"));
    CHECK(s.offset[3] == 105 && !strcmp(s.key[3], "d") && !strcmp(s.value[3], "d1"));
    /* the rewritten first batch keeps its header: lastOffsetDelta 2 for 1 record, base stored */
    struct batch_header h;
    CHECK(batch_read_header(out.data, out.len, &h) == 0);
    CHECK(h.base_offset == 100 && h.last_offset_delta == 2 && h.records_count == 1 && h.base_timestamp == 1000 &&
          h.max_timestamp == 1002);

    /* compacting the output again changes nothing (every batch is kept, uncompressed: copied) */
    struct buf again;
    buf_init(&again);
    struct key_compact_stats st2 = {0};
    CHECK(key_compact_chunk(km, out.data, out.len, 100, 105, 0, &again, &st2) == 0);
    CHECK(again.len == out.len && !memcmp(again.data, out.data, out.len));

    /* past the horizon the tombstone goes; a batch left empty is dropped */
    buf_reset(&again);
    struct key_compact_stats st3 = {.first_tombstone_kept = INT64_MAX};
    CHECK(key_compact_chunk(km, out.data, out.len, 100, 105, 5000, &again, &st3) == 0);
    CHECK(st3.tombstones_removed == 1 && st3.records_kept == 3 && st3.first_tombstone_kept == INT64_MAX);
    CHECK(read_chunk(&again, 100, 105, &s, failed_) == 2);
    CHECK(s.n == 3 && s.offset[2] == 105);

    /* a key not in the map (a later chunk's reader never saw it) is kept */
    struct key_map *empty = key_map_new(1 << 16);
    buf_reset(&again);
    struct key_compact_stats st4 = {0};
    CHECK(key_compact_chunk(empty, chunk.data, chunk.len, 100, 105, 0, &again, &st4) == 0);
    CHECK(st4.records_kept == 6);
    key_map_free(empty);
    buf_free(&again);
    key_map_free(km);
    buf_free(&chunk);
    buf_free(&out);
}

TEST(key_compact_walk_rejects_base_past_last_offset)
{
    struct buf chunk, out;
    buf_init(&chunk);
    buf_init(&out);
    build_chunk(&chunk);
    batch_set_base_offset(chunk.data, 1000000); /* a stored baseOffset beyond the chunk */
    struct key_map *km = key_map_new(1 << 16);
    CHECK(key_map_add_chunk(km, chunk.data, chunk.len, 100, 105) == -1);
    struct key_compact_stats st = {0};
    CHECK(key_compact_chunk(km, chunk.data, chunk.len, 100, 105, 0, &out, &st) == -1);
    CHECK(out.len == 0 && st.records_in == 0);
    /* batch_walk_base: forward jumps inside the chunk are gaps, never backwards */
    struct batch_header h = {.base_offset = 0};
    int64_t base = 100;
    CHECK(batch_walk_base(&h, 105, &base) == 0 && base == 100);
    h.base_offset = 104;
    CHECK(batch_walk_base(&h, 105, &base) == 0 && base == 104);
    h.base_offset = 106;
    CHECK(batch_walk_base(&h, 105, &base) == -1);
    key_map_free(km);
    buf_free(&chunk);
    buf_free(&out);
}

TEST(key_compact_map_full)
{
    struct key_map *km = key_map_new(0); /* the smallest map */
    char key[16];
    int i = 0;
    for (; i < 100000; i++) {
        int n = snprintf(key, sizeof(key), "k%d", i);
        if (key_map_put(km, (const uint8_t *)key, (size_t)n, i) != 0)
            break;
    }
    CHECK(i > 0 && i < 100000);
    CHECK(key_map_count(km) == (size_t)i);
    CHECK(key_map_get(km, (const uint8_t *)"k0", 2) == 0);
    CHECK(key_map_put(km, (const uint8_t *)"k0", 2, 7) == 0); /* an existing key still updates */
    CHECK(key_map_get(km, (const uint8_t *)"k0", 2) == 7);
    CHECK(key_map_get(km, (const uint8_t *)"nope", 4) == -1);
    key_map_free(km);
}
