#include "steer/nexthop.h"

#include <errno.h>
#include <linux/neighbour.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "steer/rtnl.h"
#include "util/log.h"

/* The route this host would use to send to dst: its output interface and gateway (0: on-link). */
static enum nexthop_status route_to(int fd, uint32_t dst, int *oif, uint32_t *gateway)
{
    struct rtnl_req req;
    rtnl_req_init(&req, RTM_GETROUTE, NLM_F_REQUEST, sizeof(req.route));
    req.route.rtm_family = AF_INET;
    req.route.rtm_dst_len = 32;
    rtnl_add_attr(&req.h, RTA_DST, &dst, sizeof(dst));
    char buf[RTNL_BUF];
    int e = rtnl_talk(fd, &req.h, buf, sizeof(buf));
    if (e == -ENETUNREACH || e == -EHOSTUNREACH)
        return NEXTHOP_UNREACHABLE;
    if (e < 0) {
        log_warn("nexthop: route lookup: %s", strerror(-e));
        return NEXTHOP_ERROR;
    }
    struct nlmsghdr *h = (struct nlmsghdr *)buf;
    struct rtmsg *r = NLMSG_DATA(h);
    if (r->rtm_type != RTN_UNICAST)
        return NEXTHOP_UNREACHABLE;
    *oif = 0;
    *gateway = 0;
    int len = (int)RTM_PAYLOAD(h);
    RTNL_FOR_EACH_ATTR(a, RTM_RTA(r), len) {
        if (a->rta_type == RTA_OIF)
            memcpy(oif, RTA_DATA(a), sizeof(*oif));
        else if (a->rta_type == RTA_GATEWAY)
            memcpy(gateway, RTA_DATA(a), sizeof(*gateway));
    }
    return NEXTHOP_RESOLVED;
}

/* The neighbour entry of addr on ifindex: its state (NUD_*) and MAC; NUD_NONE if there is none. */
static int neighbour_of(int fd, uint32_t addr, int ifindex, uint8_t mac[6], bool *has_mac)
{
    struct rtnl_req req;
    rtnl_req_init(&req, RTM_GETNEIGH, NLM_F_REQUEST, sizeof(req.neigh));
    req.neigh.ndm_family = AF_INET;
    req.neigh.ndm_ifindex = ifindex;
    rtnl_add_attr(&req.h, NDA_DST, &addr, sizeof(addr));
    char buf[RTNL_BUF];
    *has_mac = false;
    if (rtnl_talk(fd, &req.h, buf, sizeof(buf)) != 0)
        return NUD_NONE;
    struct nlmsghdr *h = (struct nlmsghdr *)buf;
    if (h->nlmsg_type != RTM_NEWNEIGH)
        return NUD_NONE;
    struct ndmsg *n = NLMSG_DATA(h);
    int len = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof(*n)));
    RTNL_FOR_EACH_ATTR(a, (struct rtattr *)((char *)n + NLMSG_ALIGN(sizeof(*n))), len)
        if (a->rta_type == NDA_LLADDR && RTA_PAYLOAD(a) == 6) {
            memcpy(mac, RTA_DATA(a), 6);
            *has_mac = true;
        }
    return n->ndm_state;
}

/* Asks the kernel to (re)resolve addr on ifindex, as if a packet were waiting for it: NTF_USE on a
 * neighbour entry starts ARP for a missing or failed entry and re-confirms a stale one. */
static void ask_for(int fd, uint32_t addr, int ifindex)
{
    struct rtnl_req req;
    rtnl_req_init(&req, RTM_NEWNEIGH, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE, sizeof(req.neigh));
    req.neigh.ndm_family = AF_INET;
    req.neigh.ndm_ifindex = ifindex;
    req.neigh.ndm_flags = NTF_USE;
    rtnl_add_attr(&req.h, NDA_DST, &addr, sizeof(addr));
    char buf[RTNL_BUF];
    int e = rtnl_talk(fd, &req.h, buf, sizeof(buf));
    if (e != 0)
        log_debug("nexthop: asking for a neighbour: %s", strerror(-e));
}

enum nexthop_status nexthop_resolve(uint32_t dst, int ifindex, uint8_t mac[6], bool *via_router)
{
    int fd = rtnl_open();
    if (fd < 0) {
        log_warn("nexthop: netlink socket: %s", strerror(errno));
        return NEXTHOP_ERROR;
    }

    int oif;
    uint32_t gateway;
    enum nexthop_status st = route_to(fd, dst, &oif, &gateway);
    if (st == NEXTHOP_RESOLVED && oif != ifindex)
        st = NEXTHOP_OTHER_INTERFACE;
    if (st == NEXTHOP_RESOLVED) {
        *via_router = gateway != 0;
        uint32_t hop = gateway ? gateway : dst;
        bool has_mac;
        int state = neighbour_of(fd, hop, ifindex, mac, &has_mac);
        if (!has_mac || !(state & (NUD_REACHABLE | NUD_PERMANENT | NUD_NOARP | NUD_STALE | NUD_DELAY | NUD_PROBE)))
            st = NEXTHOP_PENDING;
        if (st == NEXTHOP_PENDING || (state & NUD_STALE))
            ask_for(fd, hop, ifindex);
    }
    close(fd);
    return st;
}

const char *nexthop_status_name(enum nexthop_status s)
{
    switch (s) {
    case NEXTHOP_RESOLVED:
        return "resolved";
    case NEXTHOP_PENDING:
        return "waiting for ARP";
    case NEXTHOP_OTHER_INTERFACE:
        return "routed out of another interface";
    case NEXTHOP_UNREACHABLE:
        return "no route";
    case NEXTHOP_ERROR:
        return "netlink error";
    }
    return "?";
}
