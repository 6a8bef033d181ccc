/* One Kafka request, from its frame to its encoded response. The transport (server/) keeps the
 * connection's replies in arrival order; a request holds its place there (its reply) until the
 * handler answers, however late (produce waits for a flush, fetch long-polls). */
#ifndef SLUICE_REQUEST_H
#define SLUICE_REQUEST_H

#include <stdbool.h>
#include <stdint.h>

#include "broker/read_cache.h"
#include "protocol/codec.h"
#include "util/arena.h"
#include "util/buf.h"

struct conn;
struct reply;
struct broker;

struct request {
    struct conn *conn;             /* where it came from (logs; the port the client dialled) */
    struct reply *reply;           /* its place in the connection's reply order */
    struct krequest_header hdr;
    const struct kapi *api;
    bool flexible;
    uint8_t *frame;                /* the frame, from its length prefix; decoded strings point into it */
    size_t frame_len;              /* without the length prefix */
    size_t frame_cap;              /* of the buffer (see buf_mem_free) */
    void *body;                    /* the decoded request struct (arena) */
    struct arena arena;            /* everything decoded or built for this request */
    int64_t received_ms;
    uint64_t received_us;          /* for the latency metrics */
    /* A handler waiting for work done on other threads (object reads, store calls) sets resume;
     * it runs in the loop once reads_pending drops to 0. */
    void (*resume)(void *broker, struct request *rq);
    int reads_pending;
    void *state;                   /* the handler's, across resumes (in the arena) */
    struct cache_pins pins;        /* cached chunks it answers with, kept until it is answered */
};

/* Decodes a frame the transport handed over and gives the request to its handler. A frame that
 * cannot be served closes the connection with one log line. Takes ownership of frame. */
void request_dispatch(struct broker *b, struct conn *c, struct reply *reply, struct buf *frame);

/* Encodes resp_body (the API's response struct) at the request's version, hands it to the
 * connection and frees the request. */
void request_respond(struct request *rq, const void *resp_body);
/* Frees a request that gets no response (Produce with acks=0; its connection closed). */
void request_finish_silent(struct request *rq);
/* Closes the connection (one log line with why) and frees the request, which gets no answer. */
void request_close_conn(struct request *rq, const char *why);
/* Frees the frame early (the handler copied what it still needs out of it). */
void request_drop_frame(struct request *rq);
/* Is the client still connected? (a closed connection discards the answer) */
bool request_conn_alive(const struct request *rq);
/* The port the client dialled: the bootstrap port or a slot's. */
int request_local_port(const struct request *rq);
/* "peer=127.0.0.1:5555 client=rdkafka" for log lines (static buffer). */
const char *request_who(const struct request *rq);

#endif
