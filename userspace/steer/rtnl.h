/* A few rtnetlink round trips, enough for the routes, rules and neighbours steering needs
 * (steer/anyip.c, steer/nexthop.c) without a netlink library. Every wait is bounded. */
#ifndef SLUICE_RTNL_H
#define SLUICE_RTNL_H

#include <linux/fib_rules.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <stddef.h>

#define RTNL_BUF 16384

/* One request: the netlink header, the message's own header, room for its attributes. */
struct rtnl_req {
    struct nlmsghdr h;
    union {
        struct rtmsg route;
        struct ndmsg neigh;
        struct fib_rule_hdr rule;
    };
    char attrs[128];
};

/* Zeroes req and fills its netlink header for a message of this type whose own header is
 * body_len bytes (sizeof the union member used). */
void rtnl_req_init(struct rtnl_req *req, int type, int flags, size_t body_len);

/* A NETLINK_ROUTE socket whose receives give up after a second; -1 with errno set. */
int rtnl_open(void);

/* Appends attribute type to the message h (which must have room for it). */
void rtnl_add_attr(struct nlmsghdr *h, unsigned short type, const void *data, unsigned short len);

/* Sends req and reads its answer into buf: a data message, or the NLMSG_ERROR ack when req asked
 * for one (NLM_F_ACK). Returns 0, or a negative errno: the kernel's (an NLMSG_ERROR answer) or the
 * socket's (-EAGAIN after the timeout). */
int rtnl_talk(int fd, struct nlmsghdr *req, char *buf, size_t buflen);

/* Sends a dump request (NLM_F_DUMP is added) and calls each(msg, arg) for every message of the
 * answer. 0, or -1 with errno set. */
int rtnl_dump(int fd, struct nlmsghdr *req, void (*each)(const struct nlmsghdr *msg, void *arg), void *arg);

/* The attributes of a route/neighbour/rule message: calls each with every one. */
#define RTNL_FOR_EACH_ATTR(a, first, len) for (struct rtattr *a = (first); RTA_OK(a, len); a = RTA_NEXT(a, len))

#endif
