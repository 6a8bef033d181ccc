/* AnyIP for XDP forwarding: a host accepts connections addressed to its peers' uplink addresses,
 * which XDP forwarded to it unchanged, and answers them from those addresses (direct server
 * return), without treating those addresses as its own for anything else:
 *
 *   ip rule add iif UPLINK lookup TABLE priority PRIO     (only packets that arrive on the uplink)
 *   ip route add local PEER/32 dev lo table TABLE         (one per peer)
 *   sysctl net.ipv4.conf.UPLINK.arp_ignore=1 arp_announce=2  (never answer ARP for, nor announce, them)
 *
 * Locally generated traffic to a peer still goes to the peer. The listening sockets need
 * IP_TRANSPARENT so that replies from a peer's address can be routed (server/server.c). */
#ifndef SLUICE_ANYIP_H
#define SLUICE_ANYIP_H

#include <stddef.h>
#include <stdint.h>

struct anyip;

/* Takes over the routing state of uplink ifname: adds the rule (keeping an identical one a crashed
 * run left), empties TABLE of the routes such a run left, and sets the ARP sysctls (remembering the
 * old values). NULL with one line in err. */
struct anyip *anyip_open(const char *ifname, uint32_t table, uint32_t rule_priority, char *err, size_t errlen);

/* Makes TABLE hold exactly "local ADDR/32 dev lo" for these IPv4 addresses (network byte order);
 * only the differences reach the kernel. Duplicates are fine. 0, or -1 with a log line. */
int anyip_set(struct anyip *a, const uint32_t *addrs, int n);

/* Removes the routes and the rule and restores the sysctls. NULL is fine. */
void anyip_close(struct anyip *a);

#endif
