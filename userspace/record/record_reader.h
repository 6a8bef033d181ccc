/* The records of a batch (record v2), read from memory or from a decompressing stream by the same
 * code, so what validation accepts is exactly what record_next iterates (record/ internal). */
#ifndef SLUICE_RECORD_READER_H
#define SLUICE_RECORD_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "record/decompress.h"

/* The smallest record: length, attributes, timestamp delta, offset delta, key, value and header
 * count, one byte each. */
#define RECORD_MIN_SIZE 7

/* Where record bytes come from: p[0..len) is the current chunk, at stream offset base. */
struct rsrc {
    const uint8_t *p;
    size_t len, pos;
    uint64_t base;
    uint64_t limit;       /* no record may end beyond this stream offset */
    struct dstream *ds;   /* NULL: p[0..len) is all there is */
    bool failed;          /* ds failed (not the records): ds->why says why */
    bool beyond_limit;    /* a record claimed to end beyond limit */
};

struct record_meta {
    int64_t timestamp_delta;
    int32_t offset_delta;
    int32_t key_len, value_len; /* < 0: null */
    uint64_t key_at, value_at;  /* stream offsets of the key and value bytes */
    int32_t header_count;
};

/* Records in p[0..len), starting at pos. */
void rsrc_memory(struct rsrc *s, const uint8_t *p, size_t len, size_t pos);

/* Records as ds produces them: only the current chunk is held. */
void rsrc_stream(struct rsrc *s, struct dstream *ds);

/* The stream offset of the next byte. */
static inline uint64_t rsrc_tell(const struct rsrc *s) { return s->base + s->pos; }

/* Reads the next record: 1 with *m, 0 at a clean end between records, -1 if the bytes are not a
 * well-formed record (or the stream failed: s->failed). Lengths are checked against the record
 * before anything is skipped, so a lying length never makes it read (or decompress) far. */
int record_read(struct rsrc *s, struct record_meta *m);

#endif
