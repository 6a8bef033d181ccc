/* Socket addresses: the agent's listen address as the kernel steering program sees it, and one way
 * of printing peers ("1.2.3.4:5", "[::1]:5"). */
#ifndef SLUICE_NETADDR_H
#define SLUICE_NETADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct bind_addr {
    int family;        /* 0: IPv4 and IPv6 (bound to ::); AF_INET or AF_INET6: that family only */
    bool specific;     /* one address, not every address of the family */
    uint32_t ip4;      /* network byte order */
    uint32_t ip6[4];   /* network byte order */
};

/* Reads a listen address (--kafka-host): "0.0.0.0" is every IPv4 address, "::" every address of
 * both families (dual-stack), anything else one address (a host name: its first address).
 * Returns 0, or -1 with one line in err. */
int bind_addr_parse(const char *host, struct bind_addr *out, char *err, size_t errlen);

/* "1.2.3.4:5" or "[2001:db8::1]:5"; an IPv4-mapped IPv6 address (an IPv4 client of a dual-stack
 * socket) is written as IPv4. */
void sockaddr_format(const struct sockaddr_storage *sa, char *out, size_t outlen);

/* Can this host open IPv6 sockets at all (false when IPv6 is disabled in the kernel)? */
bool ipv6_available(void);

#endif
