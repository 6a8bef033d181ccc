/* Produce: validate each partition's record batches, buffer them with every other partition's in the
 * current flush batch, and answer only once the flusher has stored the object and committed the
 * offsets. acks=0 is buffered the same way but answered with nothing at all. */
#include <stdlib.h>
#include <string.h>

#include "broker/broker_internal.h"
#include "record/batch.h"
#include "util/clock.h"
#include "util/log.h"

/* Flush batches handed to the flusher at once; past this, data keeps accumulating. */
#define MAX_QUEUED_FLUSHES 4

typedef struct produce_request_topic req_topic_t;
typedef struct produce_request_topic_partition req_part_t;
typedef struct produce_response_topic resp_topic_t;
typedef struct produce_response_topic_partition resp_part_t;

/* One produce request waiting for its partitions' commits. */
struct produce_ctx {
    struct request *rq;
    struct produce_response *resp;
    int pending;
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

void handle_produce(struct broker *b, struct request *rq)
{
    struct produce_request *req = rq->body;
    bool acks0 = req->acks == 0;
    bool acks_valid = req->acks == 0 || req->acks == 1 || req->acks == -1;
    if (acks_valid && !produce_topics_known(b, rq))
        return;

    struct produce_ctx *ctx = RQ_ALLOC(rq, struct produce_ctx, 1);
    struct produce_response *resp = RQ_ALLOC(rq, struct produce_response, 1);
    ctx->rq = rq;
    ctx->resp = resp;
    int ntopics = req->topic_data_count > 0 ? req->topic_data_count : 0;
    resp->responses = RQ_ALLOC(rq, resp_topic_t, ntopics);
    resp->responses_count = ntopics;
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
            if (err)
                pout->error_code = (int16_t)err;
            else if (!acks0)
                ctx->pending++;
        }
    }
    produce_maybe_flush(b, mono_ms(), false);
    if (acks0)
        request_finish_silent(rq);
    else if (ctx->pending == 0)
        request_respond(rq, resp);
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
            if (err)
                *pw->error_code = (int16_t)err;
            else
                *pw->base_offset = ch->base_offset + pw->rel_offset;
            if (--pw->ctx->pending == 0)
                request_respond(pw->ctx->rq, pw->ctx->resp);
        }
    }
}
