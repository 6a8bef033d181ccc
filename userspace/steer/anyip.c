#include "steer/anyip.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/fib_rules.h>
#include <net/if.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "steer/pins.h"
#include "steer/rtnl.h"
#include "util/log.h"

struct anyip {
    char ifname[IF_NAMESIZE];
    uint32_t table, priority;
    int lo_ifindex;
    uint32_t *addrs; /* what the table holds */
    int n;
    char old_arp_ignore[16], old_arp_announce[16];
};

/* ---- sysctls ---- */

static int sysctl_path(char *path, size_t len, const char *ifname, const char *knob)
{
    return snprintf(path, len, "/proc/sys/net/ipv4/conf/%s/%s", ifname, knob) < (int)len ? 0 : -1;
}

static int read_sysctl(const char *ifname, const char *knob, char *out, size_t outlen)
{
    char path[128];
    FILE *f = sysctl_path(path, sizeof(path), ifname, knob) == 0 ? fopen(path, "r") : NULL;
    if (!f)
        return -1;
    bool ok = fgets(out, (int)outlen, f) != NULL;
    fclose(f);
    out[strcspn(out, "\n")] = '\0';
    return ok ? 0 : -1;
}

static int write_sysctl(const char *ifname, const char *knob, const char *value)
{
    char path[128];
    FILE *f = sysctl_path(path, sizeof(path), ifname, knob) == 0 ? fopen(path, "w") : NULL;
    if (!f)
        return -1;
    int rc = fputs(value, f) < 0 ? -1 : 0;
    if (fclose(f) != 0)
        rc = -1;
    return rc;
}

/* ---- the rule ---- */

static int rule_change(struct anyip *a, int type, int flags)
{
    struct {
        struct nlmsghdr h;
        struct fib_rule_hdr r;
        char attrs[128];
    } req = {0};
    req.h.nlmsg_len = NLMSG_LENGTH(sizeof(req.r));
    req.h.nlmsg_type = (unsigned short)type;
    req.h.nlmsg_flags = (unsigned short)(NLM_F_REQUEST | NLM_F_ACK | flags);
    req.r.family = AF_INET;
    req.r.action = FR_ACT_TO_TBL;
    req.r.table = a->table < 256 ? (unsigned char)a->table : RT_TABLE_UNSPEC;
    rtnl_add_attr(&req.h, FRA_IIFNAME, a->ifname, (unsigned short)(strlen(a->ifname) + 1));
    rtnl_add_attr(&req.h, FRA_TABLE, &a->table, sizeof(a->table));
    rtnl_add_attr(&req.h, FRA_PRIORITY, &a->priority, sizeof(a->priority));
    int fd = rtnl_open();
    if (fd < 0)
        return -errno;
    char buf[RTNL_BUF];
    int e = rtnl_talk(fd, &req.h, buf, sizeof(buf));
    if (e == -1)
        e = -errno;
    close(fd);
    return e;
}

/* ---- the routes ---- */

static int route_change(int fd, struct anyip *a, int type, uint32_t addr)
{
    struct {
        struct nlmsghdr h;
        struct rtmsg r;
        char attrs[128];
    } req = {0};
    req.h.nlmsg_len = NLMSG_LENGTH(sizeof(req.r));
    req.h.nlmsg_type = (unsigned short)type;
    req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | (type == RTM_NEWROUTE ? NLM_F_CREATE | NLM_F_REPLACE : 0);
    req.r.rtm_family = AF_INET;
    req.r.rtm_dst_len = 32;
    req.r.rtm_table = a->table < 256 ? (unsigned char)a->table : RT_TABLE_UNSPEC;
    req.r.rtm_protocol = RTPROT_STATIC;
    req.r.rtm_scope = RT_SCOPE_HOST;
    req.r.rtm_type = RTN_LOCAL;
    rtnl_add_attr(&req.h, RTA_DST, &addr, sizeof(addr));
    rtnl_add_attr(&req.h, RTA_TABLE, &a->table, sizeof(a->table));
    rtnl_add_attr(&req.h, RTA_OIF, &a->lo_ifindex, sizeof(a->lo_ifindex));
    char buf[RTNL_BUF];
    int e = rtnl_talk(fd, &req.h, buf, sizeof(buf));
    return e == -1 ? -errno : e;
}

struct table_routes {
    uint32_t table;
    uint32_t *addrs;
    int n, cap;
};

static void collect_route(const struct nlmsghdr *h, void *arg)
{
    struct table_routes *t = arg;
    if (h->nlmsg_type != RTM_NEWROUTE)
        return;
    const struct rtmsg *r = NLMSG_DATA(h);
    uint32_t table = r->rtm_table, dst = 0;
    int len = (int)RTM_PAYLOAD(h);
    RTNL_FOR_EACH_ATTR(a, RTM_RTA(r), len) {
        if (a->rta_type == RTA_TABLE)
            memcpy(&table, RTA_DATA(a), sizeof(table));
        else if (a->rta_type == RTA_DST)
            memcpy(&dst, RTA_DATA(a), sizeof(dst));
    }
    if (table != t->table || r->rtm_family != AF_INET || r->rtm_dst_len != 32)
        return;
    if (t->n == t->cap) {
        int cap = t->cap ? t->cap * 2 : 16;
        uint32_t *v = realloc(t->addrs, (size_t)cap * sizeof(*v));
        if (!v)
            return;
        t->addrs = v;
        t->cap = cap;
    }
    t->addrs[t->n++] = dst;
}

/* Removes what a previous run of the agent left in the table (it did not stop cleanly). */
static int flush_table(struct anyip *a)
{
    int fd = rtnl_open();
    if (fd < 0)
        return -1;
    struct {
        struct nlmsghdr h;
        struct rtmsg r;
    } req = {0};
    req.h.nlmsg_len = NLMSG_LENGTH(sizeof(req.r));
    req.h.nlmsg_type = RTM_GETROUTE;
    req.h.nlmsg_flags = NLM_F_REQUEST;
    req.r.rtm_family = AF_INET;
    struct table_routes t = {.table = a->table};
    int rc = rtnl_dump(fd, &req.h, collect_route, &t);
    for (int i = 0; rc == 0 && i < t.n; i++)
        if (route_change(fd, a, RTM_DELROUTE, t.addrs[i]) < 0)
            rc = -1;
    if (t.n)
        log_info("anyip: removed %d routes left in table %u", t.n, a->table);
    free(t.addrs);
    close(fd);
    return rc;
}

struct anyip *anyip_open(const char *ifname, uint32_t table, uint32_t rule_priority, char *err, size_t errlen)
{
    if (strlen(ifname) >= IF_NAMESIZE || !if_nametoindex(ifname)) {
        pins_err(err, errlen, "no interface %s", ifname);
        return NULL;
    }
    struct anyip *a = calloc(1, sizeof(*a));
    if (!a) {
        pins_err(err, errlen, "out of memory");
        return NULL;
    }
    snprintf(a->ifname, sizeof(a->ifname), "%s", ifname);
    a->table = table;
    a->priority = rule_priority;
    a->lo_ifindex = (int)if_nametoindex("lo");
    if (read_sysctl(ifname, "arp_ignore", a->old_arp_ignore, sizeof(a->old_arp_ignore)) < 0 ||
        read_sysctl(ifname, "arp_announce", a->old_arp_announce, sizeof(a->old_arp_announce)) < 0) {
        pins_err(err, errlen, "reading net.ipv4.conf.%s.arp_*: %s", ifname, strerror(errno));
        free(a);
        return NULL;
    }
    int e = rule_change(a, RTM_NEWRULE, NLM_F_CREATE | NLM_F_EXCL);
    if (e < 0 && e != -EEXIST) {
        pins_err(err, errlen, "adding rule 'iif %s lookup %u priority %u': %s", ifname, table, rule_priority,
                 strerror(-e));
        free(a);
        return NULL;
    }
    if (flush_table(a) < 0) {
        pins_err(err, errlen, "emptying routing table %u: %s", table, strerror(errno));
        anyip_close(a);
        return NULL;
    }
    /* Never answer ARP for the peers' addresses (they are not on the interface), and never use them
     * as the source of our own ARP requests. */
    if (write_sysctl(ifname, "arp_ignore", "1") < 0 || write_sysctl(ifname, "arp_announce", "2") < 0) {
        pins_err(err, errlen, "setting net.ipv4.conf.%s.arp_ignore/arp_announce: %s", ifname, strerror(errno));
        anyip_close(a);
        return NULL;
    }
    return a;
}

static bool listed(const uint32_t *addrs, int n, uint32_t addr)
{
    for (int i = 0; i < n; i++)
        if (addrs[i] == addr)
            return true;
    return false;
}

int anyip_set(struct anyip *a, const uint32_t *addrs, int n)
{
    uint32_t *want = calloc((size_t)(n ? n : 1), sizeof(*want));
    if (!want)
        return -1;
    int nwant = 0;
    for (int i = 0; i < n; i++)
        if (addrs[i] && !listed(want, nwant, addrs[i]))
            want[nwant++] = addrs[i];
    bool same = nwant == a->n;
    for (int i = 0; i < nwant && same; i++)
        same = listed(a->addrs, a->n, want[i]);
    if (same) {
        free(want);
        return 0;
    }
    int fd = rtnl_open();
    if (fd < 0) {
        log_error("anyip: netlink socket: %s", strerror(errno));
        free(want);
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < nwant; i++) {
        if (listed(a->addrs, a->n, want[i]))
            continue;
        int e = route_change(fd, a, RTM_NEWROUTE, want[i]);
        if (e < 0) {
            char ip[16];
            inet_ntop(AF_INET, &want[i], ip, sizeof(ip));
            log_error("anyip: adding local route %s to table %u: %s", ip, a->table, strerror(-e));
            rc = -1;
        }
    }
    for (int i = 0; i < a->n; i++) {
        if (listed(want, nwant, a->addrs[i]))
            continue;
        int e = route_change(fd, a, RTM_DELROUTE, a->addrs[i]);
        if (e < 0 && e != -ESRCH) {
            char ip[16];
            inet_ntop(AF_INET, &a->addrs[i], ip, sizeof(ip));
            log_error("anyip: removing local route %s from table %u: %s", ip, a->table, strerror(-e));
            rc = -1;
        }
    }
    close(fd);
    free(a->addrs);
    a->addrs = want;
    a->n = nwant;
    return rc;
}

void anyip_close(struct anyip *a)
{
    if (!a)
        return;
    anyip_set(a, NULL, 0);
    int e = rule_change(a, RTM_DELRULE, 0);
    if (e < 0 && e != -ENOENT)
        log_warn("anyip: removing rule 'iif %s lookup %u': %s", a->ifname, a->table, strerror(-e));
    if (write_sysctl(a->ifname, "arp_ignore", a->old_arp_ignore) < 0 ||
        write_sysctl(a->ifname, "arp_announce", a->old_arp_announce) < 0)
        log_warn("anyip: restoring net.ipv4.conf.%s.arp_*: %s", a->ifname, strerror(errno));
    free(a->addrs);
    free(a);
}
