/* libFuzzer target for record batches: records_validate, and what reads batches after it
 * (batch_next, batch_records_decompress, record_next, batch_find_timestamp).
 *
 * Input: one mode byte, then
 *   mode < 0x80 (raw):   a Produce "records" field, one or more batches; the CRC of every batch
 *                        whose batchLength fits is recomputed (unless mode & 0x40), so mutations
 *                        get past the CRC into the decompressors and the records;
 *   mode >= 0x80 (build): 8 bytes baseTimestamp, 1 byte (int8) added to recordsCount, then a
 *                        records section, compressed here with the codec mode & 7 (5: snappy with
 *                        snappy-java's framing, 6: zstd without content size, 7: none) into one
 *                        batch whose recordsCount is the number of records the section starts
 *                        with (plus that byte) and lastOffsetDelta recordsCount - 1 (unless
 *                        mode & 0x40: then recordsCount - 1 + the same byte), CRC correct: the
 *                        fuzzer's mutations reach the record parser through every codec.
 * Checks: nothing crashes or reads out of bounds (ASan/UBSan, exact-size copies); records_validate
 * accepts a batch exactly when decompressing it whole and reading it with record_next finds it
 * sound (two code paths, one verdict); whatever batch_records_decompress returns, the codec
 * libraries' one-shot calls return too (so both paths' shared streaming decoder is checked by a
 * third); what it accepts iterates cleanly and matches its summary.
 * The seeds in corpus_records/ are valid batches of every codec in both modes (raw ones include
 * batches librdkafka 2.0.2 wrote). */
#include <lz4frame.h>
#include <snappy-c.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "batch_builder.h"
#include "protocol/errors.h"
#include "record/batch.h"
#include "record/crc32c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CRC_START 21

static void fail(const char *what, const char *why)
{
    fprintf(stderr, "fuzz_records: %s (%s)\n", what, why ? why : "-");
    abort();
}

/* The codec libraries' one-shot decoders, driven as simply as possible: the records section src
 * decompressed into dst (room for cap bytes). Returns its length, or -1. */
static int64_t oracle_decompress(int codec, const uint8_t *src, size_t n, uint8_t *dst, size_t cap)
{
    switch (codec) {
    case CODEC_NONE:
        if (n > cap)
            return -1;
        memcpy(dst, src, n);
        return (int64_t)n;
    case CODEC_GZIP: { /* members back to back */
        z_stream z;
        memset(&z, 0, sizeof(z));
        if (inflateInit2(&z, 15 + 32) != Z_OK)
            return -1;
        z.next_in = (Bytef *)src;
        z.avail_in = (uInt)n;
        z.next_out = dst;
        z.avail_out = (uInt)cap;
        int r;
        while ((r = inflate(&z, Z_FINISH)) == Z_STREAM_END && z.avail_in > 0)
            inflateReset(&z);
        int64_t got = r == Z_STREAM_END ? (int64_t)(cap - z.avail_out) : -1;
        inflateEnd(&z);
        return got;
    }
    case CODEC_SNAPPY: {
        static const uint8_t magic[8] = {0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0};
        bool xerial = n >= 16 && memcmp(src, magic, 8) == 0;
        size_t pos = xerial ? 16 : 0, out = 0;
        for (;;) { /* raw snappy: one block; snappy-java's framing: any number of them, even none */
            if (xerial && pos == n)
                break;
            size_t blen = n - pos, ulen;
            if (xerial) {
                if (n - pos < 4 || be32_get(src + pos) > n - pos - 4)
                    return -1;
                blen = be32_get(src + pos);
                pos += 4;
            }
            if (snappy_uncompressed_length((const char *)src + pos, blen, &ulen) != SNAPPY_OK || ulen > cap - out)
                return -1;
            if (snappy_uncompress((const char *)src + pos, blen, (char *)dst + out, &ulen) != SNAPPY_OK)
                return -1;
            out += ulen;
            pos += blen;
            if (!xerial)
                break;
        }
        return (int64_t)out;
    }
    case CODEC_LZ4: { /* frames back to back */
        LZ4F_dctx *d;
        if (LZ4F_isError(LZ4F_createDecompressionContext(&d, LZ4F_VERSION)))
            return -1;
        size_t pos = 0, out = 0, hint = 1;
        while (pos < n) {
            size_t in = n - pos, room = cap - out;
            hint = LZ4F_decompress(d, dst + out, &room, src + pos, &in, NULL);
            if (LZ4F_isError(hint) || (in == 0 && room == 0))
                break;
            pos += in;
            out += room;
        }
        LZ4F_freeDecompressionContext(d);
        return hint == 0 && pos == n ? (int64_t)out : -1;
    }
    case CODEC_ZSTD: {
        size_t r = ZSTD_decompress(dst, cap, src, n);
        return ZSTD_isError(r) ? -1 : (int64_t)r;
    }
    default:
        return -1;
    }
}

/* What batch_records_decompress made of the batch must be what the oracle makes of it, byte for
 * byte, and no more. */
static void check_decompressed(const uint8_t *b, size_t size, const struct batch_header *h, const struct buf *out)
{
    uint8_t *dst = malloc(out->len + 1);
    int64_t got = oracle_decompress(h->attributes & BATCH_ATTR_CODEC_MASK, b + BATCH_HEADER_SIZE,
                                    size - BATCH_HEADER_SIZE, dst, out->len + 1);
    if (got != (int64_t)out->len || (out->len && memcmp(dst, out->data, out->len) != 0))
        fail("batch_records_decompress disagrees with the codec library", NULL);
    free(dst);
}

/* The verdict of the other code path: whole batches, decompressed at once, records read from
 * memory. 0 when the batch is sound. */
static int reference_batch(const uint8_t *b, size_t size, const struct batch_header *h)
{
    if (h->magic != 2 || crc32c(0, b + CRC_START, size - CRC_START) != h->crc)
        return -1;
    if (h->records_count < 0 || h->last_offset_delta < 0)
        return -1;
    if (h->records_count == 0 && !(h->attributes & BATCH_ATTR_CONTROL))
        return -1;
    if (h->records_count > 0 && h->last_offset_delta != h->records_count - 1)
        return -1;
    if (h->producer_id >= 0 && h->base_sequence < 0)
        return -1;
    if ((h->attributes & BATCH_ATTR_CODEC_MASK) > CODEC_ZSTD)
        return -1;
    struct buf out;
    buf_init(&out);
    int bad = batch_records_decompress(b, size, &out) != 0;
    if (!bad)
        check_decompressed(b, size, h, &out);
    size_t pos = 0;
    struct record_view r;
    int64_t n = 0;
    int rc = 0;
    while (!bad && (rc = record_next(out.data, out.len, &pos, &r)) == 1) {
        int64_t ts;
        if (r.offset_delta != n || __builtin_add_overflow(h->base_timestamp, r.timestamp_delta, &ts))
            bad = 1;
        n++;
    }
    if (rc < 0 || n != h->records_count)
        bad = 1;
    if (!bad && pos != out.len)
        fail("record_next stopped before the end", NULL);
    buf_free(&out);
    return bad ? -1 : 0;
}

static void check(const uint8_t *p, size_t len)
{
    struct records_summary s;
    const char *why = NULL;
    int rc = records_validate(p, len, &s, &why);
    if (rc != 0 && rc != KERR_CORRUPT_MESSAGE && rc != KERR_INVALID_RECORD &&
        rc != KERR_UNSUPPORTED_FOR_MESSAGE_FORMAT)
        fail("records_validate returned an unexpected code", why);
    if (rc != 0 && !why)
        fail("records_validate refused without a reason", NULL);

    /* Walk the batches as fetch and ListOffsets do. */
    size_t pos = 0, size;
    struct batch_header h;
    const uint8_t *b;
    int more, sound = len > 0, batches = 0;
    int64_t records = 0, offsets = 0;
    while ((more = batch_next(p, len, &pos, &h, &b, &size)) == 1) {
        if (h.magic == 0 || h.magic == 1 || reference_batch(b, size, &h) != 0)
            sound = 0;
        /* Any offset delta a record holds, unless the batch is sound. */
        int64_t at = batch_find_timestamp(b, size, 1000);
        if (sound && (at < -1 || at > h.last_offset_delta))
            fail("batch_find_timestamp out of range", NULL);
        batches++;
        records += h.records_count;
        offsets += (int64_t)h.last_offset_delta + 1;
    }
    if (more < 0)
        sound = 0;
    /* A v0/v1 message set shorter than a v2 header is refused too. */
    if (len > 16 && (p[16] == 0 || p[16] == 1))
        sound = 0;

    if ((rc == 0) != sound)
        fail(rc == 0 ? "records_validate accepted what does not read back" : "records_validate refused a sound batch",
             why);
    if (rc == 0 && (s.batch_count != batches || s.record_count != records || s.offset_count != offsets))
        fail("summary does not match the batches", NULL);
}

/* Raw mode: recompute the CRC of every batch whose length fits. */
static void fix_crcs(uint8_t *p, size_t len)
{
    size_t pos = 0;
    while (len - pos >= BATCH_HEADER_SIZE) {
        int32_t blen = (int32_t)be32_get(p + pos + 8);
        if (blen < BATCH_HEADER_SIZE - BATCH_LOG_OVERHEAD || (size_t)blen + BATCH_LOG_OVERHEAD > len - pos)
            return;
        size_t size = (size_t)blen + BATCH_LOG_OVERHEAD;
        be32_put(p + pos + 17, crc32c(0, p + pos + CRC_START, size - CRC_START));
        pos += size;
    }
}

/* Build mode: see the top of the file. */
static void build(struct buf *out, uint8_t mode, const uint8_t *d, size_t n)
{
    if (n < 9)
        return;
    int64_t base_ts = (int64_t)be64_get(d);
    int8_t adjust = (int8_t)d[8];
    const uint8_t *plain = d + 9;
    size_t plain_len = n - 9, pos = 0;
    struct record_view r;
    int64_t count = 0;
    while (record_next(plain, plain_len, &pos, &r) == 1)
        count++;
    count += adjust;
    int64_t last = count - 1 + ((mode & 0x40) ? adjust : 0);
    if (count > INT32_MAX || last < INT32_MIN || last > INT32_MAX)
        return;
    static const enum batch_codec codecs[8] = {CODEC_NONE, CODEC_GZIP,   CODEC_SNAPPY, CODEC_LZ4,
                                               CODEC_ZSTD, CODEC_SNAPPY, CODEC_ZSTD,   CODEC_NONE};
    struct bb_options o = bb_defaults(codecs[mode & 7]);
    o.snappy_xerial = (mode & 7) == 5;
    o.zstd_unknown_size = (mode & 7) == 6;
    bb_build_section(out, &o, plain, plain_len, (int32_t)count, (int32_t)last, base_ts, base_ts);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    struct buf b;
    buf_init(&b);
    if (mode < 0x80) {
        buf_append(&b, data + 1, size - 1);
        if (!(mode & 0x40))
            fix_crcs(b.data, b.len);
    } else {
        build(&b, mode, data + 1, size - 1);
    }
    /* An exact-size copy, so ASan sees any read past the end. */
    uint8_t *p = malloc(b.len ? b.len : 1);
    if (b.len)
        memcpy(p, b.data, b.len);
    check(p, b.len);
    free(p);
    buf_free(&b);
    return 0;
}
