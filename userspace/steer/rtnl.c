#include "steer/rtnl.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static unsigned seq;

int rtnl_open(void)
{
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0)
        return -1;
    struct timeval tv = {.tv_sec = 1};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

void rtnl_req_init(struct rtnl_req *req, int type, int flags, size_t body_len)
{
    memset(req, 0, sizeof(*req));
    req->h.nlmsg_len = (unsigned)NLMSG_LENGTH(body_len);
    req->h.nlmsg_type = (unsigned short)type;
    req->h.nlmsg_flags = (unsigned short)flags;
}

void rtnl_add_attr(struct nlmsghdr *h, unsigned short type, const void *data, unsigned short len)
{
    struct rtattr *a = (struct rtattr *)((char *)h + NLMSG_ALIGN(h->nlmsg_len));
    a->rta_type = type;
    a->rta_len = (unsigned short)RTA_LENGTH(len);
    memcpy(RTA_DATA(a), data, len);
    h->nlmsg_len = NLMSG_ALIGN(h->nlmsg_len) + RTA_ALIGN(a->rta_len);
}

static int send_req(int fd, struct nlmsghdr *req)
{
    req->nlmsg_seq = ++seq;
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    return sendto(fd, req, req->nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0 ? -1 : 0;
}

int rtnl_talk(int fd, struct nlmsghdr *req, char *buf, size_t buflen)
{
    if (send_req(fd, req) < 0)
        return -errno;
    for (;;) {
        ssize_t n = recv(fd, buf, buflen, 0);
        if (n < 0)
            return -errno;
        struct nlmsghdr *h = (struct nlmsghdr *)buf;
        if (!NLMSG_OK(h, (unsigned)n) || h->nlmsg_seq != req->nlmsg_seq)
            continue; /* the late answer to a request that timed out */
        if (h->nlmsg_type == NLMSG_ERROR)
            return ((struct nlmsgerr *)NLMSG_DATA(h))->error;
        return 0;
    }
}

int rtnl_dump(int fd, struct nlmsghdr *req, void (*each)(const struct nlmsghdr *msg, void *arg), void *arg)
{
    req->nlmsg_flags |= NLM_F_DUMP;
    if (send_req(fd, req) < 0)
        return -1;
    static char buf[RTNL_BUF];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n < 0)
            return -1;
        for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (unsigned)n); h = NLMSG_NEXT(h, n)) {
            if (h->nlmsg_seq != req->nlmsg_seq)
                continue;
            if (h->nlmsg_type == NLMSG_DONE) {
                /* A dump that failed part way says so in NLMSG_DONE's payload. */
                int error = 0;
                if (h->nlmsg_len >= NLMSG_LENGTH(sizeof(int)))
                    memcpy(&error, NLMSG_DATA(h), sizeof(error));
                if (error < 0) {
                    errno = -error;
                    return -1;
                }
                return 0;
            }
            if (h->nlmsg_type == NLMSG_ERROR) {
                errno = -((struct nlmsgerr *)NLMSG_DATA(h))->error;
                return -1;
            }
            each(h, arg);
        }
    }
}
