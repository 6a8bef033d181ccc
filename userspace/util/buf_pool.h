/* Recycled buffers: produce data is buffered into memory that earlier flushes used, so a worker
 * under steady load neither mallocs nor page-faults per flush. Bounded, so an idle worker gives
 * memory back beyond max_bytes. One thread only (the worker's loop). */
#ifndef SLUICE_BUF_POOL_H
#define SLUICE_BUF_POOL_H

#include <stddef.h>

#include "util/buf.h"

struct buf_pool {
    struct buf *v;               /* empty buffers, with capacity */
    int n, cap;
    size_t bytes;                /* their capacity in total */
    size_t max_bytes;
};

void buf_pool_init(struct buf_pool *p, size_t max_bytes);
void buf_pool_free(struct buf_pool *p);
/* An empty buffer, with the most recently returned memory if any (the warmest). */
struct buf buf_pool_get(struct buf_pool *p);
/* Takes b's memory back (or frees it when the pool is full); b is left empty. */
void buf_pool_put(struct buf_pool *p, struct buf *b);

#endif
