/* postgres:// metadata store (libpq): the schema and semantics of sqlite://, shared by the agents of
 * many hosts. One connection per handle, statements prepared once per connection. Offsets come
 * from UPDATE partitions SET next_offset = next_offset + n ... RETURNING inside the commit's
 * transaction: the row lock serializes committers of a partition, and a commit first locks its
 * partitions in (topic, partition) order, so two commits never deadlock. A commit handles all its
 * partitions and chunks with set-based statements (arrays), sent as libpq pipelines: two round
 * trips and a handful of statements, whatever the number of chunks.
 *
 * Connection loss: the failing call answers -1 and drops the connection; the next call reconnects
 * (PQreset; after a failed attempt, not again for RECONNECT_INTERVAL_MS), prepares the statements
 * again and re-issues LISTEN. A call that finds an idle connection dead (the server restarted
 * meanwhile) reconnects and tries once more, unless it had already sent COMMIT: then the outcome
 * is unknown and the answer is -1, never offsets that may not exist. */
#include <inttypes.h>
#include <postgresql/libpq-fe.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "protocol/errors.h"
#include "util/clock.h"
#include "util/log.h"
#include "storage/metastore_backend.h"
#include "storage/producer_state.h"

#define RECONNECT_INTERVAL_MS 200
#define LOG_REPEAT_MS 10000                /* the same error is logged again after this long */
#define MIGRATION_LOCK "7234224651627586" /* pg_advisory_xact_lock key: agents migrate one at a time */
#define CHANNEL "sluice_commits"

/* Schema migrations, as in metastore_sqlite.c: entry i takes the database from version i to
 * i + 1, the same versions and tables. Append, never edit. */
static const char *const migrations[] = {
    /* 1: topics, partitions, objects, chunks. Identity ids are never reused (a deleted topic's
     * chunks must stay unreachable). Partition rows are updated on every commit: fillfactor
     * leaves room for HOT updates. */
    "CREATE TABLE topics ("
    "  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    "  name TEXT NOT NULL,"
    "  uuid BYTEA NOT NULL UNIQUE,"
    "  partitions INTEGER NOT NULL,"
    "  created_ms BIGINT NOT NULL,"
    "  deleted INTEGER NOT NULL DEFAULT 0);"
    "CREATE UNIQUE INDEX topics_live_name ON topics(name) WHERE deleted = 0;"
    "CREATE TABLE topic_configs ("
    "  topic_id BIGINT NOT NULL,"
    "  name TEXT NOT NULL,"
    "  value TEXT NOT NULL,"
    "  PRIMARY KEY (topic_id, name));"
    "CREATE TABLE partitions ("
    "  topic_id BIGINT NOT NULL,"
    "  partition INTEGER NOT NULL,"
    "  next_offset BIGINT NOT NULL DEFAULT 0,"
    "  log_start_offset BIGINT NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (topic_id, partition)) WITH (fillfactor = 50);"
    "CREATE TABLE objects ("
    "  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    "  key TEXT NOT NULL UNIQUE,"
    "  size BIGINT NOT NULL,"
    "  created_ms BIGINT NOT NULL);"
    "CREATE TABLE chunks ("
    "  topic_id BIGINT NOT NULL,"
    "  partition INTEGER NOT NULL,"
    "  base_offset BIGINT NOT NULL,"
    "  last_offset BIGINT NOT NULL,"
    "  object_id BIGINT NOT NULL,"
    "  pos BIGINT NOT NULL,"
    "  len BIGINT NOT NULL,"
    "  batch_count INTEGER NOT NULL,"
    "  first_timestamp BIGINT NOT NULL,"
    "  max_timestamp BIGINT NOT NULL,"
    "  PRIMARY KEY (topic_id, partition, base_offset));"
    "CREATE INDEX chunks_by_last_offset ON chunks(topic_id, partition, last_offset);"
    "CREATE INDEX chunks_by_max_timestamp ON chunks(topic_id, partition, max_timestamp);",
    /* 2: membership; heartbeat_ms is the server's clock, so agents' clocks need not agree. */
    "CREATE TABLE members ("
    "  id TEXT PRIMARY KEY,"
    "  agent_group TEXT NOT NULL,"
    "  host TEXT NOT NULL,"
    "  port_base INTEGER NOT NULL,"
    "  worker INTEGER NOT NULL,"
    "  heartbeat_ms BIGINT NOT NULL);",
    /* 3: where other hosts forward a member's slot connections (XDP). */
    "ALTER TABLE members ADD COLUMN fwd_addr TEXT NOT NULL DEFAULT '';",
    /* 4: config changes (AlterConfigs) are noticed by every agent's topic listing. */
    "ALTER TABLE topics ADD COLUMN config_epoch BIGINT NOT NULL DEFAULT 0;",
    /* 5: idempotent producers: ids handed out once with their current epoch; per (producer,
     * topic, partition) the epoch and the last 5 batches ("first:last:offset;...",
     * storage/producer_state.h), checked and updated by each commit under its partition locks. */
    "CREATE TABLE producer_ids ("
    "  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    "  epoch INTEGER NOT NULL,"
    "  created_ms BIGINT NOT NULL);"
    "CREATE TABLE producer_state ("
    "  producer_id BIGINT NOT NULL,"
    "  topic_id BIGINT NOT NULL,"
    "  partition INTEGER NOT NULL,"
    "  epoch INTEGER NOT NULL,"
    "  batches TEXT NOT NULL,"
    "  last_timestamp BIGINT NOT NULL,"
    "  PRIMARY KEY (producer_id, topic_id, partition));",
    /* 6: consumer groups: the state as one blob with a version (compare-and-set), and the
     * committed offsets. */
    "CREATE TABLE consumer_groups ("
    "  group_id TEXT PRIMARY KEY,"
    "  version BIGINT NOT NULL,"
    "  phase INTEGER NOT NULL,"
    "  protocol_type TEXT NOT NULL,"
    "  state BYTEA NOT NULL,"
    "  updated_ms BIGINT NOT NULL);"
    "CREATE TABLE group_offsets ("
    "  group_id TEXT NOT NULL,"
    "  topic TEXT NOT NULL,"
    "  partition INTEGER NOT NULL,"
    "  committed_offset BIGINT NOT NULL,"
    "  leader_epoch INTEGER NOT NULL,"
    "  metadata TEXT,"
    "  commit_ms BIGINT NOT NULL,"
    "  PRIMARY KEY (group_id, topic, partition));",
    /* 7: ACLs (CreateAcls); an identical ACL is stored once. */
    "CREATE TABLE acls ("
    "  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
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
    "  PRIMARY KEY (username, mechanism));",
    /* 9: background jobs. A lease per job kind (owner, expiry on the server's clock: compare-and-set);
     * objects no chunk points into get stamped when first seen so, and are deleted a grace period
     * later. */
    "CREATE TABLE job_leases ("
    "  kind TEXT PRIMARY KEY,"
    "  owner TEXT NOT NULL,"
    "  expires_ms BIGINT NOT NULL);"
    "ALTER TABLE objects ADD COLUMN unreferenced_ms BIGINT;"
    "CREATE INDEX objects_unreferenced ON objects(unreferenced_ms) WHERE unreferenced_ms IS NOT NULL;"
    "CREATE INDEX chunks_by_object ON chunks(object_id);"
    /* objects that lost chunks (trimmed, deleted topic): the only ones garbage collection checks */
    "CREATE TABLE gc_candidates (object_id BIGINT PRIMARY KEY);",
    /* 10: the time index and compaction (see the SQLite backend): a chunk's running maximum
     * timestamp never decreases with the offset, so a timestamp look-up is one index seek; the
     * partition keeps its largest timestamp for the next commit; cleaned: key compaction wrote it. */
    "ALTER TABLE partitions ADD COLUMN max_timestamp BIGINT;"
    "ALTER TABLE chunks ADD COLUMN running_max_timestamp BIGINT NOT NULL DEFAULT 0;"
    "ALTER TABLE chunks ADD COLUMN cleaned BOOLEAN NOT NULL DEFAULT false;"
    "UPDATE chunks SET running_max_timestamp = r.m FROM (SELECT topic_id, partition, base_offset,"
    "  max(max_timestamp) OVER (PARTITION BY topic_id, partition ORDER BY base_offset) AS m FROM chunks) AS r"
    "  WHERE chunks.topic_id = r.topic_id AND chunks.partition = r.partition AND chunks.base_offset = r.base_offset;"
    "UPDATE partitions SET max_timestamp = (SELECT max(max_timestamp) FROM chunks c"
    "  WHERE c.topic_id = partitions.topic_id AND c.partition = partitions.partition);"
    /* base_offset too: ties (equal running maxima) come out in offset order without a sort */
    "CREATE INDEX chunks_by_running_max_timestamp ON chunks(topic_id, partition, running_max_timestamp, base_offset);",
};
#define SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))

enum stmt_id {
    S_BEGIN,
    S_COMMIT,
    S_NOTIFY,
    S_TOPIC_BY_NAME,
    S_TOPIC_INSERT,
    S_CONFIG_INSERT,
    S_TOPIC_MARK_DELETED,
    S_TOPIC_DELETE_PARTITIONS,
    S_TOPIC_GC_CANDIDATES,
    S_GC_CANDIDATE_ADD,
    S_TOPIC_DELETE_CHUNKS,
    S_TOPIC_DELETE_CONFIGS,
    S_TOPICS_LIST,
    S_CONFIGS_LIST,
    S_OBJECT_INSERT,
    S_PARTITIONS_LOCK,
    S_PARTITIONS_ADVANCE,
    S_CHUNKS_INSERT,
    S_PARTITION_OFFSETS,
    S_FIND_CHUNKS,
    S_FIND_CHUNKS_BY_TIME,
    S_MAX_TIMESTAMP,
    S_MEMBER_UPSERT,
    S_MEMBERS_LIST,
    S_MEMBER_DELETE,
    S_MEMBERS_PRUNE,
    S_TOPIC_LOCK,
    S_PARTITIONS_ADD,
    S_TOPIC_SET_PARTITIONS,
    S_TOPIC_BUMP_CONFIG_EPOCH,
    S_PRODUCER_NEW,
    S_PRODUCER_BUMP,
    S_PRODUCER_EPOCH,
    S_PRODUCER_STATES_GET,
    S_PRODUCER_STATES_PUT,
    S_PRODUCERS_LIST,
    S_COUNT
};

#define TOPIC_COLS "id, name, encode(uuid, 'hex'), partitions, created_ms, config_epoch"
#define CHUNK_COLS                                                                                    \
    "o.key, c.pos, c.len, c.batch_count, c.base_offset, c.last_offset, c.max_timestamp, o.size,"      \
    " c.first_timestamp, c.cleaned"
#define MEMBER_COLS "id, agent_group, host, port_base, worker, fwd_addr, heartbeat_ms"
#define STORE_NOW_MS "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"

/* Sorting is by bytes (COLLATE "C"), as SQLite does, whatever the database's locale. */
static const struct {
    const char *name, *sql;
} stmts[S_COUNT] = {
    [S_BEGIN] = {"begin", "BEGIN"},
    [S_COMMIT] = {"commit", "COMMIT"},
    [S_NOTIFY] = {"notify", "NOTIFY " CHANNEL},
    [S_TOPIC_BY_NAME] = {"topic_by_name", "SELECT " TOPIC_COLS " FROM topics WHERE name = $1 AND deleted = 0"},
    /* The topic and its partitions in one statement. A live topic of that name, even one being
     * created by a concurrent transaction, makes it insert nothing and return no row. */
    [S_TOPIC_INSERT] = {"topic_insert",
                        "WITH t AS (INSERT INTO topics (name, uuid, partitions, created_ms)"
                        " VALUES ($1, decode($2, 'hex'), $3::int, $4::bigint)"
                        " ON CONFLICT (name) WHERE deleted = 0 DO NOTHING RETURNING id),"
                        " p AS (INSERT INTO partitions (topic_id, partition)"
                        " SELECT t.id, g FROM t, generate_series(0, $3::int - 1) g)"
                        " SELECT id FROM t"},
    [S_CONFIG_INSERT] = {"config_insert", "INSERT INTO topic_configs (topic_id, name, value) VALUES ($1, $2, $3)"
                                          " ON CONFLICT (topic_id, name) DO UPDATE SET value = excluded.value"},
    [S_TOPIC_MARK_DELETED] = {"topic_mark_deleted",
                              "UPDATE topics SET deleted = 1 WHERE name = $1 AND deleted = 0 RETURNING id"},
    [S_TOPIC_DELETE_PARTITIONS] = {"topic_delete_partitions", "DELETE FROM partitions WHERE topic_id = $1"},
    [S_TOPIC_GC_CANDIDATES] = {"topic_gc_candidates", "INSERT INTO gc_candidates SELECT DISTINCT object_id FROM chunks"
                                                      " WHERE topic_id = $1 ON CONFLICT DO NOTHING"},
    [S_GC_CANDIDATE_ADD] = {"gc_candidate_add", "INSERT INTO gc_candidates VALUES ($1) ON CONFLICT DO NOTHING"},
    [S_TOPIC_DELETE_CHUNKS] = {"topic_delete_chunks", "DELETE FROM chunks WHERE topic_id = $1"},
    [S_TOPIC_DELETE_CONFIGS] = {"topic_delete_configs", "DELETE FROM topic_configs WHERE topic_id = $1"},
    [S_TOPICS_LIST] = {"topics_list",
                       "SELECT " TOPIC_COLS " FROM topics WHERE deleted = 0 ORDER BY name COLLATE \"C\""},
    [S_CONFIGS_LIST] = {"configs_list",
                        "SELECT name, value FROM topic_configs WHERE topic_id = $1 ORDER BY name COLLATE \"C\""},
    [S_OBJECT_INSERT] = {"object_insert",
                         "INSERT INTO objects (key, size, created_ms) VALUES ($1, $2, $3) RETURNING id"},
    /* A commit's partitions, locked in (topic, partition) order: rows are sorted, then locked.
     * Every committer locks in this one order, so two commits never deadlock. */
    [S_PARTITIONS_LOCK] = {"partitions_lock",
                           "SELECT 1 FROM partitions WHERE (topic_id, partition) IN"
                           " (SELECT * FROM unnest($1::bigint[], $2::int[]))"
                           " ORDER BY topic_id, partition FOR UPDATE"},
    /* Takes $3 offsets of each (live topic, existing partition) and returns the new next_offset;
     * a partition missing from the answer was deleted or never existed. */
    [S_PARTITIONS_ADVANCE] = {"partitions_advance",
                              "UPDATE partitions p SET next_offset = p.next_offset + v.n"
                              " FROM unnest($1::bigint[], $2::int[], $3::bigint[]) AS v(topic_id, partition, n)"
                              " WHERE p.topic_id = v.topic_id AND p.partition = v.partition"
                              " AND EXISTS (SELECT 1 FROM topics t WHERE t.id = v.topic_id AND t.deleted = 0)"
                              " RETURNING p.topic_id, p.partition, p.next_offset"},
    /* Each chunk's running maximum timestamp continues its partition's (read before this
     * statement's own update: every part of one statement sees the same snapshot), and the
     * partitions keep their new maxima. The partitions are locked by the commit already. */
    [S_CHUNKS_INSERT] = {"chunks_insert",
                         "WITH v AS (SELECT * FROM unnest($2::bigint[], $3::int[], $4::bigint[], $5::bigint[],"
                         " $6::bigint[], $7::bigint[], $8::int[], $9::bigint[], $10::bigint[])"
                         " AS v(t, p, b, l, pos, len, bc, ft, mt)),"
                         " up AS (UPDATE partitions pt SET max_timestamp = GREATEST(pt.max_timestamp, m.mt)"
                         " FROM (SELECT t, p, max(mt) AS mt FROM v GROUP BY t, p) AS m"
                         " WHERE pt.topic_id = m.t AND pt.partition = m.p)"
                         " INSERT INTO chunks (topic_id, partition, base_offset, last_offset, object_id, pos, len,"
                         " batch_count, first_timestamp, max_timestamp, running_max_timestamp)"
                         " SELECT v.t, v.p, v.b, v.l, $1, v.pos, v.len, v.bc, v.ft, v.mt,"
                         " GREATEST(pt.max_timestamp, max(v.mt) OVER (PARTITION BY v.t, v.p ORDER BY v.b))"
                         " FROM v JOIN partitions pt ON pt.topic_id = v.t AND pt.partition = v.p"},
    [S_PARTITION_OFFSETS] = {"partition_offsets", "SELECT log_start_offset, next_offset FROM partitions"
                                                  " WHERE topic_id = $1 AND partition = $2"},
    [S_FIND_CHUNKS] = {"find_chunks", "SELECT " CHUNK_COLS " FROM chunks c JOIN objects o ON o.id = c.object_id"
                                      " WHERE c.topic_id = $1 AND c.partition = $2 AND c.last_offset >= $3"
                                      " ORDER BY c.last_offset LIMIT $4"},
    [S_FIND_CHUNKS_BY_TIME] = {"find_chunks_by_time",
                               "SELECT " CHUNK_COLS " FROM chunks c JOIN objects o ON o.id = c.object_id"
                               " WHERE c.topic_id = $1 AND c.partition = $2 AND c.running_max_timestamp >= $3"
                               " ORDER BY c.running_max_timestamp, c.base_offset LIMIT $4"},
    [S_MAX_TIMESTAMP] = {"max_timestamp",
                         "SELECT " CHUNK_COLS " FROM chunks c JOIN objects o ON o.id = c.object_id"
                         " WHERE c.topic_id = $1 AND c.partition = $2 AND c.max_timestamp ="
                         " (SELECT max(max_timestamp) FROM chunks WHERE topic_id = $1 AND partition = $2)"
                         " ORDER BY c.base_offset LIMIT 1"},
    [S_MEMBER_UPSERT] = {"member_upsert",
                         "INSERT INTO members (" MEMBER_COLS ") VALUES ($1, $2, $3, $4, $5, $6, " STORE_NOW_MS ")"
                         " ON CONFLICT (id) DO UPDATE SET agent_group = excluded.agent_group,"
                         " host = excluded.host, port_base = excluded.port_base, worker = excluded.worker,"
                         " fwd_addr = excluded.fwd_addr, heartbeat_ms = excluded.heartbeat_ms"},
    [S_MEMBERS_LIST] = {"members_list", "SELECT " MEMBER_COLS " FROM members"
                                        " WHERE ($1::text IS NULL OR agent_group = $1)"
                                        " AND heartbeat_ms >= " STORE_NOW_MS " - $2::bigint"
                                        " ORDER BY id COLLATE \"C\""},
    [S_MEMBER_DELETE] = {"member_delete", "DELETE FROM members WHERE id = $1"},
    [S_MEMBERS_PRUNE] = {"members_prune", "DELETE FROM members WHERE heartbeat_ms < " STORE_NOW_MS " - $1::bigint"},
    /* CreatePartitions and AlterConfigs hold the topic row: changes of one topic take turns. */
    [S_TOPIC_LOCK] = {"topic_lock", "SELECT " TOPIC_COLS " FROM topics WHERE name = $1 AND deleted = 0 FOR UPDATE"},
    [S_PARTITIONS_ADD] = {"partitions_add", "INSERT INTO partitions (topic_id, partition)"
                                            " SELECT $1::bigint, g FROM generate_series($2::int, $3::int - 1) g"},
    [S_TOPIC_SET_PARTITIONS] = {"topic_set_partitions", "UPDATE topics SET partitions = $2::int WHERE id = $1"},
    [S_TOPIC_BUMP_CONFIG_EPOCH] = {"topic_bump_config_epoch",
                                   "UPDATE topics SET config_epoch = config_epoch + 1 WHERE id = $1"},
    [S_PRODUCER_NEW] = {"producer_new", "INSERT INTO producer_ids (epoch, created_ms) VALUES (0, $1) RETURNING id"},
    /* Bumps the epoch if it is $2 and may grow; no row otherwise. */
    [S_PRODUCER_BUMP] = {"producer_bump", "UPDATE producer_ids SET epoch = epoch + 1"
                                          " WHERE id = $1 AND epoch = $2 AND epoch < $3 RETURNING epoch"},
    [S_PRODUCER_EPOCH] = {"producer_epoch", "SELECT epoch FROM producer_ids WHERE id = $1"},
    [S_PRODUCER_STATES_GET] = {"producer_states_get",
                               "SELECT s.producer_id, s.topic_id, s.partition, s.epoch, s.batches"
                               " FROM producer_state s JOIN unnest($1::bigint[], $2::bigint[], $3::int[])"
                               " AS v(producer_id, topic_id, partition) ON s.producer_id = v.producer_id"
                               " AND s.topic_id = v.topic_id AND s.partition = v.partition"},
    [S_PRODUCER_STATES_PUT] = {"producer_states_put",
                               "INSERT INTO producer_state (producer_id, topic_id, partition, epoch, batches,"
                               " last_timestamp) SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::int[],"
                               " $4::int[], $5::text[], $6::bigint[]) ON CONFLICT (producer_id, topic_id, partition)"
                               " DO UPDATE SET epoch = excluded.epoch, batches = excluded.batches,"
                               " last_timestamp = excluded.last_timestamp"},
    [S_PRODUCERS_LIST] = {"producers_list", "SELECT producer_id, epoch, batches, last_timestamp FROM producer_state"
                                            " WHERE topic_id = $1 AND partition = $2 ORDER BY producer_id"},
};

struct pg_store {
    struct metastore base;
    PGconn *conn;
    char where[256];         /* the URL without its password, for log lines */
    bool ready;              /* connected, statements prepared (and LISTEN issued if listen) */
    bool was_ready;          /* the connection looked fine when this call began */
    bool commit_sent;        /* this call sent COMMIT: if the answer is lost, so is the outcome */
    bool listen;             /* notify_fd was asked for: LISTEN on every connection */
    bool listening;          /* LISTEN issued on the current connection */
    bool missed_wakeup;      /* reconnected: notifications sent meanwhile were lost */
    bool connect_failed;     /* the last connection attempt failed, at last_connect_ms */
    int64_t last_connect_ms;
    int failures;            /* failed calls since a call last began on a fine connection */
    char last_error[256];    /* the last error logged, and when: repeats are counted, not logged */
    int64_t last_error_ms;
    int suppressed;
};

/* ---- errors ---- */

/* libpq's messages span lines ("...\n\tIs the server running...?\n"): one line, single spaces. */
static size_t one_line(char *msg)
{
    size_t len = 0;
    for (const char *p = msg; *p; p++) {
        char ch = *p == '\n' || *p == '\t' ? ' ' : *p;
        if (ch != ' ' || (len > 0 && msg[len - 1] != ' '))
            msg[len++] = ch;
    }
    while (len > 0 && msg[len - 1] == ' ')
        len--;
    msg[len] = '\0';
    return len;
}

/* Logs a failure, one line per distinct message: a dead server fails every call the same way,
 * and a busy worker must not write a line per call. A repeated message is logged again after
 * LOG_REPEAT_MS, with the number left out. */
static void report_at(struct pg_store *s, enum log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void report_at(struct pg_store *s, enum log_level lvl, const char *fmt, ...)
{
    char msg[sizeof(s->last_error)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    size_t len = one_line(msg);
    s->failures++;
    int64_t now = mono_ms();
    if (strcmp(msg, s->last_error) == 0 && now - s->last_error_ms < LOG_REPEAT_MS) {
        s->suppressed++;
        return;
    }
    if (s->suppressed)
        log_msg(lvl, "metastore: %s: %s (%d similar failures not logged)", s->where, msg, s->suppressed);
    else
        log_msg(lvl, "metastore: %s: %s", s->where, msg);
    memcpy(s->last_error, msg, len + 1);
    s->last_error_ms = now;
    s->suppressed = 0;
}

#define report(s, ...) report_at(s, LOG_ERROR, __VA_ARGS__)

/* After a failed statement: a broken connection (server gone or restarting, network) is marked
 * for a reconnect; any other error leaves the connection as it is. */
static void check_conn(struct pg_store *s, const PGresult *r)
{
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    if (PQstatus(s->conn) != CONNECTION_OK ||
        (state && (strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0)))
        s->ready = false;
}

static void fail(struct pg_store *s, const PGresult *r, const char *what)
{
    check_conn(s, r);
    const char *msg = r ? PQresultErrorMessage(r) : "";
    if (!msg[0])
        msg = PQerrorMessage(s->conn);
    /* A connection that was fine when the call began: the call reconnects and may well succeed,
     * and if the server is really gone the reconnect's error follows. */
    if (s->was_ready && !s->ready)
        report_at(s, LOG_WARN, "%s: connection lost: %s", what, msg);
    else
        report(s, "%s: %s", what, msg);
}

/* ---- statements ---- */

/* Text parameters: strings as they are, integers printed. */
struct params {
    int n;
    const char *v[10];
    char num[10][24];
};

static void par_str(struct params *p, const char *v) { p->v[p->n++] = v; }

static void par_i64(struct params *p, int64_t x)
{
    snprintf(p->num[p->n], sizeof(p->num[0]), "%" PRId64, x);
    p->v[p->n] = p->num[p->n];
    p->n++;
}

static int64_t get_i64(const PGresult *r, int row, int col) { return strtoll(PQgetvalue(r, row, col), NULL, 10); }

/* One wait for the server's answers to `statements` statements (metastore_get_counters). */
static void count_trip(struct pg_store *s, int statements)
{
    s->base.counters.round_trips++;
    s->base.counters.statements += (uint64_t)statements;
}

/* Runs a prepared statement: its result (the caller clears it), or NULL after reporting. */
static PGresult *exec(struct pg_store *s, enum stmt_id id, const struct params *p, const char *what)
{
    count_trip(s, 1);
    PGresult *r = PQexecPrepared(s->conn, stmts[id].name, p ? p->n : 0, p ? p->v : NULL, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return r;
    fail(s, r, what);
    PQclear(r);
    return NULL;
}

static int exec_cmd(struct pg_store *s, enum stmt_id id, const struct params *p, const char *what)
{
    PGresult *r = exec(s, id, p, what);
    PQclear(r);
    return r ? 0 : -1;
}

/* Ends a failed transaction. The failure itself was reported. */
static void rollback(struct pg_store *s)
{
    if (PQstatus(s->conn) != CONNECTION_OK)
        return;
    PGTransactionStatusType ts = PQtransactionStatus(s->conn);
    if (ts != PQTRANS_INTRANS && ts != PQTRANS_INERROR)
        return;
    count_trip(s, 1);
    PGresult *r = PQexec(s->conn, "ROLLBACK");
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        check_conn(s, r);
    PQclear(r);
}

static int abort_tx(struct pg_store *s)
{
    rollback(s);
    return -1;
}

/* COMMIT. Once it is sent the call is never retried: if the answer is lost, the outcome is unknown. */
static int commit(struct pg_store *s, const char *what)
{
    s->commit_sent = true;
    PGresult *r = exec(s, S_COMMIT, NULL, what);
    if (!r)
        return -1;
    /* A transaction that failed earlier answers COMMIT with ROLLBACK. */
    bool ok = strcmp(PQcmdStatus(r), "COMMIT") == 0;
    PQclear(r);
    if (!ok) {
        report(s, "%s: transaction rolled back", what);
        return -1;
    }
    s->base.counters.commits++;
    return 0;
}

/* ---- pipelines: several statements in one round trip ---- */

struct pipe {
    int n;       /* statements queued */
    bool failed; /* a statement could not be queued */
};

static void pipe_start(struct pg_store *s, struct pipe *pp)
{
    memset(pp, 0, sizeof(*pp));
    if (!PQenterPipelineMode(s->conn))
        pp->failed = true;
}

static void pipe_send(struct pg_store *s, struct pipe *pp, enum stmt_id id, const struct params *p)
{
    if (pp->failed)
        return;
    if (PQsendQueryPrepared(s->conn, stmts[id].name, p ? p->n : 0, p ? p->v : NULL, NULL, NULL, 0))
        pp->n++;
    else
        pp->failed = true;
}

/* Sends the Sync that ends the pipeline and reads the results of its statements into res[0..n)
 * (each a result to clear, or NULL). Returns 0 if every statement succeeded; otherwise reports
 * the first error and returns -1. Leaves pipeline mode either way. */
static int pipe_finish(struct pg_store *s, struct pipe *pp, PGresult **res, const char *what)
{
    const PGresult *bad = NULL;
    int rc = pp->failed ? -1 : 0;
    memset(res, 0, (size_t)pp->n * sizeof(*res));
    if (PQpipelineStatus(s->conn) == PQ_PIPELINE_OFF)
        goto out;
    if (!PQpipelineSync(s->conn)) {
        rc = -1;
        goto out;
    }
    count_trip(s, pp->n);
    for (int i = 0; i < pp->n; i++) {
        PGresult *r = PQgetResult(s->conn);
        if (!r) { /* the connection broke */
            rc = -1;
            goto out;
        }
        res[i] = r;
        ExecStatusType st = PQresultStatus(r);
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
            rc = -1;
            if (!bad && st != PGRES_PIPELINE_ABORTED)
                bad = r;
            if (PQstatus(s->conn) != CONNECTION_OK)
                goto out;
        }
        PGresult *end = PQgetResult(s->conn); /* NULL closes each statement's results */
        if (end) {
            PQclear(end);
            rc = -1;
            s->ready = false; /* out of step with the server: start over */
            goto out;
        }
    }
    PGresult *sync = PQgetResult(s->conn);
    if (PQresultStatus(sync) != PGRES_PIPELINE_SYNC) {
        rc = -1;
        s->ready = false;
    }
    PQclear(sync);
out:
    if (PQstatus(s->conn) == CONNECTION_OK && PQpipelineStatus(s->conn) != PQ_PIPELINE_OFF &&
        !PQexitPipelineMode(s->conn))
        s->ready = false;
    if (rc < 0)
        fail(s, bad, what);
    return rc;
}

static void clear_all(PGresult **res, int n)
{
    for (int i = 0; i < n; i++)
        PQclear(res[i]);
}

/* ---- connection ---- */

static void quiet_notice(void *arg, const char *msg)
{
    (void)arg;
    log_debug("metastore: postgres: %s", msg);
}

static int listen_now(struct pg_store *s)
{
    count_trip(s, 1);
    PGresult *r = PQexec(s->conn, "LISTEN " CHANNEL);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        fail(s, r, "LISTEN");
    PQclear(r);
    s->listening = ok;
    return ok ? 0 : -1;
}

/* Readies a fresh connection: every statement prepared (one round trip), LISTEN if wanted. */
static int setup_conn(struct pg_store *s)
{
    PQsetNoticeProcessor(s->conn, quiet_notice, NULL);
    s->listening = false;
    /* An acknowledged produce is committed, whatever the server's or the role's default says
     * (synchronous_commit = off would lose the last commits in a server crash). */
    count_trip(s, 1);
    PGresult *sync = PQexec(s->conn, "SET synchronous_commit = on");
    bool ok = sync && PQresultStatus(sync) == PGRES_COMMAND_OK;
    if (!ok)
        snprintf(s->last_error, sizeof(s->last_error), "SET synchronous_commit: %s",
                 sync ? PQresultErrorMessage(sync) : PQerrorMessage(s->conn));
    PQclear(sync);
    if (!ok)
        return -1;
    struct pipe pp;
    pipe_start(s, &pp);
    for (int i = 0; i < S_COUNT && !pp.failed; i++) {
        if (PQsendPrepare(s->conn, stmts[i].name, stmts[i].sql, 0, NULL))
            pp.n++;
        else
            pp.failed = true;
    }
    PGresult *res[S_COUNT];
    int rc = pipe_finish(s, &pp, res, "preparing statements");
    clear_all(res, pp.n);
    if (rc < 0)
        return -1;
    if (s->listen && listen_now(s) < 0)
        return -1;
    return 0;
}

/* Every call starts here. A dropped connection is re-established at once, but after a failed
 * attempt the next one waits RECONNECT_INTERVAL_MS: a dead server answers at once, and a busy
 * worker would otherwise try on every call. Calls refused in between count as repeats of the
 * last error. */
static int call_begin(struct pg_store *s)
{
    s->commit_sent = false;
    s->was_ready = s->ready && PQstatus(s->conn) == CONNECTION_OK;
    if (s->was_ready) {
        s->failures = 0;
        return 0;
    }
    s->ready = false;
    int64_t now = mono_ms();
    if (s->connect_failed && now - s->last_connect_ms < RECONNECT_INTERVAL_MS) {
        s->failures++;
        s->suppressed++;
        return -1;
    }
    s->last_connect_ms = now;
    s->connect_failed = true;
    PQreset(s->conn);
    if (PQstatus(s->conn) != CONNECTION_OK) {
        report(s, "connect: %s", PQerrorMessage(s->conn));
        return -1;
    }
    if (setup_conn(s) < 0)
        return -1;
    s->connect_failed = false;
    s->ready = true;
    log_info("metastore: %s: reconnected (%d errors while disconnected)", s->where, s->failures);
    s->failures = 0;
    s->suppressed = 0;
    s->last_error[0] = '\0';
    s->missed_wakeup = s->listen;
    return 0;
}

/* A call that failed because the connection it began with had gone stale (not because the
 * server is down now) reconnects and runs once more, unless it sent COMMIT. */
static bool retry(struct pg_store *s, int rc, int attempt)
{
    return rc == -1 && attempt == 0 && s->was_ready && !s->ready && !s->commit_sent;
}

/* Runs a store operation (an *_once call returning 0, a Kafka error or -1) and returns its result;
 * once more when the connection turned out broken before anything was committed (retry()). */
#define RETURN_WITH_RETRY(s, call)                                                                           \
    do {                                                                                                     \
        for (int attempt_ = 0;; attempt_++) {                                                                \
            if (call_begin(s) < 0)                                                                           \
                return -1;                                                                                   \
            int rc_ = (call);                                                                                \
            if (!retry((s), rc_, attempt_))                                                                  \
                return rc_;                                                                                  \
        }                                                                                                    \
    } while (0)

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

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static void read_topic(const PGresult *r, int row, struct topic_info *t)
{
    memset(t, 0, sizeof(*t));
    t->id = get_i64(r, row, 0);
    snprintf(t->name, sizeof(t->name), "%s", PQgetvalue(r, row, 1));
    const char *hex = PQgetvalue(r, row, 2);
    if (strlen(hex) == 32)
        for (int i = 0; i < 16; i++)
            t->uuid[i] = (uint8_t)(hex_value(hex[2 * i]) << 4 | hex_value(hex[2 * i + 1]));
    t->partitions = (int32_t)get_i64(r, row, 3);
    t->created_ms = get_i64(r, row, 4);
    t->config_epoch = get_i64(r, row, 5);
}

static int create_topic_once(struct pg_store *s, const char *name, int32_t partitions,
                             const struct topic_config *configs, int nconfigs, struct topic_info *out)
{
    struct topic_info t;
    memset(&t, 0, sizeof(t));
    snprintf(t.name, sizeof(t.name), "%s", name);
    random_uuid(t.uuid);
    t.partitions = partitions;
    t.created_ms = wall_ms();
    char hex[33];
    for (int i = 0; i < 16; i++)
        snprintf(hex + 2 * i, 3, "%02x", t.uuid[i]);

    if (exec_cmd(s, S_BEGIN, NULL, "create topic") < 0)
        return -1;
    struct params p = {0};
    par_str(&p, name);
    par_str(&p, hex);
    par_i64(&p, partitions);
    par_i64(&p, t.created_ms);
    PGresult *r = exec(s, S_TOPIC_INSERT, &p, "create topic");
    if (!r)
        return abort_tx(s);
    bool created = PQntuples(r) == 1;
    if (created)
        t.id = get_i64(r, 0, 0);
    PQclear(r);
    if (!created) {
        rollback(s);
        return KERR_TOPIC_ALREADY_EXISTS;
    }
    for (int i = 0; i < nconfigs; i++) {
        p = (struct params){0};
        par_i64(&p, t.id);
        par_str(&p, configs[i].key);
        par_str(&p, configs[i].value);
        if (exec_cmd(s, S_CONFIG_INSERT, &p, "create topic config") < 0)
            return abort_tx(s);
    }
    if (commit(s, "create topic") < 0)
        return abort_tx(s);
    if (out)
        *out = t;
    return 0;
}

static int pg_create_topic(struct metastore *m, const char *name, int32_t partitions,
                           const struct topic_config *configs, int nconfigs, struct topic_info *out)
{
    struct pg_store *s = (struct pg_store *)m;
    size_t name_len = strlen(name);
    if (name_len == 0 || name_len > TOPIC_NAME_MAX)
        return KERR_INVALID_TOPIC_EXCEPTION;
    if (partitions < 1)
        return KERR_INVALID_PARTITIONS;
    RETURN_WITH_RETRY(s, create_topic_once(s, name, partitions, configs, nconfigs, out));
}

static int delete_topic_once(struct pg_store *s, const char *name)
{
    if (exec_cmd(s, S_BEGIN, NULL, "delete topic") < 0)
        return -1;
    struct params p = {0};
    par_str(&p, name);
    PGresult *r = exec(s, S_TOPIC_MARK_DELETED, &p, "delete topic");
    if (!r)
        return abort_tx(s);
    bool found = PQntuples(r) == 1;
    int64_t id = found ? get_i64(r, 0, 0) : 0;
    PQclear(r);
    if (!found) {
        rollback(s);
        return KERR_UNKNOWN_TOPIC_OR_PARTITION;
    }
    /* The topic row stays (deleted = 1) so its id is never reused. Partitions go before chunks:
     * deleting a partition row waits for a commit holding its lock, and the chunk delete, a
     * new statement, then sees that commit's chunks too. */
    static const enum stmt_id steps[] = {S_TOPIC_DELETE_PARTITIONS, S_TOPIC_GC_CANDIDATES, S_TOPIC_DELETE_CHUNKS,
                                         S_TOPIC_DELETE_CONFIGS};
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        p = (struct params){0};
        par_i64(&p, id);
        if (exec_cmd(s, steps[i], &p, "delete topic") < 0)
            return abort_tx(s);
    }
    if (commit(s, "delete topic") < 0)
        return abort_tx(s);
    return 0;
}

static int pg_delete_topic(struct metastore *m, const char *name)
{
    struct pg_store *s = (struct pg_store *)m;
    RETURN_WITH_RETRY(s, delete_topic_once(s, name));
}

static int get_topic_once(struct pg_store *s, const char *name, struct topic_info *out)
{
    struct params p = {0};
    par_str(&p, name);
    PGresult *r = exec(s, S_TOPIC_BY_NAME, &p, "get topic");
    if (!r)
        return -1;
    int rc = KERR_UNKNOWN_TOPIC_OR_PARTITION;
    if (PQntuples(r) == 1) {
        read_topic(r, 0, out);
        rc = 0;
    }
    PQclear(r);
    return rc;
}

static int pg_get_topic(struct metastore *m, const char *name, struct topic_info *out)
{
    struct pg_store *s = (struct pg_store *)m;
    RETURN_WITH_RETRY(s, get_topic_once(s, name, out));
}

/* malloc(0) may answer NULL, which callers take for "nothing": fine, they free it anyway. */
static void *alloc_rows(int n, size_t size)
{
    if (n == 0)
        return NULL;
    void *v = calloc((size_t)n, size);
    if (!v)
        abort();
    return v;
}

static int list_topics_once(struct pg_store *s, struct topic_info **out, int *n)
{
    PGresult *r = exec(s, S_TOPICS_LIST, NULL, "list topics");
    if (!r)
        return -1;
    int count = PQntuples(r);
    struct topic_info *v = alloc_rows(count, sizeof(*v));
    for (int i = 0; i < count; i++)
        read_topic(r, i, &v[i]);
    PQclear(r);
    *out = v;
    *n = count;
    return 0;
}

static int pg_list_topics(struct metastore *m, struct topic_info **out, int *n)
{
    struct pg_store *s = (struct pg_store *)m;
    RETURN_WITH_RETRY(s, list_topics_once(s, out, n));
}

static int topic_configs_once(struct pg_store *s, int64_t topic_id, struct topic_config **out, int *n)
{
    struct params p = {0};
    par_i64(&p, topic_id);
    PGresult *r = exec(s, S_CONFIGS_LIST, &p, "list topic configs");
    if (!r)
        return -1;
    int count = PQntuples(r);
    struct topic_config *v = alloc_rows(count, sizeof(*v));
    for (int i = 0; i < count; i++) {
        snprintf(v[i].key, sizeof(v[i].key), "%s", PQgetvalue(r, i, 0));
        snprintf(v[i].value, sizeof(v[i].value), "%s", PQgetvalue(r, i, 1));
    }
    PQclear(r);
    *out = v;
    *n = count;
    return 0;
}

static int pg_topic_configs(struct metastore *m, int64_t topic_id, struct topic_config **out, int *n)
{
    struct pg_store *s = (struct pg_store *)m;
    RETURN_WITH_RETRY(s, topic_configs_once(s, topic_id, out, n));
}

/* ---- CreatePartitions and AlterConfigs ---- */

/* BEGIN and the live topic's row, locked: 1 found, 0 not (rolled back), -1 error (rolled back). */
static int begin_topic_change(struct pg_store *s, const char *name, struct topic_info *t, const char *what)
{
    if (exec_cmd(s, S_BEGIN, NULL, what) < 0)
        return -1;
    struct params p = {0};
    par_str(&p, name);
    PGresult *r = exec(s, S_TOPIC_LOCK, &p, what);
    if (!r)
        return abort_tx(s);
    int found = PQntuples(r) == 1;
    if (found)
        read_topic(r, 0, t);
    PQclear(r);
    if (!found)
        rollback(s);
    return found;
}

static int create_partitions_once(struct pg_store *s, const char *name, int32_t partitions, struct topic_info *out)
{
    struct topic_info t;
    int found = begin_topic_change(s, name, &t, "create partitions");
    if (found != 1)
        return found < 0 ? -1 : KERR_UNKNOWN_TOPIC_OR_PARTITION;
    if (partitions <= t.partitions) {
        rollback(s);
        if (out)
            *out = t;
        return KERR_INVALID_PARTITIONS;
    }
    struct params p = {0};
    par_i64(&p, t.id);
    par_i64(&p, t.partitions);
    par_i64(&p, partitions);
    if (exec_cmd(s, S_PARTITIONS_ADD, &p, "create partitions") < 0)
        return abort_tx(s);
    p = (struct params){0};
    par_i64(&p, t.id);
    par_i64(&p, partitions);
    if (exec_cmd(s, S_TOPIC_SET_PARTITIONS, &p, "create partitions") < 0)
        return abort_tx(s);
    if (commit(s, "create partitions") < 0)
        return abort_tx(s);
    t.partitions = partitions;
    if (out)
        *out = t;
    return 0;
}

static int pg_create_partitions(struct metastore *m, const char *name, int32_t partitions, struct topic_info *out)
{
    struct pg_store *s = (struct pg_store *)m;
    RETURN_WITH_RETRY(s, create_partitions_once(s, name, partitions, out));
}

static int update_topic_configs_once(struct pg_store *s, const char *name, topic_configs_edit edit, void *arg,
                                     struct topic_info *out)
{
    struct topic_info t;
    int found = begin_topic_change(s, name, &t, "alter topic configs");
    if (found != 1)
        return found < 0 ? -1 : KERR_UNKNOWN_TOPIC_OR_PARTITION;
    struct topic_config *cfgs = NULL;
    int n = 0;
    if (topic_configs_once(s, t.id, &cfgs, &n) < 0)
        return abort_tx(s);
    int rc = edit(arg, &cfgs, &n);
    if (rc != 0) {
        free(cfgs);
        rollback(s);
        return rc;
    }
    struct params p = {0};
    par_i64(&p, t.id);
    if (exec_cmd(s, S_TOPIC_DELETE_CONFIGS, &p, "alter topic configs") < 0)
        goto fail;
    for (int i = 0; i < n; i++) {
        p = (struct params){0};
        par_i64(&p, t.id);
        par_str(&p, cfgs[i].key);
        par_str(&p, cfgs[i].value);
        if (exec_cmd(s, S_CONFIG_INSERT, &p, "alter topic configs") < 0)
            goto fail;
    }
    p = (struct params){0};
    par_i64(&p, t.id);
    if (exec_cmd(s, S_TOPIC_BUMP_CONFIG_EPOCH, &p, "alter topic configs") < 0 ||
        commit(s, "alter topic configs") < 0)
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

static int pg_update_topic_configs(struct metastore *m, const char *name, topic_configs_edit edit, void *arg,
                                   struct topic_info *out)
{
    struct pg_store *s = (struct pg_store *)m;
    RETURN_WITH_RETRY(s, update_topic_configs_once(s, name, edit, arg, out));
}

/* ---- produce: one transaction per object ---- */

/* Arrays travel as text parameters: "{1,2,3}", {"a","b"}. */
struct array {
    char *p;
    size_t len, cap;
};

static void array_init(struct array *a)
{
    a->cap = 256;
    a->p = malloc(a->cap);
    if (!a->p)
        abort();
    a->p[0] = '{';
    a->len = 1;
}

static void array_reserve(struct array *a, size_t more)
{
    while (a->cap - a->len < more + 2) {
        a->cap *= 2;
        a->p = realloc(a->p, a->cap);
        if (!a->p)
            abort();
    }
}

static void array_add(struct array *a, int64_t v)
{
    array_reserve(a, 32);
    a->len += (size_t)snprintf(a->p + a->len, a->cap - a->len, "%" PRId64 ",", v);
}

/* v holds no quote or backslash (producer batches: digits, '-', ':', ';'). */
static void array_add_text(struct array *a, const char *v)
{
    array_reserve(a, strlen(v) + 4);
    a->len += (size_t)snprintf(a->p + a->len, a->cap - a->len, "\"%s\",", v);
}

static const char *array_end(struct array *a)
{
    if (a->len > 1)
        a->len--; /* the last comma */
    a->p[a->len++] = '}';
    a->p[a->len] = '\0';
    return a->p;
}

static void arrays_init(struct array *a, int n)
{
    for (int k = 0; k < n; k++)
        array_init(&a[k]);
}

static void arrays_free(struct array *a, int n)
{
    for (int k = 0; k < n; k++)
        free(a[k].p);
}

/* A chunk's place in the commit: sorted by (topic, partition, index), so a partition's chunks
 * sit together (a group) and keep their array order. */
struct commit_slot {
    int64_t topic_id;
    int32_t partition;
    int idx;
};

static int by_partition(const void *a, const void *b)
{
    const struct commit_slot *x = a, *y = b;
    if (x->topic_id != y->topic_id)
        return x->topic_id < y->topic_id ? -1 : 1;
    if (x->partition != y->partition)
        return x->partition < y->partition ? -1 : 1;
    return x->idx - y->idx;
}

struct commit_group {
    int64_t topic_id;
    int32_t partition;
    int first, end;      /* its slots */
    int64_t count;       /* offsets its chunks take together */
    int64_t base;        /* first offset assigned, -1 if the partition is gone */
};

static struct commit_group *find_group(struct commit_group *g, int n, int64_t topic_id, int32_t partition)
{
    int lo = 0, hi = n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (g[mid].topic_id < topic_id || (g[mid].topic_id == topic_id && g[mid].partition < partition))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && g[lo].topic_id == topic_id && g[lo].partition == partition ? &g[lo] : NULL;
}

/* The partitions of the sorted slots, once each (for the lock). */
static void partition_arrays(const struct commit_slot *slots, int nslots, struct array *topics, struct array *parts)
{
    for (int i = 0; i < nslots; i++)
        if (i == 0 || slots[i].topic_id != slots[i - 1].topic_id || slots[i].partition != slots[i - 1].partition) {
            array_add(topics, slots[i].topic_id);
            array_add(parts, slots[i].partition);
        }
}

/* Keeps the slots whose chunks take offsets (not refused, not duplicates) and groups them by
 * partition, with the arrays the advance statement takes. Returns the number of groups. */
static int build_groups(struct commit_slot *slots, int *nslots, const struct commit_chunk *chunks,
                        struct commit_group *groups, struct array *topics, struct array *parts, struct array *counts)
{
    int n = 0, ngroups = 0;
    for (int i = 0; i < *nslots; i++)
        if (producer_chunk_appends(&chunks[slots[i].idx]))
            slots[n++] = slots[i];
    *nslots = n;
    for (int i = 0; i < n; i++) {
        if (i == 0 || slots[i].topic_id != slots[i - 1].topic_id || slots[i].partition != slots[i - 1].partition) {
            groups[ngroups++] = (struct commit_group){slots[i].topic_id, slots[i].partition, i, i, 0, -1};
            array_add(&topics[0], slots[i].topic_id);
            array_add(&parts[0], slots[i].partition);
        }
        groups[ngroups - 1].end = i + 1;
        groups[ngroups - 1].count += chunks[slots[i].idx].offset_count;
    }
    for (int g = 0; g < ngroups; g++)
        array_add(counts, groups[g].count);
    return ngroups;
}

/* The advance statement's answer: each group's first offset. */
static void read_advance(const PGresult *r, struct commit_group *groups, int ngroups)
{
    for (int row = 0; row < PQntuples(r); row++) {
        struct commit_group *g = find_group(groups, ngroups, get_i64(r, row, 0), (int32_t)get_i64(r, row, 1));
        if (g)
            g->base = get_i64(r, row, 2) - g->count;
    }
}

static void send_advance(struct pg_store *s, struct pipe *pp, struct array *ga)
{
    struct params p = {0};
    par_str(&p, array_end(&ga[0]));
    par_str(&p, array_end(&ga[1]));
    par_str(&p, array_end(&ga[2]));
    pipe_send(s, pp, S_PARTITIONS_ADVANCE, &p);
}

enum { A_TOPIC, A_PARTITION, A_BASE, A_LAST, A_POS, A_LEN, A_BATCHES, A_FIRST_TS, A_MAX_TS, NARRAYS };
enum { P_ID, P_TOPIC, P_PARTITION, P_EPOCH, P_BATCHES, P_TIMESTAMP, NPARRAYS };

/* Without idempotent batches, two round trips whatever the number of chunks. 1: BEGIN, the object
 * row, lock the partitions, advance them. 2: the chunk rows, NOTIFY, COMMIT. With idempotent
 * batches the producers' state is read after the lock, and the advance (which depends on it)
 * takes a round trip of its own; the state is saved with the chunk rows. */
static int commit_once(struct pg_store *s, const char *object_key, uint64_t object_size,
                       struct commit_chunk *chunks, int nchunks)
{
    struct commit_slot *slots = malloc((size_t)(nchunks > 0 ? nchunks : 1) * sizeof(*slots));
    struct commit_group *groups = malloc((size_t)(nchunks > 0 ? nchunks : 1) * sizeof(*groups));
    if (!slots || !groups)
        abort();
    int nslots = 0, ngroups = 0;
    for (int i = 0; i < nchunks; i++) {
        struct commit_chunk *c = &chunks[i];
        c->base_offset = -1;
        c->duplicate = false;
        c->error = 0;
        if (c->offset_count < 1) /* a chunk must take offsets: a caller bug, not the store's */
            c->error = KERR_INVALID_RECORD;
        else
            slots[nslots++] = (struct commit_slot){c->topic_id, c->partition, i};
    }
    qsort(slots, (size_t)nslots, sizeof(*slots), by_partition);
    struct producer_plan plan;
    producer_plan_init(&plan, chunks, nchunks);
    struct array lock[2], ga[3], a[NARRAYS], pa[NPARRAYS];
    arrays_init(lock, 2);
    arrays_init(ga, 3);
    arrays_init(a, NARRAYS);
    arrays_init(pa, NPARRAYS);
    partition_arrays(slots, nslots, &lock[0], &lock[1]);
    if (plan.n == 0)
        ngroups = build_groups(slots, &nslots, chunks, groups, &ga[0], &ga[1], &ga[2]);
    for (int k = 0; k < plan.n; k++) {
        array_add(&pa[P_ID], plan.e[k].producer_id);
        array_add(&pa[P_TOPIC], plan.e[k].topic_id);
        array_add(&pa[P_PARTITION], plan.e[k].partition);
    }

    int rc = -1;
    PGresult *res[5];
    struct pipe pp;
    pipe_start(s, &pp);
    pipe_send(s, &pp, S_BEGIN, NULL);
    struct params p = {0};
    par_str(&p, object_key);
    par_i64(&p, (int64_t)object_size);
    par_i64(&p, wall_ms());
    pipe_send(s, &pp, S_OBJECT_INSERT, &p);
    p = (struct params){0};
    par_str(&p, array_end(&lock[0]));
    par_str(&p, array_end(&lock[1]));
    pipe_send(s, &pp, S_PARTITIONS_LOCK, &p);
    if (plan.n > 0) { /* read under the partition locks: no other commit changes it meanwhile */
        p = (struct params){0};
        par_str(&p, array_end(&pa[P_ID]));
        par_str(&p, array_end(&pa[P_TOPIC]));
        par_str(&p, array_end(&pa[P_PARTITION]));
        pipe_send(s, &pp, S_PRODUCER_STATES_GET, &p);
    } else {
        send_advance(s, &pp, ga);
    }
    int sent = pp.n;
    if (pipe_finish(s, &pp, res, "commit object") < 0) {
        clear_all(res, sent);
        goto out;
    }
    int64_t object_id = get_i64(res[1], 0, 0);
    if (plan.n > 0) {
        for (int row = 0; row < PQntuples(res[3]); row++) {
            struct producer_entry *e = producer_plan_find(&plan, get_i64(res[3], row, 0), get_i64(res[3], row, 1),
                                                          (int32_t)get_i64(res[3], row, 2));
            if (e)
                producer_entry_load(e, (int16_t)get_i64(res[3], row, 3), PQgetvalue(res[3], row, 4));
        }
        clear_all(res, sent);
        producer_plan_decide(&plan, chunks, nchunks);
        ngroups = build_groups(slots, &nslots, chunks, groups, &ga[0], &ga[1], &ga[2]);
        pipe_start(s, &pp);
        send_advance(s, &pp, ga);
        sent = pp.n;
        if (pipe_finish(s, &pp, res, "commit object") < 0) {
            clear_all(res, sent);
            goto out;
        }
        read_advance(res[0], groups, ngroups);
    } else {
        read_advance(res[3], groups, ngroups);
    }
    clear_all(res, sent);

    /* Each group's range goes to its chunks in array order: one row per chunk. */
    int assigned = 0;
    for (int g = 0; g < ngroups; g++) {
        int64_t base = groups[g].base;
        for (int i = groups[g].first; i < groups[g].end; i++) {
            struct commit_chunk *c = &chunks[slots[i].idx];
            if (base < 0) {
                c->error = KERR_UNKNOWN_TOPIC_OR_PARTITION; /* deleted meanwhile, or no such partition */
                continue;
            }
            c->base_offset = base;
            base += c->offset_count;
            assigned++;
            array_add(&a[A_TOPIC], c->topic_id);
            array_add(&a[A_PARTITION], c->partition);
            array_add(&a[A_BASE], c->base_offset);
            array_add(&a[A_LAST], c->base_offset + c->offset_count - 1);
            array_add(&a[A_POS], (int64_t)c->pos);
            array_add(&a[A_LEN], c->len);
            array_add(&a[A_BATCHES], c->batch_count);
            array_add(&a[A_FIRST_TS], c->first_timestamp);
            array_add(&a[A_MAX_TS], c->max_timestamp);
        }
    }
    producer_plan_settle(&plan, chunks, nchunks);
    for (int k = 0; k < NPARRAYS; k++) {
        free(pa[k].p);
        array_init(&pa[k]);
    }
    int dirty = 0;
    for (int k = 0; k < plan.n; k++) {
        const struct producer_entry *e = &plan.e[k];
        if (!e->dirty)
            continue;
        char batches[PRODUCER_BATCHES_TEXT_MAX];
        producer_entry_format(e, batches, sizeof(batches));
        array_add(&pa[P_ID], e->producer_id);
        array_add(&pa[P_TOPIC], e->topic_id);
        array_add(&pa[P_PARTITION], e->partition);
        array_add(&pa[P_EPOCH], e->epoch);
        array_add_text(&pa[P_BATCHES], batches);
        array_add(&pa[P_TIMESTAMP], e->last_timestamp);
        dirty++;
    }
    pipe_start(s, &pp);
    if (assigned > 0) {
        p = (struct params){0};
        par_i64(&p, object_id);
        for (int k = 0; k < NARRAYS; k++)
            par_str(&p, array_end(&a[k]));
        pipe_send(s, &pp, S_CHUNKS_INSERT, &p);
    }
    if (dirty > 0) {
        p = (struct params){0};
        for (int k = 0; k < NPARRAYS; k++)
            par_str(&p, array_end(&pa[k]));
        pipe_send(s, &pp, S_PRODUCER_STATES_PUT, &p);
    }
    if (assigned == 0) { /* every chunk refused or a duplicate: the object is garbage at once */
        p = (struct params){0};
        par_i64(&p, object_id);
        pipe_send(s, &pp, S_GC_CANDIDATE_ADD, &p);
    }
    if (assigned > 0)
        pipe_send(s, &pp, S_NOTIFY, NULL); /* delivered to listeners when the transaction commits */
    pipe_send(s, &pp, S_COMMIT, NULL);
    s->commit_sent = true;
    sent = pp.n;
    if (pipe_finish(s, &pp, res, "commit object") == 0) {
        /* A transaction that failed earlier answers COMMIT with ROLLBACK. */
        if (strcmp(PQcmdStatus(res[sent - 1]), "COMMIT") == 0) {
            rc = 0;
            s->base.counters.commits++;
        } else
            report(s, "commit object: transaction rolled back");
    }
    clear_all(res, sent);
out:
    if (rc < 0)
        rollback(s);
    arrays_free(lock, 2);
    arrays_free(ga, 3);
    arrays_free(a, NARRAYS);
    arrays_free(pa, NPARRAYS);
    producer_plan_free(&plan);
    free(slots);
    free(groups);
    return rc;
}

/* A failed commit assigns nothing: every chunk answers KAFKA_STORAGE_ERROR. */
static int fail_commit(struct commit_chunk *chunks, int nchunks)
{
    for (int i = 0; i < nchunks; i++) {
        chunks[i].base_offset = -1;
        chunks[i].error = KERR_KAFKA_STORAGE_ERROR;
        chunks[i].duplicate = false;
    }
    return -1;
}

static int pg_commit_object(struct metastore *m, const char *object_key, uint64_t object_size,
                            struct commit_chunk *chunks, int nchunks)
{
    struct pg_store *s = (struct pg_store *)m;
    if (strlen(object_key) >= sizeof(((struct chunk_ref *)0)->object_key)) {
        log_error("metastore: object key too long: %s", object_key);
        return fail_commit(chunks, nchunks);
    }
    for (int attempt = 0;; attempt++) {
        if (call_begin(s) < 0)
            return fail_commit(chunks, nchunks);
        int rc = commit_once(s, object_key, object_size, chunks, nchunks);
        if (rc == 0)
            return 0;
        if (!retry(s, rc, attempt))
            return fail_commit(chunks, nchunks);
    }
}

/* ---- idempotent producers ---- */

/* Each statement commits on its own: a bump is one UPDATE that checks the epoch it replaces. */
static int init_producer_once(struct pg_store *s, int64_t producer_id, int16_t epoch, int64_t *out_id,
                              int16_t *out_epoch)
{
    struct params p = {0};
    if (producer_id >= 0) {
        par_i64(&p, producer_id);
        par_i64(&p, epoch);
        par_i64(&p, PRODUCER_EPOCH_MAX);
        PGresult *r = exec(s, S_PRODUCER_BUMP, &p, "bump producer epoch");
        if (!r)
            return -1;
        bool bumped = PQntuples(r) == 1;
        if (bumped) {
            *out_id = producer_id;
            *out_epoch = (int16_t)get_i64(r, 0, 0);
        }
        PQclear(r);
        if (bumped)
            return 0;
        p = (struct params){0};
        par_i64(&p, producer_id);
        r = exec(s, S_PRODUCER_EPOCH, &p, "read producer epoch");
        if (!r)
            return -1;
        int64_t current = PQntuples(r) == 1 ? get_i64(r, 0, 0) : -1;
        PQclear(r);
        if (current >= 0 && epoch == current - 1) { /* a retry of the bump that made current */
            *out_id = producer_id;
            *out_epoch = (int16_t)current;
            return 0;
        }
        if (current >= 0 && current != epoch)
            return KERR_PRODUCER_FENCED;
        /* an id the store does not know, or its epochs used up: a new id */
    }
    p = (struct params){0};
    par_i64(&p, wall_ms());
    PGresult *r = exec(s, S_PRODUCER_NEW, &p, "new producer id");
    if (!r)
        return -1;
    *out_id = get_i64(r, 0, 0);
    *out_epoch = 0;
    PQclear(r);
    return 0;
}

static int pg_init_producer(struct metastore *m, int64_t producer_id, int16_t epoch, int64_t *out_id,
                            int16_t *out_epoch)
{
    struct pg_store *s = (struct pg_store *)m;
    RETURN_WITH_RETRY(s, init_producer_once(s, producer_id, epoch, out_id, out_epoch));
}

static int list_producers_once(struct pg_store *s, int64_t topic_id, int32_t partition, struct producer_info **out,
                               int *n)
{
    struct params p = {0};
    par_i64(&p, topic_id);
    par_i64(&p, partition);
    PGresult *r = exec(s, S_PRODUCERS_LIST, &p, "list producers");
    if (!r)
        return -1;
    int rows = PQntuples(r);
    struct producer_info *v = alloc_rows(rows, sizeof(*v));
    for (int i = 0; i < rows; i++)
        producer_info_from_row(&v[i], get_i64(r, i, 0), (int16_t)get_i64(r, i, 1), PQgetvalue(r, i, 2),
                               get_i64(r, i, 3));
    PQclear(r);
    *out = v;
    *n = rows;
    return 0;
}

static int pg_list_producers(struct metastore *m, int64_t topic_id, int32_t partition, struct producer_info **out,
                             int *n)
{
    struct pg_store *s = (struct pg_store *)m;
    RETURN_WITH_RETRY(s, list_producers_once(s, topic_id, partition, out, n));
}

/* ---- fetch and ListOffsets ---- */

static int partition_offsets_once(struct pg_store *s, int64_t topic_id, int32_t partition, int64_t *log_start,
                                  int64_t *high_watermark)
{
    struct params p = {0};
    par_i64(&p, topic_id);
    par_i64(&p, partition);
    PGresult *r = exec(s, S_PARTITION_OFFSETS, &p, "partition offsets");
    if (!r)
        return -1;
    int rc = KERR_UNKNOWN_TOPIC_OR_PARTITION;
    if (PQntuples(r) == 1) {
        *log_start = get_i64(r, 0, 0);
        *high_watermark = get_i64(r, 0, 1);
        rc = 0;
    }
    PQclear(r);
    return rc;
}

static int pg_partition_offsets(struct metastore *m, int64_t topic_id, int32_t partition, int64_t *log_start,
                                int64_t *high_watermark)
{
    struct pg_store *s = (struct pg_store *)m;
    RETURN_WITH_RETRY(s, partition_offsets_once(s, topic_id, partition, log_start, high_watermark));
}

static void read_chunk(const PGresult *r, int row, struct chunk_ref *c)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->object_key, sizeof(c->object_key), "%s", PQgetvalue(r, row, 0));
    c->pos = (uint64_t)get_i64(r, row, 1);
    c->len = (uint32_t)get_i64(r, row, 2);
    c->batch_count = (int32_t)get_i64(r, row, 3);
    c->base_offset = get_i64(r, row, 4);
    c->last_offset = get_i64(r, row, 5);
    c->max_timestamp = get_i64(r, row, 6);
    c->object_size = (uint64_t)get_i64(r, row, 7);
    c->first_timestamp = get_i64(r, row, 8);
    c->cleaned = PQgetvalue(r, row, 9)[0] == 't';
}

/* Runs one of the chunk queries ($1 topic, $2 partition, $3 bound, $4 limit); max_timestamp
 * takes only the first two. Returns the count of rows read, or -1. */
static int chunk_query_once(struct pg_store *s, enum stmt_id id, int64_t topic_id, int32_t partition,
                            int64_t bound, struct chunk_ref *out, int max)
{
    struct params p = {0};
    par_i64(&p, topic_id);
    par_i64(&p, partition);
    if (id != S_MAX_TIMESTAMP) {
        par_i64(&p, bound);
        par_i64(&p, max);
    }
    PGresult *r = exec(s, id, &p, id == S_MAX_TIMESTAMP ? "max timestamp" : "find chunks");
    if (!r)
        return -1;
    int n = PQntuples(r);
    if (n > max)
        n = max;
    for (int i = 0; i < n; i++)
        read_chunk(r, i, &out[i]);
    PQclear(r);
    return n;
}

static int chunk_query(struct pg_store *s, enum stmt_id id, int64_t topic_id, int32_t partition, int64_t bound,
                       struct chunk_ref *out, int max)
{
    if (max <= 0)
        return 0;
    RETURN_WITH_RETRY(s, chunk_query_once(s, id, topic_id, partition, bound, out, max));
}

static int pg_find_chunks(struct metastore *m, int64_t topic_id, int32_t partition, int64_t from_offset,
                          struct chunk_ref *out, int max)
{
    return chunk_query((struct pg_store *)m, S_FIND_CHUNKS, topic_id, partition, from_offset, out, max);
}

static int pg_find_chunks_by_time(struct metastore *m, int64_t topic_id, int32_t partition, int64_t ts,
                                  struct chunk_ref *out, int max)
{
    return chunk_query((struct pg_store *)m, S_FIND_CHUNKS_BY_TIME, topic_id, partition, ts, out, max);
}

static int pg_max_timestamp(struct metastore *m, int64_t topic_id, int32_t partition, struct chunk_ref *out)
{
    int n = chunk_query((struct pg_store *)m, S_MAX_TIMESTAMP, topic_id, partition, 0, out, 1);
    return n < 0 ? -1 : n == 1 ? 0 : 1;
}

/* ---- membership ---- */

/* A fixed-size field that may lack its terminator, as a string. */
static const char *field(char *buf, size_t bufsize, const char *v, size_t size)
{
    snprintf(buf, bufsize, "%.*s", (int)strnlen(v, size), v);
    return buf;
}

static int heartbeat_once(struct pg_store *s, const struct member_info *self)
{
    char id[sizeof(self->id) + 1], group[sizeof(self->agent_group) + 1], host[sizeof(self->host) + 1],
        fwd[sizeof(self->fwd_addr) + 1];
    struct params p = {0};
    par_str(&p, field(id, sizeof(id), self->id, sizeof(self->id)));
    par_str(&p, field(group, sizeof(group), self->agent_group, sizeof(self->agent_group)));
    par_str(&p, field(host, sizeof(host), self->host, sizeof(self->host)));
    par_i64(&p, self->port_base);
    par_i64(&p, self->worker);
    par_str(&p, field(fwd, sizeof(fwd), self->fwd_addr, sizeof(self->fwd_addr)));
    return exec_cmd(s, S_MEMBER_UPSERT, &p, "heartbeat");
}

static int pg_heartbeat(struct metastore *m, const struct member_info *self)
{
    struct pg_store *s = (struct pg_store *)m;
    RETURN_WITH_RETRY(s, heartbeat_once(s, self));
}

static int list_members_once(struct pg_store *s, const char *agent_group, int64_t alive_within_ms,
                             struct member_info **out, int *n)
{
    struct params p = {0};
    par_str(&p, agent_group); /* NULL: SQL NULL, every group */
    par_i64(&p, alive_within_ms);
    PGresult *r = exec(s, S_MEMBERS_LIST, &p, "list members");
    if (!r)
        return -1;
    int count = PQntuples(r);
    struct member_info *v = alloc_rows(count, sizeof(*v));
    for (int i = 0; i < count; i++) {
        snprintf(v[i].id, sizeof(v[i].id), "%s", PQgetvalue(r, i, 0));
        snprintf(v[i].agent_group, sizeof(v[i].agent_group), "%s", PQgetvalue(r, i, 1));
        snprintf(v[i].host, sizeof(v[i].host), "%s", PQgetvalue(r, i, 2));
        v[i].port_base = (int32_t)get_i64(r, i, 3);
        v[i].worker = (int32_t)get_i64(r, i, 4);
        snprintf(v[i].fwd_addr, sizeof(v[i].fwd_addr), "%s", PQgetvalue(r, i, 5));
        v[i].heartbeat_ms = get_i64(r, i, 6);
    }
    PQclear(r);
    *out = v;
    *n = count;
    return 0;
}

static int pg_list_members(struct metastore *m, const char *agent_group, int64_t alive_within_ms,
                           struct member_info **out, int *n)
{
    struct pg_store *s = (struct pg_store *)m;
    RETURN_WITH_RETRY(s, list_members_once(s, agent_group, alive_within_ms, out, n));
}

static int pg_remove_member(struct metastore *m, const char *id)
{
    struct pg_store *s = (struct pg_store *)m;
    struct params p = {0};
    par_str(&p, id);
    RETURN_WITH_RETRY(s, exec_cmd(s, S_MEMBER_DELETE, &p, "remove member"));
}

static int pg_prune_members(struct metastore *m, int64_t older_than_ms)
{
    struct pg_store *s = (struct pg_store *)m;
    struct params p = {0};
    par_i64(&p, older_than_ms);
    RETURN_WITH_RETRY(s, exec_cmd(s, S_MEMBERS_PRUNE, &p, "prune members"));
}

/* ---- consumer groups (unprepared statements: a few per group request) ---- */

/* Runs sql with text parameters (v[i] NULL: SQL NULL); bytea parameters are sent binary where
 * lens[i] >= 0. Its result, or NULL after reporting. */
static PGresult *exec_sql(struct pg_store *s, const char *sql, int n, const char *const *v, const int *lens,
                          const char *what)
{
    int formats[10] = {0}, lengths[10] = {0};
    for (int i = 0; lens && i < n; i++)
        if (lens[i] >= 0) {
            formats[i] = 1;
            lengths[i] = lens[i];
        }
    count_trip(s, 1);
    PGresult *r = PQexecParams(s->conn, sql, n, NULL, v, lengths, formats, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return r;
    fail(s, r, what);
    PQclear(r);
    return NULL;
}

static int group_load_once(struct pg_store *s, const char *group_id, uint8_t **data, size_t *len, int64_t *version)
{
    const char *v[1] = {group_id};
    PGresult *r = exec_sql(s, "SELECT version, encode(state, 'hex') FROM consumer_groups WHERE group_id = $1", 1, v,
                           NULL, "load group");
    if (!r)
        return -1;
    *version = 0;
    *data = NULL;
    *len = 0;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return 1;
    }
    *version = get_i64(r, 0, 0);
    const char *hex = PQgetvalue(r, 0, 1);
    size_t n = strlen(hex) / 2;
    *data = malloc(n ? n : 1);
    if (!*data)
        abort();
    for (size_t i = 0; i < n; i++)
        (*data)[i] = (uint8_t)(hex_value(hex[2 * i]) << 4 | hex_value(hex[2 * i + 1]));
    *len = n;
    PQclear(r);
    return 0;
}

static int pg_group_load(struct metastore *m, const char *group_id, uint8_t **data, size_t *len, int64_t *version)
{
    struct pg_store *s = (struct pg_store *)m;
    RETURN_WITH_RETRY(s, group_load_once(s, group_id, data, len, version));
}

static int group_store_once(struct pg_store *s, const char *group_id, int64_t version, int phase,
                            const char *protocol_type, const uint8_t *data, size_t len, bool announce)
{
    char ver[24], ph[24];
    snprintf(ver, sizeof(ver), "%lld", (long long)version);
    snprintf(ph, sizeof(ph), "%d", phase);
    const char *v[6] = {group_id, ver, ph, protocol_type ? protocol_type : "", (const char *)data,
                        announce ? "1" : "0"};
    int lens[6] = {-1, -1, -1, -1, (int)len, -1};
    /* One statement that may also announce the change (NOTIFY is sent when it commits): other
     * agents' parked JoinGroup and SyncGroup requests look again at once. */
    PGresult *r = exec_sql(s, version == 0
        ? "WITH w AS (INSERT INTO consumer_groups (group_id, version, phase, protocol_type, state, updated_ms)"
          " VALUES ($1, $2::bigint + 1, $3, $4, $5, " STORE_NOW_MS ") ON CONFLICT (group_id) DO NOTHING RETURNING 1)"
          " SELECT (SELECT count(*) FROM w), CASE WHEN $6 = '1' THEN pg_notify('" CHANNEL "', '') END"
        : "WITH w AS (UPDATE consumer_groups SET version = version + 1, phase = $3, protocol_type = $4, state = $5,"
          " updated_ms = " STORE_NOW_MS " WHERE group_id = $1 AND version = $2::bigint RETURNING 1)"
          " SELECT (SELECT count(*) FROM w), CASE WHEN $6 = '1' THEN pg_notify('" CHANNEL "', '') END",
        6, v, lens, "store group");
    if (!r)
        return -1;
    int rc = PQntuples(r) == 1 && get_i64(r, 0, 0) == 1 ? 0 : 1;
    PQclear(r);
    return rc;
}

static int pg_group_store(struct metastore *m, const char *group_id, int64_t version, int phase,
                          const char *protocol_type, const uint8_t *data, size_t len, bool announce)
{
    struct pg_store *s = (struct pg_store *)m;
    RETURN_WITH_RETRY(s, group_store_once(s, group_id, version, phase, protocol_type, data, len, announce));
}

static int groups_list_once(struct pg_store *s, struct group_summary **out, int *n)
{
    /* Groups with state, and those that only committed offsets (simple consumers: Empty). */
    PGresult *r = exec_sql(s, "SELECT * FROM (SELECT group_id, phase, protocol_type FROM consumer_groups UNION"
                              " SELECT DISTINCT group_id, 0, '' FROM group_offsets"
                              " WHERE group_id NOT IN (SELECT group_id FROM consumer_groups)) g"
                              " ORDER BY group_id COLLATE \"C\"",
                           0, NULL, NULL, "list groups");
    if (!r)
        return -1;
    int count = PQntuples(r);
    struct group_summary *v = alloc_rows(count, sizeof(*v));
    for (int i = 0; i < count; i++) {
        snprintf(v[i].group_id, sizeof(v[i].group_id), "%s", PQgetvalue(r, i, 0));
        v[i].phase = (int)get_i64(r, i, 1);
        snprintf(v[i].protocol_type, sizeof(v[i].protocol_type), "%s", PQgetvalue(r, i, 2));
    }
    PQclear(r);
    *out = v;
    *n = count;
    return 0;
}

static int pg_groups_list(struct metastore *m, struct group_summary **out, int *n)
{
    struct pg_store *s = (struct pg_store *)m;
    RETURN_WITH_RETRY(s, groups_list_once(s, out, n));
}

static int offsets_commit_once(struct pg_store *s, const char *group_id, const struct group_offset *o, int n)
{
    PGresult *r = exec_sql(s, "BEGIN", 0, NULL, NULL, "commit offsets");
    if (!r)
        return -1;
    PQclear(r);
    for (int i = 0; i < n; i++) {
        char part[24], off[24], epoch[24];
        snprintf(part, sizeof(part), "%d", o[i].partition);
        snprintf(off, sizeof(off), "%lld", (long long)o[i].offset);
        snprintf(epoch, sizeof(epoch), "%d", o[i].leader_epoch);
        const char *v[6] = {group_id, o[i].topic, part, off, epoch, o[i].metadata};
        r = exec_sql(s, "INSERT INTO group_offsets (group_id, topic, partition, committed_offset, leader_epoch,"
                        " metadata, commit_ms) VALUES ($1, $2, $3, $4, $5, $6, " STORE_NOW_MS ")"
                        " ON CONFLICT (group_id, topic, partition) DO UPDATE SET"
                        " committed_offset = excluded.committed_offset, leader_epoch = excluded.leader_epoch,"
                        " metadata = excluded.metadata, commit_ms = excluded.commit_ms",
                     6, v, NULL, "commit offsets");
        if (!r)
            return abort_tx(s);
        PQclear(r);
    }
    return commit(s, "commit offsets");
}

static int pg_offsets_commit(struct metastore *m, const char *group_id, const struct group_offset *v, int n)
{
    struct pg_store *s = (struct pg_store *)m;
    RETURN_WITH_RETRY(s, offsets_commit_once(s, group_id, v, n));
}

static int offsets_fetch_once(struct pg_store *s, const char *group_id, struct group_offset **out, int *n)
{
    const char *v[1] = {group_id};
    PGresult *r = exec_sql(s, "SELECT topic, partition, committed_offset, leader_epoch, metadata, commit_ms"
                              " FROM group_offsets WHERE group_id = $1 ORDER BY topic COLLATE \"C\", partition",
                           1, v, NULL, "fetch offsets");
    if (!r)
        return -1;
    int count = PQntuples(r);
    struct group_offset *o = alloc_rows(count, sizeof(*o));
    for (int i = 0; i < count; i++) {
        o[i].topic = strdup(PQgetvalue(r, i, 0));
        o[i].partition = (int32_t)get_i64(r, i, 1);
        o[i].offset = get_i64(r, i, 2);
        o[i].leader_epoch = (int32_t)get_i64(r, i, 3);
        if (!PQgetisnull(r, i, 4))
            o[i].metadata = strdup(PQgetvalue(r, i, 4));
        o[i].commit_ms = get_i64(r, i, 5);
        if (!o[i].topic || (!PQgetisnull(r, i, 4) && !o[i].metadata))
            abort();
    }
    PQclear(r);
    *out = group_offsets_pack(o, count);
    *n = count;
    return 0;
}

static int pg_offsets_fetch(struct metastore *m, const char *group_id, struct group_offset **out, int *n)
{
    struct pg_store *s = (struct pg_store *)m;
    RETURN_WITH_RETRY(s, offsets_fetch_once(s, group_id, out, n));
}

static int pg_offsets_expire(struct metastore *m, int64_t older_than_ms)
{
    struct pg_store *s = (struct pg_store *)m;
    char older[24];
    snprintf(older, sizeof(older), "%lld", (long long)older_than_ms);
    const char *v[1] = {older};
    for (int attempt = 0;; attempt++) {
        if (call_begin(s) < 0)
            return -1;
        PGresult *r = exec_sql(s, "DELETE FROM group_offsets WHERE commit_ms < " STORE_NOW_MS " - $1::bigint"
                                  " AND group_id NOT IN (SELECT group_id FROM consumer_groups WHERE phase <> 0)",
                               1, v, NULL, "expire offsets");
        int rc = r ? 0 : -1;
        PQclear(r);
        if (!retry(s, rc, attempt))
            return rc;
    }
}

static int group_delete_once(struct pg_store *s, const char *group_id, int64_t version)
{
    char ver[24];
    snprintf(ver, sizeof(ver), "%lld", (long long)version);
    const char *v[2] = {group_id, ver};
    PGresult *r = exec_sql(s, "BEGIN", 0, NULL, NULL, "delete group");
    if (!r)
        return -1;
    PQclear(r);
    r = exec_sql(s, version > 0 ? "DELETE FROM consumer_groups WHERE group_id = $1 AND version = $2"
                                : "SELECT 1 FROM consumer_groups WHERE group_id = $1 FOR UPDATE",
                 version > 0 ? 2 : 1, v, NULL, "delete group");
    if (!r)
        return abort_tx(s);
    int n = version > 0 ? atoi(PQcmdTuples(r)) : PQntuples(r);
    PQclear(r);
    if ((version > 0) != (n == 1)) { /* changed (or created) meanwhile */
        rollback(s);
        return 1;
    }
    r = exec_sql(s, "DELETE FROM group_offsets WHERE group_id = $1", 1, v, NULL, "delete group");
    if (!r)
        return abort_tx(s);
    int offsets = atoi(PQcmdTuples(r));
    PQclear(r);
    if (commit(s, "delete group") != 0)
        return -1;
    return version == 0 && offsets == 0 ? KERR_GROUP_ID_NOT_FOUND : 0;
}

static int pg_group_delete(struct metastore *m, const char *group_id, int64_t version)
{
    struct pg_store *s = (struct pg_store *)m;
    RETURN_WITH_RETRY(s, group_delete_once(s, group_id, version));
}

static int offsets_delete_once(struct pg_store *s, const char *group_id, const struct group_offset *o, int n)
{
    PGresult *r = exec_sql(s, "BEGIN", 0, NULL, NULL, "delete offsets");
    if (!r)
        return -1;
    PQclear(r);
    for (int i = 0; i < n; i++) {
        char part[24];
        snprintf(part, sizeof(part), "%d", o[i].partition);
        const char *v[3] = {group_id, o[i].topic, part};
        r = exec_sql(s, "DELETE FROM group_offsets WHERE group_id = $1 AND topic = $2 AND partition = $3", 3, v, NULL,
                     "delete offsets");
        if (!r)
            return abort_tx(s);
        PQclear(r);
    }
    return commit(s, "delete offsets");
}

static int pg_offsets_delete(struct metastore *m, const char *group_id, const struct group_offset *v, int n)
{
    struct pg_store *s = (struct pg_store *)m;
    RETURN_WITH_RETRY(s, offsets_delete_once(s, group_id, v, n));
}

/* ---- notifications ---- */

/* ---- ACLs ---- */

static int acl_add_once(struct pg_store *s, const struct acl_entry *e)
{
    char rt[8], pt[8], op[8], perm[8];
    snprintf(rt, sizeof(rt), "%d", e->resource_type);
    snprintf(pt, sizeof(pt), "%d", e->pattern_type);
    snprintf(op, sizeof(op), "%d", e->operation);
    snprintf(perm, sizeof(perm), "%d", e->permission);
    const char *v[7] = {rt, e->resource_name, pt, e->principal, e->host, op, perm};
    PGresult *r = exec_sql(s, "INSERT INTO acls (resource_type, resource_name, pattern_type, principal, host,"
                              " operation, permission) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                           7, v, NULL, "add acl");
    if (!r)
        return -1;
    PQclear(r);
    return 0;
}

static int pg_acl_add(struct metastore *m, const struct acl_entry *e)
{
    struct pg_store *s = (struct pg_store *)m;
    RETURN_WITH_RETRY(s, acl_add_once(s, e));
}

static int acl_list_once(struct pg_store *s, struct acl_entry **out, int *n)
{
    PGresult *r = exec_sql(s, "SELECT id, resource_type, resource_name, pattern_type, principal, host, operation,"
                              " permission FROM acls ORDER BY id",
                           0, NULL, NULL, "list acls");
    if (!r)
        return -1;
    int count = PQntuples(r);
    struct acl_entry *v = alloc_rows(count, sizeof(*v));
    for (int i = 0; i < count; i++) {
        struct acl_entry *e = &v[i];
        e->id = get_i64(r, i, 0);
        e->resource_type = (int8_t)get_i64(r, i, 1);
        snprintf(e->resource_name, sizeof(e->resource_name), "%s", PQgetvalue(r, i, 2));
        e->pattern_type = (int8_t)get_i64(r, i, 3);
        snprintf(e->principal, sizeof(e->principal), "%s", PQgetvalue(r, i, 4));
        snprintf(e->host, sizeof(e->host), "%s", PQgetvalue(r, i, 5));
        e->operation = (int8_t)get_i64(r, i, 6);
        e->permission = (int8_t)get_i64(r, i, 7);
    }
    PQclear(r);
    *out = v;
    *n = count;
    return 0;
}

static int pg_acl_list(struct metastore *m, struct acl_entry **out, int *n)
{
    struct pg_store *s = (struct pg_store *)m;
    RETURN_WITH_RETRY(s, acl_list_once(s, out, n));
}

static int acl_delete_once(struct pg_store *s, int64_t id)
{
    char idv[24];
    snprintf(idv, sizeof(idv), "%lld", (long long)id);
    const char *v[1] = {idv};
    PGresult *r = exec_sql(s, "DELETE FROM acls WHERE id = $1", 1, v, NULL, "delete acl");
    if (!r)
        return -1;
    PQclear(r);
    return 0;
}

static int pg_acl_delete(struct metastore *m, int64_t id)
{
    struct pg_store *s = (struct pg_store *)m;
    RETURN_WITH_RETRY(s, acl_delete_once(s, id));
}

/* ---- background jobs: leases, retention, garbage objects ---- */

static int lease_acquire_once(struct pg_store *s, const char *kind, const char *owner, int64_t ttl_ms)
{
    char ttl[24];
    snprintf(ttl, sizeof(ttl), "%lld", (long long)ttl_ms);
    const char *v[3] = {kind, owner, ttl};
    /* One statement: insert, or take over only from ourselves or an expired holder. */
    PGresult *r = exec_sql(s, "INSERT INTO job_leases (kind, owner, expires_ms) VALUES ($1, $2, " STORE_NOW_MS
                              " + $3::bigint) ON CONFLICT (kind) DO UPDATE SET owner = excluded.owner,"
                              " expires_ms = excluded.expires_ms WHERE job_leases.owner = excluded.owner"
                              " OR job_leases.expires_ms < " STORE_NOW_MS " RETURNING 1",
                           3, v, NULL, "acquire lease");
    if (!r)
        return -1;
    int rc = PQntuples(r) == 1 ? 0 : 1;
    PQclear(r);
    return rc;
}

static int pg_lease_acquire(struct metastore *m, const char *kind, const char *owner, int64_t ttl_ms)
{
    struct pg_store *s = (struct pg_store *)m;
    RETURN_WITH_RETRY(s, lease_acquire_once(s, kind, owner, ttl_ms));
}

static int lease_release_once(struct pg_store *s, const char *kind, const char *owner)
{
    const char *v[2] = {kind, owner};
    PGresult *r = exec_sql(s, "DELETE FROM job_leases WHERE kind = $1 AND owner = $2", 2, v, NULL, "release lease");
    PQclear(r);
    return r ? 0 : -1;
}

static int pg_lease_release(struct metastore *m, const char *kind, const char *owner)
{
    struct pg_store *s = (struct pg_store *)m;
    RETURN_WITH_RETRY(s, lease_release_once(s, kind, owner));
}

/* One statement, so the chunks and the high watermark are read in one snapshot. */
static int retention_offset_once(struct pg_store *s, int64_t topic_id, int32_t partition, int64_t min_timestamp,
                                 int64_t max_bytes, int64_t *offset)
{
    char tid[24], part[16], ts[24], bytes[24];
    snprintf(tid, sizeof(tid), "%lld", (long long)topic_id);
    snprintf(part, sizeof(part), "%d", partition);
    snprintf(ts, sizeof(ts), "%lld", (long long)min_timestamp);
    snprintf(bytes, sizeof(bytes), "%lld", (long long)max_bytes);
    const char *v[4] = {tid, part, ts, bytes};
    PGresult *r = exec_sql(
        s, "SELECT next_offset,"
           " (SELECT base_offset FROM chunks WHERE topic_id = $1 AND partition = $2"
           "  AND running_max_timestamp >= $3 ORDER BY running_max_timestamp, base_offset LIMIT 1),"
           " CASE WHEN $4::bigint < 0 THEN NULL ELSE (SELECT min(base_offset) FROM (SELECT base_offset, len,"
           "   sum(len) OVER (ORDER BY base_offset DESC) AS newer FROM chunks WHERE topic_id = $1 AND partition = $2)"
           "   AS w WHERE newer - len < $4::bigint) END"
           " FROM partitions WHERE topic_id = $1 AND partition = $2",
        4, v, NULL, "retention offset");
    if (!r)
        return -1;
    int rc = KERR_UNKNOWN_TOPIC_OR_PARTITION;
    if (PQntuples(r) == 1) {
        int64_t keep = get_i64(r, 0, 0); /* no chunk kept: everything up to the high watermark goes */
        if (!PQgetisnull(r, 0, 1)) {
            keep = get_i64(r, 0, 1);
            if (!PQgetisnull(r, 0, 2) && get_i64(r, 0, 2) > keep)
                keep = get_i64(r, 0, 2);
        }
        *offset = keep;
        rc = 0;
    }
    PQclear(r);
    return rc;
}

static int pg_retention_offset(struct metastore *m, int64_t topic_id, int32_t partition, int64_t min_timestamp,
                               int64_t max_bytes, int64_t *offset)
{
    struct pg_store *s = (struct pg_store *)m;
    RETURN_WITH_RETRY(s, retention_offset_once(s, topic_id, partition, min_timestamp, max_bytes, offset));
}

static int trim_partition_once(struct pg_store *s, int64_t topic_id, int32_t partition, int64_t offset,
                               int64_t *log_start, int *chunks_removed)
{
    char tid[24], part[16], off[24];
    snprintf(tid, sizeof(tid), "%lld", (long long)topic_id);
    snprintf(part, sizeof(part), "%d", partition);
    if (exec_cmd(s, S_BEGIN, NULL, "trim partition") < 0)
        return -1;
    /* The row lock orders this against commits advancing the same partition. */
    const char *v[3] = {tid, part, off};
    PGresult *r = exec_sql(s, "SELECT log_start_offset, next_offset FROM partitions"
                              " WHERE topic_id = $1 AND partition = $2 FOR UPDATE",
                           2, v, NULL, "trim partition");
    if (!r)
        return abort_tx(s);
    if (PQntuples(r) != 1) {
        PQclear(r);
        rollback(s);
        return KERR_UNKNOWN_TOPIC_OR_PARTITION;
    }
    int64_t start = get_i64(r, 0, 0), hwm = get_i64(r, 0, 1);
    PQclear(r);
    if (offset < 0)
        offset = hwm;
    if (offset > hwm) {
        rollback(s);
        return KERR_OFFSET_OUT_OF_RANGE;
    }
    *chunks_removed = 0;
    if (offset > start) {
        snprintf(off, sizeof(off), "%lld", (long long)offset);
        r = exec_sql(s, "INSERT INTO gc_candidates SELECT DISTINCT object_id FROM chunks WHERE topic_id = $1"
                        " AND partition = $2 AND last_offset < $3 ON CONFLICT DO NOTHING",
                     3, v, NULL, "trim chunks");
        if (!r)
            return abort_tx(s);
        PQclear(r);
        r = exec_sql(s, "DELETE FROM chunks WHERE topic_id = $1 AND partition = $2 AND last_offset < $3", 3, v, NULL,
                     "trim chunks");
        if (!r)
            return abort_tx(s);
        *chunks_removed = atoi(PQcmdTuples(r));
        PQclear(r);
        r = exec_sql(s, "UPDATE partitions SET log_start_offset = $3 WHERE topic_id = $1 AND partition = $2", 3, v,
                     NULL, "move log start");
        if (!r)
            return abort_tx(s);
        PQclear(r);
        start = offset;
    }
    if (commit(s, "trim partition") < 0)
        return abort_tx(s);
    *log_start = start;
    return 0;
}

static int pg_trim_partition(struct metastore *m, int64_t topic_id, int32_t partition, int64_t offset,
                             int64_t *log_start, int *chunks_removed)
{
    struct pg_store *s = (struct pg_store *)m;
    RETURN_WITH_RETRY(s, trim_partition_once(s, topic_id, partition, offset, log_start, chunks_removed));
}

/* One run under its partition's lock: checked against what is stored, then switched. 1 replaced,
 * 0 changed meanwhile, -1. */
static int replace_run(struct pg_store *s, const char *object_id, struct chunk_replacement *r)
{
    char tid[24], part[16], base[24], last[24], pos[24], len[16], batches[16];
    snprintf(tid, sizeof(tid), "%" PRId64, r->topic_id);
    snprintf(part, sizeof(part), "%d", r->partition);
    snprintf(base, sizeof(base), "%" PRId64, r->base_offset);
    snprintf(last, sizeof(last), "%" PRId64, r->last_offset);
    const char *v[9] = {tid, part, base, last, object_id, pos, len, batches, r->cleaned ? "true" : "false"};
    PGresult *res = exec_sql(s, "SELECT count(*), min(base_offset), max(last_offset) FROM chunks"
                                " WHERE topic_id = $1 AND partition = $2 AND base_offset >= $3 AND base_offset <= $4",
                             4, v, NULL, "read chunks to replace");
    if (!res)
        return -1;
    bool same = get_i64(res, 0, 0) == r->old_chunks && !PQgetisnull(res, 0, 1) &&
                get_i64(res, 0, 1) == r->base_offset && get_i64(res, 0, 2) == r->last_offset;
    PQclear(res);
    if (!same)
        return 0;
    snprintf(pos, sizeof(pos), "%" PRIu64, r->pos);
    snprintf(len, sizeof(len), "%" PRIu32, r->len);
    snprintf(batches, sizeof(batches), "%" PRId32, r->batch_count);
    /* One statement: the old rows are read, made gc candidates and deleted, the new one inserted. */
    res = exec_sql(s, "WITH old AS (DELETE FROM chunks WHERE topic_id = $1 AND partition = $2"
                      "  AND base_offset >= $3 AND base_offset <= $4 RETURNING *),"
                      " gc AS (INSERT INTO gc_candidates SELECT DISTINCT object_id FROM old ON CONFLICT DO NOTHING)"
                      " INSERT INTO chunks (topic_id, partition, base_offset, last_offset, object_id, pos, len,"
                      " batch_count, first_timestamp, max_timestamp, running_max_timestamp, cleaned)"
                      " SELECT $1, $2, $3, $4, $5::bigint, $6::bigint, $7::bigint, $8::int,"
                      " (SELECT first_timestamp FROM old WHERE base_offset = $3::bigint),"
                      " max(max_timestamp), max(running_max_timestamp), $9::boolean FROM old",
                   9, v, NULL, "replace chunks");
    if (!res)
        return -1;
    PQclear(res);
    return 1;
}

static int replace_chunks_once(struct pg_store *s, const char *object_key, uint64_t object_size,
                               struct chunk_replacement *runs, int n)
{
    if (exec_cmd(s, S_BEGIN, NULL, "replace chunks") < 0)
        return -1;
    struct params p = {0};
    par_str(&p, object_key);
    par_i64(&p, (int64_t)object_size);
    par_i64(&p, wall_ms());
    PGresult *r = exec(s, S_OBJECT_INSERT, &p, "replace chunks");
    if (!r)
        return abort_tx(s);
    char object_id[24];
    snprintf(object_id, sizeof(object_id), "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    /* The runs' partitions, locked in the order every commit locks them (no deadlock): trimming
     * and deleting a topic wait for the switch, and it for them. */
    struct array lock[2];
    arrays_init(lock, 2);
    for (int i = 0; i < n; i++) {
        array_add(&lock[0], runs[i].topic_id);
        array_add(&lock[1], runs[i].partition);
    }
    p = (struct params){0};
    par_str(&p, array_end(&lock[0]));
    par_str(&p, array_end(&lock[1]));
    r = exec(s, S_PARTITIONS_LOCK, &p, "replace chunks");
    free(lock[0].p);
    free(lock[1].p);
    if (!r)
        return abort_tx(s);
    PQclear(r);
    int replaced = 0;
    for (int i = 0; i < n; i++) {
        int rc = replace_run(s, object_id, &runs[i]);
        if (rc < 0)
            return abort_tx(s);
        runs[i].replaced = rc == 1;
        replaced += rc;
    }
    if (replaced == 0) { /* nothing went into it: garbage once the grace period has passed */
        p = (struct params){0};
        par_str(&p, object_id);
        if (exec_cmd(s, S_GC_CANDIDATE_ADD, &p, "replace chunks") < 0)
            return abort_tx(s);
    }
    if (commit(s, "replace chunks") < 0)
        return abort_tx(s);
    return replaced;
}

static int pg_replace_chunks(struct metastore *m, const char *object_key, uint64_t object_size,
                             struct chunk_replacement *runs, int n)
{
    struct pg_store *s = (struct pg_store *)m;
    if (strlen(object_key) >= OBJECT_KEY_MAX) {
        log_error("metastore: object key too long: %s", object_key);
        return -1;
    }
    RETURN_WITH_RETRY(s, replace_chunks_once(s, object_key, object_size, runs, n));
}

static int log_starts_once(struct pg_store *s, struct log_start_row **out, int *n)
{
    PGresult *r = exec_sql(s, "SELECT topic_id, partition, log_start_offset FROM partitions WHERE log_start_offset > 0",
                           0, NULL, NULL, "list log starts");
    if (!r)
        return -1;
    int count = PQntuples(r);
    struct log_start_row *v = alloc_rows(count, sizeof(*v));
    for (int i = 0; i < count; i++) {
        v[i].topic_id = get_i64(r, i, 0);
        v[i].partition = (int32_t)get_i64(r, i, 1);
        v[i].log_start = get_i64(r, i, 2);
    }
    PQclear(r);
    *out = v;
    *n = count;
    return 0;
}

static int pg_log_starts(struct metastore *m, struct log_start_row **out, int *n)
{
    struct pg_store *s = (struct pg_store *)m;
    RETURN_WITH_RETRY(s, log_starts_once(s, out, n));
}

static int objects_unreferenced_once(struct pg_store *s, int64_t grace_ms, int max, char (**keys)[OBJECT_KEY_MAX],
                                     int *n)
{
    /* Only objects that lost chunks are looked at: the candidates taken are exactly those checked. */
    PGresult *r = exec_sql(s, "WITH c AS (DELETE FROM gc_candidates RETURNING object_id)"
                              " UPDATE objects SET unreferenced_ms = " STORE_NOW_MS " FROM c"
                              " WHERE objects.id = c.object_id AND unreferenced_ms IS NULL"
                              " AND NOT EXISTS (SELECT 1 FROM chunks ch WHERE ch.object_id = objects.id)",
                           0, NULL, NULL, "stamp unreferenced objects");
    if (!r)
        return -1;
    PQclear(r);
    char grace[24], lim[16];
    snprintf(grace, sizeof(grace), "%lld", (long long)grace_ms);
    snprintf(lim, sizeof(lim), "%d", max);
    const char *v[2] = {grace, lim};
    r = exec_sql(s, "SELECT key FROM objects WHERE unreferenced_ms <= " STORE_NOW_MS " - $1::bigint"
                    " ORDER BY unreferenced_ms LIMIT $2::int",
                 2, v, NULL, "list unreferenced objects");
    if (!r)
        return -1;
    int count = PQntuples(r);
    char(*k)[OBJECT_KEY_MAX] = alloc_rows(count, sizeof(*k));
    for (int i = 0; i < count; i++)
        snprintf(k[i], OBJECT_KEY_MAX, "%s", PQgetvalue(r, i, 0));
    PQclear(r);
    *keys = k;
    *n = count;
    return 0;
}

static int pg_objects_unreferenced(struct metastore *m, int64_t grace_ms, int max, char (**keys)[OBJECT_KEY_MAX],
                                   int *n)
{
    struct pg_store *s = (struct pg_store *)m;
    RETURN_WITH_RETRY(s, objects_unreferenced_once(s, grace_ms, max, keys, n));
}

static int object_forget_once(struct pg_store *s, const char *key)
{
    const char *v[1] = {key};
    PGresult *r = exec_sql(s, "DELETE FROM objects WHERE key = $1"
                              " AND NOT EXISTS (SELECT 1 FROM chunks c WHERE c.object_id = objects.id)",
                           1, v, NULL, "forget object");
    PQclear(r);
    return r ? 0 : -1;
}

static int pg_object_forget(struct metastore *m, const char *key)
{
    struct pg_store *s = (struct pg_store *)m;
    RETURN_WITH_RETRY(s, object_forget_once(s, key));
}

static int object_known_once(struct pg_store *s, const char *key)
{
    const char *v[1] = {key};
    PGresult *r = exec_sql(s, "SELECT 1 FROM objects WHERE key = $1", 1, v, NULL, "look up object");
    if (!r)
        return -1;
    int known = PQntuples(r) > 0;
    PQclear(r);
    return known;
}

static int pg_object_known(struct metastore *m, const char *key)
{
    struct pg_store *s = (struct pg_store *)m;
    RETURN_WITH_RETRY(s, object_known_once(s, key));
}

static int pg_notify_fd(struct metastore *m)
{
    struct pg_store *s = (struct pg_store *)m;
    s->listen = true; /* from now on every connection of this handle listens */
    if (call_begin(s) < 0)
        return -1;
    if (!s->listening && listen_now(s) < 0)
        return -1;
    return PQsocket(s->conn);
}

static int consume_once(struct pg_store *s)
{
    if (!PQconsumeInput(s->conn)) {
        fail(s, NULL, "notifications");
        return -1;
    }
    int n = 0;
    PGnotify *nt;
    while ((nt = PQnotifies(s->conn))) {
        if (nt->be_pid != PQbackendPID(s->conn)) /* this handle's own commits are no news */
            n++;
        PQfreemem(nt);
    }
    if (s->missed_wakeup) { /* commits made while disconnected were announced to nobody */
        s->missed_wakeup = false;
        n++;
    }
    return n;
}

static int pg_consume_notifications(struct metastore *m)
{
    struct pg_store *s = (struct pg_store *)m;
    RETURN_WITH_RETRY(s, consume_once(s));
}

/* ---- open / close ---- */

static void pg_close(struct metastore *m)
{
    struct pg_store *s = (struct pg_store *)m;
    PQfinish(s->conn);
    free(s);
}

/* ---- SASL credentials ---- */

static int cred_put_once(struct pg_store *s, const struct sasl_credential *c)
{
    char it[24];
    snprintf(it, sizeof(it), "%d", c->iterations);
    const char *v[6] = {c->user, c->mechanism, c->salt, it, c->stored_key, c->server_key};
    PGresult *r = exec_sql(s, "INSERT INTO sasl_credentials (username, mechanism, salt, iterations, stored_key,"
                              " server_key) VALUES ($1, $2, $3, $4::integer, $5, $6) ON CONFLICT (username, mechanism)"
                              " DO UPDATE SET salt = $3, iterations = $4::integer, stored_key = $5, server_key = $6",
                           6, v, NULL, "store credential");
    if (!r)
        return -1;
    PQclear(r);
    return 0;
}

static int pg_cred_put(struct metastore *m, const struct sasl_credential *c)
{
    struct pg_store *s = (struct pg_store *)m;
    RETURN_WITH_RETRY(s, cred_put_once(s, c));
}

static int cred_delete_once(struct pg_store *s, const char *user, const char *mechanism)
{
    const char *v[2] = {user, mechanism};
    PGresult *r = exec_sql(s, "DELETE FROM sasl_credentials WHERE username = $1 AND ($2::text IS NULL OR"
                              " mechanism = $2::text)", 2, v, NULL, "delete credential");
    if (!r)
        return -1;
    int n = atoi(PQcmdTuples(r));
    PQclear(r);
    return n;
}

static int pg_cred_delete(struct metastore *m, const char *user, const char *mechanism)
{
    struct pg_store *s = (struct pg_store *)m;
    RETURN_WITH_RETRY(s, cred_delete_once(s, user, mechanism));
}

static int cred_list_once(struct pg_store *s, const char *user, const char *mechanism, struct sasl_credential **out,
                          int *n)
{
    const char *v[2] = {user, mechanism};
    PGresult *r = exec_sql(s, "SELECT username, mechanism, salt, iterations, stored_key, server_key FROM"
                              " sasl_credentials WHERE ($1::text IS NULL OR username = $1::text) AND ($2::text IS NULL"
                              " OR mechanism = $2::text) ORDER BY username COLLATE \"C\", mechanism COLLATE \"C\"",
                           2, v, NULL, "list credentials");
    if (!r)
        return -1;
    int count = PQntuples(r);
    struct sasl_credential *c = alloc_rows(count, sizeof(*c));
    for (int i = 0; i < count; i++) {
        snprintf(c[i].user, sizeof(c[i].user), "%s", PQgetvalue(r, i, 0));
        snprintf(c[i].mechanism, sizeof(c[i].mechanism), "%s", PQgetvalue(r, i, 1));
        snprintf(c[i].salt, sizeof(c[i].salt), "%s", PQgetvalue(r, i, 2));
        c[i].iterations = (int)get_i64(r, i, 3);
        snprintf(c[i].stored_key, sizeof(c[i].stored_key), "%s", PQgetvalue(r, i, 4));
        snprintf(c[i].server_key, sizeof(c[i].server_key), "%s", PQgetvalue(r, i, 5));
    }
    PQclear(r);
    *out = c;
    *n = count;
    return 0;
}

static int pg_cred_list(struct metastore *m, const char *user, const char *mechanism, struct sasl_credential **out,
                        int *n)
{
    struct pg_store *s = (struct pg_store *)m;
    RETURN_WITH_RETRY(s, cred_list_once(s, user, mechanism, out, n));
}

static const struct metastore_ops pg_ops = {
    .close = pg_close,
    .create_topic = pg_create_topic,
    .delete_topic = pg_delete_topic,
    .get_topic = pg_get_topic,
    .list_topics = pg_list_topics,
    .topic_configs = pg_topic_configs,
    .create_partitions = pg_create_partitions,
    .update_topic_configs = pg_update_topic_configs,
    .commit_object = pg_commit_object,
    .init_producer = pg_init_producer,
    .list_producers = pg_list_producers,
    .partition_offsets = pg_partition_offsets,
    .find_chunks = pg_find_chunks,
    .find_chunks_by_time = pg_find_chunks_by_time,
    .max_timestamp = pg_max_timestamp,
    .heartbeat = pg_heartbeat,
    .list_members = pg_list_members,
    .remove_member = pg_remove_member,
    .prune_members = pg_prune_members,
    .group_load = pg_group_load,
    .group_store = pg_group_store,
    .groups_list = pg_groups_list,
    .offsets_commit = pg_offsets_commit,
    .offsets_fetch = pg_offsets_fetch,
    .offsets_expire = pg_offsets_expire,
    .group_delete = pg_group_delete,
    .offsets_delete = pg_offsets_delete,
    .acl_add = pg_acl_add,
    .acl_list = pg_acl_list,
    .acl_delete = pg_acl_delete,
    .lease_acquire = pg_lease_acquire,
    .lease_release = pg_lease_release,
    .retention_offset = pg_retention_offset,
    .trim_partition = pg_trim_partition,
    .replace_chunks = pg_replace_chunks,
    .log_starts = pg_log_starts,
    .objects_unreferenced = pg_objects_unreferenced,
    .object_forget = pg_object_forget,
    .object_known = pg_object_known,
    .notify_fd = pg_notify_fd,
    .consume_notifications = pg_consume_notifications,
    .cred_put = pg_cred_put,
    .cred_delete = pg_cred_delete,
    .cred_list = pg_cred_list,
};

/* "postgres://user@host:port/db" for log lines: the URL's parts without the password. */
static int describe(const char *url, char *out, size_t outlen, char *err, size_t errlen)
{
    char *msg = NULL;
    PQconninfoOption *opts = PQconninfoParse(url, &msg);
    if (!opts) {
        snprintf(err, errlen, "invalid metadata URL: %s", msg ? msg : "out of memory");
        PQfreemem(msg);
        return -1;
    }
    const char *user = "", *host = "", *port = "", *db = "";
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (!o->val)
            continue;
        if (strcmp(o->keyword, "user") == 0)
            user = o->val;
        else if (strcmp(o->keyword, "host") == 0)
            host = o->val;
        else if (strcmp(o->keyword, "port") == 0)
            port = o->val;
        else if (strcmp(o->keyword, "dbname") == 0)
            db = o->val;
    }
    snprintf(out, outlen, "postgres://%s%s%s%s%s/%s", user, user[0] ? "@" : "", host, port[0] ? ":" : "", port, db);
    PQconninfoFree(opts);
    return 0;
}

/* Brings the schema to SCHEMA_VERSION in one transaction. The advisory lock makes agents that
 * start together take turns: CREATE TABLE IF NOT EXISTS alone races on the catalog. */
static int migrate(struct pg_store *s, char *err, size_t errlen)
{
    PGresult *r = PQexec(s->conn, "BEGIN; SELECT pg_advisory_xact_lock(" MIGRATION_LOCK ");"
                                  " CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);"
                                  " SELECT coalesce(max(version), 0) FROM schema_version");
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        goto fail;
    int version = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    r = NULL;
    if (version > SCHEMA_VERSION) {
        snprintf(err, errlen, "%s has schema version %d, newer than this sluice's %d", s->where, version,
                 SCHEMA_VERSION);
        rollback(s);
        return -1;
    }
    for (int v = version; v < SCHEMA_VERSION; v++) {
        r = PQexec(s->conn, migrations[v]);
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            goto fail;
        PQclear(r);
    }
    char sql[128];
    snprintf(sql, sizeof(sql), "DELETE FROM schema_version; INSERT INTO schema_version VALUES (%d); COMMIT",
             SCHEMA_VERSION);
    r = PQexec(s->conn, version < SCHEMA_VERSION ? sql : "COMMIT");
    if (PQresultStatus(r) != PGRES_COMMAND_OK || strcmp(PQcmdStatus(r), "COMMIT") != 0)
        goto fail;
    PQclear(r);
    if (version < SCHEMA_VERSION)
        log_info("metastore: %s schema at version %d (was %d)", s->where, SCHEMA_VERSION, version);
    return 0;
fail:
    snprintf(err, errlen, "%s: schema: %s", s->where, r ? PQresultErrorMessage(r) : PQerrorMessage(s->conn));
    PQclear(r);
    rollback(s);
    return -1;
}

struct metastore *metastore_pg_open(const char *url, char *err, size_t errlen)
{
    struct pg_store *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->base.ops = &pg_ops;
    if (describe(url, s->where, sizeof(s->where), err, errlen) < 0) {
        free(s);
        return NULL;
    }
    /* Defaults the URL may override (it comes last): a dead host or a silent network must fail
     * calls within seconds, not hang a worker for the kernel's TCP timeouts. */
    const char *keys[] = {"connect_timeout", "keepalives_idle", "keepalives_interval", "keepalives_count",
                          "tcp_user_timeout", "application_name", "dbname", NULL};
    const char *vals[] = {"5", "10", "3", "3", "15000", "sluice", url, NULL};
    s->conn = PQconnectdbParams(keys, vals, 1);
    if (!s->conn || PQstatus(s->conn) != CONNECTION_OK) {
        snprintf(err, errlen, "cannot connect to %s: %s", s->where,
                 s->conn ? PQerrorMessage(s->conn) : "out of memory");
        goto fail;
    }
    PQsetNoticeProcessor(s->conn, quiet_notice, NULL);
    if (migrate(s, err, errlen) < 0)
        goto fail;
    if (setup_conn(s) < 0) {
        snprintf(err, errlen, "%s: %s", s->where, s->last_error);
        goto fail;
    }
    s->ready = true;
    return &s->base;
fail:
    one_line(err);
    pg_close(&s->base);
    return NULL;
}
