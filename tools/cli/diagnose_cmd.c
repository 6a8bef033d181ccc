/* `sluice diagnose-connection`: what a Kafka client goes through, step by step and timed. It connects
 * to the bootstrap (name resolution, TCP connect, ApiVersions), asks Metadata for the brokers, then
 * connects to every advertised broker (ApiVersions) in parallel. Speaks Kafka itself, with the
 * agent's own codec, so that each step's latency and failure is its own. When the bootstrap works
 * but brokers do not, it explains the likely cause and the agent setting to change: the classic
 * "advertised listeners" trap of every Kafka deployment behind a load balancer or in a container. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "messages.h"
#include "protocol/codec.h"
#include "protocol/errors.h"
#include "tools/cli/cli_opts.h"
#include "util/arena.h"
#include "util/buf.h"

#define PROG "sluice diagnose-connection"
#define MAX_BROKERS 4096          /* sluice's own limit of slots; more are listed as not probed */
#define MAX_PARALLEL 64           /* broker probes at once */
#define MAX_RESPONSE (16u << 20)  /* a larger length prefix is a protocol error */
#define HOST_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:"
#define METADATA_MAX_VERSION 12
#define API_VERSIONS_MAX_VERSION 3

struct diag_opts {
    const char *host, *client_id;
    int port;
    double timeout;
    bool json;
};

enum result { DR_OK, DR_REFUSED, DR_TIMEOUT, DR_NO_NAME, DR_UNREACHABLE, DR_PROTOCOL, DR_BAD_ADDRESS, DR_FAILED };
static const char *const result_names[] = {
    [DR_OK] = "ok",
    [DR_REFUSED] = "connection refused",
    [DR_TIMEOUT] = "timeout",
    [DR_NO_NAME] = "name does not resolve",
    [DR_UNREACHABLE] = "unreachable",
    [DR_PROTOCOL] = "protocol error",
    [DR_BAD_ADDRESS] = "invalid address",
    [DR_FAILED] = "connection failed",
};

/* One connection: the bootstrap or an advertised broker. Latencies < 0: step not reached. */
struct probe {
    int32_t node_id;
    char host[256];
    int port;
    enum result result;
    char detail[320];
    char addr[INET6_ADDRSTRLEN]; /* the address connected to (or last tried) */
    bool have_addr;
    double resolve_ms, connect_ms, api_ms;
    int api_version, api_ranges;
    int metadata_max; /* highest Metadata version advertised, -1: none */
    int fd;           /* kept open after a successful probe only when asked (the bootstrap) */
};

struct diag {
    struct diag_opts o;
    struct probe boot;
    /* Metadata */
    enum result md_result;
    char md_detail[320];
    double md_ms;
    int md_version;
    char cluster_id[256];
    bool cluster_id_null;
    int32_t controller_id;
    int nbrokers, nlisted; /* probed, listed in Metadata */
    struct probe *brokers;
    int next;              /* the next broker a probe thread takes (atomic) */
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double ms_between(uint64_t a, uint64_t b)
{
    return (double)(b - a) / 1e6;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: " PROG " --bootstrap-host H [flags]\n"
               "  --bootstrap-host H     the address clients bootstrap from (required)\n"
               "  --bootstrap-port P     (default 9092)\n"
               "  --client-id ID         the client id sent (default sluice-diagnose; the agent reads\n"
               "                         ws_host_override=HOST in it)\n"
               "  --timeout SECONDS      bound of each connection: resolve, connect, ApiVersions (default 5)\n"
               "  --json                 print one JSON object\n"
               "Exit status: 0 when the bootstrap and every advertised broker answered, 1 otherwise,\n"
               "2 for bad flags.\n");
}

static int parse_opts(struct diag_opts *o, int argc, char **argv)
{
    static char printable[96];
    for (int c = 0x20; c < 0x7f; c++)
        printable[c - 0x20] = (char)c;
    *o = (struct diag_opts){.port = 9092, .client_id = "sluice-diagnose", .timeout = 5};
    const struct cli_opt opts[] = {
        {"bootstrap-host", CLI_STRING, &o->host, 1, 253, "a host name or address", HOST_CHARS, NULL},
        {"bootstrap-port", CLI_INT, &o->port, 1, 65535, "1..65535", NULL, NULL},
        {"client-id", CLI_STRING, &o->client_id, 0, 1000, "at most 1000 printable characters", printable, NULL},
        {"timeout", CLI_DOUBLE, &o->timeout, 0.001, 3600, "seconds, 0.001..3600", NULL, NULL},
        {"json", CLI_FLAG, &o->json, 0, 0, NULL, NULL, NULL},
        {NULL, CLI_FLAG, NULL, 0, 0, NULL, NULL, NULL},
    };
    int rc = cli_parse(PROG, opts, argc, argv, usage);
    if (rc)
        return rc;
    if (!o->host)
        return cli_error(PROG, "missing --bootstrap-host");
    return 0;
}

static void set_result(struct probe *p, enum result r, const char *detail)
{
    p->result = r;
    snprintf(p->detail, sizeof(p->detail), "%s", detail);
}

/* ---- name resolution, bounded ---- */

/* RFC 6761 6.4: names under .invalid never resolve, and resolvers should say so without asking
 * anybody. glibc would ask the configured DNS server, so we answer them here. */
static bool is_invalid_tld(const char *host)
{
    size_t n = strlen(host);
    if (n && host[n - 1] == '.')
        n--;
    return (n == 7 && !strncasecmp(host, "invalid", 7)) || (n > 7 && !strncasecmp(host + n - 8, ".invalid", 8));
}

/* What an abandoned lookup still writes into: freed only when it finished or was cancelled. */
struct lookup {
    struct gaicb cb;
    struct addrinfo hints;
    char name[256], service[8];
};

/* Resolves p->host:p->port before deadline. Returns the addresses or NULL (p->result set). */
static struct addrinfo *resolve(struct probe *p, uint64_t deadline)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV}, *res;
    char service[8];
    snprintf(service, sizeof(service), "%d", p->port);
    if (getaddrinfo(p->host, service, &hints, &res) == 0)
        return res; /* an address: nothing to ask */
    if (is_invalid_tld(p->host)) {
        set_result(p, DR_NO_NAME, "names under .invalid never resolve (RFC 6761)");
        return NULL;
    }
    struct lookup *l = calloc(1, sizeof(*l));
    if (!l) {
        set_result(p, DR_FAILED, "out of memory");
        return NULL;
    }
    snprintf(l->name, sizeof(l->name), "%s", p->host);
    snprintf(l->service, sizeof(l->service), "%s", service);
    l->hints = (struct addrinfo){.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG};
    l->cb = (struct gaicb){.ar_name = l->name, .ar_service = l->service, .ar_request = &l->hints};
    struct gaicb *list[1] = {&l->cb};
    int rc = getaddrinfo_a(GAI_NOWAIT, list, 1, NULL);
    while (rc == 0 && (rc = gai_error(&l->cb)) == EAI_INPROGRESS) {
        uint64_t now = now_ns();
        if (now >= deadline)
            break;
        struct timespec ts = {.tv_sec = (time_t)((deadline - now) / 1000000000ull),
                              .tv_nsec = (long)((deadline - now) % 1000000000ull)};
        gai_suspend((const struct gaicb *const *)list, 1, &ts);
        rc = 0;
    }
    if (rc == EAI_INPROGRESS) {
        if (gai_cancel(&l->cb) == EAI_CANCELED)
            free(l);
        /* else the lookup thread still owns l: left to it (the process ends soon) */
        set_result(p, DR_TIMEOUT, "name resolution timed out");
        return NULL;
    }
    res = l->cb.ar_result;
    free(l);
    if (rc == 0 && res)
        return res;
    char detail[320];
    snprintf(detail, sizeof(detail), "%s: %s", p->host, gai_strerror(rc));
    set_result(p, rc == EAI_NONAME || rc == EAI_NODATA || rc == EAI_AGAIN || rc == EAI_FAIL ? DR_NO_NAME : DR_FAILED,
               detail);
    return NULL;
}

/* ---- a connection and its requests, bounded by one deadline ---- */

/* Waits for events on fd until deadline: 1 ready, 0 timed out, -1 error. */
static int wait_fd(int fd, short events, uint64_t deadline)
{
    for (;;) {
        uint64_t now = now_ns();
        if (now >= deadline)
            return 0;
        uint64_t left_ms = (deadline - now + 999999) / 1000000;
        struct pollfd pfd = {.fd = fd, .events = events};
        int n = poll(&pfd, 1, left_ms > 60000 ? 60000 : (int)left_ms);
        if (n > 0)
            return 1;
        if (n < 0 && errno != EINTR)
            return -1;
    }
}

static enum result errno_result(int err)
{
    switch (err) {
    case ECONNREFUSED: return DR_REFUSED;
    case ETIMEDOUT: return DR_TIMEOUT;
    case EHOSTUNREACH: case ENETUNREACH: case ENETDOWN: case EHOSTDOWN: case EADDRNOTAVAIL: return DR_UNREACHABLE;
    default: return DR_FAILED;
    }
}

static void format_addr(const struct sockaddr *sa, char *out, size_t len)
{
    const void *a = sa->sa_family == AF_INET6 ? (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr
                                              : (const void *)&((const struct sockaddr_in *)sa)->sin_addr;
    if (!inet_ntop(sa->sa_family, a, out, (socklen_t)len))
        snprintf(out, len, "?");
}

/* Connects to one of the addresses, in order, before deadline. Returns the socket or -1. */
static int connect_any(struct probe *p, struct addrinfo *res, uint64_t deadline)
{
    int err = 0;
    bool timed_out = false;
    for (struct addrinfo *ai = res; ai && !timed_out; ai = ai->ai_next) {
        format_addr(ai->ai_addr, p->addr, sizeof(p->addr));
        p->have_addr = true;
        int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            err = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            return fd;
        err = errno;
        if (err == EINPROGRESS) {
            int w = wait_fd(fd, POLLOUT, deadline);
            socklen_t len = sizeof(err);
            if (w == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0)
                return fd;
            if (w == 0)
                timed_out = true;
            else if (w < 0)
                err = errno;
        }
        close(fd);
    }
    char detail[320];
    if (timed_out) {
        snprintf(detail, sizeof(detail), "no answer to TCP connect within the timeout");
        set_result(p, DR_TIMEOUT, detail);
    } else {
        snprintf(detail, sizeof(detail), "%s", strerror(err));
        set_result(p, errno_result(err), detail);
    }
    return -1;
}

/* Sends all of data: 0, -1 on error, -2 on timeout. */
static int send_all(int fd, const uint8_t *data, size_t len, uint64_t deadline)
{
    while (len) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n > 0) {
            data += n;
            len -= (size_t)n;
        } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            int w = wait_fd(fd, POLLOUT, deadline);
            if (w != 1)
                return w == 0 ? -2 : -1;
        } else {
            return -1;
        }
    }
    return 0;
}

/* Reads exactly len bytes: 0, -1 on error or a closed connection (errno 0), -2 on timeout. */
static int recv_all(int fd, uint8_t *data, size_t len, uint64_t deadline)
{
    while (len) {
        ssize_t n = recv(fd, data, len, 0);
        if (n > 0) {
            data += n;
            len -= (size_t)n;
        } else if (n == 0) {
            errno = 0;
            return -1;
        } else if (errno == EAGAIN || errno == EINTR) {
            int w = wait_fd(fd, POLLIN, deadline);
            if (w != 1)
                return w == 0 ? -2 : -1;
        } else {
            return -1;
        }
    }
    return 0;
}

/* One request and its response frame: encodes header + body, reads the length-prefixed answer
 * (at most MAX_RESPONSE bytes) into *resp (malloc'd). Returns DR_OK or the failure, with detail. */
static enum result exchange(int fd, const struct krequest_header *h, const struct kapi *api, const void *body,
                            uint64_t deadline, uint8_t **resp, uint32_t *resp_len, char *detail, size_t dlen)
{
    struct buf w;
    buf_init(&w);
    buf_put_i32(&w, 0); /* the length, filled in below */
    bool flex = kapi_is_flexible(api, h->api_version);
    kencode_request_header(&w, h, flex);
    kencode(api->request, h->api_version, flex, &w, body);
    be32_put(w.data, (uint32_t)(w.len - 4));
    int rc = send_all(fd, w.data, w.len, deadline), err = errno;
    buf_free(&w);
    if (rc) {
        snprintf(detail, dlen, "sending %s: %s", api->name, rc == -2 ? "timed out" : strerror(err));
        return rc == -2 ? DR_TIMEOUT : errno_result(err);
    }
    uint8_t len_be[4];
    rc = recv_all(fd, len_be, 4, deadline);
    uint32_t len = be32_get(len_be);
    if (rc == 0 && (len < 4 || len > MAX_RESPONSE)) {
        snprintf(detail, dlen, "%s answer of %u bytes (want 4..%u)", api->name, len, MAX_RESPONSE);
        return DR_PROTOCOL;
    }
    uint8_t *data = rc == 0 ? malloc(len) : NULL;
    if (rc == 0 && !data) {
        snprintf(detail, dlen, "out of memory");
        return DR_FAILED;
    }
    if (rc == 0)
        rc = recv_all(fd, data, len, deadline);
    if (rc) {
        free(data);
        if (rc == -2) {
            snprintf(detail, dlen, "no %s answer within the timeout", api->name);
            return DR_TIMEOUT;
        }
        if (errno == 0) {
            snprintf(detail, dlen, "connection closed before the %s answer (not a Kafka broker?)", api->name);
            return DR_PROTOCOL;
        }
        snprintf(detail, dlen, "reading the %s answer: %s", api->name, strerror(errno));
        return errno_result(errno);
    }
    *resp = data;
    *resp_len = len;
    return DR_OK;
}

/* Decodes a response frame's header (checking the correlation id) and body, which must use every
 * byte. Returns DR_OK or DR_PROTOCOL with detail. */
static enum result decode_response(const struct kapi *api, int16_t ver, bool header_v1, int32_t correlation,
                                   const uint8_t *data, uint32_t len, void *out, struct arena *a, char *detail,
                                   size_t dlen)
{
    struct kreader r = {.p = data, .end = data + len};
    int32_t corr;
    if (kdecode_response_header(&r, &corr, header_v1) != 0) {
        snprintf(detail, dlen, "%s answer header: %s", api->name, r.error);
        return DR_PROTOCOL;
    }
    if (corr != correlation) {
        snprintf(detail, dlen, "%s answer has correlation id %d, want %d", api->name, corr, correlation);
        return DR_PROTOCOL;
    }
    if (kdecode(api->response, ver, kapi_is_flexible(api, ver), &r, out, a) != 0) {
        snprintf(detail, dlen, "%s v%d answer: %s", api->name, ver, r.error);
        return DR_PROTOCOL;
    }
    if (r.p != r.end) {
        snprintf(detail, dlen, "%s v%d answer: %zu bytes left over", api->name, ver, (size_t)(r.end - r.p));
        return DR_PROTOCOL;
    }
    return DR_OK;
}

/* ApiVersions at the newest version we know; a broker that does not know it answers with a v0
 * body, UNSUPPORTED_VERSION and its own range for key 18 (KIP-511): ask again at that version. */
static enum result api_versions(struct probe *p, int fd, const char *client_id, int32_t *correlation,
                                uint64_t deadline)
{
    const struct kapi *api = kapi_find(KAPI_API_VERSIONS);
    int16_t ver = API_VERSIONS_MAX_VERSION;
    for (int attempt = 0; attempt < 2; attempt++) {
        struct api_versions_request req = {
            .client_software_name = {"sluice-diagnose", 15},
            .client_software_version = {"1", 1},
        };
        struct krequest_header h = {.api_key = KAPI_API_VERSIONS, .api_version = ver,
                                    .correlation_id = (*correlation)++,
                                    .client_id = {client_id, (int32_t)strlen(client_id)}};
        uint8_t *data = NULL;
        uint32_t len = 0;
        enum result r = exchange(fd, &h, api, &req, deadline, &data, &len, p->detail, sizeof(p->detail));
        if (r != DR_OK) {
            p->result = r;
            return r;
        }
        /* The body starts with error_code at every version; UNSUPPORTED_VERSION comes as v0. */
        int16_t body_ver = ver;
        if (len >= 6 && (int16_t)be16_get(data + 4) == KERR_UNSUPPORTED_VERSION)
            body_ver = 0;
        struct arena a;
        arena_init(&a);
        struct api_versions_response resp;
        r = decode_response(api, body_ver, false, h.correlation_id, data, len, &resp, &a, p->detail,
                            sizeof(p->detail));
        free(data); /* nothing below reads a string of the answer */
        int16_t retry = -1;
        if (r == DR_OK && resp.error_code == KERR_UNSUPPORTED_VERSION) {
            for (int i = 0; i < resp.api_keys_count; i++)
                if (resp.api_keys[i].api_key == KAPI_API_VERSIONS && resp.api_keys[i].max_version < ver &&
                    resp.api_keys[i].max_version >= 0)
                    retry = resp.api_keys[i].max_version;
            if (retry < 0 || attempt) {
                snprintf(p->detail, sizeof(p->detail), "ApiVersions v%d: UNSUPPORTED_VERSION", ver);
                r = DR_PROTOCOL;
            }
        } else if (r == DR_OK && resp.error_code) {
            snprintf(p->detail, sizeof(p->detail), "ApiVersions v%d: error %d", ver, resp.error_code);
            r = DR_PROTOCOL;
        } else if (r == DR_OK) {
            p->api_version = ver;
            p->api_ranges = resp.api_keys_count;
            p->metadata_max = -1;
            for (int i = 0; i < resp.api_keys_count; i++)
                if (resp.api_keys[i].api_key == KAPI_METADATA)
                    p->metadata_max = resp.api_keys[i].max_version;
        }
        arena_free(&a);
        if (r != DR_OK) {
            p->result = r;
            return r;
        }
        if (retry < 0)
            return DR_OK;
        ver = retry;
    }
    return DR_OK;
}

/* Resolve, connect, ApiVersions, within timeout; the socket stays open in p->fd if keep. */
static void probe_run(struct probe *p, const char *client_id, double timeout, bool keep)
{
    p->resolve_ms = p->connect_ms = p->api_ms = -1;
    p->fd = -1;
    p->metadata_max = -1;
    if (!*p->host || strlen(p->host) > 253 || strspn(p->host, HOST_CHARS) != strlen(p->host) || p->port < 1 ||
        p->port > 65535) {
        set_result(p, DR_BAD_ADDRESS, "not a host name or address and a port 1..65535");
        return;
    }
    uint64_t t0 = now_ns(), deadline = t0 + (uint64_t)(timeout * 1e9);
    struct addrinfo *res = resolve(p, deadline);
    uint64_t t1 = now_ns();
    if (!res)
        return;
    p->resolve_ms = ms_between(t0, t1);
    int fd = connect_any(p, res, deadline);
    freeaddrinfo(res);
    if (fd < 0)
        return;
    uint64_t t2 = now_ns();
    p->connect_ms = ms_between(t1, t2);
    int32_t correlation = 1;
    if (api_versions(p, fd, client_id, &correlation, deadline) == DR_OK) {
        p->api_ms = ms_between(t2, now_ns());
        set_result(p, DR_OK, "");
        if (keep) {
            p->fd = fd;
            return;
        }
    }
    close(fd);
}

/* ---- Metadata through the bootstrap ---- */

static bool kstr_copy(char *out, size_t len, struct kstr s)
{
    if (s.len < 0 || (size_t)s.len >= len) {
        out[0] = 0;
        return false;
    }
    memcpy(out, s.ptr, (size_t)s.len);
    out[s.len] = 0;
    return true;
}

static void metadata(struct diag *d)
{
    const struct kapi *api = kapi_find(KAPI_METADATA);
    int16_t ver = (int16_t)(d->boot.metadata_max < METADATA_MAX_VERSION ? d->boot.metadata_max : METADATA_MAX_VERSION);
    d->md_version = ver;
    d->md_ms = -1;
    if (ver < 0) {
        d->md_result = DR_PROTOCOL;
        snprintf(d->md_detail, sizeof(d->md_detail), "the bootstrap does not serve Metadata (not in its ApiVersions)");
        return;
    }
    /* Brokers only: no topics (v0 cannot say "none": its empty list means all). */
    struct metadata_request req = {.topics = NULL, .topics_count = 0, .allow_auto_topic_creation = false};
    struct krequest_header h = {.api_key = KAPI_METADATA, .api_version = ver, .correlation_id = 100,
                                .client_id = {d->o.client_id, (int32_t)strlen(d->o.client_id)}};
    uint64_t t0 = now_ns(), deadline = t0 + (uint64_t)(d->o.timeout * 1e9);
    uint8_t *data = NULL;
    uint32_t len = 0;
    d->md_result = exchange(d->boot.fd, &h, api, &req, deadline, &data, &len, d->md_detail, sizeof(d->md_detail));
    if (d->md_result != DR_OK)
        return;
    struct arena a;
    arena_init(&a);
    struct metadata_response resp;
    d->md_result = decode_response(api, ver, kapi_is_flexible(api, ver), h.correlation_id, data, len, &resp, &a,
                                   d->md_detail, sizeof(d->md_detail));
    d->md_ms = ms_between(t0, now_ns());
    if (d->md_result == DR_OK) {
        struct kstr cid = resp.cluster_id;
        d->cluster_id_null = cid.len < 0;
        if (cid.len >= (int32_t)sizeof(d->cluster_id))
            cid.len = (int32_t)sizeof(d->cluster_id) - 1; /* shown shortened */
        kstr_copy(d->cluster_id, sizeof(d->cluster_id), cid);
        d->controller_id = resp.controller_id;
        d->nlisted = resp.brokers_count;
        d->nbrokers = resp.brokers_count < MAX_BROKERS ? resp.brokers_count : MAX_BROKERS;
        d->brokers = calloc((size_t)(d->nbrokers ? d->nbrokers : 1), sizeof(*d->brokers));
        for (int i = 0; d->brokers && i < d->nbrokers; i++) {
            struct probe *p = &d->brokers[i];
            p->node_id = resp.brokers[i].node_id;
            p->port = resp.brokers[i].port;
            if (!kstr_copy(p->host, sizeof(p->host), resp.brokers[i].host))
                p->host[0] = 0; /* null or too long: reported as an invalid address */
        }
        if (!d->brokers) {
            d->md_result = DR_FAILED;
            snprintf(d->md_detail, sizeof(d->md_detail), "out of memory");
        }
    }
    arena_free(&a);
    free(data); /* after the copies: decoded strings point into it */
}

static void *probe_thread(void *arg)
{
    struct diag *d = arg;
    for (;;) {
        int i = __atomic_fetch_add(&d->next, 1, __ATOMIC_RELAXED);
        if (i >= d->nbrokers)
            return NULL;
        probe_run(&d->brokers[i], d->o.client_id, d->o.timeout, false);
    }
}

static void probe_brokers(struct diag *d)
{
    pthread_t threads[MAX_PARALLEL];
    int n = d->nbrokers < MAX_PARALLEL ? d->nbrokers : MAX_PARALLEL, started = 0;
    for (; started < n; started++)
        if (pthread_create(&threads[started], NULL, probe_thread, d))
            break;
    if (started == 0)
        probe_thread(d); /* no thread to be had: one after the other */
    for (int i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
}

/* ---- the likely cause ---- */

/* Host names from the wire are checked to HOST_CHARS before use; a rejected one prints as '?'s. */
static void text_addr(char *out, size_t len, const struct probe *p)
{
    bool ok = *p->host && strspn(p->host, HOST_CHARS) == strlen(p->host);
    snprintf(out, len, strchr(p->host, ':') ? "[%s]:%d" : "%s:%d", ok ? p->host : "?", p->port);
}


struct advice {
    char lines[12][600];
    int n;
};

__attribute__((format(printf, 2, 3))) static void advise(struct advice *a, const char *fmt, ...)
{
    if (a->n >= (int)(sizeof(a->lines) / sizeof(a->lines[0])))
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->lines[a->n++], sizeof(a->lines[0]), fmt, ap);
    va_end(ap);
}

/* A failing broker at the host the bootstrap was reached at (same name, or same address). */
static bool same_host(const struct diag *d, const struct probe *p)
{
    return !strcasecmp(p->host, d->o.host) || (p->have_addr && d->boot.have_addr && !strcmp(p->addr, d->boot.addr));
}

static void explain(const struct diag *d, struct advice *a)
{
    const char *B = d->o.host;
    char boot[300];
    text_addr(boot, sizeof(boot), &d->boot);
    if (d->boot.result != DR_OK) {
        advise(a, "The bootstrap %s did not answer (%s): check that an agent runs there and listens on that "
                  "address (SLUICE_KAFKA_HOST, SLUICE_KAFKA_PORT), and that this network reaches it.",
               boot, result_names[d->boot.result]);
        return;
    }
    if (d->md_result != DR_OK) {
        advise(a, "The bootstrap accepted the connection but Metadata failed (%s): is it a Kafka broker?",
               result_names[d->md_result]);
        return;
    }
    if (d->nlisted == 0) {
        advise(a, "Metadata lists no brokers: no worker of this agent group is serving yet (see the agent's log).");
        return;
    }
    const struct probe *other = NULL, *same = NULL, *same_other_p = NULL;
    int nok = 0, nfail = 0, other_noname = 0, same_refused = 0, same_timeout = 0, same_other = 0;
    int lo = 65536, hi = 0;
    for (int i = 0; i < d->nbrokers; i++) {
        const struct probe *p = &d->brokers[i];
        if (p->result == DR_OK) {
            nok++;
            continue;
        }
        nfail++;
        if (same_host(d, p) && p->result != DR_NO_NAME) {
            same = same ? same : p;
            if (p->port < lo)
                lo = p->port;
            if (p->port > hi)
                hi = p->port;
            /* a connect that times out is a firewall; a connection that never answers is not Kafka */
            bool connect_timeout = p->result == DR_TIMEOUT && p->connect_ms < 0;
            same_refused += p->result == DR_REFUSED;
            same_timeout += connect_timeout;
            if (p->result != DR_REFUSED && !connect_timeout) {
                same_other++;
                if (!same_other_p)
                    same_other_p = p;
            }
        } else {
            other = other ? other : p;
            other_noname += p->result == DR_NO_NAME;
        }
    }
    if (!nfail)
        return;
    advise(a, "The bootstrap %s answered, but %d of the %d brokers it advertises did not. Clients bootstrap, "
              "then talk only to the advertised brokers: they will fail or hang.",
           boot, nfail, d->nbrokers);
    if (other) {
        if (other_noname)
            advise(a, "The agent advertises host '%s', which does not resolve here: it advertises an address "
                      "this network cannot reach. Make it advertise one that works from here:", other->host);
        else
            advise(a, "The agent advertises %s:%d, not the host '%s' you reached it at, and that address %s "
                      "from here: it advertises an address this network cannot reach. Make it advertise one "
                      "that works from here:", other->host, other->port, B,
                   other->result == DR_TIMEOUT ? "times out" : other->result == DR_REFUSED ? "refuses connections" : "fails");
        advise(a, "- behind a load balancer: SLUICE_DISCOVERY_KAFKA_HOSTNAME_OVERRIDE=%s on the agents (every "
                  "broker advertised at the balancer's host; add SLUICE_DISCOVERY_KAFKA_PORT_OVERRIDE if the "
                  "balancer listens on other ports than the agents' slot ports)", B);
        advise(a, "- an agent in a container on this machine, ports published here: SLUICE_PRIVATE_IP_OVERRIDE=127.0.0.1 "
                  "(or SLUICE_ADVERTISE_HOSTNAME_STRATEGY=local)");
        advise(a, "- agents reached from several networks: give the agents of this network their own agent group "
                  "(SLUICE_AGENT_GROUP) that advertises an address of this network");
        advise(a, "- port forwarding (kubectl port-forward, ssh -L) for one client: put ws_host_override=%s in its "
                  "client id (try: --client-id ws_host_override=%s), and forward the slot ports too", B, B);
    }
    if (same) {
        char ports[32];
        snprintf(ports, sizeof(ports), lo == hi ? "port %d" : "ports %d..%d", lo, hi);
        if (same_refused)
            advise(a, "'%s' answers on port %d but refuses the advertised %s: the load balancer (or port "
                      "forward) listens on other ports than the ones the agent advertises. Set (or correct) "
                      "SLUICE_DISCOVERY_KAFKA_PORT_OVERRIDE=<the balancer's port for broker 0> on the agents "
                      "(broker s is then advertised at that port + s), or forward %s to the agents' slot ports.",
                   B, d->o.port, ports, ports);
        if (same_timeout)
            advise(a, "Connections to '%s' on the advertised %s time out: a firewall or security group drops "
                      "them. Open those ports to the agents, or, if the balancer listens on other ports, set "
                      "SLUICE_DISCOVERY_KAFKA_PORT_OVERRIDE to the first of them.", B, ports);
        if (same_other)
            advise(a, "Something at '%s' on the advertised %s is not a broker of this cluster (%s): check that the "
                      "balancer forwards port base+s to the agents' slot port s, or set "
                      "SLUICE_DISCOVERY_KAFKA_PORT_OVERRIDE to the ports it does forward.", B, ports,
                   same_other_p->detail[0] ? same_other_p->detail : result_names[same_other_p->result]);
    }
    if (nok)
        advise(a, "Some brokers answered and some did not: the balancer forwards only part of the slot ports, or "
                  "agents of different networks share one agent group (give each network its own SLUICE_AGENT_GROUP).");
    if (strstr(d->o.client_id, "ws_host_override="))
        advise(a, "Your client id sets ws_host_override: every broker is advertised at that host, so the slot "
                  "ports must be forwarded there as well as the bootstrap port.");
}

/* ---- output ---- */

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20 || *p >= 0x7f)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static void json_ms(FILE *f, const char *key, double v)
{
    if (v < 0)
        fprintf(f, ",\"%s\":null", key);
    else
        fprintf(f, ",\"%s\":%.3f", key, v);
}

static void json_probe(FILE *f, const struct probe *p, bool broker)
{
    fputc('{', f);
    if (broker)
        fprintf(f, "\"node_id\":%d,", p->node_id);
    fprintf(f, "\"host\":");
    json_str(f, p->host);
    fprintf(f, ",\"port\":%d,\"address\":", p->port);
    if (p->have_addr)
        json_str(f, p->addr);
    else
        fprintf(f, "null");
    fprintf(f, ",\"result\":\"%s\",\"detail\":", result_names[p->result]);
    json_str(f, p->detail);
    json_ms(f, "resolve_ms", p->resolve_ms);
    json_ms(f, "connect_ms", p->connect_ms);
    json_ms(f, "api_versions_ms", p->api_ms);
    json_ms(f, "latency_ms", p->api_ms < 0 ? -1 : p->resolve_ms + p->connect_ms + p->api_ms);
    if (p->result == DR_OK)
        fprintf(f, ",\"api_versions_version\":%d,\"api_ranges\":%d", p->api_version, p->api_ranges);
    fputc('}', f);
}

static void print_json(const struct diag *d, const struct advice *a, int nok)
{
    FILE *f = stdout;
    fprintf(f, "{\"bootstrap\":");
    json_probe(f, &d->boot, false);
    fprintf(f, ",\"client_id\":");
    json_str(f, d->o.client_id);
    if (d->boot.result == DR_OK) {
        fprintf(f, ",\"metadata\":{\"result\":\"%s\",\"detail\":", result_names[d->md_result]);
        json_str(f, d->md_detail);
        fprintf(f, ",\"version\":%d", d->md_version);
        json_ms(f, "ms", d->md_ms);
        if (d->md_result == DR_OK) {
            fprintf(f, ",\"cluster_id\":");
            if (d->cluster_id_null)
                fprintf(f, "null");
            else
                json_str(f, d->cluster_id);
            fprintf(f, ",\"controller_id\":%d,\"brokers\":%d", d->controller_id, d->nlisted);
        }
        fputc('}', f);
    } else {
        fprintf(f, ",\"metadata\":null");
    }
    fprintf(f, ",\"brokers\":[");
    for (int i = 0; i < d->nbrokers; i++) {
        if (i)
            fputc(',', f);
        json_probe(f, &d->brokers[i], true);
    }
    fprintf(f, "],\"brokers_ok\":%d,\"brokers_failed\":%d,\"brokers_not_probed\":%d,\"advice\":[", nok,
            d->nbrokers - nok, d->nlisted - d->nbrokers);
    for (int i = 0; i < a->n; i++) {
        if (i)
            fputc(',', f);
        json_str(f, a->lines[i]);
    }
    fprintf(f, "]}\n");
}

static void text_ms(char *out, size_t len, double v)
{
    if (v < 0)
        snprintf(out, len, "-");
    else
        snprintf(out, len, "%.2f", v);
}

static void print_text(const struct diag *d, const struct advice *a, int nok)
{
    const struct probe *b = &d->boot;
    char addr[300], r[16], c[16], v[16];
    text_addr(addr, sizeof(addr), b);
    text_ms(r, sizeof(r), b->resolve_ms);
    text_ms(c, sizeof(c), b->connect_ms);
    text_ms(v, sizeof(v), b->api_ms);
    printf("bootstrap %s (%s): resolve %s ms, connect %s ms, ApiVersions %s ms: %s", addr,
           b->have_addr ? b->addr : "not resolved", r, c, v, result_names[b->result]);
    if (b->result == DR_OK)
        printf(" (ApiVersions v%d, %d API ranges)\n", b->api_version, b->api_ranges);
    else
        printf(" (%s)\n", b->detail);
    if (b->result == DR_OK) {
        text_ms(r, sizeof(r), d->md_ms);
        if (d->md_result == DR_OK)
            printf("metadata v%d: %s ms, cluster %s, controller %d, %d brokers\n", d->md_version, r,
                   d->cluster_id_null ? "(none)" : d->cluster_id, d->controller_id, d->nlisted);
        else
            printf("metadata v%d: %s (%s)\n", d->md_version, result_names[d->md_result], d->md_detail);
    }
    if (d->nbrokers) {
        int width = 7;
        for (int i = 0; i < d->nbrokers; i++) {
            text_addr(addr, sizeof(addr), &d->brokers[i]);
            if ((int)strlen(addr) > width)
                width = (int)strlen(addr);
        }
        printf("%6s  %-*s  %10s  %10s  %14s  %s\n", "node", width, "address", "resolve ms", "connect ms",
               "ApiVersions ms", "result");
        for (int i = 0; i < d->nbrokers; i++) {
            const struct probe *p = &d->brokers[i];
            text_addr(addr, sizeof(addr), p);
            text_ms(r, sizeof(r), p->resolve_ms);
            text_ms(c, sizeof(c), p->connect_ms);
            text_ms(v, sizeof(v), p->api_ms);
            printf("%6d  %-*s  %10s  %10s  %14s  %s", p->node_id, width, addr, r, c, v, result_names[p->result]);
            if (p->result != DR_OK)
                printf(" (%s%s%s)", p->have_addr ? p->addr : "", p->have_addr ? ": " : "", p->detail);
            printf("\n");
        }
    }
    if (d->md_result == DR_OK && b->result == DR_OK) {
        printf("%d of %d brokers answered", nok, d->nlisted);
        if (d->nlisted > d->nbrokers)
            printf(" (%d not probed: at most %d)", d->nlisted - d->nbrokers, MAX_BROKERS);
        printf(".\n");
    }
    if (a->n)
        printf("\n");
    for (int i = 0; i < a->n; i++)
        printf("%s\n", a->lines[i]);
}

int cmd_diagnose(int argc, char **argv)
{
    struct diag *d = calloc(1, sizeof(*d));
    if (!d)
        return 1;
    int rc = parse_opts(&d->o, argc, argv);
    if (rc) {
        free(d);
        return rc == 1 ? 0 : rc;
    }
    snprintf(d->boot.host, sizeof(d->boot.host), "%s", d->o.host);
    d->boot.port = d->o.port;
    d->boot.node_id = -1;
    d->md_result = DR_FAILED;
    probe_run(&d->boot, d->o.client_id, d->o.timeout, true);
    if (d->boot.result == DR_OK) {
        metadata(d);
        close(d->boot.fd);
        if (d->md_result == DR_OK)
            probe_brokers(d);
    }
    int nok = 0;
    for (int i = 0; i < d->nbrokers; i++)
        nok += d->brokers[i].result == DR_OK;
    struct advice *a = calloc(1, sizeof(*a));
    if (!a) {
        free(d->brokers);
        free(d);
        return 1;
    }
    explain(d, a);
    if (d->o.json)
        print_json(d, a, nok);
    else
        print_text(d, a, nok);
    rc = d->boot.result == DR_OK && d->md_result == DR_OK && d->nlisted > 0 && nok == d->nlisted ? 0 : 1;
    free(a);
    free(d->brokers);
    free(d);
    return rc;
}
