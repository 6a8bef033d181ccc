/* A consumer group's state and Kafka's classic group protocol over it, as pure logic: no store,
 * no loop, no clock of its own (every call is given `now`, wall-clock ms). The group lives in the
 * metadata store as one serialized blob with a version: a store job reads it, applies one of these
 * operations and writes it back only if the version did not change (compare-and-set), so members
 * of one group may talk to any worker of any agent.
 *
 * States (as Kafka's GroupCoordinator): EMPTY (no members), PREPARING (a rebalance: waiting for
 * the members to rejoin, until all did or the rebalance timeout passed), COMPLETING (a new
 * generation: waiting for the leader's SyncGroup), STABLE (assignments handed out). */
#ifndef SLUICE_GROUP_STATE_H
#define SLUICE_GROUP_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum group_phase { GROUP_EMPTY = 0, GROUP_PREPARING = 1, GROUP_COMPLETING = 2, GROUP_STABLE = 3 };

/* Kafka's group.min/max.session.timeout.ms defaults. */
#define GROUP_MIN_SESSION_MS 6000
#define GROUP_MAX_SESSION_MS 1800000
/* Kafka's group.initial.rebalance.delay.ms: the first rebalance of an empty group waits this long
 * (again after every new member, up to the rebalance timeout), so that members starting together
 * form one generation instead of one rebalance each. */
#define GROUP_INITIAL_DELAY_MS 3000
/* Members (and ids handed out, not yet joined) one group may have: new ones then get
 * GROUP_MAX_SIZE_REACHED (Kafka's group.max.size). Every group request reads and writes the whole
 * group, so this bounds what one request costs. */
#define GROUP_MAX_MEMBERS 1000

struct gproto {
    char *name;
    uint8_t *meta;
    int32_t meta_len;
};

struct gmember {
    char *id;
    char *instance_id;           /* static membership (group.instance.id), or NULL */
    char *client_id;
    char *client_host;
    int32_t session_timeout_ms;
    int32_t rebalance_timeout_ms;
    int64_t last_seen_ms;        /* last join, sync or heartbeat */
    bool joined;                 /* rejoined during the current rebalance */
    bool pending;                /* KIP-394: an id handed out with MEMBER_ID_REQUIRED, not joined yet */
    struct gproto *protos;
    int nprotos;
    uint8_t *assignment;
    int32_t assignment_len;
};

struct group {
    int phase;                   /* enum group_phase */
    int32_t generation;
    char *protocol_type;         /* NULL until a member joined; kept once the group is empty */
    char *protocol_name;         /* chosen at each new generation */
    char *leader;                /* member id, NULL when none */
    int64_t rebalance_deadline_ms;
    int64_t initial_until_ms;    /* the first rebalance of an empty group completes no earlier */
    struct gmember *members;
    int nmembers;
};

void group_init(struct group *g);
void group_free(struct group *g);
/* Serialized form stored in the metadata store (malloc'd). */
uint8_t *group_encode(const struct group *g, size_t *len);
/* 0, or -1 for bytes that are not a group (g is then empty). */
int group_decode(struct group *g, const uint8_t *p, size_t len);
struct gmember *group_find_member(const struct group *g, const char *id);
const char *group_phase_name(int phase);
/* Members that count (not pending). */
int group_live_members(const struct group *g);

/* Timers: drops members whose session expired, pending ids never used, completes a rebalance when
 * every member rejoined or its deadline passed. Returns true when g changed. */
bool group_tick(struct group *g, int64_t now);

struct join_args {
    const char *member_id;       /* "" for a new member */
    const char *instance_id;     /* NULL: dynamic member */
    const char *new_member_id;   /* the id a new member gets (the caller makes it unique) */
    const char *client_id, *client_host;
    const char *protocol_type;
    int32_t session_timeout_ms, rebalance_timeout_ms;
    const struct gproto *protos;
    int nprotos;
    bool require_known_id;       /* JoinGroup v4+: a new member first gets MEMBER_ID_REQUIRED */
};

/* What a JoinGroup or SyncGroup call comes to. */
enum group_outcome { GROUP_ANSWER, GROUP_WAIT };

struct join_result {
    int error;
    char *member_id;             /* points into g or args (valid until g changes) */
    int32_t park_generation;     /* GROUP_WAIT: the generation the join waits to see replaced */
};

/* JoinGroup. GROUP_ANSWER: answer now (error, or the current generation); GROUP_WAIT: park and
 * call group_join_check after every change. *changed tells whether g must be written. */
enum group_outcome group_join(struct group *g, const struct join_args *a, int64_t now, struct join_result *out,
                              bool *changed);
/* A parked join: GROUP_ANSWER once the rebalance it joined completed (error 0: answer from g) or
 * failed for this member. */
enum group_outcome group_join_check(const struct group *g, const char *member_id, int32_t park_generation,
                                    int *error);

struct sync_assignment {
    const char *member_id;
    const uint8_t *assignment;
    int32_t len;
};

/* SyncGroup: the leader's assignments are stored and the group becomes STABLE; a follower waits
 * for them (GROUP_WAIT, then group_sync_check). */
enum group_outcome group_sync(struct group *g, const char *member_id, const char *instance_id, int32_t generation,
                              const char *protocol_type, const char *protocol_name,
                              const struct sync_assignment *assignments, int n, int64_t now, int *error,
                              bool *changed);
enum group_outcome group_sync_check(const struct group *g, const char *member_id, int32_t generation, int *error);

/* Heartbeat: 0, UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION, FENCED_INSTANCE_ID, REBALANCE_IN_PROGRESS. */
int group_heartbeat(struct group *g, const char *member_id, const char *instance_id, int32_t generation,
                    int64_t now, bool *changed);
/* LeaveGroup of one member (by member id, or by instance id when member_id is ""). */
int group_leave(struct group *g, const char *member_id, const char *instance_id, int64_t now, bool *changed);
/* May this member commit offsets? Generation -1 with no member: a simple consumer, always. */
int group_commit_allowed(const struct group *g, const char *member_id, const char *instance_id,
                         int32_t generation);

#endif
