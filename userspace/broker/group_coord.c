/* The group coordinator: FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup. Any worker
 * of any agent serves any group: the group's state lives in the metadata store and every request
 * is one store job that reads it, applies the protocol (group_state.c) and writes it back only if
 * nobody changed it meanwhile (compare-and-set, retried). A JoinGroup that waits for the other
 * members and a follower's SyncGroup that waits for the leader's assignment are parked, like a
 * long-poll fetch, and checked again every GROUP_POLL_MS and whenever this worker changed the
 * group; a parked request whose connection closes is dropped at once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "broker/broker_internal.h"
#include "broker/group_state.h"
#include "cluster/slots.h"
#include "server/conn.h"
#include "util/clock.h"
#include "util/log.h"

/* Parked requests look at their group again this often (changes by other workers and agents;
 * on PostgreSQL a notification brings that forward). */
#define GROUP_POLL_MS 100
/* Compare-and-set rounds before a request gives up (COORDINATOR_NOT_AVAILABLE: clients retry). */
#define CAS_TRIES 64

enum gop { GOP_JOIN, GOP_JOIN_CHECK, GOP_SYNC, GOP_SYNC_CHECK, GOP_HEARTBEAT, GOP_LEAVE };

/* One group request in plain C strings (in the request's arena), across its rounds. */
struct gcall {
    enum gop op;
    const char *group_id;
    const char *member_id;       /* "" when none */
    const char *instance_id;     /* NULL: none */
    int32_t generation;
    struct join_args join;
    struct gproto *protos;
    const char *protocol_type, *protocol_name; /* SyncGroup v5+ (NULL: not given) */
    struct sync_assignment *assignments;
    int nassign;
    const char **leave_ids, **leave_instances;
    int nleave;
    int16_t *leave_errors;
    int32_t park_generation;
    bool in_job;
};

/* One request a job serves. */
struct gitem {
    struct request *rq;
    struct gcall *call;
    enum group_outcome outcome;
    int error;
    char *member_id;             /* JoinGroup: the member's id (malloc'd) */
};

/* One request of a group, or every parked request of one group (their checks read the group once). */
struct group_job {
    struct job base;
    struct gitem *items;
    int n;
    int store_rc;                /* -1: the store failed */
    bool changed;                /* the group was written */
    struct group g;              /* the state after the calls */
};

static const char *arena_cstr(struct request *rq, struct kstr s)
{
    return s.len < 0 ? NULL : rq_cstr(rq, s);
}

static void apply(struct group *g, struct gitem *j, int64_t now, bool *changed)
{
    struct gcall *c = j->call;
    switch (c->op) {
    case GOP_JOIN: {
        struct join_result jr;
        j->outcome = group_join(g, &c->join, now, &jr, changed);
        j->error = jr.error;
        free(j->member_id);
        j->member_id = strdup(jr.member_id ? jr.member_id : "");
        if (j->outcome == GROUP_WAIT) {
            c->park_generation = jr.park_generation;
            *changed |= group_tick(g, now); /* the last member in completes the rebalance */
            j->outcome = group_join_check(g, j->member_id, c->park_generation, &j->error);
        }
        break;
    }
    case GOP_JOIN_CHECK:
        j->outcome = group_join_check(g, c->member_id, c->park_generation, &j->error);
        break;
    case GOP_SYNC:
        j->outcome = group_sync(g, c->member_id, c->instance_id, c->generation, c->protocol_type, c->protocol_name,
                                c->assignments, c->nassign, now, &j->error, changed);
        break;
    case GOP_SYNC_CHECK:
        j->outcome = group_sync_check(g, c->member_id, c->generation, &j->error);
        break;
    case GOP_HEARTBEAT:
        j->outcome = GROUP_ANSWER;
        j->error = group_heartbeat(g, c->member_id, c->instance_id, c->generation, now, changed);
        break;
    case GOP_LEAVE:
        j->outcome = GROUP_ANSWER;
        for (int i = 0; i < c->nleave; i++)
            c->leave_errors[i] = (int16_t)group_leave(g, c->leave_ids[i], c->leave_instances[i], now, changed);
        break;
    }
}

/* Store thread: read, apply, write if unchanged by others; again if they did. */
static void group_job_run(struct job *job, struct metastore *m)
{
    struct group_job *j = (struct group_job *)job;
    const char *id = j->items[0].call->group_id;
    for (int attempt = 0; attempt < CAS_TRIES; attempt++) {
        uint8_t *data;
        size_t len;
        int64_t version;
        int rc = metastore_group_load(m, id, &data, &len, &version);
        if (rc < 0)
            break;
        group_free(&j->g);
        if (rc == 0 && group_decode(&j->g, data, len) != 0)
            log_warn("group %s: stored state unreadable; starting it afresh", id);
        free(data);
        int64_t now = wall_ms();
        int phase = j->g.phase;
        int32_t generation = j->g.generation;
        bool changed = group_tick(&j->g, now);
        for (int i = 0; i < j->n; i++)
            apply(&j->g, &j->items[i], now, &changed);
        if (!changed)
            return;
        size_t blen;
        uint8_t *blob = group_encode(&j->g, &blen);
        /* Parked members wait for a new phase or generation: only those are announced (not the
         * heartbeats, which would wake every agent's waiting fetches too). */
        bool announce = j->g.phase != phase || j->g.generation != generation;
        rc = metastore_group_store(m, id, version, j->g.phase, j->g.protocol_type, blob, blen, announce);
        free(blob);
        if (rc == 0) {
            j->changed = true;
            return;
        }
        if (rc < 0)
            break;
        /* someone else changed the group first: read it again */
    }
    j->store_rc = -1;
}

static void group_job_done(struct broker *b, struct job *job);

/* One job for these requests, all of the same group. */
static void submit_all(struct broker *b, struct request **rqs, int n)
{
    struct group_job *j = calloc(1, sizeof(*j));
    if (!j)
        abort();
    j->items = calloc((size_t)n, sizeof(*j->items));
    if (!j->items)
        abort();
    j->base.run = group_job_run;
    j->base.done = group_job_done;
    for (int i = 0; i < n; i++) {
        struct gcall *c = rqs[i]->state;
        j->items[i].rq = rqs[i];
        j->items[i].call = c;
        c->in_job = true;
        rqs[i]->reads_pending++;
    }
    j->n = n;
    jobs_submit(&b->store, &j->base);
}

static void submit(struct broker *b, struct request *rq)
{
    submit_all(b, &rq, 1);
}

/* ---- parked requests ---- */

static void park(struct broker *b, struct request *rq)
{
    struct group_parked *p = &b->group_parked;
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 8;
        p->v = realloc(p->v, sizeof(*p->v) * (size_t)p->cap);
        if (!p->v)
            abort();
    }
    if (p->n == 0)
        p->next_poll_ms = mono_ms() + GROUP_POLL_MS;
    p->v[p->n++] = rq;
}

/* Checks the parked requests of one group (NULL: all) now: one job per group. */
static void recheck(struct broker *b, const char *group_id)
{
    struct group_parked *p = &b->group_parked;
    if (p->n == 0)
        return;
    struct request **batch = malloc(sizeof(*batch) * (size_t)p->n);
    if (!batch)
        abort();
    while (p->n > 0) {
        const char *id = group_id;
        if (!id) /* the group of the last parked request, then the next one's */
            id = ((struct gcall *)p->v[p->n - 1]->state)->group_id;
        int n = 0;
        for (int i = 0; i < p->n;) {
            struct gcall *c = p->v[i]->state;
            if (strcmp(c->group_id, id) != 0) {
                i++;
                continue;
            }
            batch[n++] = p->v[i];
            p->v[i] = p->v[--p->n];
        }
        if (n > 0)
            submit_all(b, batch, n);
        if (group_id)
            break;
    }
    free(batch);
}

void groups_tick(struct broker *b, int64_t now_ms)
{
    struct group_parked *p = &b->group_parked;
    if (p->n > 0 && now_ms >= p->next_poll_ms) {
        p->next_poll_ms = now_ms + GROUP_POLL_MS;
        recheck(b, NULL);
    }
}

/* At most this often on notifications: produce commits announce themselves on the same channel. */
#define GROUP_NOTIFY_MIN_MS 10

void groups_notified(struct broker *b)
{
    struct group_parked *p = &b->group_parked;
    int64_t soon = mono_ms() + GROUP_NOTIFY_MIN_MS;
    if (p->n > 0 && p->next_poll_ms > soon)
        p->next_poll_ms = soon;
}

int64_t groups_next_deadline(struct broker *b)
{
    return b->group_parked.n > 0 ? b->group_parked.next_poll_ms : INT64_MAX;
}

void groups_cancel_conn(struct broker *b, struct conn *c)
{
    struct group_parked *p = &b->group_parked;
    for (int i = 0; i < p->n;) {
        struct request *rq = p->v[i];
        if (rq->conn != c) {
            i++;
            continue;
        }
        p->v[i] = p->v[--p->n];
        request_finish_silent(rq);
    }
}

static void respond_error(struct request *rq, int err);

/* Stopping: parked members go and find another coordinator. */
void groups_drain(struct broker *b)
{
    struct group_parked *p = &b->group_parked;
    while (p->n > 0)
        respond_error(p->v[--p->n], KERR_NOT_COORDINATOR);
}

void groups_free(struct broker *b)
{
    groups_cancel_all(b);
    free(b->group_parked.v);
    b->group_parked = (struct group_parked){0};
}

void groups_cancel_all(struct broker *b)
{
    struct group_parked *p = &b->group_parked;
    while (p->n > 0)
        request_finish_silent(p->v[--p->n]);
}

/* ---- responses ---- */

static struct kstr arena_kstr(struct request *rq, const char *s)
{
    if (!s)
        return (struct kstr){NULL, -1};
    return kstr_c(arena_strndup(&rq->arena, s, strlen(s)));
}

static struct kbytes arena_kbytes(struct request *rq, const uint8_t *p, int32_t len)
{
    if (!p || len <= 0)
        return (struct kbytes){(const uint8_t *)"", 0};
    uint8_t *d = arena_alloc(&rq->arena, (size_t)len);
    memcpy(d, p, (size_t)len);
    return (struct kbytes){d, len};
}

/* A string field that is nullable only from some version on. */
static struct kstr nullable_from(struct request *rq, const char *s, int16_t from)
{
    if (!s && rq->hdr.api_version < from)
        return kstr_c("");
    return arena_kstr(rq, s);
}

static void respond_join(struct request *rq, int err, const char *member_id, const struct group *g)
{
    struct join_group_response *r = RQ_ALLOC(rq, struct join_group_response, 1);
    r->error_code = (int16_t)err;
    r->generation_id = -1;
    r->member_id = arena_kstr(rq, member_id ? member_id : "");
    r->leader = kstr_c("");
    r->protocol_name = nullable_from(rq, NULL, 7);
    r->protocol_type = (struct kstr){NULL, -1};
    if (!err && g) {
        r->generation_id = g->generation;
        r->protocol_type = arena_kstr(rq, g->protocol_type);
        r->protocol_name = nullable_from(rq, g->protocol_name, 7);
        r->leader = arena_kstr(rq, g->leader ? g->leader : "");
        if (g->leader && strcmp(g->leader, member_id) == 0) {
            /* The leader gets every member's metadata for the chosen protocol, untouched. */
            r->members = RQ_ALLOC(rq, struct join_group_response_member, g->nmembers);
            for (int i = 0; i < g->nmembers; i++) {
                const struct gmember *m = &g->members[i];
                if (m->pending)
                    continue;
                struct join_group_response_member *out = &r->members[r->members_count++];
                out->member_id = arena_kstr(rq, m->id);
                out->group_instance_id = arena_kstr(rq, m->instance_id);
                for (int k = 0; k < m->nprotos; k++)
                    if (g->protocol_name && strcmp(m->protos[k].name, g->protocol_name) == 0)
                        out->metadata = arena_kbytes(rq, m->protos[k].meta, m->protos[k].meta_len);
            }
        }
    }
    request_respond(rq, r);
}

static void respond_sync(struct request *rq, int err, const char *member_id, const struct group *g)
{
    struct sync_group_response *r = RQ_ALLOC(rq, struct sync_group_response, 1);
    r->error_code = (int16_t)err;
    r->protocol_type = (struct kstr){NULL, -1};
    r->protocol_name = (struct kstr){NULL, -1};
    r->assignment = arena_kbytes(rq, NULL, 0);
    if (!err && g) {
        const struct gmember *m = group_find_member(g, member_id);
        r->protocol_type = arena_kstr(rq, g->protocol_type);
        r->protocol_name = arena_kstr(rq, g->protocol_name);
        if (m)
            r->assignment = arena_kbytes(rq, m->assignment, m->assignment_len);
    }
    request_respond(rq, r);
}

static void respond_leave(struct request *rq, int err)
{
    struct gcall *c = rq->state;
    struct leave_group_response *r = RQ_ALLOC(rq, struct leave_group_response, 1);
    if (rq->hdr.api_version < 3) {
        r->error_code = (int16_t)(err ? err : c && c->nleave ? c->leave_errors[0] : 0);
    } else {
        r->error_code = (int16_t)err;
        int n = c && !err ? c->nleave : 0;
        r->members = RQ_ALLOC(rq, struct leave_group_response_member, n);
        r->members_count = n;
        for (int i = 0; i < n; i++) {
            r->members[i].member_id = arena_kstr(rq, c->leave_ids[i]);
            r->members[i].group_instance_id = arena_kstr(rq, c->leave_instances[i]);
            r->members[i].error_code = c->leave_errors[i];
        }
    }
    request_respond(rq, r);
}

/* An error for the whole request, whichever API it is. */
static void respond_error(struct request *rq, int err)
{
    struct gcall *c = rq->state;
    switch (rq->hdr.api_key) {
    case KAPI_JOIN_GROUP:
        respond_join(rq, err, c ? c->member_id : "", NULL);
        break;
    case KAPI_SYNC_GROUP:
        respond_sync(rq, err, NULL, NULL);
        break;
    case KAPI_LEAVE_GROUP:
        respond_leave(rq, err);
        break;
    default: {
        struct heartbeat_response *r = RQ_ALLOC(rq, struct heartbeat_response, 1);
        r->error_code = (int16_t)err;
        request_respond(rq, r);
    }
    }
}

/* What one request of a finished job comes to: its answer, or parked again. */
static void finish_item(struct broker *b, struct group_job *j, struct gitem *it)
{
    struct request *rq = it->rq;
    struct gcall *c = it->call;
    c->in_job = false;
    rq->reads_pending--;
    if (!request_conn_alive(rq)) {
        request_finish_silent(rq);
    } else if (j->store_rc < 0) {
        respond_error(rq, KERR_COORDINATOR_NOT_AVAILABLE);
    } else if (it->outcome == GROUP_WAIT && b->draining) {
        respond_error(rq, KERR_NOT_COORDINATOR);
    } else if (it->outcome == GROUP_WAIT) {
        if (c->op == GOP_JOIN) {
            c->member_id = arena_strndup(&rq->arena, it->member_id, strlen(it->member_id));
            c->op = GOP_JOIN_CHECK;
        } else if (c->op == GOP_SYNC) {
            c->op = GOP_SYNC_CHECK;
        }
        park(b, rq);
    } else if (c->op == GOP_JOIN || c->op == GOP_JOIN_CHECK) {
        respond_join(rq, it->error, c->op == GOP_JOIN ? it->member_id : c->member_id, &j->g);
    } else if (c->op == GOP_SYNC || c->op == GOP_SYNC_CHECK) {
        respond_sync(rq, it->error, c->member_id, &j->g);
    } else if (c->op == GOP_LEAVE) {
        respond_leave(rq, 0);
    } else {
        respond_error(rq, it->error);
    }
}

static void group_job_done(struct broker *b, struct job *job)
{
    struct group_job *j = (struct group_job *)job;
    char group_id[GROUP_ID_MAX + 1];
    snprintf(group_id, sizeof(group_id), "%s", j->items[0].call->group_id);
    for (int i = 0; b && i < j->n; i++)
        finish_item(b, j, &j->items[i]);
    /* This worker changed the group: its parked members look at once. */
    if (b && j->changed)
        recheck(b, group_id);
    for (int i = 0; i < j->n; i++)
        free(j->items[i].member_id);
    free(j->items);
    group_free(&j->g);
    free(j);
}

/* ---- handlers ---- */

static struct gcall *new_call(struct request *rq, enum gop op, struct kstr group_id)
{
    struct gcall *c = RQ_ALLOC(rq, struct gcall, 1);
    c->op = op;
    c->group_id = rq_cstr(rq, group_id);
    c->member_id = "";
    rq->state = c;
    return c;
}

static bool group_id_ok(struct kstr id) { return id.len > 0 && id.len <= GROUP_ID_MAX; }

/* A member id for a new member: its client id and a random part, as Kafka makes them. */
static const char *new_member_id(struct request *rq)
{
    uint8_t r[16];
    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
        abort();
    char *id = arena_alloc(&rq->arena, 64 + 40);
    struct kstr cid = rq->hdr.client_id;
    int n = snprintf(id, 64, "%.*s-", cid.len > 0 ? (int)(cid.len > 60 ? 60 : cid.len) : 6,
                     cid.len > 0 ? cid.ptr : "member");
    for (int i = 0; i < 16; i++)
        n += snprintf(id + n, 3, "%02x", r[i]);
    return id;
}

/* The group APIs need READ on the group (Kafka's rule). */
static bool group_read_allowed(struct broker *b, struct request *rq, struct kstr group_id)
{
    return authz_allow(b, rq, ACL_OP_READ, ACL_RES_GROUP, group_id.ptr, group_id.len);
}

void handle_join_group(struct broker *b, struct request *rq)
{
    struct join_group_request *req = rq->body;
    struct gcall *c = new_call(rq, GOP_JOIN, req->group_id);
    c->member_id = rq_cstr(rq, req->member_id);
    if (!group_id_ok(req->group_id)) {
        respond_join(rq, KERR_INVALID_GROUP_ID, c->member_id, NULL);
        return;
    }
    if (!group_read_allowed(b, rq, req->group_id)) {
        respond_join(rq, KERR_GROUP_AUTHORIZATION_FAILED, c->member_id, NULL);
        return;
    }
    c->instance_id = arena_cstr(rq, req->group_instance_id);
    int n = req->protocols_count > 0 ? req->protocols_count : 0;
    c->protos = RQ_ALLOC(rq, struct gproto, n);
    for (int i = 0; i < n; i++) {
        c->protos[i].name = (char *)rq_cstr(rq, req->protocols[i].name);
        c->protos[i].meta = (uint8_t *)req->protocols[i].metadata.ptr;
        c->protos[i].meta_len = req->protocols[i].metadata.len > 0 ? req->protocols[i].metadata.len : 0;
    }
    struct join_args *a = &c->join;
    a->member_id = c->member_id;
    a->instance_id = c->instance_id;
    a->new_member_id = new_member_id(rq);
    a->client_id = rq_cstr(rq, rq->hdr.client_id);
    a->client_host = arena_strndup(&rq->arena, rq->conn->peer, strlen(rq->conn->peer));
    a->protocol_type = rq_cstr(rq, req->protocol_type);
    a->session_timeout_ms = req->session_timeout_ms;
    a->rebalance_timeout_ms = req->rebalance_timeout_ms;
    a->protos = c->protos;
    a->nprotos = n;
    a->require_known_id = rq->hdr.api_version >= 4;
    submit(b, rq);
}

void handle_sync_group(struct broker *b, struct request *rq)
{
    struct sync_group_request *req = rq->body;
    struct gcall *c = new_call(rq, GOP_SYNC, req->group_id);
    c->member_id = rq_cstr(rq, req->member_id);
    if (!group_id_ok(req->group_id)) {
        respond_sync(rq, KERR_INVALID_GROUP_ID, NULL, NULL);
        return;
    }
    if (!group_read_allowed(b, rq, req->group_id)) {
        respond_sync(rq, KERR_GROUP_AUTHORIZATION_FAILED, NULL, NULL);
        return;
    }
    c->instance_id = arena_cstr(rq, req->group_instance_id);
    c->generation = req->generation_id;
    c->protocol_type = arena_cstr(rq, req->protocol_type);
    c->protocol_name = arena_cstr(rq, req->protocol_name);
    int n = req->assignments_count > 0 ? req->assignments_count : 0;
    c->assignments = RQ_ALLOC(rq, struct sync_assignment, n);
    for (int i = 0; i < n; i++) {
        c->assignments[i].member_id = rq_cstr(rq, req->assignments[i].member_id);
        c->assignments[i].assignment = req->assignments[i].assignment.ptr;
        c->assignments[i].len = req->assignments[i].assignment.len > 0 ? req->assignments[i].assignment.len : 0;
    }
    c->nassign = n;
    submit(b, rq);
}

void handle_heartbeat(struct broker *b, struct request *rq)
{
    struct heartbeat_request *req = rq->body;
    struct gcall *c = new_call(rq, GOP_HEARTBEAT, req->group_id);
    if (!group_id_ok(req->group_id)) {
        respond_error(rq, KERR_INVALID_GROUP_ID);
        return;
    }
    if (!group_read_allowed(b, rq, req->group_id)) {
        respond_error(rq, KERR_GROUP_AUTHORIZATION_FAILED);
        return;
    }
    c->member_id = rq_cstr(rq, req->member_id);
    c->instance_id = arena_cstr(rq, req->group_instance_id);
    c->generation = req->generation_id;
    submit(b, rq);
}

void handle_leave_group(struct broker *b, struct request *rq)
{
    struct leave_group_request *req = rq->body;
    struct gcall *c = new_call(rq, GOP_LEAVE, req->group_id);
    int n = rq->hdr.api_version < 3 ? 1 : (req->members_count > 0 ? req->members_count : 0);
    c->leave_ids = RQ_ALLOC(rq, const char *, n);
    c->leave_instances = RQ_ALLOC(rq, const char *, n);
    c->leave_errors = RQ_ALLOC(rq, int16_t, n);
    c->nleave = n;
    if (rq->hdr.api_version < 3) {
        c->leave_ids[0] = rq_cstr(rq, req->member_id);
    } else {
        for (int i = 0; i < n; i++) {
            c->leave_ids[i] = rq_cstr(rq, req->members[i].member_id);
            c->leave_instances[i] = arena_cstr(rq, req->members[i].group_instance_id);
        }
    }
    if (!group_id_ok(req->group_id)) {
        respond_leave(rq, KERR_INVALID_GROUP_ID);
        return;
    }
    if (!group_read_allowed(b, rq, req->group_id)) {
        respond_leave(rq, KERR_GROUP_AUTHORIZATION_FAILED);
        return;
    }
    submit(b, rq);
}

/* ---- timers nobody else runs ---- */

int groups_sweep(struct metastore *m, int64_t now)
{
    struct group_summary *v = NULL;
    int n = 0, swept = 0;
    if (metastore_groups_list(m, &v, &n) != 0)
        return -1;
    for (int i = 0; i < n; i++) {
        if (v[i].phase == GROUP_EMPTY)
            continue;
        uint8_t *data;
        size_t len;
        int64_t version;
        struct group g;
        if (metastore_group_load(m, v[i].group_id, &data, &len, &version) != 0)
            continue;
        if (group_decode(&g, data, len) == 0) {
            if (group_tick(&g, now)) {
                size_t blen;
                uint8_t *blob = group_encode(&g, &blen);
                /* a conflict means someone is serving the group: their request ticked it */
                swept += metastore_group_store(m, v[i].group_id, version, g.phase, g.protocol_type, blob, blen,
                                               true) == 0;
                free(blob);
            }
            group_free(&g);
        }
        free(data);
    }
    free(v);
    return swept;
}

/* ---- FindCoordinator: the slot hash(group) mod S, as Metadata advertises it ---- */

static void coordinator_for(struct broker *b, struct request *rq, struct kstr key, int8_t key_type, int32_t *node,
                            struct kstr *host, int32_t *port, int16_t *err)
{
    *node = -1;
    *host = kstr_c("");
    *port = -1;
    *err = 0;
    if (key_type != 0) { /* transactions are not served */
        *err = KERR_COORDINATOR_NOT_AVAILABLE;
        return;
    }
    if (!authz_allow(b, rq, ACL_OP_DESCRIBE, ACL_RES_GROUP, key.ptr, key.len)) {
        *err = KERR_GROUP_AUTHORIZATION_FAILED;
        return;
    }
    int32_t slot = (int32_t)(topic_hash(key.len > 0 ? key.ptr : "", key.len > 0 ? (size_t)key.len : 0) %
                             (uint32_t)b->cfg->slots);
    *node = slot;
    broker_slot_address(b, rq, slot, host, port);
}

void handle_find_coordinator(struct broker *b, struct request *rq)
{
    struct find_coordinator_request *req = rq->body;
    struct find_coordinator_response *r = RQ_ALLOC(rq, struct find_coordinator_response, 1);
    r->error_message = (struct kstr){NULL, -1};
    if (rq->hdr.api_version < 4) {
        coordinator_for(b, rq, req->key, req->key_type, &r->node_id, &r->host, &r->port, &r->error_code);
    } else {
        int n = req->coordinator_keys_count > 0 ? req->coordinator_keys_count : 0;
        r->coordinators = RQ_ALLOC(rq, struct find_coordinator_response_coordinator, n);
        r->coordinators_count = n;
        for (int i = 0; i < n; i++) {
            struct find_coordinator_response_coordinator *out = &r->coordinators[i];
            out->key = req->coordinator_keys[i];
            out->error_message = (struct kstr){NULL, -1};
            coordinator_for(b, rq, req->coordinator_keys[i], req->key_type, &out->node_id, &out->host, &out->port,
                            &out->error_code);
        }
    }
    request_respond(rq, r);
}
