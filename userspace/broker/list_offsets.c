/* ListOffsets: earliest (-2), latest (-1), max timestamp (-3), or the first offset whose timestamp
 * is >= T. */
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

#define TIME_SEARCH_CHUNKS 8

/* Walks the batches of a chunk for the first record with timestamp >= ts. Returns 1 when found. */
static int search_chunk(struct broker *b, struct request *rq, const struct chunk_ref *ref, int64_t ts,
                        int64_t *offset, int64_t *found_ts)
{
    int err;
    const struct buf *data = broker_chunk(b, ref, rq, &err);
    if (!data)
        return err == READ_PENDING ? READ_PENDING : -1;
    int64_t base = ref->base_offset;
    size_t pos = 0, size;
    struct batch_header h;
    const uint8_t *batch;
    int rc;
    while ((rc = batch_next(data->data, data->len, &pos, &h, &batch, &size)) == 1) {
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

static int offset_for_time(struct broker *b, struct request *rq, int64_t topic_id, int32_t partition, int64_t ts,
                           int64_t *offset, int64_t *found_ts)
{
    struct chunk_ref refs[TIME_SEARCH_CHUNKS];
    int n = metastore_find_chunks_by_time(b->meta, topic_id, partition, ts, refs, TIME_SEARCH_CHUNKS);
    if (n < 0)
        return KERR_KAFKA_STORAGE_ERROR;
    for (int i = 0; i < n; i++) {
        int rc = search_chunk(b, rq, &refs[i], ts, offset, found_ts);
        if (rc == READ_PENDING)
            return READ_PENDING;
        if (rc < 0)
            return KERR_KAFKA_STORAGE_ERROR;
        if (rc == 1)
            return 0;
    }
    *offset = -1; /* no record that late: Kafka answers offset -1 */
    *found_ts = -1;
    return 0;
}

/* Fills one partition's answer; returns true if it waits for a read from the store. */
static bool list_partition(struct broker *b, struct request *rq, struct topic_entry *t, const req_part_t *in,
                           resp_part_t *out)
{
    int err;
    struct partition_state *ps = topics_partition(b, t, in->partition_index, &err);
    if (!ps) {
        out->error_code = (int16_t)err;
        return false;
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
    case TS_MAX_TIMESTAMP: {
        struct chunk_ref ref;
        int rc = metastore_max_timestamp(b->meta, t->info.id, in->partition_index, &ref);
        if (rc < 0)
            err = KERR_KAFKA_STORAGE_ERROR;
        else if (rc == 0)
            err = offset_for_time(b, rq, t->info.id, in->partition_index, ref.max_timestamp, &offset, &ts);
        break;
    }
    default:
        if (in->timestamp < 0) {
            err = KERR_INVALID_REQUEST;
            log_warn("ListOffsets with unknown special timestamp %lld (%s)", (long long)in->timestamp,
                     request_who(rq));
        } else {
            err = offset_for_time(b, rq, t->info.id, in->partition_index, in->timestamp, &offset, &ts);
        }
    }
    if (err == READ_PENDING) {
        out->error_code = KERR_KAFKA_STORAGE_ERROR; /* if it is still pending when we give up */
        return true;
    }
    out->error_code = (int16_t)err;
    if (err)
        return false;
    out->offset = offset;
    out->timestamp = ts;
    out->leader_epoch = 0;
    if (rq->hdr.api_version == 0) {
        out->old_style_offsets = RQ_ALLOC(rq, int64_t, 1);
        out->old_style_offsets[0] = offset;
        out->old_style_offsets_count = offset >= 0 ? 1 : 0;
    }
    return false;
}

/* Reads from the store finished: answer again from the start (cheap: the chunks are cached now). */
static void resume_list_offsets(void *broker, struct request *rq)
{
    handle_list_offsets(broker, rq);
}


void handle_list_offsets(struct broker *b, struct request *rq)
{
    struct list_offsets_request *req = rq->body;
    struct list_offsets_response *resp = RQ_ALLOC(rq, struct list_offsets_response, 1);
    bool pending = false;
    int ntopics = req->topics_count > 0 ? req->topics_count : 0;
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
            struct topic_entry *t = topics_lookup(b, tin->name.ptr, tin->name.len);
            if (!t)
                pout->error_code = KERR_UNKNOWN_TOPIC_OR_PARTITION;
            else
                pending |= list_partition(b, rq, t, &tin->partitions[j], pout);
        }
    }
    if (pending) { /* read jobs list this request: never answer it before they end */
        rq->read_rounds++;
        rq->resume = resume_list_offsets;
        return;
    }
    request_respond(rq, resp);
}
