/* One Kafka request, from its decoded frame to its encoded response. Requests of a connection are
 * answered strictly in arrival order, even when handlers finish out of order (produce waits for a
 * flush, fetch long-polls): the connection sends a response only when all earlier ones are sent. */
#ifndef SLUICE_REQUEST_H
#define SLUICE_REQUEST_H

#include <stdbool.h>
#include <stdint.h>

#include "protocol/codec.h"
#include "util/arena.h"
#include "util/buf.h"

struct conn;

enum request_state { RQ_PENDING, RQ_DONE, RQ_SILENT };

struct request {
    struct conn *conn;
    struct request *next;          /* the connection's queue, in arrival order */
    struct krequest_header hdr;
    const struct kapi *api;
    bool flexible;
    uint8_t *frame;                /* owned copy of the frame; decoded strings point into it */
    size_t frame_len;
    void *body;                    /* the decoded request struct (arena) */
    struct arena arena;            /* everything decoded or built for this request */
    struct buf resp;               /* encoded response, header included */
    enum request_state state;
    int64_t received_ms;
    /* A handler waiting for object reads (done on reader threads) sets resume; it runs in the
     * loop once reads_pending drops to 0. */
    void (*resume)(void *broker, struct request *rq);
    int reads_pending;
    int read_rounds;               /* how often it waited for reads (bounded) */
};

/* Encodes resp_body (the API's response struct) at the request's version and queues it. */
void request_respond(struct request *rq, const void *resp_body);
/* Finishes a request that gets no response (Produce with acks=0). */
void request_finish_silent(struct request *rq);
/* The client's connection has gone; handlers holding a request may still finish it. */
bool request_conn_alive(const struct request *rq);
/* "peer=127.0.0.1:5555 client=rdkafka" for log lines (static buffer). */
const char *request_who(const struct request *rq);

#endif
