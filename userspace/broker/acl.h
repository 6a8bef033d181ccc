/* Kafka ACLs: the codes, validation of created ACLs and filters, filter matching (DescribeAcls,
 * DeleteAcls) and the authorizer's decision, as Kafka's StandardAuthorizer makes it. Pure
 * functions of their arguments (unit-tested in tests/unit/test_acl.c). */
#ifndef SLUICE_ACL_H
#define SLUICE_ACL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/metastore.h"

/* Kafka's codes (org.apache.kafka.common.resource / acl). */
enum acl_resource_type {
    ACL_RES_ANY = 1,
    ACL_RES_TOPIC = 2,
    ACL_RES_GROUP = 3,
    ACL_RES_CLUSTER = 4,
    ACL_RES_TRANSACTIONAL_ID = 5,
    ACL_RES_DELEGATION_TOKEN = 6,
    ACL_RES_USER = 7,
};
#define ACL_RES_SLOTS 8
enum acl_pattern_type { ACL_PAT_ANY = 1, ACL_PAT_MATCH = 2, ACL_PAT_LITERAL = 3, ACL_PAT_PREFIXED = 4 };
enum acl_operation {
    ACL_OP_ANY = 1,
    ACL_OP_ALL = 2,
    ACL_OP_READ = 3,
    ACL_OP_WRITE = 4,
    ACL_OP_CREATE = 5,
    ACL_OP_DELETE = 6,
    ACL_OP_ALTER = 7,
    ACL_OP_DESCRIBE = 8,
    ACL_OP_CLUSTER_ACTION = 9,
    ACL_OP_DESCRIBE_CONFIGS = 10,
    ACL_OP_ALTER_CONFIGS = 11,
    ACL_OP_IDEMPOTENT_WRITE = 12,
    ACL_OP_CREATE_TOKENS = 13,
    ACL_OP_DESCRIBE_TOKENS = 14,
};
#define ACL_OP_SLOTS 15
enum acl_permission { ACL_PERM_ANY = 1, ACL_PERM_DENY = 2, ACL_PERM_ALLOW = 3 };

/* The one cluster resource's name. */
#define ACL_CLUSTER_NAME "kafka-cluster"
#define ACL_WILDCARD "*"

/* A DescribeAcls / DeleteAcls filter; NULL strings match anything. */
struct acl_filter {
    int8_t resource_type;
    int8_t pattern_type;
    int8_t operation;
    int8_t permission;
    const char *resource_name;
    const char *principal;
    const char *host;
};

/* What the authorizer decides with, besides the ACLs. */
struct acl_policy {
    bool enabled;
    bool allow_if_no_acl;
    const char *super_users; /* "User:a;User:b" */
};

/* Names for metrics labels and logs ("READ", "TOPIC"); "UNKNOWN" outside the codes. */
const char *acl_operation_name(int op);
const char *acl_resource_type_name(int rt);

/* An ACL CreateAcls may store: 0, or KERR_INVALID_REQUEST with why filled. */
int acl_validate(const struct acl_entry *e, char *why, size_t whylen);
/* A filter DescribeAcls / DeleteAcls may use: 0, or KERR_INVALID_REQUEST with why filled. */
int acl_filter_validate(const struct acl_filter *f, char *why, size_t whylen);
bool acl_filter_matches(const struct acl_filter *f, const struct acl_entry *e);

/* Does ACL e apply to this resource (type, and name by its pattern)? */
bool acl_applies_to(const struct acl_entry *e, int8_t resource_type, const char *name);
/* Is principal in the policy's super-user list? */
bool acl_is_super_user(const struct acl_policy *p, const char *principal);
/* May principal, connecting from host, do op on the resource, given the ACLs v[0..n)? */
bool acl_authorize(const struct acl_policy *p, const struct acl_entry *v, int n, const char *principal,
                   const char *host, int8_t op, int8_t resource_type, const char *name);

/* Could principal do op on some resource of this type (Kafka's authorizeByResourceType, without
 * the DENY patterns cancelling ALLOW ones)? For idempotent producers: WRITE on any topic. */
bool acl_allows_any(const struct acl_policy *p, const struct acl_entry *v, int n, const char *principal,
                    const char *host, int8_t op, int8_t resource_type);

#endif
