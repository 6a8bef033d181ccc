/* CRC-32C and record batches: real batches built and compressed with the codec libraries. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>
#include <zstd.h>

#include "batch_builder.h"
#include "check.h"
#include "protocol/errors.h"
#include "record/batch.h"
#include "record/crc32c.h"

/* xorshift: deterministic test data without touching rand()'s global state. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* ---- CRC-32C ---- */

TEST(records_crc32c_known_vectors)
{
    CHECK_EQ(crc32c(0, "123456789", 9), 0xE3069283u);
    CHECK_EQ(crc32c_sw(0, "123456789", 9), 0xE3069283u);
    CHECK_EQ(crc32c(0, "", 0), 0);
    /* RFC 3720 (iSCSI) B.4 */
    uint8_t b[32];
    memset(b, 0, sizeof(b));
    CHECK_EQ(crc32c(0, b, 32), 0x8A9136AAu);
    memset(b, 0xff, sizeof(b));
    CHECK_EQ(crc32c(0, b, 32), 0x62A8AB43u);
    for (int i = 0; i < 32; i++)
        b[i] = (uint8_t)i;
    CHECK_EQ(crc32c(0, b, 32), 0x46DD794Eu);
    CHECK_EQ(crc32c_sw(0, b, 32), 0x46DD794Eu);
    for (int i = 0; i < 32; i++)
        b[i] = (uint8_t)(31 - i);
    CHECK_EQ(crc32c(0, b, 32), 0x113FDB5Cu);
    /* Chaining: crc(a) then b == crc(a b). */
    CHECK_EQ(crc32c(crc32c(0, "1234", 4), "56789", 5), 0xE3069283u);
}

TEST(records_crc32c_hw_and_table_agree)
{
    if (!crc32c_hw_available())
        fprintf(stderr, "  (no SSE4.2 here: crc32c_hw is the table too)\n");
    size_t max = 3 * 8192 * 2 + 3 * 256 + 77;
    uint8_t *data = malloc(max + 8);
    for (size_t i = 0; i < max + 8; i++)
        data[i] = (uint8_t)rnd();
    size_t lens[] = {0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 63, 64, 65, 255, 256, 257, 767, 768, 769, 1000, 4096,
                     8191, 8192, 24575, 24576, 24577, 30000, max};
    for (size_t li = 0; li < sizeof(lens) / sizeof(lens[0]); li++) {
        for (int align = 0; align < 8; align++) {
            uint32_t sw = crc32c_sw(0, data + align, lens[li]);
            CHECK_EQ(crc32c_hw(0, data + align, lens[li]), sw);
            CHECK_EQ(crc32c(0, data + align, lens[li]), sw);
            /* Split anywhere and chain. */
            size_t cut = lens[li] ? rnd() % lens[li] : 0;
            CHECK_EQ(crc32c_hw(crc32c_hw(0, data + align, cut), data + align + cut, lens[li] - cut), sw);
        }
    }
    for (int i = 0; i < 2000; i++) {
        size_t off = rnd() % 64, len = rnd() % (max - 64);
        CHECK_EQ(crc32c_hw(0x12345678, data + off, len), crc32c_sw(0x12345678, data + off, len));
    }
    /* One flipped bit changes the CRC. */
    uint32_t before = crc32c(0, data, max);
    data[max / 2] ^= 4;
    CHECK(crc32c(0, data, max) != before);
    free(data);
}

/* ---- building blocks for batch tests ---- */

#define NREC 300

struct sample {
    struct bb_record recs[NREC];
    struct bb_header hdrs[2];
    uint8_t *blob;
};

/* Records with null keys and values, headers, and values up to 3000 bytes of mixed
 * compressibility: ~450 KB, enough for several LZ4 blocks and xerial blocks. */
static void sample_init(struct sample *s, int64_t ts0)
{
    s->blob = malloc(3000 * NREC);
    for (size_t i = 0; i < 3000 * NREC; i++)
        s->blob[i] = (i / 7) % 3 ? (uint8_t)rnd() : (uint8_t)'a';
    s->hdrs[0] = (struct bb_header){"trace", "abc"};
    s->hdrs[1] = (struct bb_header){"null-valued", NULL};
    for (int i = 0; i < NREC; i++) {
        struct bb_record *r = &s->recs[i];
        r->key = i % 5 == 0 ? NULL : s->blob + i;
        r->key_len = (size_t)(i % 17);
        r->value = i % 11 == 3 ? NULL : s->blob + 3000 * i;
        r->value_len = (size_t)(i * 37 % 3000);
        r->timestamp = ts0 + i * 10 - (i % 4 == 1 ? 25 : 0); /* not monotonic, like real clocks */
        r->nheaders = i % 3;
        r->headers = s->hdrs;
    }
}

static void sample_free(struct sample *s) { free(s->blob); }

static int64_t sample_max_ts(const struct sample *s)
{
    int64_t m = s->recs[0].timestamp;
    for (int i = 1; i < NREC; i++)
        if (s->recs[i].timestamp > m)
            m = s->recs[i].timestamp;
    return m;
}

/* Checks that the records of batch b (any codec) are exactly those of s. */
static void check_records(int *failed_, const uint8_t *b, size_t len, const struct sample *s)
{
    struct batch_header h;
    CHECK_EQ(batch_read_header(b, len, &h), 0);
    struct buf out;
    buf_init(&out);
    CHECK_EQ(batch_records_decompress(b, len, &out), 0);
    size_t pos = 0;
    struct record_view r;
    int i = 0, rc;
    while ((rc = record_next(out.data, out.len, &pos, &r)) == 1) {
        if (i >= NREC) {
            i++;
            break;
        }
        const struct bb_record *e = &s->recs[i];
        CHECK_EQ(r.offset_delta, i);
        CHECK_EQ(h.base_timestamp + r.timestamp_delta, e->timestamp);
        if (e->key) {
            CHECK_EQ(r.key_len, e->key_len);
            CHECK(r.key_len < 0 || memcmp(r.key, e->key, (size_t)r.key_len) == 0);
        } else {
            CHECK_EQ(r.key_len, -1);
            CHECK(r.key == NULL);
        }
        if (e->value) {
            CHECK_EQ(r.value_len, e->value_len);
            CHECK(r.value_len < 0 || memcmp(r.value, e->value, (size_t)r.value_len) == 0);
        } else {
            CHECK_EQ(r.value_len, -1);
        }
        CHECK_EQ(r.header_count, e->nheaders);
        i++;
    }
    CHECK_EQ(rc, 0);
    CHECK_EQ(i, NREC);
    CHECK_EQ(pos, out.len);
    buf_free(&out);
}

static void roundtrip(int *failed_, struct bb_options o)
{
    struct sample s;
    sample_init(&s, 1700000000000);
    struct buf b;
    buf_init(&b);
    bb_build(&b, &o, s.recs, NREC);

    struct records_summary sum;
    const char *why = NULL;
    CHECK_EQ(records_validate(b.data, b.len, &sum, &why), 0);
    CHECK(why == NULL);
    CHECK_EQ(sum.batch_count, 1);
    CHECK_EQ(sum.offset_count, NREC);
    CHECK_EQ(sum.record_count, NREC);
    CHECK_EQ(sum.first_timestamp, s.recs[0].timestamp);
    CHECK_EQ(sum.max_timestamp, sample_max_ts(&s));
    CHECK_EQ(sum.largest_batch, b.len);

    struct batch_header h;
    CHECK_EQ(batch_read_header(b.data, b.len, &h), 0);
    CHECK_EQ(h.magic, 2);
    CHECK_EQ(h.batch_length + BATCH_LOG_OVERHEAD, b.len);
    CHECK_EQ(h.attributes & BATCH_ATTR_CODEC_MASK, o.codec);
    CHECK_EQ(h.records_count, NREC);
    CHECK_EQ(h.last_offset_delta, NREC - 1);
    CHECK_EQ(h.producer_id, -1);
    CHECK_EQ(h.leader_epoch, -1);
    if (o.codec != CODEC_NONE)
        CHECK(b.len < 300 * 1500); /* it really is compressed */
    check_records(failed_, b.data, b.len, &s);

    /* The decompressed output is appended after what the buffer already holds. */
    struct buf out;
    buf_init(&out);
    buf_append(&out, "xyz", 3);
    CHECK_EQ(batch_records_decompress(b.data, b.len, &out), 0);
    CHECK_MEM(out.data, "xyz", 3);
    struct buf plain;
    buf_init(&plain);
    bb_encode_records(&plain, s.recs, NREC, s.recs[0].timestamp);
    CHECK_EQ(out.len, plain.len + 3);
    CHECK(out.len == plain.len + 3 && memcmp(out.data + 3, plain.data, plain.len) == 0);
    buf_free(&plain);
    buf_free(&out);
    buf_free(&b);
    sample_free(&s);
}

TEST(records_batch_roundtrip_none) { roundtrip(failed_, bb_defaults(CODEC_NONE)); }
TEST(records_batch_roundtrip_gzip) { roundtrip(failed_, bb_defaults(CODEC_GZIP)); }
TEST(records_batch_roundtrip_snappy_raw) { roundtrip(failed_, bb_defaults(CODEC_SNAPPY)); }
TEST(records_batch_roundtrip_snappy_xerial)
{
    struct bb_options o = bb_defaults(CODEC_SNAPPY);
    o.snappy_xerial = true;
    roundtrip(failed_, o);
}
TEST(records_batch_roundtrip_lz4) { roundtrip(failed_, bb_defaults(CODEC_LZ4)); }
TEST(records_batch_roundtrip_zstd) { roundtrip(failed_, bb_defaults(CODEC_ZSTD)); }
TEST(records_batch_roundtrip_zstd_unknown_size)
{
    struct bb_options o = bb_defaults(CODEC_ZSTD);
    o.zstd_unknown_size = true;
    roundtrip(failed_, o);
}

TEST(records_batch_gzip_concatenated_members)
{
    /* Two gzip members back to back decompress as one stream (Java's GZIPInputStream does). */
    struct buf plain, b;
    buf_init(&plain);
    buf_init(&b);
    struct bb_record recs[4] = {
        {"a", 1, "one", 3, 100, 0, NULL}, {"b", 1, "two", 3, 101, 0, NULL},
        {"c", 1, "three", 5, 102, 0, NULL}, {"d", 1, "four", 4, 103, 0, NULL},
    };
    bb_encode_records(&plain, recs, 4, 100);
    struct bb_options o = bb_defaults(CODEC_GZIP);
    bb_build(&b, &o, recs, 4);
    b.len = BATCH_HEADER_SIZE;
    size_t half = plain.len / 2;
    bb_compress(&b, &o, plain.data, half);
    bb_compress(&b, &o, plain.data + half, plain.len - half);
    be32_put(b.data + 8, (uint32_t)(b.len - BATCH_LOG_OVERHEAD));
    bb_fix_crc(b.data);
    CHECK_EQ(records_validate(b.data, b.len, NULL, NULL), 0);
    struct buf out;
    buf_init(&out);
    CHECK_EQ(batch_records_decompress(b.data, b.len, &out), 0);
    CHECK_EQ(out.len, plain.len);
    CHECK(out.len == plain.len && memcmp(out.data, plain.data, plain.len) == 0);
    buf_free(&out);
    buf_free(&plain);
    buf_free(&b);
}

TEST(records_validate_several_batches)
{
    struct buf b;
    buf_init(&b);
    bb_build_simple(&b, CODEC_NONE, 3, 1000, 1);
    size_t second = bb_build_simple(&b, CODEC_ZSTD, 10, 900, 5);
    bb_build_simple(&b, CODEC_LZ4, 1, 2000, 0);
    size_t second_len = be32_get(b.data + second + 8) + BATCH_LOG_OVERHEAD;
    struct records_summary s;
    CHECK_EQ(records_validate(b.data, b.len, &s, NULL), 0);
    CHECK_EQ(s.batch_count, 3);
    CHECK_EQ(s.offset_count, 14);
    CHECK_EQ(s.record_count, 14);
    CHECK_EQ(s.first_timestamp, 1000);
    CHECK_EQ(s.max_timestamp, 2000);
    CHECK_EQ(s.largest_batch, second_len);

    /* A trailing partial batch is an error, wherever it stops. */
    for (size_t cut = 1; cut < 80; cut++)
        CHECK_EQ(records_validate(b.data, b.len - cut, NULL, NULL), KERR_CORRUPT_MESSAGE);
    /* So is a trailing byte. */
    buf_put_i8(&b, 0);
    CHECK_EQ(records_validate(b.data, b.len, NULL, NULL), KERR_CORRUPT_MESSAGE);
    buf_free(&b);
}

/* Validates b after edit() changed it (with the CRC recomputed when fix_crc). */
static int validate_edited(const struct buf *orig, void (*edit)(uint8_t *p, size_t *len), int fix_crc,
                           const char **why)
{
    struct buf b;
    buf_init(&b);
    buf_append(&b, orig->data, orig->len);
    buf_reserve(&b, 64);
    edit(b.data, &b.len);
    if (fix_crc)
        bb_fix_crc(b.data);
    *why = NULL;
    int rc = records_validate(b.data, b.len, NULL, why);
    buf_free(&b);
    return rc;
}

static void flip_crc(uint8_t *p, size_t *len) { (void)len; p[18] ^= 1; }
static void flip_payload(uint8_t *p, size_t *len) { p[*len - 3] ^= 0x40; }
static void flip_producer_id(uint8_t *p, size_t *len) { (void)len; p[45] ^= 1; }
static void magic1(uint8_t *p, size_t *len) { (void)len; p[16] = 1; }
static void magic0(uint8_t *p, size_t *len) { (void)len; p[16] = 0; }
static void magic3(uint8_t *p, size_t *len) { (void)len; p[16] = 3; }
static void length_too_big(uint8_t *p, size_t *len) { be32_put(p + 8, (uint32_t)(*len - 12 + 1)); }
static void length_too_small(uint8_t *p, size_t *len) { (void)len; be32_put(p + 8, 48); }
static void length_negative(uint8_t *p, size_t *len) { (void)len; be32_put(p + 8, 0x80000000u); }
static void count_plus_one(uint8_t *p, size_t *len) { (void)len; be32_put(p + 57, be32_get(p + 57) + 1); }
static void both_counts_plus_one(uint8_t *p, size_t *len)
{
    (void)len;
    be32_put(p + 57, be32_get(p + 57) + 1);
    be32_put(p + 23, be32_get(p + 23) + 1);
}
static void delta_minus_one(uint8_t *p, size_t *len) { (void)len; be32_put(p + 23, be32_get(p + 23) - 1); }
static void zero_records(uint8_t *p, size_t *len)
{
    (void)len;
    be32_put(p + 57, 0);
    be32_put(p + 23, 0);
}
static void codec_7(uint8_t *p, size_t *len) { (void)len; p[22] |= 7; }
/* The first record claims one byte more than it has (a zig-zag varint: +2). */
static void record_length_plus_one(uint8_t *p, size_t *len) { (void)len; p[61] += 2; }
/* Appends a byte inside the batch (after the last record) and grows batchLength to cover it. */
static void garbage_after_records(uint8_t *p, size_t *len)
{
    p[*len] = 0;
    (*len)++;
    be32_put(p + 8, be32_get(p + 8) + 1);
}
/* Cuts the last byte of the batch and shrinks batchLength, so the last record is short. */
static void short_last_record(uint8_t *p, size_t *len)
{
    (*len)--;
    be32_put(p + 8, be32_get(p + 8) - 1);
}

TEST(records_validate_errors)
{
    struct buf b;
    buf_init(&b);
    bb_build_simple(&b, CODEC_NONE, 5, 1000, 1);
    const char *why;
    CHECK_EQ(validate_edited(&b, flip_crc, 0, &why), KERR_CORRUPT_MESSAGE);
    CHECK(why && strstr(why, "CRC"));
    CHECK_EQ(validate_edited(&b, flip_payload, 0, &why), KERR_CORRUPT_MESSAGE);
    CHECK_EQ(validate_edited(&b, flip_producer_id, 0, &why), KERR_CORRUPT_MESSAGE);
    CHECK_EQ(validate_edited(&b, magic1, 0, &why), KERR_UNSUPPORTED_FOR_MESSAGE_FORMAT);
    CHECK_EQ(validate_edited(&b, magic0, 0, &why), KERR_UNSUPPORTED_FOR_MESSAGE_FORMAT);
    CHECK_EQ(validate_edited(&b, magic3, 1, &why), KERR_CORRUPT_MESSAGE);
    CHECK(why && strstr(why, "magic"));
    CHECK_EQ(validate_edited(&b, length_too_big, 0, &why), KERR_CORRUPT_MESSAGE);
    CHECK_EQ(validate_edited(&b, length_too_small, 0, &why), KERR_CORRUPT_MESSAGE);
    CHECK_EQ(validate_edited(&b, length_negative, 0, &why), KERR_CORRUPT_MESSAGE);
    CHECK_EQ(validate_edited(&b, count_plus_one, 1, &why), KERR_INVALID_RECORD);
    CHECK_EQ(validate_edited(&b, both_counts_plus_one, 1, &why), KERR_INVALID_RECORD);
    CHECK(why && strstr(why, "recordsCount does not match"));
    CHECK_EQ(validate_edited(&b, delta_minus_one, 1, &why), KERR_INVALID_RECORD);
    CHECK_EQ(validate_edited(&b, zero_records, 1, &why), KERR_INVALID_RECORD);
    CHECK_EQ(validate_edited(&b, codec_7, 1, &why), KERR_CORRUPT_MESSAGE);
    CHECK_EQ(validate_edited(&b, record_length_plus_one, 1, &why), KERR_CORRUPT_MESSAGE);
    CHECK(why && strstr(why, "malformed record"));
    CHECK_EQ(validate_edited(&b, garbage_after_records, 1, &why), KERR_CORRUPT_MESSAGE);
    CHECK_EQ(validate_edited(&b, short_last_record, 1, &why), KERR_CORRUPT_MESSAGE);
    /* Control: the edit helpers leave a valid batch valid. */
    CHECK_EQ(validate_edited(&b, flip_producer_id, 1, &why), 0);

    /* Empty input and every truncation. */
    CHECK_EQ(records_validate(b.data, 0, NULL, &why), KERR_CORRUPT_MESSAGE);
    for (size_t n = 1; n < b.len; n++)
        CHECK_EQ(records_validate(b.data, n, NULL, NULL), KERR_CORRUPT_MESSAGE);

    /* A v0/v1 message set is recognised even when shorter than a v2 header. */
    uint8_t v1[26] = {0};
    v1[11] = 14;
    v1[16] = 1;
    CHECK_EQ(records_validate(v1, sizeof(v1), NULL, NULL), KERR_UNSUPPORTED_FOR_MESSAGE_FORMAT);

    /* A compressed batch whose counts disagree is refused too, as Kafka does. */
    struct buf z;
    buf_init(&z);
    bb_build_simple(&z, CODEC_ZSTD, 5, 1000, 1);
    CHECK_EQ(validate_edited(&z, delta_minus_one, 1, &why), KERR_INVALID_RECORD);
    CHECK_EQ(validate_edited(&z, flip_payload, 0, &why), KERR_CORRUPT_MESSAGE);
    buf_free(&z);
    buf_free(&b);
}

/* Drops the last `cut` bytes of the compressed data and fixes batchLength and CRC. */
static void truncate_batch(struct buf *b, size_t cut)
{
    b->len -= cut;
    be32_put(b->data + 8, (uint32_t)(b->len - BATCH_LOG_OVERHEAD));
    bb_fix_crc(b->data);
}

TEST(records_batch_decompress_corrupt)
{
    struct bb_options variants[] = {bb_defaults(CODEC_GZIP), bb_defaults(CODEC_SNAPPY), bb_defaults(CODEC_SNAPPY),
                                    bb_defaults(CODEC_LZ4), bb_defaults(CODEC_ZSTD)};
    variants[2].snappy_xerial = true;
    struct sample s;
    sample_init(&s, 5000);
    for (size_t v = 0; v < sizeof(variants) / sizeof(variants[0]); v++) {
        struct buf b, out;
        buf_init(&b);
        buf_init(&out);
        bb_build(&b, &variants[v], s.recs, 40);
        size_t full = b.len;
        for (size_t cut = 1; cut < 40; cut += 3) {
            b.len = full;
            truncate_batch(&b, cut);
            /* The CRC is right, the compressed data is not. */
            CHECK_EQ(records_validate(b.data, b.len, NULL, NULL), KERR_CORRUPT_MESSAGE);
            out.len = 7; /* keeps what was there */
            CHECK_EQ(batch_records_decompress(b.data, b.len, &out), -1);
            CHECK_EQ(out.len, 7);
        }
        /* Garbage instead of compressed data (snappy has no checksum: skip it here). */
        if (variants[v].codec != CODEC_SNAPPY) {
            b.len = full;
            for (size_t i = BATCH_HEADER_SIZE; i < b.len; i++)
                b.data[i] = (uint8_t)rnd();
            be32_put(b.data + 8, (uint32_t)(b.len - BATCH_LOG_OVERHEAD));
            bb_fix_crc(b.data);
            CHECK_EQ(batch_records_decompress(b.data, b.len, &out), -1);
            CHECK_EQ(batch_find_timestamp(b.data, b.len, 0), -1);
            CHECK_EQ(records_validate(b.data, b.len, NULL, NULL), KERR_CORRUPT_MESSAGE);
        }
        buf_free(&b);
        buf_free(&out);
    }
    /* xerial framing with a partial block header at the end. */
    struct buf x, xo;
    buf_init(&x);
    buf_init(&xo);
    struct bb_options xerial = bb_defaults(CODEC_SNAPPY);
    xerial.snappy_xerial = true;
    bb_build(&x, &xerial, s.recs, 10);
    CHECK_EQ(batch_records_decompress(x.data, x.len, &xo), 0);
    buf_put_i16(&x, 0);
    be32_put(x.data + 8, (uint32_t)(x.len - BATCH_LOG_OVERHEAD));
    bb_fix_crc(x.data);
    buf_reset(&xo);
    CHECK_EQ(batch_records_decompress(x.data, x.len, &xo), -1);
    buf_free(&x);
    buf_free(&xo);

    /* The wrong codec for the data. */
    struct buf b, out;
    buf_init(&b);
    buf_init(&out);
    bb_build_simple(&b, CODEC_ZSTD, 20, 0, 1);
    b.data[22] = (uint8_t)((b.data[22] & ~7) | CODEC_LZ4);
    bb_fix_crc(b.data);
    CHECK_EQ(batch_records_decompress(b.data, b.len, &out), -1);
    b.data[22] = (uint8_t)((b.data[22] & ~7) | 6); /* no such codec */
    CHECK_EQ(batch_records_decompress(b.data, b.len, &out), -1);
    CHECK_EQ(out.len, 0);
    /* A header that claims more bytes than given. */
    CHECK_EQ(batch_records_decompress(b.data, b.len - 1, &out), -1);
    CHECK_EQ(batch_records_decompress(b.data, 30, &out), -1);
    buf_free(&b);
    buf_free(&out);
    sample_free(&s);
}

/* A batch whose records section is `size` zero bytes (a multiple of 1 MiB) compressed with codec:
 * a zip bomb. */
static void build_bomb(struct buf *b, enum batch_codec codec, size_t size)
{
    buf_reset(b);
    buf_extend(b, BATCH_HEADER_SIZE);
    memset(b->data, 0, BATCH_HEADER_SIZE);
    b->data[16] = 2;
    be16_put(b->data + 21, codec);
    be32_put(b->data + 57, 1);
    static uint8_t zeros[1 << 20];
    if (codec == CODEC_ZSTD) {
        ZSTD_CCtx *c = ZSTD_createCCtx();
        ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 0);
        uint8_t tmp[1 << 16];
        for (size_t done = 0; done <= size; done += sizeof(zeros)) {
            int last = done + sizeof(zeros) > size;
            ZSTD_inBuffer in = {zeros, last ? size - done : sizeof(zeros), 0};
            size_t left;
            do {
                ZSTD_outBuffer o = {tmp, sizeof(tmp), 0};
                left = ZSTD_compressStream2(c, &o, &in, last ? ZSTD_e_end : ZSTD_e_continue);
                buf_append(b, tmp, o.pos);
            } while (last ? left != 0 : in.pos < in.size);
            if (last)
                break;
        }
        ZSTD_freeCCtx(c);
    } else {
        /* gzip: one member of 1 MiB of zeros, repeated (members concatenate) - compressing
         * 300 MiB with deflate would take seconds. */
        struct buf member;
        buf_init(&member);
        struct bb_options o = bb_defaults(CODEC_GZIP);
        bb_compress(&member, &o, zeros, sizeof(zeros));
        for (size_t done = 0; done < size; done += sizeof(zeros))
            buf_append(b, member.data, member.len);
        buf_free(&member);
    }
    be32_put(b->data + 8, (uint32_t)(b->len - BATCH_LOG_OVERHEAD));
    bb_fix_crc(b->data);
}

TEST(records_batch_decompress_bomb_is_capped)
{
    struct buf b, out;
    buf_init(&b);
    buf_init(&out);
    enum batch_codec codecs[] = {CODEC_ZSTD, CODEC_GZIP};
    for (int i = 0; i < 2; i++) {
        build_bomb(&b, codecs[i], (size_t)300 << 20);
        if (b.len >= (1 << 20))
            fprintf(stderr, "  bomb of codec %d is %zu bytes\n", codecs[i], b.len);
        CHECK(b.len < (1 << 20));
        CHECK_EQ(batch_records_decompress(b.data, b.len, &out), -1);
        CHECK_EQ(out.len, 0);
        /* Just under the cap is fine: the limit is on output, not on ratio. */
        build_bomb(&b, codecs[i], (size_t)1 << 20);
        CHECK_EQ(batch_records_decompress(b.data, b.len, &out), 0);
        CHECK_EQ(out.len, 1 << 20);
        buf_free(&out);
    }
    buf_free(&b);
}

TEST(records_record_next_malformed)
{
    struct record_view r;
    size_t pos;
    /* A minimal valid record: length 6, attrs, ts 0, offset 0, null key, null value, 0 headers. */
    uint8_t ok[] = {12, 0, 0, 0, 1, 1, 0};
    pos = 0;
    CHECK_EQ(record_next(ok, sizeof(ok), &pos, &r), 1);
    CHECK_EQ(r.key_len, -1);
    CHECK_EQ(r.value_len, -1);
    CHECK_EQ(pos, sizeof(ok));
    CHECK_EQ(record_next(ok, sizeof(ok), &pos, &r), 0);
    /* Every truncation fails. */
    for (size_t n = 1; n < sizeof(ok); n++) {
        pos = 0;
        CHECK_EQ(record_next(ok, n, &pos, &r), -1);
    }
    uint8_t neg_len[] = {1};                           /* length -1 */
    uint8_t zero_len[] = {0};                          /* length 0: no attributes byte */
    uint8_t key_minus2[] = {12, 0, 0, 0, 3, 1, 0};     /* key length -2 */
    uint8_t key_too_long[] = {12, 0, 0, 0, 8, 1, 0};   /* key length 4 inside a 6-byte record */
    uint8_t neg_headers[] = {12, 0, 0, 0, 1, 1, 1};    /* header count -1 */
    uint8_t null_hdr_key[] = {16, 0, 0, 0, 1, 1, 2, 1, 1}; /* header with a null key */
    uint8_t huge_headers[] = {20, 0, 0, 0, 1, 1, 0xfe, 0xff, 0xff, 0xff, 0x0f}; /* 2^31-1 headers */
    uint8_t long_varint[] = {24, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0};
    uint8_t trailing[] = {14, 0, 0, 0, 1, 1, 0, 9};    /* record says 7, parses 6 */
    struct {
        const uint8_t *p;
        size_t n;
    } bad[] = {{neg_len, sizeof(neg_len)},           {zero_len, sizeof(zero_len)},
               {key_minus2, sizeof(key_minus2)},     {key_too_long, sizeof(key_too_long)},
               {neg_headers, sizeof(neg_headers)},   {null_hdr_key, sizeof(null_hdr_key)},
               {huge_headers, sizeof(huge_headers)}, {long_varint, sizeof(long_varint)},
               {trailing, sizeof(trailing)}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        pos = 0;
        int rc = record_next(bad[i].p, bad[i].n, &pos, &r);
        if (rc != -1)
            fprintf(stderr, "  malformed record %zu accepted\n", i);
        CHECK_EQ(rc, -1);
        CHECK_EQ(pos, 0);
    }
    /* A record with a header whose value is null is fine. */
    uint8_t hdr_null_value[] = {18, 0, 0, 0, 1, 1, 2, 2, 'k', 1};
    pos = 0;
    CHECK_EQ(record_next(hdr_null_value, sizeof(hdr_null_value), &pos, &r), 1);
    CHECK_EQ(r.header_count, 1);
    CHECK_EQ(pos, sizeof(hdr_null_value));
}

TEST(records_batch_find_timestamp)
{
    enum batch_codec codecs[] = {CODEC_NONE, CODEC_GZIP, CODEC_SNAPPY, CODEC_LZ4, CODEC_ZSTD};
    for (int c = 0; c < 5; c++) {
        struct buf b;
        buf_init(&b);
        bb_build_simple(&b, codecs[c], 10, 1000, 10); /* timestamps 1000, 1010, .. 1090 */
        CHECK_EQ(batch_find_timestamp(b.data, b.len, 0), 0);
        CHECK_EQ(batch_find_timestamp(b.data, b.len, 1000), 0);
        CHECK_EQ(batch_find_timestamp(b.data, b.len, 1001), 1);
        CHECK_EQ(batch_find_timestamp(b.data, b.len, 1050), 5);
        CHECK_EQ(batch_find_timestamp(b.data, b.len, 1089), 9);
        CHECK_EQ(batch_find_timestamp(b.data, b.len, 1090), 9);
        CHECK_EQ(batch_find_timestamp(b.data, b.len, 1091), -1);
        CHECK_EQ(batch_find_timestamp(b.data, 40, 0), -1);
        buf_free(&b);
    }
    /* Out-of-order timestamps: the first record (in offset order) at or after ts. */
    struct bb_record recs[4] = {
        {"a", 1, "1", 1, 500, 0, NULL}, {"b", 1, "2", 1, 900, 0, NULL},
        {"c", 1, "3", 1, 700, 0, NULL}, {"d", 1, "4", 1, 950, 0, NULL},
    };
    struct bb_options o = bb_defaults(CODEC_NONE);
    struct buf b;
    buf_init(&b);
    bb_build(&b, &o, recs, 4);
    CHECK_EQ(batch_find_timestamp(b.data, b.len, 600), 1);
    CHECK_EQ(batch_find_timestamp(b.data, b.len, 920), 3);
    /* LogAppendTime: every record has the batch's time. */
    batch_set_log_append_time(b.data, 2000);
    CHECK_EQ(batch_find_timestamp(b.data, b.len, 1999), 0);
    CHECK_EQ(batch_find_timestamp(b.data, b.len, 2000), 0);
    CHECK_EQ(batch_find_timestamp(b.data, b.len, 2001), -1);
    buf_free(&b);
}

TEST(records_batch_log_append_time_rewrite)
{
    enum batch_codec codecs[] = {CODEC_NONE, CODEC_LZ4};
    for (int c = 0; c < 2; c++) {
        struct buf b;
        buf_init(&b);
        bb_build_simple(&b, codecs[c], 7, 1000, 3);
        bb_build_simple(&b, codecs[c], 2, 5000, 3);
        uint32_t old_crc = be32_get(b.data + 17);
        batch_set_log_append_time(b.data, 123456789);
        struct batch_header h;
        CHECK_EQ(batch_read_header(b.data, b.len, &h), 0);
        CHECK(h.attributes & BATCH_ATTR_LOG_APPEND_TIME);
        CHECK_EQ(h.attributes & BATCH_ATTR_CODEC_MASK, codecs[c]);
        CHECK_EQ(h.max_timestamp, 123456789);
        CHECK_EQ(h.base_timestamp, 1000);
        CHECK(h.crc != old_crc);
        struct records_summary s;
        CHECK_EQ(records_validate(b.data, b.len, &s, NULL), 0);
        CHECK_EQ(s.max_timestamp, 123456789);
        /* baseOffset and partitionLeaderEpoch sit outside the CRC. */
        batch_set_base_offset(b.data, 1234567890123);
        be32_put(b.data + 12, 7);
        CHECK_EQ(records_validate(b.data, b.len, NULL, NULL), 0);
        CHECK_EQ(batch_read_header(b.data, b.len, &h), 0);
        CHECK_EQ(h.base_offset, 1234567890123);
        /* Rewriting the second batch at its own position works the same. */
        size_t second = (size_t)be32_get(b.data + 8) + BATCH_LOG_OVERHEAD;
        batch_set_log_append_time(b.data + second, 99);
        CHECK_EQ(records_validate(b.data, b.len, &s, NULL), 0);
        CHECK_EQ(s.max_timestamp, 123456789);
        buf_free(&b);
    }
}

/* Random mutations of real batches (CRC fixed half the time): whatever validate says must hold
 * when the records are read back, and nothing may crash (ASan/UBSan run these). */
TEST(records_batch_mutations_never_crash)
{
    enum batch_codec codecs[] = {CODEC_NONE, CODEC_GZIP, CODEC_SNAPPY, CODEC_LZ4, CODEC_ZSTD};
    int accepted = 0;
    for (int c = 0; c < 5; c++) {
        struct buf orig;
        buf_init(&orig);
        bb_build_simple(&orig, codecs[c], 6, 1000, 1);
        for (int iter = 0; iter < 3000; iter++) {
            struct buf b, out;
            buf_init(&b);
            buf_init(&out);
            buf_append(&b, orig.data, orig.len);
            int nmut = 1 + (int)(rnd() % 3);
            for (int m = 0; m < nmut; m++) {
                size_t at = BATCH_HEADER_SIZE + rnd() % (b.len - BATCH_HEADER_SIZE);
                if (rnd() % 8 == 0)
                    at = 21 + rnd() % 40; /* the header too, sometimes */
                b.data[at] = (uint8_t)rnd();
            }
            if (rnd() % 4 == 0)
                b.len -= 1 + rnd() % 10;
            if (rnd() % 2) {
                be32_put(b.data + 8, (uint32_t)(b.len - BATCH_LOG_OVERHEAD));
                bb_fix_crc(b.data);
            }
            struct records_summary s;
            int rc = records_validate(b.data, b.len, &s, NULL);
            if (rc == 0 && codecs[c] == CODEC_NONE && (b.data[22] & 7) == 0) {
                accepted++;
                size_t pos = 0;
                struct record_view r;
                int64_t n = 0;
                while (record_next(b.data + BATCH_HEADER_SIZE, b.len - BATCH_HEADER_SIZE, &pos, &r) == 1)
                    n++;
                CHECK_EQ(n, s.record_count);
                CHECK_EQ(pos, b.len - BATCH_HEADER_SIZE);
            }
            if (batch_records_decompress(b.data, b.len, &out) == 0) {
                size_t pos = 0;
                struct record_view r;
                while (record_next(out.data, out.len, &pos, &r) == 1)
                    CHECK(pos <= out.len);
            }
            batch_find_timestamp(b.data, b.len, 1003);
            buf_free(&b);
            buf_free(&out);
        }
        buf_free(&orig);
    }
    CHECK(accepted > 0); /* some mutations (e.g. of values) leave a valid batch */
}

/* ---- what validation looks at inside a batch, for every codec ---- */

/* Every way a producer writes the records section. */
static const struct bb_options *codec_variants(size_t *n, bool with_none)
{
    static struct bb_options v[7];
    v[0] = bb_defaults(CODEC_NONE);
    v[1] = bb_defaults(CODEC_GZIP);
    v[2] = bb_defaults(CODEC_SNAPPY);
    v[3] = bb_defaults(CODEC_SNAPPY);
    v[3].snappy_xerial = true;
    v[4] = bb_defaults(CODEC_LZ4);
    v[5] = bb_defaults(CODEC_ZSTD);
    v[6] = bb_defaults(CODEC_ZSTD);
    v[6].zstd_unknown_size = true;
    *n = with_none ? 7 : 6;
    return with_none ? v : v + 1;
}

static const char *variant_name(const struct bb_options *o)
{
    static const char *names[] = {"none", "gzip", "snappy", "lz4", "zstd"};
    if (o->codec == CODEC_SNAPPY && o->snappy_xerial)
        return "snappy (xerial)";
    if (o->codec == CODEC_ZSTD && o->zstd_unknown_size)
        return "zstd (no content size)";
    return names[o->codec];
}

/* Five small records "k<i>"/"v<i>" at timestamps 1000 + i. */
static void five_records(struct bb_record r[5])
{
    static const char *keys[] = {"k0", "k1", "k2", "k3", "k4"}, *vals[] = {"v0", "v1", "v2", "v3", "v4"};
    for (int i = 0; i < 5; i++)
        r[i] = (struct bb_record){keys[i], 2, vals[i], 2, 1000 + i, 0, NULL};
}

/* Validates one batch built from a records section (compressed with o's codec) and header counts. */
static int validate_section(const struct bb_options *o, const uint8_t *plain, size_t len, int32_t count,
                            int32_t last_delta, int64_t base_ts, const char **why)
{
    struct buf b;
    buf_init(&b);
    bb_build_section(&b, o, plain, len, count, last_delta, base_ts, base_ts + 10);
    *why = NULL;
    int rc = records_validate(b.data, b.len, NULL, why);
    buf_free(&b);
    return rc;
}

/* Reports which codec a failed check was about. */
#define CHECK_RC(o, got, want, why)                                                                  \
    do {                                                                                             \
        int got_ = (got);                                                                            \
        if (got_ != (want))                                                                          \
            fprintf(stderr, "  %s: got %d (%s), want %d\n", variant_name(o), got_, (why) ? (why) : "-", \
                    (want));                                                                         \
        CHECK_EQ(got_, (want));                                                                      \
    } while (0)

/* What a call costs: wall time, and (under ASan) the most heap it held at once. */
#if defined(__SANITIZE_ADDRESS__)
/* From the sanitizer runtime (gcc ships no header for them). */
int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void *, size_t),
                                              void (*free_hook)(const volatile void *));
size_t __sanitizer_get_allocated_size(const volatile void *p);
static bool mem_counting;
static int64_t mem_now, mem_peak;
static void on_malloc(const volatile void *p, size_t n)
{
    (void)p;
    if (mem_counting && (mem_now += (int64_t)n) > mem_peak)
        mem_peak = mem_now;
}
static void on_free(const volatile void *p)
{
    if (mem_counting && p)
        mem_now -= (int64_t)__sanitizer_get_allocated_size(p);
}
static void mem_start(void)
{
    static bool hooked;
    if (!hooked)
        hooked = __sanitizer_install_malloc_and_free_hooks(on_malloc, on_free) != 0;
    mem_now = mem_peak = 0;
    mem_counting = hooked;
}
static int64_t mem_stop(void)
{
    bool was = mem_counting;
    mem_counting = false;
    return was ? mem_peak : -1;
}
#else
static void mem_start(void) {}
static int64_t mem_stop(void) { return -1; }
#endif

struct cost {
    double ms;
    int64_t peak; /* bytes, -1: not measured */
};

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int validate_costed(const struct buf *b, const char **why, struct cost *c)
{
    *why = NULL;
    double t0 = now_ms();
    mem_start();
    int rc = records_validate(b->data, b->len, NULL, why);
    c->peak = mem_stop();
    c->ms = now_ms() - t0;
    return rc;
}

/* A peak of at most `limit` bytes (when it could be measured). */
#define CHECK_PEAK(c, limit)                                                                         \
    do {                                                                                             \
        if ((c).peak > (int64_t)(limit))                                                             \
            fprintf(stderr, "  held %lld bytes at once, limit %lld\n", (long long)(c).peak, (long long)(limit)); \
        CHECK((c).peak <= (int64_t)(limit));                                                         \
    } while (0)

TEST(records_validate_garbage_inside_compressed)
{
    size_t nv;
    const struct bb_options *v = codec_variants(&nv, false);
    uint8_t junk[2000];
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (uint8_t)rnd();
    for (size_t i = 0; i < nv; i++) {
        const char *why;
        /* Well-compressed garbage: the codec is happy, the records are not. */
        CHECK_RC(&v[i], validate_section(&v[i], junk, sizeof(junk), 5, 4, 1000, &why), KERR_CORRUPT_MESSAGE, why);
        /* Garbage where the compressed data should be, CRC recomputed. */
        struct buf b;
        buf_init(&b);
        struct bb_record r[5];
        five_records(r);
        bb_build(&b, &v[i], r, 5);
        for (int round = 0; round < 20; round++) {
            size_t from = BATCH_HEADER_SIZE + (v[i].snappy_xerial ? 16 : 0) + (size_t)round % 3;
            for (size_t k = from; k < b.len; k++)
                b.data[k] = (uint8_t)rnd();
            bb_fix_crc(b.data);
            why = NULL;
            CHECK_RC(&v[i], records_validate(b.data, b.len, NULL, &why), KERR_CORRUPT_MESSAGE, why);
        }
        buf_free(&b);
    }
}

/* Claims of 2^31-1 records (and of a million, which might fit) cost nothing to refuse. */
TEST(records_validate_huge_record_count)
{
    enum batch_codec codecs[] = {CODEC_ZSTD, CODEC_GZIP, CODEC_NONE};
    struct bb_record r[5];
    five_records(r);
    struct buf plain;
    buf_init(&plain);
    bb_encode_records(&plain, r, 5, 1000);
    int32_t claims[] = {INT32_MAX, 1000000};
    for (int c = 0; c < 3; c++) {
        for (int k = 0; k < 2; k++) {
            struct bb_options o = bb_defaults(codecs[c]);
            struct buf b;
            buf_init(&b);
            bb_build_section(&b, &o, plain.data, plain.len, claims[k], claims[k] - 1, 1000, 1004);
            const char *why;
            struct cost cost;
            CHECK_RC(&o, validate_costed(&b, &why, &cost), KERR_INVALID_RECORD, why);
            CHECK(why && strstr(why, "recordsCount does not match"));
            if (getenv("SLUICE_TEST_COSTS"))
                fprintf(stderr, "  %s claiming %d: %.2f ms, %lld bytes held\n", variant_name(&o), claims[k], cost.ms,
                        (long long)cost.peak);
            CHECK(cost.ms < 100);
            CHECK_PEAK(cost, 512 << 10);
            buf_free(&b);
        }
    }
    buf_free(&plain);
}

/* Records that really are there, 1 MiB of zeros each: a few KiB that expand past the cap. */
TEST(records_validate_bombs)
{
    enum { N = 65 };
    uint8_t *zeros = calloc(1, 1 << 20);
    struct bb_record r[N];
    for (int i = 0; i < N; i++)
        r[i] = (struct bb_record){"k", 1, zeros, 1 << 20, 1000, 0, NULL};
    size_t nv;
    const struct bb_options *v = codec_variants(&nv, false);
    for (size_t i = 0; i < nv; i++) {
        struct buf b, out;
        buf_init(&b);
        buf_init(&out);
        bb_build(&b, &v[i], r, N);
        if (b.len > (8 << 20))
            fprintf(stderr, "  %s bomb is %zu bytes\n", variant_name(&v[i]), b.len);
        CHECK(b.len < (8 << 20)); /* 65 MiB of records in at most a few MiB */
        const char *why;
        struct cost cost;
        CHECK_RC(&v[i], validate_costed(&b, &why, &cost), KERR_CORRUPT_MESSAGE, why);
        if (!why || !strstr(why, "64 MiB"))
            fprintf(stderr, "  %s bomb: %s\n", variant_name(&v[i]), why ? why : "-");
        CHECK(why && strstr(why, "64 MiB"));
        if (cost.ms > 2000 || getenv("SLUICE_TEST_COSTS"))
            fprintf(stderr, "  %s bomb: %.1f ms, %lld bytes held\n", variant_name(&v[i]), cost.ms,
                    (long long)cost.peak);
        CHECK(cost.ms < 2000); /* under ASan; a decompressed 64 MiB at most */
        /* A fixed window: the codec's state and at most a snappy block, never the records. */
        CHECK_PEAK(cost, 4 << 20);
        CHECK_EQ(batch_records_decompress(b.data, b.len, &out), -1);
        CHECK_EQ(out.len, 0);
        buf_free(&b);
        buf_free(&out);
    }
    /* Under the cap is fine, whatever the ratio. */
    struct bb_options z = bb_defaults(CODEC_ZSTD);
    struct buf b;
    buf_init(&b);
    bb_build(&b, &z, r, 60);
    const char *why;
    struct cost cost;
    CHECK_EQ(validate_costed(&b, &why, &cost), 0);
    CHECK_PEAK(cost, 4 << 20);

    /* zstd's history is the window its frame declares: up to 2^27 is accepted, as Kafka's own
     * consumer does (levels 20-22 of streaming compressors); beyond, refused before decoding. */
    z.zstd_unknown_size = true;
    z.zstd_window_log = 27;
    buf_reset(&b);
    bb_build(&b, &z, r, N);
    CHECK_EQ(validate_costed(&b, &why, &cost), KERR_CORRUPT_MESSAGE);
    CHECK(why && strstr(why, "64 MiB"));
    CHECK(cost.ms < 2000);
    CHECK_PEAK(cost, (128 + 4) << 20);
    if (getenv("SLUICE_TEST_COSTS"))
        fprintf(stderr, "  zstd bomb, window 2^27: %.1f ms, %lld bytes held\n", cost.ms, (long long)cost.peak);
    /* The same frame declaring 2^28 (its Window_Descriptor: exponent 18, after magic and the
     * frame header descriptor). */
    CHECK_EQ(b.data[BATCH_HEADER_SIZE + 4] & 0x20, 0); /* not single-segment: the descriptor is there */
    CHECK_EQ(b.data[BATCH_HEADER_SIZE + 5] >> 3, 27 - 10);
    b.data[BATCH_HEADER_SIZE + 5] = (28 - 10) << 3;
    bb_fix_crc(b.data);
    CHECK_EQ(validate_costed(&b, &why, &cost), KERR_CORRUPT_MESSAGE);
    CHECK(why && strstr(why, "window"));
    CHECK_PEAK(cost, 1 << 20);
    buf_free(&b);
    free(zeros);
}

TEST(records_validate_offset_deltas)
{
    static const int32_t wrong[][5] = {
        {0, 1, 1, 3, 4}, {1, 2, 3, 4, 5}, {0, 2, 1, 3, 4}, {0, 1, 2, 3, 5}, {0, 1, 2, 3, -1}, {0, 0, 0, 0, 0},
    };
    struct bb_record r[5];
    five_records(r);
    size_t nv;
    const struct bb_options *v = codec_variants(&nv, true);
    for (size_t i = 0; i < nv; i++) {
        for (size_t w = 0; w < sizeof(wrong) / sizeof(wrong[0]); w++) {
            struct buf plain;
            buf_init(&plain);
            bb_encode_records_deltas(&plain, r, 5, 1000, wrong[w]);
            const char *why;
            CHECK_RC(&v[i], validate_section(&v[i], plain.data, plain.len, 5, 4, 1000, &why), KERR_INVALID_RECORD,
                     why);
            CHECK(why && strstr(why, "offset deltas"));
            buf_free(&plain);
        }
        /* Control: the same records numbered 0..4 are fine. */
        struct buf plain;
        buf_init(&plain);
        bb_encode_records(&plain, r, 5, 1000);
        const char *why;
        CHECK_RC(&v[i], validate_section(&v[i], plain.data, plain.len, 5, 4, 1000, &why), 0, why);
        buf_free(&plain);
    }
}

TEST(records_validate_count_mismatch_compressed)
{
    struct bb_record r[5];
    five_records(r);
    struct buf plain;
    buf_init(&plain);
    bb_encode_records(&plain, r, 5, 1000);
    size_t nv;
    const struct bb_options *v = codec_variants(&nv, true);
    for (size_t i = 0; i < nv; i++) {
        const char *why;
        /* Header consistent with itself, not with the records: one more, one fewer, many more. */
        CHECK_RC(&v[i], validate_section(&v[i], plain.data, plain.len, 6, 5, 1000, &why), KERR_INVALID_RECORD, why);
        CHECK(why && strstr(why, "recordsCount does not match"));
        CHECK_RC(&v[i], validate_section(&v[i], plain.data, plain.len, 4, 3, 1000, &why), KERR_INVALID_RECORD, why);
        CHECK(why && strstr(why, "recordsCount does not match"));
        CHECK_RC(&v[i], validate_section(&v[i], plain.data, plain.len, 1, 0, 1000, &why), KERR_INVALID_RECORD, why);
        CHECK_RC(&v[i], validate_section(&v[i], plain.data, plain.len, 500, 499, 1000, &why), KERR_INVALID_RECORD,
                 why);
        /* Header inconsistent with itself. */
        CHECK_RC(&v[i], validate_section(&v[i], plain.data, plain.len, 5, 5, 1000, &why), KERR_INVALID_RECORD, why);
        /* No records where some are claimed. */
        CHECK_RC(&v[i], validate_section(&v[i], plain.data, 0, 5, 4, 1000, &why), KERR_INVALID_RECORD, why);
    }
    buf_free(&plain);
}

TEST(records_validate_trailing_bytes)
{
    struct bb_record r[6];
    five_records(r);
    r[5] = r[4];
    struct buf five, six;
    buf_init(&five);
    buf_init(&six);
    bb_encode_records(&five, r, 5, 1000);
    bb_encode_records(&six, r, 6, 1000);
    size_t nv;
    const struct bb_options *v = codec_variants(&nv, true);
    for (size_t i = 0; i < nv; i++) {
        const char *why;
        struct buf plain;
        buf_init(&plain);
        /* One zero byte, then a record cut short, after the fifth record. */
        buf_append(&plain, five.data, five.len);
        buf_put_i8(&plain, 0);
        CHECK_RC(&v[i], validate_section(&v[i], plain.data, plain.len, 5, 4, 1000, &why), KERR_CORRUPT_MESSAGE,
                 why);
        CHECK(why && strstr(why, "after the last record"));
        plain.len = five.len;
        buf_append(&plain, six.data + five.len, (six.len - five.len) / 2);
        CHECK_RC(&v[i], validate_section(&v[i], plain.data, plain.len, 5, 4, 1000, &why), KERR_CORRUPT_MESSAGE,
                 why);
        /* A whole sixth record is a count that lies. */
        CHECK_RC(&v[i], validate_section(&v[i], six.data, six.len, 5, 4, 1000, &why), KERR_INVALID_RECORD, why);
        buf_free(&plain);

        /* Bytes after the compressed stream, inside the batch. */
        if (v[i].codec != CODEC_NONE) {
            /* zeros, a zstd frame's magic, a gzip member's, other bytes */
            static const uint8_t tails[][4] = {
                {0, 0, 0, 0}, {0x28, 0xb5, 0x2f, 0xfd}, {0x1f, 0x8b, 8, 0}, {1, 2, 3, 4}};
            for (size_t t = 0; t < sizeof(tails) / sizeof(tails[0]); t++) {
                for (size_t k = 1; k <= 4; k++) {
                    struct buf b;
                    buf_init(&b);
                    bb_build(&b, &v[i], r, 5);
                    buf_append(&b, tails[t], k);
                    be32_put(b.data + 8, (uint32_t)(b.len - BATCH_LOG_OVERHEAD));
                    bb_fix_crc(b.data);
                    why = NULL;
                    CHECK_RC(&v[i], records_validate(b.data, b.len, NULL, &why), KERR_CORRUPT_MESSAGE, why);
                    struct buf out;
                    buf_init(&out);
                    CHECK_EQ(batch_records_decompress(b.data, b.len, &out), -1);
                    buf_free(&out);
                    buf_free(&b);
                }
            }
        }
    }
    /* A raw snappy block that says it holds nothing, followed by bytes (found by fuzz_records). */
    static const uint8_t empty_then_junk[] = {0x00, 0x00, 0x02, 0x00, 0x00, 0x05};
    struct bb_options none = bb_defaults(CODEC_NONE);
    struct buf b, out;
    buf_init(&b);
    buf_init(&out);
    bb_build_section(&b, &none, empty_then_junk, sizeof(empty_then_junk), 1, 0, 1000, 1000);
    b.data[22] |= CODEC_SNAPPY; /* the section is the "compressed" data as is */
    bb_fix_crc(b.data);
    const char *why = NULL;
    CHECK_EQ(records_validate(b.data, b.len, NULL, &why), KERR_CORRUPT_MESSAGE);
    CHECK_EQ(batch_records_decompress(b.data, b.len, &out), -1);
    buf_free(&b);
    buf_free(&out);
    buf_free(&five);
    buf_free(&six);
}

/* The malformed records of records_record_next_malformed, and other damage, inside every codec. */
TEST(records_validate_malformed_records_every_codec)
{
    static const uint8_t neg_len[] = {1}, zero_len[] = {0}, key_minus2[] = {12, 0, 0, 0, 3, 1, 0},
                         key_too_long[] = {12, 0, 0, 0, 8, 1, 0}, neg_headers[] = {12, 0, 0, 0, 1, 1, 1},
                         null_hdr_key[] = {16, 0, 0, 0, 1, 1, 2, 1, 1},
                         huge_headers[] = {20, 0, 0, 0, 1, 1, 0xfe, 0xff, 0xff, 0xff, 0x0f},
                         long_varint[] = {24, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0},
                         trailing[] = {14, 0, 0, 0, 1, 1, 0, 9},
                         hdr_value_too_long[] = {18, 0, 0, 0, 1, 1, 2, 2, 'k', 8},
                         /* a record length of 2^31-1 with 6 bytes behind it */
                         huge_len[] = {0xfe, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0, 1, 1, 0},
                         /* offset delta varint of 6 bytes */
                         long_delta[] = {20, 0, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0, 1, 1, 0};
    static const struct {
        const uint8_t *p;
        size_t n;
    } bad[] = {{neg_len, sizeof(neg_len)},           {zero_len, sizeof(zero_len)},
               {key_minus2, sizeof(key_minus2)},     {key_too_long, sizeof(key_too_long)},
               {neg_headers, sizeof(neg_headers)},   {null_hdr_key, sizeof(null_hdr_key)},
               {huge_headers, sizeof(huge_headers)}, {long_varint, sizeof(long_varint)},
               {trailing, sizeof(trailing)},         {hdr_value_too_long, sizeof(hdr_value_too_long)},
               {huge_len, sizeof(huge_len)},         {long_delta, sizeof(long_delta)}};
    static const uint8_t good[] = {18, 0, 0, 0, 1, 1, 2, 2, 'k', 1}; /* one header, null value */
    size_t nv;
    const struct bb_options *v = codec_variants(&nv, true);
    for (size_t i = 0; i < nv; i++) {
        const char *why;
        CHECK_RC(&v[i], validate_section(&v[i], good, sizeof(good), 1, 0, 1000, &why), 0, why);
        for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
            CHECK_RC(&v[i], validate_section(&v[i], bad[k].p, bad[k].n, 1, 0, 1000, &why), KERR_CORRUPT_MESSAGE,
                     why);
            /* The same after a good record. */
            struct buf plain;
            buf_init(&plain);
            buf_append(&plain, good, sizeof(good));
            buf_append(&plain, bad[k].p, bad[k].n);
            CHECK_RC(&v[i], validate_section(&v[i], plain.data, plain.len, 2, 1, 1000, &why), KERR_CORRUPT_MESSAGE,
                     why);
            buf_free(&plain);
        }
        /* baseTimestamp + delta must not overflow. */
        struct bb_record r[5];
        five_records(r);
        struct buf plain;
        buf_init(&plain);
        bb_encode_records(&plain, r, 5, 1000 - 100); /* deltas 100..104 */
        CHECK_RC(&v[i], validate_section(&v[i], plain.data, plain.len, 5, 4, INT64_MAX - 102, &why),
                 KERR_CORRUPT_MESSAGE, why);
        CHECK(why && strstr(why, "timestamp"));
        CHECK_RC(&v[i], validate_section(&v[i], plain.data, plain.len, 5, 4, INT64_MAX - 104, &why), 0, why);
        buf_free(&plain);
    }
}

TEST(records_validate_producer_id_needs_sequence)
{
    struct bb_record r[5];
    five_records(r);
    struct bb_options o = bb_defaults(CODEC_LZ4);
    o.producer_id = 42;
    o.producer_epoch = 0;
    o.base_sequence = -1;
    struct buf b;
    buf_init(&b);
    bb_build(&b, &o, r, 5);
    const char *why = NULL;
    CHECK_EQ(records_validate(b.data, b.len, NULL, &why), KERR_INVALID_RECORD);
    CHECK(why && strstr(why, "baseSequence"));
    buf_reset(&b);
    o.base_sequence = 7;
    bb_build(&b, &o, r, 5);
    CHECK_EQ(records_validate(b.data, b.len, NULL, NULL), 0);
    buf_free(&b);
}

/* Batches of every codec back to back, with keys, null keys and values, headers. */
TEST(records_validate_every_codec_back_to_back)
{
    struct sample s;
    sample_init(&s, 1700000000000);
    size_t nv;
    const struct bb_options *v = codec_variants(&nv, true);
    struct buf b;
    buf_init(&b);
    for (size_t i = 0; i < nv; i++)
        bb_build(&b, &v[i], s.recs + 10 * i, 10 + (int)i);
    struct records_summary sum;
    const char *why = NULL;
    CHECK_EQ(records_validate(b.data, b.len, &sum, &why), 0);
    CHECK_EQ(sum.batch_count, nv);
    int64_t want = 0;
    for (size_t i = 0; i < nv; i++)
        want += 10 + (int64_t)i;
    CHECK_EQ(sum.record_count, want);
    CHECK_EQ(sum.offset_count, want);
    buf_free(&b);
    sample_free(&s);
}

/* Produce requests captured from librdkafka 2.0.2 (kcat 1.7.1, capture_server.py):
 * printf 'k1:hello world ...\nk2:second value ...\n:\nk4:the fourth ...\n' |
 *     kcat -P -K: -Z -z CODEC -H h1=v1 -H h2=v2
 * (-Z: the empty third line is a null key and a null value), and the uncompressed batch of
 * tests/data/kcat_produce_v7.hex. librdkafka writes raw snappy, not snappy-java's framing. */
static const char *const librdkafka_batches[] = {
    /* none: 75 bytes */
    "00000000000000000000003f00000000025473822e000000000000000001a212f046f7000001a212f046f7ffffffffff"
    "ffffffffffffffffff000000011a000000046b310a68656c6c6f00",
    /* gzip: 191 bytes */
    "0000000000000000000000b300000000023e34a0d0000100000003000001a22131dbe2000001a22131dbe2ffffffffff"
    "ffffffffffffffffff000000041f8b0800000000000003758d310e02310c041d64f10e1794d724e20d3c820e713e398a"
    "8951ce97fb080f869248d0cdae46bb1500b0c48bb0aad16e4d67fac38812b14794843d5d010e58525af96e75a67ed38d"
    "e93b0cf6e97312c250bd02c011cb595d9816db9acb447b76a1d51e4c8d9fecd9b3d5df386cbd019583e8c6c5000000",
    /* snappy: 197 bytes */
    "0000000000000000000000b900000000025d893847000200000003000001a22131fbe3000001a22131fbe3ffffffffff"
    "ffffffffffffffffff00000004c5014c6e000000046b314668656c6c6f20776f726c64205a0c00880404683104763104"
    "68320476325a000002046b32327365636f6e642076616c756520731d0d322e0014240000040101321300a09401000006"
    "046b346c74686520666f757274682c207769746820736f6d652072657065746974696f6e560b00300404683104763104"
    "6832047632",
    /* lz4: 206 bytes */
    "0000000000000000000000c200000000028a36276c000300000003000001a221321bf8000001a221321bf8ffffffffff"
    "ffffffffffffffffff0000000404224d1860408282000000ff056e000000046b314668656c6c6f20776f726c64200c00"
    "04f813040468310476310468320476325a000002046b32327365636f6e642076616c7565200d00092e00692400000401"
    "011300ff1a9401000006046b346c74686520666f757274682c207769746820736f6d652072657065746974696f6e0b00"
    "03044c0050683204763200000000",
    /* zstd: 180 bytes */
    "0000000000000000000000a8000000000248302946000400000003000001a221323bbf000001a221323bbfffffffffff"
    "ffffffffffffffffff0000000428b52ffd00587503005206161b90a76dff97b264450f0abd0e81df17f9f6be6201fb7a"
    "77fe5e4b528b53a74e4532cc041fa89d12146833841198da3b5007f8cba294fb0398c81a1aa2c5873cce5167fc85d3ee"
    "e8997646ef102de30479379560d4fd5f0106004f38405c9462f380a88e25981cf1badc01",
};

static void unhex(struct buf *out, const char *hex)
{
    for (size_t i = 0; hex[i] && hex[i + 1]; i += 2) {
        unsigned v;
        sscanf(hex + i, "%2x", &v);
        buf_put_i8(out, (int8_t)v);
    }
}

TEST(records_validate_librdkafka_batches)
{
    static const char *values[] = {"hello world hello world hello world", "second value second value", NULL,
                                   "the fourth, with some repetition repetition repetition"};
    struct buf all;
    buf_init(&all);
    for (int c = 0; c < 5; c++) {
        struct buf b, out;
        buf_init(&b);
        buf_init(&out);
        unhex(&b, librdkafka_batches[c]);
        buf_append(&all, b.data, b.len);
        struct records_summary s;
        const char *why = NULL;
        CHECK_EQ(records_validate(b.data, b.len, &s, &why), 0);
        if (why)
            fprintf(stderr, "  librdkafka batch %d: %s\n", c, why);
        CHECK_EQ(s.attributes_or & BATCH_ATTR_CODEC_MASK, c);
        CHECK_EQ(s.record_count, c == 0 ? 1 : 4);
        CHECK_EQ(batch_records_decompress(b.data, b.len, &out), 0);
        size_t pos = 0;
        struct record_view r;
        int i = 0;
        while (c > 0 && record_next(out.data, out.len, &pos, &r) == 1) {
            CHECK_EQ(r.offset_delta, i);
            CHECK_EQ(r.header_count, 2);
            if (values[i]) {
                CHECK_EQ(r.key_len, 2);
                CHECK_EQ(r.value_len, strlen(values[i]));
                CHECK(r.value_len > 0 && memcmp(r.value, values[i], (size_t)r.value_len) == 0);
            } else {
                CHECK_EQ(r.key_len, -1);
                CHECK_EQ(r.value_len, -1);
            }
            i++;
        }
        CHECK(c == 0 || (i == 4 && pos == out.len));
        buf_free(&b);
        buf_free(&out);
    }
    struct records_summary s;
    CHECK_EQ(records_validate(all.data, all.len, &s, NULL), 0);
    CHECK_EQ(s.batch_count, 5);
    CHECK_EQ(s.record_count, 17);
    buf_free(&all);
}
