/* AWS Signature Version 4 (the header-based form S3 uses), on OpenSSL. Pure functions: the time
 * comes in as an x-amz-date string, so the AWS documentation's examples are unit tests. */
#ifndef SLUICE_SIGV4_H
#define SLUICE_SIGV4_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "util/buf.h"

#define SIGV4_DATE_LEN 17 /* "20130524T000000Z" and its NUL */
#define SIGV4_HEX_LEN 65  /* a SHA-256 in lowercase hex and its NUL */
#define SIGV4_MAX_HEADERS 16
#define SIGV4_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

struct sigv4_pair {
    const char *name;
    const char *value;
};

struct sigv4_request {
    const char *method;                /* "GET", "PUT", ... */
    const char *path;                  /* as not yet encoded, e.g. "/bucket/a b"; "" means "/" */
    const struct sigv4_pair *query;    /* not yet encoded, any order; value "" for a bare name */
    size_t nquery;
    const struct sigv4_pair *headers;  /* every header to sign, unique names in any case: host, */
    size_t nheaders;                   /* x-amz-date and x-amz-content-sha256 at least */
    const char *payload_hash;          /* hex SHA-256 of the body (the x-amz-content-sha256 value) */
};

struct sigv4_key {
    const char *access_key;
    const char *secret_key;
    const char *region;
    const char *service; /* "s3" */
};

/* t as "YYYYMMDDTHHMMSSZ" (UTC). */
void sigv4_amz_date(time_t t, char out[SIGV4_DATE_LEN]);

void sigv4_sha256_hex(const void *data, size_t len, char out[SIGV4_HEX_LEN]);

/* Appends s[0..n) with every byte but A-Za-z0-9-._~ as %XX (uppercase hex); '/' too unless
 * keep_slash (paths keep theirs, query names and values do not). */
void sigv4_uri_encode(struct buf *out, const char *s, size_t n, bool keep_slash);

/* The canonical request, NUL-terminated in out (out->len excludes the NUL). -1 on more than
 * SIGV4_MAX_HEADERS headers or a header name longer than 63 bytes. */
int sigv4_canonical_request(const struct sigv4_request *rq, struct buf *out);

/* The string to sign for a canonical request, NUL-terminated in out. */
void sigv4_string_to_sign(const struct sigv4_key *key, const char *amz_date, const char *canonical_request,
                          struct buf *out);

/* The Authorization header value ("AWS4-HMAC-SHA256 Credential=..., SignedHeaders=...,
 * Signature=..."), NUL-terminated in out. amz_date must be the request's x-amz-date. -1 as for
 * sigv4_canonical_request. */
int sigv4_authorization(const struct sigv4_request *rq, const struct sigv4_key *key, const char *amz_date,
                        struct buf *out);

#endif
