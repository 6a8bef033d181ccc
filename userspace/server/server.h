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

enum op_kind { OP_ACCEPT, OP_RECV, OP_SEND, OP_EVENTFD };

/* Every submission's user_data points at one of these. */
struct io_op {
    enum op_kind kind;
    void *owner;
};

struct server {
    struct io_uring ring;
    const struct config *cfg;
    struct broker *broker;
    int listen_fd;
    struct io_op accept_op;
    int event_fd;                  /* written by other threads to wake the loop */
    uint64_t event_value;
    struct io_op event_op;
    uint64_t next_conn_id;
    int nconns;
    struct conn *conns;            /* every open or closing connection */
    int sends_in_flight;           /* responses being written: the drain waits for them */
    bool draining;
};

int server_init(struct server *s, const struct config *cfg, struct broker *b);
/* Runs until SIGTERM/SIGINT, then drains the broker and returns. */
int server_run(struct server *s);
void server_destroy(struct server *s);
/* An io_uring submission slot (submits pending ones first if the ring is full). */
struct io_uring_sqe *server_sqe(struct server *s);
/* Wakes the loop from another thread: the broker's on_wakeup runs in the loop. */
void server_wakeup(struct server *s);

#endif
