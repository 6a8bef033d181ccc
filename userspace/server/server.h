/* The event loop: one io_uring per process; accepts connections, splits what they send into frames
 * and writes replies, runs timers and wakes up for other threads. It knows nothing of Kafka: the
 * application (the broker) plugs in through a small table of callbacks, as in Redis's ae.c. */
#ifndef SLUICE_SERVER_H
#define SLUICE_SERVER_H

#include <liburing.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "server/tls.h"
#include "util/buf.h"

struct conn;
struct reply;

/* What the application does with the loop's events. Every callback runs on the loop thread. */
struct server_app {
    void *ctx;
    /* A whole frame arrived on c (frame: its 4-byte length prefix, then its bytes; the application
     * takes the buffer over, leaving *frame empty). It must finish `reply` (reply_send or
     * reply_none), now or later. */
    void (*frame)(void *ctx, struct conn *c, struct reply *reply, struct buf *frame);
    /* c is closing: work parked for it can be dropped (its replies are discarded anyway). */
    void (*conn_closed)(void *ctx, struct conn *c);
    /* Timers: the earliest monotonic deadline (ms) the application needs a tick at, or INT64_MAX. */
    int64_t (*next_deadline)(void *ctx);
    void (*tick)(void *ctx, int64_t now_ms);
    /* Another thread called server_wakeup. */
    void (*wakeup)(void *ctx);
    /* SIGTERM: stop taking work; drained() says when nothing is left in flight. */
    void (*begin_drain)(void *ctx);
    bool (*drained)(void *ctx);
};

enum op_kind { OP_ACCEPT, OP_RECV, OP_SEND, OP_EVENTFD };

/* Every submission's user_data points at one of these. */
struct io_op {
    enum op_kind kind;
    void *owner;
};

#define SERVER_MAX_LISTENERS 4097 /* bootstrap + every slot port (steering off) */

struct listener {
    int fd;
    struct io_op accept_op;
};

struct server {
    struct io_uring ring;
    const struct config *cfg;
    struct server_app app;
    int worker_id;                 /* which worker of the agent this loop is (logs, object keys) */
    struct listener *listeners;
    int nlisteners;
    int event_fd;                  /* written by other threads to wake the loop */
    uint64_t event_value;
    struct io_op event_op;
    uint64_t next_conn_id;
    int nconns;
    int closed_since_trim;         /* connections closed since memory was last given back */
    int64_t trimmed_ms;
    struct conn *conns;            /* every open or closing connection */
    int sends_in_flight;           /* responses being written: the drain waits for them */
    bool draining;
    /* Called whenever the number of open connections changes (steering keeps the kernel's
     * least-loaded choice current). */
    void (*conns_changed)(struct server *s, void *arg);
    void *conns_changed_arg;
    SSL_CTX *tls_ctx;              /* tls-enabled: new connections' context (swapped on SIGHUP) */
    int64_t tls_scan_ms;           /* next look for handshakes that take too long */
};

struct listen_options {
    bool reuseport;   /* SO_REUSEPORT: the port is shared with the other workers (steering off) */
    bool transparent; /* IP_TRANSPARENT: accepts connections XDP forwarded here for another host's
                         address, and answers them from that address (direct server return) */
    int max_segment;  /* TCP_MAXSEG advertised to clients (0: the route's): room for IPIP headers */
};

/* Opens a listening TCP socket (SO_REUSEADDR and the options). "::" listens dual-stack (IPv4
 * clients too). Returns the fd or -1 (one log line). */
int server_listen(const char *host, int port, const struct listen_options *o);
/* Takes ownership of the listening fds. The app's callbacks may be set later (server_set_app),
 * before server_run. */
int server_init(struct server *s, const struct config *cfg, int worker_id, const int *listen_fds, int nlisteners);
void server_set_app(struct server *s, const struct server_app *app);
/* Runs until SIGTERM/SIGINT, then drains the application and returns. */
int server_run(struct server *s);
/* One turn of the loop: timers, a wait of at most max_wait_ms (INT64_MAX: until the next deadline
 * or event), the completions. server_run is these turns; a test harness may drive them itself.
 * 0, or -1 if the ring failed. */
int server_turn(struct server *s, int64_t max_wait_ms);
void server_destroy(struct server *s);
/* From now on SIGHUP asks server_run for server_reload_tls (a worker calls it before it can
 * receive signals, so that a reload asked while it starts is not lost). */
void server_catch_reload(void);
/* SIGHUP: loads the TLS certificate and key again for new connections; existing ones keep theirs.
 * A failed load logs one line and keeps the old context. */
void server_reload_tls(struct server *s);
/* An io_uring submission slot (submits pending ones first if the ring is full). */
struct io_uring_sqe *server_sqe(struct server *s);
/* Wakes the loop from another thread: the application's wakeup callback runs in the loop. */
void server_wakeup(struct server *s);

#endif
