/* The event loop: one io_uring per process; accepts connections, reads frames, writes responses,
 * and runs the broker's timers and thread notifications. */
#ifndef SLUICE_SERVER_H
#define SLUICE_SERVER_H

#include <liburing.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"

struct broker;
struct conn;

enum op_kind { OP_ACCEPT, OP_RECV, OP_SEND, OP_EVENTFD, OP_WATCH };

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
    struct broker *broker;
    int worker_id;                 /* which worker of the agent this loop is (logs, object keys) */
    struct listener *listeners;
    int nlisteners;
    int event_fd;                  /* written by other threads to wake the loop */
    uint64_t event_value;
    struct io_op event_op;
    uint64_t next_conn_id;
    int nconns;
    struct conn *conns;            /* every open or closing connection */
    int sends_in_flight;           /* responses being written: the drain waits for them */
    bool draining;
    /* Called whenever the number of open connections changes (steering keeps the kernel's
     * least-loaded choice current). */
    void (*conns_changed)(struct server *s, void *arg);
    void *conns_changed_arg;
    /* One extra fd the loop watches for readability (the metadata store's notification socket). */
    struct io_op watch_op;
    bool watch_armed;
    bool watch_cancelling;         /* the fd changed: the old poll is being removed */
    int watch_fd;
    void (*watch_cb)(struct server *s, void *arg);
    void *watch_arg;
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
/* Takes ownership of the listening fds. */
int server_init(struct server *s, const struct config *cfg, struct broker *b, int worker_id, const int *listen_fds,
                int nlisteners);
/* Runs until SIGTERM/SIGINT, then drains the broker and returns. */
int server_run(struct server *s);
void server_destroy(struct server *s);
/* An io_uring submission slot (submits pending ones first if the ring is full). */
struct io_uring_sqe *server_sqe(struct server *s);
/* Calls cb (in the loop) once fd becomes readable; one-shot: call again to keep watching. */
void server_watch_fd(struct server *s, int fd, void (*cb)(struct server *s, void *arg), void *arg);
/* Wakes the loop from another thread: the broker's on_wakeup runs in the loop. */
void server_wakeup(struct server *s);

#endif
