/* The broker: Kafka API handlers plus the produce and fetch machinery behind them. Runs inside the
 * server's loop thread; a flusher thread writes objects and commits metadata. */
#ifndef SLUICE_BROKER_H
#define SLUICE_BROKER_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "server/request.h"

struct broker;
struct server;

/* worker_id names this worker in object keys and logs. */
struct broker *broker_create(const struct config *cfg, struct server *srv, int worker_id);
void broker_destroy(struct broker *b);

struct membership;
/* Called after every successful read of the group's membership (each heartbeat). */
typedef void (*membership_cb)(const struct membership *ms, void *arg);
void broker_on_membership(struct broker *b, membership_cb cb, void *arg);

/* The server's loop is set up: start watching what the broker needs (store notifications). */
void broker_started(struct broker *b);

/* Handles a decoded request; the handler answers now or later (request_respond). */
void broker_handle(struct broker *b, struct request *rq);
/* Answers an ApiVersions request whose version is beyond what is served (KIP-511). */
void broker_handle_unsupported_api_versions(struct broker *b, struct request *rq);
/* Is this API version served? */
bool broker_serves(int16_t api_key, int16_t version);

/* Timers: the earliest monotonic deadline (ms) the broker needs a tick at, or INT64_MAX. */
int64_t broker_next_deadline(struct broker *b);
void broker_tick(struct broker *b, int64_t now_ms);
/* Another thread called server_wakeup (a flush finished). */
void broker_on_wakeup(struct broker *b);

/* Shutdown: flush what is buffered; broker_drained says when nothing is left in flight. */
void broker_begin_drain(struct broker *b);
bool broker_drained(struct broker *b);

#endif
