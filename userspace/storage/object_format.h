/* The layout of one object: the record batches of many partitions written by one flush.
 *
 *   header  "SLUICEO1" (8 bytes)
 *   chunks  the batches of each partition, concatenated, as producers sent them (baseOffset 0)
 *   index   u32 entry count, then per chunk: topic uuid (16), partition (i32), pos (u64), len (u32),
 *           batch count (i32), offset count (i64), first timestamp (i64), max timestamp (i64)
 *   footer  index pos (u64), index len (u32), CRC-32C of everything before the footer (u32), "SLUICEOF"
 *
 * Offsets are not in the object: the metadata commit assigns them after the object is stored, so
 * an object that was written but never committed is simply invisible. */
#ifndef SLUICE_OBJECT_FORMAT_H
#define SLUICE_OBJECT_FORMAT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "util/buf.h"

#define OBJECT_HEADER_MAGIC "SLUICEO1"
#define OBJECT_FOOTER_MAGIC "SLUICEOF"
#define OBJECT_FOOTER_SIZE 24

struct object_chunk {
    uint8_t topic_uuid[16];
    int32_t partition;
    uint64_t pos;
    uint32_t len;
    int32_t batch_count;
    int64_t offset_count;
    int64_t first_timestamp;
    int64_t max_timestamp;
};

struct object_builder {
    struct buf data;
    struct object_chunk *chunks;
    int nchunks, cap;
    int open; /* a chunk is being appended to */
};

void object_builder_init(struct object_builder *b);
void object_builder_free(struct object_builder *b);
/* Starts a chunk for a partition; append its batches with object_builder_append. */
void object_builder_begin_chunk(struct object_builder *b, const uint8_t topic_uuid[16], int32_t partition);
void object_builder_append(struct object_builder *b, const uint8_t *batches, size_t len,
                           int32_t batch_count, int64_t offset_count, int64_t first_ts, int64_t max_ts);
void object_builder_end_chunk(struct object_builder *b);
/* Writes index and footer; b->data then holds the whole object. */
void object_builder_finish(struct object_builder *b);

/* Lays out an object without copying its data: the object is a list of slices (header, each
 * chunk's batches where they already are, index + footer), written with one writev. Produces the
 * same bytes as the object_builder; the data is only read, once, for the object CRC. */
struct object_writer {
    struct iovec *iov;           /* header, chunk data..., tail */
    int niov, cap_iov;
    struct buf tail;             /* index and footer */
    struct object_chunk *chunks;
    int nchunks, cap;
    uint64_t size;               /* bytes so far, then the object's size */
    uint32_t crc;                /* running CRC-32C of the bytes before the footer */
};

void object_writer_init(struct object_writer *w);
void object_writer_free(struct object_writer *w);
/* Adds one chunk whose batches are data[0, len); data is referenced, not copied: it must stay
 * unchanged until the object is written. */
void object_writer_add(struct object_writer *w, const uint8_t topic_uuid[16], int32_t partition,
                       const uint8_t *data, size_t len, int32_t batch_count, int64_t offset_count,
                       int64_t first_ts, int64_t max_ts);
/* Writes index and footer into w->tail; w->iov[0, niov) is then the whole object. */
void object_writer_finish(struct object_writer *w);

/* Parses and checks (magic, CRC) a whole object; *chunks is malloc'd. Returns 0 or -1. */
int object_parse(const uint8_t *obj, size_t len, struct object_chunk **chunks, int *nchunks);

#endif
