/* Metadata: the brokers are the agent's slots (virtual brokers, node id s at slot_port_base + s), and
 * every partition is led by its slot, so a client's connection for a partition goes to the slot
 * port, which the kernel steers to the worker owning that slot. */
#include <string.h>

#include "broker/broker_internal.h"
#include "util/clock.h"
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

/* "ws_host_override=HOST" among the comma-separated key=value pairs of the client id (for clients
 * behind e.g. kubectl port-forward): every broker is advertised at HOST. */
static struct kstr client_host_override(const struct request *rq)
{
    static const char key[] = "ws_host_override=";
    struct kstr id = rq->hdr.client_id;
    int32_t i = 0;
    while (id.len > 0 && i < id.len) {
        int32_t end = i;
        while (end < id.len && id.ptr[end] != ',')
            end++;
        int32_t klen = (int32_t)sizeof(key) - 1;
        if (end - i > klen && !memcmp(id.ptr + i, key, (size_t)klen))
            return (struct kstr){id.ptr + i + klen, end - i - klen};
        i = end + 1;
    }
    return (struct kstr){NULL, -1};
}

/* Slot s is advertised at its owner's host and port base + s, unless overridden: the client id's
 * ws_host_override, then the discovery overrides (load-balancer mode). */
void broker_slot_address(struct broker *b, const struct request *rq, int slot, struct kstr *host, int32_t *port)
{
    const struct config *cfg = b->cfg;
    struct kstr host_override = client_host_override(rq);
    if (host_override.len < 0 && cfg->hostname_override[0])
        host_override = kstr_c(cfg->hostname_override);
    const struct member_info *m = membership_slot_owner(&b->members, (uint32_t)slot);
    /* The membership view only changes in the broker's tick, never while a handler runs. */
    *host = host_override.len >= 0 ? host_override : kstr_c(m ? m->host : cfg->advertised_host);
    *port = (cfg->port_override_base ? cfg->port_override_base : m ? m->port_base : cfg->slot_port_base) + slot;
}

void metadata_fill_brokers(struct broker *b, struct request *rq, struct metadata_response *resp)
{
    const struct config *cfg = b->cfg;
    resp->brokers = RQ_ALLOC(rq, struct metadata_response_broker, cfg->slots);
    resp->brokers_count = cfg->slots;
    for (int s = 0; s < cfg->slots; s++) {
        struct metadata_response_broker *out = &resp->brokers[s];
        out->node_id = s;
        broker_slot_address(b, rq, s, &out->host, &out->port);
        out->rack = (struct kstr){NULL, -1};
    }
}

/* A topic list answer comes from a listing that began after the request arrived: a topic another
 * worker or agent created just before is in it (unless the store is slow: see topics.c). */
#define LISTING_FRESH_MS 0

/* Per requested topic, across rounds: the auto-creation, and when a look-up may start from. */
struct md_topic {
    bool create_sent;
    int create_result;
    int64_t lookup_since;
};

static void resume_metadata(void *broker, struct request *rq)
{
    handle_metadata(broker, rq);
}

void handle_metadata(struct broker *b, struct request *rq)
{
    struct metadata_request *req = rq->body;
    int16_t ver = rq->hdr.api_version;
    struct metadata_response *resp = RQ_ALLOC(rq, struct metadata_response, 1);

    metadata_fill_brokers(b, rq, resp);
    resp->cluster_id = kstr_c(b->cfg->cluster_id);
    resp->controller_id = 0;
    resp->cluster_authorized_operations = AUTHORIZED_OPERATIONS_OMITTED;

    /* v0: an empty list means all topics; v1+: null means all, empty means none. */
    bool all = req->topics_count < 0 || (ver == 0 && req->topics_count == 0);
    if (all) {
        int err;
        if (!topics_need_listing(b, rq, LISTING_FRESH_MS, &err) && err == 0) {
            rq->resume = resume_metadata;
            return;
        }
        /* A store that cannot list: the topics known here (a view that is a little old). */
        /* Topics the principal may not describe are left out, as Kafka does. */
        resp->topics = RQ_ALLOC(rq, resp_topic_t, b->topics.n);
        for (int i = 0; i < b->topics.n; i++) {
            const char *tname = b->topics.topics[i].info.name;
            if (authz_allow_quiet(b, rq, ACL_OP_DESCRIBE, ACL_RES_TOPIC, tname, (int32_t)strlen(tname)))
                fill_topic(b, rq, &resp->topics[resp->topics_count++], &b->topics.topics[i]);
        }
        request_respond(rq, resp);
        return;
    }

    struct md_topic *st = rq->state;
    if (!st) {
        st = RQ_ALLOC(rq, struct md_topic, req->topics_count);
        for (int i = 0; i < req->topics_count; i++)
            st[i].lookup_since = rq->received_ms;
        rq->state = st;
    }
    bool auto_create = b->cfg->auto_create_topics && (ver < 4 || req->allow_auto_topic_creation);
    bool waits = false;
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
        if (!authz_allow(b, rq, ACL_OP_DESCRIBE, ACL_RES_TOPIC, name.ptr, name.len)) {
            out->error_code = KERR_TOPIC_AUTHORIZATION_FAILED;
            continue;
        }
        int err;
        struct topic_entry *t = topics_need_since(b, rq, name.ptr, name.len, st[i].lookup_since, &err);
        /* Auto-creation needs CREATE on the cluster or on the topic (Kafka's rule). */
        if (!t && err == KERR_UNKNOWN_TOPIC_OR_PARTITION && auto_create && !st[i].create_sent &&
            !authz_allow_quiet(b, rq, ACL_OP_CREATE, ACL_RES_CLUSTER, ACL_CLUSTER_NAME, (int32_t)strlen(ACL_CLUSTER_NAME)) &&
            !authz_allow(b, rq, ACL_OP_CREATE, ACL_RES_TOPIC, name.ptr, name.len)) {
            out->error_code = KERR_TOPIC_AUTHORIZATION_FAILED;
            continue;
        }
        if (!t && err == KERR_UNKNOWN_TOPIC_OR_PARTITION && auto_create && !st[i].create_sent) {
            st[i].create_sent = true;
            topics_create(b, rq, rq_cstr(rq, name), b->cfg->default_partitions, NULL, 0, &st[i].create_result);
            waits = true;
            continue;
        }
        if (!t && st[i].create_sent && st[i].create_result == KERR_TOPIC_ALREADY_EXISTS &&
            st[i].lookup_since == rq->received_ms) {
            /* Created meanwhile by another agent: look again. */
            st[i].lookup_since = mono_ms();
            t = topics_need_since(b, rq, name.ptr, name.len, st[i].lookup_since, &err);
        }
        if (!t) {
            waits |= err == 0;
            out->error_code = err ? (int16_t)err : KERR_UNKNOWN_TOPIC_OR_PARTITION;
            continue;
        }
        fill_topic(b, rq, out, t);
    }
    if (waits) {
        rq->resume = resume_metadata;
        return;
    }
    request_respond(rq, resp);
}
