/* The worker's ACL set and authorization decisions (authz.h). */
#include <stdlib.h>
#include <string.h>

#include "broker/authz.h"
#include "broker/broker_internal.h"
#include "broker/principal.h"
#include "metrics/metrics.h"
#include "util/log.h"

static struct acl_policy policy_of(const struct broker *b)
{
    return (struct acl_policy){.enabled = b->cfg->authorizer_enabled,
                               .allow_if_no_acl = b->cfg->allow_if_no_acl,
                               .super_users = b->cfg->super_users};
}

bool authz_enabled(const struct broker *b)
{
    return b->cfg->authorizer_enabled;
}

uint64_t authz_next_gen(struct broker *b)
{
    return ++b->authz.gen_started;
}

void authz_apply(struct broker *b, struct acl_entry *v, int n, uint64_t gen)
{
    if (gen <= b->authz.gen_applied) { /* a listing older than the one held */
        free(v);
        return;
    }
    free(b->authz.acls);
    b->authz.acls = v;
    b->authz.n = n;
    b->authz.gen_applied = gen;
}

int authz_load(struct broker *b, struct metastore *m)
{
    struct acl_entry *v;
    int n;
    if (metastore_acl_list(m, &v, &n) != 0)
        return -1;
    authz_apply(b, v, n, authz_next_gen(b));
    return 0;
}

struct refresh_job {
    struct job base;
    uint64_t gen;
    int rc;
    struct acl_entry *v;
    int n;
};

static void refresh_run(struct job *job, struct metastore *m)
{
    struct refresh_job *j = (struct refresh_job *)job;
    j->rc = metastore_acl_list(m, &j->v, &j->n);
}

static void refresh_done(struct broker *b, struct job *job)
{
    struct refresh_job *j = (struct refresh_job *)job;
    if (b) {
        b->authz.refreshing = false;
        if (j->rc == 0) {
            authz_apply(b, j->v, j->n, j->gen);
            j->v = NULL;
        } else {
            log_warn("worker %d: cannot list ACLs; keeping the previous set", b->worker_id);
        }
    }
    if (j->rc == 0)
        free(j->v);
    free(j);
}

void authz_tick(struct broker *b, int64_t now_ms)
{
    /* Only an enabled authorizer needs the set; the ACL APIs read the store themselves. */
    if (!authz_enabled(b) || b->authz.refreshing || now_ms < b->authz.next_refresh_ms || b->draining)
        return;
    b->authz.next_refresh_ms = now_ms + AUTHZ_REFRESH_MS;
    struct refresh_job *j = calloc(1, sizeof(*j));
    if (!j)
        abort();
    j->base.run = refresh_run;
    j->base.done = refresh_done;
    j->gen = authz_next_gen(b);
    b->authz.refreshing = true;
    jobs_submit(&b->store, &j->base);
}

void authz_free(struct broker *b)
{
    free(b->authz.acls);
    b->authz.acls = NULL;
    b->authz.n = 0;
}

static bool decide(struct broker *b, const struct request *rq, int8_t op, int8_t resource_type, const char *name,
                   int32_t len, bool count)
{
    if (!authz_enabled(b))
        return true;
    char small[256];
    size_t n = len > 0 ? (size_t)len : 0;
    char *s = n < sizeof(small) ? small : malloc(n + 1);
    if (!s)
        abort();
    memcpy(s, n ? name : "", n);
    s[n] = 0;
    char host[64];
    struct acl_policy p = policy_of(b);
    bool ok = acl_authorize(&p, b->authz.acls, b->authz.n, principal_of(rq), principal_host(rq, host, sizeof(host)),
                            op, resource_type, s);
    if (!ok && count) {
        metrics_authz_denied(op, resource_type);
        log_debug("denied %s on %s %s to %s from %s", acl_operation_name(op), acl_resource_type_name(resource_type), s,
                  principal_of(rq), host);
    }
    if (s != small)
        free(s);
    return ok;
}

bool authz_allow(struct broker *b, const struct request *rq, int8_t op, int8_t resource_type, const char *name,
                 int32_t len)
{
    return decide(b, rq, op, resource_type, name, len, true);
}

bool authz_allow_quiet(struct broker *b, const struct request *rq, int8_t op, int8_t resource_type, const char *name,
                       int32_t len)
{
    return decide(b, rq, op, resource_type, name, len, false);
}

bool authz_allow_cluster(struct broker *b, const struct request *rq, int8_t op)
{
    return authz_allow(b, rq, op, ACL_RES_CLUSTER, ACL_CLUSTER_NAME, (int32_t)strlen(ACL_CLUSTER_NAME));
}

bool authz_allow_idempotent(struct broker *b, const struct request *rq)
{
    if (!authz_enabled(b))
        return true;
    char host[64];
    struct acl_policy p = policy_of(b);
    principal_host(rq, host, sizeof(host));
    if (acl_authorize(&p, b->authz.acls, b->authz.n, principal_of(rq), host, ACL_OP_IDEMPOTENT_WRITE, ACL_RES_CLUSTER,
                      ACL_CLUSTER_NAME) ||
        acl_allows_any(&p, b->authz.acls, b->authz.n, principal_of(rq), host, ACL_OP_WRITE, ACL_RES_TOPIC))
        return true;
    metrics_authz_denied(ACL_OP_IDEMPOTENT_WRITE, ACL_RES_CLUSTER);
    return false;
}
