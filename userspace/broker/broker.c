#include "broker/broker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker_internal.h"
#include "server/conn.h"
#include "server/server.h"
#include "util/clock.h"
#include "util/log.h"

/* Topics created or deleted elsewhere are learnt within this. */
#define TOPIC_REFRESH_MS 2000

/* The APIs sluice serves. Every one is advertised from version 0 (see KAFKA-NOTES.md: librdkafka
 * only enables compression and consumer groups when the ranges include 0); the handlers answer the
 * old versions they cannot honour with an error. */
const struct api_handler api_handlers[] = {
    {KAPI_PRODUCE, 11, handle_produce},
    {KAPI_FETCH, 12, handle_fetch},
    {KAPI_LIST_OFFSETS, 9, handle_list_offsets},
    {KAPI_METADATA, 12, handle_metadata},
    {KAPI_API_VERSIONS, 3, handle_api_versions},
    {KAPI_CREATE_TOPICS, 7, handle_create_topics},
    {KAPI_DELETE_TOPICS, 5, handle_delete_topics},
};
const int api_handlers_len = (int)(sizeof(api_handlers) / sizeof(api_handlers[0]));

/* Tells the group this worker is alive, and learns who else is. */
/* Rows of members dead this long are deleted (one row per worker incarnation accumulates otherwise). */
#define MEMBER_PRUNE_AFTER_MS (3600 * 1000)
/* Worker 0 of each agent prunes once every this many heartbeats. */
#define PRUNE_EVERY_HEARTBEATS 60

static void heartbeat(struct broker *b, int64_t now_ms)
{
    b->next_heartbeat_ms = now_ms + b->cfg->heartbeat_timeout_ms / 6;
    if (metastore_heartbeat(b->meta, &b->self) != 0)
        log_warn("worker %d: heartbeat to the metadata store failed", b->worker_id);
    if (b->worker_id == 0 && ++b->heartbeats % PRUNE_EVERY_HEARTBEATS == 1)
        metastore_prune_members(b->meta, MEMBER_PRUNE_AFTER_MS);
    if (membership_refresh(&b->members, b->meta, b->cfg) == 0 && b->on_membership)
        b->on_membership(&b->members, b->on_membership_arg);
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

struct broker *broker_create(const struct config *cfg, struct server *srv, int worker_id)
{
    struct broker *b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    b->cfg = cfg;
    b->srv = srv;
    b->worker_id = worker_id;
    char err[512] = "";
    b->objects = objstore_open(cfg->bucket_url, err, sizeof(err));
    if (!b->objects) {
        log_error("object store %s: %s", cfg->bucket_url, err);
        goto fail;
    }
    b->meta = metastore_open(cfg->metadata_url, err, sizeof(err));
    if (!b->meta) {
        log_error("metadata store %s: %s", cfg->metadata_url, err);
        goto fail;
    }
    if (topics_refresh(b) != 0) {
        log_error("metadata store %s: cannot list topics", cfg->metadata_url);
        goto fail;
    }
    read_cache_init(&b->cache, (size_t)cfg->fetch_cache_bytes);
    b->next_topic_refresh_ms = mono_ms() + TOPIC_REFRESH_MS;
    member_self(cfg, worker_id, &b->self);
    /* Learn the group now (Metadata answers need it), but join it only once listening (see
     * broker_started): with XDP, other hosts forward this worker's slots here as soon as it has. */
    membership_refresh(&b->members, b->meta, cfg);
    if (!b->objects->local_reads) {
        if (reader_start(&b->reader, b->objects, srv) != 0)
            goto fail;
        b->reader_started = true;
    }
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
    flusher_stop(&b->flusher);
    if (b->reader_started)
        reader_stop(&b->reader);
    if (b->meta)
        metastore_close(b->meta);
    if (b->objects)
        objstore_close(b->objects);
    for (int i = 0; i < b->topics.n; i++)
        free(b->topics.topics[i].parts);
    free(b->topics.topics);
    membership_free(&b->members);
    if (b->cache.slots)
        read_cache_free(&b->cache);
    free(b);
}

/* Another agent committed (PostgreSQL NOTIFY): offsets are stale, waiting fetches may have data. */
static void on_store_notification(struct server *srv, void *arg)
{
    struct broker *b = arg;
    if (metastore_consume_notifications(b->meta) > 0) {
        b->offsets_epoch++;
        fetch_wake(b, mono_ms(), true);
    }
    server_watch_fd(srv, metastore_notify_fd(b->meta), on_store_notification, b);
}

static void broker_attach(struct broker *b);

void broker_started(struct broker *b)
{
    broker_attach(b);
    heartbeat(b, mono_ms());
    server_watch_fd(b->srv, metastore_notify_fd(b->meta), on_store_notification, b);
}

void broker_handle(struct broker *b, struct request *rq)
{
    const struct api_handler *h = handler_for(rq->hdr.api_key);
    log_debug("%s v%d correlation=%d %s", rq->api->name, rq->hdr.api_version, rq->hdr.correlation_id,
              request_who(rq));
    h->fn(b, rq);
}

static int64_t broker_next_deadline(struct broker *b)
{
    int64_t d = fetch_next_deadline(b);
    if (b->current && b->current->deadline_ms < d)
        d = b->current->deadline_ms;
    if (b->waiters && b->next_hwm_poll_ms < d)
        d = b->next_hwm_poll_ms;
    if (b->next_topic_refresh_ms < d)
        d = b->next_topic_refresh_ms;
    if (!b->draining && b->next_heartbeat_ms < d)
        d = b->next_heartbeat_ms;
    return d;
}

static void broker_tick(struct broker *b, int64_t now_ms)
{
    produce_maybe_flush(b, now_ms, b->draining);
    /* Other calls on this connection may have read a notification off the socket before the
     * watch saw it: drain them here while fetches wait (one non-blocking recv). */
    if (b->waiters && metastore_consume_notifications(b->meta) > 0) {
        b->offsets_epoch++;
        b->next_hwm_poll_ms = 0;
    }
    bool poll = b->waiters && now_ms >= b->next_hwm_poll_ms;
    if (poll || !b->waiters)
        b->next_hwm_poll_ms = now_ms + b->cfg->commit_poll_ms;
    fetch_wake(b, now_ms, poll);
    if (now_ms >= b->next_topic_refresh_ms) {
        topics_refresh(b);
        b->next_topic_refresh_ms = now_ms + TOPIC_REFRESH_MS;
    }
    if (!b->draining && now_ms >= b->next_heartbeat_ms) {
        heartbeat(b, now_ms);
        /* The store may have reconnected (new socket): keep watching it. */
        server_watch_fd(b->srv, metastore_notify_fd(b->meta), on_store_notification, b);
    }
}

/* Reads finished on the reader threads: cache them and resume the requests that waited. */
static void complete_reads(struct broker *b)
{
    struct read_job *done = reader_take_done(&b->reader);
    while (done) {
        struct read_job *next = done->next;
        if (done->error) {
            log_error("reading %u bytes at %llu of object %s failed", done->len, (unsigned long long)done->pos,
                      done->key);
            broker_note_read_failure(b, done->key, done->pos, done->len);
        } else {
            read_cache_put(&b->cache, done->key, done->pos, done->len, &done->data);
        }
        for (int i = 0; i < done->nwaiters; i++) {
            struct request *rq = done->waiters[i];
            if (--rq->reads_pending == 0 && rq->resume) {
                void (*resume)(void *, struct request *) = rq->resume;
                rq->resume = NULL;
                resume(b, rq);
            }
        }
        read_job_free(done);
        done = next;
    }
}

static void broker_on_wakeup(struct broker *b)
{
    if (b->reader_started)
        complete_reads(b);
    struct flush_batch *done = flusher_take_done(&b->flusher);
    bool committed = false;
    while (done) {
        struct flush_batch *next = done->next;
        produce_complete(b, done);
        committed = committed || !done->error;
        flush_batch_free(done);
        done = next;
    }
    /* A flush finished: room in the queue, so a due batch can go now. */
    produce_maybe_flush(b, mono_ms(), b->draining);
    if (committed)
        fetch_wake(b, mono_ms(), true);
}

static void broker_begin_drain(struct broker *b)
{
    b->draining = true;
    /* Leave the group now rather than after the heartbeat timeout: the slots move at once. */
    metastore_remove_member(b->meta, b->self.id);
    produce_maybe_flush(b, mono_ms(), true);
    fetch_cancel_all(b);
}

static bool broker_drained(struct broker *b)
{
    return !b->current && b->flusher.queued == 0 && !b->waiters && !(b->reader_started && b->reader.inflight);
}

/* ---- the loop's callbacks (server/server.h) ---- */

static void app_frame(void *ctx, struct conn *c, struct reply *reply, uint8_t *frame, size_t len)
{
    request_dispatch(ctx, c, reply, frame, len);
}

static void app_conn_closed(void *ctx, struct conn *c)
{
    fetch_cancel_conn(ctx, c);
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
