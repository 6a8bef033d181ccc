/* Produce: check each partition's record batches, buffer them with every other partition's in the
 * current flush batch, and answer only once the flusher has stored the object and committed the
 * offsets. acks=0 is buffered the same way but answered with nothing at all; if it cannot be
 * buffered, its connection is closed (as Kafka does), the producer's only way to notice.
 *
 * A request goes through stages: its topics known (look-ups on the store threads), room in the
 * buffers, its records checked (produce_check.c), buffered. A connection's produce requests go
 * through them one after the other, in arrival order, so a partition's batches are buffered in the
 * order the connection sent them whatever each request waits for (Kafka handles a connection's
 * requests one at a time).
 *
 * Memory: produce data waiting for the store (buffered or being flushed) is capped per worker
 * (produce-buffer-bytes). A request that does not fit waits, connections in arrival order, and its
 * connection is not read meanwhile: producers are slowed by TCP flow control, not refused. A
 * request waiting longer than its timeout_ms is answered REQUEST_TIMED_OUT (retriable; its data
 * may still be committed, as with Kafka). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker_internal.h"
#include "record/batch.h"
#include "server/conn.h"
#include "util/clock.h"
#include "util/log.h"

/* Flush batches handed to the flusher at once; past this, data keeps accumulating. */
#define MAX_QUEUED_FLUSHES 4

typedef struct produce_request_topic req_topic_t;
typedef struct produce_request_topic_partition req_part_t;
typedef struct produce_response_topic resp_topic_t;
typedef struct produce_response_topic_partition resp_part_t;

/* One produce request waiting for its partitions' commits. Allocated apart from the request:
 * after a timeout answers the request, the flush chunks still point here until they complete. */
struct produce_ctx {
    struct request *rq;          /* NULL once answered (timed out) */
    struct produce_response *resp;
    int pending;                 /* partitions not committed yet */
    int64_t deadline_ms;         /* received + timeout_ms (INT64_MAX: none) */
    struct produce_ctx *prev, *next; /* the broker's requests waiting for commits */
};

/* A connection's produce requests not buffered yet, oldest first (the connection's app_data). It
 * outlives a closing connection until the requests it holds have finished. */
struct produce_line {
    struct request *head, *tail;
    struct conn *conn;
    bool closed;                 /* the connection closed: what is left finishes unanswered */
    bool parked;                 /* the head waits for room (in the broker's parked list) */
    bool advancing;              /* in advance(): a re-entrant call leaves the work to it */
};

enum produce_stage { STAGE_TOPICS, STAGE_ROOM, STAGE_CHECK, STAGE_BUFFER };

struct produce_state {
    enum produce_stage stage;
    struct produce_line *line;
    struct request *next;        /* the next request of the line */
    bool acks_valid;
    int64_t bytes;               /* its records */
    bool reserved;               /* bytes counted in b->produce_bytes */
    int *topic_err;              /* per topic: why it is unknown (0: known) */
    struct part_check *checks;   /* per partition, in request order */
    int nchecks;
};

/* Seals the current batch and hands it over if due. idle_is_due: an idle store takes it now (the
 * loop's tick and flush completions); a request being buffered does not seal it alone, so that
 * the requests of one loop turn share one object. */
static void maybe_flush(struct broker *b, int64_t now_ms, bool force, bool idle_is_due)
{
    struct flush_batch *fb = b->current;
    if (!fb)
        return;
    /* Group commit: an idle store takes what is buffered now (latency: one put + one commit);
     * while a flush runs, data accumulates into the next, larger one. batch-timeout only bounds
     * how long data waits when flushes are already queued. */
    bool due = force || (idle_is_due && b->flusher.queued == 0) || now_ms >= fb->deadline_ms ||
               fb->bytes >= (size_t)b->cfg->batch_max_bytes;
    if (!due)
        return;
    if (!force && b->flusher.queued >= MAX_QUEUED_FLUSHES)
        return; /* the store is behind: keep accumulating, flush when one completes */
    b->current = NULL;
    flusher_submit(&b->flusher, fb);
}

void produce_maybe_flush(struct broker *b, int64_t now_ms, bool force)
{
    maybe_flush(b, now_ms, force, true);
}

bool produce_flush_ready(const struct broker *b)
{
    return b->current && b->flusher.queued == 0;
}

/* ---- stages ---- */

static void advance(struct broker *b, struct produce_line *line);

static void produce_resume(void *broker, struct request *rq)
{
    advance(broker, ((struct produce_state *)rq->state)->line);
}

/* Every topic of the request, from the cache or the store: false while rq waits for look-ups. The
 * records are buffered only once all are known, so a request is never half buffered. */
static bool topics_known(struct broker *b, struct request *rq, struct produce_state *st)
{
    struct produce_request *req = rq->body;
    bool waits = false;
    for (int i = 0; i < req->topic_data_count; i++) {
        struct kstr name = req->topic_data[i].name;
        if (st->topic_err[i] == KERR_TOPIC_AUTHORIZATION_FAILED)
            continue;
        if (!authz_allow(b, rq, ACL_OP_WRITE, ACL_RES_TOPIC, name.ptr, name.len)) {
            st->topic_err[i] = KERR_TOPIC_AUTHORIZATION_FAILED; /* before any look-up: no auto-create */
            continue;
        }
        if (!topics_need(b, rq, name.ptr, name.len, &st->topic_err[i]) && st->topic_err[i] == 0)
            waits = true;
    }
    return !waits;
}

static int64_t records_bytes(const struct produce_request *req)
{
    int64_t n = 0;
    for (int i = 0; i < req->topic_data_count; i++)
        for (int j = 0; j < req->topic_data[i].partition_data_count; j++)
            if (req->topic_data[i].partition_data[j].records.len > 0)
                n += req->topic_data[i].partition_data[j].records.len;
    return n;
}

/* Is there room to buffer `bytes` more now? A worker with nothing buffered takes any request (one
 * larger than the cap must not wait forever); otherwise the cap, and the flusher must keep up. */
static bool produce_room(const struct broker *b, int64_t bytes)
{
    if (b->produce_bytes == 0)
        return true;
    if (b->produce_bytes + bytes > b->cfg->produce_buffer_bytes)
        return false;
    return !(b->flusher.queued >= MAX_QUEUED_FLUSHES && b->current &&
             b->current->bytes >= (size_t)b->cfg->batch_max_bytes);
}

static void park(struct broker *b, struct produce_line *line)
{
    if (line->parked)
        return;
    struct produce_parked *pk = &b->parked;
    if (pk->n == pk->cap) {
        pk->cap = pk->cap ? 2 * pk->cap : 16;
        pk->v = realloc(pk->v, sizeof(*pk->v) * (size_t)pk->cap);
        if (!pk->v)
            abort();
    }
    pk->v[pk->n++] = line;
    line->parked = true;
    conn_hold(line->conn, true);
}

static void unpark(struct broker *b, struct produce_line *line)
{
    struct produce_parked *pk = &b->parked;
    for (int i = 0; i < pk->n; i++)
        if (pk->v[i] == line) {
            memmove(pk->v + i, pk->v + i + 1, sizeof(*pk->v) * (size_t)(pk->n - i - 1));
            pk->n--;
            break;
        }
    line->parked = false;
}

/* What is known of each partition before its records are looked at. */
static void prepare_checks(struct broker *b, struct request *rq, struct produce_state *st)
{
    struct produce_request *req = rq->body;
    int n = 0;
    for (int i = 0; i < req->topic_data_count; i++)
        n += req->topic_data[i].partition_data_count > 0 ? req->topic_data[i].partition_data_count : 0;
    st->checks = RQ_ALLOC(rq, struct part_check, n);
    st->nchecks = n;
    int k = 0;
    for (int i = 0; i < req->topic_data_count; i++) {
        const req_topic_t *tin = &req->topic_data[i];
        const struct topic_entry *t = topics_find(b, tin->name.ptr, tin->name.len);
        for (int j = 0; j < tin->partition_data_count; j++) {
            const req_part_t *in = &tin->partition_data[j];
            struct part_check *pc = &st->checks[k++];
            if (!t || st->topic_err[i] == KERR_TOPIC_AUTHORIZATION_FAILED)
                pc->err = st->topic_err[i] ? st->topic_err[i] : KERR_UNKNOWN_TOPIC_OR_PARTITION;
            else if (in->index < 0 || in->index >= t->info.partitions)
                pc->err = KERR_UNKNOWN_TOPIC_OR_PARTITION;
            else if (in->records.len <= 0) {
                pc->err = KERR_CORRUPT_MESSAGE;
                pc->why = "no records";
            } else {
                pc->records = in->records.ptr;
                pc->len = (size_t)in->records.len;
                pc->compacted = t->compacted;
                pc->zstd_allowed = rq->hdr.api_version >= 7;
                pc->max_message_bytes = t->max_message_bytes;
            }
        }
    }
}

/* Takes the request through what it still needs before buffering: true once it can be buffered,
 * false while it waits (look-ups or the checker: its resume runs advance; room: produce_unpark). */
static bool step(struct broker *b, struct request *rq, struct produce_state *st)
{
    switch (st->stage) {
    case STAGE_TOPICS:
        if (st->acks_valid && !topics_known(b, rq, st)) {
            rq->resume = produce_resume;
            return false;
        }
        st->stage = STAGE_ROOM;
        /* fall through */
    case STAGE_ROOM:
        if (st->acks_valid) {
            /* Connections waiting for room go first, in the order they began to wait. */
            bool first = b->parked.n == 0 || b->parked.v[0] == st->line;
            if (!first || !produce_room(b, st->bytes)) {
                park(b, st->line);
                return false;
            }
            if (st->line->parked)
                unpark(b, st->line);
            b->produce_bytes += st->bytes;
            st->reserved = true;
        }
        st->stage = STAGE_CHECK;
        /* fall through */
    case STAGE_CHECK:
        st->stage = STAGE_BUFFER;
        if (st->acks_valid) {
            prepare_checks(b, rq, st);
            if (!produce_check(b, rq, st->checks, st->nchecks)) {
                rq->resume = produce_resume;
                return false;
            }
        }
        /* fall through */
    case STAGE_BUFFER:
        break;
    }
    return true;
}

static void buffer_request(struct broker *b, struct request *rq);

static void release_reservation(struct broker *b, struct produce_state *st)
{
    if (st->reserved)
        b->produce_bytes -= st->bytes;
    st->reserved = false;
}

/* Moves the line's requests through their stages, oldest first, as far as they can go now. */
static void advance(struct broker *b, struct produce_line *line)
{
    if (line->advancing)
        return;
    line->advancing = true;
    while (line->head) {
        struct request *rq = line->head;
        struct produce_state *st = rq->state;
        if (rq->reads_pending > 0)
            break; /* waiting for a look-up or the checker: its resume comes back here */
        if (!line->closed && !step(b, rq, st))
            break;
        line->head = st->next;
        if (!line->head)
            line->tail = NULL;
        if (line->closed) { /* its client is gone: nothing to buffer, nobody to answer */
            release_reservation(b, st);
            request_finish_silent(rq);
        } else {
            buffer_request(b, rq); /* may close the connection (acks=0 failing) */
        }
    }
    line->advancing = false;
    if (!line->head) {
        if (!line->closed)
            line->conn->app_data = NULL;
        if (line->parked)
            unpark(b, line);
        free(line);
    }
}

void handle_produce(struct broker *b, struct request *rq)
{
    struct produce_request *req = rq->body;
    struct produce_state *st = RQ_ALLOC(rq, struct produce_state, 1);
    rq->state = st;
    st->acks_valid = req->acks == 0 || req->acks == 1 || req->acks == -1;
    st->bytes = records_bytes(req);
    st->topic_err = RQ_ALLOC(rq, int, req->topic_data_count);
    struct conn *c = rq->conn;
    struct produce_line *line = c->app_data;
    if (!line) {
        line = calloc(1, sizeof(*line));
        if (!line)
            abort();
        line->conn = c;
        c->app_data = line;
    }
    st->line = line;
    if (line->tail)
        ((struct produce_state *)line->tail->state)->next = rq;
    else
        line->head = rq;
    line->tail = rq;
    if (line->head == rq)
        advance(b, line);
}

void produce_unpark(struct broker *b)
{
    while (b->parked.n > 0) {
        struct produce_line *line = b->parked.v[0];
        struct produce_state *st = line->head->state;
        if (!produce_room(b, st->bytes))
            return;
        struct conn *c = line->conn;
        conn_keep(c); /* advance may finish its last reply */
        advance(b, line); /* buffers the head and what follows, or parks it again */
        struct produce_line *now = c->app_data;
        if (!now || !now->parked)
            conn_hold(c, false); /* may dispatch its next frames */
        conn_release(c);
    }
}

void produce_cancel_conn(struct broker *b, struct conn *c)
{
    struct produce_line *line = c->app_data;
    if (!line)
        return;
    c->app_data = NULL;
    line->closed = true;
    if (line->parked)
        unpark(b, line);
    advance(b, line); /* finishes what waits for nothing; the others when they resume */
}

/* ---- buffering ---- */

/* Every stored batch has baseOffset 0 (Kafka ignores what the producer sent there): readers take
 * a baseOffset beyond their walk position as a gap left by key compaction (batch_walk_base). Not
 * covered by the CRC. */
static void zero_base_offsets(uint8_t *p, size_t len)
{
    size_t pos = 0, size;
    struct batch_header h;
    const uint8_t *batch;
    while (batch_next(p, len, &pos, &h, &batch, &size) == 1)
        batch_set_base_offset(p + (batch - p), 0);
}

/* LogAppendTime topics: the broker's clock replaces the producer's timestamps. */
static void stamp_log_append_time(uint8_t *p, size_t len, int64_t now)
{
    size_t pos = 0, size;
    struct batch_header h;
    const uint8_t *batch;
    while (batch_next(p, len, &pos, &h, &batch, &size) == 1)
        batch_set_log_append_time(p + (batch - p), now);
}

/* Buffers one checked partition's records; returns a Kafka error or 0 (then a waiter was added
 * unless acks=0). */
static int buffer_partition(struct broker *b, struct request *rq, const struct topic_entry *t,
                            const req_part_t *in, const struct part_check *pc, resp_part_t *out,
                            struct produce_ctx *ctx, bool acks0)
{
    if (pc->err) {
        if (pc->why)
            log_warn("produce to %.*s/%d rejected: %s (%s)", t ? (int)strlen(t->info.name) : 1,
                     t ? t->info.name : "?", in->index, pc->why, request_who(rq));
        return pc->err;
    }
    if (!t || in->index >= t->info.partitions) /* the topic changed while the records were checked */
        return KERR_UNKNOWN_TOPIC_OR_PARTITION;
    struct records_summary sum = pc->sum;
    if (!b->current) {
        b->current = flush_batch_new(&b->chunk_bufs);
        b->current->deadline_ms = mono_ms() + b->cfg->batch_timeout_ms;
    }
    struct flush_chunk *ch = batch_chunk(b->current, &t->info, in->index, pc->idempotent);
    if (pc->idempotent) {
        ch->producer_id = pc->producer_id;
        ch->producer_epoch = pc->producer_epoch;
        ch->base_sequence = pc->base_sequence;
        ch->last_sequence = pc->last_sequence;
    }
    if (!acks0)
        chunk_add_waiter(ch, (struct produce_waiter){
                                 .ctx = ctx,
                                 .base_offset = &out->base_offset,
                                 .error_code = &out->error_code,
                                 .rel_offset = ch->offset_count,
                             });
    size_t at = ch->data.len;
    buf_append(&ch->data, in->records.ptr, (size_t)in->records.len);
    zero_base_offsets(ch->data.data + at, (size_t)in->records.len);
    if (t->log_append_time) {
        int64_t now = wall_ms();
        stamp_log_append_time(ch->data.data + at, (size_t)in->records.len, now);
        out->log_append_time_ms = now;
        sum.first_timestamp = sum.max_timestamp = now;
    }
    ch->batch_count += sum.batch_count;
    ch->offset_count += sum.offset_count;
    if (sum.first_timestamp < ch->first_timestamp)
        ch->first_timestamp = sum.first_timestamp;
    if (sum.max_timestamp > ch->max_timestamp)
        ch->max_timestamp = sum.max_timestamp;
    b->current->bytes += (size_t)in->records.len;
    b->produce_bytes += in->records.len;
    return 0;
}

static void produce_waiting_add(struct broker *b, struct produce_ctx *ctx)
{
    ctx->next = b->produce_waiting;
    if (ctx->next)
        ctx->next->prev = ctx;
    b->produce_waiting = ctx;
    if (ctx->deadline_ms < b->produce_next_deadline)
        b->produce_next_deadline = ctx->deadline_ms;
}

static void produce_waiting_remove(struct broker *b, struct produce_ctx *ctx)
{
    if (ctx->prev)
        ctx->prev->next = ctx->next;
    else
        b->produce_waiting = ctx->next;
    if (ctx->next)
        ctx->next->prev = ctx->prev;
    ctx->prev = ctx->next = NULL;
}

/* The response keeps only what it needs of the frame (topic names): the frame, as large as the
 * data it carried, is freed now rather than when the store has it. */
static void keep_names_drop_frame(struct request *rq, struct produce_response *resp)
{
    for (int i = 0; i < resp->responses_count; i++) {
        struct kstr *name = &resp->responses[i].name;
        if (name->len > 0)
            name->ptr = arena_strndup(&rq->arena, name->ptr, (size_t)name->len);
    }
    request_drop_frame(rq);
}

static void buffer_request(struct broker *b, struct request *rq)
{
    struct produce_request *req = rq->body;
    struct produce_state *st = rq->state;
    release_reservation(b, st); /* what is buffered counts from here */
    bool acks0 = req->acks == 0;
    struct produce_ctx *ctx = calloc(1, sizeof(*ctx));
    if (!ctx)
        abort();
    struct produce_response *resp = RQ_ALLOC(rq, struct produce_response, 1);
    ctx->rq = rq;
    ctx->resp = resp;
    ctx->deadline_ms = req->timeout_ms > 0 ? rq->received_ms + req->timeout_ms : INT64_MAX;
    int ntopics = req->topic_data_count > 0 ? req->topic_data_count : 0;
    resp->responses = RQ_ALLOC(rq, resp_topic_t, ntopics);
    resp->responses_count = ntopics;
    int first_err = 0, k = 0;
    for (int i = 0; i < ntopics; i++) {
        const req_topic_t *tin = &req->topic_data[i];
        resp_topic_t *tout = &resp->responses[i];
        tout->name = tin->name;
        int nparts = tin->partition_data_count > 0 ? tin->partition_data_count : 0;
        tout->partition_responses = RQ_ALLOC(rq, resp_part_t, nparts);
        tout->partition_responses_count = nparts;
        const struct topic_entry *t = st->acks_valid ? topics_find(b, tin->name.ptr, tin->name.len) : NULL;
        for (int j = 0; j < nparts; j++) {
            resp_part_t *pout = &tout->partition_responses[j];
            pout->index = tin->partition_data[j].index;
            pout->base_offset = -1;
            pout->log_append_time_ms = -1;
            pout->log_start_offset = -1;
            int err = st->acks_valid ? buffer_partition(b, rq, t, &tin->partition_data[j], &st->checks[k++], pout,
                                                        ctx, acks0)
                                     : KERR_INVALID_REQUIRED_ACKS;
            if (err) {
                pout->error_code = (int16_t)err;
                if (!first_err)
                    first_err = err;
            } else if (!acks0) {
                ctx->pending++;
            }
        }
    }
    maybe_flush(b, mono_ms(), false, false); /* the tick flushes this turn's requests together */
    if (acks0) {
        free(ctx);
        if (first_err) {
            char why[96];
            snprintf(why, sizeof(why), "acks=0 produce failed with error %d", first_err);
            request_close_conn(rq, why);
        } else {
            request_finish_silent(rq);
        }
        return;
    }
    if (ctx->pending == 0) {
        free(ctx);
        request_respond(rq, resp);
        return;
    }
    keep_names_drop_frame(rq, resp);
    produce_waiting_add(b, ctx);
}

static void ctx_answer(struct broker *b, struct produce_ctx *ctx)
{
    struct request *rq = ctx->rq;
    ctx->rq = NULL;
    produce_waiting_remove(b, ctx);
    request_respond(rq, ctx->resp);
    ctx->resp = NULL;
}

void produce_expire(struct broker *b, int64_t now_ms)
{
    if (now_ms < b->produce_next_deadline)
        return;
    int64_t next = INT64_MAX;
    for (struct produce_ctx *ctx = b->produce_waiting, *nx; ctx; ctx = nx) {
        nx = ctx->next;
        if (ctx->deadline_ms > now_ms) {
            if (ctx->deadline_ms < next)
                next = ctx->deadline_ms;
            continue;
        }
        /* The partitions still waiting for the store time out; committed ones keep their offsets. */
        struct produce_response *resp = ctx->resp;
        for (int i = 0; i < resp->responses_count; i++)
            for (int j = 0; j < resp->responses[i].partition_responses_count; j++) {
                resp_part_t *p = &resp->responses[i].partition_responses[j];
                if (p->error_code == 0 && p->base_offset < 0)
                    p->error_code = KERR_REQUEST_TIMED_OUT;
            }
        log_warn("produce timed out after %lld ms waiting for the store; %d partitions answered REQUEST_TIMED_OUT "
                 "(%s)",
                 (long long)(now_ms - ctx->rq->received_ms), ctx->pending, request_who(ctx->rq));
        ctx_answer(b, ctx);
    }
    b->produce_next_deadline = next;
}

int64_t produce_next_deadline(const struct broker *b)
{
    return b->produce_next_deadline;
}

void produce_complete(struct broker *b, struct flush_batch *fb)
{
    int duplicates = 0;
    for (int i = 0; i < fb->nchunks; i++) {
        struct flush_chunk *ch = &fb->chunks[i];
        int err = fb->error ? fb->error : ch->error;
        duplicates += !err && ch->duplicate;
        if (!err && !ch->duplicate) { /* a duplicate stored nothing: its bytes are never served */
            /* The worker that wrote a partition's data keeps it: with steering, that partition's
             * consumers fetch from this worker too, and find it here instead of in the store. */
            read_cache_put(&b->cache, fb->object_key, ch->pos, (uint32_t)ch->data.len, &ch->data);
            topics_advance(b, ch->topic_id, ch->partition, ch->base_offset + ch->offset_count);
        }
        for (int w = 0; w < ch->nwaiters; w++) {
            struct produce_waiter *pw = &ch->waiters[w];
            struct produce_ctx *ctx = pw->ctx;
            if (ctx->rq) { /* still waiting (not timed out) */
                if (err)
                    *pw->error_code = (int16_t)err;
                else
                    *pw->base_offset = ch->base_offset + pw->rel_offset;
            }
            if (--ctx->pending > 0)
                continue;
            if (ctx->rq)
                ctx_answer(b, ctx);
            free(ctx);
        }
    }
    if (duplicates > 0)
        log_info("produce: %d retried idempotent batches were committed before; answered with their first offsets",
                 duplicates);
    b->produce_bytes -= (int64_t)fb->bytes;
}
