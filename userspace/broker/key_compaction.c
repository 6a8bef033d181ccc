/* Key compaction, the job: for each partition of a topic with cleanup.policy containing "compact",
 * the cleanable range is its chunks from the log start up to, not including, the last one (Kafka
 * never cleans the active segment), stopping at the first chunk younger than
 * min.compaction.lag.ms or MIN_AGE_MS. The partition is cleaned when the bytes of chunks never
 * cleaned are at least min.cleanable.dirty.ratio of the range. A cleaning reads the range (ranged
 * GETs, at most ROUND_BYTES: a prefix beyond), builds the map key -> latest offset over its dirty
 * part (at most SLUICE_KEY_COMPACTION_MAP_BYTES: a prefix of the range when the keys do not fit,
 * as Kafka),
 * rewrites it (record/key_compact.h) into one new chunk per run of old chunks (each run's output at
 * most RUN_BYTES), PUTs them as one object in the standard format and switches them in with
 * metastore_replace_chunks (one transaction; the old objects become garbage for GC). Tombstones go
 * when their timestamp is older than delete.retention.ms at a cleaning (Kafka: older than the
 * delete horizon of the segment that was cleaned); a partition whose oldest kept tombstone has
 * expired is cleaned even when not dirty enough. */
#include "broker/key_compaction.h"
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/metrics.h"
#include "record/key_compact.h"
#include "storage/metastore.h"
#include "storage/object_format.h"
#include "storage/objstore.h"
#include "util/clock.h"
#include "util/log.h"

#define MAX_CHUNKS 1024
#define MIN_AGE_MS 3000                       /* never clean what was produced just now */
#define ROUND_BYTES ((size_t)64 << 20)        /* chunk bytes read per partition per round */
#define RUN_BYTES ((size_t)4 << 20)           /* output of one new chunk */

struct kc_ctx {
    struct metastore *m;
    struct objstore *objects;
    bool (*keep)(void *arg, struct metastore *m);
    void *keep_arg;
    size_t map_bytes;
    const char *owner;           /* the agent's id, in new object keys */
};

static const char *config_get(const struct topic_config *cfgs, int n, const char *key)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(cfgs[i].key, key))
            return cfgs[i].value;
    return NULL;
}


/* When a partition's oldest kept tombstone expires (its timestamp + delete.retention.ms): it is
 * cleaned then even below min.cleanable.dirty.ratio. Remembered by this worker only (the lease's
 * next holder waits for the next dirty cleaning, as Kafka without KIP-534); rounds never overlap. */
#define DUE_MAX 256
static struct tombstones_due {
    int64_t topic_id;
    int32_t partition;
    int64_t due_ms; /* 0: free slot */
} due[DUE_MAX];

static struct tombstones_due *due_find(int64_t topic_id, int32_t partition, bool add)
{
    struct tombstones_due *free_slot = NULL;
    for (int i = 0; i < DUE_MAX; i++) {
        if (due[i].due_ms && due[i].topic_id == topic_id && due[i].partition == partition)
            return &due[i];
        if (!due[i].due_ms && !free_slot)
            free_slot = &due[i];
    }
    if (add && free_slot)
        *free_slot = (struct tombstones_due){topic_id, partition, 0};
    return add ? free_slot : NULL;
}

struct topic_rules {
    int64_t delete_retention_ms, min_lag_ms;
    double min_dirty_ratio;
};

/* The chunks to clean: how many of refs[0, n), 0 when the partition is not due. */
static int cleanable(const struct chunk_ref *refs, int n, const struct topic_rules *r, int64_t now,
                     bool tombstones_due)
{
    int64_t lag = r->min_lag_ms > MIN_AGE_MS ? r->min_lag_ms : MIN_AGE_MS;
    int k = 0;
    uint64_t dirty = 0, total = 0;
    while (k < n - 1 && refs[k].max_timestamp <= now - lag && total + refs[k].len <= ROUND_BYTES) {
        total += refs[k].len;
        if (!refs[k].cleaned)
            dirty += refs[k].len;
        k++;
    }
    if (!tombstones_due && (dirty == 0 || (double)dirty < r->min_dirty_ratio * (double)total))
        return 0;
    return k;
}

static void clean_partition(struct kc_ctx *c, const struct topic_info *t, int32_t p, const struct topic_rules *r)
{
    int64_t start, hwm;
    if (metastore_partition_offsets(c->m, t->id, p, &start, &hwm) != 0)
        return;
    struct chunk_ref *refs = malloc(MAX_CHUNKS * sizeof(*refs));
    struct buf *data = NULL;
    struct key_map *km = NULL;
    struct chunk_replacement *runs = NULL;
    struct object_builder ob;
    object_builder_init(&ob);
    if (!refs)
        goto out;
    int n = metastore_find_chunks(c->m, t->id, p, start, refs, MAX_CHUNKS);
    int64_t now = wall_ms();
    struct tombstones_due *d = due_find(t->id, p, false);
    int k = n > 0 ? cleanable(refs, n, r, now, d && d->due_ms <= now) : 0;
    if (k == 0)
        goto out;
    data = calloc((size_t)k, sizeof(*data));
    km = key_map_new(c->map_bytes);
    runs = calloc((size_t)k, sizeof(*runs));
    if (!data || !km || !runs)
        goto out;
    /* 1. read the range and map each key to its latest offset in the dirty part: each key is once
     * in the cleaned chunks before it (they were cleaned together), so the map need not hold them
     * (Kafka's cleaner maps the dirty section only, too) */
    bool leading_clean = true;
    for (int i = 0; i < k; i++) {
        buf_init(&data[i]);
        if (objstore_get_range(c->objects, refs[i].object_key, refs[i].pos, refs[i].len, &data[i]) != 0) {
            log_warn("key compaction: %s-%d: cannot read %s, not cleaned this round", t->name, p, refs[i].object_key);
            k = i + 1;
            goto out;
        }
        leading_clean = leading_clean && refs[i].cleaned;
        if (leading_clean)
            continue;
        int rc = key_map_add_chunk(km, data[i].data, data[i].len, refs[i].base_offset, refs[i].last_offset);
        if (rc < 0) {
            log_error("key compaction: %s-%d: chunk %s@%" PRIu64 " does not parse, not cleaned", t->name, p,
                      refs[i].object_key, refs[i].pos);
            k = i + 1;
            goto out;
        }
        if (rc == 1) { /* the map is full: clean the chunks before this one */
            buf_free(&data[i]);
            bool first_dirty = i == 0 || refs[i - 1].cleaned;
            k = i;
            if (first_dirty) { /* not even one dirty chunk fits: nothing to gain */
                log_warn("key compaction: %s-%d: the keys of one chunk do not fit in the map "
                         "(SLUICE_KEY_COMPACTION_MAP_BYTES), not cleaned", t->name, p);
                goto out;
            }
            break;
        }
    }
    /* 2. rewrite it, one new chunk per run of old chunks */
    struct key_compact_stats st = {.first_tombstone_kept = INT64_MAX};
    int nruns = 0;
    size_t run_start = 0;
    for (int i = 0; i < k; i++) {
        if (nruns == 0 || ob.data.len - run_start >= RUN_BYTES) {
            if (nruns > 0)
                object_builder_end_chunk(&ob);
            object_builder_begin_chunk(&ob, t->uuid, p);
            run_start = ob.data.len;
            runs[nruns++] = (struct chunk_replacement){.topic_id = t->id, .partition = p,
                                                       .base_offset = refs[i].base_offset, .cleaned = true};
        }
        struct chunk_replacement *run = &runs[nruns - 1];
        struct buf out;
        buf_init(&out);
        int32_t before = st.batches_out;
        if (key_compact_chunk(km, data[i].data, data[i].len, refs[i].base_offset, refs[i].last_offset,
                              now - r->delete_retention_ms, &out, &st) != 0) {
            buf_free(&out);
            log_error("key compaction: %s-%d: chunk %s@%" PRIu64 " does not parse, not cleaned", t->name, p,
                      refs[i].object_key, refs[i].pos);
            goto out;
        }
        object_builder_append(&ob, out.data, out.len, st.batches_out - before,
                              refs[i].last_offset - refs[i].base_offset + 1, refs[i].first_timestamp,
                              refs[i].max_timestamp);
        buf_free(&out);
        run->last_offset = refs[i].last_offset;
        run->old_chunks++;
        run->batch_count += st.batches_out - before;
    }
    object_builder_end_chunk(&ob);
    object_builder_finish(&ob);
    for (int i = 0; i < nruns; i++) {
        runs[i].pos = ob.chunks[i].pos;
        runs[i].len = ob.chunks[i].len;
    }
    /* 3. store it and switch it in */
    static unsigned long long seq;
    char key[OBJECT_KEY_MAX];
    snprintf(key, sizeof(key), "objects/%013lld-%s-kc%06llu.obj", (long long)wall_ms(), c->owner, ++seq);
    if (objstore_put(c->objects, key, ob.data.data, ob.data.len) != 0) {
        log_warn("key compaction: %s-%d: PUT %s failed, not cleaned this round", t->name, p, key);
        goto out;
    }
    int replaced = metastore_replace_chunks(c->m, key, ob.data.len, runs, nruns);
    if (replaced <= 0) {
        log_warn("key compaction: %s-%d: the chunks changed meanwhile (or the store failed), not cleaned", t->name,
                 p);
        goto out;
    }
    if ((d = due_find(t->id, p, st.first_tombstone_kept != INT64_MAX)))
        d->due_ms = st.first_tombstone_kept == INT64_MAX ? 0 : st.first_tombstone_kept + r->delete_retention_ms + 1;
    metrics_add(M_KEY_COMPACTIONS, 1);
    metrics_add(M_RECORDS_CLEANED, (uint64_t)(st.records_in - st.records_kept));
    log_info("key compaction: %s-%d offsets %" PRId64 "-%" PRId64 ": %d chunks into %d, %" PRId64
             " of %" PRId64 " records kept (%" PRId64 " tombstones removed), %zu keys",
             t->name, p, refs[0].base_offset, refs[k - 1].last_offset, k, nruns, st.records_kept, st.records_in,
             st.tombstones_removed, key_map_count(km));
out:
    if (data)
        for (int i = 0; i < k; i++)
            buf_free(&data[i]);
    free(data);
    key_map_free(km);
    free(runs);
    object_builder_free(&ob);
    free(refs);
}

void key_compaction_round(struct metastore *m, struct objstore *objects, const struct config *cfg,
                          bool (*keep)(void *arg, struct metastore *m), void *arg)
{
    struct kc_ctx c = {.m = m, .objects = objects, .keep = keep, .keep_arg = arg,
                       .map_bytes = (size_t)cfg->key_compaction_map_bytes, .owner = cfg->agent_id};
    struct topic_info *topics = NULL;
    int ntopics = 0;
    if (metastore_list_topics(m, &topics, &ntopics) != 0)
        return;
    bool stop = false;
    for (int t = 0; t < ntopics && !stop; t++) {
        struct topic_config *cfgs = NULL;
        int ncfgs = 0;
        if (metastore_topic_configs(m, topics[t].id, &cfgs, &ncfgs) != 0)
            continue;
        const char *policy = config_get(cfgs, ncfgs, "cleanup.policy");
        const char *v;
        struct topic_rules r = {.delete_retention_ms = 86400000, .min_lag_ms = 0, .min_dirty_ratio = 0.5};
        if ((v = config_get(cfgs, ncfgs, "delete.retention.ms")))
            r.delete_retention_ms = strtoll(v, NULL, 10);
        if ((v = config_get(cfgs, ncfgs, "min.compaction.lag.ms")))
            r.min_lag_ms = strtoll(v, NULL, 10);
        if ((v = config_get(cfgs, ncfgs, "min.cleanable.dirty.ratio")))
            r.min_dirty_ratio = strtod(v, NULL);
        bool compacted = policy && strstr(policy, "compact");
        free(cfgs);
        if (!compacted)
            continue;
        for (int32_t p = 0; p < topics[t].partitions; p++) {
            if (!keep(arg, m)) {
                stop = true;
                break;
            }
            clean_partition(&c, &topics[t], p, &r);
        }
    }
    free(topics);
}
