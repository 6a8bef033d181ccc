/* Where a frame for another host goes on the uplink: that host's own MAC when it shares the
 * segment, else the MAC of the router towards it. Read from the kernel's routing and neighbour
 * tables over rtnetlink, so the XDP program (which cannot wait for ARP) gets a ready answer. */
#ifndef SLUICE_NEXTHOP_H
#define SLUICE_NEXTHOP_H

#include <stdbool.h>
#include <stdint.h>

enum nexthop_status {
    NEXTHOP_RESOLVED,        /* mac holds the answer */
    NEXTHOP_PENDING,         /* no neighbour entry yet: resolution started (ARP), ask again shortly */
    NEXTHOP_OTHER_INTERFACE, /* the route leaves by another interface: not reachable from the uplink */
    NEXTHOP_UNREACHABLE,     /* no route, or a local / non-unicast one */
    NEXTHOP_ERROR,           /* netlink failed (logged) */
};

/* Looks up the route to dst (IPv4, network byte order) as this host would send to it, then the
 * neighbour entry of its next hop on the uplink (ifindex). A missing or failed entry is asked for
 * (the kernel sends an ARP request); a stale one is refreshed. *via_router tells whether the route
 * has a gateway (dst is not on the uplink's segment). Bounded: at most a second of waiting. */
enum nexthop_status nexthop_resolve(uint32_t dst, int ifindex, uint8_t mac[6], bool *via_router);

const char *nexthop_status_name(enum nexthop_status s);

#endif
