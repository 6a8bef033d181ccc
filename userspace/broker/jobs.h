/* Work off the event loop: a pool of threads running jobs the loop hands them. The loop never
 * waits on a store or burns its time on heavy work: what it needs from the metadata store (a topic
 * it has not seen, a partition's offsets, the chunks holding some offsets, a new topic, a
 * heartbeat) or what costs CPU (decompressing produced batches to validate them) is a job that a
 * thread runs; the result comes back to the loop, which applies it and resumes the requests that
 * waited for it.
 *
 *   loop:   job = calloc(...); job->run = ...; job->done = ...; jobs_submit(q, &job->base);
 *   thread: job->run(job, metastore)                  (blocks as long as it takes)
 *   loop:   job->done(broker, job)                    (applies the result, resumes, frees the job)
 *
 * A pool opened with a metadata-store URL gives each thread its own store handle (run's m); one
 * without passes NULL. A pool of one thread runs its jobs in order. At exit the jobs still queued or
 * done get done(NULL, job): they free themselves and nothing else. */
#ifndef SLUICE_JOBS_H
#define SLUICE_JOBS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "storage/metastore.h"

struct broker;
struct server;
struct job;

typedef void (*job_run_fn)(struct job *job, struct metastore *m);
typedef void (*job_done_fn)(struct broker *b, struct job *job);

struct job {
    job_run_fn run;
    job_done_fn done;
    struct job *next;
};

#define JOBS_MAX_THREADS 4

struct jobs {
    pthread_t threads[JOBS_MAX_THREADS];
    struct metastore *handles[JOBS_MAX_THREADS];
    int nthreads;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct job *todo_head, *todo_tail;
    struct job *done_head, *done_tail;
    bool stop;
    struct server *srv;          /* woken when jobs are done */
    int inflight;                /* loop thread: submitted and not yet done */
};

/* Starts nthreads threads (at most JOBS_MAX_THREADS), each with a handle on the metadata store at
 * metadata_url if that is not NULL. 0, or -1 with one line in err. */
int jobs_start(struct jobs *q, int nthreads, const char *metadata_url, struct server *srv, char *err,
               size_t errlen);
/* Stops the threads (after the job each is running), then gives every job left done(NULL, job). */
void jobs_stop(struct jobs *q);
/* Loop thread: queues a job (FIFO). */
void jobs_submit(struct jobs *q, struct job *job);
/* Loop thread: queues a job ahead of all waiting ones (heartbeats: a queue of slow reads must not
 * make this worker look dead). */
void jobs_submit_first(struct jobs *q, struct job *job);
/* Loop thread: runs done() of every finished job. */
void jobs_complete(struct jobs *q, struct broker *b);

#endif
