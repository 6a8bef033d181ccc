/* CreatePartitions: a topic grows to `count` partitions in one store transaction. Partitions are
 * led by the slot hashing gives them and sluice keeps no replicas, so an assignment, when given,
 * must name exactly that slot for each new partition. */
#include <stdio.h>
#include <string.h>

#include "broker/topic_changes.h"
#include "cluster/slots.h"

#define MAX_PARTITIONS 100000

struct grow_state {
    bool checked;
    int err;
    char why[300];
    struct topic_change_result result;
};

/* An assignment must give one broker per new partition: the slot that leads it. */
static int check_assignments(struct broker *b, const struct create_partitions_request_topic *in, const char *name,
                             int32_t current, char *why, size_t whylen)
{
    if (in->assignments_count < 0)
        return 0;
    if (in->assignments_count != in->count - current) {
        snprintf(why, whylen, "Increasing the number of partitions by %d but %d assignments provided.",
                 in->count - current, in->assignments_count);
        return KERR_INVALID_REPLICA_ASSIGNMENT;
    }
    for (int i = 0; i < in->assignments_count; i++) {
        int32_t p = current + i;
        int32_t slot = (int32_t)slot_of_partition(name, strlen(name), p, (uint32_t)b->cfg->slots);
        const struct create_partitions_request_topic_assignment *a = &in->assignments[i];
        if (a->broker_ids_count != 1 || a->broker_ids[0] != slot) {
            snprintf(why, whylen,
                     "Partition %d of %.100s is led by broker %d with no other replica: its assignment must be [%d]",
                     p, name, slot, slot);
            return KERR_INVALID_REPLICA_ASSIGNMENT;
        }
    }
    return 0;
}

/* Checks one topic against what the cache knows (partitions only grow, so a cached count that
 * is already too many is final); the store checks the count again in its transaction. */
static int check_topic(struct broker *b, const struct create_partitions_request_topic *in, const char *name,
                       const struct topic_entry *t, char *why, size_t whylen)
{
    if (in->count > MAX_PARTITIONS) {
        snprintf(why, whylen, "Number of partitions must be at most %d.", MAX_PARTITIONS);
        return KERR_INVALID_PARTITIONS;
    }
    if (in->count == t->info.partitions) {
        snprintf(why, whylen, "Topic already has %d partitions.", t->info.partitions);
        return KERR_INVALID_PARTITIONS;
    }
    if (in->count < t->info.partitions) {
        snprintf(why, whylen, "Topic currently has %d partitions, which is higher than the requested %d.",
                 t->info.partitions, in->count);
        return KERR_INVALID_PARTITIONS;
    }
    return check_assignments(b, in, name, t->info.partitions, why, whylen);
}

static void resume_create_partitions(void *broker, struct request *rq)
{
    handle_create_partitions(broker, rq);
}

void handle_create_partitions(struct broker *b, struct request *rq)
{
    struct create_partitions_request *req = rq->body;
    int n = req->topics_count > 0 ? req->topics_count : 0;
    struct grow_state *st = rq->state;
    if (!st) {
        st = RQ_ALLOC(rq, struct grow_state, n);
        rq->state = st;
    }
    bool waits = false;
    for (int i = 0; i < n; i++) {
        const struct create_partitions_request_topic *in = &req->topics[i];
        struct grow_state *gs = &st[i];
        if (gs->checked)
            continue;
        for (int k = 0; k < n && !gs->err; k++)
            if (k != i && req->topics[k].name.len == in->name.len &&
                !memcmp(req->topics[k].name.ptr, in->name.ptr, (size_t)(in->name.len > 0 ? in->name.len : 0))) {
                gs->err = KERR_INVALID_REQUEST;
                snprintf(gs->why, sizeof(gs->why), "Duplicate topic in request.");
            }
        const char *name = rq_cstr(rq, in->name);
        if (!gs->err && !authz_allow(b, rq, ACL_OP_ALTER, ACL_RES_TOPIC, in->name.ptr, in->name.len)) {
            gs->err = KERR_TOPIC_AUTHORIZATION_FAILED;
            snprintf(gs->why, sizeof(gs->why), "Not authorized to alter topic %.249s", name);
        }
        int err = 0;
        struct topic_entry *t = gs->err ? NULL : topics_need(b, rq, in->name.ptr, in->name.len, &err);
        if (!gs->err && !t && err == 0) {
            waits = true; /* the store is asked; this topic is checked when it answers */
            continue;
        }
        gs->checked = true;
        if (gs->err)
            continue;
        if (!t) {
            gs->err = err;
            if (err == KERR_UNKNOWN_TOPIC_OR_PARTITION)
                snprintf(gs->why, sizeof(gs->why), "The topic '%.249s' does not exist.", name);
            continue;
        }
        gs->err = check_topic(b, in, name, t, gs->why, sizeof(gs->why));
        if (!gs->err) {
            topic_grow(b, rq, name, in->count, req->validate_only, &gs->result);
            waits = true;
        }
    }
    if (waits) {
        rq->resume = resume_create_partitions;
        return;
    }
    struct create_partitions_response *resp = RQ_ALLOC(rq, struct create_partitions_response, 1);
    resp->results = RQ_ALLOC(rq, struct create_partitions_response_result, n);
    resp->results_count = n;
    for (int i = 0; i < n; i++) {
        struct create_partitions_response_result *out = &resp->results[i];
        struct grow_state *gs = &st[i];
        out->name = req->topics[i].name;
        int err = gs->err ? gs->err : gs->result.err;
        const char *why = gs->err ? gs->why : gs->result.why;
        char line[300];
        if (!gs->err && err == KERR_INVALID_PARTITIONS) { /* grown elsewhere meanwhile */
            snprintf(line, sizeof(line), "Topic currently has %d partitions, which is not fewer than the requested %d.",
                     gs->result.info.partitions, req->topics[i].count);
            why = line;
        }
        out->error_code = (int16_t)err;
        out->error_message = err && why[0] ? kstr_c(arena_strndup(&rq->arena, why, strlen(why)))
                                           : (struct kstr){NULL, -1};
    }
    request_respond(rq, resp);
}
