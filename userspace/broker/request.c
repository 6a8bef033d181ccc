/* Kafka requests on top of the transport: frame -> header and body decoded -> handler; response
 * encoded -> the connection's reply. */
#include "broker/request.h"

#include <stdio.h>
#include <stdlib.h>

#include "broker/broker.h"
#include "metrics/metrics.h"
#include "server/conn.h"
#include "util/clock.h"
#include "util/log.h"

static void request_free(struct request *rq)
{
    cache_pins_release(&rq->pins);
    arena_free(&rq->arena);
    buf_mem_free(rq->frame, rq->frame_cap);
    free(rq);
}

/* The request metrics: API, first error in the answer, frame sizes (with their length prefix), and
 * the latency of produce and fetch. */
static void count_answer(const struct request *rq, int16_t error, size_t out_len)
{
    metrics_request(rq->hdr.api_key, error, rq->frame_len + 4, out_len);
    if (rq->hdr.api_key == 0)
        metrics_observe_since(H_PRODUCE_LATENCY, rq->received_us);
    else if (rq->hdr.api_key == 1)
        metrics_observe_since(H_FETCH_LATENCY, rq->received_us);
}

/* A frame that will never be handled: close the connection, keep the reply order. */
static void refuse(struct request *rq, const char *why)
{
    struct conn *c = rq->conn;
    struct reply *reply = rq->reply;
    request_free(rq);
    conn_close(c, why);
    reply_none(reply);
}

void request_dispatch(struct broker *b, struct conn *c, struct reply *reply, struct buf *frame_buf)
{
    uint8_t *frame = frame_buf->data;
    size_t len = frame_buf->len - 4, cap = frame_buf->cap;
    buf_init(frame_buf);
    struct request *rq = calloc(1, sizeof(*rq));
    if (!rq) {
        buf_mem_free(frame, cap);
        conn_close(c, "out of memory for a request");
        reply_none(reply);
        return;
    }
    rq->conn = c;
    rq->reply = reply;
    rq->frame = frame;
    rq->frame_len = len;
    rq->frame_cap = cap;
    rq->received_ms = mono_ms();
    rq->received_us = metrics_now_us();
    arena_init(&rq->arena);

    struct kreader r = {frame + 4, frame + 4 + len, NULL}; /* after the length prefix */
    char why[160];
    if (kdecode_request_header(&r, &rq->hdr, &rq->api) != 0) {
        refuse(rq, "malformed request header");
        return;
    }
    if (!rq->api) {
        snprintf(why, sizeof(why), "unknown API key %d (correlation id %d)", rq->hdr.api_key, rq->hdr.correlation_id);
        refuse(rq, why);
        return;
    }
    if (!broker_serves(rq->hdr.api_key, rq->hdr.api_version)) {
        if (rq->hdr.api_key == 18) {
            broker_handle_unsupported_api_versions(b, rq);
            return;
        }
        snprintf(why, sizeof(why), "unsupported %s version %d", rq->api->name, rq->hdr.api_version);
        refuse(rq, why);
        return;
    }
    rq->flexible = kapi_is_flexible(rq->api, rq->hdr.api_version);
    rq->body = arena_alloc(&rq->arena, rq->api->request->size);
    if (kdecode(rq->api->request, rq->hdr.api_version, rq->flexible, &r, rq->body, &rq->arena) != 0) {
        snprintf(why, sizeof(why), "malformed %s v%d request: %s", rq->api->name, rq->hdr.api_version,
                 r.error ? r.error : "?");
        refuse(rq, why);
        return;
    }
    broker_handle(b, rq);
}

void request_respond(struct request *rq, const void *resp_body)
{
    if (rq->reads_pending > 0) { /* a read job still points at it: answering would free it */
        log_error("BUG: %s answered with %d reads pending; aborting the worker (the supervisor restarts it)",
                  rq->api->name, rq->reads_pending);
        abort();
    }
    /* ApiVersions always answers with header v0 so that clients can parse any version of it. */
    bool header_v1 = rq->flexible && rq->hdr.api_key != 18;
    struct buf out;
    buf_init(&out);
    buf_put_i32(&out, 0); /* length prefix, patched below */
    kencode_response_header(&out, rq->hdr.correlation_id, header_v1);
    /* Large records (fetch answers) are sent from where they are, not copied into out: the
     * request's memory then goes with the reply and is freed once sent. */
    struct kspan kspans[REPLY_SPANS_MAX];
    int nspans = kencode_spans(rq->api->response, rq->hdr.api_version, rq->flexible, &out, resp_body, kspans,
                               REPLY_SPANS_MAX);
    size_t total = out.len;
    struct reply_span spans[REPLY_SPANS_MAX];
    for (int i = 0; i < nspans; i++) {
        spans[i] = (struct reply_span){kspans[i].at, kspans[i].ptr, kspans[i].len};
        total += kspans[i].len;
    }
    be32_put(out.data, (uint32_t)(total - 4));
    count_answer(rq, kfirst_error(rq->api->response, rq->hdr.api_version, resp_body), total);
    struct reply *reply = rq->reply;
    struct buf_mem *owned = NULL;
    int nowned = nspans ? arena_take(&rq->arena, &owned) : 0;
    request_free(rq);
    reply_send_spans(reply, &out, spans, nspans, owned, nowned);
}

static void finish_unanswered(struct request *rq)
{
    if (rq->reads_pending > 0) {
        log_error("BUG: %s finished with %d reads pending; aborting the worker", rq->api->name, rq->reads_pending);
        abort();
    }
    struct reply *reply = rq->reply;
    request_free(rq);
    reply_none(reply);
}

void request_finish_silent(struct request *rq)
{
    count_answer(rq, 0, 0);
    finish_unanswered(rq);
}

void request_close_conn(struct request *rq, const char *why)
{
    char line[256];
    snprintf(line, sizeof(line), "%s (%s)", why, request_who(rq));
    struct conn *c = rq->conn;
    conn_close(c, line);
    finish_unanswered(rq);
}

void request_drop_frame(struct request *rq)
{
    struct kstr *id = &rq->hdr.client_id; /* logs still name the client */
    if (id->len > 0)
        id->ptr = arena_strndup(&rq->arena, id->ptr, (size_t)id->len);
    buf_mem_free(rq->frame, rq->frame_cap);
    rq->frame = NULL;
    rq->body = NULL; /* it pointed into the frame */
}

bool request_conn_alive(const struct request *rq)
{
    return reply_conn_open(rq->reply);
}

int request_local_port(const struct request *rq)
{
    return rq->conn->local_port;
}

const char *request_who(const struct request *rq)
{
    static char who[192];
    snprintf(who, sizeof(who), "peer=%s client=%.*s", rq->conn->peer,
             rq->hdr.client_id.len > 0 ? (int)(rq->hdr.client_id.len > 64 ? 64 : rq->hdr.client_id.len) : 1,
             rq->hdr.client_id.len > 0 ? rq->hdr.client_id.ptr : "-");
    return who;
}
