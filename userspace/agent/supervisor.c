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
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/report.h"
#include "agent/steering.h"
#include "cluster/membership.h"
#include "cluster/slots.h"
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
        sigprocmask(SIG_SETMASK, &none, NULL);
        close(pipefd[0]);
        for (int i = 0; i < sv->n; i++)
            if (sv->w[i].report_fd >= 0)
                close(sv->w[i].report_fd);
        _exit(worker_run(sv->cfg, id, sv->steer, pipefd[1]));
    }
    close(pipefd[1]);
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

int agent_run(const struct config *cfg)
{
    if (check_stores(cfg) != 0)
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

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
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
        struct pollfd pfds[1 + STEER_MAX_WORKERS];
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
                if (si.ssi_signo == SIGCHLD) {
                    int status;
                    pid_t pid;
                    while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
                        on_worker_exit(&sv, pid, status);
                }
            }
        }
        for (int p = 1; p < np; p++)
            if (pfds[p].revents)
                on_worker_report(&sv, ids[p]);
        now = mono_ms();
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
    free(sv.w);
    close(sfd);
    log_info("supervisor: all workers stopped, exiting");
    return sv.exit_status;
}
