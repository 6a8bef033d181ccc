/* Metadata-store calls, off the event loop. The loop never waits on the store: what it needs from
 * there (a topic it has not seen, a partition's offsets, the chunks holding some offsets, a new
 * topic, a heartbeat) is a job that one of these threads runs on its own store handle; the result
 * comes back to the loop, which applies it and resumes the requests that waited for it.
 *
 *   loop:   job = calloc(...); job->run = ...; job->done = ...; store_jobs_submit(q, &job->base);
 *   thread: job->run(job, metastore)                  (blocks on the store as long as it takes)
 *   loop:   job->done(broker, job)                    (applies the result, resumes, frees the job)
 *
 * At exit the jobs still queued or done get done(NULL, job): they free themselves and nothing else. */
#ifndef SLUICE_STORE_JOBS_H
#define SLUICE_STORE_JOBS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "storage/metastore.h"

struct broker;
struct server;
struct store_job;

typedef void (*store_job_run)(struct store_job *job, struct metastore *m);
typedef void (*store_job_done)(struct broker *b, struct store_job *job);

struct store_job {
    store_job_run run;
    store_job_done done;
    struct store_job *next;
};

#define STORE_THREADS 2

struct store_jobs {
    pthread_t threads[STORE_THREADS];
    struct metastore *handles[STORE_THREADS];
    int nthreads;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct store_job *todo_head, *todo_tail;
    struct store_job *done_head, *done_tail;
    bool stop;
    struct server *srv;          /* woken when jobs are done */
    int inflight;                /* loop thread: submitted and not yet done */
};

/* Opens one store handle per thread and starts them. 0, or -1 with one line in err. */
int store_jobs_start(struct store_jobs *q, const struct config *cfg, struct server *srv, char *err, size_t errlen);
/* Stops the threads (after the job each is running), then gives every job left done(NULL, job). */
void store_jobs_stop(struct store_jobs *q);
/* Loop thread: queues a job (FIFO). */
void store_jobs_submit(struct store_jobs *q, struct store_job *job);
/* Loop thread: queues a job ahead of all waiting ones (heartbeats: a queue of slow reads must not
 * make this worker look dead). */
void store_jobs_submit_first(struct store_jobs *q, struct store_job *job);
/* Loop thread: runs done() of every finished job. */
void store_jobs_complete(struct store_jobs *q, struct broker *b);

#endif
