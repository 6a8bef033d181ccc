/* Kafka record batch v2: header parsing, produce-side validation, decompression and record
 * iteration. Everything here reads bytes a client sent, so every length is checked before use. */
#include "record/batch.h"

#include <string.h>

#include "protocol/errors.h"
#include "record/crc32c.h"
#include "record/decompress.h"
#include "record/record_reader.h"

#define CRC_START 21 /* the CRC covers attributes .. end */
#define MIN_BATCH_LENGTH (BATCH_HEADER_SIZE - BATCH_LOG_OVERHEAD)

int batch_read_header(const uint8_t *p, size_t avail, struct batch_header *h)
{
    if (avail < BATCH_HEADER_SIZE)
        return -1;
    h->base_offset = (int64_t)be64_get(p);
    h->batch_length = (int32_t)be32_get(p + 8);
    h->leader_epoch = (int32_t)be32_get(p + 12);
    h->magic = (int8_t)p[16];
    h->crc = be32_get(p + 17);
    h->attributes = (int16_t)be16_get(p + 21);
    h->last_offset_delta = (int32_t)be32_get(p + 23);
    h->base_timestamp = (int64_t)be64_get(p + 27);
    h->max_timestamp = (int64_t)be64_get(p + 35);
    h->producer_id = (int64_t)be64_get(p + 43);
    h->producer_epoch = (int16_t)be16_get(p + 51);
    h->base_sequence = (int32_t)be32_get(p + 53);
    h->records_count = (int32_t)be32_get(p + 57);
    return 0;
}

/* The batch at p (len bytes available) whose header says it is whole: its header and size. */
static int whole_batch(const uint8_t *p, size_t len, struct batch_header *h, size_t *size)
{
    if (batch_read_header(p, len, h) != 0 || h->batch_length < MIN_BATCH_LENGTH)
        return -1;
    *size = (size_t)h->batch_length + BATCH_LOG_OVERHEAD;
    return *size <= len ? 0 : -1;
}

/* Starts reading the records of a whole batch b of `size` bytes, decompressing as they are read. */
static int open_records(const uint8_t *b, size_t size, const struct batch_header *h, struct dstream *d,
                        struct rsrc *s)
{
    if (dstream_open(d, h->attributes & BATCH_ATTR_CODEC_MASK, b + BATCH_HEADER_SIZE, size - BATCH_HEADER_SIZE) < 0)
        return -1;
    rsrc_stream(s, d);
    return 0;
}

/* ---- validation ---- */

#define FAIL(code, reason)                                                       \
    do {                                                                         \
        if (why)                                                                 \
            *why = (reason);                                                     \
        return (code);                                                           \
    } while (0)

/* The records of a batch whose header checked out, as Kafka's LogValidator reads them: exactly
 * recordsCount well-formed records, offset deltas 0..n-1, timestamps that fit, nothing after the
 * last one, and a compressed stream that ends there. They stream through the decompressor, so the
 * memory used does not depend on what the batch claims (see BATCH_DECOMPRESSED_MAX). */
static int validate_records(const uint8_t *b, size_t size, const struct batch_header *h, const char **why)
{
    struct dstream d;
    struct rsrc s;
    if (open_records(b, size, h, &d, &s) < 0)
        FAIL(KERR_CORRUPT_MESSAGE, d.why);
    int err = 0;
    const char *reason = NULL;
    int32_t n = 0;
    for (;;) {
        struct record_meta m;
        int rc = record_read(&s, &m);
        if (rc == 0)
            break;
        if (rc < 0) {
            err = KERR_CORRUPT_MESSAGE;
            if (s.failed)
                reason = d.why;
            else if (s.beyond_limit && d.codec != CODEC_NONE)
                reason = DSTREAM_TOO_BIG; /* a record says so */
            else
                reason = n == h->records_count ? "bytes after the last record" : "malformed record";
            break;
        }
        /* A well-formed record too many is a count that lies, like one too few. */
        if (n == h->records_count) {
            err = KERR_INVALID_RECORD;
            reason = "recordsCount does not match the records";
            break;
        }
        /* The offsets a batch takes come from its header: records numbered otherwise would be
         * read back at offsets they do not have (Kafka rewrites such batches; sluice stores them
         * as sent, so it refuses them). */
        if (m.offset_delta != n) {
            err = KERR_INVALID_RECORD;
            reason = "offset deltas are not 0..recordsCount-1";
            break;
        }
        int64_t ts;
        if (__builtin_add_overflow(h->base_timestamp, m.timestamp_delta, &ts)) {
            err = KERR_CORRUPT_MESSAGE;
            reason = "record timestamp overflows";
            break;
        }
        n++;
    }
    dstream_close(&d);
    if (!err && n != h->records_count) {
        err = KERR_INVALID_RECORD;
        reason = "recordsCount does not match the records";
    }
    if (err)
        FAIL(err, reason);
    return 0;
}

/* Checks one batch of exactly `size` bytes whose header is h. As Kafka does, bytes that are damaged
 * (CRC, lengths, unparsable records or compressed data) are CORRUPT_MESSAGE, which producers retry;
 * a well-formed batch whose counts or offsets disagree is INVALID_RECORD, which they do not. */
static int validate_batch(const uint8_t *b, size_t size, const struct batch_header *h, const char **why)
{
    if (crc32c(0, b + CRC_START, size - CRC_START) != h->crc)
        FAIL(KERR_CORRUPT_MESSAGE, "CRC-32C mismatch");
    if (h->last_offset_delta < 0 || h->records_count < 0)
        FAIL(KERR_CORRUPT_MESSAGE, "negative lastOffsetDelta or recordsCount");
    bool control = h->attributes & BATCH_ATTR_CONTROL;
    if (h->records_count == 0 && !control)
        FAIL(KERR_INVALID_RECORD, "batch without records");
    /* Producers always number records 0..n-1; Kafka rejects other batches of any codec too. The
     * offsets the batch takes come from lastOffsetDelta, so this keeps them honest. */
    if (h->records_count > 0 && h->last_offset_delta != h->records_count - 1)
        FAIL(KERR_INVALID_RECORD, "lastOffsetDelta does not match recordsCount");
    /* Kafka: an idempotent producer's batch carries its sequence number. */
    if (h->producer_id >= 0 && h->base_sequence < 0)
        FAIL(KERR_INVALID_RECORD, "producerId without a baseSequence");
    int codec = h->attributes & BATCH_ATTR_CODEC_MASK;
    if (codec > CODEC_ZSTD)
        FAIL(KERR_CORRUPT_MESSAGE, "unknown compression codec");
    /* A count that cannot fit in what the batch may decompress to (2^31-1 records) is refused
     * before anything is decompressed. */
    if (codec != CODEC_NONE && (size_t)h->records_count > BATCH_DECOMPRESSED_MAX / RECORD_MIN_SIZE)
        FAIL(KERR_INVALID_RECORD, "recordsCount does not match the records");
    return validate_records(b, size, h, why);
}

int records_validate(const uint8_t *p, size_t len, struct records_summary *s, const char **why)
{
    struct records_summary sum = {0};
    if (len == 0)
        FAIL(KERR_CORRUPT_MESSAGE, "no record batch");
    size_t pos = 0;
    while (pos < len) {
        const uint8_t *b = p + pos;
        size_t avail = len - pos;
        /* Message sets v0/v1 keep their magic at the same offset (16). */
        if (avail > 16 && (b[16] == 0 || b[16] == 1))
            FAIL(KERR_UNSUPPORTED_FOR_MESSAGE_FORMAT, "message format v0/v1 (magic 0/1)");
        struct batch_header h;
        if (batch_read_header(b, avail, &h) < 0)
            FAIL(KERR_CORRUPT_MESSAGE, "truncated batch header");
        if (h.magic != 2)
            FAIL(KERR_CORRUPT_MESSAGE, "unknown magic");
        if (h.batch_length < MIN_BATCH_LENGTH)
            FAIL(KERR_CORRUPT_MESSAGE, "batchLength too small");
        size_t size = (size_t)h.batch_length + BATCH_LOG_OVERHEAD;
        if (size > avail)
            FAIL(KERR_CORRUPT_MESSAGE, "batch truncated");
        int err = validate_batch(b, size, &h, why);
        if (err)
            return err;

        if (sum.batch_count == 0) {
            sum.first_timestamp = h.base_timestamp;
            sum.max_timestamp = h.max_timestamp;
        } else if (h.max_timestamp > sum.max_timestamp) {
            sum.max_timestamp = h.max_timestamp;
        }
        sum.batch_count++;
        sum.attributes_or |= h.attributes;
        sum.offset_count += (int64_t)h.last_offset_delta + 1;
        sum.record_count += h.records_count;
        if (size > (size_t)sum.largest_batch)
            sum.largest_batch = size > INT32_MAX ? INT32_MAX : (int32_t)size;
        pos += size;
    }
    if (s)
        *s = sum;
    return 0;
}

int batch_next(const uint8_t *p, size_t len, size_t *pos, struct batch_header *h, const uint8_t **batch,
               size_t *size)
{
    if (*pos >= len)
        return 0;
    if (whole_batch(p + *pos, len - *pos, h, size) < 0)
        return -1;
    *batch = p + *pos;
    *pos += *size;
    return 1;
}

void batch_set_log_append_time(uint8_t *p, int64_t ts)
{
    be16_put(p + 21, (uint16_t)(be16_get(p + 21) | BATCH_ATTR_LOG_APPEND_TIME));
    be64_put(p + 35, (uint64_t)ts);
    size_t size = (size_t)be32_get(p + 8) + BATCH_LOG_OVERHEAD;
    be32_put(p + 17, crc32c(0, p + CRC_START, size - CRC_START));
}

/* ---- decompression ---- */

int batch_records_decompress(const uint8_t *batch, size_t len, struct buf *out)
{
    struct batch_header h;
    size_t size;
    if (whole_batch(batch, len, &h, &size) < 0)
        return -1;
    struct dstream d;
    if (dstream_open(&d, h.attributes & BATCH_ATTR_CODEC_MASK, batch + BATCH_HEADER_SIZE,
                     size - BATCH_HEADER_SIZE) < 0)
        return -1;
    size_t start = out->len;
    const uint8_t *chunk;
    size_t n;
    int rc;
    while ((rc = dstream_next(&d, &chunk, &n)) == 1)
        buf_append(out, chunk, n);
    dstream_close(&d);
    if (rc < 0)
        out->len = start;
    return rc < 0 ? -1 : 0;
}

int64_t batch_find_timestamp(const uint8_t *batch, size_t len, int64_t ts)
{
    struct batch_header h;
    size_t size;
    if (whole_batch(batch, len, &h, &size) < 0)
        return -1;
    /* LogAppendTime: every record carries the batch's maxTimestamp. */
    if (h.attributes & BATCH_ATTR_LOG_APPEND_TIME)
        return h.max_timestamp >= ts ? 0 : -1;

    /* Streamed: the records are looked at once, so nothing needs to be held. */
    struct dstream d;
    struct rsrc s;
    if (open_records(batch, size, &h, &d, &s) < 0)
        return -1;
    int64_t found = -1;
    struct record_meta r;
    while (record_read(&s, &r) == 1) {
        /* Unsigned add: a hostile delta must not overflow into UB. */
        int64_t rts = (int64_t)((uint64_t)h.base_timestamp + (uint64_t)r.timestamp_delta);
        if (rts >= ts) {
            found = r.offset_delta;
            break;
        }
    }
    dstream_close(&d);
    return found;
}
