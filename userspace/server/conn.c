#include "server/conn.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker/broker.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/netaddr.h"

#define RECV_CHUNK (64 * 1024)

static void request_free(struct request *rq);

void conn_destroy(struct conn *c)
{
    while (c->head) {
        struct request *rq = c->head;
        c->head = rq->next;
        request_free(rq);
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        c->srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    close(c->fd);
    c->srv->nconns--;
    if (c->srv->conns_changed)
        c->srv->conns_changed(c->srv, c->srv->conns_changed_arg);
    buf_free(&c->in);
    buf_free(&c->out);
    buf_free(&c->out_next);
    free(c);
}

static void conn_unref(struct conn *c)
{
    if (--c->refs == 0)
        conn_destroy(c);
}

static void submit_recv(struct conn *c)
{
    if (c->recv_busy || c->closing)
        return;
    /* Compact consumed bytes away before reading more. */
    if (c->in_off) {
        buf_consume(&c->in, c->in_off);
        c->in_off = 0;
    }
    /* Read a whole large frame in one go once its length is known. */
    size_t want = RECV_CHUNK;
    if (c->in.len >= 4) {
        size_t frame = 4 + (size_t)be32_get(c->in.data);
        if (frame > c->in.len && frame - c->in.len > want)
            want = frame - c->in.len;
    }
    buf_reserve(&c->in, want);
    struct io_uring_sqe *sqe = server_sqe(c->srv);
    io_uring_prep_recv(sqe, c->fd, c->in.data + c->in.len, c->in.cap - c->in.len, 0);
    io_uring_sqe_set_data(sqe, &c->recv_op);
    c->recv_busy = true;
    c->refs++;
}

static void submit_send(struct conn *c)
{
    if (c->send_busy)
        return;
    if (c->out_off == c->out.len) {
        if (c->out_next.len == 0)
            return;
        struct buf t = c->out;
        c->out = c->out_next;
        c->out_next = t;
        buf_reset(&c->out_next);
        c->out_off = 0;
    }
    struct io_uring_sqe *sqe = server_sqe(c->srv);
    io_uring_prep_send(sqe, c->fd, c->out.data + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);
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
    conn_unref(c);
}


/* A request that will never be handled: forget it and close the connection. */
static void drop_and_close(struct conn *c, struct request *rq, const char *why)
{
    rq->state = RQ_SILENT;
    conn_close(c, why);
    conn_flush(c);
}

/* Splits complete frames off the receive buffer and hands each to the broker. */
static void parse_frames(struct conn *c)
{
    const struct config *cfg = c->srv->cfg;
    while (!c->closing && c->in.len - c->in_off >= 4) {
        const uint8_t *p = c->in.data + c->in_off;
        int32_t size = (int32_t)be32_get(p);
        if (size < 0 || size > cfg->max_request_bytes) {
            char why[128];
            snprintf(why, sizeof(why), "request length %d is outside 0..%lld (max-request-bytes)", size,
                     (long long)cfg->max_request_bytes);
            conn_close(c, why);
            return;
        }
        if (c->in.len - c->in_off < 4 + (size_t)size)
            return;
        struct request *rq = calloc(1, sizeof(*rq));
        uint8_t *frame = malloc(size ? (size_t)size : 1);
        if (!rq || !frame) {
            free(rq);
            free(frame);
            conn_close(c, "out of memory for a request");
            return;
        }
        memcpy(frame, p + 4, (size_t)size);
        c->in_off += 4 + (size_t)size;
        rq->frame = frame;
        rq->frame_len = (size_t)size;
        rq->conn = c;
        rq->received_ms = mono_ms();
        arena_init(&rq->arena);

        struct kreader r = {frame, frame + size, NULL};
        if (kdecode_request_header(&r, &rq->hdr, &rq->api) != 0) {
            free(frame);
            free(rq);
            conn_close(c, "malformed request header");
            return;
        }
        /* Queue first so that responses keep arrival order whatever happens next. */
        if (c->tail)
            c->tail->next = rq;
        else
            c->head = rq;
        c->tail = rq;
        c->refs++;

        char why[160];
        if (!rq->api) {
            snprintf(why, sizeof(why), "unknown API key %d (correlation id %d)", rq->hdr.api_key,
                     rq->hdr.correlation_id);
            drop_and_close(c, rq, why);
            return;
        }
        if (!broker_serves(rq->hdr.api_key, rq->hdr.api_version)) {
            if (rq->hdr.api_key == 18) {
                broker_handle_unsupported_api_versions(c->srv->broker, rq);
                continue;
            }
            snprintf(why, sizeof(why), "unsupported %s version %d", rq->api->name, rq->hdr.api_version);
            drop_and_close(c, rq, why);
            return;
        }
        rq->flexible = kapi_is_flexible(rq->api, rq->hdr.api_version);
        rq->body = arena_alloc(&rq->arena, rq->api->request->size);
        if (kdecode(rq->api->request, rq->hdr.api_version, rq->flexible, &r, rq->body, &rq->arena) != 0) {
            snprintf(why, sizeof(why), "malformed %s v%d request: %s", rq->api->name, rq->hdr.api_version,
                     r.error ? r.error : "?");
            drop_and_close(c, rq, why);
            return;
        }
        broker_handle(c->srv->broker, rq);
    }
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
    c->in.len += (size_t)res;
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
    c->out_off += (size_t)res;
    if (!c->closing)
        submit_send(c);
    conn_unref(c);
}

static void request_free(struct request *rq)
{
    arena_free(&rq->arena);
    buf_free(&rq->resp);
    free(rq->frame);
    free(rq);
}

void conn_flush(struct conn *c)
{
    while (c->head && c->head->state != RQ_PENDING) {
        struct request *rq = c->head;
        c->head = rq->next;
        if (!c->head)
            c->tail = NULL;
        if (rq->state == RQ_DONE && !c->closing)
            buf_append(&c->out_next, rq->resp.data, rq->resp.len);
        request_free(rq);
        c->refs--; /* cannot reach 0 here: the caller holds the connection */
    }
    if (!c->closing)
        submit_send(c);
}

/* Finishing a request may free the connection (if it closed and this was its last request). */
static void request_finished(struct request *rq)
{
    struct conn *c = rq->conn;
    c->refs++;
    conn_flush(c);
    conn_unref(c);
}

void request_respond(struct request *rq, const void *resp_body)
{
    if (rq->reads_pending > 0) { /* a read job still points at it: answering would free it */
        log_error("BUG: %s answered with %d reads pending; aborting the worker (the supervisor restarts it)", rq->api->name,
                  rq->reads_pending);
        abort();
    }
    /* ApiVersions always answers with header v0 so that clients can parse any version of it. */
    bool header_v1 = rq->flexible && rq->hdr.api_key != 18;
    buf_reset(&rq->resp);
    buf_put_i32(&rq->resp, 0); /* length prefix, patched below */
    kencode_response_header(&rq->resp, rq->hdr.correlation_id, header_v1);
    kencode(rq->api->response, rq->hdr.api_version, rq->flexible, &rq->resp, resp_body);
    be32_put(rq->resp.data, (uint32_t)(rq->resp.len - 4));
    rq->state = RQ_DONE;
    request_finished(rq);
}

void request_finish_silent(struct request *rq)
{
    rq->state = RQ_SILENT;
    request_finished(rq);
}

bool request_conn_alive(const struct request *rq) { return !rq->conn->closing; }

const char *request_who(const struct request *rq)
{
    static char who[192];
    snprintf(who, sizeof(who), "peer=%s client=%.*s", rq->conn->peer,
             rq->hdr.client_id.len > 0 ? (int)(rq->hdr.client_id.len > 64 ? 64 : rq->hdr.client_id.len) : 1,
             rq->hdr.client_id.len > 0 ? rq->hdr.client_id.ptr : "-");
    return who;
}
