/* Encodes Kafka v2 record batches the way producers do; see batch_builder.h. */
#include "batch_builder.h"

#include <lz4frame.h>
#include <snappy-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "record/crc32c.h"


static void die(const char *what)
{
    fprintf(stderr, "batch_builder: %s failed\n", what);
    abort();
}

struct bb_options bb_defaults(enum batch_codec codec)
{
    struct bb_options o = {.codec = codec, .producer_id = -1, .producer_epoch = -1, .base_sequence = -1};
    return o;
}

static void put_bytes(struct buf *b, const void *p, size_t len)
{
    if (!p) {
        buf_put_varint(b, -1);
        return;
    }
    buf_put_varint(b, (int64_t)len);
    buf_append(b, p, len);
}

void bb_encode_records(struct buf *out, const struct bb_record *recs, int n, int64_t base_timestamp)
{
    bb_encode_records_deltas(out, recs, n, base_timestamp, NULL);
}

void bb_encode_records_deltas(struct buf *out, const struct bb_record *recs, int n, int64_t base_timestamp,
                              const int32_t *deltas)
{
    struct buf body;
    buf_init(&body);
    for (int i = 0; i < n; i++) {
        const struct bb_record *r = &recs[i];
        buf_reset(&body);
        buf_put_i8(&body, 0);
        buf_put_varint(&body, r->timestamp - base_timestamp);
        buf_put_varint(&body, deltas ? deltas[i] : i);
        put_bytes(&body, r->key, r->key_len);
        put_bytes(&body, r->value, r->value_len);
        buf_put_varint(&body, r->nheaders);
        for (int h = 0; h < r->nheaders; h++) {
            const struct bb_header *hd = &r->headers[h];
            put_bytes(&body, hd->key, strlen(hd->key));
            put_bytes(&body, hd->value, hd->value ? strlen(hd->value) : 0);
        }
        buf_put_varint(out, (int64_t)body.len);
        buf_append(out, body.data, body.len);
    }
    buf_free(&body);
}

static void gzip(struct buf *out, const uint8_t *src, size_t len)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        die("deflateInit2");
    size_t bound = deflateBound(&z, (uLong)len) + 32; /* + gzip header and trailer */
    uint8_t *dst = buf_extend(out, bound);
    z.next_in = (Bytef *)src;
    z.avail_in = (uInt)len;
    z.next_out = dst;
    z.avail_out = (uInt)bound;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END)
        die("deflate");
    out->len -= z.avail_out;
    deflateEnd(&z);
}

static void snappy_raw(struct buf *out, const uint8_t *src, size_t len)
{
    size_t clen = snappy_max_compressed_length(len);
    uint8_t *dst = buf_extend(out, clen);
    if (snappy_compress((const char *)src, len, (char *)dst, &clen) != SNAPPY_OK)
        die("snappy_compress");
    out->len -= snappy_max_compressed_length(len) - clen;
}

static void snappy_xerial(struct buf *out, const uint8_t *src, size_t len, size_t block)
{
    static const uint8_t magic[8] = {0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0};
    buf_append(out, magic, sizeof(magic));
    buf_put_i32(out, 1); /* version */
    buf_put_i32(out, 1); /* minimum compatible version */
    for (size_t off = 0; off < len; off += block) {
        size_t n = len - off < block ? len - off : block;
        size_t at = out->len;
        buf_put_i32(out, 0);
        snappy_raw(out, src + off, n);
        be32_put(out->data + at, (uint32_t)(out->len - at - 4));
    }
}

static void lz4(struct buf *out, const uint8_t *src, size_t len)
{
    LZ4F_preferences_t prefs;
    memset(&prefs, 0, sizeof(prefs));
    prefs.frameInfo.blockSizeID = LZ4F_max64KB;
    prefs.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled;
    size_t bound = LZ4F_compressFrameBound(len, &prefs);
    uint8_t *dst = buf_extend(out, bound);
    size_t n = LZ4F_compressFrame(dst, bound, src, len, &prefs);
    if (LZ4F_isError(n))
        die("LZ4F_compressFrame");
    out->len -= bound - n;
}

static void zstd(struct buf *out, const uint8_t *src, size_t len, bool unknown_size, int window_log)
{
    ZSTD_CCtx *c = ZSTD_createCCtx();
    if (!c)
        die("ZSTD_createCCtx");
    if (unknown_size)
        ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 0);
    if (window_log && ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, window_log)))
        die("ZSTD_c_windowLog");
    size_t bound = ZSTD_compressBound(len);
    uint8_t *dst = buf_extend(out, bound);
    size_t n = ZSTD_compress2(c, dst, bound, src, len);
    if (ZSTD_isError(n))
        die("ZSTD_compress2");
    out->len -= bound - n;
    ZSTD_freeCCtx(c);
}

void bb_compress(struct buf *out, const struct bb_options *o, const uint8_t *src, size_t len)
{
    switch (o->codec) {
    case CODEC_NONE:
        buf_append(out, src, len);
        break;
    case CODEC_GZIP:
        gzip(out, src, len);
        break;
    case CODEC_SNAPPY:
        if (o->snappy_xerial)
            snappy_xerial(out, src, len, o->xerial_block ? o->xerial_block : 1024);
        else
            snappy_raw(out, src, len);
        break;
    case CODEC_LZ4:
        lz4(out, src, len);
        break;
    case CODEC_ZSTD:
        zstd(out, src, len, o->zstd_unknown_size, o->zstd_window_log);
        break;
    }
}

void bb_fix_crc(uint8_t *p)
{
    size_t size = (size_t)be32_get(p + 8) + BATCH_LOG_OVERHEAD;
    be32_put(p + 17, crc32c(0, p + 21, size - 21));
}

size_t bb_build_section(struct buf *out, const struct bb_options *o, const uint8_t *plain, size_t len,
                        int32_t records_count, int32_t last_offset_delta, int64_t base_ts, int64_t max_ts)
{
    size_t start = out->len;
    buf_put_i64(out, o->base_offset);
    buf_put_i32(out, 0);  /* batchLength, below */
    buf_put_i32(out, -1); /* partitionLeaderEpoch: producers send -1 */
    buf_put_i8(out, 2);
    buf_put_i32(out, 0);  /* CRC, below */
    buf_put_i16(out, (int16_t)(o->codec | o->attributes));
    buf_put_i32(out, last_offset_delta);
    buf_put_i64(out, base_ts);
    buf_put_i64(out, max_ts);
    buf_put_i64(out, o->producer_id);
    buf_put_i16(out, o->producer_epoch);
    buf_put_i32(out, o->base_sequence);
    buf_put_i32(out, records_count);
    bb_compress(out, o, plain, len);

    be32_put(out->data + start + 8, (uint32_t)(out->len - start - BATCH_LOG_OVERHEAD));
    bb_fix_crc(out->data + start);
    return start;
}

size_t bb_build(struct buf *out, const struct bb_options *o, const struct bb_record *recs, int n)
{
    int64_t base_ts = n ? recs[0].timestamp : -1, max_ts = base_ts;
    for (int i = 1; i < n; i++)
        if (recs[i].timestamp > max_ts)
            max_ts = recs[i].timestamp;
    struct buf plain;
    buf_init(&plain);
    bb_encode_records(&plain, recs, n, base_ts);
    size_t start = bb_build_section(out, o, plain.data, plain.len, n, n - 1, base_ts, max_ts);
    buf_free(&plain);
    return start;
}

size_t bb_build_simple(struct buf *out, enum batch_codec codec, int n, int64_t ts0, int64_t ts_step)
{
    struct bb_record *recs = calloc((size_t)(n ? n : 1), sizeof(*recs));
    char(*keys)[32] = calloc((size_t)(n ? n : 1), 32);
    char(*vals)[32] = calloc((size_t)(n ? n : 1), 32);
    if (!recs || !keys || !vals)
        die("calloc");
    for (int i = 0; i < n; i++) {
        snprintf(keys[i], 32, "key-%d", i);
        snprintf(vals[i], 32, "value-%d", i);
        recs[i] = (struct bb_record){keys[i], strlen(keys[i]), vals[i], strlen(vals[i]), ts0 + i * ts_step, 0, NULL};
    }
    struct bb_options o = bb_defaults(codec);
    size_t at = bb_build(out, &o, recs, n);
    free(recs);
    free(keys);
    free(vals);
    return at;
}
