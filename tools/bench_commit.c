/* What a flush's metadata commit costs (make bench, issue 10): metastore_commit_object of one
 * object with one chunk in each of 1, 8, 64 and 512 partitions, plain and idempotent (one producer
 * writing to every partition, its sequences continuing from flush to flush), on SQLite (a file in
 * a temp folder, as the agent opens it: WAL, synchronous=FULL) and on a throwaway PostgreSQL 15
 * started like the unit tests' (tests/unit/pg_fixture.c), with fsync on. One handle committing in
 * a loop, as one store thread does: per flush the p50 and p99 time, commits per second, and what
 * the handle's counters say one commit took (round trips to the server, statements). Built -O2
 * without sanitizers. BENCH_QUICK=1: shorter runs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pg_fixture.h"
#include "storage/metastore.h"
#include "test_util.h"
#include "util/log.h"

#define MAX_PARTITIONS 512
#define MAX_COMMITS 5000
#define MIN_COMMITS 20

static const int widths[] = {1, 8, 64, 512};

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec / 1e9;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

struct result {
    double p50_ms, p99_ms, per_s;
    double round_trips, statements; /* per commit */
    int commits;
};

/* Commits flushes of `width` chunks (5 offsets each, one per partition) for about `seconds`.
 * Returns 0, or -1 if a commit failed. */
static int run_case(struct metastore *m, int width, bool idempotent, double seconds, struct result *out)
{
    static int topic_no;
    char name[64];
    snprintf(name, sizeof(name), "bench-%d-%d", width, topic_no++);
    struct topic_info t;
    if (metastore_create_topic(m, name, width, NULL, 0, &t) != 0)
        return -1;
    int64_t pid = -1;
    int16_t epoch = 0;
    if (idempotent && metastore_init_producer(m, -1, 0, &pid, &epoch) != 0)
        return -1;
    static struct commit_chunk c[MAX_PARTITIONS];
    static double took[MAX_COMMITS];
    int32_t seq = 0;
    struct metastore_counters before, after;
    metastore_get_counters(m, &before);
    double start = now_s(), end = start + seconds;
    int n = 0;
    while (n < MAX_COMMITS && (n < MIN_COMMITS || now_s() < end)) {
        for (int i = 0; i < width; i++) {
            c[i] = (struct commit_chunk){.topic_id = t.id, .partition = i, .pos = (uint64_t)i * 4096,
                                         .len = 4096, .batch_count = 1, .offset_count = 5,
                                         .first_timestamp = 1700000000000 + n, .max_timestamp = 1700000000000 + n};
            if (idempotent) {
                c[i].idempotent = true;
                c[i].producer_id = pid;
                c[i].producer_epoch = epoch;
                c[i].base_sequence = seq;
                c[i].last_sequence = seq + 4;
            }
        }
        seq += 5;
        char key[96];
        snprintf(key, sizeof(key), "%s/%08d", name, n);
        double t0 = now_s();
        int rc = metastore_commit_object(m, key, (uint64_t)width * 4096, c, width);
        took[n++] = (now_s() - t0) * 1e3;
        if (rc != 0 || c[0].error != 0 || c[0].duplicate) {
            fprintf(stderr, "bench_commit: commit %d of %s failed (rc %d, error %d)\n", n, name, rc, c[0].error);
            return -1;
        }
    }
    double elapsed = now_s() - start;
    metastore_get_counters(m, &after);
    qsort(took, (size_t)n, sizeof(took[0]), by_value);
    out->p50_ms = took[n / 2];
    out->p99_ms = took[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1];
    out->per_s = n / elapsed;
    out->round_trips = (double)(after.round_trips - before.round_trips) / n;
    out->statements = (double)(after.statements - before.statements) / n;
    out->commits = n;
    if (after.commits - before.commits != (uint64_t)n) {
        fprintf(stderr, "bench_commit: %d flushes took %llu transactions\n", n,
                (unsigned long long)(after.commits - before.commits));
        return -1;
    }
    return 0;
}

static int run_store(const char *label, const char *url, double seconds)
{
    char err[256] = "";
    struct metastore *m = metastore_open(url, err, sizeof(err));
    if (!m) {
        fprintf(stderr, "bench_commit: %s: %s\n", label, err);
        return -1;
    }
    int rc = 0;
    for (size_t w = 0; w < sizeof(widths) / sizeof(widths[0]) && rc == 0; w++)
        for (int idem = 0; idem < 2 && rc == 0; idem++) {
            struct result r;
            rc = run_case(m, widths[w], idem, seconds, &r);
            if (rc == 0)
                printf("%-10s %10d  %-10s %8.2f %8.2f %10.0f %12.1f %11.1f %8d\n", label, widths[w],
                       idem ? "yes" : "no", r.p50_ms, r.p99_ms, r.per_s, r.round_trips, r.statements, r.commits);
            fflush(stdout);
        }
    metastore_close(m);
    return rc;
}

int main(void)
{
    log_min_level = LOG_WARN; /* no "schema at version" line in the table */
    double seconds = getenv("BENCH_QUICK") ? 0.3 : 1.5;
    /* Commit times with the durability the agent runs with: PostgreSQL fsyncs its WAL. */
    setenv("SLUICE_TEST_PG_FSYNC", "1", 1);
    printf("metadata commit per flush: one object, one chunk in each partition, one store handle\n");
    printf("%-10s %10s  %-10s %8s %8s %10s %12s %11s %8s\n", "store", "partitions", "idempotent", "p50 ms",
           "p99 ms", "commits/s", "round trips", "statements", "commits");
    char *dir = test_temp_dir();
    if (!dir) {
        fprintf(stderr, "bench_commit: no temp folder\n");
        return 1;
    }
    char url[512];
    snprintf(url, sizeof(url), "sqlite://%s/meta.db", dir);
    int rc = run_store("sqlite", url, seconds);
    test_rm_rf(dir);
    free(dir);

    char why[256];
    if (pg_fixture_up(why, sizeof(why)) < 0) {
        fprintf(stderr, "bench_commit: postgres: %s\n", why);
        return 1;
    }
    if (pg_fixture_new_store("bench_commit", url, sizeof(url)) < 0) {
        fprintf(stderr, "bench_commit: postgres: cannot create the store\n");
        return 1;
    }
    if (run_store("postgres", url, seconds) < 0)
        rc = -1;
    return rc == 0 ? 0 : 1;
}
