/* s3:// object store on libcurl: PutObject, ranged GetObject, DeleteObject, ListObjectsV2, each
 * signed with AWS Signature V4 (sigv4.c) and retried with backoff (policy in objstore_s3.h).
 * Calls may come from several threads at once: each takes a curl handle from a small pool and
 * gives it back, so kept-alive connections are reused without two threads sharing one. */
#include "storage/objstore_s3.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "util/hex.h"
#include "util/log.h"
#include "storage/s3_xml.h"
#include "storage/sigv4.h"

#define KEY_MAX 1024
#define RESPONSE_MAX (16u << 20) /* bodies other than object data: error XML, list pages */
#define ERROR_SLACK (64u << 10)  /* room for an error document in place of a range */

struct s3_store {
    struct objstore base;
    struct s3_config cfg;
    char host[330];     /* Host header: the endpoint, or BUCKET.endpoint */
    char base_path[70]; /* "/BUCKET" in path style, "" otherwise */
    char *access_key, *secret_key, *session_token;
    int list_page_size; /* 0: the server's default */
    pthread_mutex_t mu;
    CURL *idle[S3_POOL_MAX];
    int nidle;
};

/* ---- URL parsing ---- */

/* Copies s[0..n) percent-decoded into out (size outlen); -1 if it does not fit or is malformed. */
static int url_decode(const char *s, size_t n, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= n)
                return -1;
            int hi = hex_digit_value(s[i + 1]), lo = hex_digit_value(s[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = (char)(hi << 4 | lo);
            i += 2;
        }
        if (c == '\0' || o + 1 >= outlen)
            return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    return 0;
}

static bool all_chars_in(const char *s, const char *extra)
{
    for (; *s; s++) {
        char c = *s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr(extra, c)))
            return false;
    }
    return true;
}

/* 127.0.0.1, [::1], localhost and NAME.localhost (which curl resolves to loopback itself). */
static bool is_loopback(const char *endpoint)
{
    size_t n = strcspn(endpoint, "]");
    n = endpoint[n] == ']' ? n + 1 : strcspn(endpoint, ":");
    static const char *const names[] = {"127.0.0.1", "localhost", "[::1]"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strlen(names[i]) == n && strncmp(endpoint, names[i], n) == 0)
            return true;
    return n > 10 && strncmp(endpoint + n - 10, ".localhost", 10) == 0;
}

static int set_endpoint(struct s3_config *c, const char *v, char *err, size_t errlen)
{
    int scheme = -1; /* -1: not given */
    if (strncmp(v, "http://", 7) == 0) {
        scheme = 0;
        v += 7;
    } else if (strncmp(v, "https://", 8) == 0) {
        scheme = 1;
        v += 8;
    }
    size_t n = strlen(v);
    while (n && v[n - 1] == '/')
        n--;
    if (n == 0 || n >= sizeof(c->endpoint) || memchr(v, '/', n) || memchr(v, '@', n)) {
        snprintf(err, errlen, "s3:// endpoint must be [http://|https://]HOST[:PORT], got '%s'", v);
        return -1;
    }
    memcpy(c->endpoint, v, n);
    c->endpoint[n] = '\0';
    c->https = scheme >= 0 ? scheme == 1 : !is_loopback(c->endpoint);
    return 0;
}

static int set_param(struct s3_config *c, const char *name, const char *v, bool *have_endpoint, char *err,
                     size_t errlen)
{
    if (strcmp(name, "endpoint") == 0) {
        *have_endpoint = true;
        return set_endpoint(c, v, err, errlen);
    }
    if (strcmp(name, "region") == 0) {
        if (!v[0] || strlen(v) >= sizeof(c->region) || !all_chars_in(v, "-")) {
            snprintf(err, errlen, "s3:// region '%s' is not a region name (letters, digits, '-')", v);
            return -1;
        }
        memcpy(c->region, v, strlen(v) + 1);
        return 0;
    }
    if (strcmp(name, "path_style") == 0) {
        if (!strcmp(v, "true") || !strcmp(v, "1")) {
            c->path_style = true;
        } else if (!strcmp(v, "false") || !strcmp(v, "0")) {
            c->path_style = false;
        } else {
            snprintf(err, errlen, "s3:// path_style must be true or false, got '%s'", v);
            return -1;
        }
        return 0;
    }
    snprintf(err, errlen, "s3:// URL has an unknown parameter '%s' (known: endpoint, region, path_style)", name);
    return -1;
}

int s3_parse_url(const char *url, struct s3_config *c, char *err, size_t errlen)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->region, sizeof(c->region), "us-east-1");
    if (strncmp(url, "s3://", 5) != 0) {
        snprintf(err, errlen, "not an s3:// URL");
        return -1;
    }
    const char *p = url + 5;
    size_t blen = strcspn(p, "/?");
    if (blen == 0 || blen >= sizeof(c->bucket)) {
        snprintf(err, errlen, "s3:// URL needs a bucket name of 1 to %zu characters: s3://BUCKET[/PREFIX][?...]",
                 sizeof(c->bucket) - 1);
        return -1;
    }
    memcpy(c->bucket, p, blen);
    if (!all_chars_in(c->bucket, ".-_")) {
        snprintf(err, errlen, "s3:// bucket name '%s' has characters other than letters, digits, '.', '-', '_'",
                 c->bucket);
        return -1;
    }
    p += blen;

    if (*p == '/') {
        size_t plen = strcspn(p, "?");
        const char *s = p, *e = p + plen;
        while (s < e && *s == '/')
            s++;
        while (e > s && e[-1] == '/')
            e--;
        char decoded[sizeof(c->prefix)];
        if ((size_t)(e - s) + 2 > sizeof(c->prefix) || url_decode(s, (size_t)(e - s), decoded, sizeof(decoded) - 1)) {
            snprintf(err, errlen, "s3:// prefix is malformed or longer than %zu bytes", sizeof(c->prefix) - 2);
            return -1;
        }
        size_t dlen = strlen(decoded); /* at most sizeof(prefix) - 2: room for the '/' */
        if (dlen) {
            memcpy(c->prefix, decoded, dlen);
            c->prefix[dlen] = '/';
            c->prefix[dlen + 1] = '\0';
        }
        p += plen;
    }

    bool have_endpoint = false;
    if (*p == '?') {
        p++;
        while (*p) {
            size_t n = strcspn(p, "&");
            const char *eq = memchr(p, '=', n);
            char name[32], value[512];
            size_t nlen = eq ? (size_t)(eq - p) : n;
            if (!eq || nlen == 0 || nlen >= sizeof(name)) {
                snprintf(err, errlen, "s3:// URL parameter '%.*s' is not NAME=VALUE", (int)n, p);
                return -1;
            }
            memcpy(name, p, nlen);
            name[nlen] = '\0';
            if (url_decode(eq + 1, n - nlen - 1, value, sizeof(value))) {
                snprintf(err, errlen, "s3:// URL parameter %s has a malformed or too long value", name);
                return -1;
            }
            if (set_param(c, name, value, &have_endpoint, err, errlen))
                return -1;
            p += n;
            if (*p == '&')
                p++;
        }
    }
    if (!have_endpoint) {
        snprintf(c->endpoint, sizeof(c->endpoint), "s3.%s.amazonaws.com", c->region);
        c->https = true;
    }
    return 0;
}

/* ---- one HTTP exchange ---- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;
static void curl_init(void) { curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

static CURL *take_handle(struct s3_store *s)
{
    CURL *h = NULL;
    pthread_mutex_lock(&s->mu);
    if (s->nidle)
        h = s->idle[--s->nidle];
    pthread_mutex_unlock(&s->mu);
    return h ? h : curl_easy_init();
}

static void give_handle(struct s3_store *s, CURL *h)
{
    pthread_mutex_lock(&s->mu);
    if (s->nidle < S3_POOL_MAX) {
        s->idle[s->nidle++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&s->mu);
    if (h)
        curl_easy_cleanup(h);
}

struct sink {
    struct buf *out;
    size_t start, cap;
};

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    struct sink *k = arg;
    size_t len = size * n;
    if (k->out->len - k->start + len > k->cap)
        return 0; /* more than we asked for: abort the transfer (CURLE_WRITE_ERROR) */
    buf_append(k->out, p, len);
    return len;
}

struct source {
    const uint8_t *data;
    size_t len, pos;
};

static size_t on_read(char *p, size_t size, size_t n, void *arg)
{
    struct source *src = arg;
    size_t len = size * n, left = src->len - src->pos;
    if (len > left)
        len = left;
    if (len == 0)
        return 0; /* also keeps an empty object's NULL data out of memcpy */
    memcpy(p, src->data + src->pos, len);
    src->pos += len;
    return len;
}

/* curl rewinds the body when it resends a request, e.g. on a kept-alive connection the server
 * had closed. */
static int on_seek(void *arg, curl_off_t off, int origin)
{
    struct source *src = arg;
    if (origin != SEEK_SET || off < 0 || (uint64_t)off > src->len)
        return CURL_SEEKFUNC_CANTSEEK;
    src->pos = (size_t)off;
    return CURL_SEEKFUNC_OK;
}

struct call {
    const char *method;
    const char *key;   /* full key, store prefix included; NULL: the bucket itself */
    const char *label; /* what logs name when key is NULL */
    const struct sigv4_pair *query;
    size_t nquery;
    const void *body; /* PUT */
    size_t body_len;
    const char *range; /* Range header value, or NULL */
    long ok[2];        /* acceptable statuses */
    size_t max_response;
};

struct outcome {
    CURLcode curl;
    long status;
    char detail[CURL_ERROR_SIZE]; /* curl's message, or S3's error code and message */
    char code[64];                /* S3 error code, "" when none */
};

/* The S3 error document's Code (and Message) into the outcome, for logs and retry decisions. */
static void read_error(const struct buf *body, size_t start, struct outcome *o)
{
    if (!body->data || body->len <= start)
        return;
    const char *p = (const char *)body->data + start, *end = (const char *)body->data + body->len;
    const char *s, *e;
    if (!s3_xml_find(p, end, "Code", &s, &e))
        return;
    snprintf(o->code, sizeof(o->code), "%.*s", (int)(e - s), s);
    const char *ms = "", *me = ms;
    s3_xml_find(p, end, "Message", &ms, &me);
    int mlen = (int)(me - ms) > 200 ? 200 : (int)(me - ms);
    snprintf(o->detail, sizeof(o->detail), "%s%s%.*s", o->code, mlen ? ": " : "", mlen, ms);
    for (char *c = o->detail; *c; c++)
        if (*c == '\n' || *c == '\r')
            *c = ' ';
}

static void append_str(struct buf *b, const char *s) { buf_append(b, s, strlen(s)); }

/* One attempt: sign, send, receive into out (from out->len on). */
static void attempt(struct s3_store *s, CURL *h, const struct call *c, const char *payload_hash, struct buf *out,
                    struct outcome *o, long timeout_ms)
{
    memset(o, 0, sizeof(*o));
    struct buf path, url, auth;
    buf_init(&path);
    buf_init(&url);
    buf_init(&auth);
    append_str(&path, s->base_path);
    if (c->key) {
        append_str(&path, "/");
        append_str(&path, c->key);
    }
    if (path.len == 0)
        append_str(&path, "/");
    buf_append(&path, "", 1);

    append_str(&url, s->cfg.https ? "https://" : "http://");
    append_str(&url, s->host);
    sigv4_uri_encode(&url, (const char *)path.data, path.len - 1, true);
    for (size_t i = 0; i < c->nquery; i++) {
        append_str(&url, i ? "&" : "?");
        sigv4_uri_encode(&url, c->query[i].name, strlen(c->query[i].name), false);
        append_str(&url, "=");
        sigv4_uri_encode(&url, c->query[i].value, strlen(c->query[i].value), false);
    }
    buf_append(&url, "", 1);

    char amz_date[SIGV4_DATE_LEN];
    sigv4_amz_date(time(NULL), amz_date);
    struct sigv4_pair hdr[5];
    size_t nh = 0;
    hdr[nh++] = (struct sigv4_pair){"host", s->host};
    hdr[nh++] = (struct sigv4_pair){"x-amz-content-sha256", payload_hash};
    hdr[nh++] = (struct sigv4_pair){"x-amz-date", amz_date};
    if (s->session_token)
        hdr[nh++] = (struct sigv4_pair){"x-amz-security-token", s->session_token};
    if (c->range)
        hdr[nh++] = (struct sigv4_pair){"range", c->range};
    struct sigv4_request rq = {.method = c->method, .path = (const char *)path.data, .query = c->query,
                               .nquery = c->nquery, .headers = hdr, .nheaders = nh, .payload_hash = payload_hash};
    struct sigv4_key key = {s->access_key, s->secret_key, s->cfg.region, "s3"};
    if (sigv4_authorization(&rq, &key, amz_date, &auth) != 0)
        abort(); /* five headers with short names: cannot happen */

    /* The exact strings we signed go out as headers; "Expect:" stops curl from waiting for a
     * 100 Continue before large bodies. */
    struct curl_slist *headers = NULL;
    struct buf line;
    buf_init(&line);
    for (size_t i = 0; i < nh; i++) {
        buf_reset(&line);
        append_str(&line, hdr[i].name);
        append_str(&line, ": ");
        append_str(&line, hdr[i].value);
        buf_append(&line, "", 1);
        headers = curl_slist_append(headers, (const char *)line.data);
    }
    buf_reset(&line);
    append_str(&line, "Authorization: ");
    append_str(&line, (const char *)auth.data);
    buf_append(&line, "", 1);
    headers = curl_slist_append(headers, (const char *)line.data);
    headers = curl_slist_append(headers, "Expect:");
    OPENSSL_cleanse(line.data, line.cap);
    buf_free(&line);
    if (!headers)
        abort();

    struct sink sink = {.out = out, .start = out->len, .cap = c->max_response};
    struct source src = {.data = c->body, .len = c->body_len};
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_reset(h); /* options only: the connection cache stays */
    curl_easy_setopt(h, CURLOPT_URL, (const char *)url.data);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L); /* keys with "." or ".." segments stay as they are */
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)S3_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
    if (strcmp(c->method, "PUT") == 0) {
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)c->body_len);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(h, CURLOPT_READDATA, &src);
        curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, on_seek);
        curl_easy_setopt(h, CURLOPT_SEEKDATA, &src);
    } else if (strcmp(c->method, "GET") != 0) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, c->method);
    }

    o->curl = curl_easy_perform(h);
    if (o->curl == CURLE_WRITE_ERROR) {
        snprintf(o->detail, sizeof(o->detail), "the response is longer than the %zu bytes expected", c->max_response);
    } else if (o->curl != CURLE_OK) {
        snprintf(o->detail, sizeof(o->detail), "%s", errbuf[0] ? errbuf : curl_easy_strerror(o->curl));
    } else {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &o->status);
        if (o->status != c->ok[0] && o->status != c->ok[1])
            read_error(out, sink.start, o);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
    curl_slist_free_all(headers);
    buf_free(&path);
    buf_free(&url);
    buf_free(&auth);
}

static bool retryable(const struct outcome *o)
{
    switch (o->curl) {
    case CURLE_OK:
        return o->status >= 500 || o->status == 429 || !strcmp(o->code, "SlowDown") ||
               !strcmp(o->code, "RequestTimeout");
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_WRITE_ERROR: /* our own cap on the response size */
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_OUT_OF_MEMORY:
        return false;
    default:
        return true; /* refused, reset, timed out, name lookup, ... */
    }
}

static void describe(const struct outcome *o, char *out, size_t n)
{
    if (o->curl != CURLE_OK)
        snprintf(out, n, "%s", o->detail);
    else
        snprintf(out, n, "HTTP %ld%s%s", o->status, o->detail[0] ? " " : "", o->detail);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t rng_state;

/* splitmix64 over an atomic counter: cheap, thread-safe, good enough for jitter. */
static uint64_t rand64(void)
{
    uint64_t z = __atomic_add_fetch(&rng_state, 0x9E3779B97F4A7C15ull, __ATOMIC_RELAXED);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Runs a call with retries. Returns 0 when the final status is one of c->ok (the body is then in
 * out from its old length on); otherwise logs one error line, leaves out as it was, returns -1. */
static int run_call(struct s3_store *s, const struct call *c, struct buf *out, long *status)
{
    char payload_hash[SIGV4_HEX_LEN];
    sigv4_sha256_hex(c->body ? c->body : "", c->body_len, payload_hash);
    const char *what = c->key ? c->key : c->label;
    size_t start = out->len;
    int64_t deadline = now_ms() + S3_OP_DEADLINE_MS;
    struct outcome o;
    char desc[CURL_ERROR_SIZE + 32];
    int n;
    for (n = 1;; n++) {
        out->len = start;
        int64_t left = deadline - now_ms();
        CURL *h = take_handle(s);
        if (!h) {
            log_error("objstore s3: %s s3://%s/%s: cannot create a curl handle", c->method, s->cfg.bucket, what);
            return -1;
        }
        long timeout = left < S3_REQUEST_TIMEOUT_MS ? (long)left : S3_REQUEST_TIMEOUT_MS;
        attempt(s, h, c, payload_hash, out, &o, timeout > 1 ? timeout : 1);
        give_handle(s, h);
        if (o.curl == CURLE_OK && (o.status == c->ok[0] || o.status == c->ok[1])) {
            *status = o.status;
            return 0;
        }
        describe(&o, desc, sizeof(desc));
        if (!retryable(&o) || n == S3_MAX_ATTEMPTS)
            break;
        long cap = S3_BACKOFF_BASE_MS << (n - 1);
        if (cap > S3_BACKOFF_CAP_MS)
            cap = S3_BACKOFF_CAP_MS;
        long pause = (long)(rand64() % (uint64_t)(cap + 1));
        if (now_ms() + pause >= deadline)
            break;
        log_warn("objstore s3: %s s3://%s/%s: %s (attempt %d of %d), retrying in %ld ms", c->method, s->cfg.bucket,
                 what, desc, n, S3_MAX_ATTEMPTS, pause);
        sleep_ms(pause);
    }
    out->len = start;
    log_error("objstore s3: %s s3://%s/%s failed after %d attempt%s: %s", c->method, s->cfg.bucket, what, n,
              n == 1 ? "" : "s", desc);
    return -1;
}

/* ---- the operations ---- */

static int full_key(const struct s3_store *s, const char *op, const char *key, char *out)
{
    size_t pl = strlen(s->cfg.prefix), kl = strlen(key);
    if (kl == 0 || pl + kl > KEY_MAX) {
        log_error("objstore s3: %s: invalid key '%s' (empty, or over %d bytes with the prefix)", op, key, KEY_MAX);
        return -1;
    }
    memcpy(out, s->cfg.prefix, pl);
    memcpy(out + pl, key, kl + 1);
    return 0;
}

static int s3_put(struct objstore *os, const char *key, const void *data, size_t len)
{
    struct s3_store *s = (struct s3_store *)os;
    char k[KEY_MAX + 1];
    if (full_key(s, "put", key, k))
        return -1;
    struct call c = {.method = "PUT", .key = k, .body = data, .body_len = len, .ok = {200, 200},
                     .max_response = RESPONSE_MAX};
    struct buf resp;
    buf_init(&resp);
    long status;
    int rc = run_call(s, &c, &resp, &status);
    buf_free(&resp);
    return rc;
}

static int s3_get_range(struct objstore *os, const char *key, uint64_t off, size_t len, struct buf *out)
{
    struct s3_store *s = (struct s3_store *)os;
    char k[KEY_MAX + 1];
    if (full_key(s, "get", key, k))
        return -1;
    if (len == 0)
        return 0; /* "bytes=a-(a-1)" is not a range */
    char range[64];
    snprintf(range, sizeof(range), "bytes=%llu-%llu", (unsigned long long)off, (unsigned long long)(off + len - 1));
    /* 200 is the whole object: the range itself only when it starts at 0 and the lengths agree. */
    struct call c = {.method = "GET", .key = k, .range = range, .ok = {206, off == 0 ? 200 : 206},
                     .max_response = len + ERROR_SLACK};
    size_t start = out->len;
    long status;
    if (run_call(s, &c, out, &status) != 0)
        return -1;
    if (out->len - start != len) {
        log_error("objstore s3: GET s3://%s/%s range %s: HTTP %ld with %zu bytes instead of %zu", s->cfg.bucket, k,
                  range, status, out->len - start, len);
        out->len = start;
        return -1;
    }
    return 0;
}

static int s3_del(struct objstore *os, const char *key)
{
    struct s3_store *s = (struct s3_store *)os;
    char k[KEY_MAX + 1];
    if (full_key(s, "delete", key, k))
        return -1;
    /* S3 answers 204 also for a key that does not exist, as the file backend succeeds. */
    struct call c = {.method = "DELETE", .key = k, .ok = {204, 200}, .max_response = RESPONSE_MAX};
    struct buf resp;
    buf_init(&resp);
    long status;
    int rc = run_call(s, &c, &resp, &status);
    buf_free(&resp);
    return rc;
}

struct listed {
    char *key;
    uint64_t size;
};

struct listing {
    struct listed *v;
    size_t n, cap;
};

static void listing_add(struct listing *l, struct buf *key, uint64_t size)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 256;
        l->v = realloc(l->v, l->cap * sizeof(*l->v));
        if (!l->v)
            abort();
    }
    char *k = malloc(key->len + 1);
    if (!k)
        abort();
    memcpy(k, key->data, key->len);
    k[key->len] = '\0';
    l->v[l->n].key = k;
    l->v[l->n].size = size;
    l->n++;
}

/* Reads one ListObjectsV2 page: its <Contents> entries into l (keys without the store prefix),
 * the next continuation token into token ("" when the listing is complete). -1 on bad XML. */
static int parse_page(const struct s3_store *s, const struct buf *page, struct listing *l, struct buf *token)
{
    buf_reset(token);
    if (!page->data)
        return 0; /* an empty body: no keys, no more pages */
    const char *p = (const char *)page->data, *end = p + page->len;
    size_t pl = strlen(s->cfg.prefix);
    struct buf key;
    buf_init(&key);
    const char *cs, *ce;
    int rc = 0;
    while (rc == 0 && s3_xml_find(p, end, "Contents", &cs, &ce)) {
        const char *ks, *ke, *ss, *se;
        char num[24];
        char *numend;
        buf_reset(&key);
        if (!s3_xml_find(cs, ce, "Key", &ks, &ke) || !s3_xml_find(cs, ce, "Size", &ss, &se) || se - ss < 1 ||
            se - ss >= (long)sizeof(num) || s3_xml_unescape(ks, ke, &key) != 0) {
            rc = -1;
            break;
        }
        memcpy(num, ss, (size_t)(se - ss));
        num[se - ss] = '\0';
        errno = 0;
        unsigned long long size = strtoull(num, &numend, 10);
        if (*numend || errno || num[0] == '-' || memchr(key.data, '\0', key.len)) {
            rc = -1;
            break;
        }
        /* The server filtered by our prefix; checked again so a stray key cannot escape it. */
        if (key.len > pl && memcmp(key.data, s->cfg.prefix, pl) == 0) {
            buf_consume(&key, pl);
            listing_add(l, &key, size);
        }
        p = ce;
    }
    buf_free(&key);
    const char *ts, *te;
    const char *all = (const char *)page->data;
    if (rc == 0 && s3_xml_find(all, end, "IsTruncated", &ts, &te) && te - ts == 4 && memcmp(ts, "true", 4) == 0) {
        if (!s3_xml_find(all, end, "NextContinuationToken", &ts, &te) || te == ts ||
            s3_xml_unescape(ts, te, token) != 0)
            return -1;
        buf_append(token, "", 1); /* a C string for the next query */
        token->len--;
    }
    return rc;
}

static int s3_list(struct objstore *os, const char *prefix, void (*cb)(const char *key, uint64_t size, void *arg),
                   void *arg)
{
    struct s3_store *s = (struct s3_store *)os;
    char full[KEY_MAX + 1];
    size_t pl = strlen(s->cfg.prefix), ul = prefix ? strlen(prefix) : 0;
    if (pl + ul > KEY_MAX) {
        log_error("objstore s3: list: prefix '%s' too long", prefix);
        return -1;
    }
    memcpy(full, s->cfg.prefix, pl);
    memcpy(full + pl, prefix ? prefix : "", ul + 1);
    char page_size[16];
    snprintf(page_size, sizeof(page_size), "%d", s->list_page_size);

    struct listing l = {0};
    struct buf page, token, sent;
    buf_init(&page);
    buf_init(&token);
    buf_init(&sent);
    int rc = 0;
    for (int pages = 0;; pages++) {
        struct sigv4_pair q[4];
        size_t nq = 0;
        q[nq++] = (struct sigv4_pair){"list-type", "2"};
        q[nq++] = (struct sigv4_pair){"prefix", full};
        buf_reset(&sent); /* the token this page asks with; parse_page overwrites token */
        if (token.len) {
            buf_append(&sent, token.data, token.len + 1);
            q[nq++] = (struct sigv4_pair){"continuation-token", (const char *)sent.data};
        }
        if (s->list_page_size > 0)
            q[nq++] = (struct sigv4_pair){"max-keys", page_size};
        char label[KEY_MAX + 32];
        snprintf(label, sizeof(label), "?list-type=2&prefix=%s", full);
        struct call c = {.method = "GET", .label = label, .query = q, .nquery = nq, .ok = {200, 200},
                         .max_response = RESPONSE_MAX};
        buf_reset(&page);
        long status;
        if (run_call(s, &c, &page, &status) != 0) {
            rc = -1;
            break;
        }
        if (parse_page(s, &page, &l, &token) != 0) {
            log_error("objstore s3: list s3://%s/%s: page %d is not a ListObjectsV2 result we can read",
                      s->cfg.bucket, full, pages + 1);
            rc = -1;
            break;
        }
        if (!token.len)
            break;
        if (token.len + 1 == sent.len && memcmp(token.data, sent.data, token.len) == 0) {
            log_error("objstore s3: list s3://%s/%s: the server repeats continuation token %s", s->cfg.bucket, full,
                      (const char *)token.data);
            rc = -1;
            break;
        }
    }
    /* Like the file backend: all keys or none; S3 lists them in byte order already. */
    for (size_t i = 0; i < l.n; i++) {
        if (rc == 0)
            cb(l.v[i].key, l.v[i].size, arg);
        free(l.v[i].key);
    }
    free(l.v);
    buf_free(&page);
    buf_free(&token);
    buf_free(&sent);
    return rc;
}

static void free_secret(char *p)
{
    if (p) {
        OPENSSL_cleanse(p, strlen(p));
        free(p);
    }
}

static void s3_close(struct objstore *os)
{
    struct s3_store *s = (struct s3_store *)os;
    for (int i = 0; i < s->nidle; i++)
        curl_easy_cleanup(s->idle[i]);
    pthread_mutex_destroy(&s->mu);
    free(s->access_key);
    free_secret(s->secret_key);
    free_secret(s->session_token);
    free(s);
}

static const struct objstore_ops s3_ops = {
    .put = s3_put,
    .get_range = s3_get_range,
    .del = s3_del,
    .list = s3_list,
    .close = s3_close,
};

void objstore_s3_set_list_page_size(struct objstore *os, int max_keys)
{
    ((struct s3_store *)os)->list_page_size = max_keys;
}

static char *env_dup(const char *name)
{
    const char *v = getenv(name);
    if (!v || !v[0])
        return NULL;
    char *d = strdup(v);
    if (!d)
        abort();
    return d;
}

struct objstore *objstore_s3_open(const char *url, char *err, size_t errlen)
{
    struct s3_config cfg;
    if (s3_parse_url(url, &cfg, err, errlen) != 0)
        return NULL;
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK) {
        snprintf(err, errlen, "libcurl initialisation failed: %s", curl_easy_strerror(curl_init_rc));
        return NULL;
    }
    struct s3_store *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->base.ops = &s3_ops;
    s->cfg = cfg;
    s->access_key = env_dup("AWS_ACCESS_KEY_ID");
    s->secret_key = env_dup("AWS_SECRET_ACCESS_KEY");
    s->session_token = env_dup("AWS_SESSION_TOKEN");
    pthread_mutex_init(&s->mu, NULL);
    if (!s->access_key || !s->secret_key) {
        snprintf(err, errlen, "s3:// needs credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                              "(and AWS_SESSION_TOKEN for temporary ones)");
        s3_close(&s->base);
        return NULL;
    }
    if (cfg.path_style) {
        snprintf(s->host, sizeof(s->host), "%s", cfg.endpoint);
        snprintf(s->base_path, sizeof(s->base_path), "/%s", cfg.bucket);
    } else {
        snprintf(s->host, sizeof(s->host), "%s.%s", cfg.bucket, cfg.endpoint);
    }
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
        seed = (uint64_t)now_ms() ^ (uint64_t)(uintptr_t)s;
    __atomic_fetch_xor(&rng_state, seed, __ATOMIC_RELAXED);
    return &s->base;
}
