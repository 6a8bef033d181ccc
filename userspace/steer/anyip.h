/* AnyIP for XDP forwarding: this host accepts connections addressed to its peers' uplink addresses,
 * which XDP forwarded to it unchanged, and answers them from those addresses (direct server
 * return), without treating those addresses as its own for anything else:
 *
 *   ip rule add iif UPLINK lookup TABLE priority PRIO protocol 241   (only packets from the uplink)
 *   ip route add local PEER/32 dev lo table TABLE protocol 241      (one per peer)
 *   sysctl net.ipv4.conf.UPLINK.arp_ignore=1 arp_announce=2         (never answer ARP for them)
 *
 * Locally generated traffic to a peer still goes to the peer: output lookups do not come from the
 * uplink, so the rule does not match them. The listening sockets need IP_TRANSPARENT so that
 * replies from a peer's address can be routed (server/server.c).
 *
 * The rule and routes carry protocol ANYIP_RTPROT (`ip route show table all proto 241`): routes of
 * other protocols in TABLE are never touched. A run that crashed leaves its rule, routes and
 * sysctls behind; the next anyip_open() reuses the rule and removes the routes, but can only
 * remember the sysctls as it finds them (the crashed run's values). */
#ifndef SLUICE_ANYIP_H
#define SLUICE_ANYIP_H

#include <stddef.h>
#include <stdint.h>

/* rtm_protocol of our routes and rule; not in iproute2's rt_protos. */
#define ANYIP_RTPROT 241

struct anyip;

/* Takes over the routing state of uplink ifname: adds the rule "iif IFNAME lookup TABLE priority
 * PRIO" (keeping an identical one a crashed run left), removes the routes such a run left in
 * TABLE, and raises net.ipv4.conf.IFNAME.arp_ignore to 1 and arp_announce to 2 (a stricter value
 * already there stays; the old values are remembered). TABLE may not be 0 or one of the kernel's
 * (253 default, 254 main, 255 local); PRIO must be 1..32765 (before the main table's rule). NULL
 * with one line in err; logs nothing but a note about leftovers it removed or left alone. */
struct anyip *anyip_open(const char *ifname, uint32_t table, uint32_t rule_priority, char *err, size_t errlen);

/* Makes TABLE hold exactly "local ADDR/32 dev lo" for these IPv4 addresses (network byte order;
 * duplicates and 0.0.0.0 are ignored). Only differences from the last call reach the kernel, so an
 * unchanged list costs no system call; a change that failed is tried again on the next call.
 * 0, or -1 with one log line (not repeated while the same failure repeats). */
int anyip_set(struct anyip *a, const uint32_t *addrs, int n);

/* How many addresses TABLE holds for us (what the last anyip_set achieved). */
int anyip_count(const struct anyip *a);

/* Removes the routes and the rule, restores the sysctls it changed. NULL is fine. */
void anyip_close(struct anyip *a);

#endif
