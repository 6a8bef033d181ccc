/* Commits by other processes, announced by the metadata store (PostgreSQL LISTEN/NOTIFY): a thread
 * of its own waits on the store's socket, reconnecting when it must, and wakes the loop, which then
 * polls the offsets its waiting fetches need. A store without notifications (SQLite) starts no
 * thread: the loop polls on its own timer. */
#ifndef SLUICE_NOTIFY_H
#define SLUICE_NOTIFY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "storage/metastore.h"

struct server;

struct notify_watch {
    pthread_t thread;
    bool started;
    struct metastore *m;         /* the thread's own handle */
    int stop_fd;                 /* eventfd: tells the thread to end */
    struct server *srv;
    atomic_int announced;        /* commits announced since the loop last looked */
};

/* 0 (the thread runs, or the store has no notifications), or -1 with one line in err. */
int notify_start(struct notify_watch *nw, const struct config *cfg, struct server *srv, char *err, size_t errlen);
void notify_stop(struct notify_watch *nw);
/* Loop thread: were commits announced since the last call? */
bool notify_take(struct notify_watch *nw);

#endif
