/* The supervisor: forks the workers, keeps the kernel's steering current as workers come and go
 * and as they report the agent group's membership (agent/steering.c decides), restarts a worker
 * that dies, and on SIGTERM has every worker drain before it exits. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>

#include "server/server.h"
#include "server/tls.h"
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/http_server.h"
#include "agent/report.h"
#include "agent/steer_metrics.h"
#include "agent/steering.h"
#include "broker/broker_internal.h"
#include "cluster/membership.h"
#include "cluster/slots.h"
#include "metrics/metrics.h"
#include "steer/steer.h"
#include "storage/metastore.h"
#include "storage/objstore.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/netaddr.h"

/* A worker that dies sooner than this after starting is restarted only after this delay, so a
 * worker that cannot start does not spin. */
#define RESTART_BACKOFF_MS 1000
/* A worker that fails this many times in a row without ever serving means the agent cannot run. */
#define MAX_FAILED_STARTS 5

struct worker_slot {
    pid_t pid;                  /* 0: not running */
    int report_fd;              /* our end of the worker's report socket (agent/report.h); -1: closed */
    void *last_members;         /* its last REPORT_MEMBERS message */
    size_t last_members_len;
    bool live;                  /* ready and not dead: owns slots */
    int64_t started_ms;
    int64_t restart_at_ms;      /* 0: no restart pending */
    int failed_starts;          /* consecutive exits before becoming ready */
};

struct supervisor {
    const struct config *cfg;
    struct steering *steering;
    struct steer *steer;        /* its sk_lookup maps, which workers register with; NULL: steering off */
    struct worker_slot *w;
    int n;
    bool stopping;
    int exit_status;
    bool all_served_once;       /* "all workers serving" logged */
    int reporter;               /* the worker whose membership reports steer XDP: the lowest live one */
    struct http_server http;    /* /metrics and /v1/status; listen_fd -1: off */
};

static void publish_slot_owners(struct supervisor *sv)
{
    bool live[STEER_MAX_WORKERS];
    for (int i = 0; i < sv->n; i++)
        live[i] = sv->w[i].live;
    steering_workers_changed(sv->steering, live, sv->n);
}

/* Membership reports from one worker only, so that two workers' views, which differ for a moment
 * around a change, cannot make the table flap. When that worker dies, the next one's last report
 * takes over. */
static void elect_reporter(struct supervisor *sv)
{
    int r = -1;
    for (int i = 0; i < sv->n && r < 0; i++)
        if (sv->w[i].live)
            r = i;
    if (r != sv->reporter && r >= 0 && sv->w[r].last_members)
        steering_on_report(sv->steering, sv->w[r].last_members, sv->w[r].last_members_len);
    sv->reporter = r;
}

static int start_worker(struct supervisor *sv, int id)
{
    int pipefd[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pipefd) != 0) {
        log_error("supervisor: socketpair: %s", strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        log_error("supervisor: fork: %s", strerror(errno));
        close(pipefd[0]);
        close(pipefd[1]);
        return -1;
    }
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        server_catch_reload(); /* SIGHUP: reload TLS, even one that comes while the worker starts */
        sigprocmask(SIG_SETMASK, &none, NULL);
        close(pipefd[0]);
        for (int i = 0; i < sv->n; i++)
            if (sv->w[i].report_fd >= 0)
                close(sv->w[i].report_fd);
        http_server_close(&sv->http); /* the supervisor's sockets, not the worker's */
        _exit(worker_run(sv->cfg, id, sv->steer, pipefd[1]));
    }
    close(pipefd[1]);
    metrics_worker_started(id);
    free(sv->w[id].last_members);
    sv->w[id] = (struct worker_slot){.pid = pid, .report_fd = pipefd[0], .started_ms = mono_ms()};
    return 0;
}

static void close_report(struct supervisor *sv, int id)
{
    if (sv->w[id].report_fd >= 0)
        close(sv->w[id].report_fd);
    sv->w[id].report_fd = -1;
    free(sv->w[id].last_members);
    sv->w[id].last_members = NULL;
    sv->w[id].last_members_len = 0;
}

static void on_worker_ready(struct supervisor *sv, int id)
{
    sv->w[id].live = true;
    sv->w[id].failed_starts = 0;
    publish_slot_owners(sv);
    elect_reporter(sv);
    int live = 0;
    for (int i = 0; i < sv->n; i++)
        live += sv->w[i].live;
    if (live == sv->n && !sv->all_served_once) {
        sv->all_served_once = true;
        log_info("supervisor: all %d workers serving, slot owners published", sv->n);
    }
}

/* One message from a worker's report socket; its end of file when the worker is gone. */
static void on_worker_report(struct supervisor *sv, int id)
{
    static uint8_t msg[REPORT_MAX_BYTES];
    ssize_t n = recv(sv->w[id].report_fd, msg, sizeof(msg), MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n < (ssize_t)sizeof(struct report_header)) {
        close_report(sv, id); /* end of file (the worker exited; SIGCHLD says how) or garbage */
        return;
    }
    const struct report_header *h = (const struct report_header *)msg;
    if (h->type == REPORT_READY && !sv->w[id].live) {
        on_worker_ready(sv, id);
    } else if (h->type == REPORT_MEMBERS) {
        void *copy = malloc((size_t)n);
        if (!copy)
            return;
        memcpy(copy, msg, (size_t)n);
        free(sv->w[id].last_members);
        sv->w[id].last_members = copy;
        sv->w[id].last_members_len = (size_t)n;
        if (id == sv->reporter)
            steering_on_report(sv->steering, copy, (size_t)n);
    }
}

static void on_worker_exit(struct supervisor *sv, pid_t pid, int status)
{
    for (int id = 0; id < sv->n; id++) {
        if (sv->w[id].pid != pid)
            continue;
        bool was_live = sv->w[id].live;
        metrics_worker_exited(id);
        int failed_starts = was_live ? 0 : sv->w[id].failed_starts + 1;
        close_report(sv, id);
        int64_t ran = mono_ms() - sv->w[id].started_ms;
        sv->w[id] = (struct worker_slot){.report_fd = -1, .failed_starts = failed_starts};
        if (sv->stopping) {
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                log_warn("worker %d (pid %d) ended with status %d while draining", id, (int)pid, status);
            return;
        }
        if (WIFSIGNALED(status))
            log_error("worker %d (pid %d) killed by signal %d; restarting it", id, (int)pid, WTERMSIG(status));
        else
            log_error("worker %d (pid %d) exited with status %d; restarting it", id, (int)pid, WEXITSTATUS(status));
        /* Its slots move to the live workers at once; they come back when it is ready again. */
        if (sv->steer) {
            steer_clear_worker(sv->steer, (uint32_t)id);
            steer_set_worker_load(sv->steer, (uint32_t)id, 0);
        }
        if (was_live) {
            publish_slot_owners(sv);
            elect_reporter(sv);
        }
        if (failed_starts >= MAX_FAILED_STARTS) {
            log_error("worker %d failed %d times without starting; stopping the agent", id, failed_starts);
            sv->stopping = true;
            for (int i = 0; i < sv->n; i++)
                if (sv->w[i].pid > 0)
                    kill(sv->w[i].pid, SIGTERM);
            sv->exit_status = 1;
            return;
        }
        sv->w[id].restart_at_ms = mono_ms() + (ran < RESTART_BACKOFF_MS ? RESTART_BACKOFF_MS : 0);
        return;
    }
}

static int live_workers(const struct supervisor *sv)
{
    int live = 0;
    for (int i = 0; i < sv->n; i++)
        live += sv->w[i].live;
    return live;
}

/* GET /metrics and /v1/status. */
static int on_http(void *arg, const char *path, struct buf *body, const char **content_type)
{
    struct supervisor *sv = arg;
    int live = live_workers(sv);
    if (!strcmp(path, "/metrics")) {
        int16_t keys[METRICS_MAX_API_KEYS];
        int nkeys = 0;
        for (int i = 0; i < api_handlers_len && nkeys < METRICS_MAX_API_KEYS; i++)
            keys[nkeys++] = api_handlers[i].key;
        metrics_render(body, keys, nkeys);
        metrics_family(body, "sluice_worker_up", "gauge", "1 while the worker serves (owns slots)");
        for (int i = 0; i < sv->n; i++) {
            char labels[32];
            snprintf(labels, sizeof(labels), "worker=\"%d\"", i);
            metrics_sample(body, "sluice_worker_up", labels, sv->w[i].live);
        }
        metrics_family(body, "sluice_draining", "gauge", "1 once the agent was asked to stop");
        metrics_sample(body, "sluice_draining", "", sv->stopping);
        steer_metrics_render(sv->steering, sv->n, body);
        *content_type = "text/plain; version=0.0.4; charset=utf-8";
        return 200;
    }
    if (!strcmp(path, "/v1/status")) {
        bool ready = live == sv->n && !sv->stopping;
        char json[160];
        int n = snprintf(json, sizeof(json), "{\"status\":\"%s\",\"workers\":%d,\"workers_serving\":%d,"
                                             "\"draining\":%s}\n",
                         ready ? "ready" : sv->stopping ? "draining" : "starting", sv->n, live,
                         sv->stopping ? "true" : "false");
        buf_append(body, json, (size_t)n);
        *content_type = "application/json";
        return ready ? 200 : 503;
    }
    buf_append(body, "not found\n", 10);
    return 404;
}

static void open_http(struct supervisor *sv)
{
    sv->http.listen_fd = -1;
    for (int i = 0; i < HTTP_MAX_CONNS; i++)
        sv->http.conns[i].fd = -1;
    if (sv->cfg->http_port == 0)
        return;
    if (http_server_open(&sv->http, sv->cfg->http_host, sv->cfg->http_port, on_http, sv) != 0)
        log_warn("supervisor: cannot listen for HTTP on %s:%d (%s): /metrics and /v1/status are not served",
                 sv->cfg->http_host, sv->cfg->http_port, strerror(errno));
    else
        log_info("supervisor: /metrics and /v1/status at http://%s%s%s:%d/", strchr(sv->cfg->http_host, ':') ? "[" : "",
                 sv->cfg->http_host, strchr(sv->cfg->http_host, ':') ? "]" : "", sv->cfg->http_port);
}

/* Opens both stores once before any worker starts, so a bad URL or an unreachable store is one
 * clear error at start-up rather than workers failing one after the other. */
static int check_stores(const struct config *cfg)
{
    char err[512] = "";
    struct objstore *o = objstore_open(cfg->bucket_url, err, sizeof(err));
    if (!o) {
        log_error("object store %s: %s", cfg->bucket_url, err);
        return -1;
    }
    /* Opening an S3 store contacts nobody: write and delete a tiny object so that a wrong bucket,
     * endpoint or key is one clear error now, not failed produces later. */
    char key[96];
    snprintf(key, sizeof(key), "probe/%s", cfg->agent_id);
    int rc = objstore_put(o, key, "sluice", 6);
    if (rc == 0)
        objstore_delete(o, key);
    objstore_close(o);
    if (rc != 0) {
        log_error("object store %s: cannot write to it (see the line above)", cfg->bucket_url);
        return -1;
    }
    struct metastore *m = metastore_open(cfg->metadata_url, err, sizeof(err));
    if (!m) {
        log_error("metadata store %s: %s", cfg->metadata_url, err);
        return -1;
    }
    metastore_close(m);
    return 0;
}

/* Bad certificate or key files stop the agent before any worker starts, with one line. */
static int check_tls(const struct config *cfg)
{
    if (!cfg->tls_enabled)
        return 0;
    char err[1024];
    SSL_CTX *ctx = tls_ctx_load(cfg, err, sizeof(err));
    if (!ctx) {
        log_error("TLS: %s", err);
        return -1;
    }
    tls_ctx_free(ctx);
    return 0;
}

int agent_run(const struct config *cfg)
{
    if (check_tls(cfg) != 0 || check_stores(cfg) != 0)
        return 1;
    struct supervisor sv = {.cfg = cfg, .n = cfg->workers, .reporter = -1};
    sv.steering = steering_open(cfg);
    if (!sv.steering)
        return 1;
    sv.steer = steering_kernel(sv.steering);
    sv.w = calloc((size_t)sv.n, sizeof(*sv.w));
    if (!sv.w)
        return 1;
    for (int i = 0; i < sv.n; i++)
        sv.w[i].report_fd = -1;
    /* Before the first fork: every worker inherits the mapping of the counter blocks. */
    if (metrics_init(sv.n) != 0) {
        log_error("supervisor: cannot map the metrics blocks: %s", strerror(errno));
        return 1;
    }
    open_http(&sv);

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0) {
        log_error("supervisor: signalfd: %s", strerror(errno));
        return 1;
    }

    for (int i = 0; i < sv.n; i++)
        if (start_worker(&sv, i) != 0)
            return 1;
    log_info("supervisor: %d workers, %d slots at ports %d..%d, bootstrap port %d", sv.n, cfg->slots,
             cfg->slot_port_base, cfg->slot_port_base + cfg->slots - 1, cfg->kafka_port);

    int running = sv.n;
    while (running > 0) {
        struct pollfd pfds[1 + STEER_MAX_WORKERS + 1 + HTTP_MAX_CONNS];
        int ids[1 + STEER_MAX_WORKERS];
        int np = 0;
        pfds[np++] = (struct pollfd){.fd = sfd, .events = POLLIN};
        int64_t now = mono_ms(), wait = -1;
        int64_t tick = steering_tick(sv.steering, now);
        if (tick >= 0)
            wait = tick > now ? tick - now : 0;
        for (int i = 0; i < sv.n; i++) {
            if (sv.w[i].report_fd >= 0) {
                ids[np] = i;
                pfds[np++] = (struct pollfd){.fd = sv.w[i].report_fd, .events = POLLIN};
            }
            if (sv.w[i].restart_at_ms) {
                int64_t d = sv.w[i].restart_at_ms - now;
                wait = wait < 0 || d < wait ? (d < 0 ? 0 : d) : wait;
            }
        }
        int nworker_fds = np;
        int nhttp = http_server_pollfds(&sv.http, pfds + np);
        int64_t hd = http_server_next_deadline(&sv.http);
        if (hd >= 0)
            wait = wait < 0 || hd - now < wait ? (hd > now ? hd - now : 0) : wait;
        np += nhttp;
        if (poll(pfds, (nfds_t)np, (int)wait) < 0 && errno != EINTR) {
            log_error("supervisor: poll: %s", strerror(errno));
            break;
        }
        if (pfds[0].revents & POLLIN) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
                if ((si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) && !sv.stopping) {
                    log_info("supervisor: stop requested; workers drain");
                    sv.stopping = true;
                    for (int i = 0; i < sv.n; i++)
                        if (sv.w[i].pid > 0)
                            kill(sv.w[i].pid, SIGTERM);
                }
                if (si.ssi_signo == SIGHUP && !sv.stopping) {
                    /* Certificates are reloaded by each worker, for its new connections. */
                    log_info("supervisor: SIGHUP: workers reload their TLS certificates");
                    for (int i = 0; i < sv.n; i++)
                        if (sv.w[i].pid > 0)
                            kill(sv.w[i].pid, SIGHUP);
                }
                if (si.ssi_signo == SIGCHLD) {
                    int status;
                    pid_t pid;
                    while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
                        on_worker_exit(&sv, pid, status);
                }
            }
        }
        for (int p = 1; p < nworker_fds; p++)
            if (pfds[p].revents)
                on_worker_report(&sv, ids[p]);
        now = mono_ms();
        http_server_handle(&sv.http, pfds + nworker_fds, nhttp, now);
        running = 0;
        for (int i = 0; i < sv.n; i++) {
            if (!sv.stopping && sv.w[i].restart_at_ms && now >= sv.w[i].restart_at_ms) {
                sv.w[i].restart_at_ms = 0;
                start_worker(&sv, i);
            }
            running += sv.w[i].pid > 0 || (!sv.stopping && sv.w[i].restart_at_ms);
        }
    }
    /* Slots have no owner while the agent is down; the pinned maps and link stay for the next run.
     * XDP stops forwarding here and the AnyIP routes go. */
    steering_close(sv.steering);
    for (int i = 0; i < sv.n; i++)
        close_report(&sv, i);
    http_server_close(&sv.http);
    free(sv.w);
    close(sfd);
    log_info("supervisor: all workers stopped, exiting");
    return sv.exit_status;
}
