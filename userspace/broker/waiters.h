/* The requests waiting for one thing done on another thread (a store job, an object read). Each
 * counts once in its reads_pending; releasing the list resumes those that wait for nothing else. */
#ifndef SLUICE_WAITERS_H
#define SLUICE_WAITERS_H

struct broker;
struct request;

struct waiters {
    struct request **v;
    int n, cap;
};

void waiters_add(struct waiters *w, struct request *rq);
void waiters_release(struct broker *b, struct waiters *w);
/* Moves from's requests into `into` (each still waits once); from ends empty. */
void waiters_move(struct waiters *into, struct waiters *from);
/* One thing rq waited for is done: once it waits for nothing, its resume() runs. */
void broker_release(struct broker *b, struct request *rq);

#endif
