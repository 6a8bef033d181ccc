/* Kafka record batch v2 (magic 2): parsing, validation and the few rewrites the broker does. */
#ifndef SLUICE_BATCH_H
#define SLUICE_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

#define BATCH_HEADER_SIZE 61
#define BATCH_LOG_OVERHEAD 12 /* baseOffset + batchLength: bytes not counted in batchLength */

enum batch_codec { CODEC_NONE = 0, CODEC_GZIP = 1, CODEC_SNAPPY = 2, CODEC_LZ4 = 3, CODEC_ZSTD = 4 };

#define BATCH_ATTR_CODEC_MASK 0x07
#define BATCH_ATTR_LOG_APPEND_TIME 0x08
#define BATCH_ATTR_TRANSACTIONAL 0x10
#define BATCH_ATTR_CONTROL 0x20

struct batch_header {
    int64_t base_offset;
    int32_t batch_length;      /* bytes after this field: total size = batch_length + 12 */
    int32_t leader_epoch;
    int8_t magic;
    uint32_t crc;
    int16_t attributes;
    int32_t last_offset_delta;
    int64_t base_timestamp;
    int64_t max_timestamp;
    int64_t producer_id;
    int16_t producer_epoch;
    int32_t base_sequence;
    int32_t records_count;
};

/* Reads the 61-byte header at p (needs avail >= BATCH_HEADER_SIZE). Returns 0 or -1. */
int batch_read_header(const uint8_t *p, size_t avail, struct batch_header *h);

/* Iterates the whole batches stored back to back in a buffer (a chunk, a produce request's records):
 * returns 1 with *h, *batch and *size describing the batch at *pos and advances *pos past it; 0 at the
 * end; -1 if what follows is not a whole batch. */
int batch_next(const uint8_t *p, size_t len, size_t *pos, struct batch_header *h, const uint8_t **batch,
               size_t *size);

struct records_summary {
    int32_t batch_count;
    int64_t offset_count;      /* sum of (last_offset_delta + 1): offsets these batches take */
    int64_t record_count;      /* sum of records_count */
    int64_t first_timestamp;   /* base_timestamp of the first batch */
    int64_t max_timestamp;     /* max of max_timestamp */
    int32_t largest_batch;     /* bytes, for max.message.bytes */
    int16_t attributes_or;     /* the attributes of all batches OR-ed: control, transactional, codecs */
};

/* The most a batch's records may decompress to; beyond it the batch is CORRUPT_MESSAGE (a bomb). 64
 * times the default max.message.bytes, and under librdkafka's receive.message.max.bytes (100 MB),
 * so any batch accepted can be consumed. What checking a batch costs:
 * - time: records_validate decompresses at most this much per batch, checking records as they
 *   come; a count or a record length that cannot fit under it is refused without decompressing.
 * - memory: records_validate streams, it never holds the records. gzip, lz4 and zstd decompress
 *   through a fixed 64 KiB window, plus each codec's own state: zlib 45 KiB; lz4 at most two
 *   blocks of at most 4 MiB; zstd the history window its frame declares, up to 2^27 (128 MiB, what
 *   Kafka's Java consumer accepts: levels 20-22 of streaming compressors need it; 2 MiB at the
 *   default level) and touched only as far as output goes, so at most this cap. snappy has no
 *   streaming decoder: one block at a time (snappy-java's framing, 32 KiB by default; librdkafka's
 *   raw snappy is one block), each at most 22 times its compressed size and at most this cap.
 * - batch_records_decompress() builds the whole output: up to this cap. */
#define BATCH_DECOMPRESSED_MAX ((size_t)64 << 20)

/* Validates a Produce "records" field: one or more whole v2 batches, nothing trailing. What
 * Kafka's LogValidator checks, for every codec: magic (2), lengths, CRC-32C, recordsCount >= 1
 * (unless control) and lastOffsetDelta == recordsCount - 1, a baseSequence when there is a
 * producerId; then the records, decompressed as they are read (streamed, see
 * BATCH_DECOMPRESSED_MAX): exactly recordsCount of them, offset deltas 0..n-1, each one's lengths
 * (record, key, value, header count, headers) inside the record and the record inside the
 * (decompressed) records section, well-formed varints, baseTimestamp + delta without overflow,
 * nothing after the last record, and the compressed stream (checksums included) ending exactly
 * there. Thread-safe (no shared state).
 * Returns a Kafka error code: 0; CORRUPT_MESSAGE for damaged bytes (CRC, lengths, varints, records
 * or compressed data that do not parse, bombs); INVALID_RECORD for well-formed batches whose counts
 * or offsets disagree; UNSUPPORTED_FOR_MESSAGE_FORMAT for magic 0/1. Sets *why to a short static
 * reason on failure. */
int records_validate(const uint8_t *p, size_t len, struct records_summary *s, const char **why);

/* Rewrites baseOffset of the batch at p (outside the CRC, so no CRC update). */
static inline void batch_set_base_offset(uint8_t *p, int64_t base_offset) { be64_put(p, (uint64_t)base_offset); }

/* Walking a chunk's batches: *base is the offset the next batch starts at when offsets have no
 * gaps. Produce stores every batch with baseOffset 0; key compaction stores each batch's absolute
 * baseOffset, so a stored baseOffset beyond *base means offsets were removed before it. Returns 0
 * (*base moved to it), or -1 when it lies past the chunk's last offset (a corrupt chunk). */
static inline int batch_walk_base(const struct batch_header *h, int64_t last_offset, int64_t *base)
{
    if (h->base_offset > *base) {
        if (h->base_offset > last_offset)
            return -1;
        *base = h->base_offset;
    }
    return 0;
}

/* LogAppendTime: set attribute bit 3 and maxTimestamp, then recompute the CRC. */
void batch_set_log_append_time(uint8_t *p, int64_t ts);

/* Decompresses the records section of a batch (bytes 61..end), appending it to out (uncompressed
 * batches are copied). Returns 0 or -1 (unsupported codec, corrupt data, more than
 * BATCH_DECOMPRESSED_MAX bytes), out unchanged then. */
int batch_records_decompress(const uint8_t *batch, size_t len, struct buf *out);

/* One record inside a (decompressed) records section. */
struct record_view {
    int64_t offset_delta;
    int64_t timestamp_delta;
    const uint8_t *key; int32_t key_len;       /* key_len < 0: null key */
    const uint8_t *value; int32_t value_len;   /* value_len < 0: null value */
    int32_t header_count;
};

/* Iterates records of a decompressed records section. Returns 1 with *rec filled, 0 at the end,
 * -1 on malformed data (the grammar records_validate applies). *pos starts at 0. */
int record_next(const uint8_t *p, size_t len, size_t *pos, struct record_view *rec);

/* For ListOffsets by timestamp: the offset delta of the first record in the batch whose timestamp
 * is >= ts, or -1 if none (decompresses as it reads, in bounded memory). */
int64_t batch_find_timestamp(const uint8_t *batch, size_t len, int64_t ts);

#endif
