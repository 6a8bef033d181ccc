#include "broker/notify.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "server/server.h"
#include "util/log.h"

/* How long the thread waits between tries while the store is unreachable, and at most on its socket
 * (so that a reconnect is noticed). */
#define RETRY_MS 200
#define WAIT_MS 1000

static void *notify_main(void *arg)
{
    struct notify_watch *nw = arg;
    for (;;) {
        int fd = metastore_notify_fd(nw->m);
        struct pollfd p[2] = {{.fd = nw->stop_fd, .events = POLLIN}, {.fd = fd, .events = POLLIN}};
        int r = poll(p, fd >= 0 ? 2 : 1, fd >= 0 ? WAIT_MS : RETRY_MS);
        if (r < 0 && errno != EINTR)
            break;
        if (p[0].revents)
            break;
        if (fd < 0)
            continue;
        if (metastore_consume_notifications(nw->m) > 0) {
            atomic_store(&nw->announced, 1);
            server_wakeup(nw->srv);
        }
    }
    return NULL;
}

int notify_start(struct notify_watch *nw, const struct config *cfg, struct server *srv, char *err, size_t errlen)
{
    memset(nw, 0, sizeof(*nw));
    nw->stop_fd = -1;
    nw->srv = srv;
    nw->m = metastore_open(cfg->metadata_url, err, errlen);
    if (!nw->m)
        return -1;
    if (metastore_notify_fd(nw->m) < 0) { /* no notifications here (SQLite): the loop polls */
        metastore_close(nw->m);
        nw->m = NULL;
        return 0;
    }
    nw->stop_fd = eventfd(0, EFD_CLOEXEC);
    if (nw->stop_fd < 0 || pthread_create(&nw->thread, NULL, notify_main, nw) != 0) {
        snprintf(err, errlen, "cannot start the notification thread: %s", strerror(errno));
        notify_stop(nw);
        return -1;
    }
    nw->started = true;
    return 0;
}

void notify_stop(struct notify_watch *nw)
{
    if (nw->started) {
        uint64_t one = 1;
        if (write(nw->stop_fd, &one, sizeof(one)) != sizeof(one))
            log_warn("notify: cannot stop the notification thread: %s", strerror(errno));
        pthread_join(nw->thread, NULL);
        nw->started = false;
    }
    if (nw->stop_fd >= 0)
        close(nw->stop_fd);
    nw->stop_fd = -1;
    if (nw->m)
        metastore_close(nw->m);
    nw->m = NULL;
}

bool notify_take(struct notify_watch *nw)
{
    return atomic_exchange(&nw->announced, 0) != 0;
}
