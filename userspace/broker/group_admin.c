/* Group administration: ListGroups, DescribeGroups, DeleteGroups, OffsetDelete. Each request is
 * one store job over every group it names; the answer is built on the loop from what the job read. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "broker/broker_internal.h"
#include "broker/group_state.h"
#include "util/clock.h"

#define CAS_TRIES 64

/* One group a request names, across the job and the answer. */
struct named_group {
    const char *id;
    int error;
    bool found;
    bool has_offsets;            /* DescribeGroups: no state but committed offsets (Empty, not Dead) */
    struct group g;              /* DescribeGroups: its state (ticked, not written) */
};

struct admin_job {
    struct job base;
    struct request *rq;
    struct named_group *groups;  /* in the request's arena */
    int n;
    struct group_summary *list;  /* ListGroups (malloc'd by the store) */
    int nlist;
    int list_error;
    struct group_offset *offsets; /* OffsetDelete: the partitions named (malloc'd) */
    int16_t *offset_errors;       /* in the request's arena */
    int noffsets;
};

static void free_job(struct admin_job *j)
{
    for (int i = 0; i < j->n; i++)
        group_free(&j->groups[i].g);
    free(j->list);
    free(j->offsets);
    free(j);
}

static void admin_done(struct broker *b, struct job *job)
{
    struct admin_job *j = (struct admin_job *)job;
    if (!b) {
        free_job(j);
        return;
    }
    j->rq->state = j; /* the answer reads it, then frees it */
    broker_release(b, j->rq);
}

static void submit(struct broker *b, struct request *rq, struct admin_job *j, job_run_fn run,
                   void (*answer)(void *, struct request *))
{
    j->base.run = run;
    j->base.done = admin_done;
    j->rq = rq;
    rq->reads_pending++;
    rq->resume = answer;
    jobs_submit(&b->store, &j->base);
}

static struct admin_job *new_job(void)
{
    struct admin_job *j = calloc(1, sizeof(*j));
    if (!j)
        abort();
    return j;
}

/* Reads a group's state: 0 (found or not: g->found), or -1. */
static int load(struct metastore *m, struct named_group *ng, int64_t *version)
{
    uint8_t *data;
    size_t len;
    group_free(&ng->g);
    int rc = metastore_group_load(m, ng->id, &data, &len, version);
    if (rc < 0)
        return -1;
    ng->found = rc == 0;
    if (rc == 0 && group_decode(&ng->g, data, len) != 0)
        group_init(&ng->g);
    free(data);
    if (ng->found)
        group_tick(&ng->g, wall_ms());
    return 0;
}

static bool id_ok(struct kstr id) { return id.len > 0 && id.len <= GROUP_ID_MAX; }

static struct kstr copy_str(struct request *rq, const char *s)
{
    return s ? kstr_c(arena_strndup(&rq->arena, s, strlen(s))) : kstr_c("");
}

static struct kbytes copy_bytes(struct request *rq, const uint8_t *p, int32_t len)
{
    if (!p || len <= 0)
        return (struct kbytes){(const uint8_t *)"", 0};
    uint8_t *d = arena_alloc(&rq->arena, (size_t)len);
    memcpy(d, p, (size_t)len);
    return (struct kbytes){d, len};
}

/* ---- ListGroups ---- */

static void list_run(struct job *job, struct metastore *m)
{
    struct admin_job *j = (struct admin_job *)job;
    if (metastore_groups_list(m, &j->list, &j->nlist) != 0)
        j->list_error = KERR_COORDINATOR_NOT_AVAILABLE;
}

static void list_answer(void *broker, struct request *rq)
{
    struct broker *b = broker;
    struct admin_job *j = rq->state;
    bool all = authz_allow_quiet(b, rq, ACL_OP_DESCRIBE, ACL_RES_CLUSTER, ACL_CLUSTER_NAME,
                                 (int32_t)strlen(ACL_CLUSTER_NAME));
    struct list_groups_request *req = rq->body;
    struct list_groups_response *r = RQ_ALLOC(rq, struct list_groups_response, 1);
    r->error_code = (int16_t)j->list_error;
    r->groups = RQ_ALLOC(rq, struct list_groups_response_group, j->nlist);
    for (int i = 0; i < j->nlist; i++) {
        const char *state = group_phase_name(j->list[i].phase);
        bool wanted = req->states_filter_count <= 0;
        for (int k = 0; k < req->states_filter_count && !wanted; k++)
            wanted = req->states_filter[k].len == (int32_t)strlen(state) &&
                     strncasecmp(req->states_filter[k].ptr, state, strlen(state)) == 0;
        if (!wanted || (!all && !authz_allow_quiet(b, rq, ACL_OP_DESCRIBE, ACL_RES_GROUP, j->list[i].group_id,
                                                   (int32_t)strlen(j->list[i].group_id))))
            continue;
        struct list_groups_response_group *out = &r->groups[r->groups_count++];
        out->group_id = copy_str(rq, j->list[i].group_id);
        out->protocol_type = copy_str(rq, j->list[i].protocol_type);
        out->group_state = kstr_c(state);
    }
    free_job(j);
    request_respond(rq, r);
}

void handle_list_groups(struct broker *b, struct request *rq)
{
    submit(b, rq, new_job(), list_run, list_answer);
}

/* ---- DescribeGroups ---- */

static void describe_run(struct job *job, struct metastore *m)
{
    struct admin_job *j = (struct admin_job *)job;
    for (int i = 0; i < j->n; i++) {
        struct named_group *ng = &j->groups[i];
        int64_t version;
        if (ng->error)
            continue;
        if (load(m, ng, &version) != 0) {
            ng->error = KERR_COORDINATOR_NOT_AVAILABLE;
            continue;
        }
        struct group_offset *have = NULL;
        int nhave = 0;
        if (!ng->found && metastore_offsets_fetch(m, ng->id, &have, &nhave) == 0)
            ng->has_offsets = nhave > 0;
        free(have);
    }
}

static void describe_answer(void *broker, struct request *rq)
{
    (void)broker;
    struct admin_job *j = rq->state;
    struct describe_groups_response *r = RQ_ALLOC(rq, struct describe_groups_response, 1);
    r->groups = RQ_ALLOC(rq, struct describe_groups_response_group, j->n);
    r->groups_count = j->n;
    for (int i = 0; i < j->n; i++) {
        const struct named_group *ng = &j->groups[i];
        const struct group *g = &ng->g;
        struct describe_groups_response_group *out = &r->groups[i];
        out->error_code = (int16_t)ng->error;
        out->group_id = copy_str(rq, ng->id);
        out->authorized_operations = INT32_MIN;
        out->group_state = kstr_c(ng->error ? "" : ng->found || ng->has_offsets ? group_phase_name(g->phase) : "Dead");
        out->protocol_type = copy_str(rq, g->protocol_type);
        /* As Kafka: the protocol, metadata and assignments only once the group is Stable. */
        bool stable = g->phase == GROUP_STABLE;
        out->protocol_data = copy_str(rq, stable ? g->protocol_name : "");
        out->members = RQ_ALLOC(rq, struct describe_groups_response_group_member, g->nmembers);
        for (int k = 0; k < g->nmembers; k++) {
            const struct gmember *m = &g->members[k];
            if (m->pending)
                continue;
            struct describe_groups_response_group_member *mo = &out->members[out->members_count++];
            mo->member_id = copy_str(rq, m->id);
            mo->group_instance_id = m->instance_id ? copy_str(rq, m->instance_id) : (struct kstr){NULL, -1};
            mo->client_id = copy_str(rq, m->client_id);
            mo->client_host = copy_str(rq, m->client_host);
            mo->member_metadata = copy_bytes(rq, NULL, 0);
            for (int p = 0; stable && p < m->nprotos; p++)
                if (g->protocol_name && strcmp(m->protos[p].name, g->protocol_name) == 0)
                    mo->member_metadata = copy_bytes(rq, m->protos[p].meta, m->protos[p].meta_len);
            mo->member_assignment = copy_bytes(rq, stable ? m->assignment : NULL, m->assignment_len);
        }
    }
    free_job(j);
    request_respond(rq, r);
}

/* The groups named by a request, their ids checked. */
static struct admin_job *named_job(struct request *rq, const struct kstr *ids, int n)
{
    struct admin_job *j = new_job();
    n = n > 0 ? n : 0;
    j->groups = RQ_ALLOC(rq, struct named_group, n);
    j->n = n;
    for (int i = 0; i < n; i++) {
        j->groups[i].id = rq_cstr(rq, ids[i]);
        if (!id_ok(ids[i]))
            j->groups[i].error = KERR_INVALID_GROUP_ID;
    }
    return j;
}

/* Groups the principal may not do op on are answered GROUP_AUTHORIZATION_FAILED, unasked. */
static struct admin_job *authorize_groups(struct broker *b, struct request *rq, struct admin_job *j, int8_t op)
{
    for (int i = 0; i < j->n; i++)
        if (!j->groups[i].error &&
            !authz_allow(b, rq, op, ACL_RES_GROUP, j->groups[i].id, (int32_t)strlen(j->groups[i].id)))
            j->groups[i].error = KERR_GROUP_AUTHORIZATION_FAILED;
    return j;
}

void handle_describe_groups(struct broker *b, struct request *rq)
{
    struct describe_groups_request *req = rq->body;
    submit(b, rq, authorize_groups(b, rq, named_job(rq, req->groups, req->groups_count), ACL_OP_DESCRIBE),
           describe_run, describe_answer);
}

/* ---- DeleteGroups: only groups without members ---- */

static void delete_run(struct job *job, struct metastore *m)
{
    struct admin_job *j = (struct admin_job *)job;
    for (int i = 0; i < j->n; i++) {
        struct named_group *ng = &j->groups[i];
        for (int attempt = 0; !ng->error; attempt++) {
            int64_t version;
            if (attempt == CAS_TRIES || load(m, ng, &version) != 0) {
                ng->error = KERR_COORDINATOR_NOT_AVAILABLE;
                break;
            }
            if (ng->found && group_live_members(&ng->g) > 0) {
                ng->error = KERR_NON_EMPTY_GROUP;
                break;
            }
            int rc = metastore_group_delete(m, ng->id, ng->found ? version : 0);
            if (rc == 1)
                continue; /* changed meanwhile: look again */
            ng->error = rc < 0 ? KERR_COORDINATOR_NOT_AVAILABLE : rc;
            break;
        }
    }
}

static void delete_answer(void *broker, struct request *rq)
{
    (void)broker;
    struct admin_job *j = rq->state;
    struct delete_groups_response *r = RQ_ALLOC(rq, struct delete_groups_response, 1);
    r->results = RQ_ALLOC(rq, struct delete_groups_response_result, j->n);
    r->results_count = j->n;
    for (int i = 0; i < j->n; i++) {
        r->results[i].group_id = copy_str(rq, j->groups[i].id);
        r->results[i].error_code = (int16_t)j->groups[i].error;
    }
    free_job(j);
    request_respond(rq, r);
}

void handle_delete_groups(struct broker *b, struct request *rq)
{
    struct delete_groups_request *req = rq->body;
    submit(b, rq, authorize_groups(b, rq, named_job(rq, req->groups_names, req->groups_names_count), ACL_OP_DELETE),
           delete_run, delete_answer);
}

/* ---- OffsetDelete: not for topics the group's members subscribe to ---- */

/* Does consumer-protocol subscription metadata (version, topics, ...) name this topic? */
static bool subscribes(const uint8_t *p, int32_t len, const char *topic)
{
    if (len < 6)
        return false;
    int32_t n = (int32_t)((uint32_t)p[2] << 24 | (uint32_t)p[3] << 16 | (uint32_t)p[4] << 8 | p[5]);
    int32_t pos = 6;
    size_t tlen = strlen(topic);
    for (int32_t i = 0; i < n && pos + 2 <= len; i++) {
        int32_t l = (int16_t)(p[pos] << 8 | p[pos + 1]);
        pos += 2;
        if (l < 0 || l > len - pos)
            return false;
        if ((size_t)l == tlen && memcmp(p + pos, topic, tlen) == 0)
            return true;
        pos += l;
    }
    return false;
}

static bool group_subscribes(const struct group *g, const char *topic)
{
    if (!g->protocol_type || strcmp(g->protocol_type, "consumer") != 0)
        return false;
    for (int i = 0; i < g->nmembers; i++)
        for (int k = 0; k < g->members[i].nprotos; k++)
            if (subscribes(g->members[i].protos[k].meta, g->members[i].protos[k].meta_len, topic))
                return true;
    return false;
}

static void offset_delete_run(struct job *job, struct metastore *m)
{
    struct admin_job *j = (struct admin_job *)job;
    struct named_group *ng = &j->groups[0];
    int64_t version;
    if (ng->error)
        return;
    struct group_offset *have = NULL;
    int nhave = 0;
    if (load(m, ng, &version) != 0 || metastore_offsets_fetch(m, ng->id, &have, &nhave) != 0) {
        ng->error = KERR_COORDINATOR_NOT_AVAILABLE;
        return;
    }
    free(have);
    if (!ng->found && nhave == 0) {
        ng->error = KERR_GROUP_ID_NOT_FOUND;
        return;
    }
    struct group_offset *del = malloc(sizeof(*del) * (size_t)(j->noffsets > 0 ? j->noffsets : 1));
    if (!del)
        abort();
    int ndel = 0;
    for (int i = 0; i < j->noffsets; i++) {
        if (j->offset_errors[i])
            continue;
        if (group_live_members(&ng->g) > 0 && group_subscribes(&ng->g, j->offsets[i].topic))
            j->offset_errors[i] = KERR_GROUP_SUBSCRIBED_TO_TOPIC;
        else
            del[ndel++] = j->offsets[i];
    }
    if (ndel > 0 && metastore_offsets_delete(m, ng->id, del, ndel) != 0)
        ng->error = KERR_COORDINATOR_NOT_AVAILABLE;
    free(del);
}

static void offset_delete_answer(void *broker, struct request *rq)
{
    (void)broker;
    struct admin_job *j = rq->state;
    struct offset_delete_request *req = rq->body;
    struct offset_delete_response *r = RQ_ALLOC(rq, struct offset_delete_response, 1);
    r->error_code = (int16_t)j->groups[0].error;
    if (!r->error_code) {
        int nt = req->topics_count > 0 ? req->topics_count : 0, k = 0;
        r->topics = RQ_ALLOC(rq, struct offset_delete_response_topic, nt);
        r->topics_count = nt;
        for (int t = 0; t < nt; t++) {
            int np = req->topics[t].partitions_count > 0 ? req->topics[t].partitions_count : 0;
            r->topics[t].name = req->topics[t].name;
            r->topics[t].partitions = RQ_ALLOC(rq, struct offset_delete_response_topic_partition, np);
            r->topics[t].partitions_count = np;
            for (int p = 0; p < np; p++, k++) {
                r->topics[t].partitions[p].partition_index = req->topics[t].partitions[p].partition_index;
                r->topics[t].partitions[p].error_code = j->offset_errors[k];
            }
        }
    }
    free_job(j);
    request_respond(rq, r);
}

void handle_offset_delete(struct broker *b, struct request *rq)
{
    struct offset_delete_request *req = rq->body;
    struct admin_job *j = authorize_groups(b, rq, named_job(rq, &req->group_id, 1), ACL_OP_DELETE);
    int n = 0;
    for (int t = 0; t < req->topics_count; t++)
        n += req->topics[t].partitions_count > 0 ? req->topics[t].partitions_count : 0;
    j->offsets = calloc((size_t)(n > 0 ? n : 1), sizeof(*j->offsets));
    if (!j->offsets)
        abort();
    j->offset_errors = RQ_ALLOC(rq, int16_t, n);
    j->noffsets = n;
    int k = 0;
    for (int t = 0; t < req->topics_count; t++) {
        struct kstr name = req->topics[t].name;
        bool ok = topic_name_valid(name.ptr, name.len);
        for (int p = 0; p < req->topics[t].partitions_count; p++, k++) {
            if (!ok || req->topics[t].partitions[p].partition_index < 0) {
                j->offset_errors[k] = KERR_UNKNOWN_TOPIC_OR_PARTITION;
                continue;
            }
            j->offsets[k].topic = rq_cstr(rq, name);
            j->offsets[k].partition = req->topics[t].partitions[p].partition_index;
        }
    }
    submit(b, rq, j, offset_delete_run, offset_delete_answer);
}
