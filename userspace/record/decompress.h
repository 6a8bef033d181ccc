/* Streaming decompression of a batch's records section, with bounded memory (record/ internal).
 * Output comes in chunks the caller reads before asking for the next: gzip, lz4 and zstd through a
 * fixed window of DSTREAM_WINDOW bytes, snappy one block at a time (raw snappy: one block), an
 * uncompressed section as itself. In total at most BATCH_DECOMPRESSED_MAX bytes (batch.h). */
#ifndef SLUICE_RECORD_DECOMPRESS_H
#define SLUICE_RECORD_DECOMPRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DSTREAM_WINDOW ((size_t)64 << 10)

/* The reason given for a batch that expands beyond BATCH_DECOMPRESSED_MAX. */
#define DSTREAM_TOO_BIG "records decompress to more than 64 MiB"

struct dstream {
    int codec;                 /* enum batch_codec */
    const uint8_t *src;        /* the compressed bytes, src[0..n) */
    size_t n, pos;
    uint8_t *win;              /* where output chunks are written */
    size_t win_cap;
    uint64_t produced;         /* bytes handed out so far */
    bool done;                 /* input used up and the stream ended cleanly */
    bool xerial;               /* snappy: snappy-java's block framing */
    void *ctx;                 /* the codec's decoder */
    const char *why;           /* after a failure: a short static reason */
};

/* Starts decompressing src[0..n) with codec. Returns 0, or -1 with d->why (d needs no close then). */
int dstream_open(struct dstream *d, int codec, const uint8_t *src, size_t n);

/* The next chunk of output: returns 1 with *out and *len (valid until the next call; never empty), 0
 * once the stream ended cleanly with all input used, -1 with d->why if the data is corrupt,
 * truncated, followed by leftovers or expands beyond BATCH_DECOMPRESSED_MAX. */
int dstream_next(struct dstream *d, const uint8_t **out, size_t *len);

void dstream_close(struct dstream *d);

#endif
