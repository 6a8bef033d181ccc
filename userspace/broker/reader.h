/* Reader threads: object range reads from remote stores (S3) happen here, never on the event loop.
 * The loop asks for a chunk; if it is not cached, a job is queued (one per distinct range, however
 * many requests want it), the requests park, and when the job completes the bytes go into the read
 * cache and every parked request resumes. */
#ifndef SLUICE_READER_H
#define SLUICE_READER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "broker/request.h"
#include "storage/objstore.h"
#include "util/buf.h"

#define READER_THREADS 4

struct read_job {
    char key[128];
    uint64_t pos;
    uint32_t len;
    struct buf data;                 /* filled by a reader thread */
    int error;                       /* 0 or -1 */
    struct request **waiters;        /* loop thread only */
    int nwaiters, cap_waiters;
    struct read_job *next;           /* todo / done queue */
    struct read_job *inflight_next;  /* the loop's list of unfinished jobs */
};

struct reader {
    pthread_t threads[READER_THREADS];
    int nthreads;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct read_job *todo_head, *todo_tail;
    struct read_job *done_head;
    bool stop;
    struct objstore *objects;        /* thread-safe backend */
    struct server *srv;              /* woken when jobs complete */
    struct read_job *inflight;       /* loop thread: jobs not yet taken back */
};

int reader_start(struct reader *r, struct objstore *objects, struct server *srv);
void reader_stop(struct reader *r);
/* Loop thread: makes rq wait for the range (queues a job unless one is in flight). */
void reader_request(struct reader *r, const char *key, uint64_t pos, uint32_t len, struct request *rq);
/* Loop thread: completed jobs, removed from the in-flight list. */
struct read_job *reader_take_done(struct reader *r);
void read_job_free(struct read_job *j);

#endif
