/* Fetch. A request runs in rounds, and every round either answers or waits for all it lacks at once:
 *
 *   1. topics and offsets from the cache (a topic never seen, or offsets that must be fresh, are
 *      asked of the store: the request waits);
 *   2. the plan: for every partition with data to send, the chunks holding its offsets, enough to
 *      fill its byte budget (one store job for all of them);
 *   3. the chunks' bytes: every one not in the read cache is read at once, adjacent chunks of an
 *      object in one ranged read;
 *   4. the answer: each batch with its baseOffset rewritten, the whole batch holding the fetch
 *      offset, at least one batch even past max_bytes (KIP-74).
 *
 * With too little data it waits (long poll) up to max_wait_ms, and answers as soon as a commit brings
 * enough. A partition whose read really failed gets KAFKA_STORAGE_ERROR; the others are answered. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker_internal.h"
#include "record/batch.h"
#include "server/conn.h"
#include "util/clock.h"
#include "util/log.h"

typedef struct fetch_request_topic req_topic_t;
typedef struct fetch_request_topic_partition req_part_t;
typedef struct fetch_response_topic resp_topic_t;
typedef struct fetch_response_topic_partition resp_part_t;

/* The longest a fetch waits for data, whatever it asks: Kafka's clients ask a few seconds at most,
 * and a parked fetch holds memory and its connection. */
#define MAX_FETCH_WAIT_MS 30000
/* Chunks asked of the store per query while planning a partition. */
#define PLAN_CHUNKS 64
/* A partition's plan holds at most this many chunks (a budget full of tiny chunks stops here). */
#define PLAN_CHUNKS_MAX 4096

struct fetch_waiter {
    struct request *rq;
    int64_t deadline_ms;
    struct fetch_waiter *next;
};

/* What one partition of the request needs. */
struct fetch_part {
    const req_topic_t *tin;
    const req_part_t *pin;
    struct chunk_ref *refs;       /* the plan: chunks from the fetch offset on, by offset (malloc'd) */
    int nrefs;
    int64_t planned_hwm;          /* the high watermark the plan covers up to; -1: no plan */
    bool planning;
    int plan_error;
};

struct fetch_state {
    struct fetch_part *parts;
    int nparts;
};

static int64_t wait_deadline(const struct request *rq)
{
    const struct fetch_request *req = rq->body;
    int64_t wait = req->max_wait_ms < MAX_FETCH_WAIT_MS ? req->max_wait_ms : MAX_FETCH_WAIT_MS;
    return rq->received_ms + wait;
}

static struct fetch_state *state_of(struct request *rq)
{
    if (rq->state)
        return rq->state;
    struct fetch_request *req = rq->body;
    struct fetch_state *st = RQ_ALLOC(rq, struct fetch_state, 1);
    for (int i = 0; i < req->topics_count; i++)
        st->nparts += req->topics[i].partitions_count > 0 ? req->topics[i].partitions_count : 0;
    st->parts = RQ_ALLOC(rq, struct fetch_part, st->nparts);
    int k = 0;
    for (int i = 0; i < req->topics_count; i++)
        for (int j = 0; j < req->topics[i].partitions_count; j++) {
            st->parts[k].tin = &req->topics[i];
            st->parts[k].pin = &req->topics[i].partitions[j];
            st->parts[k].planned_hwm = -1;
            k++;
        }
    rq->state = st;
    return st;
}

/* The plan's chunks are malloc'd (a job fills them on a store thread): freed with the request. */
static void state_free(struct request *rq)
{
    struct fetch_state *st = rq->state;
    if (!st)
        return;
    for (int i = 0; i < st->nparts; i++)
        free(st->parts[i].refs);
    rq->state = NULL;
}

/* ---- 2. the plan, on a store thread ---- */

struct plan_item {
    struct fetch_part *part;      /* loop side only */
    int64_t topic_id;
    int32_t partition;
    int64_t from, until;          /* offsets [from, until) */
    int64_t budget;               /* bytes */
    struct chunk_ref *refs;
    int nrefs;
    int rc;
};

struct plan_job {
    struct job base;
    struct request *rq;
    int n;
    struct plan_item items[];
};

static void plan_run(struct job *job, struct metastore *m)
{
    struct plan_job *j = (struct plan_job *)job;
    for (int i = 0; i < j->n; i++) {
        struct plan_item *it = &j->items[i];
        int cap = 0;
        int64_t next = it->from, bytes = 0;
        while (next < it->until && bytes < it->budget && it->nrefs < PLAN_CHUNKS_MAX) {
            if (it->nrefs + PLAN_CHUNKS > cap) {
                cap = cap ? 2 * cap : PLAN_CHUNKS;
                it->refs = realloc(it->refs, sizeof(*it->refs) * (size_t)cap);
                if (!it->refs)
                    abort();
            }
            int n = metastore_find_chunks(m, it->topic_id, it->partition, next, it->refs + it->nrefs, PLAN_CHUNKS);
            if (n < 0) {
                it->rc = -1;
                break;
            }
            if (n == 0)
                break;
            for (int k = 0; k < n; k++)
                bytes += it->refs[it->nrefs + k].len;
            it->nrefs += n;
            next = it->refs[it->nrefs - 1].last_offset + 1;
        }
    }
}

static void plan_done(struct broker *b, struct job *job)
{
    struct plan_job *j = (struct plan_job *)job;
    for (int i = 0; i < j->n; i++) {
        struct plan_item *it = &j->items[i];
        if (b) {
            struct fetch_part *fp = it->part;
            fp->planning = false;
            free(fp->refs);
            fp->refs = it->refs;
            fp->nrefs = it->nrefs;
            fp->planned_hwm = it->until;
            fp->plan_error = it->rc ? KERR_KAFKA_STORAGE_ERROR : 0;
        } else {
            free(it->refs);
        }
    }
    if (b)
        broker_release(b, j->rq);
    free(j);
}

/* ---- 1. to 4.: one round ---- */

/* Without transactions the last stable offset is the high watermark. */
static void set_offsets(resp_part_t *pout, const struct partition_state *ps)
{
    pout->high_watermark = ps->high_watermark;
    pout->last_stable_offset = ps->high_watermark;
    pout->log_start_offset = ps->log_start;
}

/* The batches of one partition from fetch_offset on, within budget bytes (the first batch of the
 * whole response is always included, KIP-74), from the plan's chunks. When they lie back to back in
 * one cached chunk (the usual case: a consumer reading through a chunk), *run points at them there,
 * with no copy, and *held keeps those bytes alive (read_cache_hold); otherwise they are copied into
 * out. baseOffsets are rewritten in the cached bytes themselves (the same value every time).
 * Returns a Kafka error or 0; *waits when a chunk is being read. */
#define ANSWER_RUN_ENOUGH (256u * 1024)
struct answer_run {
    const uint8_t *ptr;
    size_t len;
    const struct buf *from; /* the cached chunk ptr points into */
};

static int chunk_corrupt(const struct fetch_part *fp, const struct chunk_ref *ref)
{
    log_error("fetch: chunk %s@%llu of %.*s/%d does not match its offsets", ref->object_key,
              (unsigned long long)ref->pos, fp->tin->topic.len, fp->tin->topic.ptr, fp->pin->partition);
    return KERR_KAFKA_STORAGE_ERROR;
}

static int read_partition(struct broker *b, struct request *rq, struct fetch_part *fp, int64_t high_watermark,
                          int64_t budget, bool response_empty, struct buf *out, struct answer_run *run,
                          bool *waits)
{
    int64_t next = fp->pin->fetch_offset;
    bool seen = false; /* a chunk at or after the fetch offset */
    *run = (struct answer_run){0};
    for (int i = 0; i < fp->nrefs && next < high_watermark; i++) {
        const struct chunk_ref *ref = &fp->refs[i];
        if (ref->last_offset < next)
            continue;
        /* Chunks cover the log without holes (a compacted chunk keeps its whole offset range,
         * gaps are inside chunks), so a first chunk past the fetch offset means retention or
         * DeleteRecords removed it after this worker last read the log start. */
        if (ref->base_offset > next && !seen)
            return KERR_OFFSET_OUT_OF_RANGE;
        seen = true;
        if (ref->len == 0 && ref->cleaned) { /* key compaction removed every record */
            next = ref->last_offset + 1;
            continue;
        }
        int err;
        const struct buf *data = chunk_need(b, rq, ref, &err);
        if (!data) {
            if (err)
                return err;
            *waits = true;
            continue; /* ask for every chunk this round needs at once */
        }
        if (*waits)
            continue;
        int64_t base = ref->base_offset;
        size_t pos = 0, size;
        struct batch_header h;
        const uint8_t *batch;
        while (batch_next(data->data, data->len, &pos, &h, &batch, &size) == 1) {
            if (batch_walk_base(&h, ref->last_offset, &base) != 0)
                return chunk_corrupt(fp, ref);
            int64_t span = (int64_t)h.last_offset_delta + 1;
            if (base + span > next && base < high_watermark) {
                size_t have = run->len + out->len;
                bool first = response_empty && have == 0;
                if (!first && (int64_t)(have + size) > budget)
                    return 0;
                batch_set_base_offset((uint8_t *)batch, base);
                if (out->len == 0 && (run->len == 0 || (run->from == data && run->ptr + run->len == batch))) {
                    if (run->len == 0)
                        *run = (struct answer_run){batch, 0, data};
                    run->len += size; /* still one piece of one chunk */
                } else {
                    if (run->len >= ANSWER_RUN_ENOUGH)
                        return 0; /* a large piece already: answer it as is rather than copy it */
                    if (run->len) { /* a second piece: copy the first too */
                        buf_append(out, run->ptr, run->len);
                        *run = (struct answer_run){0};
                    }
                    buf_append(out, batch, size);
                }
                next = base + span;
            }
            base += span;
        }
        /* A compacted chunk may end before its last offset (its last records were removed). */
        if (base > ref->last_offset + 1 || (base != ref->last_offset + 1 && !ref->cleaned))
            return chunk_corrupt(fp, ref);
        if (next <= ref->last_offset) /* the chunk's last offsets were removed: go on after them */
            next = ref->last_offset + 1;
    }
    return 0;
}

enum fetch_outcome { FETCH_ANSWERED, FETCH_WAIT_DATA, FETCH_WAIT };

static void fetch_resume(void *broker, struct request *rq);

/* Step 1 for one partition: its topic and offsets. Returns the state, or NULL with an error in
 * pout, or NULL with *waits set. */
static struct partition_state *offsets_for(struct broker *b, struct request *rq, struct fetch_part *fp,
                                           resp_part_t *pout, struct topic_entry **tp, bool *waits)
{
    int err;
    if (!authz_allow(b, rq, ACL_OP_READ, ACL_RES_TOPIC, fp->tin->topic.ptr, fp->tin->topic.len)) {
        pout->error_code = KERR_TOPIC_AUTHORIZATION_FAILED;
        return NULL;
    }
    struct topic_entry *t = topics_need(b, rq, fp->tin->topic.ptr, fp->tin->topic.len, &err);
    if (!t) {
        *waits |= err == 0;
        pout->error_code = (int16_t)err;
        return NULL;
    }
    *tp = t;
    struct partition_state *ps = partition_need(b, rq, t, fp->pin->partition, INT64_MIN, &err);
    if (ps && fp->pin->fetch_offset > ps->high_watermark)
        /* Another worker or agent may have committed since we last looked: never send a client
         * off to "latest" on a stale view (clients reset on OFFSET_OUT_OF_RANGE). */
        ps = partition_need(b, rq, t, fp->pin->partition, rq->received_ms, &err);
    if (!ps) {
        *waits |= err == 0;
        pout->error_code = (int16_t)err;
        return NULL;
    }
    set_offsets(pout, ps);
    if (fp->pin->fetch_offset < ps->log_start || fp->pin->fetch_offset > ps->high_watermark) {
        log_warn("fetch %.*s/%d at offset %lld: out of range [%lld, %lld] (%s)", fp->tin->topic.len,
                 fp->tin->topic.ptr, fp->pin->partition, (long long)fp->pin->fetch_offset, (long long)ps->log_start,
                 (long long)ps->high_watermark, request_who(rq));
        pout->error_code = KERR_OFFSET_OUT_OF_RANGE;
        return NULL;
    }
    return ps;
}

/* Answers if there is enough data (or final); otherwise says what it waits for. */
static enum fetch_outcome fetch_try(struct broker *b, struct request *rq, bool final)
{
    struct fetch_request *req = rq->body;
    struct fetch_state *st = state_of(rq);
    struct fetch_response *resp = RQ_ALLOC(rq, struct fetch_response, 1);
    int16_t ver = rq->hdr.api_version;
    int64_t max_bytes = req->max_bytes > 0 ? req->max_bytes : INT32_MAX;
    if (max_bytes > b->cfg->fetch_max_bytes) /* like Kafka's fetch.max.bytes: bounds the worker's memory */
        max_bytes = b->cfg->fetch_max_bytes;
    int ntopics = req->topics_count > 0 ? req->topics_count : 0;
    resp->responses = RQ_ALLOC(rq, resp_topic_t, ntopics);
    resp->responses_count = ntopics;
    resp_part_t **pouts = RQ_ALLOC(rq, resp_part_t *, st->nparts);
    struct partition_state **pss = RQ_ALLOC(rq, struct partition_state *, st->nparts);
    struct topic_entry **ts = RQ_ALLOC(rq, struct topic_entry *, st->nparts);
    int k = 0;
    bool waits = false;
    for (int i = 0; i < ntopics; i++) {
        const req_topic_t *tin = &req->topics[i];
        resp_topic_t *tout = &resp->responses[i];
        tout->topic = tin->topic;
        int nparts = tin->partitions_count > 0 ? tin->partitions_count : 0;
        tout->partitions = RQ_ALLOC(rq, resp_part_t, nparts);
        tout->partitions_count = nparts;
        for (int j = 0; j < nparts; j++, k++) {
            resp_part_t *pout = &tout->partitions[j];
            pouts[k] = pout;
            pout->partition_index = tin->partitions[j].partition;
            pout->high_watermark = pout->last_stable_offset = pout->log_start_offset = -1;
            pout->preferred_read_replica = -1;
            if (ver < 4) /* would need down-conversion to message format v0/v1 */
                pout->error_code = KERR_UNSUPPORTED_VERSION;
            else
                pss[k] = offsets_for(b, rq, &st->parts[k], pout, &ts[k], &waits);
        }
    }
    if (waits)
        goto wait;

    /* 2. Plans for the partitions with data whose plan does not reach the high watermark yet. */
    int nplan = 0;
    for (k = 0; k < st->nparts; k++)
        if (pss[k] && st->parts[k].pin->fetch_offset < pss[k]->high_watermark &&
            st->parts[k].planned_hwm < pss[k]->high_watermark)
            nplan++;
    if (nplan) {
        struct plan_job *j = calloc(1, sizeof(*j) + sizeof(struct plan_item) * (size_t)nplan);
        if (!j)
            abort();
        j->base.run = plan_run;
        j->base.done = plan_done;
        j->rq = rq;
        for (k = 0; k < st->nparts; k++) {
            struct fetch_part *fp = &st->parts[k];
            if (!pss[k] || fp->pin->fetch_offset >= pss[k]->high_watermark || fp->planned_hwm >= pss[k]->high_watermark)
                continue;
            int64_t budget = fp->pin->partition_max_bytes < max_bytes ? fp->pin->partition_max_bytes : max_bytes;
            j->items[j->n++] = (struct plan_item){
                .part = fp,
                .topic_id = ts[k]->info.id,
                .partition = fp->pin->partition,
                .from = fp->pin->fetch_offset,
                .until = pss[k]->high_watermark,
                .budget = budget > 0 ? budget : 1,
            };
            fp->planning = true;
        }
        rq->reads_pending++;
        jobs_submit(&b->store, &j->base);
        goto wait;
    }

    /* 3. and 4. The bytes, then the answer (or what is still missing, all at once). */
    int64_t total = 0;
    int errors = 0;
    struct buf out;
    buf_init(&out);
    for (k = 0; k < st->nparts; k++) {
        struct fetch_part *fp = &st->parts[k];
        resp_part_t *pout = pouts[k];
        if (!pss[k] || fp->pin->fetch_offset >= pss[k]->high_watermark)
            continue;
        if (fp->plan_error) {
            pout->error_code = (int16_t)fp->plan_error;
            continue;
        }
        int64_t budget = fp->pin->partition_max_bytes;
        if (budget > max_bytes - total)
            budget = max_bytes - total;
        if (budget <= 0 && total > 0 && !waits)
            continue;
        buf_reset(&out);
        struct answer_run run;
        int err = read_partition(b, rq, fp, pss[k]->high_watermark, budget, total == 0, &out, &run, &waits);
        if (err) {
            pout->error_code = (int16_t)err;
        } else if (run.len && !waits) {
            pout->records = (struct kbytes){run.ptr, (int32_t)run.len};
            total += (int64_t)run.len;
            /* Sent from the cache: its bytes stay until the answer is gone, evicted or not. */
            arena_adopt_release(&rq->arena, read_cache_hold(run.from), read_cache_release);
        } else if (out.len && !waits) {
            pout->records = (struct kbytes){out.data, (int32_t)out.len};
            total += (int64_t)out.len;
            arena_adopt(&rq->arena, out.data, out.cap); /* the answer owns the bytes: no copy */
            buf_init(&out);
        }
    }
    buf_free(&out);
    if (waits)
        goto wait;
    for (k = 0; k < st->nparts; k++)
        errors += pouts[k]->error_code != 0;
    /* Long poll, unless its client is gone (then it is answered now, into the void: a parked fetch
     * of a closed connection would never be cancelled, the close has been handled already). */
    if (!final && !errors && total < (req->min_bytes > 0 ? req->min_bytes : 1) && req->max_wait_ms > 0 &&
        !b->draining && request_conn_alive(rq)) {
        cache_pins_release(&rq->pins); /* nothing to answer with yet: let the cache have them back */
        return FETCH_WAIT_DATA;
    }
    resp->session_id = 0; /* no incremental fetch sessions: clients send full fetches */
    state_free(rq);
    request_respond(rq, resp);
    return FETCH_ANSWERED;

wait:
    /* Everything this round asked for is on its way: run again when it is in. */
    rq->resume = fetch_resume;
    if (rq->reads_pending == 0) /* cannot happen: waiting means something will release it */
        abort();
    return FETCH_WAIT;
}

/* ---- long poll ---- */

static void park_for_data(struct broker *b, struct request *rq)
{
    struct fetch_waiter *w = calloc(1, sizeof(*w));
    if (!w)
        abort();
    w->rq = rq;
    w->deadline_ms = wait_deadline(rq);
    w->next = b->waiters;
    b->waiters = w;
}

/* What a fetch waited for is in: another round. */
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

/* Could another round of this waiting fetch find data now? (the cached high watermarks say) */
static bool fetch_has_new_data(struct broker *b, struct request *rq)
{
    struct fetch_state *st = rq->state;
    for (int k = 0; k < st->nparts; k++) {
        const struct fetch_part *fp = &st->parts[k];
        struct topic_entry *t = topics_find(b, fp->tin->topic.ptr, fp->tin->topic.len);
        if (!t || fp->pin->partition < 0 || fp->pin->partition >= t->info.partitions)
            return true; /* gone: that is news too */
        if (t->parts[fp->pin->partition].high_watermark > fp->pin->fetch_offset)
            return true;
    }
    return false;
}

void fetch_wake(struct broker *b, int64_t now_ms, bool data_arrived)
{
    /* Take the list: a fetch that runs again may park again. */
    struct fetch_waiter *list = b->waiters, *keep = NULL;
    b->waiters = NULL;
    while (list) {
        struct fetch_waiter *w = list;
        list = w->next;
        bool expired = now_ms >= w->deadline_ms || b->draining;
        enum fetch_outcome o = FETCH_WAIT_DATA;
        if (expired)
            o = fetch_try(b, w->rq, true);
        else if (data_arrived && fetch_has_new_data(b, w->rq))
            o = fetch_try(b, w->rq, false);
        if (o == FETCH_WAIT_DATA) {
            w->next = keep;
            keep = w;
        } else {
            free(w); /* answered, or waiting for reads (it parks again when they are in) */
        }
    }
    /* Fetches parked meanwhile (by rounds that ran above) come first. */
    struct fetch_waiter **tail = &b->waiters;
    while (*tail)
        tail = &(*tail)->next;
    *tail = keep;
}

int64_t fetch_next_deadline(struct broker *b)
{
    int64_t d = INT64_MAX;
    for (struct fetch_waiter *w = b->waiters; w; w = w->next)
        if (w->deadline_ms < d)
            d = w->deadline_ms;
    return d;
}

void fetch_poll_offsets(struct broker *b)
{
    int n = 0;
    for (struct fetch_waiter *w = b->waiters; w; w = w->next)
        n += ((struct fetch_state *)w->rq->state)->nparts;
    if (n == 0)
        return;
    int64_t *ids = calloc((size_t)n, sizeof(*ids));
    int32_t *parts = calloc((size_t)n, sizeof(*parts));
    if (!ids || !parts)
        abort();
    int m = 0;
    for (struct fetch_waiter *w = b->waiters; w; w = w->next) {
        struct fetch_state *st = w->rq->state;
        for (int k = 0; k < st->nparts; k++) {
            struct topic_entry *t = topics_find(b, st->parts[k].tin->topic.ptr, st->parts[k].tin->topic.len);
            if (!t)
                continue;
            bool seen = false;
            for (int i = 0; i < m && !seen; i++)
                seen = ids[i] == t->info.id && parts[i] == st->parts[k].pin->partition;
            if (!seen) {
                ids[m] = t->info.id;
                parts[m++] = st->parts[k].pin->partition;
            }
        }
    }
    topics_poll(b, ids, parts, m);
    free(ids);
    free(parts);
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
            state_free(w->rq);
            request_finish_silent(w->rq);
            free(w);
        } else {
            pp = &w->next;
        }
    }
}
