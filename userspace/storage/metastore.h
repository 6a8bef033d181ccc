/* Metadata store: topics, partitions, objects and chunks. Backends: sqlite:// (embedded default)
 * and postgres:// (clusters of many agents). The store, not the agent, assigns offsets: one
 * transaction per flushed object.
 * Each thread opens its own handle. All functions return 0 on success, -1 on a store error (one log
 * line written), or a positive Kafka error code where stated. */
#ifndef SLUICE_METASTORE_H
#define SLUICE_METASTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TOPIC_NAME_MAX 249
#define CONFIG_KEY_MAX 128
#define CONFIG_VALUE_MAX 1024

struct metastore;

struct topic_config {
    char key[CONFIG_KEY_MAX + 1];
    char value[CONFIG_VALUE_MAX + 1];
};

struct topic_info {
    int64_t id;                   /* store-local row id */
    char name[TOPIC_NAME_MAX + 1];
    uint8_t uuid[16];             /* Kafka topic id */
    int32_t partitions;
    int64_t created_ms;
    int64_t config_epoch;         /* bumped by every change of the topic's configs */
};

struct commit_chunk {
    int64_t topic_id;
    int32_t partition;
    uint64_t pos;                 /* byte range of the chunk inside the object */
    uint32_t len;
    int32_t batch_count;
    int64_t offset_count;         /* offsets the chunk's batches take */
    int64_t first_timestamp;
    int64_t max_timestamp;
    /* An idempotent producer's batch: the chunk is exactly that one batch, checked against the
     * producer's state in the store (storage/producer_state.h). */
    bool idempotent;
    int64_t producer_id;
    int16_t producer_epoch;
    int32_t base_sequence, last_sequence; /* last: base + lastOffsetDelta, wrapping past INT32_MAX */
    /* out: */
    int64_t base_offset;          /* first offset assigned to the chunk */
    int error;                    /* Kafka error for this chunk (UNKNOWN_TOPIC_OR_PARTITION if the
                                     topic was deleted meanwhile; OUT_OF_ORDER_SEQUENCE_NUMBER or
                                     INVALID_PRODUCER_EPOCH for an idempotent batch); no offsets
                                     assigned then */
    bool duplicate;               /* a retry of one of the producer's last 5 batches: base_offset is
                                     the original's, nothing is stored again */
};

struct chunk_ref {
    char object_key[128];
    uint64_t pos;
    uint32_t len;
    int32_t batch_count;
    int64_t base_offset;
    int64_t last_offset;          /* base_offset + offset_count - 1 */
    int64_t max_timestamp;
    uint64_t object_size;         /* the whole object's (small ones are read whole) */
    int64_t first_timestamp;
    bool cleaned;                 /* written by key compaction (cleanup.policy=compact): holds only
                                     each key's latest record as of that cleaning */
};

/* url: "sqlite:///abs/path.db", "sqlite://relative/path.db", or "postgres://user:pass@host:port/db?..."
 * (handed to libpq). Creates/migrates the schema. */
struct metastore *metastore_open(const char *url, char *err, size_t errlen);
void metastore_close(struct metastore *m);

/* Returns 0, KERR_TOPIC_ALREADY_EXISTS, or -1. configs may be NULL. */
int metastore_create_topic(struct metastore *m, const char *name, int32_t partitions,
                           const struct topic_config *configs, int nconfigs, struct topic_info *out);
/* Returns 0, KERR_UNKNOWN_TOPIC_OR_PARTITION, or -1. Chunks of the topic become unreachable. */
int metastore_delete_topic(struct metastore *m, const char *name);
/* Returns 0, KERR_UNKNOWN_TOPIC_OR_PARTITION, or -1. */
int metastore_get_topic(struct metastore *m, const char *name, struct topic_info *out);
/* *out is malloc'd (free it); live topics sorted by name. */
int metastore_list_topics(struct metastore *m, struct topic_info **out, int *n);
/* *out is malloc'd. */
int metastore_topic_configs(struct metastore *m, int64_t topic_id, struct topic_config **out, int *n);

/* Grows a live topic to `partitions` (the new ones start empty), in one transaction. Returns 0,
 * KERR_UNKNOWN_TOPIC_OR_PARTITION, KERR_INVALID_PARTITIONS (not more than it has), or -1. *out
 * (may be NULL) gets the topic as it is afterwards. */
int metastore_create_partitions(struct metastore *m, const char *name, int32_t partitions, struct topic_info *out);

/* Changes a live topic's configs in one transaction (a read-modify-write no other change can
 * interleave with): edit gets the stored configs (*configs malloc'd, possibly NULL; it may realloc
 * it and change *n) and answers 0 to store what it left, or a Kafka error to change nothing.
 * Bumps config_epoch. Returns 0, KERR_UNKNOWN_TOPIC_OR_PARTITION, edit's error, or -1. */
typedef int (*topic_configs_edit)(void *arg, struct topic_config **configs, int *n);
int metastore_update_topic_configs(struct metastore *m, const char *name, topic_configs_edit edit, void *arg,
                                   struct topic_info *out);

/* One transaction: records the object and assigns each chunk its base offset, in array order
 * (several chunks of the same partition get consecutive ranges). A chunk whose topic is gone or
 * whose partition does not exist gets error = UNKNOWN_TOPIC_OR_PARTITION and base_offset -1; the
 * others still commit. On -1 nothing was acknowledged and every chunk has KAFKA_STORAGE_ERROR; on
 * PostgreSQL a lost COMMIT answer also returns -1 although the commit may have happened (a producer
 * retry may then duplicate the data, never lose it). */
int metastore_commit_object(struct metastore *m, const char *object_key, uint64_t object_size,
                            struct commit_chunk *chunks, int nchunks);

/* What a handle has asked of its store since it was opened (tests and make bench check that a
 * commit costs the same whatever its number of chunks). round_trips: waits for a server's answer
 * (0 on SQLite, which runs in-process); statements: statements run; commits: transactions
 * committed. */
struct metastore_counters {
    uint64_t round_trips;
    uint64_t statements;
    uint64_t commits;
};
void metastore_get_counters(struct metastore *m, struct metastore_counters *out);

/* InitProducerId for an idempotent producer. producer_id < 0: a new id (shared by every agent of
 * the store), epoch 0. Otherwise the id's current epoch must be `epoch`: it is bumped (a new id,
 * epoch 0, once the epoch would pass 32766, and for an id the store does not know); the epoch
 * before the current one is a retry of the last bump (its answer was lost) and gets the current
 * epoch, as Kafka's coordinator does. Returns 0, KERR_PRODUCER_FENCED (an older epoch), or -1. */
int metastore_init_producer(struct metastore *m, int64_t producer_id, int16_t epoch, int64_t *out_id,
                            int16_t *out_epoch);

/* An idempotent producer's state in one partition (DescribeProducers). */
struct producer_info {
    int64_t producer_id;
    int16_t epoch;
    int32_t last_sequence;        /* of its last batch */
    int64_t last_timestamp;       /* that batch's max timestamp */
};

/* The producers with state in a partition, by id. *out is malloc'd (free it). Returns 0 or -1. */
int metastore_list_producers(struct metastore *m, int64_t topic_id, int32_t partition, struct producer_info **out,
                             int *n);

/* log start offset and high watermark (next offset to be assigned). Returns 0,
 * KERR_UNKNOWN_TOPIC_OR_PARTITION (no such partition, or its topic was deleted), or -1. */
int metastore_partition_offsets(struct metastore *m, int64_t topic_id, int32_t partition,
                                int64_t *log_start, int64_t *high_watermark);

/* Up to max chunks whose last_offset >= from_offset, by base offset. Returns the count or -1. */
int metastore_find_chunks(struct metastore *m, int64_t topic_id, int32_t partition, int64_t from_offset,
                          struct chunk_ref *out, int max);

/* Up to max chunks whose max_timestamp >= ts, by base offset (ListOffsets by timestamp). */
int metastore_find_chunks_by_time(struct metastore *m, int64_t topic_id, int32_t partition, int64_t ts,
                                  struct chunk_ref *out, int max);

/* The largest max_timestamp of the partition and the chunk holding it (ListOffsets -3). Returns 0,
 * 1 if the partition is empty, or -1. */
int metastore_max_timestamp(struct metastore *m, int64_t topic_id, int32_t partition, struct chunk_ref *out);

/* ---- membership (issue 4): every worker of every agent registers and heartbeats ---- */

struct member_info {
    char id[64];                  /* unique per worker incarnation, e.g. "<agent-uuid>-w<worker>" */
    char agent_group[64];         /* lowercase letters, digits, '-' */
    char host[256];               /* advertised host */
    int32_t port_base;            /* advertised slot port base */
    int32_t worker;               /* worker index within its agent */
    char fwd_addr[46];            /* the agent's XDP uplink address, where other hosts forward this member's
                                     slot connections; "" when the agent forwards nothing */
    int64_t heartbeat_ms;         /* out: last heartbeat, store's clock (ms since epoch) */
};

/* Upserts this member and stamps its heartbeat with the store's clock. */
int metastore_heartbeat(struct metastore *m, const struct member_info *self);
/* Members of a group (NULL: all groups) whose heartbeat is within alive_within_ms of the store's
 * clock, sorted by id. *out is malloc'd. */
int metastore_list_members(struct metastore *m, const char *agent_group, int64_t alive_within_ms,
                           struct member_info **out, int *n);
/* Removes a member (clean shutdown); removing an unknown id is fine. */
int metastore_remove_member(struct metastore *m, const char *id);
/* Deletes members whose last heartbeat is older than older_than_ms (the store's clock): workers
 * that died without leaving, one row per incarnation. Returns 0 or -1. */
int metastore_prune_members(struct metastore *m, int64_t older_than_ms);

/* ---- consumer groups: state blobs changed by compare-and-set, committed offsets ---- */

#define GROUP_ID_MAX 1024
#define OFFSET_METADATA_MAX 4096   /* Kafka's offset.metadata.max.bytes default */

/* The group's serialized state (broker/group_state.h) and its version: 0 with *data malloc'd, 1
 * when there is no such group (*version 0), or -1. */
int metastore_group_load(struct metastore *m, const char *group_id, uint8_t **data, size_t *len,
                         int64_t *version);
/* Writes the group only if its version is still `version` (0: the group must not exist yet), then
 * version + 1. phase and protocol_type are kept in columns for listings and offset expiry.
 * announce: tell other processes (PostgreSQL NOTIFY), for changes that waiting members care about.
 * Returns 0, 1 when someone changed it first (read it again), or -1. */
int metastore_group_store(struct metastore *m, const char *group_id, int64_t version, int phase,
                          const char *protocol_type, const uint8_t *data, size_t len, bool announce);

struct group_summary {
    char group_id[GROUP_ID_MAX + 1];
    int phase;
    char protocol_type[256];
};
/* Every group, by id. *out is malloc'd. */
int metastore_groups_list(struct metastore *m, struct group_summary **out, int *n);

struct group_offset {
    const char *topic;
    int32_t partition;
    int64_t offset;
    int32_t leader_epoch;
    const char *metadata;         /* NULL: null */
    int64_t commit_ms;            /* out (fetch): when it was committed, the store's clock */
};
/* Stores these offsets in one transaction (replacing earlier ones). */
int metastore_offsets_commit(struct metastore *m, const char *group_id, const struct group_offset *v, int n);
/* Every committed offset of the group, by topic and partition. *out is one malloc'd block that
 * holds the strings too (free it). */
int metastore_offsets_fetch(struct metastore *m, const char *group_id, struct group_offset **out, int *n);
/* DeleteGroups: in one transaction, the group's state if it is still at `version` (0: there must
 * be none) and all its offsets. Returns 0, 1 when the group changed meanwhile, GROUP_ID_NOT_FOUND
 * when there was neither state nor offsets, or -1. */
int metastore_group_delete(struct metastore *m, const char *group_id, int64_t version);
/* OffsetDelete: these (topic, partition) offsets of the group, in one transaction. */
int metastore_offsets_delete(struct metastore *m, const char *group_id, const struct group_offset *v, int n);
/* Deletes offsets committed more than older_than_ms ago by groups that are empty or gone
 * (Kafka's offsets.retention.minutes). */
int metastore_offsets_expire(struct metastore *m, int64_t older_than_ms);

/* ---- cross-process wake-ups: "someone committed" ---- */

/* A file descriptor to poll for readability, which it becomes when another handle (this or any
 * process, any host) commits an object. PostgreSQL: the handle's connection socket, listening on
 * channel sluice_commits from the first call on (every reconnect listens again). -1 when there is
 * none: always on SQLite (callers poll the store), and on PostgreSQL while the store is
 * unreachable (ask again on the next timer tick). The fd belongs to the handle: never close it.
 * Any call on the handle may reconnect and so replace the socket, and may read notifications
 * off it meanwhile. Hence the contract: before each wait, consume, then ask for the fd again,
 * and wait with a timeout:
 *     n = metastore_consume_notifications(m);    (n > 0: wake the waiters)
 *     fd = metastore_notify_fd(m);               (fd < 0: wait on a timer only)
 *     wait until fd is readable or the timeout passes; repeat */
int metastore_notify_fd(struct metastore *m);
/* Takes pending notifications without blocking: how many commits by other handles were
 * announced (0 if none), or -1 if the store is unreachable. The first call after a reconnect
 * answers at least 1: commits made while disconnected were announced to nobody. */
int metastore_consume_notifications(struct metastore *m);

/* One ACL, with Kafka's codes (resource type, pattern type, operation, permission). */
#define ACL_NAME_MAX 512
struct acl_entry {
    int64_t id;                      /* the store's (out) */
    int8_t resource_type;
    int8_t pattern_type;
    int8_t operation;
    int8_t permission;
    char resource_name[ACL_NAME_MAX];
    char principal[ACL_NAME_MAX];
    char host[256];
};
/* Stores one ACL; an identical one already stored is not an error. 0 or -1. */
int metastore_acl_add(struct metastore *m, const struct acl_entry *e);
/* Every ACL. *out is malloc'd. 0 or -1. */
int metastore_acl_list(struct metastore *m, struct acl_entry **out, int *n);
/* Deletes the ACL with this id (gone already: not an error). 0 or -1. */
int metastore_acl_delete(struct metastore *m, int64_t id);
/* A SASL credential: for SCRAM the salted StoredKey and ServerKey (RFC 5802), for PLAIN a salted
 * PBKDF2 hash in stored_key (server_key empty). Never the password. Binary values are hex. */
#define SASL_USER_MAX 255
struct sasl_credential {
    char user[SASL_USER_MAX + 1];
    char mechanism[16];           /* PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 */
    char salt[129];
    int32_t iterations;
    char stored_key[129];
    char server_key[129];
};
/* Stores (or replaces) the credential of (user, mechanism). */
int metastore_cred_put(struct metastore *m, const struct sasl_credential *c);
/* Deletes the user's credential for mechanism (NULL: all of them). How many, or -1. */
int metastore_cred_delete(struct metastore *m, const char *user, const char *mechanism);
/* Credentials matching user and mechanism (NULL: any), by user and mechanism. *out is malloc'd. */
int metastore_cred_list(struct metastore *m, const char *user, const char *mechanism, struct sasl_credential **out,
                        int *n);

/* ---- background jobs (retention, garbage collection): leases and the data they remove ---- */

#define LEASE_KIND_MAX 64
#define OBJECT_KEY_MAX 128

/* Takes or renews the lease of one job kind for owner until ttl_ms from now (the store's clock), in
 * one conditional write (compare-and-set): it succeeds when nobody holds the lease, owner already
 * holds it, or the holder's lease has expired. Returns 0 (owner holds it), 1 (someone else does),
 * or -1. */
int metastore_lease_acquire(struct metastore *m, const char *kind, const char *owner, int64_t ttl_ms);
/* Gives the lease up if owner holds it (done with the work); not holding it is fine. 0 or -1. */
int metastore_lease_release(struct metastore *m, const char *kind, const char *owner);

/* The first offset retention keeps in a partition: the base offset of the first chunk whose max
 * timestamp is >= min_timestamp, raised so that the chunks dropped before it leave at least
 * max_bytes (< 0: no size limit) in the partition; the high watermark when every chunk goes.
 * Returns 0, KERR_UNKNOWN_TOPIC_OR_PARTITION, or -1. */
int metastore_retention_offset(struct metastore *m, int64_t topic_id, int32_t partition, int64_t min_timestamp,
                               int64_t max_bytes, int64_t *offset);

/* DeleteRecords, and what retention applies: in one transaction moves the partition's log start
 * up to offset (-1: the high watermark; never down) and deletes the chunks that end below it.
 * *log_start gets the log start after, *chunks_removed (may be NULL) how many chunks went.
 * Returns 0, KERR_OFFSET_OUT_OF_RANGE (offset beyond the high watermark),
 * KERR_UNKNOWN_TOPIC_OR_PARTITION, or -1. */
int metastore_trim_partition(struct metastore *m, int64_t topic_id, int32_t partition, int64_t offset,
                             int64_t *log_start, int *chunks_removed);

/* Partitions whose log start is above 0: the topic listing refreshes each worker's view. */
struct log_start_row {
    int64_t topic_id;
    int32_t partition;
    int64_t log_start;
};
/* *out malloc'd. 0 or -1. */
int metastore_log_starts(struct metastore *m, struct log_start_row **out, int *n);

/* Garbage objects: stamps every object no chunk points into (a trimmed or deleted topic's) with
 * the store's clock the first time it is seen so, and returns up to max keys of those stamped at
 * least grace_ms ago (*keys: malloc'd array of OBJECT_KEY_MAX strings). 0 or -1. */
int metastore_objects_unreferenced(struct metastore *m, int64_t grace_ms, int max, char (**keys)[OBJECT_KEY_MAX],
                                   int *n);
/* Forgets an object that was deleted from the bucket (only if still unreferenced). 0 or -1. */
int metastore_object_forget(struct metastore *m, const char *key);
/* Whether the store knows this object (committed and not yet forgotten): 1, 0, or -1. */
int metastore_object_known(struct metastore *m, const char *key);

/* ---- compaction: runs of chunks rewritten into one new object ---- */

/* One run of a partition's chunks and the one chunk that replaces it. The run is every chunk from
 * base_offset to last_offset: exactly old_chunks of them, the first starting at base_offset and the
 * last ending at last_offset (none trimmed, deleted or replaced since they were listed). The new
 * chunk keeps those offsets (key compaction leaves gaps inside it: Kafka's batches may skip
 * offsets); its timestamps are the run's (the store takes them from the old rows). */
struct chunk_replacement {
    int64_t topic_id;
    int32_t partition;
    int64_t base_offset;
    int64_t last_offset;
    int32_t old_chunks;
    uint64_t pos;                 /* the new chunk's bytes in the new object */
    uint32_t len;
    int32_t batch_count;
    bool cleaned;                 /* key compaction wrote it (chunk_ref.cleaned) */
    bool replaced;                /* out: false when the run had changed (its chunks stay) */
};

/* One transaction: records the new object, then for each run still exactly as listed deletes its
 * chunks, inserts the new chunk and makes the old chunks' objects gc candidates (deleted once no
 * chunk points into them, after --object-delete-grace). Runs that changed meanwhile are left as
 * they are. Returns how many runs were replaced, or -1 (nothing changed). An object no run went
 * into is unreferenced, so garbage collection deletes it after the grace period. */
int metastore_replace_chunks(struct metastore *m, const char *object_key, uint64_t object_size,
                             struct chunk_replacement *runs, int n);

#endif
