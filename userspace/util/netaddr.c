#include "util/netaddr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int bind_addr_parse(const char *host, struct bind_addr *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *res;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc) {
        snprintf(err, errlen, "cannot resolve listen address %s: %s", host, gai_strerror(rc));
        return -1;
    }
    if (res->ai_family == AF_INET) {
        struct in_addr a = ((struct sockaddr_in *)res->ai_addr)->sin_addr;
        out->family = AF_INET;
        out->specific = a.s_addr != htonl(INADDR_ANY);
        out->ip4 = a.s_addr;
    } else if (res->ai_family == AF_INET6) {
        struct in6_addr a = ((struct sockaddr_in6 *)res->ai_addr)->sin6_addr;
        /* The agent's dual-stack listener on :: takes IPv4 too (IPV6_V6ONLY off, see server.c). */
        out->specific = !IN6_IS_ADDR_UNSPECIFIED(&a);
        out->family = out->specific ? AF_INET6 : 0;
        memcpy(out->ip6, &a, sizeof(out->ip6));
    } else {
        snprintf(err, errlen, "listen address %s is neither IPv4 nor IPv6", host);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    return 0;
}

void sockaddr_format(const struct sockaddr_storage *sa, char *out, size_t outlen)
{
    char host[INET6_ADDRSTRLEN] = "?";
    if (sa->ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
        snprintf(out, outlen, "%s:%d", host, ntohs(sin->sin_port));
    } else if (sa->ss_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
            inet_ntop(AF_INET, &sin6->sin6_addr.s6_addr[12], host, sizeof(host));
            snprintf(out, outlen, "%s:%d", host, ntohs(sin6->sin6_port));
        } else {
            inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
            snprintf(out, outlen, "[%s]:%d", host, ntohs(sin6->sin6_port));
        }
    } else {
        snprintf(out, outlen, "?");
    }
}

bool ipv6_available(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return errno != EAFNOSUPPORT;
    close(fd);
    return true;
}
