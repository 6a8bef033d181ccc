/* Requests waiting for work on other threads: see waiters.h. */
#include "broker/waiters.h"

#include <stdlib.h>

#include "broker/request.h"

void waiters_add(struct waiters *w, struct request *rq)
{
    for (int i = 0; i < w->n; i++)
        if (w->v[i] == rq)
            return;
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 4;
        w->v = realloc(w->v, sizeof(*w->v) * (size_t)w->cap);
        if (!w->v)
            abort();
    }
    w->v[w->n++] = rq;
    rq->reads_pending++;
}

void waiters_release(struct broker *b, struct waiters *w)
{
    /* Take the list first: a resumed request may wait on this same thing again. */
    struct request **v = w->v;
    int n = w->n;
    *w = (struct waiters){0};
    for (int i = 0; i < n; i++)
        broker_release(b, v[i]);
    free(v);
}

void broker_release(struct broker *b, struct request *rq)
{
    if (--rq->reads_pending == 0 && rq->resume) {
        void (*resume)(void *, struct request *) = rq->resume;
        rq->resume = NULL;
        resume(b, rq);
    }
}

void waiters_move(struct waiters *into, struct waiters *from)
{
    for (int i = 0; i < from->n; i++) {
        struct request *rq = from->v[i];
        int before = rq->reads_pending;
        waiters_add(into, rq);
        /* moved: it waits as many times as before; already listed in `into`: once less */
        rq->reads_pending = rq->reads_pending > before ? before : before - 1;
    }
    free(from->v);
    *from = (struct waiters){0};
}
