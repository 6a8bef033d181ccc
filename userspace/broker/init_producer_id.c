/* InitProducerId for idempotent producers: the id (and its epoch) comes from the metadata store,
 * shared by every agent, on a store thread. With the producer's current id and epoch (v3+, after
 * an error the client cannot recover from otherwise) the epoch is bumped, so the producer starts
 * its sequences again at 0; an older epoch is fenced. Transactions do not exist yet: a
 * transactional id is refused with TRANSACTIONAL_ID_AUTHORIZATION_FAILED, which every client
 * reports as fatal with the transactional id named (Kafka's answer when that id is not allowed). */
#include <stdlib.h>

#include "broker/broker_internal.h"
#include "util/log.h"

struct init_producer_state {
    int err;
    int64_t producer_id;
    int16_t producer_epoch;
};

struct init_producer_job {
    struct job base;
    struct request *rq;
    struct init_producer_state *st;
    int64_t producer_id;
    int16_t producer_epoch;
    int rc;
    int64_t out_id;
    int16_t out_epoch;
};

static void init_producer_run(struct job *job, struct metastore *m)
{
    struct init_producer_job *j = (struct init_producer_job *)job;
    j->rc = metastore_init_producer(m, j->producer_id, j->producer_epoch, &j->out_id, &j->out_epoch);
}

static void init_producer_done(struct broker *b, struct job *job)
{
    struct init_producer_job *j = (struct init_producer_job *)job;
    if (b) {
        j->st->err = j->rc < 0 ? KERR_COORDINATOR_NOT_AVAILABLE : j->rc; /* retriable for every client */
        j->st->producer_id = j->out_id;
        j->st->producer_epoch = j->out_epoch;
        broker_release(b, j->rq);
    }
    free(j);
}

static void resume_init_producer_id(void *broker, struct request *rq)
{
    handle_init_producer_id(broker, rq);
}

/* What the request itself makes wrong, before the store is asked. */
static int check_request(const struct init_producer_id_request *req)
{
    if (req->transactional_id.len == 0)
        return KERR_INVALID_REQUEST; /* Kafka: an empty transactional id is invalid */
    if (req->transactional_id.len > 0)
        return KERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED; /* no transactions (yet) */
    if ((req->producer_id < 0) != (req->producer_epoch < 0))
        return KERR_INVALID_REQUEST; /* an id without its epoch, or the reverse */
    return 0;
}

void handle_init_producer_id(struct broker *b, struct request *rq)
{
    struct init_producer_id_request *req = rq->body;
    struct init_producer_state *st = rq->state;
    if (!st) {
        st = RQ_ALLOC(rq, struct init_producer_state, 1);
        rq->state = st;
        st->err = check_request(req);
        if (!st->err && !authz_allow_idempotent(b, rq))
            st->err = KERR_CLUSTER_AUTHORIZATION_FAILED;
        if (!st->err) {
            struct init_producer_job *j = calloc(1, sizeof(*j));
            if (!j)
                abort();
            j->base.run = init_producer_run;
            j->base.done = init_producer_done;
            j->rq = rq;
            j->st = st;
            j->producer_id = req->producer_id < 0 ? -1 : req->producer_id;
            j->producer_epoch = req->producer_epoch;
            rq->reads_pending++;
            rq->resume = resume_init_producer_id;
            jobs_submit(&b->store, &j->base);
            return;
        }
    }
    struct init_producer_id_response *resp = RQ_ALLOC(rq, struct init_producer_id_response, 1);
    resp->error_code = (int16_t)st->err;
    resp->producer_id = -1;
    resp->producer_epoch = -1;
    /* Clients before v4 do not know PRODUCER_FENCED: Kafka answers them INVALID_PRODUCER_EPOCH. */
    if (st->err == KERR_PRODUCER_FENCED && rq->hdr.api_version < 4)
        resp->error_code = KERR_INVALID_PRODUCER_EPOCH;
    if (st->err == KERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
        log_warn("InitProducerId with transactional id '%.*s' refused: transactions are not supported (%s)",
                 req->transactional_id.len > 200 ? 200 : (int)req->transactional_id.len, req->transactional_id.ptr,
                 request_who(rq));
    if (!st->err) {
        resp->producer_id = st->producer_id;
        resp->producer_epoch = st->producer_epoch;
    }
    request_respond(rq, resp);
}
