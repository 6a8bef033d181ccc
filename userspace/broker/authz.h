/* The worker's authorizer: the ACLs held in memory (the event loop never waits for the store)
 * and the decision for a request. The set is read at start-up, re-read from the store every
 * AUTHZ_REFRESH_MS (ACLs changed by other workers and agents apply within about a second), and
 * replaced at once on the worker whose CreateAcls / DeleteAcls changed it. */
#ifndef SLUICE_AUTHZ_H
#define SLUICE_AUTHZ_H

#include <stdbool.h>
#include <stdint.h>

#include "broker/acl.h"

#define AUTHZ_REFRESH_MS 1000

struct broker;
struct request;
struct metastore;

struct authz {
    struct acl_entry *acls;      /* malloc'd */
    int n;
    uint64_t gen_started;        /* listings handed out, in submission order */
    uint64_t gen_applied;        /* the newest listing in acls */
    bool refreshing;
    int64_t next_refresh_ms;
};

/* Start-up (before the loop serves): the first set, read with the worker's own handle. */
int authz_load(struct broker *b, struct metastore *m);
void authz_tick(struct broker *b, int64_t now_ms);
/* A fresh listing from a store job: gen from authz_next_gen when the job was submitted. Takes v. */
void authz_apply(struct broker *b, struct acl_entry *v, int n, uint64_t gen);
uint64_t authz_next_gen(struct broker *b);
void authz_free(struct broker *b);

bool authz_enabled(const struct broker *b);
/* May rq's principal do op on the resource (name: len bytes, not NUL-terminated)? A refusal is
 * counted in sluice_authorization_denied_total. */
bool authz_allow(struct broker *b, const struct request *rq, int8_t op, int8_t resource_type, const char *name,
                 int32_t len);
/* The same without counting a refusal (filtering a listing, or a first of two alternatives). */
bool authz_allow_quiet(struct broker *b, const struct request *rq, int8_t op, int8_t resource_type, const char *name,
                       int32_t len);
/* Idempotent producers (InitProducerId without a transactional id): IDEMPOTENT_WRITE on the
 * cluster, or WRITE on any topic (Kafka 3.x). */
bool authz_allow_idempotent(struct broker *b, const struct request *rq);
/* The cluster resource. */
bool authz_allow_cluster(struct broker *b, const struct request *rq, int8_t op);

#endif
