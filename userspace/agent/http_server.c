/* The supervisor's HTTP server (http_server.h): bounded in size, time and connections, so that no
 * client, however slow or malformed, can hold up the supervisor's loop. */
#include "agent/http_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/clock.h"

/* After the response, how long the peer may take to close (its unread bytes are drained meanwhile,
 * so that closing does not reset the connection before the client has read the answer). */
#define HTTP_LINGER_MS 1000

int http_server_open(struct http_server *h, const char *host, int port, http_handler handler, void *arg)
{
    memset(h, 0, sizeof(*h));
    h->listen_fd = -1;
    h->handler = handler;
    h->arg = arg;
    for (int i = 0; i < HTTP_MAX_CONNS; i++)
        h->conns[i].fd = -1;
    struct sockaddr_storage ss = {0};
    socklen_t len;
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        len = sizeof(*a4);
    } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        len = sizeof(*a6);
    } else {
        errno = EINVAL;
        return -1;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, 64) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    h->listen_fd = fd;
    return 0;
}

static void conn_free(struct http_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    buf_free(&c->out);
    c->fd = -1;
    c->req_len = 0;
    c->sent = 0;
    c->lingering = false;
}

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    default: return "Error";
    }
}

static void respond(struct http_conn *c, int status, const char *content_type, const struct buf *body)
{
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n%s\r\n",
                     status, reason(status), content_type, body ? body->len : 0,
                     status == 405 ? "Allow: GET\r\n" : "");
    buf_append(&c->out, head, (size_t)n);
    if (body && body->len)
        buf_append(&c->out, body->data, body->len);
}

static void respond_text(struct http_conn *c, int status, const char *text)
{
    struct buf b;
    buf_init(&b);
    buf_append(&b, text, strlen(text));
    respond(c, status, "text/plain; charset=utf-8", &b);
    buf_free(&b);
}

/* A whole request head is in c->req: parse the request line and answer it. */
static void answer(struct http_server *h, struct http_conn *c)
{
    char *line_end = memchr(c->req, '\r', c->req_len);
    char *sp1 = line_end ? memchr(c->req, ' ', (size_t)(line_end - c->req)) : NULL;
    char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(line_end - sp1 - 1)) : NULL;
    if (!sp2 || sp1 == c->req || sp2 == sp1 + 1 || line_end - sp2 - 1 != 8 || memcmp(sp2 + 1, "HTTP/1.", 7) != 0) {
        respond_text(c, 400, "bad request line\n");
        return;
    }
    if (sp1 - c->req != 3 || memcmp(c->req, "GET", 3) != 0) {
        respond_text(c, 405, "only GET is served\n");
        return;
    }
    char path[512];
    size_t plen = (size_t)(sp2 - sp1 - 1);
    char *q = memchr(sp1 + 1, '?', plen);
    if (q)
        plen = (size_t)(q - sp1 - 1);
    if (plen >= sizeof(path)) {
        respond_text(c, 404, "not found\n");
        return;
    }
    memcpy(path, sp1 + 1, plen);
    path[plen] = 0;
    struct buf body;
    buf_init(&body);
    const char *type = "text/plain; charset=utf-8";
    int status = h->handler(h->arg, path, &body, &type);
    respond(c, status, type, &body);
    buf_free(&body);
}

static void on_writable(struct http_conn *c, int64_t now_ms)
{
    while (c->sent < c->out.len) {
        ssize_t n = send(c->fd, c->out.data + c->sent, c->out.len - c->sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            conn_free(c);
            return;
        }
        c->sent += (size_t)n;
    }
    shutdown(c->fd, SHUT_WR);
    c->lingering = true;
    if (c->deadline_ms > now_ms + HTTP_LINGER_MS)
        c->deadline_ms = now_ms + HTTP_LINGER_MS;
}

static void on_readable(struct http_server *h, struct http_conn *c, int64_t now_ms)
{
    if (c->lingering) {
        char sink[4096];
        ssize_t n = recv(c->fd, sink, sizeof(sink), MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            conn_free(c);
        return;
    }
    if (c->out.len) /* answered already: the rest of the request is read while lingering */
        return;
    ssize_t n = recv(c->fd, c->req + c->req_len, sizeof(c->req) - c->req_len, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) { /* closed (or failed) before a whole request: nothing to answer */
        conn_free(c);
        return;
    }
    /* Look for the end of the head from a little before the new bytes (it may straddle reads). */
    size_t from = c->req_len > 3 ? c->req_len - 3 : 0;
    c->req_len += (size_t)n;
    if (memmem(c->req + from, c->req_len - from, "\r\n\r\n", 4))
        answer(h, c);
    else if (c->req_len == sizeof(c->req))
        respond_text(c, 431, "request head larger than 8192 bytes\n");
    else
        return;
    on_writable(c, now_ms);
}

static void accept_all(struct http_server *h, int64_t now_ms)
{
    for (;;) {
        int fd = accept4(h->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        struct http_conn *c = NULL;
        for (int i = 0; i < HTTP_MAX_CONNS && !c; i++)
            if (h->conns[i].fd < 0)
                c = &h->conns[i];
        /* All busy: the oldest connection makes room, so that idle or slow clients cannot keep
         * everyone else out for longer than it takes to open new connections. */
        if (!c) {
            c = &h->conns[0];
            for (int i = 1; i < HTTP_MAX_CONNS; i++)
                if (h->conns[i].seq < c->seq)
                    c = &h->conns[i];
            conn_free(c);
        }
        c->fd = fd;
        c->seq = ++h->accepted;
        c->deadline_ms = now_ms + HTTP_DEADLINE_MS;
        c->req_len = 0;
        c->sent = 0;
        c->lingering = false;
        buf_init(&c->out);
    }
}

int http_server_pollfds(struct http_server *h, struct pollfd *pfds)
{
    if (h->listen_fd < 0)
        return 0;
    int n = 0;
    pfds[n++] = (struct pollfd){.fd = h->listen_fd, .events = POLLIN};
    for (int i = 0; i < HTTP_MAX_CONNS; i++) {
        const struct http_conn *c = &h->conns[i];
        if (c->fd >= 0)
            pfds[n++] = (struct pollfd){.fd = c->fd,
                                        .events = (short)(c->out.len && !c->lingering ? POLLOUT : POLLIN)};
    }
    return n;
}

int64_t http_server_next_deadline(const struct http_server *h)
{
    int64_t d = -1;
    for (int i = 0; i < HTTP_MAX_CONNS; i++)
        if (h->conns[i].fd >= 0 && (d < 0 || h->conns[i].deadline_ms < d))
            d = h->conns[i].deadline_ms;
    return d;
}

void http_server_handle(struct http_server *h, const struct pollfd *pfds, int n, int64_t now_ms)
{
    for (int p = 1; p < n; p++) {
        if (!pfds[p].revents)
            continue;
        for (int i = 0; i < HTTP_MAX_CONNS; i++) {
            struct http_conn *c = &h->conns[i];
            if (c->fd != pfds[p].fd)
                continue;
            if (pfds[p].revents & (POLLERR | POLLNVAL))
                conn_free(c);
            else if (c->out.len && !c->lingering)
                on_writable(c, now_ms);
            else
                on_readable(h, c, now_ms);
            break;
        }
    }
    for (int i = 0; i < HTTP_MAX_CONNS; i++) /* slow or silent clients */
        if (h->conns[i].fd >= 0 && now_ms >= h->conns[i].deadline_ms)
            conn_free(&h->conns[i]);
    if (n > 0 && (pfds[0].revents & POLLIN))
        accept_all(h, now_ms);
}

void http_server_close(struct http_server *h)
{
    for (int i = 0; i < HTTP_MAX_CONNS; i++)
        if (h->conns[i].fd >= 0)
            conn_free(&h->conns[i]);
    if (h->listen_fd >= 0)
        close(h->listen_fd);
    h->listen_fd = -1;
}
