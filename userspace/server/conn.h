/* One client connection: receive buffer, frame splitting, the in-order request queue, sends. */
#ifndef SLUICE_CONN_H
#define SLUICE_CONN_H

#include <stdbool.h>
#include <stdint.h>

#include "server/request.h"
#include "server/server.h"
#include "util/buf.h"

struct conn {
    struct server *srv;
    int fd;
    uint64_t id;
    char peer[64];
    int local_port;                /* the port the client dialled: bootstrap or a slot's */
    struct buf in;                 /* received bytes; in_off = start of the unparsed part */
    size_t in_off;
    struct buf out;                /* bytes handed to the in-flight send (must not move) */
    size_t out_off;
    struct buf out_next;           /* responses ready while a send is in flight */
    struct io_op recv_op, send_op;
    bool recv_busy, send_busy, closing;
    int refs;                      /* 1 while open + ops in flight + queued requests */
    struct request *head, *tail;
    struct conn *prev, *next;      /* the server's list */
};

struct conn *conn_new(struct server *s, int fd);
void conn_on_recv(struct conn *c, int res);
void conn_on_send(struct conn *c, int res);
/* Moves finished responses at the head of the queue to the socket. */
void conn_flush(struct conn *c);
/* Closes after logging why (NULL: quietly, e.g. the peer closed). */
void conn_close(struct conn *c, const char *why);
/* At exit: frees a connection whatever its state (no more completions will come). */
void conn_destroy(struct conn *c);

#endif
