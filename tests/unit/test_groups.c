/* The consumer-group state machine (broker/group_state.c): Kafka's classic protocol as pure logic. */
#include <stdlib.h>
#include <string.h>

#include "broker/broker_internal.h"
#include "broker/group_state.h"
#include "check.h"
#include "protocol/errors.h"
#include "storage/metastore.h"
#include "test_util.h"

static const struct gproto RANGE[] = {{"range", (uint8_t *)"meta-a", 6}};
static const struct gproto OTHER[] = {{"sticky", (uint8_t *)"x", 1}};

static struct join_args args(const char *member, const char *new_id, const char *instance)
{
    return (struct join_args){
        .member_id = member,
        .instance_id = instance,
        .new_member_id = new_id,
        .client_id = "c",
        .client_host = "h",
        .protocol_type = "consumer",
        .session_timeout_ms = 10000,
        .rebalance_timeout_ms = 20000,
        .protos = RANGE,
        .nprotos = 1,
        .require_known_id = true,
    };
}

/* A round trip through the store's serialized form, as every request makes. */
static void roundtrip(struct group *g, int *failed_)
{
    size_t len;
    uint8_t *p = group_encode(g, &len);
    struct group copy;
    CHECK_EQ(group_decode(&copy, p, len), 0);
    free(p);
    group_free(g);
    *g = copy;
}

TEST(group_join_needs_member_id_then_forms_generation_after_initial_delay)
{
    struct group g;
    group_init(&g);
    struct join_result r;
    bool changed = false;
    struct join_args a = args("", "m1", NULL);
    CHECK_EQ(group_join(&g, &a, 1000, &r, &changed), GROUP_ANSWER);
    CHECK_EQ(r.error, KERR_MEMBER_ID_REQUIRED);
    CHECK(strcmp(r.member_id, "m1") == 0);
    roundtrip(&g, failed_);
    a = args("m1", "unused", NULL);
    CHECK_EQ(group_join(&g, &a, 1100, &r, &changed), GROUP_WAIT);
    CHECK_EQ(g.phase, GROUP_PREPARING);
    int err;
    CHECK_EQ(group_join_check(&g, "m1", r.park_generation, &err), GROUP_WAIT);
    CHECK(!group_tick(&g, 2000)); /* the initial delay holds the first generation back */
    CHECK(group_tick(&g, 1100 + GROUP_INITIAL_DELAY_MS));
    CHECK_EQ(g.phase, GROUP_COMPLETING);
    CHECK_EQ(g.generation, 1);
    CHECK(strcmp(g.leader, "m1") == 0 && strcmp(g.protocol_name, "range") == 0);
    CHECK_EQ(group_join_check(&g, "m1", r.park_generation, &err), GROUP_ANSWER);
    CHECK_EQ(err, 0);
    group_free(&g);
}

/* Two members in a settled group: the follower waits for the leader's SyncGroup and gets exactly
 * the bytes the leader assigned it. */
static void two_member_group(struct group *g, int *failed_)
{
    group_init(g);
    struct join_result r1, r2;
    bool changed;
    struct join_args a = args("", "m1", NULL);
    a.require_known_id = false;
    CHECK_EQ(group_join(g, &a, 0, &r1, &changed), GROUP_WAIT);
    a = args("", "m2", NULL);
    a.require_known_id = false;
    CHECK_EQ(group_join(g, &a, 10, &r2, &changed), GROUP_WAIT);
    CHECK_EQ(g->nmembers, 2);
    group_tick(g, 10 + GROUP_INITIAL_DELAY_MS);
    CHECK_EQ(g->phase, GROUP_COMPLETING);
    int err;
    CHECK_EQ(group_sync(g, "m2", NULL, 1, NULL, NULL, NULL, 0, 4000, &err, &changed), GROUP_WAIT);
    struct sync_assignment as[] = {{"m1", (const uint8_t *)"p0", 2}, {"m2", (const uint8_t *)"p1p2", 4}};
    CHECK_EQ(group_sync(g, "m1", NULL, 1, "consumer", "range", as, 2, 4000, &err, &changed), GROUP_ANSWER);
    CHECK_EQ(err, 0);
    CHECK_EQ(g->phase, GROUP_STABLE);
    roundtrip(g, failed_);
    CHECK_EQ(group_sync_check(g, "m2", 1, &err), GROUP_ANSWER);
    struct gmember *m2 = group_find_member(g, "m2");
    CHECK(m2 && m2->assignment_len == 4 && memcmp(m2->assignment, "p1p2", 4) == 0);
}

TEST(group_sync_hands_the_leaders_assignment_to_followers)
{
    struct group g;
    two_member_group(&g, failed_);
    group_free(&g);
}

TEST(group_heartbeat_errors_and_leave_rebalances)
{
    struct group g;
    two_member_group(&g, failed_);
    bool changed = false;
    CHECK_EQ(group_heartbeat(&g, "m1", NULL, 1, 5000, &changed), 0);
    CHECK_EQ(group_heartbeat(&g, "m1", NULL, 7, 5000, &changed), KERR_ILLEGAL_GENERATION);
    CHECK_EQ(group_heartbeat(&g, "nobody", NULL, 1, 5000, &changed), KERR_UNKNOWN_MEMBER_ID);
    CHECK_EQ(group_commit_allowed(&g, "m1", NULL, 1), 0);
    CHECK_EQ(group_commit_allowed(&g, "", NULL, -1), 0); /* a simple consumer */
    CHECK_EQ(group_commit_allowed(&g, "m1", NULL, 0), KERR_ILLEGAL_GENERATION);
    CHECK_EQ(group_leave(&g, "m1", NULL, 5000, &changed), 0);
    CHECK_EQ(g.phase, GROUP_PREPARING);
    CHECK_EQ(group_heartbeat(&g, "m2", NULL, 1, 5000, &changed), KERR_REBALANCE_IN_PROGRESS);
    /* m2 rejoins: the only member left, so the rebalance completes with it as the leader */
    struct join_result r;
    struct join_args a = args("m2", "unused", NULL);
    CHECK_EQ(group_join(&g, &a, 5100, &r, &changed), GROUP_WAIT);
    group_tick(&g, 5100);
    CHECK_EQ(g.generation, 2);
    CHECK(strcmp(g.leader, "m2") == 0);
    CHECK_EQ(group_leave(&g, "m2", NULL, 6000, &changed), 0);
    CHECK_EQ(g.phase, GROUP_EMPTY);
    CHECK(g.protocol_type && strcmp(g.protocol_type, "consumer") == 0); /* listed as a consumer group still */
    group_free(&g);
}

TEST(group_session_timeout_removes_silent_members)
{
    struct group g;
    two_member_group(&g, failed_);
    bool changed = false;
    CHECK_EQ(group_heartbeat(&g, "m1", NULL, 1, 12000, &changed), 0);
    /* m2 last seen at 4000 with a 10 s session: gone at 14001, and the group rebalances */
    CHECK(group_tick(&g, 14001));
    CHECK(group_find_member(&g, "m2") == NULL);
    CHECK_EQ(g.phase, GROUP_PREPARING);
    /* m1 never rejoins either: at the rebalance deadline the group is empty */
    group_tick(&g, 14001 + 20000);
    CHECK_EQ(g.phase, GROUP_EMPTY);
    CHECK_EQ(g.nmembers, 0);
    group_free(&g);
}

TEST(group_static_member_fencing_and_inconsistent_protocol)
{
    struct group g;
    group_init(&g);
    struct join_result r;
    bool changed;
    struct join_args a = args("", "s1", "inst-1");
    CHECK_EQ(group_join(&g, &a, 0, &r, &changed), GROUP_WAIT); /* static: no MEMBER_ID_REQUIRED */
    group_tick(&g, GROUP_INITIAL_DELAY_MS);
    CHECK_EQ(g.generation, 1);
    /* the same instance comes back without its id: a new id, the old one fenced */
    a = args("", "s2", "inst-1");
    group_join(&g, &a, 4000, &r, &changed);
    CHECK(strcmp(r.member_id, "s2") == 0);
    a = args("s1", "x", "inst-1");
    CHECK_EQ(group_join(&g, &a, 4100, &r, &changed), GROUP_ANSWER);
    CHECK_EQ(r.error, KERR_FENCED_INSTANCE_ID);
    /* a member with no protocol in common */
    a = args("", "o1", NULL);
    a.protos = OTHER;
    a.require_known_id = false;
    CHECK_EQ(group_join(&g, &a, 4200, &r, &changed), GROUP_ANSWER);
    CHECK_EQ(r.error, KERR_INCONSISTENT_GROUP_PROTOCOL);
    a = args("", "o2", NULL);
    a.protocol_type = "connect";
    CHECK_EQ(group_join(&g, &a, 4200, &r, &changed), GROUP_ANSWER);
    CHECK_EQ(r.error, KERR_INCONSISTENT_GROUP_PROTOCOL);
    a = args("", "o3", NULL);
    a.session_timeout_ms = 10;
    CHECK_EQ(group_join(&g, &a, 4200, &r, &changed), GROUP_ANSWER);
    CHECK_EQ(r.error, KERR_INVALID_SESSION_TIMEOUT);
    group_free(&g);
}

TEST(group_decode_refuses_garbage)
{
    struct group g;
    static const uint8_t junk[] = {1, 0, 0, 0, 0, 0, 0, 0, 9, 9, 9};
    CHECK_EQ(group_decode(&g, junk, sizeof(junk)), -1);
    CHECK_EQ(group_decode(&g, junk, 3), -1);
    CHECK_EQ(g.nmembers, 0);
}

TEST(group_many_protocols_round_trip)
{
    /* A member may name any number of protocols: what one request makes, the store must read back. */
    enum { N = 3000 };
    struct gproto *v = calloc(N, sizeof(*v));
    char (*names)[16] = calloc(N, 16);
    for (int i = 0; i < N; i++) {
        snprintf(names[i], 16, "p%d", i);
        v[i].name = names[i];
    }
    struct group g;
    group_init(&g);
    struct join_result r;
    bool changed;
    struct join_args a = args("", "m1", NULL);
    a.require_known_id = false;
    a.protos = v;
    a.nprotos = N;
    CHECK_EQ(group_join(&g, &a, 0, &r, &changed), GROUP_WAIT);
    roundtrip(&g, failed_);
    CHECK(g.nmembers == 1 && g.members[0].nprotos == N);
    group_free(&g);
    free(v);
    free(names);
}

TEST(group_size_is_capped)
{
    struct group g;
    group_init(&g);
    struct join_result r;
    bool changed;
    char id[32];
    for (int i = 0; i < GROUP_MAX_MEMBERS; i++) {
        snprintf(id, sizeof(id), "m%d", i);
        struct join_args a = args("", id, NULL);
        group_join(&g, &a, 0, &r, &changed);
        CHECK_EQ(r.error, KERR_MEMBER_ID_REQUIRED);
    }
    struct join_args a = args("", "one-too-many", NULL);
    CHECK_EQ(group_join(&g, &a, 0, &r, &changed), GROUP_ANSWER);
    CHECK_EQ(r.error, KERR_GROUP_MAX_SIZE_REACHED);
    /* the ids handed out still join; the group forms with all of them at once */
    for (int i = 0; i < GROUP_MAX_MEMBERS; i++) {
        snprintf(id, sizeof(id), "m%d", i);
        a = args(id, "unused", NULL);
        CHECK_EQ(group_join(&g, &a, 1, &r, &changed), GROUP_WAIT);
    }
    group_tick(&g, 1 + GROUP_INITIAL_DELAY_MS);
    CHECK_EQ(g.phase, GROUP_COMPLETING);
    CHECK_EQ(group_live_members(&g), GROUP_MAX_MEMBERS);
    CHECK(strcmp(g.protocol_name, "range") == 0);
    group_free(&g);
}

TEST(group_sweep_empties_groups_whose_members_died)
{
    char *tmp = test_temp_dir(), url[512];
    CHECK(tmp != NULL);
    if (!tmp)
        return;
    snprintf(url, sizeof(url), "sqlite://%s/meta.db", tmp);
    char err[256];
    struct metastore *m = metastore_open(url, err, sizeof(err));
    CHECK(m != NULL);
    struct group g;
    two_member_group(&g, failed_);
    size_t len;
    uint8_t *blob = group_encode(&g, &len);
    CHECK_EQ(metastore_group_store(m, "dead", 0, g.phase, g.protocol_type, blob, len, true), 0);
    free(blob);
    group_free(&g);
    CHECK_EQ(groups_sweep(m, 5000), 0);           /* sessions still running: nothing to do */
    CHECK_EQ(groups_sweep(m, 4000 + 10001), 1);   /* both sessions over: both members dropped */
    CHECK_EQ(groups_sweep(m, 4000 + 10002), 0);   /* Empty groups are left alone */
    uint8_t *data;
    int64_t version;
    CHECK_EQ(metastore_group_load(m, "dead", &data, &len, &version), 0);
    CHECK_EQ(group_decode(&g, data, len), 0);
    CHECK_EQ(g.phase, GROUP_EMPTY);
    free(data);
    group_free(&g);
    struct group_summary *v = NULL;
    int n;
    CHECK_EQ(metastore_groups_list(m, &v, &n), 0);
    CHECK(n == 1 && v[0].phase == GROUP_EMPTY);
    free(v);
    metastore_close(m);
    test_rm_rf(tmp);
    free(tmp);
}
