/* Streaming decompression of record batches: see decompress.h. Every byte comes from a client, so
 * no codec is trusted to stop by itself: the total output is capped and each step must make
 * progress. */
#include "record/decompress.h"

#include <limits.h>
#include <lz4frame.h>
#include <snappy-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "record/batch.h"
#include "util/buf.h"

_Static_assert(BATCH_DECOMPRESSED_MAX == (size_t)64 << 20, "update DSTREAM_TOO_BIG");

/* The largest window a zstd frame may declare: the library's default, which Kafka's own consumer
 * accepts (levels 20-22 written by a streaming compressor declare 2^25..2^27). It is allocated
 * whole but touched only as output is produced, so at most BATCH_DECOMPRESSED_MAX of it is used;
 * lower it to trade those levels for less address space. */
#define ZSTD_WINDOW_LOG_MAX 27

/* snappy writes at most 64 bytes per 3-byte copy tag: a block claiming more than 22 times its own
 * size is lying, and is refused before anything is allocated for it. */
#define SNAPPY_MAX_RATIO 22

static const uint8_t xerial_magic[8] = {0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0};
#define XERIAL_HEADER_SIZE 16 /* magic, version, compatible version (i32 each) */

static int fail(struct dstream *d, const char *why)
{
    d->why = why;
    return -1;
}

static void *alloc_or_die(void *old, size_t n)
{
    void *p = realloc(old, n);
    if (!p) {
        fprintf(stderr, "sluice: out of memory decompressing a batch (%zu bytes)\n", n);
        abort();
    }
    return p;
}

/* Hands out k bytes at p unless the batch would then expand beyond the cap. */
static int emit(struct dstream *d, const uint8_t *p, size_t k, const uint8_t **out, size_t *len)
{
    if (k > BATCH_DECOMPRESSED_MAX - d->produced)
        return fail(d, DSTREAM_TOO_BIG);
    d->produced += k;
    *out = p;
    *len = k;
    return 1;
}

int dstream_open(struct dstream *d, int codec, const uint8_t *src, size_t n)
{
    memset(d, 0, sizeof(*d));
    d->codec = codec;
    d->src = src;
    d->n = n;
    switch (codec) {
    case CODEC_NONE:
        return 0;
    case CODEC_GZIP: {
        if (n > UINT_MAX)
            return fail(d, "gzip data too long");
        z_stream *z = alloc_or_die(NULL, sizeof(*z));
        memset(z, 0, sizeof(*z));
        /* 15 + 32: gzip (or zlib) header detected, 32 KiB window. */
        if (inflateInit2(z, 15 + 32) != Z_OK) {
            free(z);
            return fail(d, "gzip: cannot start");
        }
        z->next_in = (Bytef *)src;
        z->avail_in = (uInt)n;
        d->ctx = z;
        break;
    }
    case CODEC_SNAPPY:
        d->xerial = n >= XERIAL_HEADER_SIZE && memcmp(src, xerial_magic, sizeof(xerial_magic)) == 0;
        d->pos = d->xerial ? XERIAL_HEADER_SIZE : 0;
        return 0; /* the window is sized per block */
    case CODEC_LZ4: {
        LZ4F_dctx *l;
        if (LZ4F_isError(LZ4F_createDecompressionContext(&l, LZ4F_VERSION)))
            return fail(d, "lz4: cannot start");
        d->ctx = l;
        break;
    }
    case CODEC_ZSTD: {
        ZSTD_DCtx *z = ZSTD_createDCtx();
        if (!z)
            return fail(d, "zstd: cannot start");
        if (ZSTD_isError(ZSTD_DCtx_setParameter(z, ZSTD_d_windowLogMax, ZSTD_WINDOW_LOG_MAX))) {
            ZSTD_freeDCtx(z);
            return fail(d, "zstd: cannot start");
        }
        d->ctx = z;
        break;
    }
    default:
        return fail(d, "unknown compression codec");
    }
    d->win = alloc_or_die(NULL, DSTREAM_WINDOW);
    d->win_cap = DSTREAM_WINDOW;
    return 0;
}

/* gzip; concatenated members are one stream, as Java's GZIPInputStream reads them. */
static int next_gzip(struct dstream *d, const uint8_t **out, size_t *len)
{
    z_stream *z = d->ctx;
    while (!d->done) {
        z->next_out = d->win;
        z->avail_out = (uInt)d->win_cap;
        int zr = inflate(z, Z_NO_FLUSH);
        size_t got = d->win_cap - z->avail_out;
        if (zr == Z_STREAM_END) {
            if (z->avail_in == 0)
                d->done = true;
            else if (inflateReset(z) != Z_OK)
                return fail(d, "gzip: cannot read the next member");
        } else if (zr == Z_BUF_ERROR) {
            return fail(d, "gzip data truncated"); /* no progress possible: the input ended early */
        } else if (zr != Z_OK) {
            return fail(d, "gzip data corrupt");
        }
        if (got)
            return emit(d, d->win, got, out, len);
    }
    return 0;
}

static int next_lz4(struct dstream *d, const uint8_t **out, size_t *len)
{
    while (!d->done) {
        size_t in = d->n - d->pos, got = d->win_cap;
        size_t hint = LZ4F_decompress(d->ctx, d->win, &got, d->src + d->pos, &in, NULL);
        if (LZ4F_isError(hint))
            return fail(d, "lz4 data corrupt");
        d->pos += in;
        if (hint == 0 && d->pos == d->n) /* frame complete (checksums checked), input used up */
            d->done = true;
        else if (in == 0 && got == 0)
            return fail(d, "lz4 data truncated");
        if (got)
            return emit(d, d->win, got, out, len);
    }
    return 0;
}

/* Streaming, because producers may leave the frame content size out; frames may follow frames. */
static int next_zstd(struct dstream *d, const uint8_t **out, size_t *len)
{
    while (!d->done) {
        ZSTD_inBuffer in = {d->src, d->n, d->pos};
        ZSTD_outBuffer o = {d->win, d->win_cap, 0};
        size_t r = ZSTD_decompressStream(d->ctx, &o, &in);
        if (ZSTD_isError(r))
            return fail(d, ZSTD_getErrorCode(r) == ZSTD_error_frameParameter_windowTooLarge
                               ? "zstd window larger than 2^27"
                               : "zstd data corrupt");
        bool progress = in.pos != d->pos || o.pos > 0;
        d->pos = in.pos;
        if (r == 0 && d->pos == d->n) { /* frame complete and flushed, input used up */
            /* Streaming lets a compressed block of size 0 through as an empty frame, which
             * one-shot decoding calls corrupt: output that empty is checked that way too (it
             * costs no memory: the answer must be 0 bytes). */
            if (d->produced == 0 && o.pos == 0 && ZSTD_isError(ZSTD_decompress(NULL, 0, d->src, d->n)))
                return fail(d, "zstd data corrupt");
            d->done = true;
        }
        else if (!progress)
            return fail(d, "zstd data truncated");
        if (o.pos)
            return emit(d, d->win, o.pos, out, len);
    }
    return 0;
}

/* One raw snappy block src[0..n) into the window. Returns its length, or -1. */
static int64_t unsnappy_block(struct dstream *d, const uint8_t *src, size_t n)
{
    size_t ulen;
    if (snappy_uncompressed_length((const char *)src, n, &ulen) != SNAPPY_OK)
        return fail(d, "snappy data corrupt");
    if (ulen > BATCH_DECOMPRESSED_MAX - d->produced)
        return fail(d, DSTREAM_TOO_BIG);
    if (ulen / SNAPPY_MAX_RATIO > n)
        return fail(d, "snappy data corrupt");
    if (ulen > d->win_cap) {
        d->win = alloc_or_die(d->win, ulen);
        d->win_cap = ulen;
    }
    /* Even an empty block is decoded: that is what checks it holds nothing more. */
    char none;
    size_t got = ulen;
    if (snappy_uncompress((const char *)src, n, ulen ? (char *)d->win : &none, &got) != SNAPPY_OK || got != ulen)
        return fail(d, "snappy data corrupt");
    return (int64_t)ulen;
}

/* Raw snappy (librdkafka), or snappy-java's framing (Java clients): after the header, blocks of
 * i32 compressed length + raw snappy. */
static int next_snappy(struct dstream *d, const uint8_t **out, size_t *len)
{
    while (!d->done) {
        const uint8_t *blk = d->src + d->pos;
        size_t blen = d->n - d->pos;
        if (d->xerial) {
            if (d->pos == d->n) {
                d->done = true;
                break;
            }
            if (d->n - d->pos < 4)
                return fail(d, "snappy block header truncated");
            blen = be32_get(blk);
            blk += 4;
            if (blen > d->n - d->pos - 4)
                return fail(d, "snappy block truncated");
            d->pos += 4;
        }
        int64_t got = unsnappy_block(d, blk, blen);
        if (got < 0)
            return -1;
        d->pos += blen;
        if (!d->xerial)
            d->done = true;
        if (got)
            return emit(d, d->win, (size_t)got, out, len);
    }
    return 0;
}

int dstream_next(struct dstream *d, const uint8_t **out, size_t *len)
{
    switch (d->codec) {
    case CODEC_NONE:
        if (d->done || d->n == 0)
            return 0;
        d->done = true;
        *out = d->src;
        *len = d->n;
        return 1;
    case CODEC_GZIP:
        return next_gzip(d, out, len);
    case CODEC_SNAPPY:
        return next_snappy(d, out, len);
    case CODEC_LZ4:
        return next_lz4(d, out, len);
    case CODEC_ZSTD:
        return next_zstd(d, out, len);
    default:
        return fail(d, "unknown compression codec");
    }
}

void dstream_close(struct dstream *d)
{
    if (d->ctx) {
        switch (d->codec) {
        case CODEC_GZIP:
            inflateEnd(d->ctx);
            free(d->ctx);
            break;
        case CODEC_LZ4:
            LZ4F_freeDecompressionContext(d->ctx);
            break;
        case CODEC_ZSTD:
            ZSTD_freeDCtx(d->ctx);
            break;
        }
    }
    free(d->win);
    memset(d, 0, sizeof(*d));
}
