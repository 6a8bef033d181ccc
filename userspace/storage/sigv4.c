/* AWS Signature Version 4: canonical request -> string to sign -> HMAC chain -> Authorization.
 * Follows "Signature Calculations for the Authorization Header: Transferring Payload in a Single
 * Chunk" of the S3 API reference; tests/unit/test_sigv4.c checks it against that page's examples. */
#include "storage/sigv4.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#define SHA256_LEN 32
#define HEADER_NAME_MAX 64

static void buf_str(struct buf *b, const char *s) { buf_append(b, s, strlen(s)); }
static void buf_chr(struct buf *b, char c) { buf_append(b, &c, 1); }

/* NUL after the content without counting it, so out->data is a C string. */
static void buf_terminate(struct buf *b)
{
    buf_reserve(b, 1);
    b->data[b->len] = '\0';
}

static void hex(const unsigned char *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

void sigv4_amz_date(time_t t, char out[SIGV4_DATE_LEN])
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, SIGV4_DATE_LEN, "%Y%m%dT%H%M%SZ", &tm);
}

void sigv4_sha256_hex(const void *data, size_t len, char out[SIGV4_HEX_LEN])
{
    unsigned char md[SHA256_LEN];
    unsigned int mdlen = 0;
    if (!EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) || mdlen != SHA256_LEN)
        abort(); /* only on out-of-memory inside OpenSSL */
    hex(md, SHA256_LEN, out);
}

static void hmac_sha256(const void *key, size_t keylen, const void *msg, size_t len, unsigned char out[SHA256_LEN])
{
    unsigned int outlen = 0;
    if (!HMAC(EVP_sha256(), key, (int)keylen, msg, len, out, &outlen) || outlen != SHA256_LEN)
        abort();
}

void sigv4_uri_encode(struct buf *out, const char *s, size_t n, bool keep_slash)
{
    static const char digits[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                          c == '.' || c == '_' || c == '~';
        if (unreserved || (c == '/' && keep_slash)) {
            buf_chr(out, (char)c);
        } else {
            char esc[3] = {'%', digits[c >> 4], digits[c & 15]};
            buf_append(out, esc, 3);
        }
    }
}

/* ---- canonical query string: names and values encoded, sorted by name, then value ---- */

struct enc_pair {
    char *name;
    char *value;
};

static char *encode_dup(const char *s)
{
    struct buf b;
    buf_init(&b);
    sigv4_uri_encode(&b, s, strlen(s), false);
    buf_terminate(&b);
    return (char *)b.data;
}

static int enc_pair_cmp(const void *a, const void *b)
{
    const struct enc_pair *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->value, y->value);
}

static void canonical_query(const struct sigv4_request *rq, struct buf *out)
{
    if (!rq->nquery)
        return;
    struct enc_pair *v = calloc(rq->nquery, sizeof(*v));
    if (!v)
        abort();
    for (size_t i = 0; i < rq->nquery; i++) {
        v[i].name = encode_dup(rq->query[i].name);
        v[i].value = encode_dup(rq->query[i].value ? rq->query[i].value : "");
    }
    qsort(v, rq->nquery, sizeof(*v), enc_pair_cmp);
    for (size_t i = 0; i < rq->nquery; i++) {
        if (i)
            buf_chr(out, '&');
        buf_str(out, v[i].name);
        buf_chr(out, '=');
        buf_str(out, v[i].value);
        free(v[i].name);
        free(v[i].value);
    }
    free(v);
}

/* ---- canonical headers: lowercase names, sorted; values trimmed, inner runs of spaces as one ---- */

struct lc_header {
    char name[HEADER_NAME_MAX];
    const char *value;
};

static int lc_header_cmp(const void *a, const void *b)
{
    return strcmp(((const struct lc_header *)a)->name, ((const struct lc_header *)b)->name);
}

static int sorted_headers(const struct sigv4_request *rq, struct lc_header *h)
{
    if (rq->nheaders > SIGV4_MAX_HEADERS)
        return -1;
    for (size_t i = 0; i < rq->nheaders; i++) {
        size_t n = strlen(rq->headers[i].name);
        if (n == 0 || n >= HEADER_NAME_MAX)
            return -1;
        for (size_t j = 0; j <= n; j++) {
            char c = rq->headers[i].name[j];
            h[i].name[j] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
        }
        h[i].value = rq->headers[i].value ? rq->headers[i].value : "";
    }
    qsort(h, rq->nheaders, sizeof(*h), lc_header_cmp);
    return 0;
}

static void trimmed_value(struct buf *out, const char *v)
{
    while (*v == ' ' || *v == '\t')
        v++;
    const char *end = v + strlen(v);
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    for (const char *p = v; p < end; p++) {
        if (*p == ' ' && p[1] == ' ')
            continue;
        buf_chr(out, *p);
    }
}

static void signed_header_list(const struct lc_header *h, size_t n, struct buf *out)
{
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf_chr(out, ';');
        buf_str(out, h[i].name);
    }
}

int sigv4_canonical_request(const struct sigv4_request *rq, struct buf *out)
{
    struct lc_header h[SIGV4_MAX_HEADERS];
    if (sorted_headers(rq, h) != 0)
        return -1;
    buf_str(out, rq->method);
    buf_chr(out, '\n');
    const char *path = rq->path && rq->path[0] ? rq->path : "/";
    sigv4_uri_encode(out, path, strlen(path), true);
    buf_chr(out, '\n');
    canonical_query(rq, out);
    buf_chr(out, '\n');
    for (size_t i = 0; i < rq->nheaders; i++) {
        buf_str(out, h[i].name);
        buf_chr(out, ':');
        trimmed_value(out, h[i].value);
        buf_chr(out, '\n');
    }
    buf_chr(out, '\n');
    signed_header_list(h, rq->nheaders, out);
    buf_chr(out, '\n');
    buf_str(out, rq->payload_hash);
    buf_terminate(out);
    return 0;
}

static void scope(const struct sigv4_key *key, const char *amz_date, struct buf *out)
{
    buf_append(out, amz_date, 8); /* YYYYMMDD */
    buf_chr(out, '/');
    buf_str(out, key->region);
    buf_chr(out, '/');
    buf_str(out, key->service);
    buf_str(out, "/aws4_request");
}

void sigv4_string_to_sign(const struct sigv4_key *key, const char *amz_date, const char *canonical_request,
                          struct buf *out)
{
    char digest[SIGV4_HEX_LEN];
    sigv4_sha256_hex(canonical_request, strlen(canonical_request), digest);
    buf_str(out, "AWS4-HMAC-SHA256\n");
    buf_str(out, amz_date);
    buf_chr(out, '\n');
    scope(key, amz_date, out);
    buf_chr(out, '\n');
    buf_str(out, digest);
    buf_terminate(out);
}

/* kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request") */
static void signing_key(const struct sigv4_key *key, const char *amz_date, unsigned char out[SHA256_LEN])
{
    struct buf k;
    buf_init(&k);
    buf_str(&k, "AWS4");
    buf_str(&k, key->secret_key);
    unsigned char a[SHA256_LEN], b[SHA256_LEN];
    hmac_sha256(k.data, k.len, amz_date, 8, a);
    hmac_sha256(a, SHA256_LEN, key->region, strlen(key->region), b);
    hmac_sha256(b, SHA256_LEN, key->service, strlen(key->service), a);
    hmac_sha256(a, SHA256_LEN, "aws4_request", strlen("aws4_request"), out);
    /* The secret passed through here; do not leave it in freed memory. */
    OPENSSL_cleanse(k.data, k.len);
    buf_free(&k);
}

int sigv4_authorization(const struct sigv4_request *rq, const struct sigv4_key *key, const char *amz_date,
                        struct buf *out)
{
    struct lc_header h[SIGV4_MAX_HEADERS];
    struct buf creq, sts;
    buf_init(&creq);
    buf_init(&sts);
    if (sorted_headers(rq, h) != 0 || sigv4_canonical_request(rq, &creq) != 0) {
        buf_free(&creq);
        return -1;
    }
    sigv4_string_to_sign(key, amz_date, (const char *)creq.data, &sts);

    unsigned char kSigning[SHA256_LEN], sig[SHA256_LEN];
    signing_key(key, amz_date, kSigning);
    hmac_sha256(kSigning, SHA256_LEN, sts.data, sts.len, sig);
    OPENSSL_cleanse(kSigning, sizeof(kSigning));
    char sighex[2 * SHA256_LEN + 1];
    hex(sig, SHA256_LEN, sighex);

    buf_str(out, "AWS4-HMAC-SHA256 Credential=");
    buf_str(out, key->access_key);
    buf_chr(out, '/');
    scope(key, amz_date, out);
    buf_str(out, ", SignedHeaders=");
    signed_header_list(h, rq->nheaders, out);
    buf_str(out, ", Signature=");
    buf_str(out, sighex);
    buf_terminate(out);
    buf_free(&creq);
    buf_free(&sts);
    return 0;
}
