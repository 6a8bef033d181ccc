/* Compaction of small objects (issue 13, part 2) — DESIGN NOTE. Run selection (compaction_find_run),
 * the store's switch (metastore_replace_chunks) and the job step (compaction_round) follow it.
 *
 * Why: with a short batch timeout every flush writes one small object holding a few bytes of each
 * partition, so a partition's log becomes thousands of tiny chunks: fetches then cost one GET per
 * chunk and the store one row per chunk. Compaction rewrites runs of small chunks into one big
 * object, one chunk per partition, without changing a single byte a consumer sees.
 *
 * Which partitions qualify. A step of the lifecycle round (lifecycle.c, under its lease: one agent
 * compacts at a time). It lists each partition's chunks from its log start (pages of LIST_PAGE,
 * topics with cleanup.policy compact skipped: key compaction rewrites those) for runs of more than
 * SLUICE_COMPACTION_MIN_CHUNKS consecutive chunks each below SLUICE_COMPACTION_SMALL_BYTES whose
 * objects are older than SLUICE_COMPACTION_MIN_AGE (a few seconds: the tail is still being
 * fetched hot and may be trimmed or deleted soon). A run is contiguous in offsets (each chunk's
 * base_offset is the previous last_offset + 1) and stops at the first large chunk, at the young
 * tail, and at a per-run cap (fetch reads and caches a chunk whole, so a compacted chunk stays
 * small enough to read per request: e.g. 1 MiB; the object holds many runs to reach its target).
 *
 * The new object. Standard object format (storage/object_format.h, written with object_writer as the flusher does):
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
 * chunk, and adds the old objects to gc_candidates. A run whose check fails stays as it is (tried
 * again on a later round); an object no run went into is unreferenced, and garbage collection
 * deletes it after the grace period. A failed transaction leaves the object to the bucket scan.
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

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "storage/object_format.h"
#include "storage/objstore.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/log.h"

/* Chunks listed per store call, and new objects written per round (the rest waits a round). */
#define LIST_PAGE 1024
#define OBJECTS_PER_ROUND 8

int compaction_find_run(const struct chunk_ref *chunks, int n, const struct compaction_limits *lim, int *start)
{
    int i = 0;
    while (i < n) {
        int first = i;
        uint64_t bytes = 0;
        /* A chunk key compaction wrote stores absolute baseOffsets and may end before its last
         * offset: concatenated with others, the offsets of what follows would be lost. */
        while (i < n && !chunks[i].cleaned && chunks[i].len < lim->small_bytes &&
               bytes + chunks[i].len <= lim->max_run_bytes &&
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

void compaction_run_info(const struct chunk_ref *run, int n, struct compaction_run_info *out)
{
    *out = (struct compaction_run_info){.first_timestamp = n ? run[0].first_timestamp : -1,
                                        .max_timestamp = INT64_MIN, .cleaned = n > 0};
    for (int i = 0; i < n; i++) {
        out->bytes += run[i].len;
        out->batch_count += run[i].batch_count;
        if (run[i].max_timestamp > out->max_timestamp)
            out->max_timestamp = run[i].max_timestamp;
        out->cleaned = out->cleaned && run[i].cleaned;
    }
    if (n)
        out->offset_count = run[n - 1].last_offset - run[0].base_offset + 1;
    else
        out->max_timestamp = -1;
}

int64_t compaction_object_ms(const char *key)
{
    const char *prefix = "objects/";
    if (strncmp(key, prefix, strlen(prefix)) != 0)
        return INT64_MAX;
    const char *p = key + strlen(prefix);
    int64_t ms = 0;
    for (int i = 0; i < 13; i++) {
        if (p[i] < '0' || p[i] > '9')
            return INT64_MAX;
        ms = ms * 10 + (p[i] - '0');
    }
    return p[13] == '-' ? ms : INT64_MAX;
}

/* ---- the job step ---- */

struct pending_run {
    struct chunk_replacement r;
    uint8_t topic_uuid[16];
    struct compaction_run_info info;
    struct buf data;             /* the old chunks' bytes, in offset order */
};

/* Runs read so far for the next object (at most compaction_target_bytes together). */
struct packer {
    struct metastore *m;
    struct objstore *objects;
    const struct config *cfg;
    struct compaction_stats *st;
    struct pending_run *runs;
    int n, cap;
    uint64_t bytes;
    int written;                 /* objects stored this round */
    bool stop;                   /* lease lost or round budget used */
    bool lost;                   /* the lease was lost: nothing more is switched */
};

static void packer_clear(struct packer *pk)
{
    for (int i = 0; i < pk->n; i++)
        buf_free(&pk->runs[i].data);
    pk->n = 0;
    pk->bytes = 0;
}

/* Writes the pending runs as one object, stores it and switches the runs to it. */
static void packer_flush(struct packer *pk)
{
    static unsigned long long seq; /* one round at a time per agent: keys stay unique */
    if (pk->n == 0)
        return;
    struct object_writer w;
    object_writer_init(&w);
    for (int i = 0; i < pk->n; i++) {
        struct pending_run *pr = &pk->runs[i];
        object_writer_add(&w, pr->topic_uuid, pr->r.partition, pr->data.data, pr->data.len, pr->info.batch_count,
                          pr->info.offset_count, pr->info.first_timestamp, pr->info.max_timestamp);
    }
    object_writer_finish(&w);
    /* the same key form as the flusher's: the bucket scan treats it like any other object */
    char key[OBJECT_KEY_MAX];
    snprintf(key, sizeof(key), "objects/%013lld-%s-compact-%06llu.obj", (long long)wall_ms(), pk->cfg->agent_id,
             ++seq);
    struct chunk_replacement *reps = calloc((size_t)pk->n, sizeof(*reps));
    if (!reps)
        abort();
    for (int i = 0; i < pk->n; i++) {
        reps[i] = pk->runs[i].r;
        reps[i].pos = w.chunks[i].pos;
    }
    pk->written++;
    if (objstore_putv(pk->objects, key, w.iov, w.niov) != 0) {
        log_warn("compaction: storing %s (%" PRIu64 " bytes) failed; its runs stay as they are", key, w.size);
        goto out;
    }
    int rc = metastore_replace_chunks(pk->m, key, w.size, reps, pk->n);
    if (rc < 0) {
        /* Not deleted here: on PostgreSQL a lost COMMIT answer also returns -1 although the switch
         * may have happened. If it did not, the store does not know the object and the bucket scan
         * deletes it after the grace period, like any object PUT and never committed. */
        pk->st->conflicts += pk->n;
        log_warn("compaction: switching to %s failed; its runs stay as they are (the bucket scan collects it)", key);
        goto out;
    }
    int chunks = 0;
    for (int i = 0; i < pk->n; i++) {
        if (reps[i].replaced)
            chunks += reps[i].old_chunks;
        else
            pk->st->conflicts++;
    }
    /* an object no run went into is a gc candidate already (the store's contract) */
    if (rc > 0) {
        pk->st->objects++;
        pk->st->bytes += (int64_t)w.size;
        pk->st->chunks += chunks;
    }
    log_info("compaction: wrote %s (%" PRIu64 " bytes): %d of %d runs switched, %d chunks replaced", key, w.size,
             rc, pk->n, chunks);
out:
    free(reps);
    object_writer_free(&w);
    packer_clear(pk);
    if (pk->written >= OBJECTS_PER_ROUND)
        pk->stop = true;
}

/* Reads one run's bytes (ranged GETs of the old objects) into the pending object. */
static void packer_add(struct packer *pk, const struct topic_info *t, int32_t partition, const struct chunk_ref *run,
                       int n)
{
    struct compaction_run_info info;
    compaction_run_info(run, n, &info);
    if (pk->bytes + info.bytes > (uint64_t)pk->cfg->compaction_target_bytes)
        packer_flush(pk);
    if (pk->stop)
        return;
    struct buf data;
    buf_init(&data);
    buf_reserve(&data, info.bytes);
    for (int i = 0; i < n; i++) {
        size_t before = data.len;
        if (objstore_get_range(pk->objects, run[i].object_key, run[i].pos, run[i].len, &data) != 0 ||
            data.len - before != run[i].len) {
            log_warn("compaction: reading %u bytes of %s failed; run skipped", run[i].len, run[i].object_key);
            buf_free(&data);
            return;
        }
    }
    if (pk->n == pk->cap) {
        pk->cap = pk->cap ? pk->cap * 2 : 16;
        pk->runs = realloc(pk->runs, sizeof(*pk->runs) * (size_t)pk->cap);
        if (!pk->runs)
            abort();
    }
    struct pending_run *pr = &pk->runs[pk->n++];
    *pr = (struct pending_run){
        .r = {.topic_id = t->id, .partition = partition, .base_offset = run[0].base_offset,
              .last_offset = run[n - 1].last_offset, .old_chunks = n, .len = (uint32_t)info.bytes,
              .batch_count = info.batch_count, .cleaned = info.cleaned},
        .info = info,
        .data = data,
    };
    memcpy(pr->topic_uuid, t->uuid, sizeof(pr->topic_uuid));
    pk->bytes += info.bytes;
}

/* Lists the partition's chunks from its log start, page by page, up to the young tail, and packs
 * every run found. */
static void compact_partition(struct packer *pk, const struct topic_info *t, int32_t partition,
                              struct chunk_ref *page, bool (*keep)(void *, struct metastore *), void *arg)
{
    const struct config *cfg = pk->cfg;
    struct compaction_limits lim = {.min_chunks = cfg->compaction_min_chunks,
                                    .small_bytes = (uint32_t)cfg->compaction_small_bytes,
                                    .max_run_bytes = (uint64_t)cfg->compaction_max_run_bytes};
    int64_t start, hwm;
    if (metastore_partition_offsets(pk->m, t->id, partition, &start, &hwm) != 0)
        return;
    int64_t young_ms = wall_ms() - cfg->compaction_min_age_ms;
    int64_t from = start;
    while (!pk->stop) {
        int n = metastore_find_chunks(pk->m, t->id, partition, from, page, LIST_PAGE);
        if (n <= 0)
            return;
        int old = 0;
        while (old < n && compaction_object_ms(page[old].object_key) < young_ms)
            old++;
        for (int i = 0, s, len; i < old && !pk->stop; i += s + len) {
            len = compaction_find_run(page + i, old - i, &lim, &s);
            if (len == 0)
                break;
            packer_add(pk, t, partition, page + i + s, len);
            if (!keep(arg, pk->m)) /* GETs and PUTs take time: the lease is renewed between runs */
                pk->stop = pk->lost = true;
        }
        if (old < n || n < LIST_PAGE)
            return;
        if (!keep(arg, pk->m)) {
            pk->stop = pk->lost = true;
            return;
        }
        from = page[n - 1].last_offset + 1; /* a run crossing the page border is split: fine */
    }
}

static bool compacted_topic(struct metastore *m, int64_t topic_id)
{
    struct topic_config *cfgs = NULL;
    int n = 0;
    if (metastore_topic_configs(m, topic_id, &cfgs, &n) != 0)
        return true; /* unknown: leave it */
    bool compact = false;
    for (int i = 0; i < n; i++)
        if (!strcmp(cfgs[i].key, "cleanup.policy"))
            compact = strstr(cfgs[i].value, "compact") != NULL;
    free(cfgs);
    return compact;
}

void compaction_round(struct metastore *m, struct objstore *objects, const struct config *cfg,
                      bool (*keep)(void *arg, struct metastore *m), void *arg, struct compaction_stats *st)
{
    struct topic_info *topics = NULL;
    int ntopics = 0;
    if (metastore_list_topics(m, &topics, &ntopics) != 0)
        return;
    struct chunk_ref *page = malloc(sizeof(*page) * LIST_PAGE);
    if (!page)
        abort();
    /* A round that ran out of budget is continued by the next from the topic it stopped in, so
     * busy first topics do not starve the others (one round at a time per process). */
    static int next_topic;
    struct packer pk = {.m = m, .objects = objects, .cfg = cfg, .st = st};
    for (int k = 0; k < ntopics && !pk.stop; k++) {
        int t = (next_topic + k) % ntopics;
        if (compacted_topic(m, topics[t].id)) /* key compaction rewrites those */
            continue;
        for (int32_t p = 0; p < topics[t].partitions && !pk.stop; p++) {
            compact_partition(&pk, &topics[t], p, page, keep, arg);
            if (!pk.stop && !keep(arg, m))
                pk.stop = pk.lost = true;
        }
        next_topic = pk.stop ? t : 0;
    }
    if (!pk.lost)
        packer_flush(&pk); /* what was read is written, unless the lease was lost */
    packer_clear(&pk);
    free(pk.runs);
    free(page);
    free(topics);
}
