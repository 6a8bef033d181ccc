/* A small HTTP/1.1 server for the supervisor's poll loop (/metrics, /v1/status). It never blocks:
 * sockets are non-blocking, a request is at most HTTP_MAX_REQUEST bytes, every connection has a
 * deadline, and at most HTTP_MAX_CONNS are open (a new one closes the oldest). GET only (405
 * otherwise), one response per connection, then Connection: close. */
#ifndef SLUICE_HTTP_SERVER_H
#define SLUICE_HTTP_SERVER_H

#include <poll.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/buf.h"

#define HTTP_MAX_REQUEST 8192
#define HTTP_MAX_CONNS 16
#define HTTP_DEADLINE_MS 5000

/* Answers GET path (query string removed): fills body, sets *content_type, returns the status
 * (200, 404, 503, ...). */
typedef int (*http_handler)(void *arg, const char *path, struct buf *body, const char **content_type);

struct http_conn {
    int fd;                    /* -1: free */
    int64_t deadline_ms;
    uint64_t seq;              /* accept order: the oldest makes room when all are busy */
    char req[HTTP_MAX_REQUEST];
    size_t req_len;
    struct buf out;            /* the response, once there is one */
    size_t sent;
    bool lingering;            /* response sent and write side shut: reading until the peer closes */
};

struct http_server {
    int listen_fd;             /* -1: off */
    http_handler handler;
    void *arg;
    uint64_t accepted;
    struct http_conn conns[HTTP_MAX_CONNS];
};

/* Listens on host:port (an IP address). 0, or -1 with errno set. */
int http_server_open(struct http_server *h, const char *host, int port, http_handler handler, void *arg);
/* Adds the fds to poll to pfds (at most 1 + HTTP_MAX_CONNS); returns how many. */
int http_server_pollfds(struct http_server *h, struct pollfd *pfds);
/* The earliest connection deadline (monotonic ms), or -1 if none. */
int64_t http_server_next_deadline(const struct http_server *h);
/* Handles what poll reported for the fds http_server_pollfds added (same order), and deadlines. */
void http_server_handle(struct http_server *h, const struct pollfd *pfds, int n, int64_t now_ms);
void http_server_close(struct http_server *h);

#endif
