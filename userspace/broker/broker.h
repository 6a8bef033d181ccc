/* The broker: Kafka API handlers plus the produce and fetch machinery behind them. Runs inside the
 * server's loop thread; a flusher thread writes objects and commits metadata. */
#ifndef SLUICE_BROKER_H
#define SLUICE_BROKER_H

#include <stdbool.h>
#include <stdint.h>

#include "broker/request.h"
#include "config.h"

struct broker;
struct server;

/* worker_id names this worker in object keys and logs. The broker plugs itself into srv's loop
 * (frames, timers, wake-ups, drain). */
struct broker *broker_create(const struct config *cfg, struct server *srv, int worker_id);
void broker_destroy(struct broker *b);

struct membership;
/* Called after every successful read of the group's membership (each heartbeat). */
typedef void (*membership_cb)(const struct membership *ms, void *arg);
void broker_on_membership(struct broker *b, membership_cb cb, void *arg);

/* The server's loop is set up (server_init): plug into it and start watching what the broker needs
 * (store notifications). */
void broker_started(struct broker *b);

/* Handles a decoded request; the handler answers now or later (request_respond). */
void broker_handle(struct broker *b, struct request *rq);
/* Answers an ApiVersions request whose version is beyond what is served (KIP-511). */
void broker_handle_unsupported_api_versions(struct broker *b, struct request *rq);
/* Is this API version served? */
bool broker_serves(int16_t api_key, int16_t version);

#endif
