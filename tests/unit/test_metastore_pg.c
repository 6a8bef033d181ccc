/* The postgres:// metadata store on a real throwaway PostgreSQL 15 (pg_fixture.c): the contract
 * every backend meets (metastore_contract.c, which test_storage.c runs on SQLite), plus committers in several processes, LISTEN/NOTIFY wake-ups and
 * connection loss; and membership on both backends. Without PostgreSQL the pg_ tests skip. */
#include <poll.h>
#include <postgresql/libpq-fe.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "test_util.h"
#include "metastore_contract.h"
#include "pg_fixture.h"
#include "protocol/errors.h"
#include "storage/metastore.h"
#include "util/clock.h"
#include "util/log.h"

/* Skips the test when no server can run; otherwise url names a fresh, empty store. */
#define PG_DB(name, url)                                                         \
    char url[256];                                                               \
    do {                                                                         \
        char why_[256];                                                          \
        if (pg_fixture_up(why_, sizeof(why_)) < 0)                               \
            SKIP(why_);                                                          \
        if (pg_fixture_new_store(name, url, sizeof(url)) < 0) {                     \
            CHECK(!"cannot create the test database");                           \
            return;                                                              \
        }                                                                        \
    } while (0)

/* The first value of a query's first row in store NAME's schema, as a number; -1 on error. */
static long long query_num(const char *name, const char *sql)
{
    char conninfo[256];
    pg_fixture_conninfo(name, conninfo, sizeof(conninfo));
    PGconn *c = PQconnectdb(conninfo);
    long long v = -1;
    if (PQstatus(c) == CONNECTION_OK) {
        PGresult *r = PQexec(c, sql);
        if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0)
            v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        PQclear(r);
    }
    PQfinish(c);
    return v;
}

#define chunk contract_chunk

static bool readable(int fd, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, timeout_ms) == 1;
}

/* ---- the contract every backend meets (metastore_contract.c) ---- */

TEST(pg_metastore_topics)
{
    PG_DB("t_topics", tcp_url);
    (void)tcp_url;
    /* The other URL form: postgresql:// over the Unix socket. */
    char url[512];
    snprintf(url, sizeof(url), "postgresql:///sluice?host=%s&port=%d&user=postgres&options=-csearch_path%%3Dt_topics",
             pg_fixture_socket_dir(), pg_fixture_port());
    metastore_contract_topics(url, failed_);
}

TEST(pg_metastore_topic_changes)
{
    PG_DB("t_changes", url);
    metastore_contract_topic_changes(url, failed_);
}

TEST(pg_metastore_commit_assigns_offsets)
{
    PG_DB("t_commit", url);
    metastore_contract_commits(url, failed_);
    /* One migration row, at the newest version, however often the store was opened. */
    CHECK_EQ(query_num("t_commit", "SELECT max(version) FROM schema_version"), 10);
    CHECK_EQ(query_num("t_commit", "SELECT count(*) FROM schema_version"), 1);
}

TEST(pg_metastore_idempotent_producers)
{
    PG_DB("t_producers", url);
    metastore_contract_producers(url, failed_);
}

TEST(pg_metastore_groups)
{
    PG_DB("t_groups", url);
    metastore_contract_groups(url, failed_);
}

TEST(pg_metastore_acls)
{
    PG_DB("t_acls", url);
    metastore_contract_acls(url, failed_);
}

TEST(pg_metastore_credentials)
{
    PG_DB("t_creds", url);
    metastore_contract_credentials(url, failed_);
}

TEST(pg_metastore_lifecycle)
{
    PG_DB("t_lifecycle", url);
    metastore_contract_lifecycle(url, failed_);
}

TEST(pg_metastore_compaction)
{
    PG_DB("t_compaction", url);
    metastore_contract_compaction(url, failed_);
}

/* A group change announced wakes the other handles; a heartbeat's (announce false) does not. */
TEST(pg_metastore_group_notifications)
{
    PG_DB("t_group_notify", url);
    struct metastore *a = test_open_meta(url), *b = test_open_meta(url);
    CHECK(a != NULL && b != NULL);
    if (!a || !b) {
        metastore_close(a);
        metastore_close(b);
        return;
    }
    int fb = metastore_notify_fd(b);
    CHECK(fb >= 0);
    CHECK_EQ(metastore_consume_notifications(b), 0);
    CHECK_EQ(metastore_group_store(a, "g", 0, 1, "consumer", (const uint8_t *)"x", 1, false), 0);
    usleep(200 * 1000);
    CHECK_EQ(metastore_consume_notifications(b), 0);
    CHECK_EQ(metastore_group_store(a, "g", 1, 2, "consumer", (const uint8_t *)"y", 1, true), 0);
    CHECK(readable(fb, 2000));
    CHECK(metastore_consume_notifications(b) >= 1);
    /* a write that lost its compare-and-set announces nothing that matters, but must not fail */
    CHECK_EQ(metastore_group_store(a, "g", 1, 3, "consumer", (const uint8_t *)"z", 1, true), 1);
    metastore_close(a);
    metastore_close(b);
}

TEST(pg_metastore_open_urls)
{
    PG_DB("t_open", url);
    char err[256] = "";
    /* Nothing listens on port 1; the password must not reach the message. */
    CHECK(metastore_open("postgres://sluice:s3cret@127.0.0.1:1/nope", err, sizeof(err)) == NULL);
    CHECK(strstr(err, "cannot connect") != NULL);
    CHECK(strstr(err, "127.0.0.1:1/nope") != NULL);
    CHECK(strstr(err, "s3cret") == NULL);
    CHECK(err[strlen(err) - 1] != '\n');
    err[0] = '\0';
    CHECK(metastore_open("postgres://127.0.0.1/x?no_such_option=1", err, sizeof(err)) == NULL);
    CHECK(strstr(err, "no_such_option") != NULL);

    /* Agents starting at once: each migrates or finds the schema, none fails. */
    enum { OPENERS = 4 };
    pid_t pids[OPENERS];
    for (int i = 0; i < OPENERS; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            char e[256];
            struct metastore *m = metastore_open(url, e, sizeof(e));
            if (!m)
                fprintf(stderr, "  opener %d: %s\n", i, e);
            int ok = m && metastore_create_topic(m, "t", 1, NULL, 0, NULL) >= 0;
            metastore_close(m);
            _exit(ok ? 0 : 1);
        }
    }
    for (int i = 0; i < OPENERS; i++) {
        int status = -1;
        waitpid(pids[i], &status, 0);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    CHECK_EQ(query_num("t_open", "SELECT count(*) FROM schema_version"), 1);
    CHECK_EQ(query_num("t_open", "SELECT count(*) FROM topics"), 1);
}

/* ---- concurrent commits from several processes ---- */

#define PROCS 4
#define PROC_COMMITS 100
#define MAX_CHUNKS 4
#define RACES 10

struct shared_run {
    atomic_int ready;
    atomic_int go;
    int failures[PROCS];
    int created[PROCS][RACES];
    int ndone[PROCS];
    struct commit_chunk done[PROCS][PROC_COMMITS * MAX_CHUNKS];
};

static void committer(struct shared_run *sh, int id, const char *url, int64_t topic_id)
{
    char err[256];
    struct metastore *m = metastore_open(url, err, sizeof(err));
    atomic_fetch_add(&sh->ready, 1);
    while (!atomic_load(&sh->go))
        usleep(1000);
    if (!m) {
        sh->failures[id] = PROC_COMMITS;
        return;
    }
    unsigned seed = (unsigned)id * 7919u + 17;
    for (int i = 0; i < PROC_COMMITS; i++) {
        if (i < RACES) {
            char name[32];
            snprintf(name, sizeof(name), "race-%d", i);
            sh->created[id][i] = metastore_create_topic(m, name, 1, NULL, 0, NULL);
        }
        /* Partitions 0..2 in a random order (committers lock them in one order anyway), and now
         * and then a second chunk of one of them. */
        int order[3] = {0, 1, 2};
        for (int k = 2; k > 0; k--) {
            seed = seed * 1103515245u + 12345u;
            int j = (int)((seed >> 16) % (unsigned)(k + 1)), tmp = order[k];
            order[k] = order[j];
            order[j] = tmp;
        }
        struct commit_chunk c[MAX_CHUNKS];
        int nc = 0;
        for (int k = 0; k < 3; k++) {
            seed = seed * 1103515245u + 12345u;
            c[nc++] = chunk(topic_id, order[k], 1 + (seed >> 16) % 5, 8 + 100 * (uint64_t)k, i);
        }
        if (seed >> 30 == 0)
            c[nc++] = chunk(topic_id, order[0], 2, 308, i);
        char key[64];
        snprintf(key, sizeof(key), "p%d/%d", id, i);
        if (metastore_commit_object(m, key, 1000, c, nc) != 0) {
            sh->failures[id]++;
            continue;
        }
        for (int k = 0; k < nc; k++) {
            if (c[k].error)
                sh->failures[id]++;
            else
                sh->done[id][sh->ndone[id]++] = c[k];
        }
    }
    metastore_close(m);
}

static int by_base(const void *a, const void *b)
{
    const struct commit_chunk *x = a, *y = b;
    if (x->partition != y->partition)
        return x->partition - y->partition;
    return x->base_offset < y->base_offset ? -1 : x->base_offset > y->base_offset;
}

TEST(pg_metastore_concurrent_commits_from_processes)
{
    PG_DB("t_concurrent", url);
    struct metastore *m = test_open_meta(url);
    CHECK(m != NULL);
    if (!m)
        return;
    struct topic_info t;
    CHECK_EQ(metastore_create_topic(m, "busy", 3, NULL, 0, &t), 0);

    struct shared_run *sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(sh != MAP_FAILED);
    if (sh == MAP_FAILED) {
        metastore_close(m);
        return;
    }
    memset(sh, 0, sizeof(*sh));
    pid_t pids[PROCS];
    for (int i = 0; i < PROCS; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            committer(sh, i, url, t.id);
            _exit(0);
        }
    }
    /* All connected before any commits: the commits really overlap. */
    int64_t deadline = mono_ms() + 10000;
    while (atomic_load(&sh->ready) < PROCS && mono_ms() < deadline)
        usleep(1000);
    int64_t t0 = mono_ms();
    atomic_store(&sh->go, 1);
    for (int i = 0; i < PROCS; i++) {
        int status = -1;
        waitpid(pids[i], &status, 0);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        CHECK_EQ(sh->failures[i], 0);
    }
    if (getenv("SLUICE_TEST_LOGS"))
        fprintf(stderr, "  %d commits from %d processes in %lld ms\n", PROCS * PROC_COMMITS, PROCS,
                (long long)(mono_ms() - t0));
    /* Each raced name was created exactly once; the others were told it exists. */
    for (int r = 0; r < RACES; r++) {
        int created = 0, exists = 0;
        for (int i = 0; i < PROCS; i++) {
            created += sh->created[i][r] == 0;
            exists += sh->created[i][r] == KERR_TOPIC_ALREADY_EXISTS;
        }
        CHECK_EQ(created, 1);
        CHECK_EQ(exists, PROCS - 1);
    }

    /* Every assigned range, of every process, tiles [0, high watermark) of its partition. */
    int total = 0;
    for (int i = 0; i < PROCS; i++)
        total += sh->ndone[i];
    CHECK(total >= PROCS * PROC_COMMITS * 3);
    struct commit_chunk *all = malloc((size_t)total * sizeof(*all));
    for (int i = 0, k = 0; i < PROCS; i++)
        for (int j = 0; j < sh->ndone[i]; j++)
            all[k++] = sh->done[i][j];
    qsort(all, (size_t)total, sizeof(*all), by_base);
    int64_t next[3] = {0, 0, 0};
    int count[3] = {0, 0, 0}, gaps = 0;
    for (int i = 0; i < total; i++) {
        int p = all[i].partition;
        if (all[i].base_offset != next[p])
            gaps++;
        next[p] = all[i].base_offset + all[i].offset_count;
        count[p]++;
    }
    CHECK_EQ(gaps, 0);
    for (int p = 0; p < 3; p++) {
        int64_t ls, hw;
        CHECK_EQ(metastore_partition_offsets(m, t.id, p, &ls, &hw), 0);
        CHECK_EQ(hw, next[p]);
        /* And the store holds exactly those chunks, contiguous too. */
        struct chunk_ref *r = malloc(2000 * sizeof(*r));
        int n = metastore_find_chunks(m, t.id, p, 0, r, 2000);
        CHECK_EQ(n, count[p]);
        int holes = 0;
        for (int i = 1; i < n; i++)
            holes += r[i].base_offset != r[i - 1].last_offset + 1;
        CHECK_EQ(holes, 0);
        free(r);
    }
    free(all);
    munmap(sh, sizeof(*sh));
    metastore_close(m);
}

/* ---- membership, on both backends ---- */

static struct member_info member(const char *id, const char *group, const char *host, int port, int worker)
{
    struct member_info mi;
    memset(&mi, 0, sizeof(mi));
    snprintf(mi.id, sizeof(mi.id), "%s", id);
    snprintf(mi.agent_group, sizeof(mi.agent_group), "%s", group);
    snprintf(mi.host, sizeof(mi.host), "%s", host);
    mi.port_base = port;
    mi.worker = worker;
    return mi;
}

static void members_checks(struct metastore *m, int *failed_)
{
    struct member_info a = member("agent-a-w0", "blue", "10.0.0.1", 9100, 0);
    struct member_info b = member("agent-B-w1", "green", "10.0.0.2", 9200, 1);
    struct member_info c = member("agent-c-w0", "blue", "10.0.0.3", 9300, 0);
    snprintf(c.fwd_addr, sizeof(c.fwd_addr), "198.18.0.3");
    int64_t before = wall_ms();
    CHECK_EQ(metastore_heartbeat(m, &a), 0);
    CHECK_EQ(metastore_heartbeat(m, &b), 0);
    CHECK_EQ(metastore_heartbeat(m, &c), 0);
    int64_t after = wall_ms();

    struct member_info *v;
    int n;
    CHECK_EQ(metastore_list_members(m, NULL, 10000, &v, &n), 0);
    CHECK_EQ(n, 3);
    if (n == 3) { /* by id, byte order */
        CHECK(strcmp(v[0].id, "agent-B-w1") == 0);
        CHECK(strcmp(v[1].id, "agent-a-w0") == 0);
        CHECK(strcmp(v[2].id, "agent-c-w0") == 0);
        CHECK(strcmp(v[0].agent_group, "green") == 0);
        CHECK(strcmp(v[0].host, "10.0.0.2") == 0);
        CHECK_EQ(v[0].port_base, 9200);
        CHECK_EQ(v[0].worker, 1);
        /* The store's clock; here on this host, so close to ours. */
        CHECK(v[1].heartbeat_ms >= before - 2000 && v[1].heartbeat_ms <= after + 2000);
    }
    free(v);
    CHECK_EQ(metastore_list_members(m, "blue", 10000, &v, &n), 0);
    CHECK_EQ(n, 2);
    if (n == 2) {
        CHECK(strcmp(v[0].id, "agent-a-w0") == 0);
        CHECK(strcmp(v[1].id, "agent-c-w0") == 0);
        CHECK(strcmp(v[0].fwd_addr, "") == 0); /* no XDP forwarding */
        CHECK(strcmp(v[1].fwd_addr, "198.18.0.3") == 0);
    }
    free(v);
    CHECK_EQ(metastore_list_members(m, "red", 10000, &v, &n), 0);
    CHECK_EQ(n, 0);
    free(v);

    /* A heartbeat updates the row: a moved host, still one row. */
    a = member("agent-a-w0", "blue", "10.0.0.9", 9101, 0);
    CHECK_EQ(metastore_heartbeat(m, &a), 0);
    CHECK_EQ(metastore_list_members(m, "blue", 10000, &v, &n), 0);
    CHECK_EQ(n, 2);
    if (n == 2) {
        CHECK(strcmp(v[0].host, "10.0.0.9") == 0);
        CHECK_EQ(v[0].port_base, 9101);
    }
    free(v);

    /* Expiry: only b heartbeats again. */
    usleep(400 * 1000);
    CHECK_EQ(metastore_heartbeat(m, &b), 0);
    CHECK_EQ(metastore_list_members(m, NULL, 200, &v, &n), 0);
    CHECK_EQ(n, 1);
    if (n == 1)
        CHECK(strcmp(v[0].id, "agent-B-w1") == 0);
    free(v);
    CHECK_EQ(metastore_list_members(m, "blue", 200, &v, &n), 0);
    CHECK_EQ(n, 0);
    free(v);
    CHECK_EQ(metastore_list_members(m, NULL, 60000, &v, &n), 0);
    CHECK_EQ(n, 3);
    free(v);

    CHECK_EQ(metastore_remove_member(m, "agent-a-w0"), 0);
    CHECK_EQ(metastore_remove_member(m, "agent-a-w0"), 0); /* unknown ids are fine */
    CHECK_EQ(metastore_remove_member(m, "never-seen"), 0);
    CHECK_EQ(metastore_list_members(m, NULL, 60000, &v, &n), 0);
    CHECK_EQ(n, 2);
    if (n == 2) {
        CHECK(strcmp(v[0].id, "agent-B-w1") == 0);
        CHECK(strcmp(v[1].id, "agent-c-w0") == 0);
    }
    free(v);

    /* Pruning: c last heartbeated over 400 ms ago, B just now. A long horizon keeps both; a
     * 200 ms one removes only c, for good (it is gone even from an unbounded listing). */
    CHECK_EQ(metastore_prune_members(m, 3600 * 1000), 0);
    CHECK_EQ(metastore_list_members(m, NULL, 60000, &v, &n), 0);
    CHECK_EQ(n, 2);
    free(v);
    CHECK_EQ(metastore_prune_members(m, 200), 0);
    CHECK_EQ(metastore_list_members(m, NULL, INT64_MAX / 4, &v, &n), 0);
    CHECK_EQ(n, 1);
    if (n == 1)
        CHECK(strcmp(v[0].id, "agent-B-w1") == 0);
    free(v);
}

TEST(pg_metastore_members)
{
    PG_DB("t_members", url);
    struct metastore *m = test_open_meta(url);
    CHECK(m != NULL);
    if (!m)
        return;
    members_checks(m, failed_);
    metastore_close(m);
}

TEST(metastore_sqlite_members)
{
    char *dir = test_temp_dir(), url[512];
    CHECK(dir != NULL);
    if (!dir)
        return;
    snprintf(url, sizeof(url), "sqlite://%s/meta.db", dir);
    struct metastore *m = test_open_meta(url);
    CHECK(m != NULL);
    if (m) {
        members_checks(m, failed_);
        /* No cross-process wake-ups on SQLite: callers poll. */
        CHECK_EQ(metastore_notify_fd(m), -1);
        CHECK_EQ(metastore_consume_notifications(m), 0);
        metastore_close(m);
    }
    test_rm_rf(dir);
    free(dir);
}

/* A database made before membership existed (schema version 1) gains the members table, with the
 * forwarding address of version 3. */
TEST(metastore_sqlite_migrates_to_members)
{
    char *dir = test_temp_dir(), url[600], path[512];
    CHECK(dir != NULL);
    if (!dir)
        return;
    snprintf(path, sizeof(path), "%s/meta.db", dir);
    snprintf(url, sizeof(url), "sqlite://%s", path);
    struct metastore *m = test_open_meta(url);
    CHECK(m != NULL);
    struct topic_info t;
    CHECK(m && metastore_create_topic(m, "old", 1, NULL, 0, &t) == 0);
    /* chunks from before the time index: their running maxima are filled in by migration 10 */
    static const int64_t ts[3] = {3000, 1000, 5000};
    for (int i = 0; m && i < 3; i++) {
        char key[64];
        snprintf(key, sizeof(key), "objects/000000000000%d-old.obj", i);
        struct commit_chunk c = {.topic_id = t.id, .partition = 0, .len = 10, .batch_count = 1, .offset_count = 10,
                                 .first_timestamp = ts[i], .max_timestamp = ts[i]};
        CHECK_EQ(metastore_commit_object(m, key, 10, &c, 1), 0);
    }
    metastore_close(m);
    sqlite3 *db;
    CHECK_EQ(sqlite3_open(path, &db), SQLITE_OK);
    CHECK_EQ(sqlite3_exec(db, "DROP INDEX chunks_by_running_max_timestamp; ALTER TABLE chunks DROP COLUMN cleaned;"
                              " ALTER TABLE chunks DROP COLUMN running_max_timestamp;"
                              " ALTER TABLE partitions DROP COLUMN max_timestamp; DROP TABLE members; ALTER TABLE topics DROP COLUMN config_epoch;"
                              " DROP TABLE producer_ids; DROP TABLE producer_state;"
                              " DROP TABLE consumer_groups; DROP TABLE group_offsets; DROP TABLE acls;"
                              " DROP TABLE sasl_credentials;"
                              " DROP TABLE job_leases; DROP TABLE gc_candidates; DROP INDEX chunks_by_object;"
                              " DROP INDEX objects_unreferenced;"
                              " ALTER TABLE objects DROP COLUMN unreferenced_ms;"
                              " UPDATE schema_version SET version = 1", NULL, NULL, NULL),
             SQLITE_OK);
    sqlite3_close(db);

    m = test_open_meta(url);
    CHECK(m != NULL);
    if (m) {
        struct member_info a = member("x", "g", "h", 1, 0);
        snprintf(a.fwd_addr, sizeof(a.fwd_addr), "198.18.0.9");
        CHECK_EQ(metastore_heartbeat(m, &a), 0);
        struct member_info *v;
        int n;
        CHECK_EQ(metastore_list_members(m, "g", 10000, &v, &n), 0);
        CHECK(n == 1 && strcmp(v[0].fwd_addr, "198.18.0.9") == 0);
        free(v);
        struct topic_info got;
        CHECK_EQ(metastore_get_topic(m, "old", &got), 0);
        struct chunk_ref refs[3];
        CHECK_EQ(metastore_find_chunks_by_time(m, t.id, 0, 2000, refs, 3), 3);
        CHECK_EQ(refs[0].base_offset, 0);
        CHECK_EQ(metastore_find_chunks_by_time(m, t.id, 0, 4000, refs, 3), 1);
        CHECK_EQ(refs[0].base_offset, 20);
        struct commit_chunk c = {.topic_id = t.id, .partition = 0, .len = 10, .batch_count = 1, .offset_count = 10,
                                 .first_timestamp = 100, .max_timestamp = 100};
        CHECK_EQ(metastore_commit_object(m, "objects/0000000000009-new.obj", 10, &c, 1), 0);
        CHECK_EQ(metastore_find_chunks_by_time(m, t.id, 0, 4000, refs, 3), 2); /* it continues 5000 */
        metastore_close(m);
    }
    CHECK_EQ(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *q;
    CHECK_EQ(sqlite3_prepare_v2(db, "SELECT version FROM schema_version", -1, &q, NULL), SQLITE_OK);
    CHECK_EQ(sqlite3_step(q), SQLITE_ROW);
    CHECK_EQ(sqlite3_column_int(q, 0), 10);
    sqlite3_finalize(q);
    sqlite3_close(db);
    test_rm_rf(dir);
    free(dir);
}

/* ---- notifications ---- */

TEST(pg_metastore_notifications)
{
    PG_DB("t_notify", url);
    struct metastore *a = test_open_meta(url), *b = test_open_meta(url);
    CHECK(a != NULL && b != NULL);
    if (!a || !b) {
        metastore_close(a);
        metastore_close(b);
        return;
    }
    struct topic_info t;
    CHECK_EQ(metastore_create_topic(a, "news", 1, NULL, 0, &t), 0);
    int fb = metastore_notify_fd(b);
    CHECK(fb >= 0);
    CHECK_EQ(metastore_consume_notifications(b), 0);
    CHECK(!readable(fb, 0));

    /* A commit on handle a wakes handle b. */
    struct commit_chunk c = chunk(t.id, 0, 1, 8, 1);
    CHECK_EQ(metastore_commit_object(a, "n/1", 100, &c, 1), 0);
    CHECK(readable(fb, 2000));
    CHECK(metastore_consume_notifications(b) >= 1);
    CHECK_EQ(metastore_consume_notifications(b), 0);

    /* A handle's own commits are no news to it. */
    int fa = metastore_notify_fd(a);
    CHECK(fa >= 0);
    c = chunk(t.id, 0, 1, 8, 1);
    CHECK_EQ(metastore_commit_object(a, "n/2", 100, &c, 1), 0);
    CHECK(readable(fb, 2000));
    CHECK(metastore_consume_notifications(b) >= 1);
    usleep(100 * 1000);
    CHECK_EQ(metastore_consume_notifications(a), 0);

    /* A notification that another call on the handle read off the socket is still counted. */
    c = chunk(t.id, 0, 1, 8, 1);
    CHECK_EQ(metastore_commit_object(a, "n/3", 100, &c, 1), 0);
    usleep(200 * 1000);
    int64_t ls, hw;
    CHECK_EQ(metastore_partition_offsets(b, t.id, 0, &ls, &hw), 0);
    CHECK_EQ(hw, 3);
    CHECK(metastore_consume_notifications(b) >= 1);

    /* A commit that assigns nothing announces nothing. */
    c = chunk(t.id, 7, 1, 8, 1);
    CHECK_EQ(metastore_commit_object(a, "n/4", 100, &c, 1), 0);
    CHECK_EQ(c.error, KERR_UNKNOWN_TOPIC_OR_PARTITION);
    CHECK(!readable(fb, 200));
    CHECK_EQ(metastore_consume_notifications(b), 0);
    metastore_close(a);
    metastore_close(b);
}

/* ---- connection loss ---- */

/* stderr into a file for a while, to count log lines. */
struct capture {
    int saved;
    FILE *f;
    enum log_level level;
};

static void capture_start(struct capture *c)
{
    fflush(stderr);
    c->f = tmpfile();
    c->saved = dup(2);
    if (c->f)
        dup2(fileno(c->f), 2);
    c->level = log_min_level;
    log_min_level = LOG_INFO;
}

/* Returns how many captured lines contain needle. */
static int capture_count(struct capture *c, const char *needle)
{
    int n = 0;
    char line[2048];
    if (!c->f)
        return -1;
    rewind(c->f);
    while (fgets(line, sizeof(line), c->f))
        n += strstr(line, needle) != NULL;
    return n;
}

static void capture_stop(struct capture *c)
{
    fflush(stderr);
    dup2(c->saved, 2);
    close(c->saved);
    log_min_level = c->level;
}

TEST(pg_metastore_reconnects_after_server_restart)
{
    PG_DB("t_restart", url);
    struct metastore *m = test_open_meta(url);
    CHECK(m != NULL);
    if (!m)
        return;
    struct topic_info t;
    CHECK_EQ(metastore_create_topic(m, "r", 2, NULL, 0, &t), 0);
    struct commit_chunk c = chunk(t.id, 0, 3, 8, 1);
    CHECK_EQ(metastore_commit_object(m, "r/0", 100, &c, 1), 0);
    CHECK(metastore_notify_fd(m) >= 0);

    CHECK_EQ(pg_fixture_stop(), 0);
    struct capture cap;
    capture_start(&cap);
    /* A busy worker: calls every few ms for a second. All fail at once, none hangs, the log stays short. */
    int64_t t0 = mono_ms(), worst = 0;
    int calls = 0, bad = 0;
    while (mono_ms() - t0 < 1000) {
        int64_t t1 = mono_ms();
        char key[32];
        snprintf(key, sizeof(key), "r/down-%d", calls);
        c = chunk(t.id, 0, 2, 8, 1);
        int64_t ls, hw;
        struct chunk_ref r[2];
        bad += metastore_commit_object(m, key, 100, &c, 1) != -1;
        bad += c.error != KERR_KAFKA_STORAGE_ERROR || c.base_offset != -1;
        bad += metastore_partition_offsets(m, t.id, 0, &ls, &hw) != -1;
        bad += metastore_find_chunks(m, t.id, 0, 0, r, 2) != -1;
        bad += metastore_consume_notifications(m) != -1;
        bad += metastore_notify_fd(m) != -1;
        if (mono_ms() - t1 > worst)
            worst = mono_ms() - t1;
        calls++;
        usleep(5000);
    }
    int errors = capture_count(&cap, " ERROR ");
    capture_stop(&cap);
    CHECK_EQ(bad, 0);
    CHECK(calls > 30);
    CHECK(worst < 1000);
    CHECK(errors >= 1);
    CHECK(errors <= 3);
    if (errors > 3 || errors < 1)
        fprintf(stderr, "  %d error lines for %d calls\n", errors, calls);

    /* Up again on the same port: the handle recovers by itself. */
    CHECK_EQ(pg_fixture_start(), 0);
    capture_start(&cap);
    int64_t ls = -1, hw = -1;
    int rc = -1;
    for (int64_t deadline = mono_ms() + 5000; rc != 0 && mono_ms() < deadline; usleep(20 * 1000))
        rc = metastore_partition_offsets(m, t.id, 0, &ls, &hw);
    int reconnected = capture_count(&cap, "reconnected");
    capture_stop(&cap);
    CHECK_EQ(rc, 0);
    CHECK_EQ(hw, 3); /* the failed commits assigned nothing */
    CHECK_EQ(reconnected, 1);
    c = chunk(t.id, 0, 2, 8, 1);
    CHECK_EQ(metastore_commit_object(m, "r/1", 100, &c, 1), 0);
    CHECK_EQ(c.base_offset, 3);
    /* Notifications sent while disconnected are lost: the listener gets one wake-up for them,
     * on the new socket. */
    CHECK(metastore_notify_fd(m) >= 0);
    CHECK(metastore_consume_notifications(m) >= 1);
    CHECK_EQ(metastore_consume_notifications(m), 0);
    metastore_close(m);
}

static const char *const kill_sql =
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database()"
    " AND application_name = 'sluice'";

TEST(pg_metastore_survives_dropped_idle_connection)
{
    PG_DB("t_stale", url);
    struct metastore *m = test_open_meta(url);
    CHECK(m != NULL);
    if (!m)
        return;
    struct topic_info t;
    CHECK_EQ(metastore_create_topic(m, "s", 1, NULL, 0, &t), 0);
    /* The server drops the idle connection (as a restart or a pooler would): the next call
     * reconnects and succeeds, reads and commits alike. */
    CHECK_EQ(pg_fixture_exec("t_stale", kill_sql), 0);
    usleep(100 * 1000);
    int64_t ls, hw;
    CHECK_EQ(metastore_partition_offsets(m, t.id, 0, &ls, &hw), 0);
    CHECK_EQ(pg_fixture_exec("t_stale", kill_sql), 0);
    usleep(100 * 1000);
    struct commit_chunk c = chunk(t.id, 0, 4, 8, 1);
    CHECK_EQ(metastore_commit_object(m, "s/1", 100, &c, 1), 0);
    CHECK_EQ(c.base_offset, 0);
    CHECK_EQ(pg_fixture_exec("t_stale", kill_sql), 0);
    usleep(100 * 1000);
    CHECK_EQ(metastore_create_topic(m, "s2", 1, NULL, 0, NULL), 0);
    metastore_close(m);
}

/* Kills the connection that sleeps in the commit trigger, once it is there. */
static void *kill_sleeper(void *arg)
{
    (void)arg;
    for (int64_t deadline = mono_ms() + 10000; mono_ms() < deadline; usleep(10 * 1000))
        if (query_num("t_unknown", "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                                   " WHERE datname = current_database() AND wait_event = 'PgSleep'") > 0)
            break;
    return NULL;
}

TEST(pg_metastore_commit_with_lost_answer_fails)
{
    PG_DB("t_unknown", url);
    struct metastore *m = test_open_meta(url);
    CHECK(m != NULL);
    if (!m)
        return;
    struct topic_info t;
    CHECK_EQ(metastore_create_topic(m, "u", 1, NULL, 0, &t), 0);
    /* A deferred trigger makes COMMIT itself slow, and the connection is killed during it: the
     * answer to COMMIT never comes. The commit must fail (not be retried, not report offsets). */
    CHECK_EQ(pg_fixture_exec("t_unknown",
                             "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS"
                             " $$BEGIN PERFORM pg_sleep(5); RETURN NULL; END$$;"
                             "CREATE CONSTRAINT TRIGGER slow AFTER INSERT ON objects DEFERRABLE INITIALLY DEFERRED"
                             " FOR EACH ROW EXECUTE FUNCTION slow()"),
             0);
    pthread_t killer;
    pthread_create(&killer, NULL, kill_sleeper, NULL);
    int64_t t0 = mono_ms();
    struct commit_chunk c = chunk(t.id, 0, 4, 8, 1);
    CHECK_EQ(metastore_commit_object(m, "u/1", 100, &c, 1), -1);
    CHECK_EQ(c.error, KERR_KAFKA_STORAGE_ERROR);
    CHECK_EQ(c.base_offset, -1);
    CHECK(mono_ms() - t0 < 4000); /* failed when killed, did not sit out the trigger again */
    pthread_join(killer, NULL);
    CHECK_EQ(pg_fixture_exec("t_unknown", "DROP TRIGGER slow ON objects"), 0);

    /* The next call reconnects; the killed transaction left nothing. */
    int64_t ls, hw;
    CHECK_EQ(metastore_partition_offsets(m, t.id, 0, &ls, &hw), 0);
    CHECK_EQ(hw, 0);
    c = chunk(t.id, 0, 4, 8, 1);
    CHECK_EQ(metastore_commit_object(m, "u/2", 100, &c, 1), 0);
    CHECK_EQ(c.base_offset, 0);
    metastore_close(m);
}
