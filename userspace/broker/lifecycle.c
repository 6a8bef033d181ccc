/* Background jobs: retention, compaction of small objects, key compaction of compacted topics,
 * deletion of unreferenced objects, garbage collection of objects never committed. Worker 0 of each
 * agent runs a round every retention-check-interval, as one job on its background thread with a
 * store handle of its own (the loop never waits on the store or the bucket, and a long round never
 * holds a store thread that fetches and commits need), under the lease "lifecycle" in
 * the metadata store: any number of agents may try, one at a time does the work. The holder keeps
 * renewing the lease round after round; if it dies, the lease expires and another agent takes over.
 *
 * Every step is safe to repeat or to stop half-way: retention moves a partition's log start and
 * drops its chunks in one transaction; an object is deleted only once no chunk points into it and
 * the grace period has passed since that was first seen (reads planned before still find it), and
 * forgotten by the store only after the bucket's delete succeeded (deleting a missing key is fine).
 * When the worker stops, the round ends at its next lease check. New job kinds add a step to the
 * round or a lease kind of their own. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker_internal.h"
#include "broker/compaction.h"
#include "broker/key_compaction.h"
#include "metrics/metrics.h"
#include "storage/objstore.h"
#include "util/clock.h"
#include "util/log.h"

#define LEASE_KIND "lifecycle"
#define LEASE_MIN_TTL_MS 3000
#define OBJECTS_PER_ROUND 1000
/* The bucket is listed every this many rounds (a listing costs a look-up per object). */
#define BUCKET_SCAN_EVERY 10

struct lifecycle_job {
    struct job base;
    const struct config *cfg;
    struct objstore *objects;
    char owner[64];
    int64_t ttl_ms;
    bool scan_bucket;
    const atomic_bool *stop;     /* the worker is stopping: end the round where it is */
    int64_t renewed_ms;          /* monotonic: when the lease was last taken or renewed */
    /* out: */
    int lease;                   /* metastore_lease_acquire's answer */
    int64_t chunks_expired;
    int64_t objects_deleted;
    int64_t uncommitted_deleted;
    struct compaction_stats compaction;
};

static int64_t config_long(const struct topic_config *cfgs, int n, const char *key, int64_t dflt)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(cfgs[i].key, key))
            return strtoll(cfgs[i].value, NULL, 10);
    return dflt;
}

static bool config_deletes(const struct topic_config *cfgs, int n)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(cfgs[i].key, "cleanup.policy"))
            return strstr(cfgs[i].value, "delete") != NULL;
    return true; /* Kafka's default cleanup.policy=delete */
}

/* A long round keeps its lease: renewed every third of its time to live. false when another
 * agent holds it now (this one stalled past the expiry), or when the worker stops: the round
 * stops (every step can stop half-way). */
static bool keep_lease(struct lifecycle_job *j, struct metastore *m)
{
    if (atomic_load(j->stop))
        return false;
    if (mono_ms() - j->renewed_ms > j->ttl_ms / 3) {
        if (metastore_lease_acquire(m, LEASE_KIND, j->owner, j->ttl_ms) == 1) {
            j->lease = 1;
            return false;
        }
        j->renewed_ms = mono_ms();
    }
    return true;
}

static bool keep_lease_cb(void *j, struct metastore *m) { return keep_lease(j, m); }

/* Drops each partition's chunks that retention.ms or retention.bytes no longer keeps. */
static void retention_round(struct lifecycle_job *j, struct metastore *m)
{
    struct topic_info *topics = NULL;
    int ntopics = 0;
    if (metastore_list_topics(m, &topics, &ntopics) != 0)
        return;
    for (int t = 0; t < ntopics; t++) {
        struct topic_config *cfgs = NULL;
        int ncfgs = 0;
        if (metastore_topic_configs(m, topics[t].id, &cfgs, &ncfgs) != 0)
            continue;
        int64_t ms = config_long(cfgs, ncfgs, "retention.ms", j->cfg->retention_ms);
        int64_t bytes = config_long(cfgs, ncfgs, "retention.bytes", j->cfg->retention_bytes);
        bool deletes = config_deletes(cfgs, ncfgs);
        free(cfgs);
        if (!deletes || (ms < 0 && bytes < 0))
            continue;
        int64_t min_ts = ms < 0 ? INT64_MIN : wall_ms() - ms;
        for (int32_t p = 0; p < topics[t].partitions; p++) {
            int64_t keep, start, hwm;
            if (metastore_retention_offset(m, topics[t].id, p, min_ts, bytes, &keep) != 0 ||
                metastore_partition_offsets(m, topics[t].id, p, &start, &hwm) != 0 || keep <= start)
                continue;
            int removed = 0;
            if (metastore_trim_partition(m, topics[t].id, p, keep, &start, &removed) == 0) {
                log_info("retention: %s-%d log start %" PRId64 " (%d chunks expired)", topics[t].name, p, start,
                         removed);
                j->chunks_expired += removed;
            }
        }
        if (!keep_lease(j, m))
            break;
    }
    free(topics);
}

/* Deletes the objects no chunk has pointed into for the grace period, then forgets them. */
static void unreferenced_round(struct lifecycle_job *j, struct metastore *m)
{
    char(*keys)[OBJECT_KEY_MAX] = NULL;
    int n = 0;
    if (metastore_objects_unreferenced(m, j->cfg->object_delete_grace_ms, OBJECTS_PER_ROUND, &keys, &n) != 0)
        return;
    for (int i = 0; i < n && keep_lease(j, m); i++) {
        if (objstore_delete(j->objects, keys[i]) != 0)
            continue; /* kept in the store: tried again next round */
        log_info("gc: deleted object %s (unreferenced)", keys[i]);
        metastore_object_forget(m, keys[i]);
        j->objects_deleted++;
    }
    free(keys);
}

/* ---- objects never committed: in the bucket, unknown to the store ---- */

struct listed_keys {
    char (*v)[OBJECT_KEY_MAX];
    int n, cap;
    int64_t older_than_ms;       /* wall clock: only keys written before this */
};

/* Object keys start with the wall-clock millisecond of their PUT: "objects/<13 digits>-..."
 * (broker/flusher.c). Anything else in the bucket is not ours to delete. */
static void on_listed(const char *key, uint64_t size, void *arg)
{
    (void)size;
    struct listed_keys *l = arg;
    const char *p = key + strlen("objects/");
    if (strncmp(key, "objects/", strlen("objects/")) != 0 || strlen(key) >= OBJECT_KEY_MAX)
        return;
    int64_t ms = 0;
    for (int i = 0; i < 13; i++) {
        if (p[i] < '0' || p[i] > '9')
            return;
        ms = ms * 10 + (p[i] - '0');
    }
    if (p[13] != '-' || ms >= l->older_than_ms)
        return; /* fresh: its commit may be in flight */
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->v = realloc(l->v, sizeof(*l->v) * (size_t)l->cap);
        if (!l->v)
            abort();
    }
    snprintf(l->v[l->n++], OBJECT_KEY_MAX, "%s", key);
}

static void uncommitted_round(struct lifecycle_job *j, struct metastore *m)
{
    struct listed_keys l = {.older_than_ms = wall_ms() - j->cfg->object_delete_grace_ms};
    if (objstore_list(j->objects, "objects/", on_listed, &l) == 0) {
        for (int i = 0; i < l.n && keep_lease(j, m); i++) {
            if (metastore_object_known(m, l.v[i]) != 0)
                continue; /* committed (or the store did not answer): never ours to delete */
            if (objstore_delete(j->objects, l.v[i]) == 0) {
                log_info("gc: deleted object %s (never committed)", l.v[i]);
                j->uncommitted_deleted++;
            }
        }
    }
    free(l.v);
}

static void lifecycle_run(struct job *job, struct metastore *m)
{
    struct lifecycle_job *j = (struct lifecycle_job *)job;
    j->lease = metastore_lease_acquire(m, LEASE_KIND, j->owner, j->ttl_ms);
    if (j->lease != 0)
        return;
    j->renewed_ms = mono_ms();
    retention_round(j, m);
    if (j->lease == 0 && j->cfg->compaction_enabled)
        compaction_round(m, j->objects, j->cfg, keep_lease_cb, j, &j->compaction);
    if (j->lease == 0)
        key_compaction_round(m, j->objects, j->cfg, keep_lease_cb, j);
    if (j->lease == 0)
        unreferenced_round(j, m);
    if (j->lease == 0 && j->scan_bucket)
        uncommitted_round(j, m);
}

static void lifecycle_done(struct broker *b, struct job *job)
{
    struct lifecycle_job *j = (struct lifecycle_job *)job;
    if (b) {
        struct lifecycle *lc = &b->lifecycle;
        lc->running = false;
        bool held = j->lease == 0;
        /* what was done counts even if the lease was lost half-way */
        metrics_add(M_CHUNKS_EXPIRED, (uint64_t)j->chunks_expired);
        metrics_add(M_OBJECTS_DELETED, (uint64_t)(j->objects_deleted + j->uncommitted_deleted));
        metrics_add(M_COMPACTIONS, (uint64_t)j->compaction.objects);
        metrics_add(M_CHUNKS_COMPACTED, (uint64_t)j->compaction.chunks);
        metrics_add(M_COMPACTION_BYTES, (uint64_t)j->compaction.bytes);
        metrics_add(M_COMPACTION_CONFLICTS, (uint64_t)j->compaction.conflicts);
        if (held) {
            if (!lc->held) {
                log_info("lifecycle: took the lease for retention and garbage collection (owner %s)", j->owner);
                metrics_add(M_LEASE_TAKEOVERS, 1);
            }
            metrics_add(M_JOB_RUNS, 1);
            lc->rounds++;
        } else if (lc->held && j->lease == 1) {
            log_info("lifecycle: the lease is held by another agent now");
        }
        if (j->lease >= 0)
            lc->held = held;
        if (b->draining)
            lifecycle_release(b);
    }
    free(j);
}

struct release_job {
    struct job base;
    char owner[64];
};

static void release_run(struct job *job, struct metastore *m)
{
    struct release_job *j = (struct release_job *)job;
    metastore_lease_release(m, LEASE_KIND, j->owner);
}

static void release_done(struct broker *b, struct job *job)
{
    (void)b;
    free(job);
}

/* A clean stop hands the lease on at once rather than after its expiry; never while a round runs
 * (another agent's round must not overlap it): lifecycle_done calls again. */
void lifecycle_release(struct broker *b)
{
    struct lifecycle *lc = &b->lifecycle;
    if (b->worker_id != 0 || !lc->held || lc->running)
        return;
    lc->held = false;
    struct release_job *j = calloc(1, sizeof(*j));
    if (!j)
        abort();
    j->base.run = release_run;
    j->base.done = release_done;
    snprintf(j->owner, sizeof(j->owner), "%s", b->self.id);
    jobs_submit(&b->background, &j->base);
}

int64_t lifecycle_next_deadline(struct broker *b)
{
    if (b->worker_id != 0 || b->draining || b->lifecycle.running)
        return INT64_MAX;
    return b->lifecycle.next_run_ms;
}

void lifecycle_tick(struct broker *b, int64_t now_ms)
{
    struct lifecycle *lc = &b->lifecycle;
    if (b->worker_id != 0 || b->draining || lc->running || now_ms < lc->next_run_ms)
        return;
    if (lc->next_run_ms == 0) { /* the first round one interval after start, not during it */
        lc->next_run_ms = now_ms + b->cfg->retention_check_ms;
        return;
    }
    lc->next_run_ms = now_ms + b->cfg->retention_check_ms;
    struct lifecycle_job *j = calloc(1, sizeof(*j));
    if (!j)
        abort();
    j->base.run = lifecycle_run;
    j->base.done = lifecycle_done;
    j->cfg = b->cfg;
    j->stop = &lc->stop;
    j->objects = b->objects;
    snprintf(j->owner, sizeof(j->owner), "%s", b->self.id);
    j->ttl_ms = 3 * b->cfg->retention_check_ms > LEASE_MIN_TTL_MS ? 3 * b->cfg->retention_check_ms
                                                                 : LEASE_MIN_TTL_MS;
    j->scan_bucket = lc->rounds % BUCKET_SCAN_EVERY == 0;
    lc->running = true;
    jobs_submit(&b->background, &j->base);
}
