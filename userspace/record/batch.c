/* Kafka record batch v2: header parsing, produce-side validation, decompression and record
 * iteration. Everything here reads bytes a client sent, so every length is checked before use. */
#include "batch.h"

#include <limits.h>
#include <lz4frame.h>
#include <snappy-c.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "../protocol/errors.h"
#include "crc32c.h"

/* Output cap for one batch: a decompression bomb fails cleanly instead of eating the memory. */
#define DECOMPRESS_MAX ((size_t)256 << 20)

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

/* ---- varints (zig-zag, as in record v2) ---- */

static int read_uvarint(const uint8_t *p, size_t end, size_t *pos, int max_bytes, uint64_t *v)
{
    uint64_t r = 0;
    for (int i = 0; i < max_bytes; i++) {
        if (*pos >= end)
            return -1;
        uint8_t b = p[(*pos)++];
        r |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *v = r;
            return 0;
        }
    }
    return -1;
}

static int read_varint32(const uint8_t *p, size_t end, size_t *pos, int32_t *v)
{
    uint64_t u;
    if (read_uvarint(p, end, pos, 5, &u) < 0 || u > UINT32_MAX)
        return -1;
    uint32_t z = (uint32_t)u;
    *v = (int32_t)(z >> 1) ^ -(int32_t)(z & 1);
    return 0;
}

static int read_varint64(const uint8_t *p, size_t end, size_t *pos, int64_t *v)
{
    uint64_t u;
    if (read_uvarint(p, end, pos, 10, &u) < 0)
        return -1;
    *v = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
    return 0;
}

/* A varint-length byte string; -1 is null when allow_null. */
static int read_bytes(const uint8_t *p, size_t end, size_t *pos, bool allow_null, const uint8_t **out,
                      int32_t *out_len)
{
    int32_t n;
    if (read_varint32(p, end, pos, &n) < 0)
        return -1;
    if (n < 0) {
        if (n != -1 || !allow_null)
            return -1;
        *out = NULL;
        *out_len = -1;
        return 0;
    }
    if ((size_t)n > end - *pos)
        return -1;
    *out = p + *pos;
    *out_len = n;
    *pos += (size_t)n;
    return 0;
}

int record_next(const uint8_t *p, size_t len, size_t *pos, struct record_view *rec)
{
    size_t i = *pos;
    if (i == len)
        return 0;
    if (i > len)
        return -1;
    int32_t rlen;
    if (read_varint32(p, len, &i, &rlen) < 0 || rlen < 1 || (size_t)rlen > len - i)
        return -1;
    size_t end = i + (size_t)rlen;
    i++; /* attributes: unused in v2 */
    int32_t offset_delta, header_count;
    int64_t ts_delta;
    if (read_varint64(p, end, &i, &ts_delta) < 0 || read_varint32(p, end, &i, &offset_delta) < 0)
        return -1;
    if (read_bytes(p, end, &i, true, &rec->key, &rec->key_len) < 0 ||
        read_bytes(p, end, &i, true, &rec->value, &rec->value_len) < 0)
        return -1;
    if (read_varint32(p, end, &i, &header_count) < 0 || header_count < 0)
        return -1;
    /* Each header takes at least two bytes, so a huge count fails fast on the bounds. */
    for (int32_t h = 0; h < header_count; h++) {
        const uint8_t *b;
        int32_t n;
        if (read_bytes(p, end, &i, false, &b, &n) < 0 || read_bytes(p, end, &i, true, &b, &n) < 0)
            return -1;
    }
    if (i != end)
        return -1;
    rec->offset_delta = offset_delta;
    rec->timestamp_delta = ts_delta;
    rec->header_count = header_count;
    *pos = end;
    return 1;
}

/* ---- validation ---- */

#define FAIL(code, reason)                                                       \
    do {                                                                         \
        if (why)                                                                 \
            *why = (reason);                                                     \
        return (code);                                                           \
    } while (0)

/* Checks one batch of exactly `size` bytes whose header is h. As Kafka does, bytes that are damaged
 * (CRC, lengths, unparsable records) are CORRUPT_MESSAGE, which producers retry; a well-formed batch
 * whose counts disagree is INVALID_RECORD, which they do not. */
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
    if ((h->attributes & BATCH_ATTR_CODEC_MASK) > CODEC_ZSTD)
        FAIL(KERR_CORRUPT_MESSAGE, "unknown compression codec");
    if ((h->attributes & BATCH_ATTR_CODEC_MASK) != CODEC_NONE)
        return 0;

    const uint8_t *recs = b + BATCH_HEADER_SIZE;
    size_t rlen = size - BATCH_HEADER_SIZE, pos = 0;
    struct record_view r;
    int64_t n = 0;
    int rc;
    while ((rc = record_next(recs, rlen, &pos, &r)) == 1)
        n++;
    if (rc < 0)
        FAIL(KERR_CORRUPT_MESSAGE, "malformed record");
    if (n != h->records_count)
        FAIL(KERR_INVALID_RECORD, "recordsCount does not match the records");
    return 0;
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
    if (batch_read_header(p + *pos, len - *pos, h) != 0 || h->batch_length < MIN_BATCH_LENGTH)
        return -1;
    size_t n = (size_t)h->batch_length + BATCH_LOG_OVERHEAD;
    if (n > len - *pos)
        return -1;
    *batch = p + *pos;
    *size = n;
    *pos += n;
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

/* Room for the next piece of output of a batch whose output started at `start`: grows the
 * buffer geometrically and returns 0 once DECOMPRESS_MAX bytes have been produced. */
static size_t out_room(struct buf *out, size_t start)
{
    size_t used = out->len - start;
    if (used >= DECOMPRESS_MAX)
        return 0;
    size_t want = used < 65536 ? 65536 : used;
    if (want > DECOMPRESS_MAX - used)
        want = DECOMPRESS_MAX - used;
    buf_reserve(out, want);
    size_t room = out->cap - out->len;
    return room < DECOMPRESS_MAX - used ? room : DECOMPRESS_MAX - used;
}

/* gzip (zlib's auto-detection also takes a zlib header); concatenated members are allowed,
 * as Java's GZIPInputStream reads them. */
static int inflate_gzip(const uint8_t *src, size_t n, struct buf *out, size_t start)
{
    if (n > UINT_MAX)
        return -1;
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (inflateInit2(&z, 15 + 32) != Z_OK)
        return -1;
    z.next_in = (Bytef *)src;
    z.avail_in = (uInt)n;
    int rc = -1;
    for (;;) {
        size_t room = out_room(out, start);
        if (room == 0)
            break;
        z.next_out = out->data + out->len;
        z.avail_out = (uInt)room;
        int zr = inflate(&z, Z_NO_FLUSH);
        out->len += room - z.avail_out;
        if (zr == Z_STREAM_END) {
            if (z.avail_in == 0) {
                rc = 0;
                break;
            }
            if (inflateReset(&z) != Z_OK)
                break;
        } else if (zr != Z_OK) {
            break; /* corrupt, or Z_BUF_ERROR: input ended before the stream did */
        }
    }
    inflateEnd(&z);
    return rc;
}

static int unsnappy_raw(const uint8_t *src, size_t n, struct buf *out, size_t start)
{
    size_t ulen;
    if (snappy_uncompressed_length((const char *)src, n, &ulen) != SNAPPY_OK)
        return -1;
    if (ulen > DECOMPRESS_MAX - (out->len - start))
        return -1;
    buf_reserve(out, ulen);
    size_t got = ulen;
    if (snappy_uncompress((const char *)src, n, (char *)out->data + out->len, &got) != SNAPPY_OK || got != ulen)
        return -1;
    out->len += got;
    return 0;
}

/* snappy-java's framing (Java clients): "\x82SNAPPY\0", version, compatible version (i32 each),
 * then blocks of i32 compressed length + raw snappy. */
static const uint8_t xerial_magic[8] = {0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0};
#define XERIAL_HEADER_SIZE 16

static int unsnappy(const uint8_t *src, size_t n, struct buf *out, size_t start)
{
    if (n < XERIAL_HEADER_SIZE || memcmp(src, xerial_magic, sizeof(xerial_magic)) != 0)
        return unsnappy_raw(src, n, out, start);
    size_t pos = XERIAL_HEADER_SIZE;
    while (pos < n) {
        if (n - pos < 4)
            return -1;
        uint32_t blen = be32_get(src + pos);
        pos += 4;
        if (blen > n - pos)
            return -1;
        if (unsnappy_raw(src + pos, blen, out, start) < 0)
            return -1;
        pos += blen;
    }
    return 0;
}

static int unlz4(const uint8_t *src, size_t n, struct buf *out, size_t start)
{
    LZ4F_dctx *d;
    if (LZ4F_isError(LZ4F_createDecompressionContext(&d, LZ4F_VERSION)))
        return -1;
    size_t pos = 0;
    int rc = -1;
    for (;;) {
        size_t room = out_room(out, start);
        if (room == 0)
            break;
        size_t in = n - pos, got = room;
        size_t hint = LZ4F_decompress(d, out->data + out->len, &got, src + pos, &in, NULL);
        if (LZ4F_isError(hint))
            break;
        pos += in;
        out->len += got;
        if (hint == 0 && pos == n) { /* frame complete, input used up */
            rc = 0;
            break;
        }
        if (in == 0 && got == 0)
            break; /* no progress: truncated frame */
    }
    LZ4F_freeDecompressionContext(d);
    return rc;
}

/* Streaming, because producers may leave the frame content size out. */
static int unzstd(const uint8_t *src, size_t n, struct buf *out, size_t start)
{
    ZSTD_DCtx *d = ZSTD_createDCtx();
    if (!d)
        return -1;
    ZSTD_inBuffer in = {src, n, 0};
    int rc = -1;
    for (;;) {
        size_t room = out_room(out, start);
        if (room == 0)
            break;
        ZSTD_outBuffer o = {out->data + out->len, room, 0};
        size_t r = ZSTD_decompressStream(d, &o, &in);
        if (ZSTD_isError(r))
            break;
        out->len += o.pos;
        if (r == 0 && in.pos == in.size) { /* frame done and flushed, no more input */
            rc = 0;
            break;
        }
        if (in.pos == in.size && o.pos < room)
            break; /* the decoder wants input we do not have: truncated */
    }
    ZSTD_freeDCtx(d);
    return rc;
}

int batch_records_decompress(const uint8_t *batch, size_t len, struct buf *out)
{
    struct batch_header h;
    if (batch_read_header(batch, len, &h) < 0 || h.batch_length < MIN_BATCH_LENGTH ||
        (size_t)h.batch_length + BATCH_LOG_OVERHEAD > len)
        return -1;
    const uint8_t *src = batch + BATCH_HEADER_SIZE;
    size_t n = (size_t)h.batch_length + BATCH_LOG_OVERHEAD - BATCH_HEADER_SIZE;
    size_t start = out->len;
    int rc;
    switch (h.attributes & BATCH_ATTR_CODEC_MASK) {
    case CODEC_NONE:
        buf_append(out, src, n);
        rc = 0;
        break;
    case CODEC_GZIP:
        rc = inflate_gzip(src, n, out, start);
        break;
    case CODEC_SNAPPY:
        rc = unsnappy(src, n, out, start);
        break;
    case CODEC_LZ4:
        rc = unlz4(src, n, out, start);
        break;
    case CODEC_ZSTD:
        rc = unzstd(src, n, out, start);
        break;
    default:
        rc = -1;
    }
    if (rc < 0)
        out->len = start;
    return rc;
}

int64_t batch_find_timestamp(const uint8_t *batch, size_t len, int64_t ts)
{
    struct batch_header h;
    if (batch_read_header(batch, len, &h) < 0 || h.batch_length < MIN_BATCH_LENGTH ||
        (size_t)h.batch_length + BATCH_LOG_OVERHEAD > len)
        return -1;
    /* LogAppendTime: every record carries the batch's maxTimestamp. */
    if (h.attributes & BATCH_ATTR_LOG_APPEND_TIME)
        return h.max_timestamp >= ts ? 0 : -1;

    struct buf tmp;
    buf_init(&tmp);
    const uint8_t *recs = batch + BATCH_HEADER_SIZE;
    size_t rlen = (size_t)h.batch_length + BATCH_LOG_OVERHEAD - BATCH_HEADER_SIZE;
    if ((h.attributes & BATCH_ATTR_CODEC_MASK) != CODEC_NONE) {
        if (batch_records_decompress(batch, len, &tmp) < 0) {
            buf_free(&tmp);
            return -1;
        }
        recs = tmp.data;
        rlen = tmp.len;
    }
    int64_t found = -1;
    size_t pos = 0;
    struct record_view r;
    while (record_next(recs, rlen, &pos, &r) == 1) {
        /* Unsigned add: a hostile delta must not overflow into UB. */
        int64_t rts = (int64_t)((uint64_t)h.base_timestamp + (uint64_t)r.timestamp_delta);
        if (rts >= ts) {
            found = r.offset_delta;
            break;
        }
    }
    buf_free(&tmp);
    return found;
}
