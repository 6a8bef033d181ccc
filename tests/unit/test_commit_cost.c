/* What one commit costs the store, whatever its number of chunks (issue 10): one transaction per
 * flushed object on both backends, and on PostgreSQL the same few round trips and statements for
 * 1 or 512 partitions, idempotent or not. Counted by the store handle (metastore_get_counters), a
 * property of the code rather than a timing. These tests need the real PostgreSQL (pg_fixture.c):
 * without one they fail. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "metastore_contract.h"
#include "pg_fixture.h"
#include "storage/metastore.h"
#include "test_util.h"

#define WIDE 512 /* partitions of one flush in the large case */

/* What one commit_object call cost. */
struct cost {
    uint64_t round_trips, statements, commits;
};

/* Commits chunks[0..n) as object key and returns what it cost; *rc gets the call's answer. */
static struct cost commit_cost(struct metastore *m, const char *key, struct commit_chunk *c, int n, int *rc)
{
    struct metastore_counters before, after;
    metastore_get_counters(m, &before);
    *rc = metastore_commit_object(m, key, 1000, c, n);
    metastore_get_counters(m, &after);
    return (struct cost){after.round_trips - before.round_trips, after.statements - before.statements,
                         after.commits - before.commits};
}

/* One chunk of 3 offsets in each of partitions 0..n-1; idempotent ones belong to producer pid,
 * sequences from seq. */
static void fill(struct commit_chunk *c, int n, int64_t topic_id, bool idempotent, int64_t pid, int32_t seq)
{
    for (int i = 0; i < n; i++) {
        c[i] = contract_chunk(topic_id, i, 3, (uint64_t)i * 100, 1000 + i);
        if (idempotent) {
            c[i].idempotent = true;
            c[i].producer_id = pid;
            c[i].producer_epoch = 0;
            c[i].base_sequence = seq;
            c[i].last_sequence = seq + 2;
        }
    }
}

/* Every chunk committed, at base offset `base`. */
static int all_at(const struct commit_chunk *c, int n, int64_t base)
{
    int ok = 0;
    for (int i = 0; i < n; i++)
        ok += c[i].error == 0 && c[i].base_offset == base && !c[i].duplicate;
    return ok;
}

TEST(pg_commit_cost_does_not_grow_with_partitions)
{
    char why[256], url[256];
    if (pg_fixture_up(why, sizeof(why)) < 0) {
        fprintf(stderr, "  PostgreSQL is needed: %s\n", why);
        CHECK(!"no PostgreSQL");
        return;
    }
    CHECK_EQ(pg_fixture_new_store("t_commit_cost", url, sizeof(url)), 0);
    struct metastore *m = test_open_meta(url);
    CHECK(m != NULL);
    if (!m)
        return;
    struct topic_info t;
    CHECK_EQ(metastore_create_topic(m, "wide", WIDE, NULL, 0, &t), 0);
    static struct commit_chunk c[WIDE];
    int rc;

    /* Plain chunks: BEGIN .. advance in one round trip, chunk rows .. COMMIT in a second. */
    fill(c, 1, t.id, false, 0, 0);
    struct cost one = commit_cost(m, "plain/1", c, 1, &rc);
    CHECK_EQ(rc, 0);
    CHECK_EQ(all_at(c, 1, 0), 1);
    fill(c, WIDE, t.id, false, 0, 0);
    struct cost wide = commit_cost(m, "plain/512", c, WIDE, &rc);
    CHECK_EQ(rc, 0);
    CHECK_EQ(all_at(c, 1, 3), 1);          /* partition 0 already had 3 offsets */
    CHECK_EQ(all_at(c + 1, WIDE - 1, 0), WIDE - 1);
    CHECK_EQ(one.commits, 1);
    CHECK_EQ(wide.commits, 1);
    CHECK_EQ(one.round_trips, 2);
    CHECK_EQ(wide.round_trips, 2);
    CHECK_EQ(wide.statements, one.statements);
    CHECK(wide.statements <= 8);

    /* Idempotent chunks (one producer in every partition): the producers' state is read under the
     * partition locks, one round trip more; first batches, then the next ones with state stored. */
    int64_t pid;
    int16_t epoch;
    CHECK_EQ(metastore_init_producer(m, -1, 0, &pid, &epoch), 0);
    fill(c, 1, t.id, true, pid, 0);
    struct cost idem_one = commit_cost(m, "idem/1", c, 1, &rc);
    CHECK_EQ(rc, 0);
    CHECK_EQ(all_at(c, 1, 6), 1);
    fill(c, WIDE, t.id, true, pid, 0);
    c[0].base_sequence = 3; /* partition 0 continues after its first batch, the others start */
    c[0].last_sequence = 5;
    struct cost idem_wide = commit_cost(m, "idem/512", c, WIDE, &rc);
    CHECK_EQ(rc, 0);
    CHECK_EQ(all_at(c, 1, 9), 1);
    CHECK_EQ(all_at(c + 1, WIDE - 1, 3), WIDE - 1);
    fill(c, WIDE, t.id, true, pid, 3);
    c[0].base_sequence = 6;
    c[0].last_sequence = 8;
    struct cost idem_next = commit_cost(m, "idem/512b", c, WIDE, &rc);
    CHECK_EQ(rc, 0);
    CHECK_EQ(all_at(c, 1, 12), 1);
    CHECK_EQ(all_at(c + 1, WIDE - 1, 6), WIDE - 1);
    /* A retry of the whole flush: every chunk a duplicate, nothing stored, still one transaction. */
    struct cost retry = commit_cost(m, "idem/512c", c, WIDE, &rc);
    CHECK_EQ(rc, 0);
    int dups = 0;
    for (int i = 0; i < WIDE; i++)
        dups += c[i].duplicate && c[i].base_offset == (i == 0 ? 12 : 6);
    CHECK_EQ(dups, WIDE);
    CHECK_EQ(idem_one.commits, 1);
    CHECK_EQ(idem_wide.commits, 1);
    CHECK_EQ(idem_next.commits, 1);
    CHECK_EQ(retry.commits, 1);
    CHECK_EQ(idem_one.round_trips, 3);
    CHECK_EQ(idem_wide.round_trips, 3);
    CHECK_EQ(idem_next.round_trips, 3);
    CHECK(retry.round_trips <= 3);
    CHECK_EQ(idem_wide.statements, idem_one.statements);
    CHECK_EQ(idem_next.statements, idem_one.statements);
    CHECK(idem_wide.statements <= 9);
    metastore_close(m);
}

/* SQLite runs in-process: statements per chunk are fine there, but still one transaction (one
 * fsync) per flush, whatever the number of partitions. */
TEST(sqlite_commit_is_one_transaction)
{
    char *dir = test_temp_dir();
    CHECK(dir != NULL);
    if (!dir)
        return;
    char url[512];
    snprintf(url, sizeof(url), "sqlite://%s/meta.db", dir);
    struct metastore *m = test_open_meta(url);
    CHECK(m != NULL);
    if (m) {
        struct topic_info t;
        CHECK_EQ(metastore_create_topic(m, "wide", WIDE, NULL, 0, &t), 0);
        static struct commit_chunk c[WIDE];
        int rc;
        fill(c, WIDE, t.id, false, 0, 0);
        struct cost plain = commit_cost(m, "plain/512", c, WIDE, &rc);
        CHECK_EQ(rc, 0);
        CHECK_EQ(all_at(c, WIDE, 0), WIDE);
        int64_t pid;
        int16_t epoch;
        CHECK_EQ(metastore_init_producer(m, -1, 0, &pid, &epoch), 0);
        fill(c, WIDE, t.id, true, pid, 0);
        struct cost idem = commit_cost(m, "idem/512", c, WIDE, &rc);
        CHECK_EQ(rc, 0);
        CHECK_EQ(all_at(c, WIDE, 3), WIDE);
        CHECK_EQ(plain.commits, 1);
        CHECK_EQ(idem.commits, 1);
        CHECK_EQ(plain.round_trips, 0);
        CHECK_EQ(idem.round_trips, 0);
        CHECK(plain.statements >= WIDE); /* the counter counts */
        metastore_close(m);
    }
    test_rm_rf(dir);
    free(dir);
}
