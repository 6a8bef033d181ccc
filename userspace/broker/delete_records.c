/* DeleteRecords: moves each asked partition's log start up to an offset (-1: the high watermark)
 * and drops the chunks wholly below it, in one metadata transaction per partition, on a store
 * thread; the objects follow once unreferenced (lifecycle.c). Answered with the new low watermark. */
#include <stdlib.h>
#include <string.h>

#include "broker/broker_internal.h"
#include "metrics/metrics.h"

typedef struct delete_records_request_topic req_topic_t;
typedef struct delete_records_response_topic resp_topic_t;
typedef struct delete_records_response_topic_partition resp_part_t;

/* One asked partition. */
struct dr_part {
    int64_t topic_id;
    int32_t partition;
    int64_t offset;
    int err;                     /* refused before the store is asked, or the store's answer */
    int64_t low_watermark;
    int removed;                 /* chunks dropped */
};

struct dr_state {
    bool sent;
    struct dr_part *parts;       /* in request order */
    int nparts;
};

struct dr_job {
    struct job base;
    struct request *rq;
    struct dr_state *st;         /* the request's, given the results in done */
    struct dr_part *parts;       /* the job's own copy */
    int nparts;
};

static void dr_run(struct job *job, struct metastore *m)
{
    struct dr_job *j = (struct dr_job *)job;
    for (int i = 0; i < j->nparts; i++) {
        struct dr_part *p = &j->parts[i];
        if (p->err)
            continue;
        int rc = metastore_trim_partition(m, p->topic_id, p->partition, p->offset, &p->low_watermark, &p->removed);
        p->err = rc < 0 ? KERR_KAFKA_STORAGE_ERROR : rc;
    }
}

static void dr_done(struct broker *b, struct job *job)
{
    struct dr_job *j = (struct dr_job *)job;
    if (b) {
        memcpy(j->st->parts, j->parts, sizeof(*j->parts) * (size_t)j->nparts);
        for (int i = 0; i < j->nparts; i++) {
            const struct dr_part *p = &j->parts[i];
            struct topic_entry *t = p->err ? NULL : topics_find_id(b, p->topic_id);
            if (t && p->partition < t->info.partitions && p->low_watermark > t->parts[p->partition].log_start)
                t->parts[p->partition].log_start = p->low_watermark; /* this worker's reads see it at once */
            metrics_add(M_CHUNKS_EXPIRED, (uint64_t)(p->err ? 0 : p->removed));
        }
        broker_release(b, j->rq);
    }
    free(j->parts);
    free(j);
}

static void resume_delete_records(void *broker, struct request *rq) { handle_delete_records(broker, rq); }

static int count_parts(const struct delete_records_request *req)
{
    int n = 0;
    for (int i = 0; i < req->topics_count; i++)
        n += req->topics[i].partitions_count > 0 ? req->topics[i].partitions_count : 0;
    return n;
}

/* Topics first (look-ups, all at once), then one job for every partition, then the answer. */
void handle_delete_records(struct broker *b, struct request *rq)
{
    struct delete_records_request *req = rq->body;
    int ntopics = req->topics_count > 0 ? req->topics_count : 0;
    struct dr_state *st = rq->state;
    if (!st) {
        st = RQ_ALLOC(rq, struct dr_state, 1);
        st->nparts = count_parts(req);
        st->parts = RQ_ALLOC(rq, struct dr_part, st->nparts);
        rq->state = st;
    }
    if (!st->sent) {
        bool waits = false;
        int k = 0;
        for (int i = 0; i < ntopics; i++) {
            const req_topic_t *tin = &req->topics[i];
            int err = 0;
            bool allowed = authz_allow(b, rq, ACL_OP_DELETE, ACL_RES_TOPIC, tin->name.ptr, tin->name.len);
            struct topic_entry *t = allowed ? topics_need(b, rq, tin->name.ptr, tin->name.len, &err) : NULL;
            if (!allowed)
                err = KERR_TOPIC_AUTHORIZATION_FAILED;
            if (!t && !err)
                waits = true;
            for (int j = 0; j < tin->partitions_count; j++) {
                struct dr_part *p = &st->parts[k++];
                p->partition = tin->partitions[j].partition_index;
                p->offset = tin->partitions[j].offset;
                p->low_watermark = -1;
                if (t) {
                    p->topic_id = t->info.id;
                    p->err = p->partition < 0 || p->partition >= t->info.partitions ? KERR_UNKNOWN_TOPIC_OR_PARTITION
                             : p->offset < -1                                         ? KERR_OFFSET_OUT_OF_RANGE
                                                                                      : 0;
                } else {
                    p->err = err ? err : KERR_UNKNOWN_TOPIC_OR_PARTITION;
                }
            }
        }
        if (waits) {
            rq->resume = resume_delete_records;
            return;
        }
        st->sent = true;
        struct dr_job *j = calloc(1, sizeof(*j));
        if (!j)
            abort();
        j->base.run = dr_run;
        j->base.done = dr_done;
        j->rq = rq;
        j->st = st;
        j->nparts = st->nparts;
        j->parts = malloc(sizeof(*j->parts) * (size_t)(st->nparts > 0 ? st->nparts : 1));
        if (!j->parts)
            abort();
        memcpy(j->parts, st->parts, sizeof(*j->parts) * (size_t)st->nparts);
        rq->reads_pending++;
        rq->resume = resume_delete_records;
        jobs_submit(&b->store, &j->base);
        return;
    }

    struct delete_records_response *resp = RQ_ALLOC(rq, struct delete_records_response, 1);
    resp->topics = RQ_ALLOC(rq, resp_topic_t, ntopics);
    resp->topics_count = ntopics;
    int k = 0;
    for (int i = 0; i < ntopics; i++) {
        const req_topic_t *tin = &req->topics[i];
        resp_topic_t *tout = &resp->topics[i];
        tout->name = tin->name;
        int nparts = tin->partitions_count > 0 ? tin->partitions_count : 0;
        tout->partitions = RQ_ALLOC(rq, resp_part_t, nparts);
        tout->partitions_count = nparts;
        for (int j = 0; j < nparts; j++) {
            const struct dr_part *p = &st->parts[k++];
            resp_part_t *out = &tout->partitions[j];
            out->partition_index = p->partition;
            out->error_code = (int16_t)p->err;
            out->low_watermark = p->err ? -1 : p->low_watermark;
        }
    }
    request_respond(rq, resp);
}
