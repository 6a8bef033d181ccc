/* Fetch: find the chunks holding the requested offsets, read them (through the cache), rewrite each
 * batch's baseOffset to its committed offset, and answer; with too little data, wait up to
 * max_wait_ms and answer as soon as a commit brings enough (long poll). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker_internal.h"
#include "record/batch.h"
#include "util/clock.h"
#include "util/log.h"

typedef struct fetch_request_topic req_topic_t;
typedef struct fetch_request_topic_partition req_part_t;
typedef struct fetch_response_topic resp_topic_t;
typedef struct fetch_response_topic_partition resp_part_t;

/* The longest a fetch waits for data, whatever it asks: Kafka's clients ask a few seconds at most,
 * and a parked fetch holds memory and its connection. */
#define MAX_FETCH_WAIT_MS 30000

static int64_t wait_deadline(const struct request *rq)
{
    const struct fetch_request *req = rq->body;
    int64_t wait = req->max_wait_ms < MAX_FETCH_WAIT_MS ? req->max_wait_ms : MAX_FETCH_WAIT_MS;
    return rq->received_ms + wait;
}

/* Chunks looked up per partition per try: enough to fill typical partition_max_bytes. */
#define CHUNKS_PER_READ 16

struct fetch_waiter {
    struct request *rq;
    int64_t deadline_ms;
    struct fetch_waiter *next;
};

/* Reads that failed recently: answered with an error for a while instead of retried by every
 * fetch (a store that is down would otherwise be hammered by every consumer's long poll). */
#define READ_FAILURE_MEMORY_MS 1000

static bool recently_failed(struct broker *b, const struct chunk_ref *ref)
{
    int64_t now = mono_ms();
    for (int i = 0; i < READ_FAILURES; i++) {
        const struct read_failure *f = &b->read_failures[i];
        if (f->until_ms > now && f->pos == ref->pos && f->len == ref->len && !strcmp(f->key, ref->object_key))
            return true;
    }
    return false;
}

void broker_note_read_failure(struct broker *b, const char *key, uint64_t pos, uint32_t len)
{
    struct read_failure *f = &b->read_failures[b->next_read_failure++ % READ_FAILURES];
    snprintf(f->key, sizeof(f->key), "%s", key);
    f->pos = pos;
    f->len = len;
    f->until_ms = mono_ms() + READ_FAILURE_MEMORY_MS;
}

const struct buf *broker_chunk(struct broker *b, const struct chunk_ref *ref, struct request *rq, int *err)
{
    *err = 0;
    const struct buf *hit = read_cache_get(&b->cache, ref->object_key, ref->pos, ref->len);
    if (hit)
        return hit;
    if (recently_failed(b, ref)) {
        *err = KERR_KAFKA_STORAGE_ERROR;
        return NULL;
    }
    if (!b->objects->local_reads) { /* remote store: never block the loop */
        if (rq->read_rounds >= MAX_READ_ROUNDS) {
            /* It waited often enough (the cache keeps losing the race): answer without it. */
            *err = KERR_KAFKA_STORAGE_ERROR;
            return NULL;
        }
        reader_request(&b->reader, ref->object_key, ref->pos, ref->len, rq);
        *err = READ_PENDING;
        return NULL;
    }
    struct buf data;
    buf_init(&data);
    if (objstore_get_range(b->objects, ref->object_key, ref->pos, ref->len, &data) != 0 || data.len != ref->len) {
        log_error("fetch: reading %u bytes at %llu of object %s failed", ref->len, (unsigned long long)ref->pos,
                  ref->object_key);
        buf_free(&data);
        broker_note_read_failure(b, ref->object_key, ref->pos, ref->len);
        *err = KERR_KAFKA_STORAGE_ERROR;
        return NULL;
    }
    return read_cache_put(&b->cache, ref->object_key, ref->pos, ref->len, &data);
}

/* Appends to out the batches of one partition from fetch_offset on, within budget bytes (the
 * first batch of the whole response is always included, KIP-74). Returns a Kafka error or 0. */
static int read_partition(struct broker *b, struct request *rq, int64_t topic_id, int32_t partition,
                          int64_t fetch_offset, int64_t high_watermark, int64_t budget, bool response_empty,
                          struct buf *out)
{
    struct chunk_ref refs[CHUNKS_PER_READ];
    int64_t next = fetch_offset;
    while (next < high_watermark) {
        int n = metastore_find_chunks(b->meta, topic_id, partition, next, refs, CHUNKS_PER_READ);
        if (n < 0)
            return KERR_KAFKA_STORAGE_ERROR;
        if (n == 0)
            return 0;
        for (int i = 0; i < n; i++) {
            int err;
            const struct buf *data = broker_chunk(b, &refs[i], rq, &err);
            if (!data)
                return err; /* READ_PENDING: the request resumes when the read is cached */
            int64_t base = refs[i].base_offset;
            size_t pos = 0, size;
            struct batch_header h;
            const uint8_t *batch;
            while (batch_next(data->data, data->len, &pos, &h, &batch, &size) == 1) {
                int64_t span = (int64_t)h.last_offset_delta + 1;
                if (base + span > next) {
                    bool first = response_empty && out->len == 0;
                    if (!first && (int64_t)(out->len + size) > budget)
                        return 0;
                    uint8_t *dst = buf_extend(out, size);
                    memcpy(dst, batch, size);
                    batch_set_base_offset(dst, base);
                    next = base + span;
                }
                base += span;
            }
            if (base != refs[i].last_offset + 1) {
                log_error("fetch: chunk %s@%llu of partition %lld/%d is shorter than its offsets", refs[i].object_key,
                          (unsigned long long)refs[i].pos, (long long)topic_id, partition);
                return KERR_KAFKA_STORAGE_ERROR;
            }
            next = refs[i].last_offset + 1 > next ? refs[i].last_offset + 1 : next;
        }
    }
    return 0;
}

/* Without transactions the last stable offset is the high watermark. */
static void set_offsets(resp_part_t *pout, const struct partition_state *ps)
{
    pout->high_watermark = ps->high_watermark;
    pout->last_stable_offset = ps->high_watermark;
    pout->log_start_offset = ps->log_start;
}

/* Builds the response from current data. Returns the bytes of records it holds; *errors counts
 * partitions answered with an error (those are answered at once, not long-polled); *pending says
 * that some chunk is being read from the store (the request then waits for it). */
static int64_t fetch_build(struct broker *b, struct request *rq, struct fetch_response *resp, int *errors,
                           bool *pending)
{
    struct fetch_request *req = rq->body;
    int16_t ver = rq->hdr.api_version;
    int64_t max_bytes = req->max_bytes > 0 ? req->max_bytes : INT32_MAX;
    int64_t total = 0;
    int ntopics = req->topics_count > 0 ? req->topics_count : 0;
    memset(resp, 0, sizeof(*resp));
    resp->responses = RQ_ALLOC(rq, resp_topic_t, ntopics);
    resp->responses_count = ntopics;
    for (int i = 0; i < ntopics; i++) {
        const req_topic_t *tin = &req->topics[i];
        resp_topic_t *tout = &resp->responses[i];
        tout->topic = tin->topic;
        int nparts = tin->partitions_count > 0 ? tin->partitions_count : 0;
        tout->partitions = RQ_ALLOC(rq, resp_part_t, nparts);
        tout->partitions_count = nparts;
        for (int j = 0; j < nparts; j++) {
            const req_part_t *pin = &tin->partitions[j];
            resp_part_t *pout = &tout->partitions[j];
            pout->partition_index = pin->partition;
            pout->high_watermark = -1;
            pout->last_stable_offset = -1;
            pout->log_start_offset = -1;
            pout->preferred_read_replica = -1;
            pout->records = (struct kbytes){NULL, 0};
            if (ver < 4) { /* would need down-conversion to message format v0/v1 */
                pout->error_code = KERR_UNSUPPORTED_VERSION;
                continue;
            }
            struct topic_entry *t = topics_lookup(b, tin->topic.ptr, tin->topic.len);
            int err = KERR_UNKNOWN_TOPIC_OR_PARTITION;
            struct partition_state *ps = t ? topics_partition(b, t, pin->partition, &err) : NULL;
            if (!ps) {
                pout->error_code = (int16_t)err;
                continue;
            }
            set_offsets(pout, ps);
            if (pin->fetch_offset > ps->high_watermark) {
                /* Another worker or agent may have committed since we last looked: never send a
                 * client off to "latest" on a stale view (clients reset on OFFSET_OUT_OF_RANGE). */
                ps = topics_partition_fresh(b, t, pin->partition, &err);
                if (!ps) {
                    pout->error_code = (int16_t)err;
                    continue;
                }
                set_offsets(pout, ps);
            }
            if (pin->fetch_offset < ps->log_start || pin->fetch_offset > ps->high_watermark) {
                log_warn("fetch %.*s/%d at offset %lld: out of range [%lld, %lld] (%s)", tin->topic.len,
                         tin->topic.ptr, pin->partition, (long long)pin->fetch_offset, (long long)ps->log_start,
                         (long long)ps->high_watermark, request_who(rq));
                pout->error_code = KERR_OFFSET_OUT_OF_RANGE;
                continue;
            }
            if (pin->fetch_offset == ps->high_watermark)
                continue;
            int64_t budget = pin->partition_max_bytes;
            if (budget > max_bytes - total)
                budget = max_bytes - total;
            if (budget <= 0 && total > 0)
                continue;
            struct buf out;
            buf_init(&out);
            err = read_partition(b, rq, t->info.id, pin->partition, pin->fetch_offset, ps->high_watermark, budget,
                                 total == 0, &out);
            if (err == READ_PENDING) {
                *pending = true;
                err = 0;
            }
            if (err) {
                pout->error_code = (int16_t)err;
            } else if (out.len) {
                uint8_t *p = arena_alloc(&rq->arena, out.len);
                memcpy(p, out.data, out.len);
                pout->records = (struct kbytes){p, (int32_t)out.len};
                total += (int64_t)out.len;
            }
            buf_free(&out);
        }
    }
    for (int i = 0; i < ntopics; i++)
        for (int j = 0; j < resp->responses[i].partitions_count; j++)
            if (resp->responses[i].partitions[j].error_code)
                (*errors)++;
    return total;
}

/* Could a retry of this waiting fetch find data now? (cheap: compares cached high watermarks) */
static bool fetch_has_new_data(struct broker *b, struct request *rq)
{
    struct fetch_request *req = rq->body;
    for (int i = 0; i < req->topics_count; i++) {
        const req_topic_t *tin = &req->topics[i];
        struct topic_entry *t = topics_lookup(b, tin->topic.ptr, tin->topic.len);
        if (!t)
            continue;
        for (int j = 0; j < tin->partitions_count; j++) {
            int err;
            struct partition_state *ps = topics_partition(b, t, tin->partitions[j].partition, &err);
            if (!ps || ps->high_watermark > tin->partitions[j].fetch_offset)
                return true; /* an error is news too: answer it */
        }
    }
    return false;
}

enum fetch_outcome { FETCH_ANSWERED, FETCH_WAIT_DATA, FETCH_WAIT_READS };

static void fetch_resume(void *broker, struct request *rq);

/* Answers if there is enough data (or final); otherwise says what to wait for. */
static enum fetch_outcome fetch_try(struct broker *b, struct request *rq, bool final)
{
    struct fetch_request *req = rq->body;
    struct fetch_response *resp = RQ_ALLOC(rq, struct fetch_response, 1);
    int errors = 0;
    bool pending = false;
    int64_t bytes = fetch_build(b, rq, resp, &errors, &pending);
    if (pending) { /* read jobs list this request: it must not be answered (freed) before they end */
        rq->read_rounds++;
        rq->resume = fetch_resume;
        return FETCH_WAIT_READS;
    }
    if (!final && !errors && bytes < (req->min_bytes > 0 ? req->min_bytes : 1) && req->max_wait_ms > 0 &&
        !b->draining)
        return FETCH_WAIT_DATA;
    resp->session_id = 0; /* no incremental fetch sessions: clients send full fetches */
    request_respond(rq, resp);
    return FETCH_ANSWERED;
}

static void park_for_data(struct broker *b, struct request *rq)
{
    struct fetch_waiter *w = calloc(1, sizeof(*w));
    if (!w) {
        fetch_try(b, rq, true);
        return;
    }
    w->rq = rq;
    w->deadline_ms = wait_deadline(rq);
    w->next = b->waiters;
    b->waiters = w;
}

/* The reads a fetch waited for are cached now: try again. */
static void fetch_resume(void *broker, struct request *rq)
{
    struct broker *b = broker;
    bool final = mono_ms() >= wait_deadline(rq) || b->draining;
    if (fetch_try(b, rq, final) == FETCH_WAIT_DATA)
        park_for_data(b, rq);
}

void handle_fetch(struct broker *b, struct request *rq)
{
    if (fetch_try(b, rq, false) == FETCH_WAIT_DATA)
        park_for_data(b, rq);
}

void fetch_wake(struct broker *b, int64_t now_ms, bool data_arrived)
{
    struct fetch_waiter **pp = &b->waiters;
    while (*pp) {
        struct fetch_waiter *w = *pp;
        bool expired = now_ms >= w->deadline_ms || b->draining;
        enum fetch_outcome o = FETCH_WAIT_DATA;
        if (expired)
            o = fetch_try(b, w->rq, true);
        else if (data_arrived && fetch_has_new_data(b, w->rq))
            o = fetch_try(b, w->rq, false);
        if (o != FETCH_WAIT_DATA) { /* answered, or now waiting for reads (it re-parks itself) */
            *pp = w->next;
            free(w);
        } else {
            pp = &w->next;
        }
    }
}

int64_t fetch_next_deadline(struct broker *b)
{
    int64_t d = INT64_MAX;
    for (struct fetch_waiter *w = b->waiters; w; w = w->next)
        if (w->deadline_ms < d)
            d = w->deadline_ms;
    return d;
}

void fetch_cancel_all(struct broker *b)
{
    fetch_wake(b, INT64_MAX, false);
}

void fetch_cancel_conn(struct broker *b, struct conn *c)
{
    struct fetch_waiter **pp = &b->waiters;
    while (*pp) {
        struct fetch_waiter *w = *pp;
        if (w->rq->conn == c) {
            *pp = w->next;
            request_finish_silent(w->rq);
            free(w);
        } else {
            pp = &w->next;
        }
    }
}
