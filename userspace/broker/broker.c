#include "broker/broker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker_internal.h"
#include "broker/notify.h"
#include "broker/sasl.h"
#include "metrics/metrics.h"
#include "server/conn.h"
#include "server/server.h"
#include "util/clock.h"
#include "util/log.h"

/* The APIs sluice serves. Every one is advertised from version 0 (librdkafka only enables
 * compression and consumer groups when the ranges include 0); the handlers answer the old versions
 * they cannot honour with an error. */
const struct api_handler api_handlers[] = {
    {KAPI_PRODUCE, 11, handle_produce},
    {KAPI_FETCH, 12, handle_fetch},
    {KAPI_LIST_OFFSETS, 9, handle_list_offsets},
    {KAPI_METADATA, 12, handle_metadata},
    {KAPI_API_VERSIONS, 3, handle_api_versions},
    {KAPI_CREATE_TOPICS, 7, handle_create_topics},
    {KAPI_DELETE_TOPICS, 5, handle_delete_topics},
    {KAPI_FIND_COORDINATOR, 4, handle_find_coordinator},
    {KAPI_JOIN_GROUP, 9, handle_join_group},
    {KAPI_SYNC_GROUP, 5, handle_sync_group},
    {KAPI_HEARTBEAT, 4, handle_heartbeat},
    {KAPI_LEAVE_GROUP, 5, handle_leave_group},
    {KAPI_OFFSET_COMMIT, 8, handle_offset_commit},
    {KAPI_OFFSET_FETCH, 8, handle_offset_fetch},
    {KAPI_LIST_GROUPS, 4, handle_list_groups},
    {KAPI_DESCRIBE_GROUPS, 5, handle_describe_groups},
    {KAPI_DELETE_GROUPS, 2, handle_delete_groups},
    {KAPI_OFFSET_DELETE, 0, handle_offset_delete},
    {KAPI_DESCRIBE_CONFIGS, 4, handle_describe_configs},
    {KAPI_ALTER_CONFIGS, 2, handle_alter_configs},
    {KAPI_CREATE_PARTITIONS, 3, handle_create_partitions},
    {KAPI_INCREMENTAL_ALTER_CONFIGS, 1, handle_incremental_alter_configs},
    {KAPI_DESCRIBE_CLUSTER, 1, handle_describe_cluster},
    {KAPI_INIT_PRODUCER_ID, 5, handle_init_producer_id},
    {KAPI_DESCRIBE_PRODUCERS, 0, handle_describe_producers},
    {KAPI_DESCRIBE_ACLS, 3, handle_describe_acls},
    {KAPI_CREATE_ACLS, 3, handle_create_acls},
    {KAPI_DELETE_RECORDS, 2, handle_delete_records},
    {KAPI_DELETE_ACLS, 3, handle_delete_acls},
    {KAPI_SASL_HANDSHAKE, 1, handle_sasl_handshake},
    {KAPI_SASL_AUTHENTICATE, 2, handle_sasl_authenticate},
    {KAPI_DESCRIBE_USER_SCRAM_CREDENTIALS, 0, handle_describe_user_scram_credentials},
    {KAPI_ALTER_USER_SCRAM_CREDENTIALS, 0, handle_alter_user_scram_credentials},
};
const int api_handlers_len = (int)(sizeof(api_handlers) / sizeof(api_handlers[0]));

/* ---- membership: heartbeats on a store thread ---- */

/* Rows of members dead this long are deleted (one row per worker incarnation accumulates otherwise). */
#define MEMBER_PRUNE_AFTER_MS (3600 * 1000)
/* Worker 0 of each agent prunes once every this many heartbeats. */
#define PRUNE_EVERY_HEARTBEATS 60

struct heartbeat_job {
    struct job base;
    struct member_info self;
    const struct config *cfg;
    bool prune;
    bool leave;                  /* remove the member instead (clean stop) */
    int64_t submitted_ms;
    int rc;                      /* the heartbeat's */
    struct member_info *members; /* the group as read after it */
    int nmembers;
    int list_rc;
};

static void heartbeat_run(struct job *job, struct metastore *m)
{
    struct heartbeat_job *j = (struct heartbeat_job *)job;
    if (j->leave) {
        j->rc = metastore_remove_member(m, j->self.id);
        j->list_rc = -1;
        return;
    }
    j->rc = metastore_heartbeat(m, &j->self);
    if (j->prune) {
        metastore_prune_members(m, MEMBER_PRUNE_AFTER_MS);
        groups_sweep(m, wall_ms());
        metastore_offsets_expire(m, j->cfg->offsets_retention_ms);
    }
    j->list_rc = metastore_list_members(m, j->cfg->agent_group, j->cfg->heartbeat_timeout_ms, &j->members,
                                        &j->nmembers);
}

static void heartbeat_done(struct broker *b, struct job *job)
{
    struct heartbeat_job *j = (struct heartbeat_job *)job;
    if (b) {
        b->heartbeat_inflight = false;
        if (j->rc != 0 && !j->leave)
            log_warn("worker %d: heartbeat to the metadata store failed", b->worker_id);
        /* A heartbeat that waited long for the store (an outage) reads a group whose other members
         * could not heartbeat either: that view would call live workers dead. Wait for the next. */
        bool stale = mono_ms() - j->submitted_ms > b->cfg->heartbeat_timeout_ms / 3;
        if (j->list_rc == 0 && !stale) {
            membership_set(&b->members, j->members, j->nmembers);
            j->members = NULL;
            if (b->on_membership)
                b->on_membership(&b->members, b->on_membership_arg);
        }
    }
    free(j->members);
    free(j);
}

/* Tells the group this worker is alive (or, leaving, that it is gone), and learns who else is. */
static void heartbeat(struct broker *b, int64_t now_ms, bool leave)
{
    b->next_heartbeat_ms = now_ms + b->cfg->heartbeat_timeout_ms / 6;
    if (b->heartbeat_inflight && !leave)
        return; /* the store is slow: one heartbeat at a time */
    struct heartbeat_job *j = calloc(1, sizeof(*j));
    if (!j)
        abort();
    j->base.run = heartbeat_run;
    j->base.done = heartbeat_done;
    j->self = b->self;
    j->cfg = b->cfg;
    j->leave = leave;
    j->prune = b->worker_id == 0 && ++b->heartbeats % PRUNE_EVERY_HEARTBEATS == 1;
    j->submitted_ms = now_ms;
    b->heartbeat_inflight = true;
    jobs_submit_first(&b->store, &j->base);
}

void broker_on_membership(struct broker *b, membership_cb cb, void *arg)
{
    b->on_membership = cb;
    b->on_membership_arg = arg;
    if (b->members.known)
        cb(&b->members, arg);
}

static const struct api_handler *handler_for(int16_t key)
{
    for (int i = 0; i < api_handlers_len; i++)
        if (api_handlers[i].key == key)
            return &api_handlers[i];
    return NULL;
}

bool broker_serves(int16_t api_key, int16_t version)
{
    const struct api_handler *h = handler_for(api_key);
    const struct kapi *api = kapi_find(api_key);
    return h && api && version >= 0 && version <= h->max_ver && version >= api->min_ver && version <= api->max_ver;
}

/* Before the loop runs, the worker learns the topics and the group with one handle of its own
 * (the only store calls ever made on the loop thread: nothing is served yet). */
static int load_startup_state(struct broker *b, char *err, size_t errlen)
{
    struct metastore *m = metastore_open(b->cfg->metadata_url, err, errlen);
    if (!m)
        return -1;
    int rc = topics_load(b, m);
    if (rc != 0)
        snprintf(err, errlen, "cannot list topics");
    else if ((rc = authz_load(b, m)) != 0)
        snprintf(err, errlen, "cannot list ACLs");
    else
        membership_refresh(&b->members, m, b->cfg);
    metastore_close(m);
    return rc;
}

struct broker *broker_create(const struct config *cfg, struct server *srv, int worker_id)
{
    struct broker *b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    b->cfg = cfg;
    b->srv = srv;
    b->worker_id = worker_id;
    b->produce_next_deadline = INT64_MAX;
    /* Enough recycled memory for a couple of full flushes; beyond that an idle worker frees it. */
    buf_pool_init(&b->chunk_bufs, (size_t)(cfg->batch_max_bytes < cfg->produce_buffer_bytes / 2
                                               ? 2 * cfg->batch_max_bytes
                                               : cfg->produce_buffer_bytes));
    char err[512] = "";
    b->objects = objstore_open(cfg->bucket_url, err, sizeof(err));
    if (!b->objects) {
        log_error("object store %s: %s", cfg->bucket_url, err);
        goto fail;
    }
    read_cache_init(&b->cache, (size_t)cfg->fetch_cache_bytes);
    member_self(cfg, worker_id, &b->self);
    /* Learn the group now (Metadata answers need it), but join it only once listening (see
     * broker_started): with XDP, other hosts forward this worker's slots here as soon as it has. */
    if (load_startup_state(b, err, sizeof(err)) != 0) {
        log_error("metadata store %s: %s", cfg->metadata_url, err);
        goto fail;
    }
    if (jobs_start(&b->store, STORE_THREADS, cfg->metadata_url, srv, err, sizeof(err)) != 0) {
        log_error("metadata store %s: %s", cfg->metadata_url, err);
        goto fail;
    }
    b->store_started = true;
    if (notify_start(&b->notify, cfg, srv, err, sizeof(err)) != 0) {
        log_error("metadata store %s: %s", cfg->metadata_url, err);
        goto fail;
    }
    if (jobs_start(&b->checker, 1, NULL, srv, err, sizeof(err)) != 0) {
        log_error("record checker: %s", err);
        goto fail;
    }
    b->checker_started = true;
    if (worker_id == 0) {
        if (jobs_start(&b->background, 1, cfg->metadata_url, srv, err, sizeof(err)) != 0) {
            log_error("metadata store %s: %s", cfg->metadata_url, err);
            goto fail;
        }
        b->background_started = true;
    }
    if (reader_start(&b->reader, b->objects, srv, chunks_read_done) != 0)
        goto fail;
    b->reader_started = true;
    b->reader.bytes_max = (uint64_t)cfg->fetch_read_bytes;
    if (flusher_start(&b->flusher, cfg, srv, worker_id, err, sizeof(err)) != 0) {
        log_error("flusher: %s", err);
        goto fail;
    }
    log_info("worker %d storage: objects in %s, metadata in %s, %d topics", worker_id, cfg->bucket_url,
             cfg->metadata_url, b->topics.n);
    return b;
fail:
    broker_destroy(b);
    return NULL;
}

void broker_destroy(struct broker *b)
{
    if (!b)
        return;
    fetch_cancel_all(b);
    groups_free(b);
    flusher_stop(&b->flusher);
    if (b->reader_started)
        reader_stop(&b->reader);
    notify_stop(&b->notify);
    if (b->store_started)
        jobs_stop(&b->store);
    if (b->checker_started)
        jobs_stop(&b->checker);
    if (b->background_started)
        jobs_stop(&b->background);
    if (b->objects)
        objstore_close(b->objects);
    topics_free(b);
    authz_free(b);
    free(b->parked.v);
    membership_free(&b->members);
    if (b->cache.slots)
        read_cache_free(&b->cache);
    buf_pool_free(&b->chunk_bufs);
    free(b);
}

static void broker_attach(struct broker *b);

void broker_started(struct broker *b)
{
    broker_attach(b);
    heartbeat(b, mono_ms(), false);
}

void broker_handle(struct broker *b, struct request *rq)
{
    const struct api_handler *h = handler_for(rq->hdr.api_key);
    log_debug("%s v%d correlation=%d %s", rq->api->name, rq->hdr.api_version, rq->hdr.correlation_id,
              request_who(rq));
    if (!sasl_gate(b, rq))
        return;
    h->fn(b, rq);
}

static int64_t broker_next_deadline(struct broker *b)
{
    int64_t d = fetch_next_deadline(b);
    if (b->current && b->current->deadline_ms < d)
        d = b->current->deadline_ms;
    if (produce_flush_ready(b))
        d = 0; /* group commit: the next tick flushes at once */
    if (b->waiters && b->next_hwm_poll_ms < d)
        d = b->next_hwm_poll_ms;
    if (topics_next_deadline(b) < d)
        d = topics_next_deadline(b);
    if (!b->draining && b->next_heartbeat_ms < d)
        d = b->next_heartbeat_ms;
    if (produce_next_deadline(b) < d)
        d = produce_next_deadline(b);
    if (groups_next_deadline(b) < d)
        d = groups_next_deadline(b);
    if (authz_enabled(b) && !b->authz.refreshing && b->authz.next_refresh_ms < d)
        d = b->authz.next_refresh_ms;
    if (lifecycle_next_deadline(b) < d)
        d = lifecycle_next_deadline(b);
    return d;
}

static void broker_tick(struct broker *b, int64_t now_ms)
{
    produce_maybe_flush(b, now_ms, b->draining);
    produce_expire(b, now_ms);
    /* Waiting fetches look for commits of other workers and agents this often (PostgreSQL also
     * announces them: see broker_on_wakeup). */
    if (b->waiters && now_ms >= b->next_hwm_poll_ms) {
        fetch_poll_offsets(b);
        b->next_hwm_poll_ms = now_ms + b->cfg->commit_poll_ms;
    } else if (!b->waiters) {
        b->next_hwm_poll_ms = now_ms + b->cfg->commit_poll_ms;
    }
    fetch_wake(b, now_ms, false);
    topics_tick(b, now_ms);
    groups_tick(b, now_ms);
    authz_tick(b, now_ms);
    lifecycle_tick(b, now_ms);
    if (!b->draining && now_ms >= b->next_heartbeat_ms)
        heartbeat(b, now_ms, false);
    metrics_set(M_PRODUCE_BUFFERED_BYTES, b->produce_bytes);
    /* Last, before the loop sleeps: the object reads this turn's requests asked for, coalesced. */
    chunks_submit(b);
}

static void broker_on_wakeup(struct broker *b)
{
    if (b->reader_started)
        reader_complete(b);
    jobs_complete(&b->store, b);
    jobs_complete(&b->checker, b);
    if (b->background_started)
        jobs_complete(&b->background, b);
    struct flush_batch *done = flusher_take_done(&b->flusher);
    bool committed = false;
    while (done) {
        struct flush_batch *next = done->next;
        produce_complete(b, done);
        committed = committed || !done->error;
        flush_batch_free(done);
        done = next;
    }
    produce_unpark(b);
    metrics_set(M_PRODUCE_BUFFERED_BYTES, b->produce_bytes);
    /* A flush finished: room in the queue, so a due batch can go now. */
    produce_maybe_flush(b, mono_ms(), b->draining);
    if (committed)
        fetch_wake(b, mono_ms(), true);
    /* Another process committed: the offsets waiting fetches need, now. */
    if (notify_take(&b->notify)) {
        if (b->waiters)
            fetch_poll_offsets(b);
        groups_notified(b); /* a group may have changed too */
    }
}

static void broker_begin_drain(struct broker *b)
{
    b->draining = true;
    /* Leave the group now rather than after the heartbeat timeout: the slots move at once. */
    heartbeat(b, mono_ms(), true);
    produce_maybe_flush(b, mono_ms(), true);
    fetch_cancel_all(b);
    groups_drain(b);
    atomic_store(&b->lifecycle.stop, true);
    lifecycle_release(b);
}

static bool broker_drained(struct broker *b)
{
    return !b->current && b->parked.n == 0 && b->flusher.queued == 0 && !b->waiters && !b->reader.inflight &&
           b->store.inflight == 0 && b->checker.inflight == 0 && b->background.inflight == 0 &&
           b->group_parked.n == 0;
}

/* ---- the loop's callbacks (server/server.h) ---- */

static void app_frame(void *ctx, struct conn *c, struct reply *reply, struct buf *frame)
{
    request_dispatch(ctx, c, reply, frame);
}

static void app_conn_closed(void *ctx, struct conn *c)
{
    fetch_cancel_conn(ctx, c);
    produce_cancel_conn(ctx, c);
    groups_cancel_conn(ctx, c);
    sasl_conn_closed(c);
}

static int64_t app_next_deadline(void *ctx)
{
    return broker_next_deadline(ctx);
}

static void app_tick(void *ctx, int64_t now_ms)
{
    broker_tick(ctx, now_ms);
}

static void app_wakeup(void *ctx)
{
    broker_on_wakeup(ctx);
}

static void app_begin_drain(void *ctx)
{
    broker_begin_drain(ctx);
}

static bool app_drained(void *ctx)
{
    return broker_drained(ctx);
}

static void broker_attach(struct broker *b)
{
    struct server_app app = {
        .ctx = b,
        .frame = app_frame,
        .conn_closed = app_conn_closed,
        .next_deadline = app_next_deadline,
        .tick = app_tick,
        .wakeup = app_wakeup,
        .begin_drain = app_begin_drain,
        .drained = app_drained,
    };
    server_set_app(b->srv, &app);
}
