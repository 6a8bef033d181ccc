/* server/tls.c against a real OpenSSL client, all in memory: handshake, replies larger than a
 * TLS record both ways, a plaintext Kafka request and a broken record refused, bad files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "check.h"
#include "config.h"
#include "server/tls.h"
#include "test_util.h"

/* A self-signed P-256 certificate for CN=localhost in dir/cert.pem and dir/key.pem. */
static int make_cert(const char *dir, struct config *cfg)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    if (!key || !x)
        return -1;
    ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1, 0);
    X509_set_issuer_name(x, name);
    X509_sign(x, key, EVP_sha256());
    snprintf(cfg->tls_cert_file, sizeof(cfg->tls_cert_file), "%s/cert.pem", dir);
    snprintf(cfg->tls_key_file, sizeof(cfg->tls_key_file), "%s/key.pem", dir);
    FILE *fc = fopen(cfg->tls_cert_file, "w"), *fk = fopen(cfg->tls_key_file, "w");
    int ok = fc && fk && PEM_write_X509(fc, x) && PEM_write_PrivateKey(fk, key, NULL, NULL, 0, NULL, NULL);
    if (fc)
        fclose(fc);
    if (fk)
        fclose(fk);
    X509_free(x);
    EVP_PKEY_free(key);
    return ok ? 0 : -1;
}

/* Moves the client's pending ciphertext into the server; what the server answers (handshake, or
 * nothing) back into the client. */
static enum tls_input_result client_to_server(SSL *cl, BIO *cl_out, BIO *cl_in, struct tls_conn *t, struct buf *plain)
{
    (void)cl;
    char why[256];
    enum tls_input_result st = TLS_OK;
    uint8_t chunk[4096];
    int n;
    while ((n = BIO_read(cl_out, chunk, sizeof(chunk))) > 0)
        if ((st = tls_conn_input(t, chunk, (size_t)n, plain, why, sizeof(why))) != TLS_OK)
            return st;
    size_t len;
    uint8_t *out = tls_conn_take_output(t, &len);
    if (out)
        BIO_write(cl_in, out, (int)len);
    free(out);
    return st;
}

TEST(tls_memory_bios_handshake_and_records_both_ways)
{
    char *dir = test_temp_dir();
    CHECK(dir != NULL);
    struct config cfg = {0};
    cfg.tls_enabled = true;
    CHECK_EQ(make_cert(dir, &cfg), 0);
    char err[1024];
    SSL_CTX *ctx = tls_ctx_load(&cfg, err, sizeof(err));
    CHECK(ctx != NULL);
    struct tls_conn *t = tls_conn_new(ctx, "test-peer");
    tls_ctx_free(ctx); /* the connection keeps its own reference */

    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    CHECK(SSL_CTX_load_verify_locations(cctx, cfg.tls_cert_file, NULL) == 1);
    SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, NULL);
    SSL *cl = SSL_new(cctx);
    BIO *cl_in = BIO_new(BIO_s_mem()), *cl_out = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(cl_in, -1);
    SSL_set_bio(cl, cl_in, cl_out);
    SSL_set_connect_state(cl);
    struct buf plain;
    buf_init(&plain);
    for (int i = 0; i < 10 && !(SSL_is_init_finished(cl) && tls_conn_established(t)); i++) {
        SSL_do_handshake(cl);
        CHECK_EQ(client_to_server(cl, cl_out, cl_in, t, &plain), TLS_OK);
    }
    CHECK(SSL_is_init_finished(cl));
    CHECK(tls_conn_established(t));
    CHECK(tls_conn_principal(t) == NULL); /* no client certificate */
    CHECK_EQ(plain.len, 0);

    /* Client to server: 100 KB, several records. */
    size_t big = 100000;
    uint8_t *data = malloc(big);
    for (size_t i = 0; i < big; i++)
        data[i] = (uint8_t)(i * 31 + 7);
    CHECK_EQ(SSL_write(cl, data, (int)big), (int)big);
    CHECK_EQ(client_to_server(cl, cl_out, cl_in, t, &plain), TLS_OK);
    CHECK_EQ(plain.len, big);
    CHECK_MEM(plain.data, data, big);

    /* Server to client: two pieces, as a reply cut at a span. */
    CHECK_EQ(tls_conn_write(t, data, 1000, err, sizeof(err)), 0);
    CHECK_EQ(tls_conn_write(t, data + 1000, big - 1000, err, sizeof(err)), 0);
    size_t len;
    uint8_t *ct = tls_conn_take_output(t, &len);
    CHECK(ct != NULL && len > big);
    BIO_write(cl_in, ct, (int)len);
    free(ct);
    CHECK(tls_conn_take_output(t, &len) == NULL);
    uint8_t *back = malloc(big);
    size_t got = 0;
    int n;
    while (got < big && (n = SSL_read(cl, back + got, (int)(big - got))) > 0)
        got += (size_t)n;
    CHECK_EQ(got, big);
    CHECK_MEM(back, data, big);

    /* close_notify from the client */
    SSL_shutdown(cl);
    CHECK_EQ(client_to_server(cl, cl_out, cl_in, t, &plain), TLS_CLOSED);

    free(back);
    free(data);
    buf_free(&plain);
    SSL_free(cl);
    SSL_CTX_free(cctx);
    tls_conn_free(t);
    test_rm_rf(dir);
    free(dir);
}

TEST(tls_refuses_plaintext_garbage_and_bad_files)
{
    char *dir = test_temp_dir();
    CHECK(dir != NULL);
    struct config cfg = {0};
    cfg.tls_enabled = true;
    CHECK_EQ(make_cert(dir, &cfg), 0);
    char err[1024], why[256];
    SSL_CTX *ctx = tls_ctx_load(&cfg, err, sizeof(err));
    CHECK(ctx != NULL);
    struct buf plain;
    buf_init(&plain);

    /* An ApiVersions request's first bytes: a plaintext Kafka client. */
    struct tls_conn *t = tls_conn_new(ctx, "p");
    const uint8_t kafka[] = {0, 0, 0, 21, 0, 18, 0, 0, 0, 0, 0, 1};
    CHECK_EQ(tls_conn_input(t, kafka, sizeof(kafka), &plain, why, sizeof(why)), TLS_PLAINTEXT);
    tls_conn_free(t);

    /* Other bytes that are no TLS record, and a handshake record with a broken body. */
    t = tls_conn_new(ctx, "g");
    const uint8_t http[] = "GET / HTTP/1.1\r\n\r\n";
    CHECK_EQ(tls_conn_input(t, http, sizeof(http) - 1, &plain, why, sizeof(why)), TLS_FAILED);
    tls_conn_free(t);
    t = tls_conn_new(ctx, "g2");
    const uint8_t broken[] = {22, 3, 1, 0, 6, 1, 0, 0, 2, 0xff, 0xff};
    CHECK_EQ(tls_conn_input(t, broken, sizeof(broken), &plain, why, sizeof(why)), TLS_FAILED);
    CHECK(strstr(why, "TLS handshake failed") != NULL);
    tls_conn_free(t);
    /* A record header alone: waits for the rest (the handshake timeout bounds the wait). */
    t = tls_conn_new(ctx, "h");
    CHECK_EQ(tls_conn_input(t, broken, 5, &plain, why, sizeof(why)), TLS_OK);
    CHECK(!tls_conn_established(t));
    tls_conn_free(t);
    CHECK_EQ(plain.len, 0);
    tls_ctx_free(ctx);

    /* Files: missing certificate, key of another certificate, missing CA, mTLS without a CA. */
    struct config bad = cfg;
    snprintf(bad.tls_cert_file, sizeof(bad.tls_cert_file), "%s/missing.pem", dir);
    CHECK(tls_ctx_load(&bad, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "cannot load tls-server-cert-file") != NULL);
    bad = cfg;
    snprintf(bad.tls_key_file, sizeof(bad.tls_key_file), "%s", cfg.tls_cert_file);
    CHECK(tls_ctx_load(&bad, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "tls-server-private-key-file") != NULL);
    bad = cfg;
    snprintf(bad.tls_client_ca_file, sizeof(bad.tls_client_ca_file), "%s/nope.pem", dir);
    CHECK(tls_ctx_load(&bad, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "cannot load tls-client-ca-file") != NULL);
    bad = cfg;
    bad.require_mtls = true;
    CHECK(tls_ctx_load(&bad, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "needs tls-client-ca-file") != NULL);

    buf_free(&plain);
    test_rm_rf(dir);
    free(dir);
}
