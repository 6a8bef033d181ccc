/* sqlite:// metadata store: one database file in WAL mode, shared by every thread and process of
 * the agents on this host, each with its own handle. synchronous=FULL because a commit is what
 * acknowledges produced data. Every write is a BEGIN IMMEDIATE transaction: it takes the write
 * lock up front, so two writers never deadlock upgrading a read lock, and offsets are assigned
 * under that lock. Statements are prepared once per handle. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "protocol/errors.h"
#include "util/clock.h"
#include "util/log.h"
#include "storage/metastore_backend.h"
#include "storage/producer_state.h"

#define BUSY_TIMEOUT_MS 30000

/* Schema migrations: entry i takes the database from version i to i + 1. Append, never edit. */
static const char *const migrations[] = {
    /* 1: the first schema. Topic ids are AUTOINCREMENT so a deleted topic's id is never reused
     * (its chunks must stay unreachable); a name is unique among live topics only. Chunks are
     * clustered by (topic, partition, base_offset); fetch looks them up by last_offset and
     * ListOffsets by max_timestamp. */
    "CREATE TABLE topics ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  name TEXT NOT NULL,"
    "  uuid BLOB NOT NULL UNIQUE,"
    "  partitions INTEGER NOT NULL,"
    "  created_ms INTEGER NOT NULL,"
    "  deleted INTEGER NOT NULL DEFAULT 0);"
    "CREATE UNIQUE INDEX topics_live_name ON topics(name) WHERE deleted = 0;"
    "CREATE TABLE topic_configs ("
    "  topic_id INTEGER NOT NULL,"
    "  name TEXT NOT NULL,"
    "  value TEXT NOT NULL,"
    "  PRIMARY KEY (topic_id, name)) WITHOUT ROWID;"
    "CREATE TABLE partitions ("
    "  topic_id INTEGER NOT NULL,"
    "  partition INTEGER NOT NULL,"
    "  next_offset INTEGER NOT NULL DEFAULT 0,"
    "  log_start_offset INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (topic_id, partition)) WITHOUT ROWID;"
    "CREATE TABLE objects ("
    "  id INTEGER PRIMARY KEY,"
    "  key TEXT NOT NULL UNIQUE,"
    "  size INTEGER NOT NULL,"
    "  created_ms INTEGER NOT NULL);"
    "CREATE TABLE chunks ("
    "  topic_id INTEGER NOT NULL,"
    "  partition INTEGER NOT NULL,"
    "  base_offset INTEGER NOT NULL,"
    "  last_offset INTEGER NOT NULL,"
    "  object_id INTEGER NOT NULL,"
    "  pos INTEGER NOT NULL,"
    "  len INTEGER NOT NULL,"
    "  batch_count INTEGER NOT NULL,"
    "  first_timestamp INTEGER NOT NULL,"
    "  max_timestamp INTEGER NOT NULL,"
    "  PRIMARY KEY (topic_id, partition, base_offset)) WITHOUT ROWID;"
    "CREATE INDEX chunks_by_last_offset ON chunks(topic_id, partition, last_offset);"
    "CREATE INDEX chunks_by_max_timestamp ON chunks(topic_id, partition, max_timestamp);",
    /* 2: membership. One row per worker incarnation; heartbeat_ms is the store's clock (here the
     * local wall clock: the database is local). */
    "CREATE TABLE members ("
    "  id TEXT PRIMARY KEY,"
    "  agent_group TEXT NOT NULL,"
    "  host TEXT NOT NULL,"
    "  port_base INTEGER NOT NULL,"
    "  worker INTEGER NOT NULL,"
    "  heartbeat_ms INTEGER NOT NULL) WITHOUT ROWID;",
    /* 3: where other hosts forward a member's slot connections (XDP). */
    "ALTER TABLE members ADD COLUMN fwd_addr TEXT NOT NULL DEFAULT '';",
    /* 4: config changes (AlterConfigs) are noticed by every agent's topic listing. */
    "ALTER TABLE topics ADD COLUMN config_epoch INTEGER NOT NULL DEFAULT 0;",
    /* 5: idempotent producers. Ids are handed out once (AUTOINCREMENT) with their current epoch;
     * per (producer, topic, partition) the epoch and the last 5 batches ("first:last:offset;...",
     * storage/producer_state.h), checked and updated by each commit. */
    "CREATE TABLE producer_ids ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  epoch INTEGER NOT NULL,"
    "  created_ms INTEGER NOT NULL);"
    "CREATE TABLE producer_state ("
    "  producer_id INTEGER NOT NULL,"
    "  topic_id INTEGER NOT NULL,"
    "  partition INTEGER NOT NULL,"
    "  epoch INTEGER NOT NULL,"
    "  batches TEXT NOT NULL,"
    "  last_timestamp INTEGER NOT NULL,"
    "  PRIMARY KEY (producer_id, topic_id, partition)) WITHOUT ROWID;",
    /* 6: consumer groups: the state as one blob with a version (compare-and-set), and the
     * committed offsets. */
    "CREATE TABLE consumer_groups ("
    "  group_id TEXT PRIMARY KEY,"
    "  version INTEGER NOT NULL,"
    "  phase INTEGER NOT NULL,"
    "  protocol_type TEXT NOT NULL,"
    "  state BLOB NOT NULL,"
    "  updated_ms INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE group_offsets ("
    "  group_id TEXT NOT NULL,"
    "  topic TEXT NOT NULL,"
    "  partition INTEGER NOT NULL,"
    "  committed_offset INTEGER NOT NULL,"
    "  leader_epoch INTEGER NOT NULL,"
    "  metadata TEXT,"
    "  commit_ms INTEGER NOT NULL,"
    "  PRIMARY KEY (group_id, topic, partition)) WITHOUT ROWID;",
    /* 7: ACLs (CreateAcls); an identical ACL is stored once. */
    "CREATE TABLE acls ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  resource_type INTEGER NOT NULL,"
    "  resource_name TEXT NOT NULL,"
    "  pattern_type INTEGER NOT NULL,"
    "  principal TEXT NOT NULL,"
    "  host TEXT NOT NULL,"
    "  operation INTEGER NOT NULL,"
    "  permission INTEGER NOT NULL,"
    "  UNIQUE (resource_type, resource_name, pattern_type, principal, host, operation, permission));",
    /* 8: SASL credentials: salts and derived keys only, never a password (see broker/sasl_creds.c). */
    "CREATE TABLE sasl_credentials ("
    "  username TEXT NOT NULL,"
    "  mechanism TEXT NOT NULL,"
    "  salt TEXT NOT NULL,"
    "  iterations INTEGER NOT NULL,"
    "  stored_key TEXT NOT NULL,"
    "  server_key TEXT NOT NULL,"
    "  PRIMARY KEY (username, mechanism)) WITHOUT ROWID;",
    /* 9: background jobs. A lease per job kind (owner, expiry: compare-and-set); objects no chunk
     * points into get stamped when first seen so, and are deleted a grace period later. */
    "CREATE TABLE job_leases ("
    "  kind TEXT PRIMARY KEY,"
    "  owner TEXT NOT NULL,"
    "  expires_ms INTEGER NOT NULL) WITHOUT ROWID;"
    "ALTER TABLE objects ADD COLUMN unreferenced_ms INTEGER;"
    "CREATE INDEX objects_unreferenced ON objects(unreferenced_ms) WHERE unreferenced_ms IS NOT NULL;"
    "CREATE INDEX chunks_by_object ON chunks(object_id);"
    /* objects that lost chunks (trimmed, deleted topic): the only ones garbage collection checks */
    "CREATE TABLE gc_candidates (object_id INTEGER PRIMARY KEY);",
    /* 10: the time index and compaction. A chunk's running_max_timestamp is the largest
     * max_timestamp of its partition up to and including it: it never decreases with the offset,
     * so "the first chunk holding a timestamp >= t" is one index seek, however many chunks the
     * partition has (a chunk's own max_timestamp is not ordered: producers set timestamps). The
     * partition keeps its largest timestamp for the next commit. cleaned: key compaction wrote
     * the chunk (cleanup.policy=compact). */
    "ALTER TABLE partitions ADD COLUMN max_timestamp INTEGER;"
    "ALTER TABLE chunks ADD COLUMN running_max_timestamp INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE chunks ADD COLUMN cleaned INTEGER NOT NULL DEFAULT 0;"
    "UPDATE chunks SET running_max_timestamp = r.m FROM (SELECT topic_id, partition, base_offset,"
    "  max(max_timestamp) OVER (PARTITION BY topic_id, partition ORDER BY base_offset) AS m FROM chunks) AS r"
    "  WHERE chunks.topic_id = r.topic_id AND chunks.partition = r.partition AND chunks.base_offset = r.base_offset;"
    "UPDATE partitions SET max_timestamp = (SELECT max(max_timestamp) FROM chunks c"
    "  WHERE c.topic_id = partitions.topic_id AND c.partition = partitions.partition);"
    "CREATE INDEX chunks_by_running_max_timestamp ON chunks(topic_id, partition, running_max_timestamp);",
};
#define SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))

enum stmt_id {
    S_BEGIN,
    S_COMMIT,
    S_ROLLBACK,
    S_TOPIC_BY_NAME,
    S_TOPIC_INSERT,
    S_PARTITION_INSERT,
    S_CONFIG_INSERT,
    S_TOPIC_MARK_DELETED,
    S_TOPIC_GC_CANDIDATES,
    S_GC_CANDIDATE_ADD,
    S_TOPIC_DELETE_CHUNKS,
    S_TOPIC_DELETE_PARTITIONS,
    S_TOPIC_DELETE_CONFIGS,
    S_TOPICS_LIST,
    S_CONFIGS_LIST,
    S_OBJECT_INSERT,
    S_PARTITION_ADVANCE,
    S_CHUNK_INSERT,
    S_PARTITION_OFFSETS,
    S_FIND_CHUNKS,
    S_FIND_CHUNKS_BY_TIME,
    S_MAX_TIMESTAMP,
    S_MEMBER_UPSERT,
    S_MEMBERS_LIST,
    S_MEMBER_DELETE,
    S_MEMBERS_PRUNE,
    S_TOPIC_SET_PARTITIONS,
    S_TOPIC_BUMP_CONFIG_EPOCH,
    S_PRODUCER_NEW,
    S_PRODUCER_EPOCH,
    S_PRODUCER_BUMP,
    S_PRODUCER_STATE_GET,
    S_PRODUCER_STATE_PUT,
    S_PRODUCERS_LIST,
    S_COUNT
};

#define TOPIC_COLS "id, name, uuid, partitions, created_ms, config_epoch"
#define CHUNK_COLS                                                                                    \
    "o.key, c.pos, c.len, c.batch_count, c.base_offset, c.last_offset, c.max_timestamp, o.size,"      \
    " c.first_timestamp, c.cleaned"

static const char *const stmt_sql[S_COUNT] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_TOPIC_BY_NAME] = "SELECT " TOPIC_COLS " FROM topics WHERE name = ?1 AND deleted = 0",
    [S_TOPIC_INSERT] = "INSERT INTO topics (name, uuid, partitions, created_ms) VALUES (?1, ?2, ?3, ?4)",
    [S_PARTITION_INSERT] = "INSERT INTO partitions (topic_id, partition) VALUES (?1, ?2)",
    [S_CONFIG_INSERT] = "INSERT OR REPLACE INTO topic_configs (topic_id, name, value) VALUES (?1, ?2, ?3)",
    [S_TOPIC_MARK_DELETED] = "UPDATE topics SET deleted = 1 WHERE id = ?1",
    [S_TOPIC_GC_CANDIDATES] = "INSERT OR IGNORE INTO gc_candidates SELECT DISTINCT object_id FROM chunks"
                              " WHERE topic_id = ?1",
    [S_GC_CANDIDATE_ADD] = "INSERT OR IGNORE INTO gc_candidates VALUES (?1)",
    [S_TOPIC_DELETE_CHUNKS] = "DELETE FROM chunks WHERE topic_id = ?1",
    [S_TOPIC_DELETE_PARTITIONS] = "DELETE FROM partitions WHERE topic_id = ?1",
    [S_TOPIC_DELETE_CONFIGS] = "DELETE FROM topic_configs WHERE topic_id = ?1",
    [S_TOPICS_LIST] = "SELECT " TOPIC_COLS " FROM topics WHERE deleted = 0 ORDER BY name",
    [S_CONFIGS_LIST] = "SELECT name, value FROM topic_configs WHERE topic_id = ?1 ORDER BY name",
    [S_OBJECT_INSERT] = "INSERT INTO objects (key, size, created_ms) VALUES (?1, ?2, ?3)",
    /* Check (live topic, existing partition), read and advance next_offset in one statement. */
    [S_PARTITION_ADVANCE] = "UPDATE partitions SET next_offset = next_offset + ?3,"
                            " max_timestamp = CASE WHEN max_timestamp IS NULL OR max_timestamp < ?4"
                            " THEN ?4 ELSE max_timestamp END"
                            " WHERE topic_id = ?1 AND partition = ?2"
                            " AND EXISTS (SELECT 1 FROM topics WHERE id = ?1 AND deleted = 0)"
                            " RETURNING next_offset, max_timestamp",
    [S_CHUNK_INSERT] = "INSERT INTO chunks (topic_id, partition, base_offset, last_offset, object_id, pos, len,"
                       " batch_count, first_timestamp, max_timestamp, running_max_timestamp)"
                       " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    [S_PARTITION_OFFSETS] = "SELECT log_start_offset, next_offset FROM partitions"
                            " WHERE topic_id = ?1 AND partition = ?2",
    /* Chunks of a partition never overlap, so last_offset order is base_offset order. */
    [S_FIND_CHUNKS] = "SELECT " CHUNK_COLS " FROM chunks c JOIN objects o ON o.id = c.object_id"
                      " WHERE c.topic_id = ?1 AND c.partition = ?2 AND c.last_offset >= ?3"
                      " ORDER BY c.last_offset LIMIT ?4",
    /* The time index: from the first chunk holding a timestamp >= ?3 on, by offset (running
     * maxima grow with the offset); later ones may hold smaller timestamps only. */
    [S_FIND_CHUNKS_BY_TIME] = "SELECT " CHUNK_COLS " FROM chunks c INDEXED BY chunks_by_running_max_timestamp"
                              " JOIN objects o ON o.id = c.object_id"
                              " WHERE c.topic_id = ?1 AND c.partition = ?2 AND c.running_max_timestamp >= ?3"
                              " ORDER BY c.running_max_timestamp, c.base_offset LIMIT ?4",
    /* The first chunk (by offset) holding the partition's largest timestamp: two index seeks.
     * Without INDEXED BY the planner walks the partition in offset order. */
    [S_MAX_TIMESTAMP] = "SELECT " CHUNK_COLS " FROM chunks c INDEXED BY chunks_by_max_timestamp"
                        " JOIN objects o ON o.id = c.object_id"
                        " WHERE c.topic_id = ?1 AND c.partition = ?2 AND c.max_timestamp ="
                        " (SELECT max(max_timestamp) FROM chunks WHERE topic_id = ?1 AND partition = ?2)"
                        " ORDER BY c.base_offset LIMIT 1",
    [S_MEMBER_UPSERT] = "INSERT INTO members (id, agent_group, host, port_base, worker, heartbeat_ms, fwd_addr)"
                        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (id) DO UPDATE SET"
                        " agent_group = excluded.agent_group, host = excluded.host, port_base = excluded.port_base,"
                        " worker = excluded.worker, heartbeat_ms = excluded.heartbeat_ms, fwd_addr = excluded.fwd_addr",
    /* ?1: group or NULL for all; ?2: the oldest heartbeat still alive. */
    [S_MEMBERS_LIST] = "SELECT id, agent_group, host, port_base, worker, heartbeat_ms, fwd_addr FROM members"
                       " WHERE (?1 IS NULL OR agent_group = ?1) AND heartbeat_ms >= ?2 ORDER BY id",
    [S_MEMBER_DELETE] = "DELETE FROM members WHERE id = ?1",
    [S_MEMBERS_PRUNE] = "DELETE FROM members WHERE heartbeat_ms < ?1",
    [S_TOPIC_SET_PARTITIONS] = "UPDATE topics SET partitions = ?2 WHERE id = ?1",
    [S_TOPIC_BUMP_CONFIG_EPOCH] = "UPDATE topics SET config_epoch = config_epoch + 1 WHERE id = ?1",
    [S_PRODUCER_NEW] = "INSERT INTO producer_ids (epoch, created_ms) VALUES (0, ?1)",
    [S_PRODUCER_EPOCH] = "SELECT epoch FROM producer_ids WHERE id = ?1",
    [S_PRODUCER_BUMP] = "UPDATE producer_ids SET epoch = epoch + 1 WHERE id = ?1",
    [S_PRODUCER_STATE_GET] = "SELECT epoch, batches FROM producer_state"
                             " WHERE producer_id = ?1 AND topic_id = ?2 AND partition = ?3",
    [S_PRODUCER_STATE_PUT] = "INSERT INTO producer_state (producer_id, topic_id, partition, epoch, batches,"
                             " last_timestamp) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (producer_id, topic_id,"
                             " partition) DO UPDATE SET epoch = excluded.epoch, batches = excluded.batches,"
                             " last_timestamp = excluded.last_timestamp",
    [S_PRODUCERS_LIST] = "SELECT producer_id, epoch, batches, last_timestamp FROM producer_state"
                         " WHERE topic_id = ?1 AND partition = ?2 ORDER BY producer_id",
};

struct sqlite_store {
    struct metastore base;
    sqlite3 *db;
    sqlite3_stmt *stmt[S_COUNT];
    int64_t busy_deadline;
    char path[PATH_MAX];
};

static int db_error(struct sqlite_store *s, const char *what)
{
    log_error("metastore: %s: %s (sqlite://%s)", what, sqlite3_errmsg(s->db), s->path);
    return -1;
}

/* A cached statement, reset and unbound. Callers reset it again when done, which ends the
 * implicit read transaction of a SELECT. */
static sqlite3_stmt *stmt(struct sqlite_store *s, enum stmt_id id)
{
    sqlite3_stmt *q = s->stmt[id];
    s->base.counters.statements++; /* every run of a prepared statement starts here */
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    return q;
}

/* Runs a statement that returns no rows. */
static int run(struct sqlite_store *s, sqlite3_stmt *q, const char *what)
{
    int rc = sqlite3_step(q);
    sqlite3_reset(q);
    if (rc != SQLITE_DONE)
        return db_error(s, what);
    return 0;
}

static int begin(struct sqlite_store *s) { return run(s, stmt(s, S_BEGIN), "BEGIN IMMEDIATE"); }
static int commit(struct sqlite_store *s)
{
    if (run(s, stmt(s, S_COMMIT), "COMMIT") < 0)
        return -1;
    s->base.counters.commits++;
    return 0;
}

static void rollback(struct sqlite_store *s)
{
    if (!sqlite3_get_autocommit(s->db))
        run(s, stmt(s, S_ROLLBACK), "ROLLBACK");
}

/* Fails the open transaction: rolls back and returns -1 (the error was logged). */
static int abort_tx(struct sqlite_store *s)
{
    rollback(s);
    return -1;
}

/* Waits for the write lock in short steps: workers commit all the time, and SQLite's default
 * handler sleeps up to 100 ms between tries. */
static int busy_wait(void *arg, int tries)
{
    struct sqlite_store *s = arg;
    if (tries == 0)
        s->busy_deadline = mono_ms() + BUSY_TIMEOUT_MS;
    else if (mono_ms() > s->busy_deadline)
        return 0;
    struct timespec ts = {0, (tries < 10 ? tries + 1 : 10) * 100000L}; /* 0.1 .. 1 ms */
    nanosleep(&ts, NULL);
    return 1;
}

/* ---- topics ---- */

static void random_uuid(uint8_t u[16])
{
    for (;;) {
        size_t got = 0;
        while (got < 16) {
            ssize_t r = getrandom(u + got, 16 - got, 0);
            if (r > 0)
                got += (size_t)r;
        }
        u[6] = (uint8_t)((u[6] & 0x0f) | 0x40); /* version 4 */
        u[8] = (uint8_t)((u[8] & 0x3f) | 0x80); /* RFC 4122 variant */
        /* As Kafka's Uuid.randomUuid: no id whose base64 form starts with '-' (index 62). */
        if (u[0] >> 2 != 62)
            return;
    }
}

static void read_topic(sqlite3_stmt *q, struct topic_info *t)
{
    memset(t, 0, sizeof(*t));
    t->id = sqlite3_column_int64(q, 0);
    snprintf(t->name, sizeof(t->name), "%s", (const char *)sqlite3_column_text(q, 1));
    if (sqlite3_column_bytes(q, 2) == 16)
        memcpy(t->uuid, sqlite3_column_blob(q, 2), 16);
    t->partitions = sqlite3_column_int(q, 3);
    t->created_ms = sqlite3_column_int64(q, 4);
    t->config_epoch = sqlite3_column_int64(q, 5);
}

/* Looks up a live topic: 1 found, 0 not, -1 error. */
static int find_topic(struct sqlite_store *s, const char *name, struct topic_info *t)
{
    sqlite3_stmt *q = stmt(s, S_TOPIC_BY_NAME);
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        read_topic(q, t);
    sqlite3_reset(q);
    if (rc == SQLITE_ROW)
        return 1;
    if (rc == SQLITE_DONE)
        return 0;
    return db_error(s, "find topic");
}

static int sq_create_topic(struct metastore *m, const char *name, int32_t partitions,
                           const struct topic_config *configs, int nconfigs, struct topic_info *out)
{
    struct sqlite_store *s = (struct sqlite_store *)m;
    size_t name_len = strlen(name);
    if (name_len == 0 || name_len > TOPIC_NAME_MAX)
        return KERR_INVALID_TOPIC_EXCEPTION;
    if (partitions < 1)
        return KERR_INVALID_PARTITIONS;
    if (begin(s) < 0)
        return -1;
    struct topic_info t;
    int found = find_topic(s, name, &t);
    if (found != 0) {
        rollback(s);
        return found < 0 ? -1 : KERR_TOPIC_ALREADY_EXISTS;
    }
    memset(&t, 0, sizeof(t));
    memcpy(t.name, name, name_len + 1);
    random_uuid(t.uuid);
    t.partitions = partitions;
    t.created_ms = wall_ms();

    sqlite3_stmt *q = stmt(s, S_TOPIC_INSERT);
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_blob(q, 2, t.uuid, 16, SQLITE_STATIC);
    sqlite3_bind_int(q, 3, partitions);
    sqlite3_bind_int64(q, 4, t.created_ms);
    if (run(s, q, "insert topic") < 0)
        return abort_tx(s);
    t.id = sqlite3_last_insert_rowid(s->db);

    q = stmt(s, S_PARTITION_INSERT);
    sqlite3_bind_int64(q, 1, t.id);
    for (int32_t p = 0; p < partitions; p++) {
        sqlite3_bind_int(q, 2, p);
        if (run(s, q, "insert partition") < 0)
            return abort_tx(s);
    }
    q = stmt(s, S_CONFIG_INSERT);
    sqlite3_bind_int64(q, 1, t.id);
    for (int i = 0; i < nconfigs; i++) {
        sqlite3_bind_text(q, 2, configs[i].key, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 3, configs[i].value, -1, SQLITE_STATIC);
        if (run(s, q, "insert topic config") < 0)
            return abort_tx(s);
    }
    if (commit(s) < 0)
        return abort_tx(s);
    if (out)
        *out = t;
    return 0;
}

static int sq_delete_topic(struct metastore *m, const char *name)
{
    struct sqlite_store *s = (struct sqlite_store *)m;
    if (begin(s) < 0)
        return -1;
    struct topic_info t;
    int found = find_topic(s, name, &t);
    if (found != 1) {
        rollback(s);
        return found < 0 ? -1 : KERR_UNKNOWN_TOPIC_OR_PARTITION;
    }
    /* The topic row stays (deleted = 1) so its id is never handed out again; its chunks and
     * partitions go, which makes its objects garbage once no other chunk points into them. */
    static const enum stmt_id steps[] = {S_TOPIC_MARK_DELETED, S_TOPIC_GC_CANDIDATES, S_TOPIC_DELETE_CHUNKS, S_TOPIC_DELETE_PARTITIONS,
                                         S_TOPIC_DELETE_CONFIGS};
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        sqlite3_stmt *q = stmt(s, steps[i]);
        sqlite3_bind_int64(q, 1, t.id);
        if (run(s, q, "delete topic") < 0)
            return abort_tx(s);
    }
    if (commit(s) < 0)
        return abort_tx(s);
    return 0;
}

static int sq_get_topic(struct metastore *m, const char *name, struct topic_info *out)
{
    struct sqlite_store *s = (struct sqlite_store *)m;
    int found = find_topic(s, name, out);
    return found < 0 ? -1 : found ? 0 : KERR_UNKNOWN_TOPIC_OR_PARTITION;
}

static int sq_list_topics(struct metastore *m, struct topic_info **out, int *n)
{
    struct sqlite_store *s = (struct sqlite_store *)m;
    sqlite3_stmt *q = stmt(s, S_TOPICS_LIST);
    struct topic_info *v = NULL;
    int count = 0, cap = 0, rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (count == cap) {
            cap = cap ? cap * 2 : 16;
            struct topic_info *nv = realloc(v, (size_t)cap * sizeof(*v));
            if (!nv)
                abort();
            v = nv;
        }
        read_topic(q, &v[count++]);
    }
    sqlite3_reset(q);
    if (rc != SQLITE_DONE) {
        free(v);
        return db_error(s, "list topics");
    }
    *out = v;
    *n = count;
    return 0;
}

static int sq_topic_configs(struct metastore *m, int64_t topic_id, struct topic_config **out, int *n)
{
    struct sqlite_store *s = (struct sqlite_store *)m;
    sqlite3_stmt *q = stmt(s, S_CONFIGS_LIST);
    sqlite3_bind_int64(q, 1, topic_id);
    struct topic_config *v = NULL;
    int count = 0, cap = 0, rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (count == cap) {
            cap = cap ? cap * 2 : 16;
            struct topic_config *nv = realloc(v, (size_t)cap * sizeof(*v));
            if (!nv)
                abort();
            v = nv;
        }
        snprintf(v[count].key, sizeof(v[count].key), "%s", (const char *)sqlite3_column_text(q, 0));
        snprintf(v[count].value, sizeof(v[count].value), "%s", (const char *)sqlite3_column_text(q, 1));
        count++;
    }
    sqlite3_reset(q);
    if (rc != SQLITE_DONE) {
        free(v);
        return db_error(s, "list topic configs");
    }
    *out = v;
    *n = count;
    return 0;
}

/* ---- CreatePartitions and AlterConfigs ---- */

static int sq_create_partitions(struct metastore *m, const char *name, int32_t partitions, struct topic_info *out)
{
    struct sqlite_store *s = (struct sqlite_store *)m;
    if (begin(s) < 0)
        return -1;
    struct topic_info t;
    int found = find_topic(s, name, &t);
    if (found != 1) {
        rollback(s);
        return found < 0 ? -1 : KERR_UNKNOWN_TOPIC_OR_PARTITION;
    }
    if (partitions <= t.partitions) {
        rollback(s);
        if (out)
            *out = t;
        return KERR_INVALID_PARTITIONS;
    }
    sqlite3_stmt *q = stmt(s, S_PARTITION_INSERT);
    sqlite3_bind_int64(q, 1, t.id);
    for (int32_t p = t.partitions; p < partitions; p++) {
        sqlite3_bind_int(q, 2, p);
        if (run(s, q, "insert partition") < 0)
            return abort_tx(s);
    }
    q = stmt(s, S_TOPIC_SET_PARTITIONS);
    sqlite3_bind_int64(q, 1, t.id);
    sqlite3_bind_int(q, 2, partitions);
    if (run(s, q, "grow topic") < 0)
        return abort_tx(s);
    if (commit(s) < 0)
        return abort_tx(s);
    t.partitions = partitions;
    if (out)
        *out = t;
    return 0;
}

static int sq_update_topic_configs(struct metastore *m, const char *name, topic_configs_edit edit, void *arg,
                                   struct topic_info *out)
{
    struct sqlite_store *s = (struct sqlite_store *)m;
    if (begin(s) < 0)
        return -1;
    struct topic_info t;
    int found = find_topic(s, name, &t);
    if (found != 1) {
        rollback(s);
        return found < 0 ? -1 : KERR_UNKNOWN_TOPIC_OR_PARTITION;
    }
    struct topic_config *cfgs = NULL;
    int n = 0;
    if (sq_topic_configs(m, t.id, &cfgs, &n) < 0)
        return abort_tx(s);
    int rc = edit(arg, &cfgs, &n);
    if (rc != 0) {
        free(cfgs);
        rollback(s);
        return rc;
    }
    sqlite3_stmt *q = stmt(s, S_TOPIC_DELETE_CONFIGS);
    sqlite3_bind_int64(q, 1, t.id);
    if (run(s, q, "replace topic configs") < 0)
        goto fail;
    q = stmt(s, S_CONFIG_INSERT);
    sqlite3_bind_int64(q, 1, t.id);
    for (int i = 0; i < n; i++) {
        sqlite3_bind_text(q, 2, cfgs[i].key, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 3, cfgs[i].value, -1, SQLITE_STATIC);
        if (run(s, q, "insert topic config") < 0)
            goto fail;
    }
    q = stmt(s, S_TOPIC_BUMP_CONFIG_EPOCH);
    sqlite3_bind_int64(q, 1, t.id);
    if (run(s, q, "bump config epoch") < 0 || commit(s) < 0)
        goto fail;
    free(cfgs);
    t.config_epoch++;
    if (out)
        *out = t;
    return 0;
fail:
    free(cfgs);
    return abort_tx(s);
}

/* ---- produce: one transaction per object ---- */

/* A failed commit assigns nothing: every chunk answers KAFKA_STORAGE_ERROR. */
static int fail_commit(struct sqlite_store *s, struct commit_chunk *chunks, int nchunks)
{
    rollback(s);
    for (int i = 0; i < nchunks; i++) {
        chunks[i].base_offset = -1;
        chunks[i].error = KERR_KAFKA_STORAGE_ERROR;
        chunks[i].duplicate = false;
    }
    return -1;
}

/* The stored state of the plan's producers (read under the write lock). 0 or -1. */
static int load_producers(struct sqlite_store *s, struct producer_plan *plan)
{
    for (int k = 0; k < plan->n; k++) {
        struct producer_entry *e = &plan->e[k];
        sqlite3_stmt *q = stmt(s, S_PRODUCER_STATE_GET);
        sqlite3_bind_int64(q, 1, e->producer_id);
        sqlite3_bind_int64(q, 2, e->topic_id);
        sqlite3_bind_int(q, 3, e->partition);
        int rc = sqlite3_step(q);
        if (rc == SQLITE_ROW)
            producer_entry_load(e, (int16_t)sqlite3_column_int(q, 0), (const char *)sqlite3_column_text(q, 1));
        sqlite3_reset(q);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE)
            return db_error(s, "read producer state");
    }
    return 0;
}

static int save_producers(struct sqlite_store *s, const struct producer_plan *plan)
{
    for (int k = 0; k < plan->n; k++) {
        const struct producer_entry *e = &plan->e[k];
        if (!e->dirty)
            continue;
        char batches[PRODUCER_BATCHES_TEXT_MAX];
        producer_entry_format(e, batches, sizeof(batches));
        sqlite3_stmt *q = stmt(s, S_PRODUCER_STATE_PUT);
        sqlite3_bind_int64(q, 1, e->producer_id);
        sqlite3_bind_int64(q, 2, e->topic_id);
        sqlite3_bind_int(q, 3, e->partition);
        sqlite3_bind_int(q, 4, e->epoch);
        sqlite3_bind_text(q, 5, batches, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 6, e->last_timestamp);
        if (run(s, q, "save producer state") < 0)
            return -1;
    }
    return 0;
}

/* Takes offset_count offsets of the chunk's partition if the topic is live and the partition
 * exists: 1 and *next (the new next_offset), 0 if not, -1 on a store error. */
static int advance_partition(struct sqlite_store *s, const struct commit_chunk *c, int64_t *next,
                             int64_t *running_max_ts)
{
    sqlite3_stmt *q = stmt(s, S_PARTITION_ADVANCE);
    sqlite3_bind_int64(q, 1, c->topic_id);
    sqlite3_bind_int(q, 2, c->partition);
    sqlite3_bind_int64(q, 3, c->offset_count);
    sqlite3_bind_int64(q, 4, c->max_timestamp);
    int found = 0, rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        *next = sqlite3_column_int64(q, 0);
        *running_max_ts = sqlite3_column_int64(q, 1);
        found = 1;
        rc = sqlite3_step(q);
    }
    sqlite3_reset(q);
    if (rc != SQLITE_DONE)
        return db_error(s, "advance partition offset");
    return found;
}

static int sq_commit_object(struct metastore *m, const char *object_key, uint64_t object_size,
                            struct commit_chunk *chunks, int nchunks)
{
    struct sqlite_store *s = (struct sqlite_store *)m;
    if (strlen(object_key) >= sizeof(((struct chunk_ref *)0)->object_key)) {
        log_error("metastore: object key too long: %s", object_key);
        return fail_commit(s, chunks, nchunks);
    }
    if (begin(s) < 0)
        return fail_commit(s, chunks, nchunks);
    sqlite3_stmt *q = stmt(s, S_OBJECT_INSERT);
    sqlite3_bind_text(q, 1, object_key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, (int64_t)object_size);
    sqlite3_bind_int64(q, 3, wall_ms());
    if (run(s, q, "insert object") < 0)
        return fail_commit(s, chunks, nchunks);
    int64_t object_id = sqlite3_last_insert_rowid(s->db);
    int inserted = 0;

    for (int i = 0; i < nchunks; i++) {
        struct commit_chunk *c = &chunks[i];
        c->base_offset = -1;
        c->duplicate = false;
        /* a chunk must take offsets: a caller bug, not the store's */
        c->error = c->offset_count < 1 ? KERR_INVALID_RECORD : 0;
    }
    /* Idempotent batches: checked against their producers' state, under the write lock. */
    struct producer_plan plan;
    producer_plan_init(&plan, chunks, nchunks);
    if (plan.n > 0 && load_producers(s, &plan) < 0) {
        producer_plan_free(&plan);
        return fail_commit(s, chunks, nchunks);
    }
    producer_plan_decide(&plan, chunks, nchunks);

    for (int i = 0; i < nchunks; i++) {
        struct commit_chunk *c = &chunks[i];
        if (!producer_chunk_appends(c))
            continue;
        int64_t next, running_max_ts;
        int found = advance_partition(s, c, &next, &running_max_ts);
        if (found < 0) {
            producer_plan_free(&plan);
            return fail_commit(s, chunks, nchunks);
        }
        if (!found) {
            c->error = KERR_UNKNOWN_TOPIC_OR_PARTITION; /* deleted meanwhile, or no such partition */
            continue;
        }
        c->base_offset = next - c->offset_count;
        q = stmt(s, S_CHUNK_INSERT);
        sqlite3_bind_int64(q, 1, c->topic_id);
        sqlite3_bind_int(q, 2, c->partition);
        sqlite3_bind_int64(q, 3, c->base_offset);
        sqlite3_bind_int64(q, 4, next - 1);
        sqlite3_bind_int64(q, 5, object_id);
        sqlite3_bind_int64(q, 6, (int64_t)c->pos);
        sqlite3_bind_int64(q, 7, c->len);
        sqlite3_bind_int(q, 8, c->batch_count);
        sqlite3_bind_int64(q, 9, c->first_timestamp);
        sqlite3_bind_int64(q, 10, c->max_timestamp);
        sqlite3_bind_int64(q, 11, running_max_ts);
        if (run(s, q, "insert chunk") < 0) {
            producer_plan_free(&plan);
            return fail_commit(s, chunks, nchunks);
        }
        inserted++;
    }
    producer_plan_settle(&plan, chunks, nchunks);
    if (inserted == 0) { /* every chunk refused or a duplicate: the object is garbage at once */
        q = stmt(s, S_GC_CANDIDATE_ADD);
        sqlite3_bind_int64(q, 1, object_id);
        if (run(s, q, "gc candidate") < 0) {
            producer_plan_free(&plan);
            return fail_commit(s, chunks, nchunks);
        }
    }
    int saved = save_producers(s, &plan);
    producer_plan_free(&plan);
    if (saved < 0 || commit(s) < 0)
        return fail_commit(s, chunks, nchunks);
    return 0;
}

/* ---- idempotent producers ---- */

static int sq_list_producers(struct metastore *m, int64_t topic_id, int32_t partition, struct producer_info **out,
                             int *n)
{
    struct sqlite_store *s = (struct sqlite_store *)m;
    sqlite3_stmt *q = stmt(s, S_PRODUCERS_LIST);
    sqlite3_bind_int64(q, 1, topic_id);
    sqlite3_bind_int(q, 2, partition);
    struct producer_info *v = NULL;
    int count = 0, cap = 0, rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (count == cap) {
            cap = cap ? cap * 2 : 16;
            struct producer_info *nv = realloc(v, (size_t)cap * sizeof(*v));
            if (!nv)
                abort();
            v = nv;
        }
        producer_info_from_row(&v[count++], sqlite3_column_int64(q, 0), (int16_t)sqlite3_column_int(q, 1),
                               (const char *)sqlite3_column_text(q, 2), sqlite3_column_int64(q, 3));
    }
    sqlite3_reset(q);
    if (rc != SQLITE_DONE) {
        free(v);
        return db_error(s, "list producers");
    }
    *out = v;
    *n = count;
    return 0;
}

static int new_producer(struct sqlite_store *s, int64_t *out_id, int16_t *out_epoch)
{
    sqlite3_stmt *q = stmt(s, S_PRODUCER_NEW);
    sqlite3_bind_int64(q, 1, wall_ms());
    if (run(s, q, "new producer id") < 0)
        return -1;
    *out_id = sqlite3_last_insert_rowid(s->db);
    *out_epoch = 0;
    return 0;
}

static int sq_init_producer(struct metastore *m, int64_t producer_id, int16_t epoch, int64_t *out_id,
                            int16_t *out_epoch)
{
    struct sqlite_store *s = (struct sqlite_store *)m;
    if (begin(s) < 0)
        return -1;
    int rc = 0;
    int64_t current = -1;
    if (producer_id >= 0) {
        sqlite3_stmt *q = stmt(s, S_PRODUCER_EPOCH);
        sqlite3_bind_int64(q, 1, producer_id);
        int step = sqlite3_step(q);
        if (step == SQLITE_ROW)
            current = sqlite3_column_int64(q, 0);
        sqlite3_reset(q);
        if (step != SQLITE_ROW && step != SQLITE_DONE) {
            db_error(s, "read producer epoch");
            return abort_tx(s);
        }
    }
    if (current >= 0 && epoch == current - 1) { /* a retry of the bump that made current */
        *out_id = producer_id;
        *out_epoch = (int16_t)current;
    } else if (current >= 0 && current != epoch) {
        rc = KERR_PRODUCER_FENCED;
    } else if (current >= 0 && current < PRODUCER_EPOCH_MAX) {
        sqlite3_stmt *q = stmt(s, S_PRODUCER_BUMP);
        sqlite3_bind_int64(q, 1, producer_id);
        if (run(s, q, "bump producer epoch") < 0)
            return abort_tx(s);
        *out_id = producer_id;
        *out_epoch = (int16_t)(current + 1);
    } else if (new_producer(s, out_id, out_epoch) < 0) { /* a new id, an unknown one, or epochs used up */
        return abort_tx(s);
    }
    if (rc) {
        rollback(s);
        return rc;
    }
    if (commit(s) < 0)
        return abort_tx(s);
    return 0;
}

/* ---- fetch and ListOffsets ---- */

static int sq_partition_offsets(struct metastore *m, int64_t topic_id, int32_t partition, int64_t *log_start,
                                int64_t *high_watermark)
{
    struct sqlite_store *s = (struct sqlite_store *)m;
    sqlite3_stmt *q = stmt(s, S_PARTITION_OFFSETS);
    sqlite3_bind_int64(q, 1, topic_id);
    sqlite3_bind_int(q, 2, partition);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        *log_start = sqlite3_column_int64(q, 0);
        *high_watermark = sqlite3_column_int64(q, 1);
    }
    sqlite3_reset(q);
    if (rc == SQLITE_ROW)
        return 0;
    if (rc == SQLITE_DONE)
        return KERR_UNKNOWN_TOPIC_OR_PARTITION;
    return db_error(s, "partition offsets");
}

static void read_chunk(sqlite3_stmt *q, struct chunk_ref *c)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->object_key, sizeof(c->object_key), "%s", (const char *)sqlite3_column_text(q, 0));
    c->pos = (uint64_t)sqlite3_column_int64(q, 1);
    c->len = (uint32_t)sqlite3_column_int64(q, 2);
    c->batch_count = sqlite3_column_int(q, 3);
    c->base_offset = sqlite3_column_int64(q, 4);
    c->last_offset = sqlite3_column_int64(q, 5);
    c->max_timestamp = sqlite3_column_int64(q, 6);
    c->object_size = (uint64_t)sqlite3_column_int64(q, 7);
    c->first_timestamp = sqlite3_column_int64(q, 8);
    c->cleaned = sqlite3_column_int(q, 9) != 0;
}

/* Runs one of the chunk queries (?1 topic, ?2 partition, ?3 bound, ?4 limit). */
static int chunk_query(struct sqlite_store *s, enum stmt_id id, int64_t topic_id, int32_t partition, int64_t bound,
                       struct chunk_ref *out, int max)
{
    if (max <= 0)
        return 0;
    sqlite3_stmt *q = stmt(s, id);
    sqlite3_bind_int64(q, 1, topic_id);
    sqlite3_bind_int(q, 2, partition);
    sqlite3_bind_int64(q, 3, bound);
    sqlite3_bind_int(q, 4, max);
    int n = 0, rc;
    while (n < max && (rc = sqlite3_step(q)) == SQLITE_ROW)
        read_chunk(q, &out[n++]);
    if (n == max)
        rc = SQLITE_DONE;
    sqlite3_reset(q);
    if (rc != SQLITE_DONE)
        return db_error(s, "find chunks");
    return n;
}

static int sq_find_chunks(struct metastore *m, int64_t topic_id, int32_t partition, int64_t from_offset,
                          struct chunk_ref *out, int max)
{
    return chunk_query((struct sqlite_store *)m, S_FIND_CHUNKS, topic_id, partition, from_offset, out, max);
}

static int sq_find_chunks_by_time(struct metastore *m, int64_t topic_id, int32_t partition, int64_t ts,
                                  struct chunk_ref *out, int max)
{
    return chunk_query((struct sqlite_store *)m, S_FIND_CHUNKS_BY_TIME, topic_id, partition, ts, out, max);
}

static int sq_max_timestamp(struct metastore *m, int64_t topic_id, int32_t partition, struct chunk_ref *out)
{
    struct sqlite_store *s = (struct sqlite_store *)m;
    sqlite3_stmt *q = stmt(s, S_MAX_TIMESTAMP);
    sqlite3_bind_int64(q, 1, topic_id);
    sqlite3_bind_int(q, 2, partition);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        read_chunk(q, out);
    sqlite3_reset(q);
    if (rc == SQLITE_ROW)
        return 0;
    if (rc == SQLITE_DONE)
        return 1;
    return db_error(s, "max timestamp");
}

/* ---- membership ---- */

/* Binds a fixed-size string field that may lack its terminator. */
static void bind_field(sqlite3_stmt *q, int col, const char *v, size_t size)
{
    sqlite3_bind_text(q, col, v, (int)strnlen(v, size), SQLITE_STATIC);
}

static int sq_heartbeat(struct metastore *m, const struct member_info *self)
{
    struct sqlite_store *s = (struct sqlite_store *)m;
    sqlite3_stmt *q = stmt(s, S_MEMBER_UPSERT);
    bind_field(q, 1, self->id, sizeof(self->id));
    bind_field(q, 2, self->agent_group, sizeof(self->agent_group));
    bind_field(q, 3, self->host, sizeof(self->host));
    sqlite3_bind_int(q, 4, self->port_base);
    sqlite3_bind_int(q, 5, self->worker);
    sqlite3_bind_int64(q, 6, wall_ms());
    bind_field(q, 7, self->fwd_addr, sizeof(self->fwd_addr));
    return run(s, q, "heartbeat");
}

static int sq_list_members(struct metastore *m, const char *agent_group, int64_t alive_within_ms,
                           struct member_info **out, int *n)
{
    struct sqlite_store *s = (struct sqlite_store *)m;
    sqlite3_stmt *q = stmt(s, S_MEMBERS_LIST);
    if (agent_group)
        sqlite3_bind_text(q, 1, agent_group, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, wall_ms() - alive_within_ms);
    struct member_info *v = NULL;
    int count = 0, cap = 0, rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (count == cap) {
            cap = cap ? cap * 2 : 16;
            struct member_info *nv = realloc(v, (size_t)cap * sizeof(*v));
            if (!nv)
                abort();
            v = nv;
        }
        struct member_info *mi = &v[count++];
        memset(mi, 0, sizeof(*mi));
        snprintf(mi->id, sizeof(mi->id), "%s", (const char *)sqlite3_column_text(q, 0));
        snprintf(mi->agent_group, sizeof(mi->agent_group), "%s", (const char *)sqlite3_column_text(q, 1));
        snprintf(mi->host, sizeof(mi->host), "%s", (const char *)sqlite3_column_text(q, 2));
        mi->port_base = sqlite3_column_int(q, 3);
        mi->worker = sqlite3_column_int(q, 4);
        mi->heartbeat_ms = sqlite3_column_int64(q, 5);
        snprintf(mi->fwd_addr, sizeof(mi->fwd_addr), "%s", (const char *)sqlite3_column_text(q, 6));
    }
    sqlite3_reset(q);
    if (rc != SQLITE_DONE) {
        free(v);
        return db_error(s, "list members");
    }
    *out = v;
    *n = count;
    return 0;
}

static int sq_remove_member(struct metastore *m, const char *id)
{
    struct sqlite_store *s = (struct sqlite_store *)m;
    sqlite3_stmt *q = stmt(s, S_MEMBER_DELETE);
    sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
    return run(s, q, "remove member");
}

static int sq_prune_members(struct metastore *m, int64_t older_than_ms)
{
    struct sqlite_store *s = (struct sqlite_store *)m;
    sqlite3_stmt *q = stmt(s, S_MEMBERS_PRUNE);
    sqlite3_bind_int64(q, 1, wall_ms() - older_than_ms);
    return run(s, q, "prune members");
}

/* ---- consumer groups (statements prepared per call: a few per request at most) ---- */

static sqlite3_stmt *prepare(struct sqlite_store *s, const char *sql)
{
    sqlite3_stmt *q = NULL;
    s->base.counters.statements++;
    if (sqlite3_prepare_v2(s->db, sql, -1, &q, NULL) != SQLITE_OK) {
        db_error(s, "prepare");
        sqlite3_finalize(q);
        return NULL;
    }
    return q;
}

static int sq_group_load(struct metastore *m, const char *group_id, uint8_t **data, size_t *len, int64_t *version)
{
    struct sqlite_store *s = (struct sqlite_store *)m;
    sqlite3_stmt *q = prepare(s, "SELECT version, state FROM consumer_groups WHERE group_id = ?1");
    if (!q)
        return -1;
    sqlite3_bind_text(q, 1, group_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q), result = 1;
    *version = 0;
    *data = NULL;
    *len = 0;
    if (rc == SQLITE_ROW) {
        *version = sqlite3_column_int64(q, 0);
        int n = sqlite3_column_bytes(q, 1);
        *data = malloc(n > 0 ? (size_t)n : 1);
        if (!*data)
            abort();
        if (n > 0)
            memcpy(*data, sqlite3_column_blob(q, 1), (size_t)n);
        *len = (size_t)n;
        result = 0;
    } else if (rc != SQLITE_DONE) {
        result = db_error(s, "load group");
    }
    sqlite3_finalize(q);
    return result;
}

static int sq_group_store(struct metastore *m, const char *group_id, int64_t version, int phase,
                          const char *protocol_type, const uint8_t *data, size_t len, bool announce)
{
    (void)announce; /* SQLite has no notifications: other processes poll */
    struct sqlite_store *s = (struct sqlite_store *)m;
    sqlite3_stmt *q = prepare(s, version == 0
        ? "INSERT INTO consumer_groups (group_id, version, phase, protocol_type, state, updated_ms)"
          " VALUES (?1, 1, ?3, ?4, ?5, ?6) ON CONFLICT (group_id) DO NOTHING"
        : "UPDATE consumer_groups SET version = ?2 + 1, phase = ?3, protocol_type = ?4, state = ?5,"
          " updated_ms = ?6 WHERE group_id = ?1 AND version = ?2");
    if (!q)
        return -1;
    sqlite3_bind_text(q, 1, group_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, version);
    sqlite3_bind_int(q, 3, phase);
    sqlite3_bind_text(q, 4, protocol_type ? protocol_type : "", -1, SQLITE_STATIC);
    sqlite3_bind_blob(q, 5, data, (int)len, SQLITE_STATIC);
    sqlite3_bind_int64(q, 6, wall_ms());
    int rc = sqlite3_step(q);
    int result = rc == SQLITE_DONE ? (sqlite3_changes(s->db) == 1 ? 0 : 1) : db_error(s, "store group");
    sqlite3_finalize(q);
    return result;
}

static int sq_groups_list(struct metastore *m, struct group_summary **out, int *n)
{
    struct sqlite_store *s = (struct sqlite_store *)m;
    /* Groups with state, and those that only committed offsets (simple consumers: Empty). */
    sqlite3_stmt *q = prepare(s, "SELECT group_id, phase, protocol_type FROM consumer_groups UNION"
                                 " SELECT DISTINCT group_id, 0, '' FROM group_offsets"
                                 " WHERE group_id NOT IN (SELECT group_id FROM consumer_groups) ORDER BY 1");
    if (!q)
        return -1;
    struct group_summary *v = NULL;
    int count = 0, rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        struct group_summary *nv = realloc(v, sizeof(*v) * (size_t)(count + 1));
        if (!nv)
            abort();
        v = nv;
        snprintf(v[count].group_id, sizeof(v[count].group_id), "%s", (const char *)sqlite3_column_text(q, 0));
        v[count].phase = sqlite3_column_int(q, 1);
        snprintf(v[count].protocol_type, sizeof(v[count].protocol_type), "%s",
                 (const char *)sqlite3_column_text(q, 2));
        count++;
    }
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE) {
        free(v);
        return db_error(s, "list groups");
    }
    *out = v;
    *n = count;
    return 0;
}

static int sq_offsets_commit(struct metastore *m, const char *group_id, const struct group_offset *v, int n)
{
    struct sqlite_store *s = (struct sqlite_store *)m;
    sqlite3_stmt *q = prepare(s, "INSERT OR REPLACE INTO group_offsets (group_id, topic, partition, committed_offset,"
                                 " leader_epoch, metadata, commit_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
    if (!q)
        return -1;
    if (begin(s) != 0) {
        sqlite3_finalize(q);
        return -1;
    }
    int64_t now = wall_ms();
    for (int i = 0; i < n; i++) {
        sqlite3_reset(q);
        sqlite3_clear_bindings(q);
        sqlite3_bind_text(q, 1, group_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, v[i].topic, -1, SQLITE_STATIC);
        sqlite3_bind_int(q, 3, v[i].partition);
        sqlite3_bind_int64(q, 4, v[i].offset);
        sqlite3_bind_int(q, 5, v[i].leader_epoch);
        if (v[i].metadata)
            sqlite3_bind_text(q, 6, v[i].metadata, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 7, now);
        if (sqlite3_step(q) != SQLITE_DONE) {
            db_error(s, "commit offsets");
            sqlite3_finalize(q);
            return abort_tx(s);
        }
    }
    sqlite3_finalize(q);
    return commit(s) == 0 ? 0 : abort_tx(s);
}

static int sq_offsets_fetch(struct metastore *m, const char *group_id, struct group_offset **out, int *n)
{
    struct sqlite_store *s = (struct sqlite_store *)m;
    sqlite3_stmt *q = prepare(s, "SELECT topic, partition, committed_offset, leader_epoch, metadata, commit_ms"
                                 " FROM group_offsets WHERE group_id = ?1 ORDER BY topic, partition");
    if (!q)
        return -1;
    sqlite3_bind_text(q, 1, group_id, -1, SQLITE_STATIC);
    struct group_offset *v = NULL;
    int count = 0, rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        struct group_offset *nv = realloc(v, sizeof(*v) * (size_t)(count + 1));
        if (!nv)
            abort();
        v = nv;
        struct group_offset *o = &v[count++];
        memset(o, 0, sizeof(*o));
        o->topic = strdup((const char *)sqlite3_column_text(q, 0));
        o->partition = sqlite3_column_int(q, 1);
        o->offset = sqlite3_column_int64(q, 2);
        o->leader_epoch = sqlite3_column_int(q, 3);
        if (sqlite3_column_type(q, 4) != SQLITE_NULL)
            o->metadata = strdup((const char *)sqlite3_column_text(q, 4));
        o->commit_ms = sqlite3_column_int64(q, 5);
        if (!o->topic || (sqlite3_column_type(q, 4) != SQLITE_NULL && !o->metadata))
            abort();
    }
    sqlite3_finalize(q);
    v = group_offsets_pack(v, count);
    if (rc != SQLITE_DONE) {
        free(v);
        return db_error(s, "fetch offsets");
    }
    *out = v;
    *n = count;
    return 0;
}

static int sq_offsets_expire(struct metastore *m, int64_t older_than_ms)
{
    struct sqlite_store *s = (struct sqlite_store *)m;
    sqlite3_stmt *q = prepare(s, "DELETE FROM group_offsets WHERE commit_ms < ?1 AND group_id NOT IN"
                                 " (SELECT group_id FROM consumer_groups WHERE phase != 0)");
    if (!q)
        return -1;
    sqlite3_bind_int64(q, 1, wall_ms() - older_than_ms);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? 0 : db_error(s, "expire offsets");
}

/* Runs one prepared-per-call statement with a group id and up to two more bindings; the number of
 * rows it changed, or -1. */
static int group_exec(struct sqlite_store *s, const char *sql, const char *group_id, const char *topic,
                      int64_t num, const char *what)
{
    sqlite3_stmt *q = prepare(s, sql);
    if (!q)
        return -1;
    sqlite3_bind_text(q, 1, group_id, -1, SQLITE_STATIC);
    if (sqlite3_bind_parameter_count(q) >= 2)
        topic ? sqlite3_bind_text(q, 2, topic, -1, SQLITE_STATIC) : sqlite3_bind_int64(q, 2, num);
    if (sqlite3_bind_parameter_count(q) >= 3)
        sqlite3_bind_int64(q, 3, num);
    int rc = sqlite3_step(q);
    bool readonly = sqlite3_stmt_readonly(q);
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        return db_error(s, what);
    /* a SELECT: whether it found a row (sqlite3_changes would be the previous write's count) */
    return readonly ? rc == SQLITE_ROW : sqlite3_changes(s->db);
}

static int sq_group_delete(struct metastore *m, const char *group_id, int64_t version)
{
    struct sqlite_store *s = (struct sqlite_store *)m;
    if (begin(s) != 0)
        return -1;
    int n = version > 0 ? group_exec(s, "DELETE FROM consumer_groups WHERE group_id = ?1 AND version = ?2", group_id,
                                     NULL, version, "delete group")
                        : group_exec(s, "SELECT 1 FROM consumer_groups WHERE group_id = ?1", group_id, NULL, 0,
                                     "delete group");
    if (n < 0)
        return abort_tx(s);
    if ((version > 0) != (n == 1)) { /* changed (or created) meanwhile */
        rollback(s);
        return 1;
    }
    int offsets = group_exec(s, "DELETE FROM group_offsets WHERE group_id = ?1", group_id, NULL, 0, "delete group");
    if (offsets < 0)
        return abort_tx(s);
    if (commit(s) != 0)
        return abort_tx(s);
    return version == 0 && offsets == 0 ? KERR_GROUP_ID_NOT_FOUND : 0;
}

static int sq_offsets_delete(struct metastore *m, const char *group_id, const struct group_offset *v, int n)
{
    struct sqlite_store *s = (struct sqlite_store *)m;
    if (begin(s) != 0)
        return -1;
    for (int i = 0; i < n; i++)
        if (group_exec(s, "DELETE FROM group_offsets WHERE group_id = ?1 AND topic = ?2 AND partition = ?3", group_id,
                       v[i].topic, v[i].partition, "delete offsets") < 0)
            return abort_tx(s);
    return commit(s) == 0 ? 0 : abort_tx(s);
}

/* No cross-process wake-ups: SQLite readers poll. */
/* ---- ACLs ---- */

static int sq_acl_add(struct metastore *m, const struct acl_entry *e)
{
    struct sqlite_store *s = (struct sqlite_store *)m;
    sqlite3_stmt *q = prepare(s, "INSERT OR IGNORE INTO acls (resource_type, resource_name, pattern_type, principal,"
                                 " host, operation, permission) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
    if (!q)
        return -1;
    sqlite3_bind_int(q, 1, e->resource_type);
    sqlite3_bind_text(q, 2, e->resource_name, -1, SQLITE_STATIC);
    sqlite3_bind_int(q, 3, e->pattern_type);
    sqlite3_bind_text(q, 4, e->principal, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 5, e->host, -1, SQLITE_STATIC);
    sqlite3_bind_int(q, 6, e->operation);
    sqlite3_bind_int(q, 7, e->permission);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? 0 : db_error(s, "add acl");
}

static int sq_acl_list(struct metastore *m, struct acl_entry **out, int *n)
{
    struct sqlite_store *s = (struct sqlite_store *)m;
    sqlite3_stmt *q = prepare(s, "SELECT id, resource_type, resource_name, pattern_type, principal, host, operation,"
                                 " permission FROM acls ORDER BY id");
    if (!q)
        return -1;
    struct acl_entry *v = NULL;
    int count = 0, rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        struct acl_entry *nv = realloc(v, sizeof(*v) * (size_t)(count + 1));
        if (!nv)
            abort();
        v = nv;
        struct acl_entry *e = &v[count++];
        e->id = sqlite3_column_int64(q, 0);
        e->resource_type = (int8_t)sqlite3_column_int(q, 1);
        snprintf(e->resource_name, sizeof(e->resource_name), "%s", (const char *)sqlite3_column_text(q, 2));
        e->pattern_type = (int8_t)sqlite3_column_int(q, 3);
        snprintf(e->principal, sizeof(e->principal), "%s", (const char *)sqlite3_column_text(q, 4));
        snprintf(e->host, sizeof(e->host), "%s", (const char *)sqlite3_column_text(q, 5));
        e->operation = (int8_t)sqlite3_column_int(q, 6);
        e->permission = (int8_t)sqlite3_column_int(q, 7);
    }
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE) {
        free(v);
        return db_error(s, "list acls");
    }
    *out = v;
    *n = count;
    return 0;
}

static int sq_acl_delete(struct metastore *m, int64_t id)
{
    struct sqlite_store *s = (struct sqlite_store *)m;
    sqlite3_stmt *q = prepare(s, "DELETE FROM acls WHERE id = ?1");
    if (!q)
        return -1;
    sqlite3_bind_int64(q, 1, id);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? 0 : db_error(s, "delete acl");
}

/* ---- background jobs: leases, retention, garbage objects ---- */

static int sq_lease_acquire(struct metastore *m, const char *kind, const char *owner, int64_t ttl_ms)
{
    struct sqlite_store *s = (struct sqlite_store *)m;
    /* One statement: insert, or take over only from ourselves or an expired holder. */
    sqlite3_stmt *q = prepare(s, "INSERT INTO job_leases (kind, owner, expires_ms) VALUES (?1, ?2, ?3 + ?4)"
                                 " ON CONFLICT (kind) DO UPDATE SET owner = excluded.owner,"
                                 " expires_ms = excluded.expires_ms"
                                 " WHERE job_leases.owner = excluded.owner OR job_leases.expires_ms < ?3");
    if (!q)
        return -1;
    sqlite3_bind_text(q, 1, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, owner, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 3, wall_ms());
    sqlite3_bind_int64(q, 4, ttl_ms);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE)
        return db_error(s, "acquire lease");
    return sqlite3_changes(s->db) == 1 ? 0 : 1;
}

static int sq_lease_release(struct metastore *m, const char *kind, const char *owner)
{
    struct sqlite_store *s = (struct sqlite_store *)m;
    sqlite3_stmt *q = prepare(s, "DELETE FROM job_leases WHERE kind = ?1 AND owner = ?2");
    if (!q)
        return -1;
    sqlite3_bind_text(q, 1, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, owner, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? 0 : db_error(s, "release lease");
}

/* One statement, so the chunks and the high watermark are read at one point in time. */
static int sq_retention_offset(struct metastore *m, int64_t topic_id, int32_t partition, int64_t min_timestamp,
                               int64_t max_bytes, int64_t *offset)
{
    struct sqlite_store *s = (struct sqlite_store *)m;
    sqlite3_stmt *q = prepare(
        s, "SELECT next_offset,"
           " (SELECT base_offset FROM chunks INDEXED BY chunks_by_running_max_timestamp"
           "  WHERE topic_id = ?1 AND partition = ?2 AND running_max_timestamp >= ?3"
           "  ORDER BY running_max_timestamp, base_offset LIMIT 1),"
           " CASE WHEN ?4 < 0 THEN NULL ELSE (SELECT min(base_offset) FROM (SELECT base_offset, len,"
           "   sum(len) OVER (ORDER BY base_offset DESC) AS newer FROM chunks WHERE topic_id = ?1 AND partition = ?2)"
           "   WHERE newer - len < ?4) END"
           " FROM partitions WHERE topic_id = ?1 AND partition = ?2");
    if (!q)
        return -1;
    sqlite3_bind_int64(q, 1, topic_id);
    sqlite3_bind_int(q, 2, partition);
    sqlite3_bind_int64(q, 3, min_timestamp);
    sqlite3_bind_int64(q, 4, max_bytes);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        int64_t keep = sqlite3_column_int64(q, 0); /* no chunk kept: everything up to the high watermark goes */
        if (sqlite3_column_type(q, 1) != SQLITE_NULL) {
            keep = sqlite3_column_int64(q, 1);
            if (sqlite3_column_type(q, 2) != SQLITE_NULL && sqlite3_column_int64(q, 2) > keep)
                keep = sqlite3_column_int64(q, 2);
        }
        *offset = keep;
    }
    sqlite3_finalize(q);
    if (rc == SQLITE_ROW)
        return 0;
    if (rc == SQLITE_DONE)
        return KERR_UNKNOWN_TOPIC_OR_PARTITION;
    return db_error(s, "retention offset");
}

static int sq_trim_partition(struct metastore *m, int64_t topic_id, int32_t partition, int64_t offset,
                             int64_t *log_start, int *chunks_removed)
{
    struct sqlite_store *s = (struct sqlite_store *)m;
    if (begin(s) < 0)
        return -1;
    int64_t start, hwm;
    int rc = sq_partition_offsets(m, topic_id, partition, &start, &hwm);
    if (rc != 0) {
        rollback(s);
        return rc;
    }
    if (offset < 0)
        offset = hwm;
    if (offset > hwm) {
        rollback(s);
        return KERR_OFFSET_OUT_OF_RANGE;
    }
    *chunks_removed = 0;
    if (offset > start) {
        static const char *const sql[2] = {
            "INSERT OR IGNORE INTO gc_candidates SELECT DISTINCT object_id FROM chunks"
            " WHERE topic_id = ?1 AND partition = ?2 AND last_offset < ?3",
            "DELETE FROM chunks WHERE topic_id = ?1 AND partition = ?2 AND last_offset < ?3"};
        for (int i = 0; i < 2; i++) {
            sqlite3_stmt *q = prepare(s, sql[i]);
            if (!q)
                return abort_tx(s);
            sqlite3_bind_int64(q, 1, topic_id);
            sqlite3_bind_int(q, 2, partition);
            sqlite3_bind_int64(q, 3, offset);
            rc = sqlite3_step(q);
            sqlite3_finalize(q);
            if (rc != SQLITE_DONE)
                return db_error(s, "trim chunks"), abort_tx(s);
        }
        *chunks_removed = sqlite3_changes(s->db);
        sqlite3_stmt *q = prepare(s, "UPDATE partitions SET log_start_offset = ?3 WHERE topic_id = ?1 AND partition = ?2");
        if (!q)
            return abort_tx(s);
        sqlite3_bind_int64(q, 1, topic_id);
        sqlite3_bind_int(q, 2, partition);
        sqlite3_bind_int64(q, 3, offset);
        rc = sqlite3_step(q);
        sqlite3_finalize(q);
        if (rc != SQLITE_DONE)
            return db_error(s, "move log start"), abort_tx(s);
        start = offset;
    }
    if (commit(s) < 0)
        return abort_tx(s);
    *log_start = start;
    return 0;
}

/* A statement over a run's chunks: ?1 topic, ?2 partition, ?3..?4 base offsets. */
static sqlite3_stmt *prepare_over(struct sqlite_store *s, const char *sql, const struct chunk_replacement *r)
{
    sqlite3_stmt *q = prepare(s, sql);
    if (q) {
        sqlite3_bind_int64(q, 1, r->topic_id);
        sqlite3_bind_int(q, 2, r->partition);
        sqlite3_bind_int64(q, 3, r->base_offset);
        sqlite3_bind_int64(q, 4, r->last_offset);
    }
    return q;
}

static int run_over(struct sqlite_store *s, const char *sql, const struct chunk_replacement *r, const char *what)
{
    sqlite3_stmt *q = prepare_over(s, sql, r);
    if (!q)
        return -1;
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? 0 : db_error(s, what);
}

/* One run: checked against what is stored, then switched. 1 replaced, 0 changed meanwhile, -1. */
static int replace_run(struct sqlite_store *s, int64_t object_id, struct chunk_replacement *r)
{
    sqlite3_stmt *q = prepare_over(s, "SELECT count(*), min(base_offset), max(last_offset), max(max_timestamp),"
                                      " max(running_max_timestamp), (SELECT first_timestamp FROM chunks"
                                      "  WHERE topic_id = ?1 AND partition = ?2 AND base_offset = ?3)"
                                      " FROM chunks WHERE topic_id = ?1 AND partition = ?2"
                                      " AND base_offset >= ?3 AND base_offset <= ?4", r);
    if (!q)
        return -1;
    if (sqlite3_step(q) != SQLITE_ROW) {
        sqlite3_finalize(q);
        return db_error(s, "read chunks to replace");
    }
    bool same = sqlite3_column_int64(q, 0) == r->old_chunks && sqlite3_column_int64(q, 1) == r->base_offset &&
                sqlite3_column_int64(q, 2) == r->last_offset;
    int64_t max_ts = sqlite3_column_int64(q, 3), running = sqlite3_column_int64(q, 4);
    int64_t first_ts = sqlite3_column_int64(q, 5);
    sqlite3_finalize(q);
    if (!same)
        return 0;
    if (run_over(s, "INSERT OR IGNORE INTO gc_candidates SELECT DISTINCT object_id FROM chunks"
                    " WHERE topic_id = ?1 AND partition = ?2 AND base_offset >= ?3 AND base_offset <= ?4",
                 r, "replace chunks") < 0 ||
        run_over(s, "DELETE FROM chunks WHERE topic_id = ?1 AND partition = ?2 AND base_offset >= ?3"
                    " AND base_offset <= ?4",
                 r, "replace chunks") < 0)
        return -1;
    q = prepare_over(s, "INSERT INTO chunks (topic_id, partition, base_offset, last_offset, object_id, pos, len,"
                        " batch_count, first_timestamp, max_timestamp, running_max_timestamp, cleaned)"
                        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)", r);
    if (!q)
        return -1;
    sqlite3_bind_int64(q, 5, object_id);
    sqlite3_bind_int64(q, 6, (int64_t)r->pos);
    sqlite3_bind_int64(q, 7, r->len);
    sqlite3_bind_int(q, 8, r->batch_count);
    sqlite3_bind_int64(q, 9, first_ts);
    sqlite3_bind_int64(q, 10, max_ts);
    sqlite3_bind_int64(q, 11, running);
    sqlite3_bind_int(q, 12, r->cleaned);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? 1 : db_error(s, "insert replacing chunk");
}

static int sq_replace_chunks(struct metastore *m, const char *object_key, uint64_t object_size,
                             struct chunk_replacement *runs, int n)
{
    struct sqlite_store *s = (struct sqlite_store *)m;
    if (strlen(object_key) >= OBJECT_KEY_MAX) {
        log_error("metastore: object key too long: %s", object_key);
        return -1;
    }
    if (begin(s) < 0)
        return -1;
    sqlite3_stmt *q = stmt(s, S_OBJECT_INSERT);
    sqlite3_bind_text(q, 1, object_key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, (int64_t)object_size);
    sqlite3_bind_int64(q, 3, wall_ms());
    if (run(s, q, "insert object") < 0)
        return abort_tx(s);
    int64_t object_id = sqlite3_last_insert_rowid(s->db);
    int replaced = 0;
    for (int i = 0; i < n; i++) {
        int rc = replace_run(s, object_id, &runs[i]);
        if (rc < 0)
            return abort_tx(s);
        runs[i].replaced = rc == 1;
        replaced += rc;
    }
    if (replaced == 0) { /* nothing went into it: garbage once the grace period has passed */
        q = stmt(s, S_GC_CANDIDATE_ADD);
        sqlite3_bind_int64(q, 1, object_id);
        if (run(s, q, "gc candidate") < 0)
            return abort_tx(s);
    }
    if (commit(s) < 0)
        return abort_tx(s);
    return replaced;
}

static int sq_log_starts(struct metastore *m, struct log_start_row **out, int *n)
{
    struct sqlite_store *s = (struct sqlite_store *)m;
    sqlite3_stmt *q = prepare(s, "SELECT topic_id, partition, log_start_offset FROM partitions"
                                 " WHERE log_start_offset > 0");
    if (!q)
        return -1;
    struct log_start_row *v = NULL;
    int count = 0, rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        struct log_start_row *nv = realloc(v, sizeof(*v) * (size_t)(count + 1));
        if (!nv)
            abort();
        v = nv;
        v[count].topic_id = sqlite3_column_int64(q, 0);
        v[count].partition = sqlite3_column_int(q, 1);
        v[count].log_start = sqlite3_column_int64(q, 2);
        count++;
    }
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE) {
        free(v);
        return db_error(s, "list log starts");
    }
    *out = v;
    *n = count;
    return 0;
}

static int sq_objects_unreferenced(struct metastore *m, int64_t grace_ms, int max, char (**keys)[OBJECT_KEY_MAX],
                                   int *n)
{
    struct sqlite_store *s = (struct sqlite_store *)m;
    int64_t now = wall_ms();
    /* Only objects that lost chunks are looked at; they are checked once, in one transaction. */
    if (begin(s) < 0)
        return -1;
    sqlite3_stmt *q = prepare(s, "UPDATE objects SET unreferenced_ms = ?1 WHERE unreferenced_ms IS NULL"
                                 " AND id IN (SELECT object_id FROM gc_candidates)"
                                 " AND NOT EXISTS (SELECT 1 FROM chunks c WHERE c.object_id = objects.id)");
    if (!q)
        return abort_tx(s);
    sqlite3_bind_int64(q, 1, now);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE)
        return db_error(s, "stamp unreferenced objects"), abort_tx(s);
    q = prepare(s, "DELETE FROM gc_candidates");
    if (!q)
        return abort_tx(s);
    rc = sqlite3_step(q);
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE)
        return db_error(s, "clear gc candidates"), abort_tx(s);
    if (commit(s) < 0)
        return abort_tx(s);
    q = prepare(s, "SELECT key FROM objects WHERE unreferenced_ms <= ?1 ORDER BY unreferenced_ms LIMIT ?2");
    if (!q)
        return -1;
    sqlite3_bind_int64(q, 1, now - grace_ms);
    sqlite3_bind_int(q, 2, max);
    char(*v)[OBJECT_KEY_MAX] = NULL;
    int count = 0;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        char(*nv)[OBJECT_KEY_MAX] = realloc(v, sizeof(*v) * (size_t)(count + 1));
        if (!nv)
            abort();
        v = nv;
        snprintf(v[count++], OBJECT_KEY_MAX, "%s", (const char *)sqlite3_column_text(q, 0));
    }
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE) {
        free(v);
        return db_error(s, "list unreferenced objects");
    }
    *keys = v;
    *n = count;
    return 0;
}

static int sq_object_forget(struct metastore *m, const char *key)
{
    struct sqlite_store *s = (struct sqlite_store *)m;
    sqlite3_stmt *q = prepare(s, "DELETE FROM objects WHERE key = ?1"
                                 " AND NOT EXISTS (SELECT 1 FROM chunks c WHERE c.object_id = objects.id)");
    if (!q)
        return -1;
    sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? 0 : db_error(s, "forget object");
}

static int sq_object_known(struct metastore *m, const char *key)
{
    struct sqlite_store *s = (struct sqlite_store *)m;
    sqlite3_stmt *q = prepare(s, "SELECT 1 FROM objects WHERE key = ?1");
    if (!q)
        return -1;
    sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    if (rc == SQLITE_ROW)
        return 1;
    return rc == SQLITE_DONE ? 0 : db_error(s, "look up object");
}

static int sq_notify_fd(struct metastore *m)
{
    (void)m;
    return -1;
}

static int sq_consume_notifications(struct metastore *m)
{
    (void)m;
    return 0;
}

/* ---- open / close ---- */

static void sq_close(struct metastore *m)
{
    struct sqlite_store *s = (struct sqlite_store *)m;
    for (int i = 0; i < S_COUNT; i++)
        sqlite3_finalize(s->stmt[i]);
    sqlite3_close(s->db);
    free(s);
}

/* ---- SASL credentials ---- */

static int sq_cred_put(struct metastore *m, const struct sasl_credential *c)
{
    struct sqlite_store *s = (struct sqlite_store *)m;
    sqlite3_stmt *q = prepare(s, "INSERT INTO sasl_credentials (username, mechanism, salt, iterations, stored_key,"
                                 " server_key) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (username, mechanism)"
                                 " DO UPDATE SET salt = ?3, iterations = ?4, stored_key = ?5, server_key = ?6");
    if (!q)
        return -1;
    sqlite3_bind_text(q, 1, c->user, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, c->mechanism, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 3, c->salt, -1, SQLITE_STATIC);
    sqlite3_bind_int(q, 4, c->iterations);
    sqlite3_bind_text(q, 5, c->stored_key, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 6, c->server_key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q) == SQLITE_DONE ? 0 : db_error(s, "store credential");
    sqlite3_finalize(q);
    return rc;
}

static int sq_cred_delete(struct metastore *m, const char *user, const char *mechanism)
{
    struct sqlite_store *s = (struct sqlite_store *)m;
    sqlite3_stmt *q = prepare(s, "DELETE FROM sasl_credentials WHERE username = ?1 AND (?2 IS NULL OR mechanism = ?2)");
    if (!q)
        return -1;
    sqlite3_bind_text(q, 1, user, -1, SQLITE_STATIC);
    if (mechanism)
        sqlite3_bind_text(q, 2, mechanism, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q) == SQLITE_DONE ? sqlite3_changes(s->db) : db_error(s, "delete credential");
    sqlite3_finalize(q);
    return rc;
}

static int sq_cred_list(struct metastore *m, const char *user, const char *mechanism, struct sasl_credential **out,
                        int *n)
{
    struct sqlite_store *s = (struct sqlite_store *)m;
    sqlite3_stmt *q = prepare(s, "SELECT username, mechanism, salt, iterations, stored_key, server_key FROM"
                                 " sasl_credentials WHERE (?1 IS NULL OR username = ?1) AND (?2 IS NULL OR"
                                 " mechanism = ?2) ORDER BY username, mechanism");
    if (!q)
        return -1;
    if (user)
        sqlite3_bind_text(q, 1, user, -1, SQLITE_STATIC);
    if (mechanism)
        sqlite3_bind_text(q, 2, mechanism, -1, SQLITE_STATIC);
    struct sasl_credential *v = NULL;
    int count = 0, rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        struct sasl_credential *nv = realloc(v, sizeof(*v) * (size_t)(count + 1));
        if (!nv)
            abort();
        v = nv;
        struct sasl_credential *c = &v[count++];
        snprintf(c->user, sizeof(c->user), "%s", (const char *)sqlite3_column_text(q, 0));
        snprintf(c->mechanism, sizeof(c->mechanism), "%s", (const char *)sqlite3_column_text(q, 1));
        snprintf(c->salt, sizeof(c->salt), "%s", (const char *)sqlite3_column_text(q, 2));
        c->iterations = sqlite3_column_int(q, 3);
        snprintf(c->stored_key, sizeof(c->stored_key), "%s", (const char *)sqlite3_column_text(q, 4));
        snprintf(c->server_key, sizeof(c->server_key), "%s", (const char *)sqlite3_column_text(q, 5));
    }
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE) {
        free(v);
        return db_error(s, "list credentials");
    }
    *out = v;
    *n = count;
    return 0;
}

static const struct metastore_ops sqlite_ops = {
    .close = sq_close,
    .create_topic = sq_create_topic,
    .delete_topic = sq_delete_topic,
    .get_topic = sq_get_topic,
    .list_topics = sq_list_topics,
    .topic_configs = sq_topic_configs,
    .create_partitions = sq_create_partitions,
    .update_topic_configs = sq_update_topic_configs,
    .commit_object = sq_commit_object,
    .init_producer = sq_init_producer,
    .list_producers = sq_list_producers,
    .partition_offsets = sq_partition_offsets,
    .find_chunks = sq_find_chunks,
    .find_chunks_by_time = sq_find_chunks_by_time,
    .max_timestamp = sq_max_timestamp,
    .heartbeat = sq_heartbeat,
    .list_members = sq_list_members,
    .remove_member = sq_remove_member,
    .prune_members = sq_prune_members,
    .group_load = sq_group_load,
    .group_store = sq_group_store,
    .groups_list = sq_groups_list,
    .offsets_commit = sq_offsets_commit,
    .offsets_fetch = sq_offsets_fetch,
    .offsets_expire = sq_offsets_expire,
    .group_delete = sq_group_delete,
    .offsets_delete = sq_offsets_delete,
    .acl_add = sq_acl_add,
    .acl_list = sq_acl_list,
    .acl_delete = sq_acl_delete,
    .lease_acquire = sq_lease_acquire,
    .lease_release = sq_lease_release,
    .retention_offset = sq_retention_offset,
    .trim_partition = sq_trim_partition,
    .replace_chunks = sq_replace_chunks,
    .log_starts = sq_log_starts,
    .objects_unreferenced = sq_objects_unreferenced,
    .object_forget = sq_object_forget,
    .object_known = sq_object_known,
    .notify_fd = sq_notify_fd,
    .consume_notifications = sq_consume_notifications,
    .cred_put = sq_cred_put,
    .cred_delete = sq_cred_delete,
    .cred_list = sq_cred_list,
};

/* Creates the folders above the database file; fsyncs the parent of each one it creates. */
static int make_parent_dirs(const char *path)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s", path);
    for (char *p = tmp + 1; (p = strchr(p, '/')); p++) {
        if (p[-1] == '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0755) == 0) {
            char *slash = strrchr(tmp, '/');
            const char *parent = !slash ? "." : slash == tmp ? "/" : tmp;
            if (slash && slash != tmp)
                *slash = '\0';
            int fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (slash && slash != tmp)
                *slash = '/';
            if (fd < 0 || fsync(fd) < 0) {
                if (fd >= 0)
                    close(fd);
                return -1;
            }
            close(fd);
        } else if (errno != EEXIST) {
            return -1;
        }
        *p = '/';
    }
    return 0;
}

static int journal_mode_cb(void *arg, int ncols, char **vals, char **names)
{
    (void)names;
    if (ncols > 0 && vals[0])
        snprintf(arg, 16, "%s", vals[0]);
    return 0;
}

/* Brings the schema to SCHEMA_VERSION, under the write lock so concurrent openers agree. */
static int migrate(struct sqlite_store *s, char *err, size_t errlen)
{
    if (sqlite3_exec(s->db, "BEGIN IMMEDIATE; CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
                     NULL, NULL, NULL) != SQLITE_OK)
        goto fail;
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db, "SELECT coalesce(max(version), 0) FROM schema_version", -1, &q, NULL) != SQLITE_OK)
        goto fail;
    int version = sqlite3_step(q) == SQLITE_ROW ? sqlite3_column_int(q, 0) : -1;
    sqlite3_finalize(q);
    if (version < 0)
        goto fail;
    if (version > SCHEMA_VERSION) {
        snprintf(err, errlen, "sqlite://%s has schema version %d, newer than this sluice's %d", s->path, version,
                 SCHEMA_VERSION);
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    for (int v = version; v < SCHEMA_VERSION; v++)
        if (sqlite3_exec(s->db, migrations[v], NULL, NULL, NULL) != SQLITE_OK)
            goto fail;
    if (version < SCHEMA_VERSION) {
        char sql[96];
        snprintf(sql, sizeof(sql), "DELETE FROM schema_version; INSERT INTO schema_version VALUES (%d)",
                 SCHEMA_VERSION);
        if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK)
            goto fail;
        log_info("metastore: sqlite://%s schema at version %d (was %d)", s->path, SCHEMA_VERSION, version);
    }
    if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        goto fail;
    return 0;
fail:
    snprintf(err, errlen, "sqlite://%s: schema: %s", s->path, sqlite3_errmsg(s->db));
    if (!sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return -1;
}

struct metastore *metastore_sqlite_open(const char *path, char *err, size_t errlen)
{
    if (!path[0] || strlen(path) >= PATH_MAX) {
        snprintf(err, errlen, "sqlite:// needs a database file path, e.g. sqlite:///var/lib/sluice/meta.db");
        return NULL;
    }
    if (make_parent_dirs(path) < 0) {
        snprintf(err, errlen, "cannot create the folder of %s: %s", path, strerror(errno));
        return NULL;
    }
    struct sqlite_store *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->base.ops = &sqlite_ops;
    snprintf(s->path, sizeof(s->path), "%s", path);
    /* NOMUTEX: a handle belongs to one thread. */
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        snprintf(err, errlen, "cannot open sqlite://%s: %s", path, s->db ? sqlite3_errmsg(s->db) : "out of memory");
        goto fail;
    }
    sqlite3_busy_handler(s->db, busy_wait, s);
    char mode[16] = "";
    if (sqlite3_exec(s->db, "PRAGMA journal_mode=WAL", journal_mode_cb, mode, NULL) != SQLITE_OK ||
        strcmp(mode, "wal") != 0) {
        snprintf(err, errlen, "sqlite://%s: cannot switch to WAL mode: %s", path, mode[0] ? mode : sqlite3_errmsg(s->db));
        goto fail;
    }
    if (sqlite3_exec(s->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "sqlite://%s: %s", path, sqlite3_errmsg(s->db));
        goto fail;
    }
    if (migrate(s, err, errlen) < 0)
        goto fail;
    for (int i = 0; i < S_COUNT; i++) {
        if (sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->stmt[i], NULL) != SQLITE_OK) {
            snprintf(err, errlen, "sqlite://%s: preparing \"%s\": %s", path, stmt_sql[i], sqlite3_errmsg(s->db));
            goto fail;
        }
    }
    return &s->base;
fail:
    sq_close(&s->base);
    return NULL;
}
