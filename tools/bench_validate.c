/* What produce-side validation costs (make bench): records_validate throughput per codec on 1 MiB
 * batches of 1 KiB records (JSON-like values, as compressible as typical event data), next to
 * what decompressing the same batch whole (batch_records_decompress) costs. MB = 10^6 bytes of
 * uncompressed records. Single-threaded, built -O2 without sanitizers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "batch_builder.h"
#include "protocol/errors.h"
#include "record/batch.h"

#define BATCH_TARGET ((size_t)1 << 20)
#define VALUE_SIZE 1000 /* + key and framing: about 1 KiB per record */
#define MIN_SECONDS 1.0

static uint64_t rng = 0x2545f4914f6cdd1dull;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec / 1e9;
}

/* A JSON-like event: fixed field names, numbers and words from a small vocabulary. */
static void make_value(char *v, size_t size, int i)
{
    static const char *words[] = {"checkout", "payment", "session", "mobile", "desktop", "berlin", "paris",
                                  "tokyo",    "premium", "trial",   "search", "cart",    "retry",  "ok",
                                  "timeout",  "eu-west", "us-east", "v2",     "v3",      "beta"};
    int n = snprintf(v, size, "{\"id\":%d,\"user\":\"user-%06u\",\"ts\":%llu,\"event\":\"%s\",\"tags\":[", i,
                     (unsigned)(rnd() % 100000), (unsigned long long)(1700000000000ull + rnd() % 100000),
                     words[rnd() % 20]);
    while ((size_t)n < size - 40)
        n += snprintf(v + n, size - (size_t)n, "\"%s-%u\",", words[rnd() % 20], (unsigned)(rnd() % 1000));
    snprintf(v + n, size - (size_t)n, "\"end\"]}");
    memset(v + strlen(v), ' ', size - strlen(v));
}

int main(void)
{
    int n = (int)(BATCH_TARGET / (VALUE_SIZE + 30));
    struct bb_record *recs = calloc((size_t)n, sizeof(*recs));
    char (*keys)[16] = calloc((size_t)n, 16);
    char (*vals)[VALUE_SIZE] = calloc((size_t)n, VALUE_SIZE);
    for (int i = 0; i < n; i++) {
        snprintf(keys[i], 16, "key-%010d", i);
        make_value(vals[i], VALUE_SIZE, i);
        recs[i] = (struct bb_record){keys[i], 14, vals[i], VALUE_SIZE, 1700000000000 + i, 0, NULL};
    }
    struct buf plain;
    buf_init(&plain);
    bb_encode_records(&plain, recs, n, recs[0].timestamp);

    struct {
        const char *name;
        enum batch_codec codec;
        bool xerial;
    } variants[] = {{"none", CODEC_NONE, false}, {"gzip", CODEC_GZIP, false},
                    {"snappy", CODEC_SNAPPY, false}, {"snappy (xerial 32K)", CODEC_SNAPPY, true},
                    {"lz4", CODEC_LZ4, false}, {"zstd", CODEC_ZSTD, false}};
    printf("records_validate on one batch of %d records of %d-byte values (%.2f MB of records), 1 thread\n", n,
           VALUE_SIZE, plain.len / 1e6);
    printf("%-20s %12s %7s %16s %16s %18s\n", "codec", "batch bytes", "ratio", "validate MB/s", "batches/s",
           "decompress MB/s");
    for (size_t v = 0; v < sizeof(variants) / sizeof(variants[0]); v++) {
        struct bb_options o = bb_defaults(variants[v].codec);
        o.snappy_xerial = variants[v].xerial;
        o.xerial_block = 32 << 10;
        o.zstd_unknown_size = true; /* as librdkafka and the Java client write it */
        struct buf b, out;
        buf_init(&b);
        buf_init(&out);
        bb_build(&b, &o, recs, n);
        const char *why = NULL;
        if (records_validate(b.data, b.len, NULL, &why) != 0) {
            fprintf(stderr, "bench_validate: %s batch refused: %s\n", variants[v].name, why);
            return 1;
        }
        long iters = 0;
        double t0 = now_s(), t;
        do {
            if (records_validate(b.data, b.len, NULL, NULL) != 0)
                return 1;
            iters++;
        } while ((t = now_s() - t0) < MIN_SECONDS);
        double validate_mbs = iters * (double)plain.len / t / 1e6, per_s = iters / t;
        long diters = 0;
        t0 = now_s();
        do {
            buf_reset(&out);
            if (batch_records_decompress(b.data, b.len, &out) != 0)
                return 1;
            diters++;
        } while ((t = now_s() - t0) < MIN_SECONDS);
        printf("%-20s %12zu %7.2f %16.0f %16.0f %18.0f\n", variants[v].name, b.len, (double)plain.len / b.len,
               validate_mbs, per_s, diters * (double)plain.len / t / 1e6);
        buf_free(&b);
        buf_free(&out);
    }
    buf_free(&plain);
    free(recs);
    free(keys);
    free(vals);
    return 0;
}
