/* Object store: where record data lives. Backends: file:// (embedded default), later s3://.
 * A put is durable when it returns 0 (file: fsync of the file and its directory). */
#ifndef SLUICE_OBJSTORE_H
#define SLUICE_OBJSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "util/buf.h"

struct objstore;

struct objstore_ops {
    int (*put)(struct objstore *s, const char *key, const void *data, size_t len);
    /* The object is the concatenation of iov[0, n); optional (objstore_putv gathers otherwise). */
    int (*putv)(struct objstore *s, const char *key, const struct iovec *iov, int n);
    /* Appends bytes [off, off+len) of the object to out. */
    int (*get_range)(struct objstore *s, const char *key, uint64_t off, size_t len, struct buf *out);
    int (*del)(struct objstore *s, const char *key);
    int (*list)(struct objstore *s, const char *prefix,
                void (*cb)(const char *key, uint64_t size, void *arg), void *arg);
    void (*close)(struct objstore *s);
};

struct objstore {
    const struct objstore_ops *ops;
    char url[512];
    /* Reads are cheap enough to do inline on an event loop (file://: the page cache). Remote
     * stores leave it false, and the broker reads from them on its reader threads. */
    bool local_reads;
};

/* Opens the store named by url ("file:///abs/path" or "file://relative/path"); creates the
 * folder. On failure returns NULL and writes one line into err. */
struct objstore *objstore_open(const char *url, char *err, size_t errlen);

/* Backends, for objstore_open (dir: the folder part of a file:// URL). */
struct objstore *objstore_file_open(const char *dir, char *err, size_t errlen);

/* put, putv and get_range count their latency and errors in the worker's metrics (metrics/). */
int objstore_put(struct objstore *s, const char *key, const void *data, size_t len);
/* Stores the slices as one object: file:// writes them with writev (no copy into one buffer);
 * a store without putv (S3: the request body is one buffer) gets them gathered once. */
int objstore_putv(struct objstore *s, const char *key, const struct iovec *iov, int n);
int objstore_get_range(struct objstore *s, const char *key, uint64_t off, size_t len, struct buf *out);
static inline int objstore_delete(struct objstore *s, const char *key) { return s->ops->del(s, key); }
static inline int objstore_list(struct objstore *s, const char *prefix,
                                void (*cb)(const char *key, uint64_t size, void *arg), void *arg)
{
    return s->ops->list(s, prefix, cb, arg);
}
static inline void objstore_close(struct objstore *s) { s->ops->close(s); }

#endif
