/* Counters the workers keep for Prometheus (`/metrics`, served by the supervisor).
 *
 * The supervisor maps one block per worker into memory shared with the workers before it forks
 * them (mmap MAP_SHARED|MAP_ANONYMOUS). A worker only ever writes its own block, with relaxed
 * atomics: counting is one atomic add, no lock, no syscall. A restarted worker gets the same block
 * back, so counters stay monotonic across restarts. Every series is declared once in the tables
 * below; the exposition (metrics_render) is generated from them. */
#ifndef SLUICE_METRICS_H
#define SLUICE_METRICS_H

#include <stdint.h>
#include <time.h>

#include "util/buf.h"

/* Counters: X(id, name, help). Per worker (label worker). */
#define METRICS_COUNTERS(X)                                                                                        \
    X(M_PRODUCE_RECORDS, "sluice_produce_records_total", "Records committed by produce requests")                 \
    X(M_PRODUCE_BYTES, "sluice_produce_bytes_total", "Record batch bytes committed by produce requests")          \
    X(M_FLUSHES, "sluice_flushes_total", "Objects written and committed by the flusher")                          \
    X(M_OBJECT_PUT_ERRORS, "sluice_object_put_errors_total", "Object store PUTs that failed")                      \
    X(M_OBJECT_GET_ERRORS, "sluice_object_get_errors_total", "Object store ranged GETs that failed")               \
    X(M_METADATA_COMMIT_ERRORS, "sluice_metadata_commit_errors_total", "Metadata commits of objects that failed")  \
    X(M_READ_CACHE_HITS, "sluice_read_cache_hits_total", "Chunk look-ups answered from the read cache")            \
    X(M_READ_CACHE_MISSES, "sluice_read_cache_misses_total", "Chunk look-ups the read cache did not hold")         \
    X(M_WORKER_STARTS, "sluice_worker_starts_total", "Times the supervisor started this worker")                 \
    X(M_JOB_RUNS, "sluice_job_runs_total", "Rounds of retention and garbage collection run under the lease")      \
    X(M_LEASE_TAKEOVERS, "sluice_lease_takeovers_total", "Times this worker took the job lease it did not hold") \
    X(M_CHUNKS_EXPIRED, "sluice_chunks_expired_total", "Chunks dropped by retention and DeleteRecords")         \
    X(M_OBJECTS_DELETED, "sluice_objects_deleted_total", "Objects deleted from the bucket (unreferenced or never committed)") \
    X(M_KEY_COMPACTIONS, "sluice_key_compactions_total", "Partitions of compacted topics cleaned (cleanup.policy=compact)") \
    X(M_RECORDS_CLEANED, "sluice_records_cleaned_total", "Records removed by key compaction (superseded or expired tombstones)") \
    X(M_COMPACTIONS, "sluice_compactions_total", "Objects written by compaction of small chunks and switched in")  \
    X(M_CHUNKS_COMPACTED, "sluice_chunks_compacted_total", "Small chunks replaced by compaction")                 \
    X(M_COMPACTION_BYTES, "sluice_compaction_bytes_written_total", "Bytes of objects written by compaction")      \
    X(M_COMPACTION_CONFLICTS, "sluice_compaction_conflicts_total", "Compaction runs that changed before their switch (left as they were)")

/* Gauges: X(id, name, help). Per worker; zeroed when the worker exits. */
#define METRICS_GAUGES(X)                                                                                          \
    X(M_CONNECTIONS, "sluice_connections", "Open Kafka connections")                                               \
    X(M_PRODUCE_BUFFERED_BYTES, "sluice_produce_buffered_bytes", "Produce data buffered or being flushed")

/* Histograms: X(id, name, help, unit). Unit SECONDS is observed in microseconds, BYTES in bytes. */
#define METRICS_HISTOGRAMS(X)                                                                                      \
    X(H_PRODUCE_LATENCY, "sluice_produce_latency_seconds", "Produce requests, received to answered", SECONDS)     \
    X(H_FETCH_LATENCY, "sluice_fetch_latency_seconds", "Fetch requests, received to answered (long polls too)",   \
      SECONDS)                                                                                                     \
    X(H_FLUSH_SIZE, "sluice_flush_size_bytes", "Size of each object the flusher writes", BYTES)                    \
    X(H_FLUSH_INTERVAL, "sluice_flush_interval_seconds", "Time between consecutive committed flushes",         \
      SECONDS)                                                                                                     \
    X(H_OBJECT_PUT, "sluice_object_put_seconds", "Object store PUT latency", SECONDS)                               \
    X(H_OBJECT_GET, "sluice_object_get_seconds", "Object store ranged GET latency", SECONDS)                        \
    X(H_METADATA_COMMIT, "sluice_metadata_commit_seconds", "Metadata store commit of one object's chunks", SECONDS)

/* The bounded set of Kafka error codes requests are labelled with; any other code counts as OTHER. */
#define METRICS_ERRORS(X)                                                                                          \
    X(NONE, 0) X(UNKNOWN_SERVER_ERROR, -1) X(OFFSET_OUT_OF_RANGE, 1) X(CORRUPT_MESSAGE, 2)                          \
    X(UNKNOWN_TOPIC_OR_PARTITION, 3) X(INVALID_FETCH_SIZE, 4) X(LEADER_NOT_AVAILABLE, 5)                           \
    X(NOT_LEADER_OR_FOLLOWER, 6) X(REQUEST_TIMED_OUT, 7) X(MESSAGE_TOO_LARGE, 10) X(OFFSET_METADATA_TOO_LARGE, 12) \
    X(COORDINATOR_NOT_AVAILABLE, 15) X(NOT_COORDINATOR, 16) X(INVALID_TOPIC_EXCEPTION, 17)                         \
    X(RECORD_LIST_TOO_LARGE, 18) X(INVALID_REQUIRED_ACKS, 21) X(ILLEGAL_GENERATION, 22)                            \
    X(INCONSISTENT_GROUP_PROTOCOL, 23) X(INVALID_GROUP_ID, 24) X(UNKNOWN_MEMBER_ID, 25)                            \
    X(INVALID_SESSION_TIMEOUT, 26) X(REBALANCE_IN_PROGRESS, 27) X(INVALID_TIMESTAMP, 32)                           \
    X(UNSUPPORTED_VERSION, 35) X(TOPIC_ALREADY_EXISTS, 36) X(INVALID_PARTITIONS, 37)                               \
    X(INVALID_REPLICATION_FACTOR, 38) X(INVALID_CONFIG, 40) X(INVALID_REQUEST, 42) X(POLICY_VIOLATION, 44)         \
    X(OUT_OF_ORDER_SEQUENCE_NUMBER, 45) X(INVALID_PRODUCER_EPOCH, 47) X(KAFKA_STORAGE_ERROR, 56)                   \
    X(NON_EMPTY_GROUP, 68) X(GROUP_ID_NOT_FOUND, 69) X(UNSUPPORTED_COMPRESSION_TYPE, 76)                           \
    X(MEMBER_ID_REQUIRED, 79) X(INVALID_RECORD, 87) X(PRODUCER_FENCED, 90) X(UNKNOWN_TOPIC_ID, 100)

#define METRICS_ID(id, ...) id,
enum metric_counter { METRICS_COUNTERS(METRICS_ID) M_COUNTER_COUNT };
enum metric_gauge { METRICS_GAUGES(METRICS_ID) M_GAUGE_COUNT };
enum metric_hist { METRICS_HISTOGRAMS(METRICS_ID) H_COUNT };
#define METRICS_ERR_ID(name, code) MERR_##name,
enum metric_error { MERR_OTHER, METRICS_ERRORS(METRICS_ERR_ID) MERR_COUNT };
#undef METRICS_ERR_ID

#define METRICS_MAX_BUCKETS 16     /* finite bucket bounds per histogram, at most */
#define METRICS_MAX_API_KEYS 80    /* requests are counted by API key below this */
#define METRICS_ERROR_MIN (-1)     /* error codes [-1, 127] have a slot lookup; others are OTHER */
#define METRICS_ERROR_SLOTS 129

#define METRICS_ACL_OPS 16       /* Kafka AclOperation codes below this */
#define METRICS_ACL_RESOURCES 8   /* Kafka ResourceType codes below this */

enum { MREQ_REQUESTS, MREQ_BYTES_IN, MREQ_BYTES_OUT, MREQ_COUNT };

struct metrics_block {
    _Alignas(64) uint64_t counters[M_COUNTER_COUNT];
    int64_t gauges[M_GAUGE_COUNT];
    /* Per histogram: [0, nbounds] non-cumulative bucket counts (the last is +Inf), then the sum. */
    uint64_t hist[H_COUNT][METRICS_MAX_BUCKETS + 2];
    uint64_t requests[METRICS_MAX_API_KEYS][MERR_COUNT][MREQ_COUNT];
    /* sluice_authorization_denied_total, by Kafka ACL operation and resource type code. */
    uint64_t authz_denied[METRICS_ACL_OPS][METRICS_ACL_RESOURCES];
};

/* This process's block: a private dummy until metrics_attach_worker (the supervisor, tools and
 * unit tests count into it harmlessly). */
extern struct metrics_block *metrics_self;
extern const uint8_t metrics_error_slot[METRICS_ERROR_SLOTS];
extern const uint64_t *const metrics_hist_bounds[H_COUNT];
extern const int metrics_hist_nbounds[H_COUNT];

static inline void metrics_add(enum metric_counter m, uint64_t v)
{
    __atomic_fetch_add(&metrics_self->counters[m], v, __ATOMIC_RELAXED);
}

static inline void metrics_set(enum metric_gauge m, int64_t v)
{
    __atomic_store_n(&metrics_self->gauges[m], v, __ATOMIC_RELAXED);
}

static inline void metrics_observe(enum metric_hist h, uint64_t v)
{
    const uint64_t *b = metrics_hist_bounds[h];
    int i = 0, n = metrics_hist_nbounds[h];
    while (i < n && v > b[i])
        i++;
    __atomic_fetch_add(&metrics_self->hist[h][i], 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&metrics_self->hist[h][METRICS_MAX_BUCKETS + 1], v, __ATOMIC_RELAXED);
}

/* One answered request: its API key, the first error code in its response, frame sizes. */
static inline void metrics_request(int16_t api_key, int16_t error, uint64_t bytes_in, uint64_t bytes_out)
{
    if (api_key < 0 || api_key >= METRICS_MAX_API_KEYS)
        return;
    int e = error >= METRICS_ERROR_MIN && error < METRICS_ERROR_MIN + METRICS_ERROR_SLOTS
                ? metrics_error_slot[error - METRICS_ERROR_MIN]
                : MERR_OTHER;
    uint64_t *r = metrics_self->requests[api_key][e];
    __atomic_fetch_add(&r[MREQ_REQUESTS], 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&r[MREQ_BYTES_IN], bytes_in, __ATOMIC_RELAXED);
    __atomic_fetch_add(&r[MREQ_BYTES_OUT], bytes_out, __ATOMIC_RELAXED);
}

/* One request (or part of one) the authorizer refused: operation and resource type codes. */
static inline void metrics_authz_denied(int op, int resource_type)
{
    if (op >= 0 && op < METRICS_ACL_OPS && resource_type >= 0 && resource_type < METRICS_ACL_RESOURCES)
        __atomic_fetch_add(&metrics_self->authz_denied[op][resource_type], 1, __ATOMIC_RELAXED);
}

/* Monotonic microseconds (vDSO: no syscall), for latency histograms. */
static inline uint64_t metrics_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static inline void metrics_observe_since(enum metric_hist h, uint64_t start_us)
{
    metrics_observe(h, metrics_now_us() - start_us);
}

/* Supervisor, before forking: maps nworkers zeroed blocks. 0, or -1 with errno. */
int metrics_init(int nworkers);
/* In a freshly forked worker: count into block id from now on. */
void metrics_attach_worker(int id);
/* Supervisor: worker id (re)started / exited (its gauges no longer hold). */
void metrics_worker_started(int id);
void metrics_worker_exited(int id);

/* Appends the exposition of every worker's series to out (Prometheus text format 0.0.4).
 * api_keys: the served API keys (the request series cover exactly these). */
void metrics_render(struct buf *out, const int16_t *api_keys, int napi);

/* Helpers for series rendered elsewhere (steering counters): a family header, then samples.
 * labels is the text inside {} (may be empty). */
void metrics_family(struct buf *out, const char *name, const char *type, const char *help);
void metrics_sample(struct buf *out, const char *name, const char *labels, uint64_t value);

#endif
