/* CreateAcls, DescribeAcls, DeleteAcls: each request is one job on the store threads that makes
 * its changes and then lists every ACL; the listing answers DescribeAcls / DeleteAcls and
 * replaces this worker's in-memory set at once (other workers: authz.h's refresh). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker_internal.h"

enum acl_job_kind { ACL_CREATE, ACL_DESCRIBE, ACL_DELETE };

/* One ACL to create, or one filter to describe / delete with, and its outcome. */
struct acl_item {
    struct acl_entry entry;      /* create */
    struct acl_filter filter;    /* describe, delete */
    int err;                     /* refused before the store, or the store's answer */
    char why[200];
    int64_t *matched;            /* delete: ids of the ACLs it matched (malloc'd by the job) */
    int nmatched;
};

struct acl_state {
    bool sent;
    int err;                     /* the whole request's (CLUSTER_AUTHORIZATION_FAILED) */
    struct acl_item *items;
    int nitems;
    int list_rc;
    struct acl_entry *acls;      /* every ACL after the changes (malloc'd by the job) */
    int nacls;
    struct acl_entry *after;     /* delete: every ACL after the deletions (malloc'd by the job) */
    int nafter;
    int after_rc;
};

struct acl_job {
    struct job base;
    enum acl_job_kind kind;
    struct request *rq;
    struct acl_state *st;
    uint64_t gen;
};

static int find_acl(const struct acl_entry *v, int n, int64_t id)
{
    for (int i = 0; i < n; i++)
        if (v[i].id == id)
            return i;
    return -1;
}

static void acl_job_run(struct job *job, struct metastore *m)
{
    struct acl_job *j = (struct acl_job *)job;
    struct acl_state *st = j->st;
    if (j->kind == ACL_CREATE)
        for (int i = 0; i < st->nitems; i++) {
            struct acl_item *it = &st->items[i];
            if (!it->err && metastore_acl_add(m, &it->entry) != 0) {
                it->err = KERR_UNKNOWN_SERVER_ERROR;
                snprintf(it->why, sizeof(it->why), "the metadata store failed");
            }
        }
    st->list_rc = metastore_acl_list(m, &st->acls, &st->nacls);
    if (j->kind != ACL_DELETE || st->list_rc != 0)
        return;
    /* Deletions: every match of every filter, then the set as it is afterwards. */
    for (int i = 0; i < st->nitems; i++) {
        struct acl_item *it = &st->items[i];
        if (it->err)
            continue;
        it->matched = malloc(sizeof(int64_t) * (size_t)(st->nacls > 0 ? st->nacls : 1));
        if (!it->matched)
            abort();
        for (int k = 0; k < st->nacls; k++)
            if (acl_filter_matches(&it->filter, &st->acls[k]))
                it->matched[it->nmatched++] = st->acls[k].id;
    }
    bool failed = false;
    for (int i = 0; i < st->nitems; i++)
        for (int k = 0; k < st->items[i].nmatched; k++)
            if (metastore_acl_delete(m, st->items[i].matched[k]) != 0)
                failed = true;
    st->after_rc = metastore_acl_list(m, &st->after, &st->nafter);
    if (!failed)
        return;
    for (int i = 0; i < st->nitems; i++)
        if (st->items[i].nmatched) {
            st->items[i].err = KERR_UNKNOWN_SERVER_ERROR;
            snprintf(st->items[i].why, sizeof(st->items[i].why), "the metadata store failed");
        }
}

static void acl_job_done(struct broker *b, struct job *job)
{
    struct acl_job *j = (struct acl_job *)job;
    if (b) {
        if (j->kind == ACL_DELETE && j->st->list_rc == 0 && j->st->after_rc == 0) {
            authz_apply(b, j->st->after, j->st->nafter, j->gen); /* the worker's set from now on */
            j->st->after = NULL;
        } else if (j->st->list_rc == 0 && j->kind != ACL_DELETE) {
            /* the set the answer reads is also the worker's from now on: copy it */
            struct acl_entry *copy = malloc(sizeof(*copy) * (size_t)(j->st->nacls > 0 ? j->st->nacls : 1));
            if (!copy)
                abort();
            if (j->st->nacls > 0) /* none: acls may be NULL */
                memcpy(copy, j->st->acls, sizeof(*copy) * (size_t)j->st->nacls);
            authz_apply(b, copy, j->st->nacls, j->gen);
        }
        broker_release(b, j->rq);
    } else {
        free(j->st->acls);
        free(j->st->after);
        for (int i = 0; i < j->st->nitems; i++)
            free(j->st->items[i].matched);
    }
    free(j);
}

static void submit(struct broker *b, struct request *rq, struct acl_state *st, enum acl_job_kind kind,
                   void (*resume)(void *, struct request *))
{
    struct acl_job *j = calloc(1, sizeof(*j));
    if (!j)
        abort();
    j->base.run = acl_job_run;
    j->base.done = acl_job_done;
    j->kind = kind;
    j->rq = rq;
    j->st = st;
    j->gen = authz_next_gen(b);
    st->sent = true;
    rq->reads_pending++;
    rq->resume = resume;
    jobs_submit(&b->store, &j->base);
}

/* A client string into a fixed field: false if it does not fit. */
static bool copy_str(char *dst, size_t size, struct kstr s)
{
    size_t n = s.len > 0 ? (size_t)s.len : 0;
    if (n >= size)
        return false;
    memcpy(dst, n ? s.ptr : "", n);
    dst[n] = 0;
    return true;
}

static const char *opt_cstr(struct request *rq, struct kstr s)
{
    return s.len < 0 ? NULL : rq_cstr(rq, s);
}

static struct kstr kstr_of(struct request *rq, const char *s)
{
    size_t n = strlen(s);
    return (struct kstr){arena_strndup(&rq->arena, s, n), (int32_t)n};
}

static struct kstr why_of(struct request *rq, const struct acl_item *it)
{
    return it->err && it->why[0] ? kstr_of(rq, it->why) : (struct kstr){NULL, -1};
}

/* ---- CreateAcls ---- */

static void resume_create_acls(void *broker, struct request *rq)
{
    handle_create_acls(broker, rq);
}

void handle_create_acls(struct broker *b, struct request *rq)
{
    struct create_acls_request *req = rq->body;
    int n = req->creations_count > 0 ? req->creations_count : 0;
    struct acl_state *st = rq->state;
    if (!st) {
        st = rq->state = RQ_ALLOC(rq, struct acl_state, 1);
        st->items = RQ_ALLOC(rq, struct acl_item, n);
        st->nitems = n;
        bool allowed = authz_allow_cluster(b, rq, ACL_OP_ALTER);
        bool any = false;
        for (int i = 0; i < n; i++) {
            const struct create_acls_request_creation *c = &req->creations[i];
            struct acl_item *it = &st->items[i];
            struct acl_entry *e = &it->entry;
            e->resource_type = c->resource_type;
            e->pattern_type = c->resource_pattern_type;
            e->operation = c->operation;
            e->permission = c->permission_type;
            if (!allowed) {
                it->err = KERR_CLUSTER_AUTHORIZATION_FAILED;
            } else if (!copy_str(e->resource_name, sizeof(e->resource_name), c->resource_name) ||
                       !copy_str(e->principal, sizeof(e->principal), c->principal) ||
                       !copy_str(e->host, sizeof(e->host), c->host)) {
                it->err = KERR_INVALID_REQUEST;
                snprintf(it->why, sizeof(it->why), "Resource name, principal or host too long");
            } else {
                it->err = acl_validate(e, it->why, sizeof(it->why));
            }
            any = any || !it->err;
        }
        if (any) {
            submit(b, rq, st, ACL_CREATE, resume_create_acls);
            return;
        }
    }
    free(st->acls);
    struct create_acls_response *resp = RQ_ALLOC(rq, struct create_acls_response, 1);
    resp->results = RQ_ALLOC(rq, struct create_acls_response_result, n);
    resp->results_count = n;
    for (int i = 0; i < n; i++) {
        resp->results[i].error_code = (int16_t)st->items[i].err;
        resp->results[i].error_message = why_of(rq, &st->items[i]);
    }
    request_respond(rq, resp);
}

/* ---- DescribeAcls ---- */

static void resume_describe_acls(void *broker, struct request *rq)
{
    handle_describe_acls(broker, rq);
}

/* The matching ACLs, one resource entry per (type, name, pattern type). */
static void describe_answer(struct request *rq, struct describe_acls_response *resp, const struct acl_filter *f,
                            const struct acl_entry *v, int n)
{
    typedef struct describe_acls_response_resource res_t;
    typedef struct describe_acls_response_resource_acl racl_t;
    resp->resources = RQ_ALLOC(rq, res_t, n);
    int *owner = RQ_ALLOC(rq, int, n); /* which resource entry each matching ACL goes to */
    int nres = 0;
    for (int i = 0; i < n; i++) {
        owner[i] = -1;
        if (!acl_filter_matches(f, &v[i]))
            continue;
        for (int r = 0; r < i && owner[i] < 0; r++)
            if (owner[r] >= 0 && v[r].resource_type == v[i].resource_type && v[r].pattern_type == v[i].pattern_type &&
                strcmp(v[r].resource_name, v[i].resource_name) == 0)
                owner[i] = owner[r];
        if (owner[i] < 0) {
            res_t *res = &resp->resources[nres];
            res->resource_type = v[i].resource_type;
            res->resource_name = kstr_of(rq, v[i].resource_name);
            res->pattern_type = v[i].pattern_type;
            owner[i] = nres++;
        }
        resp->resources[owner[i]].acls_count++;
    }
    resp->resources_count = nres;
    for (int r = 0; r < nres; r++) {
        resp->resources[r].acls = RQ_ALLOC(rq, racl_t, resp->resources[r].acls_count);
        resp->resources[r].acls_count = 0;
    }
    for (int i = 0; i < n; i++) {
        if (owner[i] < 0)
            continue;
        res_t *res = &resp->resources[owner[i]];
        racl_t *a = &res->acls[res->acls_count++];
        a->principal = kstr_of(rq, v[i].principal);
        a->host = kstr_of(rq, v[i].host);
        a->operation = v[i].operation;
        a->permission_type = v[i].permission;
    }
}

void handle_describe_acls(struct broker *b, struct request *rq)
{
    struct describe_acls_request *req = rq->body;
    struct acl_state *st = rq->state;
    if (!st) {
        st = rq->state = RQ_ALLOC(rq, struct acl_state, 1);
        st->items = RQ_ALLOC(rq, struct acl_item, 1);
        st->nitems = 1;
        struct acl_item *it = &st->items[0];
        it->filter = (struct acl_filter){
            .resource_type = req->resource_type_filter,
            .pattern_type = req->pattern_type_filter,
            .operation = req->operation,
            .permission = req->permission_type,
            .resource_name = opt_cstr(rq, req->resource_name_filter),
            .principal = opt_cstr(rq, req->principal_filter),
            .host = opt_cstr(rq, req->host_filter),
        };
        if (!authz_allow_cluster(b, rq, ACL_OP_DESCRIBE))
            it->err = KERR_CLUSTER_AUTHORIZATION_FAILED;
        else
            it->err = acl_filter_validate(&it->filter, it->why, sizeof(it->why));
        if (!it->err) {
            submit(b, rq, st, ACL_DESCRIBE, resume_describe_acls);
            return;
        }
    }
    struct acl_item *it = &st->items[0];
    struct describe_acls_response *resp = RQ_ALLOC(rq, struct describe_acls_response, 1);
    if (!it->err && st->list_rc != 0) {
        it->err = KERR_UNKNOWN_SERVER_ERROR;
        snprintf(it->why, sizeof(it->why), "the metadata store failed");
    }
    resp->error_code = (int16_t)it->err;
    resp->error_message = why_of(rq, it);
    if (!it->err)
        describe_answer(rq, resp, &it->filter, st->acls, st->nacls);
    free(st->acls);
    free(st->after);
    request_respond(rq, resp);
}

/* ---- DeleteAcls ---- */

static void resume_delete_acls(void *broker, struct request *rq)
{
    handle_delete_acls(broker, rq);
}

void handle_delete_acls(struct broker *b, struct request *rq)
{
    struct delete_acls_request *req = rq->body;
    int n = req->filters_count > 0 ? req->filters_count : 0;
    struct acl_state *st = rq->state;
    if (!st) {
        st = rq->state = RQ_ALLOC(rq, struct acl_state, 1);
        st->items = RQ_ALLOC(rq, struct acl_item, n);
        st->nitems = n;
        bool allowed = authz_allow_cluster(b, rq, ACL_OP_ALTER);
        bool any = false;
        for (int i = 0; i < n; i++) {
            const struct delete_acls_request_filter *f = &req->filters[i];
            struct acl_item *it = &st->items[i];
            it->filter = (struct acl_filter){
                .resource_type = f->resource_type_filter,
                .pattern_type = f->pattern_type_filter,
                .operation = f->operation,
                .permission = f->permission_type,
                .resource_name = opt_cstr(rq, f->resource_name_filter),
                .principal = opt_cstr(rq, f->principal_filter),
                .host = opt_cstr(rq, f->host_filter),
            };
            it->err = allowed ? acl_filter_validate(&it->filter, it->why, sizeof(it->why))
                              : KERR_CLUSTER_AUTHORIZATION_FAILED;
            any = any || !it->err;
        }
        if (any) {
            submit(b, rq, st, ACL_DELETE, resume_delete_acls);
            return;
        }
    }
    typedef struct delete_acls_response_filter_result fres_t;
    typedef struct delete_acls_response_filter_result_matching_acl match_t;
    struct delete_acls_response *resp = RQ_ALLOC(rq, struct delete_acls_response, 1);
    resp->filter_results = RQ_ALLOC(rq, fres_t, n);
    resp->filter_results_count = n;
    bool listed = st->sent && st->list_rc == 0;
    for (int i = 0; i < n; i++) {
        struct acl_item *it = &st->items[i];
        fres_t *out = &resp->filter_results[i];
        if (!it->err && !listed) {
            it->err = KERR_UNKNOWN_SERVER_ERROR;
            snprintf(it->why, sizeof(it->why), "the metadata store failed");
        }
        out->error_code = (int16_t)it->err;
        out->error_message = why_of(rq, it);
        int nm = it->err ? 0 : it->nmatched;
        out->matching_acls = RQ_ALLOC(rq, match_t, nm);
        for (int k = 0; k < nm; k++) {
            int x = find_acl(st->acls, st->nacls, it->matched[k]); /* matched ids come from this listing */
            if (x < 0)
                continue;
            const struct acl_entry *e = &st->acls[x];
            match_t *m = &out->matching_acls[out->matching_acls_count++];
            m->error_message = (struct kstr){NULL, -1};
            m->resource_type = e->resource_type;
            m->resource_name = kstr_of(rq, e->resource_name);
            m->pattern_type = e->pattern_type;
            m->principal = kstr_of(rq, e->principal);
            m->host = kstr_of(rq, e->host);
            m->operation = e->operation;
            m->permission_type = e->permission;
        }
        free(it->matched);
        it->matched = NULL;
    }
    free(st->acls);
    free(st->after);
    request_respond(rq, resp);
}
