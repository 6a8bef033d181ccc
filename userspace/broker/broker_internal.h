/* State shared by the broker's files (not for code outside broker/). */
#ifndef SLUICE_BROKER_INTERNAL_H
#define SLUICE_BROKER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "broker/broker.h"
#include "broker/read_cache.h"
#include "broker/reader.h"
#include "broker/waiters.h"
#include "broker/notify.h"
#include "broker/jobs.h"
#include "broker/authz.h"
#include "util/buf_pool.h"
#include "cluster/membership.h"
#include "config.h"
#include "messages.h"
#include "protocol/errors.h"
#include "record/batch.h"
#include "broker/request.h"
#include "storage/object_format.h"
#include "storage/metastore.h"
#include "storage/objstore.h"

/* Threads of the metadata-store pool (jobs.h): a slow call does not hold up every other. */
#define STORE_THREADS 2

/* ---- topics (topics.c) ---- */

struct partition_state {
    bool loaded;
    int64_t log_start;
    int64_t high_watermark;      /* next offset; everything below is committed */
    int64_t read_ms;             /* when the last read of these offsets from the store started */
    int64_t failed_ms;           /* when the last failed read started (0: none) */
    int failed_err;
    bool loading;                /* a read is in flight; waiters get it */
    struct waiters waiters;
};

struct topic_entry {
    struct topic_info info;
    struct partition_state *parts; /* info.partitions entries */
    /* the topic configs that change how produce behaves */
    bool log_append_time;        /* message.timestamp.type=LogAppendTime */
    bool compacted;              /* cleanup.policy contains compact: records need keys */
    int64_t max_message_bytes;   /* max.message.bytes, or the agent's default */
};

/* A name the cache did not have, asked of the store. */
struct topic_lookup {
    char name[TOPIC_NAME_MAX + 1];
    int64_t started_ms;
    bool done;
    int result;                  /* 0 found (now cached), UNKNOWN_TOPIC_OR_PARTITION, or STORAGE_ERROR */
    struct waiters waiters;
    struct topic_lookup *next;
};

struct topic_cache {
    struct topic_entry *topics;  /* sorted by name */
    int n;
    int64_t listed_ms;           /* when the last full listing started */
    int64_t listing_failed_ms;
    bool listing;                /* a listing job is in flight */
    int64_t listing_started_ms;
    struct waiters listing_waiters;
    bool polling;                /* an offsets poll for waiting fetches is in flight */
    struct topic_lookup *lookups;
};

/* The cache only (no waiting): NULL if the topic is not known here. */
struct topic_entry *topics_find(struct broker *b, const char *name, int32_t len);
struct topic_entry *topics_find_id(struct broker *b, int64_t topic_id);
/* The topic, from the cache or else from the store: NULL with *err = 0 when rq now waits for the
 * look-up (run the handler again when it resumes), or with the Kafka error that answers it. */
struct topic_entry *topics_need(struct broker *b, struct request *rq, const char *name, int32_t len, int *err);
/* The same with a look-up that started no earlier than since_ms (topics_need: rq's arrival). */
struct topic_entry *topics_need_since(struct broker *b, struct request *rq, const char *name, int32_t len,
                                      int64_t since_ms, int *err);
/* Is the cached topic list at most max_age_ms older than rq? false: rq waits (*err 0) or the
 * store failed (*err set). */
bool topics_need_listing(struct broker *b, struct request *rq, int64_t max_age_ms, int *err);
/* A partition's offsets as read from the store no earlier than since_ms (INT64_MIN: any read):
 * NULL with *err = 0 when rq waits for a read, or with the Kafka error that answers it. */
struct partition_state *partition_need(struct broker *b, struct request *rq, struct topic_entry *t, int32_t partition,
                                       int64_t since_ms, int *err);
/* A local commit advanced a partition. */
void topics_advance(struct broker *b, int64_t topic_id, int32_t partition, int64_t end);
/* Reads these partitions' offsets again (for waiting fetches; one poll at a time), then wakes the
 * fetches. */
void topics_poll(struct broker *b, const int64_t *topic_ids, const int32_t *partitions, int n);
/* Kafka topic name rules: 1..249 of [a-zA-Z0-9._-], not "." or "..". */
bool topic_name_valid(const char *name, int32_t len);
/* Creates / deletes a topic on a store thread: rq waits; *result gets 0 or the Kafka error. The
 * cache learns a new topic at once. */
void topics_create(struct broker *b, struct request *rq, const char *name, int32_t partitions,
                   const struct topic_config *configs, int nconfigs, int *result);
void topics_delete(struct broker *b, struct request *rq, const char *name, int *result);
/* A change this worker made (more partitions; new configs when configs is not NULL) goes into the
 * cache at once. */
void topics_update(struct broker *b, const struct topic_info *info, const struct topic_config *configs, int n);
int64_t topics_next_deadline(struct broker *b);
void topics_tick(struct broker *b, int64_t now_ms);
/* Start-up: the first listing, read synchronously before the loop runs. */
int topics_load(struct broker *b, struct metastore *m);
void topics_free(struct broker *b);

/* ---- produce buffering and flushing (produce.c, flusher.c) ---- */

/* Where a committed chunk's offsets go: one partition entry of one produce response. */
struct produce_ctx;
struct produce_waiter {
    struct produce_ctx *ctx;     /* the waiting request */
    int64_t *base_offset;
    int16_t *error_code;
    int64_t rel_offset;          /* offsets before this request's records within the chunk */
};

struct flush_chunk {
    int64_t topic_id;
    uint8_t topic_uuid[16];
    int32_t partition;
    struct buf data;             /* the batches, as produced */
    int32_t batch_count;
    int64_t offset_count;
    int64_t first_timestamp, max_timestamp;
    struct produce_waiter *waiters;
    int nwaiters, cap_waiters;
    /* An idempotent producer's batch is a chunk of its own (so the commit can skip a retry of it
     * without indexing its bytes; they stay in the object, unreferenced). */
    bool idempotent;
    int64_t producer_id;
    int16_t producer_epoch;
    int32_t base_sequence, last_sequence;
    /* filled by the flusher: */
    int64_t base_offset;
    uint64_t pos;                /* where data landed in the object */
    int error;
    bool duplicate;              /* a retry of a committed batch: base_offset is the original's */
};

struct flush_batch {
    struct flush_chunk *chunks;
    int nchunks, cap_chunks;
    int32_t *index;              /* open-addressing hash: (topic, partition) -> chunk index + 1 */
    int index_cap;
    size_t bytes;
    int64_t deadline_ms;         /* flush by then (set by the first append) */
    struct buf_pool *pool;       /* where the chunks' buffers come from and go back to */
    /* filled by the flusher: */
    int error;                   /* 0, or the Kafka error for every waiter */
    char object_key[128];
    struct object_writer *written; /* the stored object's layout, until committed */
    enum { FLUSH_QUEUED, FLUSH_PUTTING, FLUSH_PUT_DONE } stage;
    struct flush_batch *next;
};

/* Objects stored at once per worker: one is written while the previous one is being fsynced
 * (commits still run one at a time, in the order batches were sealed). */
#define FLUSH_PUTTERS 2

struct flusher {
    pthread_t putters[FLUSH_PUTTERS], committer;
    int nputters;                /* started */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct flush_batch *todo_head, *todo_tail; /* in seal order: queued, being put, or put */
    struct flush_batch *done_head, *done_tail;
    int queued;                  /* batches handed over and not yet completed */
    bool stop;
    bool started;
    struct metastore *meta;      /* the flusher thread's own handle */
    struct objstore *objects;
    struct server *srv;
    char key_prefix[64];
    uint64_t seq;
};

int flusher_start(struct flusher *f, const struct config *cfg, struct server *srv, int worker_id, char *err,
                  size_t errlen);
void flusher_stop(struct flusher *f);
/* Hands a batch to the flusher thread (FIFO: commits keep the order batches were sealed in). */
void flusher_submit(struct flusher *f, struct flush_batch *fb);
/* Takes the completed batches (loop thread). */
struct flush_batch *flusher_take_done(struct flusher *f);

void flush_batch_free(struct flush_batch *fb);
/* Counts a committed flush in the worker's metrics (flush_metrics.c). */
void flush_metrics_committed(const struct flush_batch *fb, uint64_t object_size);
/* Seals the current batch and hands it over if due (or if force). */
void produce_maybe_flush(struct broker *b, int64_t now_ms, bool force);
/* Buffered data and an idle store: the loop must not sleep (its tick flushes). */
bool produce_flush_ready(const struct broker *b);
/* Answers the producers of a committed (or failed) batch and advances high watermarks. */
void produce_complete(struct broker *b, struct flush_batch *fb);
/* Buffers the requests that waited for room, while there is room (after a flush completed). */
void produce_unpark(struct broker *b);
/* A connection closed: its request waiting for room is dropped. */
void produce_cancel_conn(struct broker *b, struct conn *c);
/* Answers REQUEST_TIMED_OUT to requests whose timeout_ms passed while waiting for the store. */
void produce_expire(struct broker *b, int64_t now_ms);
int64_t produce_next_deadline(const struct broker *b);

/* Connections whose next produce request waits for room in the buffers, in the order they began
 * to wait (their sockets are not read meanwhile). */
struct produce_line;
struct produce_parked {
    struct produce_line **v;
    int n, cap;
};

/* The flush batch being filled (flush_batch.c). */
struct flush_batch *flush_batch_new(struct buf_pool *pool);
/* The chunk of (topic, partition) in this batch, created on first use; alone: a new chunk for one
 * idempotent batch (later data of the partition goes to a chunk after it, keeping the order). */
struct flush_chunk *batch_chunk(struct flush_batch *fb, const struct topic_info *t, int32_t partition, bool alone);
void chunk_add_waiter(struct flush_chunk *ch, struct produce_waiter w);

/* One partition of a produce request, checked before it is buffered (produce_check.c). */
struct part_check {
    const uint8_t *records;      /* in the request's frame */
    size_t len;
    bool compacted;              /* the topic's: every record needs a key */
    bool zstd_allowed;           /* Produce v7+ */
    int64_t max_message_bytes;
    int err;                     /* set before the check: refused without looking at the records */
    const char *why;             /* a short reason for the log line */
    struct records_summary sum;
    /* an idempotent producer's batch (then the only batch of the partition): */
    bool idempotent;
    int64_t producer_id;
    int16_t producer_epoch;
    int32_t base_sequence, last_sequence;
};
/* Checks rq's partitions: true when done now (small uncompressed records), false when they went to
 * the checker thread (rq waits: set its resume). */
bool produce_check(struct broker *b, struct request *rq, struct part_check *v, int n);

/* ---- fetch long-poll (fetch.c) ---- */

struct fetch_waiter;
/* Re-runs waiting fetches after new data (or at their deadline). */
void fetch_wake(struct broker *b, int64_t now_ms, bool data_arrived);
int64_t fetch_next_deadline(struct broker *b);
void fetch_cancel_all(struct broker *b);
/* A connection closed: its long-polling fetches are dropped at once (their memory, its fd). */
void fetch_cancel_conn(struct broker *b, struct conn *c);
/* Reads again the offsets of the partitions that waiting fetches wait on. */
void fetch_poll_offsets(struct broker *b);

/* ---- consumer groups (group_coord.c, group_offsets.c) ---- */

/* JoinGroup / SyncGroup requests waiting for their group to change. */
struct group_parked {
    struct request **v;
    int n, cap;
    int64_t next_poll_ms;
};
void groups_tick(struct broker *b, int64_t now_ms);
/* Another process changed the store (PostgreSQL NOTIFY): parked group requests look again soon. */
void groups_notified(struct broker *b);
int64_t groups_next_deadline(struct broker *b);
void groups_cancel_conn(struct broker *b, struct conn *c);
void groups_cancel_all(struct broker *b);
void groups_drain(struct broker *b);
void groups_free(struct broker *b);
/* Store thread: applies the timers of groups nobody talks to any more (members that died without
 * leaving), so that they become Empty and their offsets can expire. The number of groups changed,
 * or -1. */
int groups_sweep(struct metastore *m, int64_t now);
/* Where slot s is advertised to this client (metadata.c). */
void broker_slot_address(struct broker *b, const struct request *rq, int slot, struct kstr *host, int32_t *port);

/* ---- chunk bytes (chunks.c) ---- */

/* A committed chunk's bytes from the read cache, pinned until rq is answered; or NULL: with *err
 * = 0 rq now waits for the read (or for room to read), with KAFKA_STORAGE_ERROR the read failed
 * after rq arrived. Gathered reads go out with chunks_submit (the loop calls it every turn). */
const struct buf *chunk_need(struct broker *b, struct request *rq, const struct chunk_ref *ref, int *err);
void chunks_submit(struct broker *b);
/* Reads finished: cache their chunks, pinned for the requests that waited, and resume those. */
void reader_complete(struct broker *b);
void chunks_read_done(struct broker *b, struct job *job);

#define READ_FAILURES 16
struct read_failure {
    char key[128];
    uint64_t pos;
    uint32_t len;
    int64_t failed_ms;
    int64_t until_ms;
};

/* ---- background jobs (lifecycle.c): retention and garbage collection, on worker 0 ---- */

struct lifecycle {
    atomic_bool stop;            /* set when the worker drains: a round in progress ends early */
    int64_t next_run_ms;
    bool running;                /* a round is on a store thread */
    bool held;                   /* this worker held the lease after its last round */
    uint64_t rounds;             /* rounds run under the lease */
};
int64_t lifecycle_next_deadline(struct broker *b);
void lifecycle_tick(struct broker *b, int64_t now_ms);
void lifecycle_release(struct broker *b); /* draining: give the lease up once no round runs */

/* ---- the broker ---- */

struct broker {
    const struct config *cfg;
    struct server *srv;
    struct jobs store;           /* every metadata-store call the loop needs, on threads */
    bool store_started;
    struct notify_watch notify;  /* other processes' commits (PostgreSQL) */
    struct objstore *objects;
    struct topic_cache topics;
    struct flusher flusher;
    struct jobs checker;         /* one thread checking produced records that take time */
    /* worker 0: one thread with its own store handle for the lifecycle rounds (retention,
     * compaction, garbage collection), which may take long: the store threads stay free */
    struct jobs background;
    bool background_started;
    bool checker_started;
    struct flush_batch *current; /* accumulating produce data */
    struct buf_pool chunk_bufs;  /* recycled chunk buffers (no fresh memory per flush) */
    int64_t produce_bytes;       /* produce data buffered or being flushed (capped: produce-buffer-bytes) */
    struct produce_parked parked;
    struct produce_ctx *produce_waiting; /* requests waiting for commits (their timeouts) */
    int64_t produce_next_deadline;
    struct read_cache cache;
    struct reader reader;        /* remote stores: reads off the loop */
    bool reader_started;
    struct read_failure read_failures[READ_FAILURES];
    int next_read_failure;
    struct fetch_waiter *waiters;
    int worker_id;
    int64_t next_hwm_poll_ms;    /* waiting fetches re-check offsets other workers committed */
    struct membership members;   /* the group's live workers: who serves which slot */
    struct member_info self;
    membership_cb on_membership;  /* the worker's: reports the membership to the supervisor */
    void *on_membership_arg;
    int64_t next_heartbeat_ms;
    bool heartbeat_inflight;
    uint64_t heartbeats;
    bool draining;
    struct group_parked group_parked;
    struct authz authz;          /* the ACLs, in memory */
    struct lifecycle lifecycle;
};

/* Handlers, one per API (api_*.c). */
void handle_api_versions(struct broker *b, struct request *rq);
void handle_metadata(struct broker *b, struct request *rq);
void handle_produce(struct broker *b, struct request *rq);
void handle_fetch(struct broker *b, struct request *rq);
void handle_delete_records(struct broker *b, struct request *rq);
void handle_list_offsets(struct broker *b, struct request *rq);
void handle_create_topics(struct broker *b, struct request *rq);
void handle_delete_topics(struct broker *b, struct request *rq);
void handle_find_coordinator(struct broker *b, struct request *rq);
void handle_join_group(struct broker *b, struct request *rq);
void handle_sync_group(struct broker *b, struct request *rq);
void handle_heartbeat(struct broker *b, struct request *rq);
void handle_leave_group(struct broker *b, struct request *rq);
void handle_offset_commit(struct broker *b, struct request *rq);
void handle_offset_fetch(struct broker *b, struct request *rq);
void handle_list_groups(struct broker *b, struct request *rq);
void handle_describe_groups(struct broker *b, struct request *rq);
void handle_delete_groups(struct broker *b, struct request *rq);
void handle_offset_delete(struct broker *b, struct request *rq);
void handle_describe_configs(struct broker *b, struct request *rq);
void handle_alter_configs(struct broker *b, struct request *rq);
void handle_incremental_alter_configs(struct broker *b, struct request *rq);
void handle_create_partitions(struct broker *b, struct request *rq);
void handle_describe_cluster(struct broker *b, struct request *rq);
/* The brokers Metadata advertises to this client (metadata.c). */
void metadata_fill_brokers(struct broker *b, struct request *rq, struct metadata_response *resp);
void handle_init_producer_id(struct broker *b, struct request *rq);
void handle_describe_producers(struct broker *b, struct request *rq);
void handle_create_acls(struct broker *b, struct request *rq);
void handle_describe_acls(struct broker *b, struct request *rq);
void handle_delete_acls(struct broker *b, struct request *rq);
void handle_describe_user_scram_credentials(struct broker *b, struct request *rq); /* scram_admin.c */
void handle_alter_user_scram_credentials(struct broker *b, struct request *rq);

/* The served API table (broker.c): key, version range, handler. */
struct api_handler {
    int16_t key;
    int16_t max_ver;              /* min is always 0: librdkafka enables compression and groups only then */
    void (*fn)(struct broker *b, struct request *rq);
};
extern const struct api_handler api_handlers[];
extern const int api_handlers_len;

/* Allocates a zeroed array of n T in the request's arena. */
#define RQ_ALLOC(rq, T, n) ((T *)arena_alloc(&(rq)->arena, sizeof(T) * (size_t)((n) > 0 ? (n) : 1)))
/* A NUL-terminated copy of a kstr in the request's arena. */
static inline const char *rq_cstr(struct request *rq, struct kstr s)
{
    return arena_strndup(&rq->arena, s.len > 0 ? s.ptr : "", s.len > 0 ? (size_t)s.len : 0);
}
static inline struct kstr kstr_c(const char *s)
{
    return (struct kstr){s, s ? (int32_t)__builtin_strlen(s) : -1};
}

#endif
