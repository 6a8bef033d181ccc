/* ListOffsets: earliest (-2), latest (-1), max timestamp (-3), or the first offset whose timestamp
 * is >= T. Like fetch, in rounds that wait for everything missing at once: topics and offsets from
 * the store, the chunks that may hold the timestamp (one store job), then their bytes. */
#include <stdlib.h>
#include <string.h>

#include "broker/broker_internal.h"
#include "record/batch.h"
#include "util/log.h"

typedef struct list_offsets_request_topic req_topic_t;
typedef struct list_offsets_request_topic_partition req_part_t;
typedef struct list_offsets_response_topic resp_topic_t;
typedef struct list_offsets_response_topic_partition resp_part_t;

#define TS_LATEST (-1)
#define TS_EARLIEST (-2)
#define TS_MAX_TIMESTAMP (-3)
#define TS_EARLIEST_LOCAL (-4)
#define TS_EARLIEST_PENDING_UPLOAD (-5)

/* Chunks searched for a timestamp. */
#define TIME_SEARCH_CHUNKS 8
/* LATEST is the high watermark as read at most this long before the request arrived. */
#define LATEST_FRESH_MS 20

/* The chunks that may hold one partition's timestamp. */
struct time_search {
    bool searched;
    int error;
    int64_t ts;                  /* the timestamp searched for (-3: the partition's largest) */
    struct chunk_ref refs[TIME_SEARCH_CHUNKS];
    int nrefs;
};

struct search_job {
    struct job base;
    struct request *rq;
    struct time_search *out;
    int64_t topic_id;
    int32_t partition;
    int64_t ts;                  /* TS_MAX_TIMESTAMP: the partition's largest */
    struct time_search result;
};

static void search_run(struct job *job, struct metastore *m)
{
    struct search_job *j = (struct search_job *)job;
    int64_t ts = j->ts;
    if (ts == TS_MAX_TIMESTAMP) {
        struct chunk_ref ref;
        int rc = metastore_max_timestamp(m, j->topic_id, j->partition, &ref);
        if (rc != 0) {
            j->result.error = rc < 0 ? KERR_KAFKA_STORAGE_ERROR : 0; /* 1: empty partition */
            return;
        }
        ts = ref.max_timestamp;
    }
    j->result.ts = ts;
    int n = metastore_find_chunks_by_time(m, j->topic_id, j->partition, ts, j->result.refs, TIME_SEARCH_CHUNKS);
    if (n < 0)
        j->result.error = KERR_KAFKA_STORAGE_ERROR;
    else
        j->result.nrefs = n;
}

static void search_done(struct broker *b, struct job *job)
{
    struct search_job *j = (struct search_job *)job;
    if (b) {
        *j->out = j->result;
        j->out->searched = true;
        broker_release(b, j->rq);
    }
    free(j);
}

/* Walks the batches of a chunk for the first record with timestamp >= ts. Returns 1 when found. */
static int search_chunk(const struct buf *data, const struct chunk_ref *ref, int64_t ts, int64_t *offset,
                        int64_t *found_ts)
{
    int64_t base = ref->base_offset;
    size_t pos = 0, size;
    struct batch_header h;
    const uint8_t *batch;
    int rc;
    while ((rc = batch_next(data->data, data->len, &pos, &h, &batch, &size)) == 1) {
        if (batch_walk_base(&h, ref->last_offset, &base) != 0) {
            log_error("list_offsets: chunk %s@%llu does not match its offsets", ref->object_key,
                      (unsigned long long)ref->pos);
            return -1;
        }
        if (h.max_timestamp >= ts) {
            int64_t delta = batch_find_timestamp(batch, size, ts);
            if (delta >= 0) {
                *offset = base + delta;
                /* Kafka answers the found record's own timestamp; this is the batch's maximum
                 * (clients seek by the offset). */
                *found_ts = h.max_timestamp;
                return 1;
            }
        }
        base += (int64_t)h.last_offset_delta + 1;
    }
    return rc;
}

/* The first offset whose timestamp is >= ts, from the searched chunks: 0 (offset -1 when there is
 * none), a Kafka error, or -1 with *waits when chunk bytes are being read. */
static int offset_for_time(struct broker *b, struct request *rq, const struct time_search *s, int64_t ts,
                           int64_t *offset, int64_t *found_ts, bool *waits)
{
    *offset = -1; /* no record that late: Kafka answers offset -1 */
    *found_ts = -1;
    bool missing = false;
    for (int i = 0; i < s->nrefs; i++) {
        if (s->refs[i].len == 0) /* key compaction removed every record */
            continue;
        int err;
        const struct buf *data = chunk_need(b, rq, &s->refs[i], &err);
        if (!data) {
            if (err)
                return err;
            missing = true; /* ask for all of them at once */
            continue;
        }
        if (missing)
            continue;
        int rc = search_chunk(data, &s->refs[i], ts, offset, found_ts);
        if (rc < 0)
            return KERR_KAFKA_STORAGE_ERROR;
        if (rc == 1)
            return 0;
    }
    if (missing) {
        *waits = true;
        return -1;
    }
    return 0;
}

/* Fills one partition's answer; *waits when it waits for the store or a read. */
static void list_partition(struct broker *b, struct request *rq, const req_topic_t *tin, const req_part_t *in,
                           struct time_search *search, resp_part_t *out, bool *waits)
{
    int err;
    if (!authz_allow(b, rq, ACL_OP_DESCRIBE, ACL_RES_TOPIC, tin->name.ptr, tin->name.len)) {
        out->error_code = KERR_TOPIC_AUTHORIZATION_FAILED;
        return;
    }
    struct topic_entry *t = topics_need(b, rq, tin->name.ptr, tin->name.len, &err);
    struct partition_state *ps = NULL;
    if (t) {
        /* LATEST and EARLIEST move (commits; retention and DeleteRecords on any agent): read fresh. */
        bool moves = in->timestamp == TS_LATEST || in->timestamp == TS_EARLIEST;
        int64_t since = moves ? rq->received_ms - LATEST_FRESH_MS : INT64_MIN;
        ps = partition_need(b, rq, t, in->partition_index, since, &err);
    }
    if (!ps) {
        *waits |= err == 0;
        out->error_code = (int16_t)err;
        return;
    }
    int64_t offset = -1, ts = -1;
    switch (in->timestamp) {
    case TS_LATEST:
        offset = ps->high_watermark;
        break;
    case TS_EARLIEST:
    case TS_EARLIEST_LOCAL:
    case TS_EARLIEST_PENDING_UPLOAD:
        offset = ps->log_start;
        break;
    default:
        if (in->timestamp < 0 && in->timestamp != TS_MAX_TIMESTAMP) {
            err = KERR_INVALID_REQUEST;
            log_warn("ListOffsets with unknown special timestamp %lld (%s)", (long long)in->timestamp,
                     request_who(rq));
            break;
        }
        if (!search->searched) {
            struct search_job *j = calloc(1, sizeof(*j));
            if (!j)
                abort();
            j->base.run = search_run;
            j->base.done = search_done;
            j->rq = rq;
            j->out = search;
            j->topic_id = t->info.id;
            j->partition = in->partition_index;
            j->ts = in->timestamp;
            rq->reads_pending++;
            jobs_submit(&b->store, &j->base);
            *waits = true;
            return;
        }
        err = search->error;
        if (!err && search->nrefs) {
            err = offset_for_time(b, rq, search, search->ts, &offset, &ts, waits);
            if (*waits)
                return;
        }
    }
    out->error_code = (int16_t)err;
    if (err)
        return;
    if (offset >= 0 && offset < ps->log_start)
        offset = ps->log_start; /* DeleteRecords may have cut into the chunk the time search found */
    out->offset = offset;
    out->timestamp = ts;
    out->leader_epoch = 0;
    if (rq->hdr.api_version == 0) {
        out->old_style_offsets = RQ_ALLOC(rq, int64_t, 1);
        out->old_style_offsets[0] = offset;
        out->old_style_offsets_count = offset >= 0 ? 1 : 0;
    }
}

/* What it waited for is in: another round (cheap: everything it has is cached or pinned). */
static void resume_list_offsets(void *broker, struct request *rq)
{
    handle_list_offsets(broker, rq);
}

void handle_list_offsets(struct broker *b, struct request *rq)
{
    struct list_offsets_request *req = rq->body;
    int ntopics = req->topics_count > 0 ? req->topics_count : 0;
    struct time_search **searches = rq->state;
    if (!searches) { /* per partition, across rounds */
        searches = RQ_ALLOC(rq, struct time_search *, ntopics);
        for (int i = 0; i < ntopics; i++)
            searches[i] = RQ_ALLOC(rq, struct time_search, req->topics[i].partitions_count);
        rq->state = searches;
    }
    struct list_offsets_response *resp = RQ_ALLOC(rq, struct list_offsets_response, 1);
    bool waits = false;
    resp->topics = RQ_ALLOC(rq, resp_topic_t, ntopics);
    resp->topics_count = ntopics;
    for (int i = 0; i < ntopics; i++) {
        const req_topic_t *tin = &req->topics[i];
        resp_topic_t *tout = &resp->topics[i];
        tout->name = tin->name;
        int nparts = tin->partitions_count > 0 ? tin->partitions_count : 0;
        tout->partitions = RQ_ALLOC(rq, resp_part_t, nparts);
        tout->partitions_count = nparts;
        for (int j = 0; j < nparts; j++) {
            resp_part_t *pout = &tout->partitions[j];
            pout->partition_index = tin->partitions[j].partition_index;
            pout->offset = -1;
            pout->timestamp = -1;
            pout->leader_epoch = -1;
            list_partition(b, rq, tin, &tin->partitions[j], &searches[i][j], pout, &waits);
        }
    }
    if (waits) { /* jobs and reads list this request: never answer it before they end */
        rq->resume = resume_list_offsets;
        return;
    }
    request_respond(rq, resp);
}
