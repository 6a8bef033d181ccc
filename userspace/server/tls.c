#include "server/tls.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "util/log.h"

/* Plaintext is read out of OpenSSL this much at a time. */
#define TLS_READ_CHUNK 16384

struct tls_conn {
    SSL *ssl;
    BIO *rbio, *wbio;   /* memory BIOs: received ciphertext in, ciphertext to send out */
    bool seen_first;    /* the first bytes were checked for a TLS record */
    bool established;
    char principal[300];
    const char *peer;
};

/* The oldest queued OpenSSL error as text (and the queue cleared). */
static void ssl_error_text(const char *what, char *err, size_t errlen)
{
    unsigned long e = ERR_get_error();
    char detail[256] = "unknown error";
    if (e)
        ERR_error_string_n(e, detail, sizeof(detail));
    ERR_clear_error();
    snprintf(err, errlen, "%s: %s", what, detail);
}

SSL_CTX *tls_ctx_load(const struct config *cfg, char *err, size_t errlen)
{
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        ssl_error_text("cannot create a TLS context", err, errlen);
        return NULL;
    }
    char what[1200];
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* Idle connections give their record buffers back. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    /* Handshake work stays bounded: one handshake per connection, and a bounded session cache
     * (the worker's memory budget). */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_sess_set_cache_size(ctx, 1024);
    if (!cfg->tls_cert_file[0] || !cfg->tls_key_file[0]) {
        snprintf(err, errlen, "tls-enabled needs tls-server-cert-file and tls-server-private-key-file");
        goto fail;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert_file) != 1) {
        snprintf(what, sizeof(what), "cannot load tls-server-cert-file %s", cfg->tls_cert_file);
        ssl_error_text(what, err, errlen);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_key_file, SSL_FILETYPE_PEM) != 1) {
        snprintf(what, sizeof(what), "cannot load tls-server-private-key-file %s", cfg->tls_key_file);
        ssl_error_text(what, err, errlen);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(what, sizeof(what), "tls-server-private-key-file %s does not match tls-server-cert-file %s",
                 cfg->tls_key_file, cfg->tls_cert_file);
        ssl_error_text(what, err, errlen);
        goto fail;
    }
    if (cfg->require_mtls && !cfg->tls_client_ca_file[0]) {
        snprintf(err, errlen, "require-mtls-authentication needs tls-client-ca-file");
        goto fail;
    }
    if (cfg->tls_client_ca_file[0]) {
        if (SSL_CTX_load_verify_locations(ctx, cfg->tls_client_ca_file, NULL) != 1) {
            snprintf(what, sizeof(what), "cannot load tls-client-ca-file %s", cfg->tls_client_ca_file);
            ssl_error_text(what, err, errlen);
            goto fail;
        }
        /* A client certificate, when sent, must chain to the CA; with mTLS one is required. */
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | (cfg->require_mtls ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0), NULL);
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cfg->tls_client_ca_file);
        if (names)
            SSL_CTX_set_client_CA_list(ctx, names);
    }
    ERR_clear_error();
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

void tls_ctx_free(SSL_CTX *ctx)
{
    SSL_CTX_free(ctx);
}

struct tls_conn *tls_conn_new(SSL_CTX *ctx, const char *peer)
{
    struct tls_conn *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->peer = peer;
    t->ssl = SSL_new(ctx);
    t->rbio = BIO_new(BIO_s_mem());
    t->wbio = BIO_new(BIO_s_mem());
    if (!t->ssl || !t->rbio || !t->wbio) {
        BIO_free(t->rbio);
        BIO_free(t->wbio);
        SSL_free(t->ssl);
        free(t);
        ERR_clear_error();
        return NULL;
    }
    /* An empty memory BIO means "more to come", not end of file. */
    BIO_set_mem_eof_return(t->rbio, -1);
    SSL_set_bio(t->ssl, t->rbio, t->wbio);
    SSL_set_accept_state(t->ssl);
    return t;
}

void tls_conn_free(struct tls_conn *t)
{
    if (!t)
        return;
    SSL_free(t->ssl); /* frees the BIOs */
    free(t);
}

/* The handshake just finished: the client certificate (verified by then) names the principal. */
static void on_established(struct tls_conn *t)
{
    t->established = true;
    X509 *cert = SSL_get1_peer_certificate(t->ssl);
    if (cert && SSL_get_verify_result(t->ssl) == X509_V_OK) {
        char cn[256];
        if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof(cn)) > 0)
            snprintf(t->principal, sizeof(t->principal), "User:%s", cn);
    }
    X509_free(cert);
    log_debug("TLS %s established with %s, principal %s", SSL_get_version(t->ssl), t->peer,
              t->principal[0] ? t->principal : "(none)");
}

/* Why a handshake or record failed: the verification result says most about a client certificate. */
static void failure_text(struct tls_conn *t, char *why, size_t whylen)
{
    long v = SSL_get_verify_result(t->ssl);
    if (v != X509_V_OK) {
        ERR_clear_error();
        snprintf(why, whylen, "client certificate refused: %s", X509_verify_cert_error_string(v));
        return;
    }
    ssl_error_text(t->established ? "TLS error" : "TLS handshake failed", why, whylen);
}

enum tls_input_result tls_conn_input(struct tls_conn *t, const uint8_t *data, size_t len, struct buf *plain,
                                     char *why, size_t whylen)
{
    if (!t->seen_first && len > 0) {
        /* A TLS connection starts with a handshake record (type 22); a Kafka request starts with
         * its length, whose first byte is 0 for any request under 16 MiB. */
        t->seen_first = true;
        if (data[0] != 22) {
            snprintf(why, whylen, "the first byte 0x%02x is not a TLS handshake record", data[0]);
            return data[0] == 0 ? TLS_PLAINTEXT : TLS_FAILED;
        }
    }
    /* SSL_get_error reads this thread's error queue: nothing stale may be left in it. */
    ERR_clear_error();
    if (len > INT_MAX || BIO_write(t->rbio, data, (int)len) != (int)len) {
        snprintf(why, whylen, "out of memory for TLS input");
        return TLS_FAILED;
    }
    for (;;) {
        buf_reserve(plain, TLS_READ_CHUNK);
        size_t room = plain->cap - plain->len;
        int n = SSL_read(t->ssl, plain->data + plain->len, room > INT_MAX ? INT_MAX : (int)room);
        if (!t->established && SSL_is_init_finished(t->ssl))
            on_established(t);
        if (n > 0) {
            plain->len += (size_t)n;
            continue;
        }
        switch (SSL_get_error(t->ssl, n)) {
        case SSL_ERROR_WANT_READ:
            return TLS_OK; /* everything received is consumed */
        case SSL_ERROR_ZERO_RETURN:
            return TLS_CLOSED;
        default:
            failure_text(t, why, whylen);
            return TLS_FAILED;
        }
    }
}

int tls_conn_write(struct tls_conn *t, const uint8_t *data, size_t len, char *why, size_t whylen)
{
    ERR_clear_error();
    while (len > 0) {
        int part = len > INT_MAX ? INT_MAX : (int)len;
        int n = SSL_write(t->ssl, data, part);
        if (n <= 0) {
            ssl_error_text("TLS write failed", why, whylen);
            return -1;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

uint8_t *tls_conn_take_output(struct tls_conn *t, size_t *len)
{
    size_t n = BIO_ctrl_pending(t->wbio);
    if (n == 0)
        return NULL;
    uint8_t *p = malloc(n);
    if (!p)
        abort();
    int got = BIO_read(t->wbio, p, (int)n);
    *len = got > 0 ? (size_t)got : 0;
    return p;
}

void tls_conn_close_notify(struct tls_conn *t)
{
    SSL_shutdown(t->ssl);
    ERR_clear_error();
}

bool tls_conn_established(const struct tls_conn *t)
{
    return t->established;
}

const char *tls_conn_principal(const struct tls_conn *t)
{
    return t->principal[0] ? t->principal : NULL;
}
