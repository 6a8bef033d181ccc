/* Compaction of small objects: which chunks of a partition form a run worth rewriting (see the
 * design note in compaction.c). Pure functions: the job calls them on what the store listed. */
#ifndef SLUICE_COMPACTION_H
#define SLUICE_COMPACTION_H

#include <stdbool.h>
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

/* What the one new chunk of a run holds: the old chunks' sums and extremes (offsets and timestamps
 * do not change). */
struct compaction_run_info {
    uint64_t bytes;
    int32_t batch_count;
    int64_t offset_count;
    int64_t first_timestamp;
    int64_t max_timestamp;
    bool cleaned;                /* every old chunk was written by key compaction */
};
void compaction_run_info(const struct chunk_ref *run, int n, struct compaction_run_info *out);

/* The wall-clock ms an object was written, from its key "objects/<13 digits>-..."; INT64_MAX
 * when the key has another form (never old enough to touch). */
int64_t compaction_object_ms(const char *key);

struct compaction_stats {
    int64_t objects;             /* new objects whose runs were switched */
    int64_t chunks;              /* old chunks replaced */
    int64_t bytes;               /* bytes of those objects */
    int64_t conflicts;           /* runs that changed between listing and switch (left as they are) */
};

struct objstore;
struct config;

/* One round, on worker 0's background thread under the lifecycle lease: for every partition of every topic whose
 * cleanup.policy has no "compact", runs of old small chunks are packed into objects of about
 * compaction_target_bytes, stored, and switched in with metastore_replace_chunks. keep(arg, m) is
 * asked between long steps; false (the lease is lost) stops the round. Bounded per round. */
void compaction_round(struct metastore *m, struct objstore *objects, const struct config *cfg,
                      bool (*keep)(void *arg, struct metastore *m), void *arg, struct compaction_stats *st);

#endif
