/* AnyIP rule, routes and ARP sysctls of the uplink (see anyip.h), over raw rtnetlink (rtnl.h).
 *
 * The supervisor calls anyip_set() about once a second with the current peers: the addresses the
 * table holds are kept sorted in memory, so an unchanged list costs a sort and a compare, and only
 * the differences become netlink requests, each acknowledged by the kernel (or given up after the
 * socket's one-second receive timeout). */
#include "steer/anyip.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/fib_rules.h>
#include <net/if.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "steer/pins.h"
#include "steer/rtnl.h"
#include "util/log.h"

/* The main table's rule: ours must come before it, or main's default route wins. */
#define MAIN_RULE_PRIORITY 32766

/* An ARP sysctl of the uplink that must be at least some value. */
struct knob {
    const char *name;
    int at_least;
    bool changed; /* we raised it: old is what anyip_close() writes back */
    char old[16];
};

struct anyip {
    int fd; /* NETLINK_ROUTE, receives time out after a second */
    char ifname[IF_NAMESIZE];
    uint32_t table, priority;
    int lo_ifindex;
    uint32_t *have; /* the addresses TABLE holds for us, sorted */
    int nhave;
    uint32_t *want; /* anyip_set()'s scratch: the list asked for, sorted, without duplicates */
    int want_cap;
    struct knob knobs[2];
    char last_failure[256]; /* the last anyip_set() failure logged, so that repeats are not */
};

/* ---- netlink ---- */

/* rtm_table / fib_rule_hdr.table hold 8 bits; larger ids go in RTA_TABLE / FRA_TABLE alone. */
static unsigned char table_byte(uint32_t table)
{
    return table < 256 ? (unsigned char)table : RT_TABLE_UNSPEC;
}

/* Sends req and waits for the kernel's ack: 0 or a negative errno. */
static int talk(struct anyip *a, struct nlmsghdr *req)
{
    char buf[4096];
    return rtnl_talk(a->fd, req, buf, sizeof(buf));
}

static int rule_change(struct anyip *a, int type, int flags)
{
    struct rtnl_req req;
    rtnl_req_init(&req, type, NLM_F_REQUEST | NLM_F_ACK | flags, sizeof(req.rule));
    req.rule.family = AF_INET;
    req.rule.action = FR_ACT_TO_TBL;
    req.rule.table = table_byte(a->table);
    uint8_t proto = ANYIP_RTPROT;
    rtnl_add_attr(&req.h, FRA_IIFNAME, a->ifname, (unsigned short)(strlen(a->ifname) + 1));
    rtnl_add_attr(&req.h, FRA_TABLE, &a->table, sizeof(a->table));
    rtnl_add_attr(&req.h, FRA_PRIORITY, &a->priority, sizeof(a->priority));
    rtnl_add_attr(&req.h, FRA_PROTOCOL, &proto, sizeof(proto));
    return talk(a, &req.h);
}

/* Adds (or takes over) or deletes "local addr/32 dev lo table TABLE proto ANYIP_RTPROT". */
static int route_change(struct anyip *a, int type, uint32_t addr)
{
    struct rtnl_req req;
    int create = type == RTM_NEWROUTE ? NLM_F_CREATE | NLM_F_REPLACE : 0;
    rtnl_req_init(&req, type, NLM_F_REQUEST | NLM_F_ACK | create, sizeof(req.route));
    req.route.rtm_family = AF_INET;
    req.route.rtm_dst_len = 32;
    req.route.rtm_table = table_byte(a->table);
    req.route.rtm_protocol = ANYIP_RTPROT; /* a delete then only matches our route */
    req.route.rtm_scope = RT_SCOPE_HOST;
    req.route.rtm_type = RTN_LOCAL;
    rtnl_add_attr(&req.h, RTA_DST, &addr, sizeof(addr));
    rtnl_add_attr(&req.h, RTA_TABLE, &a->table, sizeof(a->table));
    rtnl_add_attr(&req.h, RTA_OIF, &a->lo_ifindex, sizeof(a->lo_ifindex));
    return talk(a, &req.h);
}

/* ---- what a previous run left ---- */

struct leftovers {
    uint32_t table;
    uint32_t *ours; /* destinations of our routes */
    int nours, cap;
    int foreign; /* routes of other protocols in the table */
    bool nomem;
};

static void note_route(const struct nlmsghdr *h, void *arg)
{
    struct leftovers *l = arg;
    if (h->nlmsg_type != RTM_NEWROUTE)
        return;
    const struct rtmsg *r = NLMSG_DATA(h);
    uint32_t table = r->rtm_table, dst = 0;
    int len = (int)RTM_PAYLOAD(h);
    RTNL_FOR_EACH_ATTR(at, RTM_RTA(r), len) {
        if (at->rta_type == RTA_TABLE)
            memcpy(&table, RTA_DATA(at), sizeof(table));
        else if (at->rta_type == RTA_DST)
            memcpy(&dst, RTA_DATA(at), sizeof(dst));
    }
    /* A kernel without strict dump checking sends every table. */
    if (r->rtm_family != AF_INET || table != l->table)
        return;
    if (r->rtm_protocol != ANYIP_RTPROT || r->rtm_type != RTN_LOCAL || r->rtm_dst_len != 32) {
        l->foreign++;
        return;
    }
    if (l->nours == l->cap) {
        int cap = l->cap ? l->cap * 2 : 16;
        uint32_t *v = realloc(l->ours, (size_t)cap * sizeof(*v));
        if (!v) {
            l->nomem = true;
            return;
        }
        l->ours = v;
        l->cap = cap;
    }
    l->ours[l->nours++] = dst;
}

/* Removes the routes a run that did not stop cleanly left in the table; routes of other
 * protocols are left alone (the table may be shared by mistake: never break someone else's). */
static int remove_leftovers(struct anyip *a, char *err, size_t errlen)
{
    struct rtnl_req req;
    rtnl_req_init(&req, RTM_GETROUTE, NLM_F_REQUEST, sizeof(req.route));
    req.route.rtm_family = AF_INET;
    req.route.rtm_table = table_byte(a->table);
    rtnl_add_attr(&req.h, RTA_TABLE, &a->table, sizeof(a->table));
    /* With strict checking the kernel dumps this table only, not a host's whole routing state. */
    int one = 1;
    setsockopt(a->fd, SOL_NETLINK, NETLINK_GET_STRICT_CHK, &one, sizeof(one));

    struct leftovers l = {.table = a->table};
    /* A table nobody ever used does not exist: ENOENT, as an error or in NLMSG_DONE (ignored). */
    if (rtnl_dump(a->fd, &req.h, note_route, &l) < 0 && errno != ENOENT) {
        pins_err(err, errlen, "listing the routes of table %u: %s", a->table, strerror(errno));
        free(l.ours);
        return -1;
    }
    if (l.nomem) {
        pins_err(err, errlen, "listing the routes of table %u: out of memory", a->table);
        free(l.ours);
        return -1;
    }
    for (int i = 0; i < l.nours; i++) {
        int e = route_change(a, RTM_DELROUTE, l.ours[i]);
        if (e < 0 && e != -ESRCH) {
            char ip[INET_ADDRSTRLEN];
            inet_ntop(AF_INET, &l.ours[i], ip, sizeof(ip));
            pins_err(err, errlen, "removing local route %s a previous run left in table %u: %s", ip, a->table,
                     strerror(-e));
            free(l.ours);
            return -1;
        }
    }
    if (l.nours > 0)
        log_info("anyip: removed %d local routes a previous run left in table %u", l.nours, a->table);
    if (l.foreign > 0)
        log_warn("anyip: table %u also holds routes of other protocols than sluice's (%d): %d left alone",
                 a->table, ANYIP_RTPROT, l.foreign);
    free(l.ours);
    return 0;
}

/* ---- ARP sysctls ---- */

static FILE *open_knob(const char *ifname, const char *knob, const char *mode)
{
    char path[128];
    snprintf(path, sizeof(path), "/proc/sys/net/ipv4/conf/%s/%s", ifname, knob);
    return fopen(path, mode);
}

static int write_knob(const char *ifname, const char *knob, const char *value)
{
    FILE *f = open_knob(ifname, knob, "w");
    if (!f)
        return -1;
    int rc = fputs(value, f) < 0 ? -1 : 0;
    if (fclose(f) != 0) /* the kernel refuses a value when the buffer is flushed */
        rc = -1;
    return rc;
}

/* Raises each knob to its minimum: any arp_ignore >= 1 answers only for addresses configured on
 * the interface, which the peers' never are, and a stricter setting must not be lowered. */
static int raise_knobs(struct anyip *a, char *err, size_t errlen)
{
    for (int i = 0; i < 2; i++) {
        struct knob *k = &a->knobs[i];
        FILE *f = open_knob(a->ifname, k->name, "r");
        bool ok = f && fgets(k->old, sizeof(k->old), f);
        if (f)
            fclose(f);
        if (!ok) {
            pins_err(err, errlen, "reading net.ipv4.conf.%s.%s: %s", a->ifname, k->name, f ? "empty" : strerror(errno));
            return -1;
        }
        k->old[strcspn(k->old, "\n")] = '\0';
        if (atoi(k->old) >= k->at_least)
            continue;
        char value[16];
        snprintf(value, sizeof(value), "%d", k->at_least);
        if (write_knob(a->ifname, k->name, value) < 0) {
            pins_err(err, errlen, "setting net.ipv4.conf.%s.%s=%s: %s", a->ifname, k->name, value, strerror(errno));
            return -1;
        }
        k->changed = true;
    }
    return 0;
}

/* 0, or -1 with errno set; each knob is tried. */
static int restore_knobs(struct anyip *a, const char **failed)
{
    int rc = 0;
    for (int i = 0; i < 2; i++) {
        struct knob *k = &a->knobs[i];
        if (k->changed && write_knob(a->ifname, k->name, k->old) < 0 && rc == 0) {
            *failed = k->name;
            rc = -1;
        }
        k->changed = false;
    }
    return rc;
}

/* ---- open / set / close ---- */

struct anyip *anyip_open(const char *ifname, uint32_t table, uint32_t rule_priority, char *err, size_t errlen)
{
    if (!ifname || !*ifname || strlen(ifname) >= IF_NAMESIZE || if_nametoindex(ifname) == 0) {
        pins_err(err, errlen, "no interface '%s'", ifname ? ifname : "");
        return NULL;
    }
    if (table == RT_TABLE_UNSPEC || table == RT_TABLE_DEFAULT || table == RT_TABLE_MAIN || table == RT_TABLE_LOCAL) {
        pins_err(err, errlen, "routing table %u is the kernel's: the AnyIP routes need a table of their own", table);
        return NULL;
    }
    if (rule_priority == 0 || rule_priority >= MAIN_RULE_PRIORITY) {
        pins_err(err, errlen, "rule priority %u is not in 1..%d (the rule must come before the main table's)",
                 rule_priority, MAIN_RULE_PRIORITY - 1);
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
    a->knobs[0] = (struct knob){.name = "arp_ignore", .at_least = 1};
    a->knobs[1] = (struct knob){.name = "arp_announce", .at_least = 2};
    a->lo_ifindex = (int)if_nametoindex("lo");
    a->fd = rtnl_open();
    if (a->fd < 0) {
        pins_err(err, errlen, "netlink socket: %s", strerror(errno));
        free(a);
        return NULL;
    }
    bool rule_added = false;
    const char *knob;
    /* ARP first: no moment where a leftover route is answered for on the wire. */
    if (raise_knobs(a, err, errlen) < 0)
        goto fail;
    int e = rule_change(a, RTM_NEWRULE, NLM_F_CREATE | NLM_F_EXCL); /* EXCL: EEXIST for an identical rule */
    if (e < 0 && e != -EEXIST) {
        pins_err(err, errlen, "adding rule 'iif %s lookup %u priority %u': %s", ifname, table, rule_priority,
                 strerror(-e));
        goto fail;
    }
    rule_added = true;
    if (remove_leftovers(a, err, errlen) < 0)
        goto fail;
    return a;

fail:
    if (rule_added)
        rule_change(a, RTM_DELRULE, 0);
    restore_knobs(a, &knob);
    close(a->fd);
    free(a);
    return NULL;
}

static int cmp_u32(const void *x, const void *y)
{
    uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
    return (a > b) - (a < b);
}

/* The first failure of one anyip_set() and how many there were. */
struct failures {
    int count;
    char first[96];
};

static void failed(struct failures *f, const char *what, uint32_t addr, int e)
{
    if (f->count++ > 0)
        return;
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &addr, ip, sizeof(ip));
    snprintf(f->first, sizeof(f->first), "%s %s: %s", what, ip, strerror(-e));
}

int anyip_set(struct anyip *a, const uint32_t *addrs, int n)
{
    if (n < 0 || (n > 0 && !addrs)) {
        log_error("anyip: %d addresses asked for", n);
        return -1;
    }
    if (n > a->want_cap) {
        uint32_t *v = realloc(a->want, (size_t)n * sizeof(*v));
        if (!v) {
            log_error("anyip: %d addresses: out of memory", n);
            return -1;
        }
        a->want = v;
        a->want_cap = n;
    }
    int nwant = 0;
    for (int i = 0; i < n; i++)
        if (addrs[i] != 0)
            a->want[nwant++] = addrs[i];
    if (nwant > 0)
        qsort(a->want, (size_t)nwant, sizeof(*a->want), cmp_u32);
    int w = 0;
    for (int i = 0; i < nwant; i++)
        if (w == 0 || a->want[i] != a->want[w - 1])
            a->want[w++] = a->want[i];
    nwant = w;
    if (nwant == a->nhave && (nwant == 0 || memcmp(a->want, a->have, (size_t)nwant * sizeof(*a->have)) == 0))
        return 0;

    /* Merge the two sorted lists: what is only wanted is added, what is only had is deleted.
     * The result is what the table really holds, so a failed change is retried next time. */
    uint32_t *now = malloc((size_t)(nwant + a->nhave + 1) * sizeof(*now));
    if (!now) {
        log_error("anyip: %d addresses: out of memory", nwant);
        return -1;
    }
    int nnow = 0, i = 0, j = 0, added = 0, removed = 0;
    struct failures f = {0};
    while (i < nwant || j < a->nhave) {
        if (j == a->nhave || (i < nwant && a->want[i] < a->have[j])) {
            int e = route_change(a, RTM_NEWROUTE, a->want[i]);
            if (e == 0) {
                now[nnow++] = a->want[i];
                added++;
            } else {
                failed(&f, "adding", a->want[i], e);
            }
            i++;
        } else if (i == nwant || a->have[j] < a->want[i]) {
            int e = route_change(a, RTM_DELROUTE, a->have[j]);
            if (e == 0 || e == -ESRCH) { /* ESRCH: someone removed it already */
                removed++;
            } else {
                now[nnow++] = a->have[j];
                failed(&f, "removing", a->have[j], e);
            }
            j++;
        } else {
            now[nnow++] = a->want[i];
            i++;
            j++;
        }
    }
    free(a->have);
    a->have = now;
    a->nhave = nnow;
    log_debug("anyip: table %u: %d addresses (+%d -%d)", a->table, nnow, added, removed);
    if (f.count == 0) {
        a->last_failure[0] = '\0';
        return 0;
    }
    char line[sizeof(a->last_failure)];
    snprintf(line, sizeof(line), "anyip: %d of %d local route changes in table %u failed (first: %s); "
             "they are tried again on the next update", f.count, added + removed + f.count, a->table, f.first);
    if (strcmp(line, a->last_failure) != 0)
        log_error("%s", line);
    snprintf(a->last_failure, sizeof(a->last_failure), "%s", line);
    return -1;
}

int anyip_count(const struct anyip *a)
{
    return a->nhave;
}

void anyip_close(struct anyip *a)
{
    if (!a)
        return;
    a->last_failure[0] = '\0'; /* a failure now is worth a line even if it was logged before */
    anyip_set(a, NULL, 0);
    int e = rule_change(a, RTM_DELRULE, 0);
    if (e < 0 && e != -ENOENT)
        log_warn("anyip: removing rule 'iif %s lookup %u priority %u': %s", a->ifname, a->table, a->priority,
                 strerror(-e));
    /* Last: ARP stays quiet until nothing is accepted any more. */
    const char *knob = "";
    if (restore_knobs(a, &knob) < 0)
        log_warn("anyip: restoring net.ipv4.conf.%s.%s: %s", a->ifname, knob, strerror(errno));
    close(a->fd);
    free(a->have);
    free(a->want);
    free(a);
}
