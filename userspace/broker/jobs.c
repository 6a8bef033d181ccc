#include "broker/jobs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/server.h"
#include "util/log.h"

struct thread_arg {
    struct jobs *q;
    struct metastore *m;
};

static void *jobs_main(void *arg)
{
    struct thread_arg *ta = arg;
    struct jobs *q = ta->q;
    struct metastore *m = ta->m;
    free(ta);
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (!q->todo_head && !q->stop)
            pthread_cond_wait(&q->cv, &q->mu);
        if (q->stop)
            break;
        struct job *j = q->todo_head;
        q->todo_head = j->next;
        if (!q->todo_head)
            q->todo_tail = NULL;
        pthread_mutex_unlock(&q->mu);

        j->run(j, m);

        pthread_mutex_lock(&q->mu);
        j->next = NULL;
        if (q->done_tail)
            q->done_tail->next = j;
        else
            q->done_head = j;
        q->done_tail = j;
        server_wakeup(q->srv);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

int jobs_start(struct jobs *q, int nthreads, const char *metadata_url, struct server *srv, char *err,
               size_t errlen)
{
    memset(q, 0, sizeof(*q));
    q->srv = srv;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    for (int i = 0; i < nthreads && i < JOBS_MAX_THREADS; i++) {
        struct metastore *m = NULL;
        if (metadata_url && !(m = metastore_open(metadata_url, err, errlen))) {
            jobs_stop(q);
            return -1;
        }
        struct thread_arg *ta = calloc(1, sizeof(*ta));
        if (!ta)
            abort();
        *ta = (struct thread_arg){q, m};
        q->handles[i] = m;
        if (pthread_create(&q->threads[i], NULL, jobs_main, ta) != 0) {
            snprintf(err, errlen, "cannot start a thread");
            free(ta);
            if (m)
                metastore_close(m);
            q->handles[i] = NULL;
            jobs_stop(q);
            return -1;
        }
        q->nthreads++;
    }
    return 0;
}

static void cancel_list(struct job *j)
{
    while (j) {
        struct job *next = j->next;
        j->done(NULL, j);
        j = next;
    }
}

void jobs_stop(struct jobs *q)
{
    pthread_mutex_lock(&q->mu);
    q->stop = true;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    for (int i = 0; i < q->nthreads; i++)
        pthread_join(q->threads[i], NULL);
    for (int i = 0; i < JOBS_MAX_THREADS; i++)
        if (q->handles[i])
            metastore_close(q->handles[i]);
    q->nthreads = 0;
    cancel_list(q->done_head);
    cancel_list(q->todo_head);
    q->done_head = q->done_tail = q->todo_head = q->todo_tail = NULL;
    q->inflight = 0;
}

void jobs_submit(struct jobs *q, struct job *job)
{
    job->next = NULL;
    q->inflight++;
    pthread_mutex_lock(&q->mu);
    if (q->todo_tail)
        q->todo_tail->next = job;
    else
        q->todo_head = job;
    q->todo_tail = job;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

void jobs_submit_first(struct jobs *q, struct job *job)
{
    q->inflight++;
    pthread_mutex_lock(&q->mu);
    job->next = q->todo_head;
    q->todo_head = job;
    if (!q->todo_tail)
        q->todo_tail = job;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

void jobs_complete(struct jobs *q, struct broker *b)
{
    pthread_mutex_lock(&q->mu);
    struct job *done = q->done_head;
    q->done_head = q->done_tail = NULL;
    pthread_mutex_unlock(&q->mu);
    while (done) {
        struct job *next = done->next;
        q->inflight--;
        done->done(b, done);
        done = next;
    }
}
