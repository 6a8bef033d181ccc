/* What a partition's age costs reads (make bench, issue 13): fetch planning (metastore_find_chunks
 * from an offset, 64 chunks, as broker/fetch.c plans) and ListOffsets by time
 * (metastore_find_chunks_by_time, 8 chunks, as broker/list_offsets.c searches) on a partition of
 * 10 chunks and of 1,000,000 chunks (16 KiB each, timestamps rising with jitter, as small flushes
 * leave them), on SQLite and on a throwaway PostgreSQL 15, before and after compaction's switch
 * (metastore_replace_chunks, runs of 64 chunks -> one 1 MiB chunk, 16 runs per 16 MiB object:
 * the compaction job's defaults). The baseline, measured in the same run on the same data: the
 * timestamp query sluice ran before the time index (first chunk by offset whose own max_timestamp
 * is >= t: with timestamps out of order no index answers it in one seek). Lookup times are p50 and
 * p99 over 2,000 random lookups from one store handle. BENCH_QUICK=1: 100,000 chunks instead. */
#include <inttypes.h>
#include <postgresql/libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pg_fixture.h"
#include "storage/metastore.h"
#include "test_util.h"
#include "util/log.h"

#define CHUNK_BYTES 16384
#define CHUNK_OFFSETS 16
#define CHUNKS_PER_COMMIT 1000
#define RUN_CHUNKS 64          /* 64 x 16 KiB = the job's 1 MiB run cap */
#define RUNS_PER_OBJECT 16     /* 16 MiB objects */
#define LOOKUPS 2000
#define TS_BASE 1700000000000LL

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

/* Chunk i's largest timestamp: 5 ms per chunk, up to 30 ms out of order. */
static int64_t chunk_ts(int64_t i) { return TS_BASE + i * 5 + (i * 7919) % 13 * 5 - 30; }

/* Deterministic pseudo-random numbers: the same lookups for every case. */
static uint64_t rnd_state;
static uint64_t rnd(void)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return rnd_state;
}

static int fill(struct metastore *m, const struct topic_info *t, int64_t nchunks)
{
    static struct commit_chunk c[CHUNKS_PER_COMMIT];
    for (int64_t done = 0; done < nchunks;) {
        int n = nchunks - done < CHUNKS_PER_COMMIT ? (int)(nchunks - done) : CHUNKS_PER_COMMIT;
        for (int k = 0; k < n; k++)
            c[k] = (struct commit_chunk){.topic_id = t->id, .partition = 0, .pos = (uint64_t)k * CHUNK_BYTES,
                                         .len = CHUNK_BYTES, .batch_count = 1, .offset_count = CHUNK_OFFSETS,
                                         .first_timestamp = chunk_ts(done + k) - 4,
                                         .max_timestamp = chunk_ts(done + k)};
        char key[OBJECT_KEY_MAX];
        snprintf(key, sizeof(key), "objects/%013" PRId64 "-%.60s.obj", done, t->name);
        if (metastore_commit_object(m, key, (uint64_t)n * CHUNK_BYTES, c, n) != 0 || c[0].error) {
            fprintf(stderr, "bench_chunk_index: filling %s failed\n", t->name);
            return -1;
        }
        done += n;
    }
    return 0;
}

/* Compaction's switch over the whole partition: RUN_CHUNKS chunks -> one, RUNS_PER_OBJECT runs
 * per new object. Returns the chunks left, or -1. */
static int64_t compact(struct metastore *m, const struct topic_info *t, int64_t nchunks)
{
    int64_t runs_total = nchunks / RUN_CHUNKS, left = nchunks - runs_total * RUN_CHUNKS;
    struct chunk_replacement r[RUNS_PER_OBJECT];
    for (int64_t run = 0; run < runs_total;) {
        int n = 0;
        for (; n < RUNS_PER_OBJECT && run < runs_total; n++, run++)
            r[n] = (struct chunk_replacement){
                .topic_id = t->id, .partition = 0, .base_offset = run * RUN_CHUNKS * CHUNK_OFFSETS,
                .last_offset = (run + 1) * RUN_CHUNKS * CHUNK_OFFSETS - 1, .old_chunks = RUN_CHUNKS,
                .pos = (uint64_t)n * RUN_CHUNKS * CHUNK_BYTES, .len = RUN_CHUNKS * CHUNK_BYTES,
                .batch_count = RUN_CHUNKS};
        char key[OBJECT_KEY_MAX];
        snprintf(key, sizeof(key), "objects/%013" PRId64 "-%.60s-compacted.obj", run, t->name);
        if (metastore_replace_chunks(m, key, (uint64_t)n * RUN_CHUNKS * CHUNK_BYTES, r, n) != n) {
            fprintf(stderr, "bench_chunk_index: compacting %s failed\n", t->name);
            return -1;
        }
        left += n;
    }
    return left;
}

struct lat {
    double p50_us, p99_us;
};

static void summarize(double *v, int n, struct lat *out)
{
    qsort(v, (size_t)n, sizeof(*v), by_value);
    out->p50_us = v[n / 2] * 1e6;
    out->p99_us = v[(n * 99) / 100] * 1e6;
}

/* Fetch planning and ListOffsets by time through the store's own calls. */
static int measure(struct metastore *m, const struct topic_info *t, int64_t nchunks, struct lat *plan,
                   struct lat *by_time)
{
    static double took[LOOKUPS];
    static struct chunk_ref refs[64];
    int64_t offsets = nchunks * CHUNK_OFFSETS;
    rnd_state = 88172645463325252ULL;
    for (int i = 0; i < LOOKUPS; i++) {
        double t0 = now_s();
        int n = metastore_find_chunks(m, t->id, 0, (int64_t)(rnd() % (uint64_t)offsets), refs, 64);
        took[i] = now_s() - t0;
        if (n < 1)
            return -1;
    }
    summarize(took, LOOKUPS, plan);
    for (int i = 0; i < LOOKUPS; i++) {
        int64_t ts = chunk_ts((int64_t)(rnd() % (uint64_t)nchunks));
        double t0 = now_s();
        int n = metastore_find_chunks_by_time(m, t->id, 0, ts, refs, 8);
        took[i] = now_s() - t0;
        if (n < 1)
            return -1;
    }
    summarize(took, LOOKUPS, by_time);
    return 0;
}

/* The query before the time index, on its own connection to the same store. */
#define OLD_BY_TIME                                                                                   \
    "SELECT c.base_offset FROM chunks c JOIN objects o ON o.id = c.object_id WHERE c.topic_id = %s" \
    " AND c.partition = 0 AND c.max_timestamp >= %s ORDER BY c.base_offset LIMIT 8"

static int measure_old_sqlite(const char *path, const struct topic_info *t, int64_t nchunks, struct lat *out)
{
    static double took[LOOKUPS];
    sqlite3 *db;
    sqlite3_stmt *q;
    char sql[512];
    snprintf(sql, sizeof(sql), OLD_BY_TIME, "?1", "?2");
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK) {
        fprintf(stderr, "bench_chunk_index: %s\n", sqlite3_errmsg(db));
        sqlite3_close(db);
        return -1;
    }
    rnd_state = 88172645463325252ULL;
    int lookups = nchunks >= 100000 ? LOOKUPS / 20 : LOOKUPS; /* each one walks the partition */
    for (int i = 0; i < lookups; i++) {
        sqlite3_bind_int64(q, 1, t->id);
        sqlite3_bind_int64(q, 2, chunk_ts((int64_t)(rnd() % (uint64_t)nchunks)));
        double t0 = now_s();
        while (sqlite3_step(q) == SQLITE_ROW)
            ;
        took[i] = now_s() - t0;
        sqlite3_reset(q);
    }
    sqlite3_finalize(q);
    sqlite3_close(db);
    summarize(took, lookups, out);
    return 0;
}

static int measure_old_pg(const char *schema, const struct topic_info *t, int64_t nchunks, struct lat *out)
{
    static double took[LOOKUPS];
    char conninfo[512];
    pg_fixture_conninfo(schema, conninfo, sizeof(conninfo));
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "bench_chunk_index: %s", PQerrorMessage(c));
        PQfinish(c);
        return -1;
    }
    rnd_state = 88172645463325252ULL;
    int lookups = nchunks >= 100000 ? LOOKUPS / 20 : LOOKUPS;
    for (int i = 0; i < lookups; i++) {
        char tid[24], ts[24], sql[512];
        snprintf(tid, sizeof(tid), "%" PRId64, t->id);
        snprintf(ts, sizeof(ts), "%" PRId64, chunk_ts((int64_t)(rnd() % (uint64_t)nchunks)));
        snprintf(sql, sizeof(sql), OLD_BY_TIME, tid, ts);
        double t0 = now_s();
        PGresult *r = PQexec(c, sql);
        took[i] = now_s() - t0;
        bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
        PQclear(r);
        if (!ok) {
            fprintf(stderr, "bench_chunk_index: %s", PQerrorMessage(c));
            PQfinish(c);
            return -1;
        }
    }
    PQfinish(c);
    summarize(took, lookups, out);
    return 0;
}

static void row(const char *store, int64_t chunks, const char *compaction, const struct lat *plan,
                const struct lat *by_time, const struct lat *old)
{
    printf("%-10s %10" PRId64 "  %-10s %9.0f %9.0f %9.0f %9.0f %11.0f %11.0f %8.1fx\n", store, chunks, compaction,
           plan->p50_us, plan->p99_us, by_time->p50_us, by_time->p99_us, old->p50_us, old->p99_us,
           old->p50_us / (by_time->p50_us > 0 ? by_time->p50_us : 1));
    fflush(stdout);
}

/* Both sizes on one store. sqlite_path or pg_schema names where the old query connects. */
static int run_store(const char *label, const char *url, const char *sqlite_path, const char *pg_schema,
                     int64_t big)
{
    char err[256] = "";
    struct metastore *m = metastore_open(url, err, sizeof(err));
    if (!m) {
        fprintf(stderr, "bench_chunk_index: %s: %s\n", label, err);
        return -1;
    }
    const int64_t sizes[2] = {10, big};
    int rc = 0;
    for (int s = 0; s < 2 && rc == 0; s++) {
        struct topic_info t;
        char name[64];
        snprintf(name, sizeof(name), "aged-%" PRId64, sizes[s]);
        double t0 = now_s();
        rc = metastore_create_topic(m, name, 1, NULL, 0, &t) == 0 ? fill(m, &t, sizes[s]) : -1;
        if (rc)
            break;
        double filled = now_s() - t0;
        struct lat plan, by_time, old;
        rc = measure(m, &t, sizes[s], &plan, &by_time);
        if (rc == 0)
            rc = sqlite_path ? measure_old_sqlite(sqlite_path, &t, sizes[s], &old)
                             : measure_old_pg(pg_schema, &t, sizes[s], &old);
        if (rc)
            break;
        row(label, sizes[s], "off", &plan, &by_time, &old);
        if (sizes[s] < RUN_CHUNKS)
            continue; /* too few chunks for a run */
        t0 = now_s();
        int64_t left = compact(m, &t, sizes[s]);
        if (left < 0) {
            rc = -1;
            break;
        }
        double compacted = now_s() - t0;
        rc = measure(m, &t, left, &plan, &by_time);
        if (rc == 0)
            rc = sqlite_path ? measure_old_sqlite(sqlite_path, &t, left, &old) : measure_old_pg(pg_schema, &t, left, &old);
        if (rc)
            break;
        char what[32];
        snprintf(what, sizeof(what), "on (%" PRId64 ")", left);
        row(label, sizes[s], what, &plan, &by_time, &old);
        printf("%-10s %10" PRId64 "  filled in %.1f s, compaction's switch for every run in %.1f s\n", label,
               sizes[s], filled, compacted);
    }
    metastore_close(m);
    return rc;
}

int main(void)
{
    log_min_level = LOG_WARN;
    int64_t big = getenv("BENCH_QUICK") ? 100000 : 1000000;
    printf("chunk index: one partition of N chunks (16 KiB, 16 offsets each); lookups in microseconds\n");
    printf("  plan = fetch planning (64 chunks from a random offset); by time = ListOffsets by a random timestamp\n");
    printf("  old by time = the query before the time index (baseline); compaction on (chunks left)\n");
    printf("%-10s %10s  %-10s %9s %9s %9s %9s %11s %11s %9s\n", "store", "chunks", "compaction", "plan p50",
           "plan p99", "time p50", "time p99", "old p50", "old p99", "old/new");
    char *dir = test_temp_dir();
    if (!dir) {
        fprintf(stderr, "bench_chunk_index: no temp folder\n");
        return 1;
    }
    char path[512], url[600];
    snprintf(path, sizeof(path), "%s/meta.db", dir);
    snprintf(url, sizeof(url), "sqlite://%s", path);
    int rc = run_store("sqlite", url, path, NULL, big);
    test_rm_rf(dir);
    free(dir);
    char why[256] = "";
    if (rc == 0) {
        if (pg_fixture_up(why, sizeof(why)) < 0 || pg_fixture_new_store("bench_chunks", url, sizeof(url)) < 0) {
            fprintf(stderr, "bench_chunk_index: no PostgreSQL: %s\n", why);
            return 1;
        }
        rc = run_store("postgres", url, NULL, "bench_chunks", big);
    }
    return rc == 0 ? 0 : 1;
}
