/* Produce: validate each partition's record batches, buffer them with every other partition's in the
 * current flush batch, and answer only once the flusher has stored the object and committed the
 * offsets. acks=0 is buffered the same way but answered with nothing at all; if it cannot be
 * buffered, its connection is closed (as Kafka does), the producer's only way to notice.
 *
 * Memory: produce data waiting for the store (buffered or being flushed) is capped per worker
 * (produce-buffer-bytes). A request that does not fit waits, in arrival order, and its connection
 * is not read meanwhile: producers are slowed by TCP flow control, not refused. A request waiting
 * longer than its timeout_ms for the store is answered REQUEST_TIMED_OUT (retriable; its data may
 * still be committed, as with Kafka). */
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

/* ---- the flush batch ---- */

static struct flush_batch *flush_batch_new(void)
{
    struct flush_batch *fb = calloc(1, sizeof(*fb));
    if (!fb)
        abort();
    return fb;
}

void flush_batch_free(struct flush_batch *fb)
{
    for (int i = 0; i < fb->nchunks; i++) {
        buf_free(&fb->chunks[i].data);
        free(fb->chunks[i].waiters);
    }
    free(fb->chunks);
    free(fb->index);
    free(fb);
}

static uint32_t chunk_hash(int64_t topic_id, int32_t partition)
{
    uint64_t h = (uint64_t)topic_id * 0x9E3779B97F4A7C15ULL ^ (uint32_t)partition * 0xC2B2AE3DU;
    return (uint32_t)(h ^ (h >> 29));
}

static void index_rebuild(struct flush_batch *fb, int cap)
{
    free(fb->index);
    fb->index = calloc((size_t)cap, sizeof(int32_t));
    if (!fb->index)
        abort();
    fb->index_cap = cap;
    for (int i = 0; i < fb->nchunks; i++) {
        uint32_t h = chunk_hash(fb->chunks[i].topic_id, fb->chunks[i].partition) & (uint32_t)(cap - 1);
        while (fb->index[h])
            h = (h + 1) & (uint32_t)(cap - 1);
        fb->index[h] = i + 1;
    }
}

/* The chunk of (topic, partition) in this batch, created on first use. */
static struct flush_chunk *batch_chunk(struct flush_batch *fb, const struct topic_info *t, int32_t partition)
{
    if (fb->index_cap) {
        uint32_t mask = (uint32_t)fb->index_cap - 1;
        for (uint32_t h = chunk_hash(t->id, partition) & mask; fb->index[h]; h = (h + 1) & mask) {
            struct flush_chunk *ch = &fb->chunks[fb->index[h] - 1];
            if (ch->topic_id == t->id && ch->partition == partition)
                return ch;
        }
    }
    if (fb->nchunks == fb->cap_chunks) {
        fb->cap_chunks = fb->cap_chunks ? fb->cap_chunks * 2 : 16;
        fb->chunks = realloc(fb->chunks, sizeof(*fb->chunks) * (size_t)fb->cap_chunks);
        if (!fb->chunks)
            abort();
    }
    struct flush_chunk *ch = &fb->chunks[fb->nchunks++];
    memset(ch, 0, sizeof(*ch));
    ch->topic_id = t->id;
    memcpy(ch->topic_uuid, t->uuid, 16);
    ch->partition = partition;
    ch->first_timestamp = INT64_MAX;
    ch->max_timestamp = -1;
    if (fb->nchunks * 2 > fb->index_cap)
        index_rebuild(fb, fb->index_cap ? fb->index_cap * 2 : 64);
    else {
        uint32_t mask = (uint32_t)fb->index_cap - 1;
        uint32_t h = chunk_hash(t->id, partition) & mask;
        while (fb->index[h])
            h = (h + 1) & mask;
        fb->index[h] = fb->nchunks;
    }
    return ch;
}

static void chunk_add_waiter(struct flush_chunk *ch, struct produce_waiter w)
{
    if (ch->nwaiters == ch->cap_waiters) {
        ch->cap_waiters = ch->cap_waiters ? ch->cap_waiters * 2 : 4;
        ch->waiters = realloc(ch->waiters, sizeof(*ch->waiters) * (size_t)ch->cap_waiters);
        if (!ch->waiters)
            abort();
    }
    ch->waiters[ch->nwaiters++] = w;
}

void produce_maybe_flush(struct broker *b, int64_t now_ms, bool force)
{
    struct flush_batch *fb = b->current;
    if (!fb)
        return;
    bool due = force || now_ms >= fb->deadline_ms || fb->bytes >= (size_t)b->cfg->batch_max_bytes;
    if (!due)
        return;
    if (!force && b->flusher.queued >= MAX_QUEUED_FLUSHES)
        return; /* the store is behind: keep accumulating, flush when one completes */
    b->current = NULL;
    flusher_submit(&b->flusher, fb);
}

/* ---- the handler ---- */

/* Validates and buffers one partition's records; returns a Kafka error or 0 (then a waiter was added
 * unless acks=0). */
/* Compacted topics keep the latest record per key, so a record without a key has no place there. */
static bool all_records_keyed(const uint8_t *p, size_t len)
{
    struct buf records;
    buf_init(&records);
    bool ok = true;
    size_t pos = 0, size;
    struct batch_header h;
    const uint8_t *batch;
    while (ok && batch_next(p, len, &pos, &h, &batch, &size) == 1) {
        if (h.attributes & BATCH_ATTR_CONTROL)
            continue;
        buf_reset(&records);
        if (batch_records_decompress(batch, size, &records) != 0) {
            ok = false;
            break;
        }
        size_t rpos = 0;
        struct record_view rv;
        int rc;
        while ((rc = record_next(records.data, records.len, &rpos, &rv)) == 1)
            if (rv.key_len < 0)
                ok = false;
        if (rc < 0)
            ok = false;
    }
    buf_free(&records);
    return ok;
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

static int produce_partition(struct broker *b, struct request *rq, const struct topic_entry *t, const req_part_t *in,
                             resp_part_t *out, struct produce_ctx *ctx, bool acks0)
{
    const struct topic_info *topic = &t->info;
    if (in->index < 0 || in->index >= topic->partitions)
        return KERR_UNKNOWN_TOPIC_OR_PARTITION;
    if (in->records.len <= 0) {
        log_warn("produce to %s/%d without records (%s)", topic->name, in->index, request_who(rq));
        return KERR_CORRUPT_MESSAGE;
    }
    struct records_summary sum;
    const char *why = NULL;
    int err = records_validate(in->records.ptr, (size_t)in->records.len, &sum, &why);
    if (err) {
        log_warn("produce to %s/%d rejected: %s (%s)", topic->name, in->index, why ? why : "invalid records",
                 request_who(rq));
        return err;
    }
    if (sum.attributes_or & BATCH_ATTR_CONTROL) { /* only the transaction coordinator writes those */
        log_warn("produce to %s/%d rejected: control batch from a client (%s)", topic->name, in->index,
                 request_who(rq));
        return KERR_INVALID_RECORD;
    }
    if (sum.largest_batch > t->max_message_bytes) {
        log_warn("produce to %s/%d rejected: batch of %d bytes exceeds max.message.bytes %lld (%s)", topic->name,
                 in->index, sum.largest_batch, (long long)t->max_message_bytes, request_who(rq));
        return KERR_MESSAGE_TOO_LARGE;
    }
    if (t->compacted && !all_records_keyed(in->records.ptr, (size_t)in->records.len)) {
        log_warn("produce to compacted topic %s/%d rejected: a record has no key (%s)", topic->name, in->index,
                 request_who(rq));
        return KERR_INVALID_RECORD;
    }
    if (!b->current) {
        b->current = flush_batch_new();
        b->current->deadline_ms = mono_ms() + b->cfg->batch_timeout_ms;
    }
    struct flush_chunk *ch = batch_chunk(b->current, topic, in->index);
    if (!acks0)
        chunk_add_waiter(ch, (struct produce_waiter){
                                 .ctx = ctx,
                                 .base_offset = &out->base_offset,
                                 .error_code = &out->error_code,
                                 .rel_offset = ch->offset_count,
                             });
    size_t at = ch->data.len;
    buf_append(&ch->data, in->records.ptr, (size_t)in->records.len);
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

static void resume_produce(void *broker, struct request *rq)
{
    handle_produce(broker, rq);
}

/* Every topic of the request, from the cache or the store: false while rq waits for look-ups. The
 * records are buffered only once all are known, so a request is never half buffered. */
static bool produce_topics_known(struct broker *b, struct request *rq)
{
    struct produce_request *req = rq->body;
    bool waits = false;
    for (int i = 0; i < req->topic_data_count; i++) {
        int err;
        struct kstr name = req->topic_data[i].name;
        if (!topics_need(b, rq, name.ptr, name.len, &err) && err == 0)
            waits = true;
    }
    if (waits)
        rq->resume = resume_produce;
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

static void park(struct broker *b, struct request *rq)
{
    struct produce_parked *pk = &b->parked;
    if (pk->n == pk->cap) {
        pk->cap = pk->cap ? 2 * pk->cap : 16;
        pk->v = realloc(pk->v, sizeof(*pk->v) * (size_t)pk->cap);
        if (!pk->v)
            abort();
    }
    pk->v[pk->n++] = rq;
    conn_hold(rq->conn, true);
}

static void unpark_first(struct broker *b, struct request **out)
{
    struct produce_parked *pk = &b->parked;
    *out = pk->v[0];
    memmove(pk->v, pk->v + 1, sizeof(*pk->v) * (size_t)(pk->n - 1));
    pk->n--;
}

static void buffer_request(struct broker *b, struct request *rq);

void produce_unpark(struct broker *b)
{
    while (b->parked.n > 0) {
        struct produce_request *req = b->parked.v[0]->body;
        if (!produce_room(b, records_bytes(req)))
            return;
        struct request *rq;
        unpark_first(b, &rq);
        struct conn *c = rq->conn;
        buffer_request(b, rq);
        conn_hold(c, false); /* may dispatch its next frames (which may park again) */
    }
}

void produce_cancel_conn(struct broker *b, struct conn *c)
{
    struct produce_parked *pk = &b->parked;
    for (int i = 0; i < pk->n;) {
        if (pk->v[i]->conn != c) {
            i++;
            continue;
        }
        struct request *rq = pk->v[i];
        memmove(pk->v + i, pk->v + i + 1, sizeof(*pk->v) * (size_t)(pk->n - i - 1));
        pk->n--;
        request_finish_silent(rq);
    }
}

void handle_produce(struct broker *b, struct request *rq)
{
    struct produce_request *req = rq->body;
    bool acks_valid = req->acks == 0 || req->acks == 1 || req->acks == -1;
    if (acks_valid && !produce_topics_known(b, rq))
        return;
    /* Requests that wait for room keep their order: a newcomer waits behind them. */
    if (acks_valid && (b->parked.n > 0 || !produce_room(b, records_bytes(req)))) {
        park(b, rq);
        return;
    }
    buffer_request(b, rq);
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
    bool acks0 = req->acks == 0;
    bool acks_valid = req->acks == 0 || req->acks == 1 || req->acks == -1;
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
    int first_err = 0;
    for (int i = 0; i < ntopics; i++) {
        const req_topic_t *tin = &req->topic_data[i];
        resp_topic_t *tout = &resp->responses[i];
        tout->name = tin->name;
        int nparts = tin->partition_data_count > 0 ? tin->partition_data_count : 0;
        tout->partition_responses = RQ_ALLOC(rq, resp_part_t, nparts);
        tout->partition_responses_count = nparts;
        int topic_err = KERR_INVALID_REQUIRED_ACKS;
        struct topic_entry *t = acks_valid ? topics_need(b, rq, tin->name.ptr, tin->name.len, &topic_err) : NULL;
        for (int j = 0; j < nparts; j++) {
            resp_part_t *pout = &tout->partition_responses[j];
            pout->index = tin->partition_data[j].index;
            pout->base_offset = -1;
            pout->log_append_time_ms = -1;
            pout->log_start_offset = -1;
            int err = t ? produce_partition(b, rq, t, &tin->partition_data[j], pout, ctx, acks0) : topic_err;
            if (err) {
                pout->error_code = (int16_t)err;
                if (!first_err)
                    first_err = err;
            } else if (!acks0) {
                ctx->pending++;
            }
        }
    }
    produce_maybe_flush(b, mono_ms(), false);
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
    for (int i = 0; i < fb->nchunks; i++) {
        struct flush_chunk *ch = &fb->chunks[i];
        int err = fb->error ? fb->error : ch->error;
        if (!err) {
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
    b->produce_bytes -= (int64_t)fb->bytes;
}
