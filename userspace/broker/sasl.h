/* SASL authentication per connection: SaslHandshake and SaslAuthenticate (PLAIN, SCRAM-SHA-256,
 * SCRAM-SHA-512 against the credentials in the metadata store), require-sasl-authentication, and
 * re-authentication (KIP-368). */
#ifndef SLUICE_SASL_H
#define SLUICE_SASL_H

#include <stdbool.h>

struct broker;
struct conn;
struct request;

/* "User:NAME" once the connection has authenticated with SASL, else NULL. */
const char *sasl_principal(const struct request *rq);
/* May this request be served now? If not, the connection is closed (one log line) and the
 * request freed: the caller stops. */
bool sasl_gate(struct broker *b, struct request *rq);
/* The connection closed: forget its SASL state. */
void sasl_conn_closed(struct conn *c);

void handle_sasl_handshake(struct broker *b, struct request *rq);
void handle_sasl_authenticate(struct broker *b, struct request *rq);

#endif
