/* SASL per connection (KIP-43, KIP-152, KIP-368). The client picks a mechanism with
 * SaslHandshake v1, then sends its tokens in SaslAuthenticate requests. Credentials are looked up
 * in the metadata store by a job (the loop never waits on the store); PLAIN's password hash is
 * derived on that job's thread too. A failed authentication is answered with
 * SASL_AUTHENTICATION_FAILED and the connection is closed on its next request. */
#include "broker/sasl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "broker/broker_internal.h"
#include "broker/sasl_scram.h"
#include "server/conn.h"
#include "util/clock.h"
#include "util/log.h"

#define SASL_PAYLOAD_MAX (64 * 1024) /* a larger SaslAuthenticate token closes the connection */

#define KERR_UNSUPPORTED_SASL_MECHANISM 33
#define KERR_ILLEGAL_SASL_STATE 34
#define KERR_UNSUPPORTED_VERSION 35
#define KERR_SASL_AUTHENTICATION_FAILED 58

#define BAD_CREDENTIALS "Authentication failed: Invalid username or password"

struct sasl_conn {
    enum sasl_mech mech;           /* the exchange under way (chosen by SaslHandshake), or NONE */
    int step;                      /* SCRAM: 0 = client-first expected, 1 = client-final expected */
    bool busy;                     /* a credential look-up is running */
    bool failed;                   /* the next request closes the connection */
    char principal[6 + SASL_USER_MAX]; /* "User:NAME" once authenticated, else "" */
    int64_t expires_ms;            /* mono_ms when the session ends (re-authentication); 0 = never */
    struct scram_state scram;
    struct sasl_credential cred;   /* SCRAM: the user's, between the two messages */
};

static struct sasl_conn *state_of(struct conn *c)
{
    if (!c->sasl) {
        c->sasl = calloc(1, sizeof(struct sasl_conn));
        if (!c->sasl)
            abort();
    }
    return c->sasl;
}

void sasl_conn_closed(struct conn *c)
{
    if (c->sasl) {
        OPENSSL_cleanse(c->sasl, sizeof(struct sasl_conn));
        free(c->sasl);
        c->sasl = NULL;
    }
}

const char *sasl_principal(const struct request *rq)
{
    const struct sasl_conn *s = rq->conn->sasl;
    return s && s->principal[0] ? s->principal : NULL;
}

static bool mech_enabled(const struct config *cfg, enum sasl_mech m)
{
    const char *p = cfg->sasl_mechanisms;
    while (*p) {
        while (*p == ',' || *p == ' ')
            p++;
        size_t n = strcspn(p, ", ");
        if (n && sasl_mech_parse(p, n) == m)
            return true;
        p += n;
    }
    return false;
}

bool sasl_gate(struct broker *b, struct request *rq)
{
    struct sasl_conn *s = rq->conn->sasl;
    int16_t key = rq->hdr.api_key;
    char why[320];
    if (s && s->failed) {
        request_close_conn(rq, "request after a failed SASL authentication");
        return false;
    }
    if (key == KAPI_API_VERSIONS || key == KAPI_SASL_HANDSHAKE || key == KAPI_SASL_AUTHENTICATE)
        return true;
    if (s && s->mech != SASL_MECH_NONE) {
        snprintf(why, sizeof(why), "%s during a SASL exchange", rq->api->name);
        request_close_conn(rq, why);
        return false;
    }
    if (s && s->principal[0] && s->expires_ms && mono_ms() >= s->expires_ms) {
        snprintf(why, sizeof(why), "SASL session of %.200s expired without re-authentication (sasl-session-lifetime)",
                 s->principal);
        request_close_conn(rq, why);
        return false;
    }
    if (b->cfg->require_sasl && !(s && s->principal[0])) {
        snprintf(why, sizeof(why), "%s before SASL authentication (require-sasl-authentication is on)",
                 rq->api->name);
        request_close_conn(rq, why);
        return false;
    }
    return true;
}

void handle_sasl_handshake(struct broker *b, struct request *rq)
{
    struct sasl_handshake_request *req = rq->body;
    struct sasl_handshake_response *resp = RQ_ALLOC(rq, struct sasl_handshake_response, 1);
    resp->mechanisms = RQ_ALLOC(rq, struct kstr, 3);
    for (int m = SASL_MECH_PLAIN; m <= SASL_MECH_SCRAM_SHA_512; m++)
        if (mech_enabled(b->cfg, (enum sasl_mech)m))
            resp->mechanisms[resp->mechanisms_count++] = kstr_c(sasl_mech_name((enum sasl_mech)m));
    struct sasl_conn *s = state_of(rq->conn);
    enum sasl_mech m = req->mechanism.ptr ? sasl_mech_parse(req->mechanism.ptr, (size_t)req->mechanism.len)
                                          : SASL_MECH_NONE;
    if (rq->hdr.api_version == 0) {
        /* v0 sends raw tokens without Kafka framing: not served; clients use v1 when advertised. */
        log_info("SaslHandshake v0 refused: raw SASL framing is not supported (%s)", request_who(rq));
        resp->error_code = KERR_UNSUPPORTED_VERSION;
        s->failed = true;
    } else if (s->busy || s->mech != SASL_MECH_NONE) {
        resp->error_code = KERR_ILLEGAL_SASL_STATE;
        s->failed = true;
    } else if (m == SASL_MECH_NONE || !mech_enabled(b->cfg, m)) {
        log_info("SASL mechanism '%.*s' is not enabled (%s)", req->mechanism.len > 0 ? (int)req->mechanism.len : 0,
                 req->mechanism.ptr ? req->mechanism.ptr : "", request_who(rq));
        resp->error_code = KERR_UNSUPPORTED_SASL_MECHANISM;
    } else {
        s->mech = m;
        s->step = 0;
    }
    request_respond(rq, resp);
}

static void answer(struct request *rq, int16_t error, const char *message, const void *bytes, size_t len,
                   int64_t lifetime_ms)
{
    struct sasl_authenticate_response *resp = RQ_ALLOC(rq, struct sasl_authenticate_response, 1);
    resp->error_code = error;
    resp->error_message = message ? kstr_c(message) : (struct kstr){NULL, -1};
    uint8_t *copy = arena_alloc(&rq->arena, len ? len : 1);
    if (len)
        memcpy(copy, bytes, len);
    resp->auth_bytes = (struct kbytes){copy, (int32_t)len};
    resp->session_lifetime_ms = lifetime_ms;
    request_respond(rq, resp);
}

static void fail(struct request *rq, struct sasl_conn *s, const char *message)
{
    log_info("SASL authentication failed: %s (%s)", message, request_who(rq));
    s->mech = SASL_MECH_NONE;
    s->failed = true; /* like Kafka: the connection is closed after this answer */
    answer(rq, KERR_SASL_AUTHENTICATION_FAILED, message, NULL, 0, 0);
}

static void succeed(struct broker *b, struct request *rq, struct sasl_conn *s, const char *user, const void *bytes,
                    size_t len)
{
    char principal[sizeof(s->principal)];
    snprintf(principal, sizeof(principal), "User:%s", user);
    if (s->principal[0] && strcmp(principal, s->principal) != 0) {
        fail(rq, s, "Re-authentication must keep the same principal");
        return;
    }
    if (!s->principal[0])
        log_info("SASL %s authenticated %s (%s)", sasl_mech_name(s->mech), principal, request_who(rq));
    memcpy(s->principal, principal, sizeof(principal));
    s->mech = SASL_MECH_NONE;
    s->step = 0;
    int64_t lifetime = b->cfg->sasl_session_lifetime_ms;
    s->expires_ms = lifetime > 0 ? mono_ms() + lifetime : 0;
    answer(rq, 0, NULL, bytes, len, lifetime);
}

/* ---- the credential look-up ---- */

struct cred_job {
    struct job base;
    struct request *rq;
    enum sasl_mech mech;
    char user[SASL_USER_MAX + 1];
    uint8_t *password;             /* PLAIN: verified on the store thread (PBKDF2 is slow on purpose) */
    size_t password_len;
    int rc;                        /* the look-up's: 0, or -1 store unreachable */
    bool found, verified;
    struct sasl_credential cred;
};

static void cred_run(struct job *job, struct metastore *m)
{
    struct cred_job *j = (struct cred_job *)job;
    struct sasl_credential *v = NULL;
    int n = 0;
    j->rc = metastore_cred_list(m, j->user, sasl_mech_name(j->mech), &v, &n);
    if (j->rc == 0 && n == 1) {
        j->found = true;
        j->cred = v[0];
        if (j->mech == SASL_MECH_PLAIN)
            j->verified = sasl_plain_verify(&j->cred, j->password, j->password_len);
    }
    if (v)
        OPENSSL_cleanse(v, sizeof(*v) * (size_t)n);
    free(v);
}

static void cred_job_free(struct cred_job *j)
{
    if (j->password) {
        OPENSSL_cleanse(j->password, j->password_len);
        free(j->password);
    }
    OPENSSL_cleanse(&j->cred, sizeof(j->cred));
    free(j);
}

static void cred_done(struct broker *b, struct job *job)
{
    struct cred_job *j = (struct cred_job *)job;
    if (!b) {
        cred_job_free(j);
        return;
    }
    struct request *rq = j->rq;
    struct sasl_conn *s = rq->conn->sasl;
    if (!s || !request_conn_alive(rq)) { /* the client left meanwhile */
        request_finish_silent(rq);
        cred_job_free(j);
        return;
    }
    s->busy = false;
    if (j->rc != 0) {
        fail(rq, s, "Authentication failed: the credential store is unavailable");
    } else if (j->mech == SASL_MECH_PLAIN) {
        if (j->found && j->verified)
            succeed(b, rq, s, j->user, NULL, 0);
        else
            fail(rq, s, BAD_CREDENTIALS);
    } else if (!j->found) {
        fail(rq, s, BAD_CREDENTIALS);
    } else {
        s->cred = j->cred;
        if (scram_server_first(&s->scram, &s->cred) != 0) {
            fail(rq, s, "Authentication failed: stored SCRAM credential is unusable");
        } else {
            s->step = 1;
            answer(rq, 0, NULL, s->scram.server_first, strlen(s->scram.server_first), 0);
        }
    }
    cred_job_free(j);
}

static void look_up(struct broker *b, struct request *rq, struct sasl_conn *s, const char *user,
                    const uint8_t *password, size_t password_len)
{
    struct cred_job *j = calloc(1, sizeof(*j));
    if (!j)
        abort();
    j->base.run = cred_run;
    j->base.done = cred_done;
    j->rq = rq;
    j->mech = s->mech;
    snprintf(j->user, sizeof(j->user), "%s", user);
    if (password) {
        j->password = malloc(password_len ? password_len : 1);
        if (!j->password)
            abort();
        memcpy(j->password, password, password_len);
        j->password_len = password_len;
    }
    s->busy = true;
    jobs_submit(&b->store, &j->base);
}

void handle_sasl_authenticate(struct broker *b, struct request *rq)
{
    struct sasl_authenticate_request *req = rq->body;
    struct sasl_conn *s = state_of(rq->conn);
    if (s->busy || s->mech == SASL_MECH_NONE) {
        s->failed = true;
        answer(rq, KERR_ILLEGAL_SASL_STATE, "SaslAuthenticate without a SaslHandshake choosing a mechanism", NULL,
               0, 0);
        return;
    }
    size_t len = req->auth_bytes.len > 0 ? (size_t)req->auth_bytes.len : 0;
    if (len > SASL_PAYLOAD_MAX) {
        char why[96];
        snprintf(why, sizeof(why), "SASL token of %zu bytes exceeds %d", len, SASL_PAYLOAD_MAX);
        request_close_conn(rq, why);
        return;
    }
    const uint8_t *p = req->auth_bytes.ptr;
    char err[192];
    if (s->mech == SASL_MECH_PLAIN) {
        char user[SASL_USER_MAX + 1];
        const uint8_t *pw;
        size_t pwlen;
        if (sasl_plain_parse(p, len, user, sizeof(user), &pw, &pwlen) != 0) {
            fail(rq, s, "Authentication failed: malformed PLAIN message");
            return;
        }
        look_up(b, rq, s, user, pw, pwlen);
    } else if (s->step == 0) {
        if (scram_client_first(&s->scram, s->mech, p, len, err, sizeof(err)) != 0) {
            fail(rq, s, err);
            return;
        }
        look_up(b, rq, s, s->scram.user, NULL, 0);
    } else {
        char final[256];
        if (scram_client_final(&s->scram, &s->cred, p, len, final, sizeof(final), err, sizeof(err)) != 0) {
            fail(rq, s, err);
            return;
        }
        succeed(b, rq, s, s->scram.user, final, strlen(final));
    }
}
