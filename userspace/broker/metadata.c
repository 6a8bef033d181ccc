/* Metadata: the brokers are the agent's slots (virtual brokers, node id s at slot_port_base + s), and
 * every partition is led by its slot, so a client's connection for a partition goes to the slot
 * port, which the kernel steers to the worker owning that slot. */
#include <string.h>

#include "broker/broker_internal.h"
#include "cluster/slots.h"

typedef struct metadata_response_topic resp_topic_t;
typedef struct metadata_response_topic_partition resp_part_t;

/* KAFKA's value for "authorized operations not requested". */
#define AUTHORIZED_OPERATIONS_OMITTED INT32_MIN

static void fill_topic(struct broker *b, struct request *rq, resp_topic_t *out, const struct topic_entry *t)
{
    out->name = kstr_c(rq_cstr(rq, kstr_c(t->info.name)));
    memcpy(out->topic_id.b, t->info.uuid, 16);
    out->topic_authorized_operations = AUTHORIZED_OPERATIONS_OMITTED;
    int n = t->info.partitions;
    out->partitions = RQ_ALLOC(rq, resp_part_t, n);
    out->partitions_count = n;
    size_t name_len = strlen(t->info.name);
    for (int p = 0; p < n; p++) {
        resp_part_t *rp = &out->partitions[p];
        int32_t *node = RQ_ALLOC(rq, int32_t, 1);
        *node = (int32_t)slot_of_partition(t->info.name, name_len, p, (uint32_t)b->cfg->slots);
        rp->partition_index = p;
        rp->leader_id = *node;
        rp->leader_epoch = 0;
        rp->replica_nodes = node;
        rp->replica_nodes_count = 1;
        rp->isr_nodes = node;
        rp->isr_nodes_count = 1;
        rp->offline_replicas_count = 0;
    }
}

void handle_metadata(struct broker *b, struct request *rq)
{
    struct metadata_request *req = rq->body;
    int16_t ver = rq->hdr.api_version;
    struct metadata_response *resp = RQ_ALLOC(rq, struct metadata_response, 1);

    int nslots = b->cfg->slots;
    resp->brokers = RQ_ALLOC(rq, struct metadata_response_broker, nslots);
    resp->brokers_count = nslots;
    for (int s = 0; s < nslots; s++) {
        resp->brokers[s].node_id = s;
        resp->brokers[s].host = kstr_c(b->cfg->advertise_host);
        resp->brokers[s].port = b->cfg->slot_port_base + s;
        resp->brokers[s].rack = (struct kstr){NULL, -1};
    }
    resp->cluster_id = kstr_c(b->cfg->cluster_id);
    resp->controller_id = 0;
    resp->cluster_authorized_operations = AUTHORIZED_OPERATIONS_OMITTED;

    /* v0: an empty list means all topics; v1+: null means all, empty means none. */
    bool all = req->topics_count < 0 || (ver == 0 && req->topics_count == 0);
    if (all) {
        topics_refresh(b);
        resp->topics = RQ_ALLOC(rq, resp_topic_t, b->topics.n);
        resp->topics_count = b->topics.n;
        for (int i = 0; i < b->topics.n; i++)
            fill_topic(b, rq, &resp->topics[i], &b->topics.topics[i]);
        request_respond(rq, resp);
        return;
    }

    bool auto_create = b->cfg->auto_create_topics && (ver < 4 || req->allow_auto_topic_creation);
    resp->topics = RQ_ALLOC(rq, resp_topic_t, req->topics_count);
    resp->topics_count = req->topics_count;
    for (int i = 0; i < req->topics_count; i++) {
        struct kstr name = req->topics[i].name;
        resp_topic_t *out = &resp->topics[i];
        out->name = name;
        out->topic_authorized_operations = AUTHORIZED_OPERATIONS_OMITTED;
        if (name.len < 0) { /* v10+ lookup by topic id: not supported yet */
            out->error_code = KERR_UNKNOWN_TOPIC_ID;
            continue;
        }
        if (!topic_name_valid(name.ptr, name.len)) {
            out->error_code = KERR_INVALID_TOPIC_EXCEPTION;
            continue;
        }
        struct topic_entry *t = topics_lookup(b, name.ptr, name.len);
        if (!t && auto_create) {
            int err = topics_create(b, rq_cstr(rq, name), b->cfg->default_partitions, NULL, 0, &t);
            if (err == KERR_TOPIC_ALREADY_EXISTS) /* created meanwhile by another agent */
                t = topics_lookup(b, name.ptr, name.len);
            else if (err)
                t = NULL;
        }
        if (!t) {
            out->error_code = KERR_UNKNOWN_TOPIC_OR_PARTITION;
            continue;
        }
        fill_topic(b, rq, out, t);
    }
    request_respond(rq, resp);
}
