#include "steer/nexthop.h"

#include <errno.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "util/log.h"

#define NL_BUF 8192

/* One request, one answer (the reply message, or the NLMSG_ERROR ack). Returns the length read,
 * -1 on a socket error (errno set). */
static int talk(int fd, struct nlmsghdr *req, char *buf, size_t buflen)
{
    static uint32_t seq;
    req->nlmsg_seq = ++seq;
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    if (sendto(fd, req, req->nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0)
        return -1;
    for (;;) {
        ssize_t n = recv(fd, buf, buflen, 0);
        if (n < 0)
            return -1;
        struct nlmsghdr *h = (struct nlmsghdr *)buf;
        if (NLMSG_OK(h, (unsigned)n) && h->nlmsg_seq == req->nlmsg_seq)
            return (int)n;
        /* an answer to an earlier request that timed out: skip it */
    }
}

/* The error code of an NLMSG_ERROR answer (0 = ack), or 1 if the answer is a data message. */
static int answer_error(const char *buf)
{
    const struct nlmsghdr *h = (const struct nlmsghdr *)buf;
    if (h->nlmsg_type != NLMSG_ERROR)
        return 1;
    return ((const struct nlmsgerr *)NLMSG_DATA(h))->error;
}

static void add_attr(struct nlmsghdr *h, unsigned short type, const void *data, unsigned short len)
{
    struct rtattr *a = (struct rtattr *)((char *)h + NLMSG_ALIGN(h->nlmsg_len));
    a->rta_type = type;
    a->rta_len = (unsigned short)RTA_LENGTH(len);
    memcpy(RTA_DATA(a), data, len);
    h->nlmsg_len = NLMSG_ALIGN(h->nlmsg_len) + RTA_ALIGN(a->rta_len);
}

/* The route this host would use to send to dst: its output interface and gateway (0: on-link). */
static enum nexthop_status route_to(int fd, uint32_t dst, int *oif, uint32_t *gateway)
{
    struct {
        struct nlmsghdr h;
        struct rtmsg r;
        char attrs[64];
    } req = {0};
    req.h.nlmsg_len = NLMSG_LENGTH(sizeof(req.r));
    req.h.nlmsg_type = RTM_GETROUTE;
    req.h.nlmsg_flags = NLM_F_REQUEST;
    req.r.rtm_family = AF_INET;
    req.r.rtm_dst_len = 32;
    add_attr(&req.h, RTA_DST, &dst, sizeof(dst));
    char buf[NL_BUF];
    if (talk(fd, &req.h, buf, sizeof(buf)) < 0) {
        log_warn("nexthop: route lookup: %s", strerror(errno));
        return NEXTHOP_ERROR;
    }
    int e = answer_error(buf);
    if (e != 1)
        return e == -ENETUNREACH || e == -EHOSTUNREACH || e == 0 ? NEXTHOP_UNREACHABLE : NEXTHOP_ERROR;
    struct nlmsghdr *h = (struct nlmsghdr *)buf;
    struct rtmsg *r = NLMSG_DATA(h);
    if (r->rtm_type != RTN_UNICAST)
        return NEXTHOP_UNREACHABLE;
    *oif = 0;
    *gateway = 0;
    int len = (int)RTM_PAYLOAD(h);
    for (struct rtattr *a = RTM_RTA(r); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
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
    struct {
        struct nlmsghdr h;
        struct ndmsg n;
        char attrs[64];
    } req = {0};
    req.h.nlmsg_len = NLMSG_LENGTH(sizeof(req.n));
    req.h.nlmsg_type = RTM_GETNEIGH;
    req.h.nlmsg_flags = NLM_F_REQUEST;
    req.n.ndm_family = AF_INET;
    req.n.ndm_ifindex = ifindex;
    add_attr(&req.h, NDA_DST, &addr, sizeof(addr));
    char buf[NL_BUF];
    *has_mac = false;
    if (talk(fd, &req.h, buf, sizeof(buf)) < 0 || answer_error(buf) != 1)
        return NUD_NONE;
    struct nlmsghdr *h = (struct nlmsghdr *)buf;
    if (h->nlmsg_type != RTM_NEWNEIGH)
        return NUD_NONE;
    struct ndmsg *n = NLMSG_DATA(h);
    int len = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof(*n)));
    for (struct rtattr *a = (struct rtattr *)((char *)n + NLMSG_ALIGN(sizeof(*n))); RTA_OK(a, len);
         a = RTA_NEXT(a, len))
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
    struct {
        struct nlmsghdr h;
        struct ndmsg n;
        char attrs[64];
    } req = {0};
    req.h.nlmsg_len = NLMSG_LENGTH(sizeof(req.n));
    req.h.nlmsg_type = RTM_NEWNEIGH;
    req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE;
    req.n.ndm_family = AF_INET;
    req.n.ndm_ifindex = ifindex;
    req.n.ndm_flags = NTF_USE;
    add_attr(&req.h, NDA_DST, &addr, sizeof(addr));
    char buf[NL_BUF];
    if (talk(fd, &req.h, buf, sizeof(buf)) < 0 || answer_error(buf) < 0)
        log_debug("nexthop: asking for a neighbour: %s", strerror(errno ? errno : -answer_error(buf)));
}

enum nexthop_status nexthop_resolve(uint32_t dst, int ifindex, uint8_t mac[6], bool *via_router)
{
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0) {
        log_warn("nexthop: netlink socket: %s", strerror(errno));
        return NEXTHOP_ERROR;
    }
    struct timeval tv = {.tv_sec = 1};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));

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
