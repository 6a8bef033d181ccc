/* DescribeProducers: the idempotent producers' state of each asked partition, read from the
 * metadata store (the same rows the commits check), in one store job for the whole request. */
#include <stdlib.h>
#include <string.h>

#include "broker/broker_internal.h"

typedef struct describe_producers_request_topic req_topic_t;
typedef struct describe_producers_response_topic resp_topic_t;
typedef struct describe_producers_response_topic_partition resp_part_t;
typedef struct describe_producers_response_topic_partition_producer resp_producer_t;

/* One asked partition. */
struct dp_part {
    int64_t topic_id;
    int32_t partition;
    int err;                     /* refused before the store is asked, or the store's answer */
    struct producer_info *v;     /* malloc'd by the job, freed when the answer is built */
    int n;
};

struct dp_state {
    bool sent;
    struct dp_part *parts;       /* in request order */
    int nparts;
};

struct dp_job {
    struct job base;
    struct request *rq;
    struct dp_state *st;         /* the request's, given the results in done */
    struct dp_part *parts;       /* the job's own copy */
    int nparts;
};

static void dp_run(struct job *job, struct metastore *m)
{
    struct dp_job *j = (struct dp_job *)job;
    for (int i = 0; i < j->nparts; i++) {
        struct dp_part *p = &j->parts[i];
        if (!p->err && metastore_list_producers(m, p->topic_id, p->partition, &p->v, &p->n) < 0)
            p->err = KERR_KAFKA_STORAGE_ERROR;
    }
}

static void dp_done(struct broker *b, struct job *job)
{
    struct dp_job *j = (struct dp_job *)job;
    if (b) {
        memcpy(j->st->parts, j->parts, sizeof(*j->parts) * (size_t)j->nparts); /* the answer frees v */
        broker_release(b, j->rq);
    } else { /* shutting down: nobody is answered */
        for (int i = 0; i < j->nparts; i++)
            free(j->parts[i].v);
    }
    free(j->parts);
    free(j);
}

static void resume_describe_producers(void *broker, struct request *rq)
{
    handle_describe_producers(broker, rq);
}

static int count_parts(const struct describe_producers_request *req)
{
    int n = 0;
    for (int i = 0; i < req->topics_count; i++)
        n += req->topics[i].partition_indexes_count > 0 ? req->topics[i].partition_indexes_count : 0;
    return n;
}

/* Topics first (look-ups, all at once), then one job for every partition, then the answer. */
void handle_describe_producers(struct broker *b, struct request *rq)
{
    struct describe_producers_request *req = rq->body;
    int ntopics = req->topics_count > 0 ? req->topics_count : 0;
    struct dp_state *st = rq->state;
    if (!st) {
        st = RQ_ALLOC(rq, struct dp_state, 1);
        st->nparts = count_parts(req);
        st->parts = RQ_ALLOC(rq, struct dp_part, st->nparts);
        rq->state = st;
    }
    if (!st->sent) {
        bool waits = false;
        int k = 0;
        for (int i = 0; i < ntopics; i++) {
            const req_topic_t *tin = &req->topics[i];
            int err = 0;
            bool allowed = authz_allow(b, rq, ACL_OP_READ, ACL_RES_TOPIC, tin->name.ptr, tin->name.len);
            struct topic_entry *t = allowed ? topics_need(b, rq, tin->name.ptr, tin->name.len, &err) : NULL;
            if (!allowed)
                err = KERR_TOPIC_AUTHORIZATION_FAILED;
            if (!t && !err)
                waits = true;
            for (int j = 0; j < tin->partition_indexes_count; j++) {
                struct dp_part *p = &st->parts[k++];
                p->partition = tin->partition_indexes[j];
                if (t) {
                    p->topic_id = t->info.id;
                    p->err = p->partition < 0 || p->partition >= t->info.partitions ? KERR_UNKNOWN_TOPIC_OR_PARTITION
                                                                                      : 0;
                } else {
                    p->err = err ? err : KERR_UNKNOWN_TOPIC_OR_PARTITION;
                }
            }
        }
        if (waits) {
            rq->resume = resume_describe_producers;
            return;
        }
        st->sent = true;
        struct dp_job *j = calloc(1, sizeof(*j));
        if (!j)
            abort();
        j->base.run = dp_run;
        j->base.done = dp_done;
        j->rq = rq;
        j->st = st;
        j->nparts = st->nparts;
        j->parts = malloc(sizeof(*j->parts) * (size_t)(st->nparts > 0 ? st->nparts : 1));
        if (!j->parts)
            abort();
        memcpy(j->parts, st->parts, sizeof(*j->parts) * (size_t)st->nparts);
        rq->reads_pending++;
        rq->resume = resume_describe_producers;
        jobs_submit(&b->store, &j->base);
        return;
    }

    struct describe_producers_response *resp = RQ_ALLOC(rq, struct describe_producers_response, 1);
    resp->topics = RQ_ALLOC(rq, resp_topic_t, ntopics);
    resp->topics_count = ntopics;
    int k = 0;
    for (int i = 0; i < ntopics; i++) {
        const req_topic_t *tin = &req->topics[i];
        resp_topic_t *tout = &resp->topics[i];
        tout->name = tin->name;
        int nparts = tin->partition_indexes_count > 0 ? tin->partition_indexes_count : 0;
        tout->partitions = RQ_ALLOC(rq, resp_part_t, nparts);
        tout->partitions_count = nparts;
        for (int j = 0; j < nparts; j++) {
            struct dp_part *p = &st->parts[k++];
            resp_part_t *out = &tout->partitions[j];
            out->partition_index = p->partition;
            out->error_code = (int16_t)p->err;
            out->error_message = (struct kstr){NULL, -1};
            out->active_producers = RQ_ALLOC(rq, resp_producer_t, p->err ? 0 : p->n);
            out->active_producers_count = p->err ? 0 : p->n;
            for (int x = 0; x < out->active_producers_count; x++) {
                resp_producer_t *pr = &out->active_producers[x];
                pr->producer_id = p->v[x].producer_id;
                pr->producer_epoch = p->v[x].epoch;
                pr->last_sequence = p->v[x].last_sequence;
                pr->last_timestamp = p->v[x].last_timestamp;
                pr->coordinator_epoch = -1; /* no transactions */
                pr->current_txn_start_offset = -1;
            }
            free(p->v);
            p->v = NULL;
        }
    }
    request_respond(rq, resp);
}
