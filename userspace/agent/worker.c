/* One worker process: its listeners, its broker (produce buffer, flusher thread, read cache) and
 * its io_uring loop. */
#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/report.h"
#include "broker/broker.h"
#include "cluster/membership.h"
#include "metrics/metrics.h"
#include "server/server.h"
#include "steer/steer.h"
#include "util/log.h"

struct worker {
    struct server srv;
    struct steer *steer;
    int id;
    int report_fd;         /* to the supervisor (agent/report.h) */
    uint64_t reported;     /* hash of the last membership reported */
    bool too_many_logged;
};

/* Keeps the kernel's bootstrap choice (least-loaded worker) and the connections gauge current. */
static void publish_load(struct server *s, void *arg)
{
    struct worker *w = arg;
    metrics_set(M_CONNECTIONS, s->nconns);
    if (w->steer)
        steer_set_worker_load(w->steer, (uint32_t)w->id, (uint32_t)s->nconns);
}

/* The group's membership, as this worker's heartbeat just read it, goes to the supervisor, which
 * programs XDP forwarding from it; only when it changed. A full socket drops this report: the next
 * heartbeat sends again. */
static void report_membership(const struct membership *ms, void *arg)
{
    struct worker *w = arg;
    if (ms->n > REPORT_MAX_MEMBERS) {
        if (!w->too_many_logged)
            log_error("worker %d: %d members in the agent group: XDP forwarding handles at most %d", w->id, ms->n,
                      REPORT_MAX_MEMBERS);
        w->too_many_logged = true;
        return;
    }
    size_t len = sizeof(struct report_header) + (size_t)ms->n * sizeof(struct report_member);
    uint8_t *msg = calloc(1, len);
    if (!msg)
        return;
    struct report_header *h = (struct report_header *)msg;
    h->type = REPORT_MEMBERS;
    h->count = (uint32_t)ms->n;
    struct report_member *m = (struct report_member *)(h + 1);
    for (int i = 0; i < ms->n; i++) {
        m[i].id_hash = ms->ids[i];
        if (inet_pton(AF_INET, ms->members[i].fwd_addr, &m[i].fwd_ip4) != 1)
            m[i].fwd_ip4 = 0;
    }
    uint64_t hash = 14695981039346656037ULL; /* FNV-1a: did anything change? */
    for (size_t i = 0; i < len; i++)
        hash = (hash ^ msg[i]) * 1099511628211ULL;
    if (hash != w->reported && send(w->report_fd, msg, len, MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)len)
        w->reported = hash;
    free(msg);
}

static void pin_to_core(int id)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (ncpu < 1)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET((int)(id % ncpu), &set);
    if (sched_setaffinity(0, sizeof(set), &set) != 0)
        log_warn("worker %d: cannot pin to core %ld: %s", id, id % ncpu, strerror(errno));
}

/* Steering on: one listener on an ephemeral port; the kernel hands it every connection meant for
 * this worker. Steering off: every worker binds the bootstrap and all slot ports with SO_REUSEPORT. */
/* Memory per worker stays bounded by the settings, not by glibc's habits: each of the worker's
 * threads (store, reader, flusher, checker) would get its own arena that keeps what it once held,
 * and the mmap threshold would grow with every large free until megabyte buffers live in the heap
 * and are never given back. Two arenas, and buffers of 1 MiB and more mapped and unmapped (below
 * that, reused from the heap: a fresh mapping costs its page faults every time). */
static void bound_heap(void)
{
    mallopt(M_ARENA_MAX, 2);
    mallopt(M_MMAP_THRESHOLD, 1024 * 1024);
    mallopt(M_TRIM_THRESHOLD, 1024 * 1024);
}

static int open_listeners(const struct config *cfg, struct worker *w, int **fds_out)
{
    int n = w->steer ? 1 : 1 + cfg->slots;
    int *fds = calloc((size_t)n, sizeof(int));
    if (!fds)
        return -1;
    /* With XDP forwarding, connections for other hosts' addresses arrive here (see steer/forward.c). */
    struct listen_options lo = {.transparent = cfg->xdp_interface[0] != 0, .max_segment = cfg->tcp_max_segment};
    if (w->steer) {
        fds[0] = server_listen(cfg->bind_host, 0, &lo);
        if (fds[0] < 0 || steer_set_worker_socket(w->steer, (uint32_t)w->id, fds[0]) != 0) {
            free(fds);
            return -1;
        }
    } else {
        for (int i = 0; i < n; i++) {
            lo.reuseport = true;
            fds[i] = server_listen(cfg->bind_host, i == 0 ? cfg->kafka_port : cfg->slot_port_base + i - 1, &lo);
            if (fds[i] < 0) {
                while (i-- > 0)
                    close(fds[i]);
                free(fds);
                return -1;
            }
        }
    }
    *fds_out = fds;
    return n;
}

int worker_run(const struct config *cfg, int id, struct steer *steer, int report_fd)
{
    /* A worker never outlives its supervisor. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() == 1)
        return 1;
    struct worker w = {.steer = steer, .id = id, .report_fd = report_fd};
    metrics_attach_worker(id);
    pin_to_core(id);
    bound_heap();

    struct broker *b = broker_create(cfg, &w.srv, id);
    if (!b)
        return 1;
    int *fds;
    int n = open_listeners(cfg, &w, &fds);
    if (n < 0) {
        broker_destroy(b);
        return 1;
    }
    if (server_init(&w.srv, cfg, id, fds, n) != 0) {
        free(fds);
        broker_destroy(b);
        return 1;
    }
    free(fds);
    broker_started(b);
    w.srv.conns_changed = publish_load;
    w.srv.conns_changed_arg = &w;
    publish_load(&w.srv, &w);
    log_info("worker %d (pid %d) serving", id, (int)getpid());
    struct report_header ready = {.type = REPORT_READY};
    if (send(report_fd, &ready, sizeof(ready), MSG_NOSIGNAL) != (ssize_t)sizeof(ready))
        log_warn("worker %d: cannot tell the supervisor it is ready: %s", id, strerror(errno));
    if (cfg->xdp_interface[0])
        broker_on_membership(b, report_membership, &w);

    int rc = server_run(&w.srv);
    broker_destroy(b);
    server_destroy(&w.srv);
    close(report_fd);
    return rc ? 1 : 0;
}
