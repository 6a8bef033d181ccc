/* Test helper: encodes real Kafka v2 record batches (as producers do), optionally compressed
 * with the real codec libraries, so tests exercise the broker on the bytes clients send. */
#ifndef SLUICE_TEST_BATCH_BUILDER_H
#define SLUICE_TEST_BATCH_BUILDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "record/batch.h"
#include "util/buf.h"

struct bb_header {
    const char *key;
    const char *value;    /* NULL: null value */
};

struct bb_record {
    const void *key;      /* NULL: null key */
    size_t key_len;
    const void *value;    /* NULL: null value */
    size_t value_len;
    int64_t timestamp;    /* absolute; the batch stores deltas from the first record's */
    int nheaders;
    const struct bb_header *headers;
};

struct bb_options {
    enum batch_codec codec;
    bool snappy_xerial;      /* snappy-java framing (Java clients) instead of raw snappy */
    size_t xerial_block;     /* its block size; 0: 1 KiB, so tests cover several (snappy-java: 32 KiB) */
    bool zstd_unknown_size;  /* leave the frame content size out, as streaming compressors do */
    int zstd_window_log;     /* the window the frame declares; 0: what the level picks */
    int16_t attributes;      /* extra attribute bits (transactional, control, log append time) */
    int64_t base_offset;
    int64_t producer_id;     /* bb_defaults(): -1 (no idempotence) */
    int16_t producer_epoch;
    int32_t base_sequence;
};

struct bb_options bb_defaults(enum batch_codec codec);

/* Appends the uncompressed records section (record v2 encoding, offset deltas 0..n-1). */
void bb_encode_records(struct buf *out, const struct bb_record *recs, int n, int64_t base_timestamp);

/* The same with the offset deltas given (deltas[i] for record i): for batches that lie. */
void bb_encode_records_deltas(struct buf *out, const struct bb_record *recs, int n, int64_t base_timestamp,
                              const int32_t *deltas);

/* Appends src compressed with codec, as a Kafka producer would write the records section. */
void bb_compress(struct buf *out, const struct bb_options *o, const uint8_t *src, size_t len);

/* Appends one batch whose records section is `plain` (already encoded, whatever it holds), compressed
 * with o->codec, with the header counts and timestamps given; returns its offset in out. */
size_t bb_build_section(struct buf *out, const struct bb_options *o, const uint8_t *plain, size_t len,
                        int32_t records_count, int32_t last_offset_delta, int64_t base_ts, int64_t max_ts);

/* Appends one batch holding recs; returns its offset in out. */
size_t bb_build(struct buf *out, const struct bb_options *o, const struct bb_record *recs, int n);

/* Appends a batch of n records "key-<i>"/"value-<i>" with timestamps ts0 + i * ts_step. */
size_t bb_build_simple(struct buf *out, enum batch_codec codec, int n, int64_t ts0, int64_t ts_step);

/* Recomputes the CRC of the batch at p after a test edited it. */
void bb_fix_crc(uint8_t *p);

#endif
