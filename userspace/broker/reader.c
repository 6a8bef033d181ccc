#include "broker/reader.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/server.h"
#include "util/log.h"

static void *reader_main(void *arg)
{
    struct reader *r = arg;
    pthread_mutex_lock(&r->mu);
    for (;;) {
        while (!r->todo_head && !r->stop)
            pthread_cond_wait(&r->cv, &r->mu);
        if (r->stop)
            break;
        struct read_job *j = r->todo_head;
        r->todo_head = j->next;
        if (!r->todo_head)
            r->todo_tail = NULL;
        pthread_mutex_unlock(&r->mu);

        j->error = objstore_get_range(r->objects, j->key, j->pos, j->len, &j->data) != 0 || j->data.len != j->len
                       ? -1
                       : 0;

        pthread_mutex_lock(&r->mu);
        j->next = r->done_head;
        r->done_head = j;
        server_wakeup(r->srv);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

int reader_start(struct reader *r, struct objstore *objects, struct server *srv)
{
    memset(r, 0, sizeof(*r));
    r->objects = objects;
    r->srv = srv;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    for (int i = 0; i < READER_THREADS; i++) {
        if (pthread_create(&r->threads[i], NULL, reader_main, r) != 0) {
            log_error("cannot start reader thread %d", i);
            reader_stop(r);
            return -1;
        }
        r->nthreads++;
    }
    return 0;
}

void read_job_free(struct read_job *j)
{
    buf_free(&j->data);
    free(j->waiters);
    free(j);
}

void reader_stop(struct reader *r)
{
    pthread_mutex_lock(&r->mu);
    r->stop = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    for (int i = 0; i < r->nthreads; i++)
        pthread_join(r->threads[i], NULL);
    r->nthreads = 0;
    /* Whatever is left was never handed back: free it (the requests are gone with the loop). */
    for (struct read_job *j = r->inflight, *next; j; j = next) {
        next = j->inflight_next;
        read_job_free(j);
    }
    r->inflight = r->todo_head = r->todo_tail = r->done_head = NULL;
}

static void add_waiter(struct read_job *j, struct request *rq)
{
    for (int i = 0; i < j->nwaiters; i++)
        if (j->waiters[i] == rq)
            return;
    if (j->nwaiters == j->cap_waiters) {
        j->cap_waiters = j->cap_waiters ? 2 * j->cap_waiters : 4;
        j->waiters = realloc(j->waiters, sizeof(*j->waiters) * (size_t)j->cap_waiters);
        if (!j->waiters)
            abort();
    }
    j->waiters[j->nwaiters++] = rq;
    rq->reads_pending++;
}

void reader_request(struct reader *r, const char *key, uint64_t pos, uint32_t len, struct request *rq)
{
    for (struct read_job *j = r->inflight; j; j = j->inflight_next)
        if (j->pos == pos && j->len == len && !strcmp(j->key, key)) {
            add_waiter(j, rq);
            return;
        }
    struct read_job *j = calloc(1, sizeof(*j));
    if (!j)
        abort();
    snprintf(j->key, sizeof(j->key), "%s", key);
    j->pos = pos;
    j->len = len;
    add_waiter(j, rq);
    j->inflight_next = r->inflight;
    r->inflight = j;
    pthread_mutex_lock(&r->mu);
    if (r->todo_tail)
        r->todo_tail->next = j;
    else
        r->todo_head = j;
    r->todo_tail = j;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

struct read_job *reader_take_done(struct reader *r)
{
    pthread_mutex_lock(&r->mu);
    struct read_job *done = r->done_head;
    r->done_head = NULL;
    pthread_mutex_unlock(&r->mu);
    for (struct read_job *j = done; j; j = j->next) {
        struct read_job **pp = &r->inflight;
        while (*pp != j)
            pp = &(*pp)->inflight_next;
        *pp = j->inflight_next;
    }
    return done;
}
