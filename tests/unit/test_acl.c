/* ACL semantics (userspace/broker/acl.c): validation, filters, the authorizer's decision. */
#include <stdio.h>
#include <string.h>

#include "broker/acl.h"
#include "broker/principal.h"
#include "check.h"
#include "protocol/errors.h"

static struct acl_entry acl(int8_t rt, const char *name, int8_t pat, const char *principal, const char *host,
                            int8_t op, int8_t perm)
{
    struct acl_entry e = {.resource_type = rt, .pattern_type = pat, .operation = op, .permission = perm};
    snprintf(e.resource_name, sizeof(e.resource_name), "%s", name);
    snprintf(e.principal, sizeof(e.principal), "%s", principal);
    snprintf(e.host, sizeof(e.host), "%s", host);
    return e;
}

static const struct acl_policy ON = {.enabled = true};

TEST(acl_validate_rejects_bad_acls)
{
    char why[300];
    struct acl_entry ok = acl(ACL_RES_TOPIC, "t", ACL_PAT_LITERAL, "User:a", "*", ACL_OP_READ, ACL_PERM_ALLOW);
    CHECK_EQ(acl_validate(&ok, why, sizeof(why)), 0);
    struct acl_entry bad = ok;
    bad.resource_type = ACL_RES_ANY;
    CHECK_EQ(acl_validate(&bad, why, sizeof(why)), KERR_INVALID_REQUEST);
    bad = ok;
    bad.pattern_type = ACL_PAT_MATCH;
    CHECK_EQ(acl_validate(&bad, why, sizeof(why)), KERR_INVALID_REQUEST);
    bad = ok;
    bad.operation = ACL_OP_ANY;
    CHECK_EQ(acl_validate(&bad, why, sizeof(why)), KERR_INVALID_REQUEST);
    bad = ok;
    bad.permission = ACL_PERM_ANY;
    CHECK_EQ(acl_validate(&bad, why, sizeof(why)), KERR_INVALID_REQUEST);
    bad = ok;
    strcpy(bad.principal, "alice");
    CHECK_EQ(acl_validate(&bad, why, sizeof(why)), KERR_INVALID_REQUEST);
    bad = ok;
    bad.resource_type = ACL_RES_CLUSTER;
    CHECK_EQ(acl_validate(&bad, why, sizeof(why)), KERR_INVALID_REQUEST);
    strcpy(bad.resource_name, "kafka-cluster");
    CHECK_EQ(acl_validate(&bad, why, sizeof(why)), 0);
    bad = ok;
    bad.operation = 99;
    CHECK_EQ(acl_validate(&bad, why, sizeof(why)), KERR_INVALID_REQUEST);
}

TEST(acl_filters_any_match_literal_prefixed)
{
    struct acl_entry lit = acl(ACL_RES_TOPIC, "ok-1", ACL_PAT_LITERAL, "User:a", "*", ACL_OP_READ, ACL_PERM_ALLOW);
    struct acl_entry pre = acl(ACL_RES_TOPIC, "ok-", ACL_PAT_PREFIXED, "User:a", "*", ACL_OP_WRITE, ACL_PERM_ALLOW);
    struct acl_entry star = acl(ACL_RES_TOPIC, "*", ACL_PAT_LITERAL, "User:b", "*", ACL_OP_ALL, ACL_PERM_DENY);
    struct acl_filter f = {ACL_RES_ANY, ACL_PAT_ANY, ACL_OP_ANY, ACL_PERM_ANY, NULL, NULL, NULL};
    CHECK(acl_filter_matches(&f, &lit) && acl_filter_matches(&f, &pre) && acl_filter_matches(&f, &star));
    f.resource_name = "ok-";
    CHECK(!acl_filter_matches(&f, &lit) && acl_filter_matches(&f, &pre)); /* ANY: the exact name */
    f.pattern_type = ACL_PAT_MATCH;
    f.resource_name = "ok-1";
    CHECK(acl_filter_matches(&f, &lit) && acl_filter_matches(&f, &pre) && acl_filter_matches(&f, &star));
    f.resource_name = "other";
    CHECK(!acl_filter_matches(&f, &lit) && !acl_filter_matches(&f, &pre) && acl_filter_matches(&f, &star));
    f.pattern_type = ACL_PAT_PREFIXED;
    f.resource_name = NULL;
    CHECK(!acl_filter_matches(&f, &lit) && acl_filter_matches(&f, &pre));
    f.pattern_type = ACL_PAT_LITERAL;
    CHECK(acl_filter_matches(&f, &lit) && !acl_filter_matches(&f, &pre));
    f.principal = "User:b";
    CHECK(!acl_filter_matches(&f, &lit) && acl_filter_matches(&f, &star));
    f.principal = NULL;
    f.permission = ACL_PERM_DENY;
    CHECK(!acl_filter_matches(&f, &lit) && acl_filter_matches(&f, &star));
    f.permission = ACL_PERM_ANY;
    f.operation = ACL_OP_READ;
    CHECK(acl_filter_matches(&f, &lit) && !acl_filter_matches(&f, &star));
    f.resource_type = ACL_RES_GROUP;
    CHECK(!acl_filter_matches(&f, &lit));
    char why[300];
    struct acl_filter bad = {0, ACL_PAT_ANY, ACL_OP_ANY, ACL_PERM_ANY, NULL, NULL, NULL};
    CHECK_EQ(acl_filter_validate(&bad, why, sizeof(why)), KERR_INVALID_REQUEST);
    bad.resource_type = ACL_RES_ANY;
    CHECK_EQ(acl_filter_validate(&bad, why, sizeof(why)), 0);
    bad.pattern_type = 9;
    CHECK_EQ(acl_filter_validate(&bad, why, sizeof(why)), KERR_INVALID_REQUEST);
}

TEST(acl_authorize_rules)
{
    struct acl_entry v[] = {
        acl(ACL_RES_TOPIC, "ok-", ACL_PAT_PREFIXED, "User:ANONYMOUS", "*", ACL_OP_WRITE, ACL_PERM_ALLOW),
        acl(ACL_RES_TOPIC, "ok-", ACL_PAT_PREFIXED, "User:ANONYMOUS", "*", ACL_OP_READ, ACL_PERM_ALLOW),
        acl(ACL_RES_TOPIC, "ok-denied", ACL_PAT_LITERAL, "User:*", "*", ACL_OP_READ, ACL_PERM_DENY),
        acl(ACL_RES_TOPIC, "cfg", ACL_PAT_LITERAL, "User:a", "10.0.0.1", ACL_OP_ALTER_CONFIGS, ACL_PERM_ALLOW),
        acl(ACL_RES_GROUP, "*", ACL_PAT_LITERAL, "User:a", "*", ACL_OP_ALL, ACL_PERM_ALLOW),
    };
    int n = 5;
    const char *anon = "User:ANONYMOUS";
    CHECK(acl_authorize(&ON, v, n, anon, "127.0.0.1", ACL_OP_WRITE, ACL_RES_TOPIC, "ok-1"));
    CHECK(acl_authorize(&ON, v, n, anon, "127.0.0.1", ACL_OP_DESCRIBE, ACL_RES_TOPIC, "ok-1")); /* implied */
    CHECK(!acl_authorize(&ON, v, n, anon, "127.0.0.1", ACL_OP_DELETE, ACL_RES_TOPIC, "ok-1"));
    CHECK(!acl_authorize(&ON, v, n, anon, "127.0.0.1", ACL_OP_WRITE, ACL_RES_TOPIC, "secret")); /* no ACL */
    CHECK(!acl_authorize(&ON, v, n, anon, "127.0.0.1", ACL_OP_READ, ACL_RES_TOPIC, "ok-denied")); /* DENY wins */
    CHECK(acl_authorize(&ON, v, n, anon, "127.0.0.1", ACL_OP_WRITE, ACL_RES_TOPIC, "ok-denied"));
    /* ALTER_CONFIGS implies DESCRIBE_CONFIGS, from its host only */
    CHECK(acl_authorize(&ON, v, n, "User:a", "10.0.0.1", ACL_OP_DESCRIBE_CONFIGS, ACL_RES_TOPIC, "cfg"));
    CHECK(!acl_authorize(&ON, v, n, "User:a", "10.0.0.2", ACL_OP_DESCRIBE_CONFIGS, ACL_RES_TOPIC, "cfg"));
    CHECK(!acl_authorize(&ON, v, n, "User:a", "10.0.0.1", ACL_OP_DESCRIBE, ACL_RES_TOPIC, "cfg"));
    /* ALL on every group */
    CHECK(acl_authorize(&ON, v, n, "User:a", "h", ACL_OP_READ, ACL_RES_GROUP, "g1"));
    CHECK(!acl_authorize(&ON, v, n, "User:b", "h", ACL_OP_READ, ACL_RES_GROUP, "g1"));
    /* no ACL on the resource: the policy decides; ACLs for others still deny */
    struct acl_policy open = {.enabled = true, .allow_if_no_acl = true};
    CHECK(acl_authorize(&open, v, n, anon, "h", ACL_OP_WRITE, ACL_RES_TOPIC, "secret"));
    CHECK(!acl_authorize(&open, v, n, "User:b", "h", ACL_OP_WRITE, ACL_RES_TOPIC, "ok-1"));
    /* super users and the authorizer off */
    struct acl_policy su = {.enabled = true, .super_users = "User:x; User:ANONYMOUS"};
    CHECK(acl_authorize(&su, v, n, anon, "h", ACL_OP_READ, ACL_RES_TOPIC, "ok-denied"));
    CHECK(!acl_authorize(&su, v, n, "User:ANONYMOUSX", "h", ACL_OP_READ, ACL_RES_TOPIC, "ok-1"));
    /* idempotent producers: WRITE on some topic */
    CHECK(acl_allows_any(&ON, v, n, anon, "h", ACL_OP_WRITE, ACL_RES_TOPIC));
    CHECK(!acl_allows_any(&ON, v, n, "User:b", "h", ACL_OP_WRITE, ACL_RES_TOPIC));
    struct acl_policy off = {.enabled = false};
    CHECK(acl_authorize(&off, v, n, anon, "h", ACL_OP_READ, ACL_RES_TOPIC, "ok-denied"));
}

TEST(acl_principal_host_from_peer)
{
    char h[64];
    CHECK(!strcmp(principal_host_of_peer("127.0.0.1:5555", h, sizeof(h)), "127.0.0.1"));
    CHECK(!strcmp(principal_host_of_peer("[::1]:5555", h, sizeof(h)), "::1"));
    CHECK(!strcmp(principal_host_of_peer("[::ffff:10.0.0.7]:80", h, sizeof(h)), "10.0.0.7"));
    CHECK(!strcmp(principal_host_of_peer("[fe80::1]:80", h, sizeof(h)), "fe80::1"));
    CHECK(!strcmp(principal_host_of_peer("", h, sizeof(h)), ""));
}
