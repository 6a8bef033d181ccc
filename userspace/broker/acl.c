/* Kafka ACL semantics (see acl.h): validation, filters, and the authorizer's decision. */
#include <stdio.h>
#include <string.h>

#include "broker/acl.h"
#include "protocol/errors.h"

static const char *const op_names[ACL_OP_SLOTS] = {
    "UNKNOWN",          "ANY",           "ALL",          "READ",          "WRITE",
    "CREATE",           "DELETE",        "ALTER",        "DESCRIBE",      "CLUSTER_ACTION",
    "DESCRIBE_CONFIGS", "ALTER_CONFIGS", "IDEMPOTENT_WRITE", "CREATE_TOKENS", "DESCRIBE_TOKENS",
};
static const char *const res_names[ACL_RES_SLOTS] = {
    "UNKNOWN", "ANY", "TOPIC", "GROUP", "CLUSTER", "TRANSACTIONAL_ID", "DELEGATION_TOKEN", "USER",
};

const char *acl_operation_name(int op)
{
    return op > 0 && op < ACL_OP_SLOTS ? op_names[op] : "UNKNOWN";
}

const char *acl_resource_type_name(int rt)
{
    return rt > 0 && rt < ACL_RES_SLOTS ? res_names[rt] : "UNKNOWN";
}

/* "Type:Name" with both parts non-empty (Kafka's KafkaPrincipal.fromString). */
static bool principal_valid(const char *p)
{
    const char *colon = strchr(p, ':');
    return colon && colon != p && colon[1] != 0;
}

#define INVALID(...)                                                                                                 \
    do {                                                                                                             \
        snprintf(why, whylen, __VA_ARGS__);                                                                          \
        return KERR_INVALID_REQUEST;                                                                                 \
    } while (0)

int acl_validate(const struct acl_entry *e, char *why, size_t whylen)
{
    /* Resource types this agent has: USER and DELEGATION_TOKEN resources do not exist here. */
    if (e->resource_type != ACL_RES_TOPIC && e->resource_type != ACL_RES_GROUP &&
        e->resource_type != ACL_RES_CLUSTER && e->resource_type != ACL_RES_TRANSACTIONAL_ID)
        INVALID("Invalid resource type %d", e->resource_type);
    if (e->pattern_type != ACL_PAT_LITERAL && e->pattern_type != ACL_PAT_PREFIXED)
        INVALID("Invalid pattern type %d", e->pattern_type);
    if (e->operation < ACL_OP_ALL || e->operation >= ACL_OP_SLOTS)
        INVALID("Invalid operation %d", e->operation);
    if (e->permission != ACL_PERM_DENY && e->permission != ACL_PERM_ALLOW)
        INVALID("Invalid permission type %d", e->permission);
    if (!e->resource_name[0])
        INVALID("Resource name must not be empty");
    if (e->resource_type == ACL_RES_CLUSTER && strcmp(e->resource_name, ACL_CLUSTER_NAME) != 0)
        INVALID("The only valid name for the CLUSTER resource is " ACL_CLUSTER_NAME);
    if (!principal_valid(e->principal))
        INVALID("Invalid principal %s (expected Type:Name, e.g. User:alice)", e->principal);
    if (!e->host[0])
        INVALID("Host must not be empty (use * for any host)");
    return 0;
}

int acl_filter_validate(const struct acl_filter *f, char *why, size_t whylen)
{
    if (f->resource_type < ACL_RES_ANY || f->resource_type >= ACL_RES_SLOTS)
        INVALID("Invalid resource type filter %d", f->resource_type);
    if (f->pattern_type < ACL_PAT_ANY || f->pattern_type > ACL_PAT_PREFIXED)
        INVALID("Invalid pattern type filter %d", f->pattern_type);
    if (f->operation < ACL_OP_ANY || f->operation >= ACL_OP_SLOTS)
        INVALID("Invalid operation filter %d", f->operation);
    if (f->permission < ACL_PERM_ANY || f->permission > ACL_PERM_ALLOW)
        INVALID("Invalid permission type filter %d", f->permission);
    return 0;
}

static bool has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Does the pattern (type, name) of ACL e cover resource name? */
static bool pattern_covers(const struct acl_entry *e, const char *name)
{
    if (e->pattern_type == ACL_PAT_LITERAL)
        return strcmp(e->resource_name, ACL_WILDCARD) == 0 || strcmp(e->resource_name, name) == 0;
    if (e->pattern_type == ACL_PAT_PREFIXED)
        return has_prefix(name, e->resource_name);
    return false;
}

/* Kafka's ResourcePatternFilter.matches: ANY matches every pattern type (and the name exactly),
 * MATCH every ACL that applies to the named resource, LITERAL / PREFIXED that type only. */
bool acl_filter_matches(const struct acl_filter *f, const struct acl_entry *e)
{
    if (f->resource_type != ACL_RES_ANY && f->resource_type != e->resource_type)
        return false;
    switch (f->pattern_type) {
    case ACL_PAT_ANY:
        if (f->resource_name && strcmp(f->resource_name, e->resource_name) != 0)
            return false;
        break;
    case ACL_PAT_MATCH:
        if (f->resource_name && !pattern_covers(e, f->resource_name))
            return false;
        break;
    default:
        if (f->pattern_type != e->pattern_type ||
            (f->resource_name && strcmp(f->resource_name, e->resource_name) != 0))
            return false;
    }
    if (f->principal && strcmp(f->principal, e->principal) != 0)
        return false;
    if (f->host && strcmp(f->host, e->host) != 0)
        return false;
    if (f->operation != ACL_OP_ANY && f->operation != e->operation)
        return false;
    return f->permission == ACL_PERM_ANY || f->permission == e->permission;
}

bool acl_applies_to(const struct acl_entry *e, int8_t resource_type, const char *name)
{
    return e->resource_type == resource_type && pattern_covers(e, name);
}

bool acl_is_super_user(const struct acl_policy *p, const char *principal)
{
    size_t len = strlen(principal);
    for (const char *s = p->super_users ? p->super_users : ""; *s;) {
        while (*s == ' ' || *s == ';')
            s++;
        const char *end = s;
        while (*end && *end != ';')
            end++;
        const char *last = end;
        while (last > s && last[-1] == ' ')
            last--;
        if ((size_t)(last - s) == len && len > 0 && strncmp(s, principal, len) == 0)
            return true;
        s = end;
    }
    return false;
}

/* Does an ACL for operation acl_op grant (ALLOW) operation op? DESCRIBE is implied by READ,
 * WRITE, DELETE and ALTER; DESCRIBE_CONFIGS by ALTER_CONFIGS (Kafka's implication rules). */
static bool allow_covers(int8_t acl_op, int8_t op)
{
    if (acl_op == ACL_OP_ALL || acl_op == op)
        return true;
    if (op == ACL_OP_DESCRIBE)
        return acl_op == ACL_OP_READ || acl_op == ACL_OP_WRITE || acl_op == ACL_OP_DELETE || acl_op == ACL_OP_ALTER;
    if (op == ACL_OP_DESCRIBE_CONFIGS)
        return acl_op == ACL_OP_ALTER_CONFIGS;
    return false;
}

bool acl_authorize(const struct acl_policy *p, const struct acl_entry *v, int n, const char *principal,
                   const char *host, int8_t op, int8_t resource_type, const char *name)
{
    if (!p->enabled || acl_is_super_user(p, principal))
        return true;
    bool any_for_resource = false, allowed = false;
    for (int i = 0; i < n; i++) {
        const struct acl_entry *e = &v[i];
        if (!acl_applies_to(e, resource_type, name))
            continue;
        any_for_resource = true;
        if (strcmp(e->principal, principal) != 0 && strcmp(e->principal, "User:*") != 0)
            continue;
        if (strcmp(e->host, ACL_WILDCARD) != 0 && strcmp(e->host, host) != 0)
            continue;
        if (e->permission == ACL_PERM_DENY && (e->operation == ACL_OP_ALL || e->operation == op))
            return false; /* DENY wins over any ALLOW */
        if (e->permission == ACL_PERM_ALLOW && allow_covers(e->operation, op))
            allowed = true;
    }
    return allowed || (!any_for_resource && p->allow_if_no_acl);
}

bool acl_allows_any(const struct acl_policy *p, const struct acl_entry *v, int n, const char *principal,
                    const char *host, int8_t op, int8_t resource_type)
{
    if (!p->enabled || acl_is_super_user(p, principal))
        return true;
    for (int i = 0; i < n; i++) {
        const struct acl_entry *e = &v[i];
        if (e->resource_type == resource_type && e->permission == ACL_PERM_ALLOW && allow_covers(e->operation, op) &&
            (strcmp(e->principal, principal) == 0 || strcmp(e->principal, "User:*") == 0) &&
            (strcmp(e->host, ACL_WILDCARD) == 0 || strcmp(e->host, host) == 0))
            return true;
    }
    return false;
}
