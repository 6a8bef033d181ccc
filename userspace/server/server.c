#include "server/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/conn.h"
#include "util/clock.h"
#include "util/log.h"

#define TRIM_AFTER_CLOSES 32
#define TRIM_INTERVAL_MS 200

/* How long SIGTERM waits for buffered produce data to be stored and answered. */
#define DRAIN_TIMEOUT_MS 30000

/* How often connections are checked for a TLS handshake that takes too long. */
#define TLS_SCAN_INTERVAL_MS 1000

static volatile sig_atomic_t stop_requested, reload_requested;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void on_reload_signal(int sig)
{
    (void)sig;
    reload_requested = 1;
}

int server_listen(const char *host, int port, const struct listen_options *o)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *res;
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%d", port);
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc) {
        log_error("cannot resolve listen address %s: %s", host, gai_strerror(rc));
        return -1;
    }
    int family = res->ai_family;
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1, zero = 0;
    const char *what = "socket";
    bool ok = fd >= 0;
    if (ok && !(ok = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0))
        what = "SO_REUSEADDR";
    /* Like Kafka's default listener: :: serves IPv4 clients too, whatever net.ipv6.bindv6only says. */
    if (ok && family == AF_INET6 && !(ok = setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)) == 0))
        what = "IPV6_V6ONLY";
    if (ok && o->reuseport && !(ok = setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == 0))
        what = "SO_REUSEPORT";
    if (ok && o->transparent &&
        !(ok = setsockopt(fd, family == AF_INET6 ? IPPROTO_IPV6 : IPPROTO_IP,
                          family == AF_INET6 ? IPV6_TRANSPARENT : IP_TRANSPARENT, &one, sizeof(one)) == 0))
        what = "IP_TRANSPARENT (needs CAP_NET_ADMIN)";
    if (ok && o->max_segment > 0 &&
        !(ok = setsockopt(fd, IPPROTO_TCP, TCP_MAXSEG, &o->max_segment, sizeof(o->max_segment)) == 0))
        what = "TCP_MAXSEG";
    if (ok && !(ok = bind(fd, res->ai_addr, res->ai_addrlen) == 0))
        what = "bind";
    if (ok && !(ok = listen(fd, 4096) == 0))
        what = "listen";
    if (!ok) {
        log_error("cannot listen on %s port %d: %s: %s", host, port, what, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    return fd;
}

struct io_uring_sqe *server_sqe(struct server *s)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
    if (!sqe) {
        io_uring_submit(&s->ring);
        sqe = io_uring_get_sqe(&s->ring);
    }
    if (!sqe) {
        log_error("io_uring submission queue stuck full");
        abort();
    }
    return sqe;
}

static void submit_accept(struct server *s, struct listener *l)
{
    struct io_uring_sqe *sqe = server_sqe(s);
    io_uring_prep_multishot_accept(sqe, l->fd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data(sqe, &l->accept_op);
}

static void submit_event_read(struct server *s)
{
    struct io_uring_sqe *sqe = server_sqe(s);
    io_uring_prep_read(sqe, s->event_fd, &s->event_value, sizeof(s->event_value), 0);
    io_uring_sqe_set_data(sqe, &s->event_op);
}

void server_wakeup(struct server *s)
{
    uint64_t one = 1;
    ssize_t n = write(s->event_fd, &one, sizeof(one));
    (void)n; /* a full counter still wakes the reader */
}

void server_set_app(struct server *s, const struct server_app *app)
{
    s->app = *app;
}

int server_init(struct server *s, const struct config *cfg, int worker_id, const int *listen_fds, int nlisteners)
{
    memset(s, 0, sizeof(*s));
    s->cfg = cfg;
    s->worker_id = worker_id;
    s->event_op = (struct io_op){OP_EVENTFD, s};
    s->listeners = calloc((size_t)nlisteners, sizeof(*s->listeners));
    if (!s->listeners)
        return -1;
    s->nlisteners = nlisteners;
    for (int i = 0; i < nlisteners; i++) {
        s->listeners[i].fd = listen_fds[i];
        s->listeners[i].accept_op = (struct io_op){OP_ACCEPT, &s->listeners[i]};
    }
    struct io_uring_params params = {0};
    params.flags = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN;
    int rc = io_uring_queue_init_params(4096, &s->ring, &params);
    if (rc < 0) {
        log_error("io_uring setup failed: %s", strerror(-rc));
        return -1;
    }
    if (cfg->tls_enabled) {
        char err[1024];
        s->tls_ctx = tls_ctx_load(cfg, err, sizeof(err));
        if (!s->tls_ctx) {
            log_error("TLS: %s", err);
            return -1;
        }
    }
    s->event_fd = eventfd(0, EFD_CLOEXEC);
    if (s->event_fd < 0) {
        log_error("eventfd: %s", strerror(errno));
        return -1;
    }
    for (int i = 0; i < nlisteners; i++)
        submit_accept(s, &s->listeners[i]);
    submit_event_read(s);
    return 0;
}

static void on_accept(struct server *s, struct listener *l, struct io_uring_cqe *cqe)
{
    if (!(cqe->flags & IORING_CQE_F_MORE) && !s->draining)
        submit_accept(s, l); /* multishot ended (e.g. error); re-arm */
    if (cqe->res < 0) {
        if (cqe->res != -ECANCELED)
            log_warn("accept failed: %s", strerror(-cqe->res));
        return;
    }
    int fd = cqe->res;
    if (s->draining) {
        close(fd);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (!conn_new(s, fd)) {
        log_warn("out of memory accepting a connection");
        close(fd);
        return;
    }
    if (s->conns_changed)
        s->conns_changed(s, s->conns_changed_arg);
}

static void handle_cqe(struct server *s, struct io_uring_cqe *cqe)
{
    struct io_op *op = io_uring_cqe_get_data(cqe);
    if (!op)
        return;
    switch (op->kind) {
    case OP_ACCEPT:
        on_accept(s, op->owner, cqe);
        break;
    case OP_RECV:
        conn_on_recv(op->owner, cqe->res);
        break;
    case OP_SEND:
        conn_on_send(op->owner, cqe->res);
        break;
    case OP_EVENTFD:
        submit_event_read(s);
        s->app.wakeup(s->app.ctx);
        break;
    }
}

static void start_drain(struct server *s)
{
    s->draining = true;
    log_info("stop requested: no new connections, finishing what is in flight");
    for (int i = 0; i < s->nlisteners; i++) {
        struct io_uring_sqe *sqe = server_sqe(s);
        io_uring_prep_cancel(sqe, &s->listeners[i].accept_op, 0);
        io_uring_sqe_set_data(sqe, NULL);
        close(s->listeners[i].fd);
        s->listeners[i].fd = -1;
    }
    s->app.begin_drain(s->app.ctx);
}

int server_turn(struct server *s, int64_t max_wait_ms)
{
    int64_t now = mono_ms();
    /* Many clients just left (a storm of connections, long polls abandoned): their buffers are
     * free, give the memory back to the system rather than keep it in the heap. */
    if (s->closed_since_trim >= TRIM_AFTER_CLOSES && now - s->trimmed_ms >= TRIM_INTERVAL_MS) {
        malloc_trim(0);
        s->closed_since_trim = 0;
        s->trimmed_ms = now;
    }
    s->app.tick(s->app.ctx, now);
    if (s->tls_ctx && now >= s->tls_scan_ms) {
        for (struct conn *c = s->conns, *next; c; c = next) {
            next = c->next;
            conn_check_handshake(c, now);
        }
        s->tls_scan_ms = now + TLS_SCAN_INTERVAL_MS;
    }
    int64_t deadline = s->app.next_deadline(s->app.ctx);
    if (s->tls_ctx && s->tls_scan_ms < deadline)
        deadline = s->tls_scan_ms;
    if (s->closed_since_trim >= TRIM_AFTER_CLOSES && s->trimmed_ms + TRIM_INTERVAL_MS < deadline)
        deadline = s->trimmed_ms + TRIM_INTERVAL_MS; /* the trim waits for its interval, not for traffic */
    if (max_wait_ms != INT64_MAX && deadline > now + max_wait_ms)
        deadline = now + max_wait_ms;
    struct io_uring_cqe *cqe;
    int rc;
    if (deadline == INT64_MAX) {
        rc = io_uring_submit_and_wait(&s->ring, 1);
    } else {
        int64_t wait = deadline - now;
        if (wait < 0)
            wait = 0;
        struct __kernel_timespec ts = {.tv_sec = wait / 1000, .tv_nsec = (wait % 1000) * 1000000};
        rc = io_uring_submit_and_wait_timeout(&s->ring, &cqe, 1, &ts, NULL);
    }
    if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
        log_error("io_uring wait failed: %s", strerror(-rc));
        return -1;
    }
    unsigned head, n = 0;
    io_uring_for_each_cqe(&s->ring, head, cqe)
    {
        handle_cqe(s, cqe);
        n++;
    }
    io_uring_cq_advance(&s->ring, n);
    return 0;
}

void server_catch_reload(void)
{
    struct sigaction sa = {0};
    sa.sa_handler = on_reload_signal;
    sigaction(SIGHUP, &sa, NULL);
}

int server_run(struct server *s)
{
    struct sigaction sa = {0};
    sa.sa_handler = on_stop_signal; /* no SA_RESTART: the wait returns EINTR */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    server_catch_reload();
    signal(SIGPIPE, SIG_IGN);

    int64_t drain_deadline = INT64_MAX;
    for (;;) {
        if (reload_requested) {
            reload_requested = 0;
            server_reload_tls(s);
        }
        if (stop_requested && !s->draining) {
            start_drain(s);
            drain_deadline = mono_ms() + DRAIN_TIMEOUT_MS;
        }
        /* Done when nothing is buffered or in flight and the last answers have been written. */
        if (s->draining && s->app.drained(s->app.ctx) && s->sends_in_flight == 0 && !io_uring_sq_ready(&s->ring))
            break;
        if (s->draining && mono_ms() > drain_deadline) {
            log_warn("drain did not finish within %d ms; exiting anyway", DRAIN_TIMEOUT_MS);
            break;
        }
        if (server_turn(s, s->draining ? 50 : INT64_MAX) < 0)
            return -1;
    }
    log_info("drained, exiting");
    return 0;
}

void server_reload_tls(struct server *s)
{
    if (!s->tls_ctx)
        return;
    char err[1024];
    SSL_CTX *fresh = tls_ctx_load(s->cfg, err, sizeof(err));
    if (!fresh) {
        log_error("worker %d: TLS reload failed, keeping the previous certificate: %s", s->worker_id, err);
        return;
    }
    /* Connections hold their own reference to the old context: they keep it until they close. */
    tls_ctx_free(s->tls_ctx);
    s->tls_ctx = fresh;
    log_info("worker %d: TLS certificate reloaded", s->worker_id);
}

void server_destroy(struct server *s)
{
    s->conns_changed = NULL;
    while (s->conns)
        conn_destroy(s->conns);
    for (int i = 0; i < s->nlisteners; i++)
        if (s->listeners[i].fd >= 0)
            close(s->listeners[i].fd);
    free(s->listeners);
    close(s->event_fd);
    tls_ctx_free(s->tls_ctx);
    io_uring_queue_exit(&s->ring);
}
