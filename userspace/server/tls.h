/* TLS for client connections: OpenSSL over memory BIOs, so the io_uring loop keeps moving the
 * bytes. Ciphertext received goes in, plaintext comes out into the connection's receive buffer;
 * replies go in as plaintext and come out as ciphertext to queue for sending. */
#ifndef SLUICE_TLS_H
#define SLUICE_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "util/buf.h"

typedef struct ssl_ctx_st SSL_CTX;
struct tls_conn;

/* A server context from the settings (certificate, key, client CA, mTLS). NULL on failure with
 * one line in err. The context is refcounted by OpenSSL: connections keep theirs after a swap. */
SSL_CTX *tls_ctx_load(const struct config *cfg, char *err, size_t errlen);
void tls_ctx_free(SSL_CTX *ctx);

/* One connection's TLS state; peer only names it in logs. NULL if out of memory. */
struct tls_conn *tls_conn_new(SSL_CTX *ctx, const char *peer);
void tls_conn_free(struct tls_conn *t);

enum tls_input_result {
    TLS_OK,         /* plaintext (if any) appended */
    TLS_CLOSED,     /* the peer sent close_notify */
    TLS_PLAINTEXT,  /* the first bytes are not a TLS record: a plaintext client */
    TLS_FAILED,     /* handshake or record error (why says which) */
};
/* Feeds received ciphertext; the plaintext it yields is appended to plain. */
enum tls_input_result tls_conn_input(struct tls_conn *t, const uint8_t *data, size_t len, struct buf *plain,
                                     char *why, size_t whylen);
/* Encrypts plaintext (kept as ciphertext until taken). 0, or -1 (why set). */
int tls_conn_write(struct tls_conn *t, const uint8_t *data, size_t len, char *why, size_t whylen);
/* The ciphertext waiting to be sent, as a malloc'd block the caller frees; NULL when none. */
uint8_t *tls_conn_take_output(struct tls_conn *t, size_t *len);
/* Queues a close_notify alert (take it with tls_conn_take_output). */
void tls_conn_close_notify(struct tls_conn *t);
bool tls_conn_established(const struct tls_conn *t);
/* "User:<subject CN>" of a verified client certificate, or NULL. */
const char *tls_conn_principal(const struct tls_conn *t);

#endif
