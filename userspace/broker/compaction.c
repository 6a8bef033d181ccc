/* Compaction of small objects (issue 13, part 2) — DESIGN NOTE. Implemented so far: run selection
 * (compaction_find_run); the store operations, the job step and the integration test are to come.
 *
 * Why: with a short batch timeout every flush writes one small object holding a few bytes of each
 * partition, so a partition's log becomes thousands of tiny chunks: fetches then cost one GET per
 * chunk and the store one row per chunk. Compaction rewrites runs of small chunks into one big
 * object, one chunk per partition, without changing a single byte a consumer sees.
 *
 * Which partitions qualify. A step of the lifecycle round (lifecycle.c, under its lease: one agent
 * compacts at a time). It asks the store for candidates: partitions with a run of more than
 * SLUICE_COMPACTION_MIN_CHUNKS consecutive chunks each below SLUICE_COMPACTION_SMALL_BYTES whose
 * objects are older than SLUICE_COMPACTION_MIN_AGE (a few seconds: the tail is still being
 * fetched hot and may be trimmed or deleted soon). A run is contiguous in offsets (each chunk's
 * base_offset is the previous last_offset + 1) and stops at the first large chunk, at the young
 * tail, and at a per-run cap (fetch reads and caches a chunk whole, so a compacted chunk stays
 * small enough to read per request: e.g. 1 MiB; the object holds many runs to reach its target).
 *
 * The new object. Standard object format (storage/object_format.h, written with object_builder):
 * runs of many partitions are packed into one object of about SLUICE_COMPACTION_TARGET_BYTES
 * (default 16 MiB); each run becomes ONE index entry whose bytes are the old chunks' bytes
 * concatenated in offset order, read with ranged GETs of the old objects. The record batches are
 * copied byte-identical: objects keep baseOffset 0 and the fetch path rewrites baseOffset on the
 * way out from the chunk's base_offset, walking the batches, so a run of chunks concatenated is a
 * valid chunk; the batch CRCs (which do not cover baseOffset) stay valid. The new chunk keeps the
 * run's first base_offset and last last_offset, the sum of batch counts, the first chunk's
 * first_timestamp and the largest max_timestamp, so offsets, timestamps, ListOffsets and
 * retention answers do not change (retention works at chunk granularity: a compacted chunk
 * expires when its newest batch does, one more reason runs are capped).
 *
 * The metadata switch: ONE transaction (metastore_replace_chunks) records the new object and, for
 * every run, checks that exactly the old chunks are still there (same base offsets, same objects:
 * none trimmed by retention or DeleteRecords, topic not deleted), deletes them, inserts the one new
 * chunk, and adds the old objects to gc_candidates. If any check fails nothing changes; the job
 * deletes the new object at once (no one can have seen it) and retries on a later round.
 *
 * Afterwards the old objects have no chunk pointing into them: part 1's garbage collection stamps
 * them unreferenced and deletes them --object-delete-grace later, so a fetch that planned a read
 * of an old object before the switch still finds it for the grace period (the bytes are the
 * same either way). Restart-safe: a crash after the PUT but before the switch leaves an object
 * the store does not know, which the bucket scan deletes once older than the grace period; a
 * crash after the switch is a finished compaction. Producers are unaffected: idempotent producer
 * state holds sequence numbers and offsets, not chunks.
 *
 * Metrics: sluice_compactions_total, sluice_chunks_compacted_total,
 * sluice_compaction_bytes_written_total, sluice_compaction_conflicts_total. */

#include "broker/compaction.h"

int compaction_find_run(const struct chunk_ref *chunks, int n, const struct compaction_limits *lim, int *start)
{
    int i = 0;
    while (i < n) {
        int first = i;
        uint64_t bytes = 0;
        while (i < n && chunks[i].len < lim->small_bytes && bytes + chunks[i].len <= lim->max_run_bytes &&
               (i == first || chunks[i].base_offset == chunks[i - 1].last_offset + 1)) {
            bytes += chunks[i].len;
            i++;
        }
        if (i - first > lim->min_chunks) {
            *start = first;
            return i - first;
        }
        if (i == first)
            i++; /* a large chunk (or one alone past the cap): the next run starts after it */
    }
    return 0;
}
