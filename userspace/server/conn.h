/* One client connection: receive buffer, frame splitting, replies sent in arrival order, sends.
 * Knows nothing of Kafka: a frame is a 4-byte big-endian length and that many bytes. */
#ifndef SLUICE_CONN_H
#define SLUICE_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "server/server.h"
#include "util/buf.h"

/* A connection answers frames strictly in arrival order, whatever order the application finishes
 * them in: each frame gets a reply slot in the connection's queue, and a finished slot is sent
 * once every earlier one is. */
enum reply_state { REPLY_PENDING, REPLY_READY, REPLY_NONE };

/* Bytes sent from memory outside a reply's buffer (a fetch answer's records), inserted at offset
 * `at` of the buffer: large answers go to the socket without being copied into it. */
struct reply_span {
    size_t at;
    const uint8_t *ptr;
    size_t len;
};
#define REPLY_SPANS_MAX 64

struct reply {
    struct conn *conn;
    struct reply *next;
    enum reply_state state;
    struct buf bytes;              /* REPLY_READY: what to send */
    struct reply_span spans[REPLY_SPANS_MAX];
    int nspans;
    struct buf_mem *owned;         /* memory the spans point into, freed once sent */
    int nowned;
};

/* The send queue: pieces of replies, in order. The last piece of a reply carries it (`done`), so
 * the reply's memory is freed only when every byte of it has been sent. */
struct out_seg {
    const uint8_t *ptr;
    size_t len;
    struct reply *done;
    void *owned;                   /* malloc'd memory of this piece alone (TLS ciphertext), freed once sent */
};
#define SEND_IOV_MAX 64

struct conn {
    struct server *srv;
    int fd;
    uint64_t id;
    char peer[64];                 /* "1.2.3.4:5" or "[::1]:5" */
    int local_port;                /* the port the client dialled: bootstrap or a slot's */
    struct buf in;                 /* received bytes; in_off = start of the unparsed part */
    size_t in_off;
    struct out_seg *segs;          /* the send queue; segs[seg_head] is sent first */
    int seg_head, nsegs, seg_cap;
    size_t seg_off;                /* bytes of segs[seg_head] already sent */
    size_t unsent;                 /* bytes in the queue */
    struct iovec iov[SEND_IOV_MAX]; /* of the in-flight send */
    struct msghdr msg;
    struct io_op recv_op, send_op;
    bool recv_busy, send_busy, closing;
    bool held;                     /* the application asked to stop reading (back-pressure) */
    bool parsing;                  /* in parse_frames: a reply finished meanwhile must not re-enter it */
    int refs;                      /* 1 while open + ops in flight + pending replies */
    int pending;                   /* replies not finished yet */
    struct reply *head, *tail;
    struct conn *prev, *next;      /* the server's list */
    void *app_data;                /* the application's, per connection */
    struct tls_conn *tls;          /* NULL: plaintext */
    uint8_t *tls_rx;               /* TLS: ciphertext is received here, decrypted into `in` */
    size_t tls_rx_cap;
    int64_t accepted_ms;           /* TLS: the handshake must finish within TLS_HANDSHAKE_TIMEOUT_MS */
    void *sasl;                    /* the broker's SASL state of the connection (broker/sasl.c) */
};

#define TLS_HANDSHAKE_TIMEOUT_MS 10000

struct conn *conn_new(struct server *s, int fd);
void conn_on_recv(struct conn *c, int res);
void conn_on_send(struct conn *c, int res);
/* Closes after logging why (NULL: quietly, e.g. the peer closed). Pending replies are still
 * completed by the application, and then discarded. */
void conn_close(struct conn *c, const char *why);
/* At exit: frees a connection whatever its state (no more completions will come). */
void conn_destroy(struct conn *c);
/* TLS: closes c if its handshake has not finished in time. */
void conn_check_handshake(struct conn *c, int64_t now_ms);
/* "User:<subject CN>" of the client certificate a TLS connection was verified with, or NULL. */
const char *conn_tls_principal(const struct conn *c);

/* The application keeps c (a pointer to it stays valid) across a call that may finish its last
 * reply, until conn_release. */
void conn_keep(struct conn *c);
void conn_release(struct conn *c);

/* The application stops reading this connection's frames (its buffers are full) until released;
 * the client is slowed by TCP's flow control, not refused. */
void conn_hold(struct conn *c, bool hold);

/* Finishing a reply: its bytes (taken from *bytes, which is left empty), or nothing at all. Either
 * may free the connection (when it closed and this was its last reply). */
void reply_send(struct reply *r, struct buf *bytes);
/* The same, with spans (at most REPLY_SPANS_MAX, in increasing `at`) sent from their own memory,
 * and the malloc'd blocks they point into (taken over, freed once sent). */
void reply_send_spans(struct reply *r, struct buf *bytes, const struct reply_span *spans, int nspans,
                      struct buf_mem *owned, int nowned);
void reply_none(struct reply *r);
bool reply_conn_open(const struct reply *r);

#endif
