/* DescribeUserScramCredentials (50) and AlterUserScramCredentials (51): the SCRAM users in the
 * metadata store, read and changed on a store thread. Alter receives the salted password (never the
 * password) and stores the StoredKey and ServerKey derived from it. */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "broker/broker_internal.h"
#include "broker/sasl_scram.h"

#define KERR_UNSUPPORTED_SASL_MECHANISM 33
#define KERR_RESOURCE_NOT_FOUND 91
#define KERR_DUPLICATE_RESOURCE 92
#define KERR_UNACCEPTABLE_CREDENTIAL 93
#define KERR_KAFKA_STORAGE_ERROR 56
#define SCRAM_MAX_ITERATIONS 16384 /* Kafka's bound */

/* Kafka's ScramMechanism numbering: 1 = SCRAM-SHA-256, 2 = SCRAM-SHA-512. */
static enum sasl_mech mech_of(int8_t m)
{
    return m == 1 ? SASL_MECH_SCRAM_SHA_256 : m == 2 ? SASL_MECH_SCRAM_SHA_512 : SASL_MECH_NONE;
}

static int8_t mech_number(const char *name)
{
    return !strcmp(name, "SCRAM-SHA-256") ? 1 : !strcmp(name, "SCRAM-SHA-512") ? 2 : 0;
}

static bool kstr_is(struct kstr a, struct kstr b)
{
    return a.len == b.len && (a.len <= 0 || !memcmp(a.ptr, b.ptr, (size_t)a.len));
}

/* ---- Describe ---- */

struct describe_job {
    struct job base;
    struct request *rq;
    int rc;
    struct sasl_credential *creds;
    int n;
};

static void describe_run(struct job *job, struct metastore *m)
{
    struct describe_job *j = (struct describe_job *)job;
    j->rc = metastore_cred_list(m, NULL, NULL, &j->creds, &j->n);
}

/* The result of one user: its SCRAM credentials, or RESOURCE_NOT_FOUND. */
static void describe_user(struct request *rq, struct describe_job *j, struct kstr user,
                          struct describe_user_scram_credentials_response_result *out)
{
    out->user = user;
    out->error_message = (struct kstr){NULL, -1};
    out->credential_infos = RQ_ALLOC(rq, struct describe_user_scram_credentials_response_result_credential_info, 2);
    for (int i = 0; i < j->n; i++) {
        int8_t mech = mech_number(j->creds[i].mechanism);
        if (mech && out->credential_infos_count < 2 && (int32_t)strlen(j->creds[i].user) == user.len &&
            !memcmp(j->creds[i].user, user.ptr, (size_t)user.len))
            out->credential_infos[out->credential_infos_count++] =
                (struct describe_user_scram_credentials_response_result_credential_info){mech,
                                                                                         j->creds[i].iterations};
    }
    if (out->credential_infos_count == 0) {
        out->error_code = KERR_RESOURCE_NOT_FOUND;
        out->error_message = kstr_c("Attempt to describe a user credential that does not exist");
    }
}

static void describe_done(struct broker *b, struct job *job)
{
    struct describe_job *j = (struct describe_job *)job;
    if (b) {
        struct request *rq = j->rq;
        struct describe_user_scram_credentials_request *req = rq->body;
        struct describe_user_scram_credentials_response *resp =
            RQ_ALLOC(rq, struct describe_user_scram_credentials_response, 1);
        resp->error_message = (struct kstr){NULL, -1};
        if (j->rc != 0) {
            resp->error_code = KERR_KAFKA_STORAGE_ERROR;
            resp->error_message = kstr_c("the metadata store is unavailable");
            resp->results = RQ_ALLOC(rq, struct describe_user_scram_credentials_response_result, 0);
        } else if (req->users_count < 0) { /* every user with a SCRAM credential, once */
            resp->results = RQ_ALLOC(rq, struct describe_user_scram_credentials_response_result, j->n);
            for (int i = 0; i < j->n; i++) {
                if (!mech_number(j->creds[i].mechanism) ||
                    (resp->results_count && !strcmp(resp->results[resp->results_count - 1].user.ptr,
                                                    j->creds[i].user)))
                    continue;
                struct kstr name = kstr_c(arena_strndup(&rq->arena, j->creds[i].user, strlen(j->creds[i].user)));
                describe_user(rq, j, name, &resp->results[resp->results_count++]);
            }
        } else {
            resp->results = RQ_ALLOC(rq, struct describe_user_scram_credentials_response_result, req->users_count);
            resp->results_count = req->users_count;
            for (int u = 0; u < req->users_count; u++) {
                struct describe_user_scram_credentials_response_result *r = &resp->results[u];
                bool dup = false;
                for (int v = 0; v < req->users_count; v++)
                    dup = dup || (v != u && kstr_is(req->users[v].name, req->users[u].name));
                if (dup) {
                    r->user = req->users[u].name;
                    r->error_code = KERR_DUPLICATE_RESOURCE;
                    r->error_message = kstr_c("Cannot describe SCRAM credentials for the same user twice");
                    r->credential_infos =
                        RQ_ALLOC(rq, struct describe_user_scram_credentials_response_result_credential_info, 0);
                } else {
                    describe_user(rq, j, req->users[u].name, r);
                }
            }
        }
        request_respond(rq, resp);
    }
    if (j->creds)
        OPENSSL_cleanse(j->creds, sizeof(*j->creds) * (size_t)j->n);
    free(j->creds);
    free(j);
}

void handle_describe_user_scram_credentials(struct broker *b, struct request *rq)
{
    struct describe_job *j = calloc(1, sizeof(*j));
    if (!j)
        abort();
    j->base.run = describe_run;
    j->base.done = describe_done;
    j->rq = rq;
    jobs_submit(&b->store, &j->base);
}

/* ---- Alter ---- */

struct alter_job {
    struct job base;
    struct request *rq;
    int16_t *errors;               /* per user of the response, set by run */
    const char **messages;
};

/* The users the request names, once each, in order (the response has one result per user). */
static int users_of(struct request *rq, struct alter_user_scram_credentials_request *req, struct kstr *out)
{
    int n = 0;
    for (int i = 0; i < req->deletions_count + req->upsertions_count; i++) {
        struct kstr name = i < req->deletions_count ? req->deletions[i].name
                                                    : req->upsertions[i - req->deletions_count].name;
        bool seen = false;
        for (int k = 0; k < n; k++)
            seen = seen || kstr_is(out[k], name);
        if (!seen)
            out[n++] = name;
    }
    (void)rq;
    return n;
}

static void alter_run(struct job *job, struct metastore *m)
{
    struct alter_job *j = (struct alter_job *)job;
    struct request *rq = j->rq;
    struct alter_user_scram_credentials_request *req = rq->body;
    struct alter_user_scram_credentials_response *resp = rq->state;
    for (int u = 0; u < resp->results_count; u++) {
        struct kstr user = resp->results[u].user;
        char name[SASL_USER_MAX + 1];
        int mechs_seen = 0;
        j->errors[u] = 0;
        j->messages[u] = NULL;
        if (user.len <= 0 || user.len > SASL_USER_MAX) {
            j->errors[u] = KERR_UNACCEPTABLE_CREDENTIAL;
            j->messages[u] = "Username must be 1 to 255 characters";
            continue;
        }
        memcpy(name, user.ptr, (size_t)user.len);
        name[user.len] = 0;
        /* Check every operation on this user first: all of them or none. */
        for (int i = 0; i < req->deletions_count + req->upsertions_count && !j->errors[u]; i++) {
            bool del = i < req->deletions_count;
            struct kstr n = del ? req->deletions[i].name : req->upsertions[i - req->deletions_count].name;
            if (!kstr_is(n, user))
                continue;
            int8_t mech = del ? req->deletions[i].mechanism : req->upsertions[i - req->deletions_count].mechanism;
            if (mech_of(mech) == SASL_MECH_NONE) {
                j->errors[u] = KERR_UNSUPPORTED_SASL_MECHANISM;
                j->messages[u] = "Unknown SCRAM mechanism";
            } else if (mechs_seen & (1 << mech)) {
                j->errors[u] = KERR_DUPLICATE_RESOURCE;
                j->messages[u] = "A user credential cannot be altered twice in the same request";
            } else if (!del) {
                const struct alter_user_scram_credentials_request_upsertion *up =
                    &req->upsertions[i - req->deletions_count];
                if (up->iterations < SASL_MIN_ITERATIONS || up->iterations > SCRAM_MAX_ITERATIONS) {
                    j->errors[u] = KERR_UNACCEPTABLE_CREDENTIAL;
                    j->messages[u] = "Iterations must be between 4096 and 16384";
                } else if (up->salt.len <= 0 || up->salt.len > 64 || up->salted_password.len <= 0) {
                    j->errors[u] = KERR_UNACCEPTABLE_CREDENTIAL;
                    j->messages[u] = "Salt and salted password must not be empty (salt at most 64 bytes)";
                }
            }
            mechs_seen |= 1 << mech;
        }
        for (int i = 0; i < req->deletions_count + req->upsertions_count && !j->errors[u]; i++) {
            bool del = i < req->deletions_count;
            struct kstr n = del ? req->deletions[i].name : req->upsertions[i - req->deletions_count].name;
            if (!kstr_is(n, user))
                continue;
            if (del) {
                int rc = metastore_cred_delete(m, name, sasl_mech_name(mech_of(req->deletions[i].mechanism)));
                if (rc == 0) {
                    j->errors[u] = KERR_RESOURCE_NOT_FOUND;
                    j->messages[u] = "Attempt to delete a user credential that does not exist";
                } else if (rc < 0) {
                    j->errors[u] = KERR_KAFKA_STORAGE_ERROR;
                }
                continue;
            }
            const struct alter_user_scram_credentials_request_upsertion *up = &req->upsertions[i - req->deletions_count];
            struct sasl_credential c;
            if (sasl_cred_from_salted(&c, name, mech_of(up->mechanism), up->salted_password.ptr,
                                      (size_t)up->salted_password.len, up->salt.ptr, (size_t)up->salt.len,
                                      up->iterations) != 0) {
                j->errors[u] = KERR_UNACCEPTABLE_CREDENTIAL;
                j->messages[u] = "The salted password does not have the mechanism's digest length";
            } else if (metastore_cred_put(m, &c) != 0) {
                j->errors[u] = KERR_KAFKA_STORAGE_ERROR;
            }
            OPENSSL_cleanse(&c, sizeof(c));
        }
    }
}

static void alter_done(struct broker *b, struct job *job)
{
    struct alter_job *j = (struct alter_job *)job;
    if (b) {
        struct alter_user_scram_credentials_response *resp = j->rq->state;
        for (int u = 0; u < resp->results_count; u++) {
            resp->results[u].error_code = j->errors[u];
            resp->results[u].error_message = j->messages[u] ? kstr_c(j->messages[u]) : (struct kstr){NULL, -1};
        }
        request_respond(j->rq, resp);
    }
    free(j);
}

void handle_alter_user_scram_credentials(struct broker *b, struct request *rq)
{
    struct alter_user_scram_credentials_request *req = rq->body;
    int total = req->deletions_count + req->upsertions_count;
    struct alter_user_scram_credentials_response *resp = RQ_ALLOC(rq, struct alter_user_scram_credentials_response, 1);
    struct kstr *users = RQ_ALLOC(rq, struct kstr, total);
    resp->results_count = users_of(rq, req, users);
    resp->results = RQ_ALLOC(rq, struct alter_user_scram_credentials_response_result, resp->results_count);
    for (int u = 0; u < resp->results_count; u++)
        resp->results[u].user = users[u];
    rq->state = resp;
    struct alter_job *j = calloc(1, sizeof(*j));
    if (!j)
        abort();
    j->base.run = alter_run;
    j->base.done = alter_done;
    j->rq = rq;
    j->errors = RQ_ALLOC(rq, int16_t, resp->results_count);
    j->messages = RQ_ALLOC(rq, const char *, resp->results_count);
    jobs_submit(&b->store, &j->base);
}
