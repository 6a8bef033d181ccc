#include "server/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/tls.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/netaddr.h"

/* Between frames a connection keeps only a small receive buffer (thousands of idle clients cost
 * little); inside a frame it reads what the frame still needs, at most RECV_MAX at a time, so the
 * buffer grows as the frame's bytes arrive, never ahead of them: a length prefix alone reserves
 * nothing. */
#define RECV_IDLE 4096
#define RECV_MAX (1024 * 1024)
#define RECV_EXACT_MIN (64 * 1024)
/* Frames of one connection waiting for their replies: beyond this, it is not read (TCP's flow
 * control slows the client), like Kafka's queued.max.requests. */
#define MAX_PENDING_REPLIES 128
/* Reply bytes waiting for the socket: beyond this, the connection is not read either. */
#define MAX_UNSENT_BYTES (16u << 20)
/* TLS: ciphertext received at a time. Small while the connection is quiet (idle clients cost
 * little), a whole TLS record (16 KiB + overhead) once a receive has filled it. */
#define TLS_RX_IDLE 4096
#define TLS_RX_MAX (17 * 1024)

static void reply_free(struct reply *r)
{
    buf_free(&r->bytes);
    for (int i = 0; i < r->nowned; i++)
        buf_mem_release(&r->owned[i]);
    free(r->owned);
    free(r);
}

static void push_seg(struct conn *c, const uint8_t *ptr, size_t len, struct reply *done)
{
    if (c->seg_head + c->nsegs == c->seg_cap) {
        if (c->seg_head > 0) { /* slide the queue to the front before growing it */
            memmove(c->segs, c->segs + c->seg_head, sizeof(*c->segs) * (size_t)c->nsegs);
            c->seg_head = 0;
        }
        if (c->nsegs == c->seg_cap) {
            c->seg_cap = c->seg_cap ? 2 * c->seg_cap : 16;
            c->segs = realloc(c->segs, sizeof(*c->segs) * (size_t)c->seg_cap);
            if (!c->segs)
                abort();
        }
    }
    c->segs[c->seg_head + c->nsegs++] = (struct out_seg){ptr, len, done, NULL};
    c->unsent += len;
}

/* TLS: the ciphertext OpenSSL produced (handshake messages, encrypted replies) joins the queue. */
static void push_tls_output(struct conn *c)
{
    size_t len = 0;
    uint8_t *p = tls_conn_take_output(c->tls, &len);
    if (!p)
        return;
    if (len == 0) {
        free(p);
        return;
    }
    push_seg(c, p, len, NULL);
    c->segs[c->seg_head + c->nsegs - 1].owned = p;
}

/* TLS: a reply's pieces smaller than this are gathered before encryption, so that a fetch answer's
 * small headers between its record spans do not each become a TLS record of their own. */
#define TLS_GATHER_MAX 4096

/* Encrypts one piece of a reply, in order: a small one is gathered (while the gathered bytes stay
 * small), otherwise what was gathered goes first. len 0 encrypts what is still gathered. */
static int tls_put_piece(struct conn *c, struct buf *gather, const uint8_t *p, size_t len, char *why, size_t whylen)
{
    if (len > 0 && len < TLS_GATHER_MAX && gather->len + len <= 4 * TLS_GATHER_MAX) {
        buf_append(gather, p, len);
        return 0;
    }
    if (gather->len > 0) {
        if (tls_conn_write(c->tls, gather->data, gather->len, why, whylen) != 0)
            return -1;
        buf_reset(gather);
    }
    if (len >= TLS_GATHER_MAX)
        return tls_conn_write(c->tls, p, len, why, whylen);
    if (len > 0)
        buf_append(gather, p, len);
    return 0;
}

/* TLS: a ready reply's pieces (its buffer cut at its spans) are encrypted into one ciphertext
 * segment; the plaintext is freed at once. */
static void queue_reply_tls(struct conn *c, struct reply *r)
{
    static struct buf gather; /* the loop's thread only; kept for the next reply */
    char why[256];
    size_t from = 0;
    int rc = 0;
    buf_reset(&gather);
    for (int i = 0; i < r->nspans && rc == 0; i++) {
        const struct reply_span *sp = &r->spans[i];
        if (sp->at > from)
            rc = tls_put_piece(c, &gather, r->bytes.data + from, sp->at - from, why, sizeof(why));
        if (rc == 0)
            rc = tls_put_piece(c, &gather, sp->ptr, sp->len, why, sizeof(why));
        from = sp->at;
    }
    if (rc == 0 && r->bytes.len > from)
        rc = tls_put_piece(c, &gather, r->bytes.data + from, r->bytes.len - from, why, sizeof(why));
    if (rc == 0)
        rc = tls_put_piece(c, &gather, NULL, 0, why, sizeof(why)); /* what is still gathered */
    reply_free(r);
    if (rc != 0) {
        conn_close(c, why);
        return;
    }
    push_tls_output(c);
}

/* A ready reply joins the send queue without being copied: its buffer cut at its spans. */
static void queue_reply(struct conn *c, struct reply *r)
{
    if (c->tls) {
        queue_reply_tls(c, r);
        return;
    }
    size_t from = 0;
    for (int i = 0; i < r->nspans; i++) {
        const struct reply_span *sp = &r->spans[i];
        if (sp->at > from)
            push_seg(c, r->bytes.data + from, sp->at - from, NULL);
        push_seg(c, sp->ptr, sp->len, NULL);
        from = sp->at;
    }
    push_seg(c, r->bytes.data + from, r->bytes.len - from, r);
}

/* Frees what the first `n` bytes of the queue were (sent, or dropped at close). */
static void pop_sent(struct conn *c, size_t n)
{
    c->unsent -= n;
    while (c->nsegs > 0) {
        struct out_seg *sg = &c->segs[c->seg_head];
        size_t left = sg->len - c->seg_off;
        if (n < left) {
            c->seg_off += n;
            return;
        }
        n -= left;
        if (sg->done)
            reply_free(sg->done);
        free(sg->owned);
        c->seg_head++;
        c->nsegs--;
        c->seg_off = 0;
    }
    c->seg_head = 0;
}

void conn_destroy(struct conn *c)
{
    if (c->tls && !c->closing && c->unsent == 0 && tls_conn_established(c->tls)) {
        /* The worker exits with the connection open: say goodbye as TLS expects (best effort). */
        size_t len = 0;
        tls_conn_close_notify(c->tls);
        uint8_t *bye = tls_conn_take_output(c->tls, &len);
        if (bye && len && send(c->fd, bye, len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
            log_debug("cannot send close_notify to %s: %s", c->peer, strerror(errno));
        free(bye);
    }
    while (c->head) {
        struct reply *r = c->head;
        c->head = r->next;
        reply_free(r);
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        c->srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    close(c->fd);
    c->srv->nconns--;
    c->srv->closed_since_trim++;
    if (c->srv->conns_changed)
        c->srv->conns_changed(c->srv, c->srv->conns_changed_arg);
    buf_free(&c->in);
    pop_sent(c, c->unsent);
    free(c->segs);
    tls_conn_free(c->tls);
    free(c->tls_rx);
    free(c);
}

static void conn_unref(struct conn *c)
{
    if (--c->refs == 0)
        conn_destroy(c);
}

/* May the connection take more frames now? */
static bool accepting(const struct conn *c)
{
    return !c->closing && !c->held && c->pending < MAX_PENDING_REPLIES && c->unsent < MAX_UNSENT_BYTES;
}

static void submit_recv(struct conn *c)
{
    if (c->recv_busy || !accepting(c))
        return;
    /* Compact consumed bytes away before reading more. */
    if (c->in_off) {
        buf_consume(&c->in, c->in_off);
        c->in_off = 0;
    }
    size_t want = RECV_IDLE, limit = 0;
    if (c->in.len == 0 && c->in.cap > RECV_IDLE) {
        buf_free(&c->in); /* between frames: give a big buffer back */
    } else if (c->in.len >= 4) {
        size_t frame = 4 + (size_t)be32_get(c->in.data);
        if (frame > c->in.len)
            want = frame - c->in.len < RECV_MAX ? frame - c->in.len : RECV_MAX;
        /* A large frame is read exactly to its end, so that the buffer can become the request
         * without a copy (parse_frames). */
        if (frame > c->in.len && frame >= RECV_EXACT_MIN)
            limit = want;
    }
    struct io_uring_sqe *sqe = server_sqe(c->srv);
    if (c->tls) {
        /* Ciphertext goes to its own buffer; conn_on_recv decrypts it into `in`. */
        io_uring_prep_recv(sqe, c->fd, c->tls_rx, c->tls_rx_cap, 0);
    } else {
        buf_reserve(&c->in, want);
        size_t len = c->in.cap - c->in.len;
        if (limit && len > limit)
            len = limit;
        io_uring_prep_recv(sqe, c->fd, c->in.data + c->in.len, len, 0);
    }
    io_uring_sqe_set_data(sqe, &c->recv_op);
    c->recv_busy = true;
    c->refs++;
}

static void submit_send(struct conn *c)
{
    if (c->send_busy || c->unsent == 0)
        return;
    int n = 0;
    for (int i = 0; i < c->nsegs && n < SEND_IOV_MAX; i++) {
        const struct out_seg *sg = &c->segs[c->seg_head + i];
        size_t skip = i == 0 ? c->seg_off : 0;
        if (sg->len > skip)
            c->iov[n++] = (struct iovec){(void *)(sg->ptr + skip), sg->len - skip};
    }
    c->msg = (struct msghdr){.msg_iov = c->iov, .msg_iovlen = (size_t)n};
    struct io_uring_sqe *sqe = server_sqe(c->srv);
    io_uring_prep_sendmsg(sqe, c->fd, &c->msg, MSG_NOSIGNAL);
    io_uring_sqe_set_data(sqe, &c->send_op);
    c->send_busy = true;
    c->srv->sends_in_flight++;
    c->refs++;
}

struct conn *conn_new(struct server *s, int fd)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->srv = s;
    c->fd = fd;
    c->id = ++s->next_conn_id;
    c->refs = 1;
    c->recv_op = (struct io_op){OP_RECV, c};
    c->send_op = (struct io_op){OP_SEND, c};
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0)
        sockaddr_format(&ss, c->peer, sizeof(c->peer));
    else
        snprintf(c->peer, sizeof(c->peer), "?");
    sl = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        c->local_port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                                 : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    log_debug("worker %d accepted %s on port %d", s->worker_id, c->peer, c->local_port);
    if (s->tls_ctx) {
        c->tls = tls_conn_new(s->tls_ctx, c->peer);
        c->tls_rx_cap = TLS_RX_IDLE;
        c->tls_rx = malloc(c->tls_rx_cap);
        c->accepted_ms = mono_ms();
        if (!c->tls || !c->tls_rx) {
            tls_conn_free(c->tls);
            free(c->tls_rx);
            free(c);
            return NULL;
        }
    }
    s->nconns++;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    submit_recv(c);
    return c;
}

void conn_close(struct conn *c, const char *why)
{
    if (c->closing)
        return;
    if (why)
        log_warn("closing connection %s: %s", c->peer, why);
    c->closing = true;
    /* shutdown completes the in-flight recv/send; the fd is closed when the last ref goes. */
    shutdown(c->fd, SHUT_RDWR);
    c->refs++; /* the application's callback may finish replies: keep c until it returns */
    if (c->srv->app.conn_closed)
        c->srv->app.conn_closed(c->srv->app.ctx, c);
    conn_unref(c);
    conn_unref(c);
}

/* Splits complete frames off the receive buffer and hands each to the application, while the
 * connection accepts more. */
static void parse_frames(struct conn *c)
{
    if (c->parsing)
        return; /* a frame's handler answered at once: the loop below goes on with the next frame */
    c->parsing = true;
    c->refs++;
    const struct config *cfg = c->srv->cfg;
    while (accepting(c) && c->in.len - c->in_off >= 4) {
        const uint8_t *p = c->in.data + c->in_off;
        int32_t size = (int32_t)be32_get(p);
        if (size < 0 || size > cfg->max_request_bytes) {
            char why[128];
            snprintf(why, sizeof(why), "request length %d is outside 0..%lld (max-request-bytes)", size,
                     (long long)cfg->max_request_bytes);
            conn_close(c, why);
            break;
        }
        if (c->in.len - c->in_off < 4 + (size_t)size)
            break;
        struct reply *r = calloc(1, sizeof(*r));
        if (!r) {
            conn_close(c, "out of memory for a request");
            break;
        }
        struct buf frame;
        if (c->in_off == 0 && c->in.len == 4 + (size_t)size && !c->recv_busy) {
            /* The buffer holds this frame alone (the usual case for a large one, which is read
             * exactly to its end) and no receive is writing into it: hand the buffer over
             * instead of copying it. */
            frame = c->in;
            buf_init(&c->in);
        } else {
            buf_init(&frame);
            buf_append(&frame, p, 4 + (size_t)size);
            c->in_off += 4 + (size_t)size;
        }
        /* Queued first, so that replies keep arrival order whatever happens next. */
        r->conn = c;
        if (c->tail)
            c->tail->next = r;
        else
            c->head = r;
        c->tail = r;
        c->refs++;
        c->pending++;
        c->srv->app.frame(c->srv->app.ctx, c, r, &frame);
    }
    c->parsing = false;
    conn_unref(c);
}

/* TLS: decrypts what arrived into `in` and queues what OpenSSL answers (handshake messages).
 * A plaintext client, a failed handshake or a closed session closes c: -1. */
static int tls_received(struct conn *c, size_t n)
{
    char why[300];
    enum tls_input_result st = tls_conn_input(c->tls, c->tls_rx, n, &c->in, why, sizeof(why));
    if (n == c->tls_rx_cap && c->tls_rx_cap < TLS_RX_MAX) {
        /* Traffic: receive whole records from now on (no receive is in flight here). */
        uint8_t *bigger = realloc(c->tls_rx, TLS_RX_MAX);
        if (bigger) {
            c->tls_rx = bigger;
            c->tls_rx_cap = TLS_RX_MAX;
        }
    }
    if (st == TLS_OK) {
        push_tls_output(c);
        submit_send(c);
        return 0;
    }
    if (st == TLS_FAILED && !c->send_busy) {
        /* Best effort: the alert tells the client why before the connection goes. */
        size_t len = 0;
        uint8_t *alert = tls_conn_take_output(c->tls, &len);
        if (alert && len && send(c->fd, alert, len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
            log_debug("cannot send the TLS alert to %s: %s", c->peer, strerror(errno));
        free(alert);
    }
    if (st == TLS_PLAINTEXT) {
        log_warn("plaintext Kafka request on a TLS listener from %s: closing", c->peer);
        conn_close(c, NULL);
    } else if (st == TLS_FAILED) {
        conn_close(c, why);
    } else {
        conn_close(c, NULL);
    }
    return -1;
}

void conn_check_handshake(struct conn *c, int64_t now_ms)
{
    if (c->tls && !c->closing && !tls_conn_established(c->tls) &&
        now_ms - c->accepted_ms >= TLS_HANDSHAKE_TIMEOUT_MS)
        conn_close(c, "TLS handshake not finished within 10 s");
}

const char *conn_tls_principal(const struct conn *c)
{
    return c->tls ? tls_conn_principal(c->tls) : NULL;
}

void conn_on_recv(struct conn *c, int res)
{
    c->recv_busy = false;
    if (res <= 0 || c->closing) {
        if (res < 0 && !c->closing && res != -ECONNRESET)
            log_warn("recv from %s failed: %s", c->peer, strerror(-res));
        conn_close(c, NULL);
        conn_unref(c);
        return;
    }
    if (c->tls) {
        if (tls_received(c, (size_t)res) != 0) {
            conn_unref(c);
            return;
        }
    } else {
        c->in.len += (size_t)res;
    }
    parse_frames(c);
    submit_recv(c);
    conn_unref(c);
}

void conn_on_send(struct conn *c, int res)
{
    c->send_busy = false;
    c->srv->sends_in_flight--;
    if (res < 0) {
        if (!c->closing && res != -EPIPE && res != -ECONNRESET)
            log_warn("send to %s failed: %s", c->peer, strerror(-res));
        conn_close(c, NULL);
        conn_unref(c);
        return;
    }
    pop_sent(c, (size_t)res);
    if (!c->closing) {
        submit_send(c);
        /* Sent bytes may have been what held reading back. */
        parse_frames(c);
        submit_recv(c);
    }
    conn_unref(c);
}

/* Moves finished replies at the head of the queue to the socket. */
static void flush_replies(struct conn *c)
{
    while (c->head && c->head->state != REPLY_PENDING) {
        struct reply *r = c->head;
        c->head = r->next;
        if (!c->head)
            c->tail = NULL;
        if (r->state == REPLY_READY && !c->closing)
            queue_reply(c, r);
        else
            reply_free(r);
        c->refs--; /* cannot reach 0 here: the caller holds the connection */
    }
    if (!c->closing)
        submit_send(c);
}

static void reply_finish(struct reply *r, enum reply_state state)
{
    struct conn *c = r->conn;
    r->state = state;
    c->pending--;
    c->refs++;
    flush_replies(c);
    /* A reply finished: the connection may take the frames it held back. */
    if (!c->closing) {
        parse_frames(c);
        submit_recv(c);
    }
    conn_unref(c);
}

void reply_send(struct reply *r, struct buf *bytes)
{
    buf_free(&r->bytes);
    r->bytes = *bytes;
    buf_init(bytes);
    reply_finish(r, REPLY_READY);
}

void reply_send_spans(struct reply *r, struct buf *bytes, const struct reply_span *spans, int nspans,
                      struct buf_mem *owned, int nowned)
{
    memcpy(r->spans, spans, sizeof(*spans) * (size_t)nspans);
    r->nspans = nspans;
    r->owned = owned;
    r->nowned = nowned;
    reply_send(r, bytes);
}

void reply_none(struct reply *r)
{
    reply_finish(r, REPLY_NONE);
}

bool reply_conn_open(const struct reply *r)
{
    return !r->conn->closing;
}

void conn_keep(struct conn *c)
{
    c->refs++;
}

void conn_release(struct conn *c)
{
    conn_unref(c);
}

void conn_hold(struct conn *c, bool hold)
{
    if (c->held == hold)
        return;
    c->held = hold;
    if (!hold && !c->closing) {
        c->refs++;
        parse_frames(c);
        submit_recv(c);
        conn_unref(c);
    }
}
