#include "broker/store_jobs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/server.h"
#include "util/log.h"

struct thread_arg {
    struct store_jobs *q;
    struct metastore *m;
};

static void *store_main(void *arg)
{
    struct thread_arg *ta = arg;
    struct store_jobs *q = ta->q;
    struct metastore *m = ta->m;
    free(ta);
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (!q->todo_head && !q->stop)
            pthread_cond_wait(&q->cv, &q->mu);
        if (q->stop)
            break;
        struct store_job *j = q->todo_head;
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

int store_jobs_start(struct store_jobs *q, const struct config *cfg, struct server *srv, char *err, size_t errlen)
{
    memset(q, 0, sizeof(*q));
    q->srv = srv;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    for (int i = 0; i < STORE_THREADS; i++) {
        struct metastore *m = metastore_open(cfg->metadata_url, err, errlen);
        struct thread_arg *ta = m ? calloc(1, sizeof(*ta)) : NULL;
        if (!ta) {
            if (m)
                metastore_close(m);
            store_jobs_stop(q);
            return -1;
        }
        *ta = (struct thread_arg){q, m};
        q->handles[i] = m;
        if (pthread_create(&q->threads[i], NULL, store_main, ta) != 0) {
            snprintf(err, errlen, "cannot start a store thread");
            free(ta);
            metastore_close(m);
            q->handles[i] = NULL;
            store_jobs_stop(q);
            return -1;
        }
        q->nthreads++;
    }
    return 0;
}

static void cancel_list(struct store_job *j)
{
    while (j) {
        struct store_job *next = j->next;
        j->done(NULL, j);
        j = next;
    }
}

void store_jobs_stop(struct store_jobs *q)
{
    pthread_mutex_lock(&q->mu);
    q->stop = true;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    for (int i = 0; i < q->nthreads; i++)
        pthread_join(q->threads[i], NULL);
    for (int i = 0; i < STORE_THREADS; i++)
        if (q->handles[i])
            metastore_close(q->handles[i]);
    q->nthreads = 0;
    cancel_list(q->done_head);
    cancel_list(q->todo_head);
    q->done_head = q->done_tail = q->todo_head = q->todo_tail = NULL;
    q->inflight = 0;
}

void store_jobs_submit(struct store_jobs *q, struct store_job *job)
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

void store_jobs_submit_first(struct store_jobs *q, struct store_job *job)
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

void store_jobs_complete(struct store_jobs *q, struct broker *b)
{
    pthread_mutex_lock(&q->mu);
    struct store_job *done = q->done_head;
    q->done_head = q->done_tail = NULL;
    pthread_mutex_unlock(&q->mu);
    while (done) {
        struct store_job *next = done->next;
        q->inflight--;
        done->done(b, done);
        done = next;
    }
}
