/* Compaction of small objects: which chunks of a partition form a run worth rewriting (see the
 * design note in compaction.c). Pure functions: the job calls them on what the store listed. */
#ifndef SLUICE_COMPACTION_H
#define SLUICE_COMPACTION_H

#include <stdint.h>

#include "storage/metastore.h"

struct compaction_limits {
    int min_chunks;          /* a run needs more than this many chunks */
    uint32_t small_bytes;    /* chunks of at least this size end a run */
    uint64_t max_run_bytes;  /* a run stops before growing past this */
};

/* The first run in chunks[0..n) (by base offset, already limited to old enough ones): consecutive
 * small chunks, contiguous in offsets, no more than max_run_bytes together. *start gets its first
 * index; returns its length, or 0 when no run has more than min_chunks chunks. */
int compaction_find_run(const struct chunk_ref *chunks, int n, const struct compaction_limits *lim, int *start);

#endif
