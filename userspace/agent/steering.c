#include "agent/steering.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/report.h"
#include "cluster/membership.h"
#include "cluster/slots.h"
#include "steer/anyip.h"
#include "steer/forward.h"
#include "steer/nexthop.h"
#include "steer/steer.h"
#include "util/log.h"
#include "util/netaddr.h"

/* The routing table and rule priority of the AnyIP routes: packets arriving on the uplink for a
 * peer's address are local (see steer/anyip.h). */
#define ANYIP_TABLE 4092
#define ANYIP_RULE_PRIORITY 4092
/* Peers' next hops are read again this often: ARP answers arrive, routers and MACs change. */
#define RESOLVE_EVERY_MS 1000
/* ...and this often while one is still waiting for ARP: until then its slots' packets wait too. */
#define RESOLVE_PENDING_EVERY_MS 10

struct peer {
    uint32_t ip4;
    uint8_t mac[6];             /* zero until resolved */
    enum nexthop_status status;
    bool via_router;
};

struct steering {
    const struct config *cfg;
    struct steer *kernel;       /* sk_lookup; NULL: steering off */
    uint64_t local_ids[STEER_MAX_WORKERS];

    /* XDP forwarding; all NULL/empty without --xdp-interface */
    struct forward *fwd;
    struct anyip *anyip;
    uint32_t self_ip4;
    uint8_t self_mac[6];
    int ifindex;
    struct report_member *members; /* the group, as the last report said */
    int nmembers;
    struct peer *peers;         /* the other hosts of the group */
    int npeers;
    struct slot_route *routes;  /* what the slot_hosts map holds */
    int64_t next_resolve_ms;
};

static struct steer *open_sk_lookup(const struct config *cfg)
{
    if (!strcmp(cfg->steering, "off")) {
        log_warn("steering off: workers share the ports with SO_REUSEPORT; locality is best effort");
        return NULL;
    }
    char err[512] = "";
    struct bind_addr bind;
    if (bind_addr_parse(cfg->bind_host, &bind, err, sizeof(err)) != 0) {
        log_error("%s", err);
        return NULL;
    }
    struct steer_options o = {
        .name = cfg->steering_name,
        .bootstrap_port = (uint16_t)cfg->kafka_port,
        .slot_port_base = (uint16_t)cfg->slot_port_base,
        .nslots = (uint32_t)cfg->slots,
        .nworkers = (uint32_t)cfg->workers,
        .bind_family = (uint16_t)bind.family,
        .bind_specific = bind.specific,
        .bind_ip4 = bind.ip4,
    };
    memcpy(o.bind_ip6, bind.ip6, sizeof(o.bind_ip6));
    struct steer *s = steer_open(&o, err, sizeof(err));
    if (!s) {
        if (!strcmp(cfg->steering, "on"))
            log_error("steering=on but eBPF steering is unavailable: %s", err);
        else
            log_warn("eBPF steering unavailable (%s): workers share the ports with SO_REUSEPORT; locality is "
                     "best effort",
                     err);
        return NULL;
    }
    log_info("steering: sk_lookup program attached, maps and link pinned under /sys/fs/bpf/sluice/%s/",
             cfg->steering_name);
    return s;
}

static int open_xdp(struct steering *st)
{
    const struct config *cfg = st->cfg;
    if (!st->kernel) {
        log_error("xdp-interface %s: XDP forwarding needs eBPF steering, which is unavailable (see above)",
                  cfg->xdp_interface);
        return -1;
    }
    struct forward_options fo = {
        .pin_name = cfg->steering_name,
        .ifname = cfg->xdp_interface,
        .mode = strcmp(cfg->xdp_mode, "ipip") ? FWD_MODE_L2 : FWD_MODE_IPIP,
        .slot_port_base = (uint16_t)cfg->slot_port_base,
        .nslots = (uint32_t)cfg->slots,
    };
    char err[512] = "";
    st->fwd = forward_open(&fo, err, sizeof(err));
    if (!st->fwd) {
        log_error("xdp-interface %s: %s", cfg->xdp_interface, err);
        return -1;
    }
    st->anyip = anyip_open(cfg->xdp_interface, ANYIP_TABLE, ANYIP_RULE_PRIORITY, err, sizeof(err));
    if (!st->anyip) {
        log_error("xdp-interface %s: accepting forwarded connections: %s", cfg->xdp_interface, err);
        return -1;
    }
    st->self_ip4 = forward_self_ip4(st->fwd);
    memcpy(st->self_mac, forward_self_mac(st->fwd), 6);
    st->ifindex = (int)if_nametoindex(cfg->xdp_interface);
    st->routes = calloc((size_t)cfg->slots, sizeof(*st->routes));
    if (!st->routes)
        return -1;
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &st->self_ip4, ip, sizeof(ip));
    const uint8_t *m = st->self_mac;
    log_info("xdp: forwarding slot connections to their owner hosts on %s (%s, %s, %02x:%02x:%02x:%02x:%02x:%02x);"
             " maps pinned under /sys/fs/bpf/sluice/%s/",
             cfg->xdp_interface, cfg->xdp_mode, ip, m[0], m[1], m[2], m[3], m[4], m[5], cfg->steering_name);
    return 0;
}

struct steering *steering_open(const struct config *cfg)
{
    struct steering *st = calloc(1, sizeof(*st));
    if (!st)
        return NULL;
    st->cfg = cfg;
    for (int i = 0; i < cfg->workers && i < STEER_MAX_WORKERS; i++) {
        char id[64];
        member_id(cfg, i, id, sizeof(id));
        st->local_ids[i] = member_id_hash(id);
    }
    st->kernel = open_sk_lookup(cfg);
    if ((!st->kernel && !strcmp(cfg->steering, "on")) || (cfg->xdp_interface[0] && open_xdp(st) != 0)) {
        steering_close(st);
        return NULL;
    }
    bool none[STEER_MAX_WORKERS] = {false};
    steering_workers_changed(st, none, cfg->workers); /* stale owners of a previous run cleared */
    return st;
}

struct steer *steering_kernel(struct steering *st)
{
    return st->kernel;
}

struct forward *steering_forward(struct steering *st)
{
    return st->fwd;
}

/* sk_lookup's slot -> local worker: rendezvous hashing over this agent's live workers, scored with
 * the member ids the whole group uses. When the group's table gives a slot to one of our workers,
 * that worker also wins here (the group's winner is the best score of all, hence of ours too); a
 * slot another agent owns goes to one of our workers all the same, so a client that reaches it
 * here is still served. */
void steering_workers_changed(struct steering *st, const bool *live, int nworkers)
{
    if (!st->kernel)
        return;
    for (int s = 0; s < st->cfg->slots; s++) {
        int owner = slot_owner((uint32_t)s, st->local_ids, live, nworkers);
        steer_set_slot_owner(st->kernel, (uint32_t)s, owner < 0 ? STEER_NO_WORKER : (uint32_t)owner);
    }
}

static struct peer *find_peer(struct steering *st, uint32_t ip4)
{
    for (int i = 0; i < st->npeers; i++)
        if (st->peers[i].ip4 == ip4)
            return &st->peers[i];
    return NULL;
}

static struct fwd_host host_entry(struct steering *st, uint32_t ip4)
{
    struct fwd_host h = {.ip4 = ip4};
    if (ip4 == st->self_ip4) {
        memcpy(h.mac, st->self_mac, 6);
    } else {
        struct peer *p = find_peer(st, ip4);
        if (p)
            memcpy(h.mac, p->mac, 6);
    }
    return h;
}

/* Reads where frames for one peer go; true if that changed. l2 reaches only hosts on the segment. */
static bool resolve_peer(struct steering *st, struct peer *p)
{
    uint8_t mac[6] = {0};
    bool via_router = false;
    enum nexthop_status status = nexthop_resolve(p->ip4, st->ifindex, mac, &via_router);
    bool l2 = strcmp(st->cfg->xdp_mode, "ipip") != 0;
    if (status == NEXTHOP_RESOLVED && via_router && l2)
        memset(mac, 0, sizeof(mac));
    if (status != p->status || via_router != p->via_router) {
        char ip[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &p->ip4, ip, sizeof(ip));
        if (status == NEXTHOP_RESOLVED && via_router && l2)
            log_warn("xdp: peer %s is behind a router: xdp-mode l2 cannot reach it (its slots are served here); "
                     "use xdp-mode ipip on routed networks",
                     ip);
        else if (status == NEXTHOP_RESOLVED)
            log_info("xdp: peer %s reached via %02x:%02x:%02x:%02x:%02x:%02x%s", ip, mac[0], mac[1], mac[2], mac[3],
                     mac[4], mac[5], via_router ? " (its router)" : "");
        else if (status != NEXTHOP_PENDING)
            log_warn("xdp: peer %s: %s; its slots are served here", ip, nexthop_status_name(status));
    }
    p->status = status;
    p->via_router = via_router;
    bool changed = memcmp(p->mac, mac, 6) != 0;
    memcpy(p->mac, mac, 6);
    return changed;
}

/* slot -> owner host, and the host that owned it before: the one that would own it if the owner's
 * host were gone (the next in rendezvous order on another host). That is where a slot that just
 * moved to a joining host was served, so flows opened there keep working (second chance); it
 * needs no history, so a host that just started knows it as well as the others. */
static void publish_routes(struct steering *st)
{
    int n = st->nmembers;
    uint64_t *ids = calloc((size_t)(n ? n : 1), sizeof(*ids));
    bool *elsewhere = calloc((size_t)(n ? n : 1), sizeof(*elsewhere));
    if (!ids || !elsewhere) {
        free(ids);
        free(elsewhere);
        return;
    }
    for (int i = 0; i < n; i++)
        ids[i] = st->members[i].id_hash;
    int here = 0, away = 0, changed = 0;
    for (uint32_t slot = 0; slot < (uint32_t)st->cfg->slots; slot++) {
        struct slot_route r = {0};
        int o = slot_owner(slot, ids, NULL, n);
        uint32_t owner_ip = o >= 0 ? st->members[o].fwd_ip4 : 0;
        if (owner_ip) {
            r.owner = host_entry(st, owner_ip);
            for (int i = 0; i < n; i++)
                elsewhere[i] = st->members[i].fwd_ip4 && st->members[i].fwd_ip4 != owner_ip;
            int p = slot_owner(slot, ids, elsewhere, n);
            if (p >= 0)
                r.previous = host_entry(st, st->members[p].fwd_ip4);
        }
        here += !owner_ip || owner_ip == st->self_ip4;
        away += owner_ip && owner_ip != st->self_ip4;
        if (memcmp(&r, &st->routes[slot], sizeof(r)) != 0 && forward_set_route(st->fwd, slot, &r) == 0) {
            st->routes[slot] = r;
            changed++;
        }
    }
    if (changed)
        log_info("xdp: slot table: %d slots served here, %d forwarded to %d other hosts (%d entries changed)", here,
                 away, st->npeers, changed);
    free(ids);
    free(elsewhere);
}

/* The peers are the other hosts of the group: their addresses become AnyIP here (and steered by
 * sk_lookup when the agent is bound to one address), and their next hops are resolved. */
static void update_peers(struct steering *st)
{
    struct peer *peers = calloc((size_t)(st->nmembers ? st->nmembers : 1), sizeof(*peers));
    uint32_t *addrs = calloc((size_t)(st->nmembers ? st->nmembers : 1), sizeof(*addrs));
    if (!peers || !addrs) {
        free(peers);
        free(addrs);
        return;
    }
    int n = 0;
    for (int i = 0; i < st->nmembers; i++) {
        uint32_t ip = st->members[i].fwd_ip4;
        bool seen = !ip || ip == st->self_ip4;
        for (int j = 0; j < n && !seen; j++)
            seen = peers[j].ip4 == ip;
        if (seen)
            continue;
        struct peer *known = find_peer(st, ip);
        peers[n] = known ? *known : (struct peer){.ip4 = ip, .status = NEXTHOP_PENDING};
        addrs[n] = ip;
        n++;
    }
    free(st->peers);
    st->peers = peers;
    st->npeers = n;
    anyip_set(st->anyip, addrs, n);
    steer_set_peer_addrs(st->kernel, addrs, n > STEER_MAX_PEER_ADDRS ? STEER_MAX_PEER_ADDRS : n);
    free(addrs);
    for (int i = 0; i < n; i++)
        if (peers[i].status != NEXTHOP_RESOLVED)
            resolve_peer(st, &peers[i]);
    st->next_resolve_ms = 0; /* look again soon: ARP takes a moment */
}

static bool any_pending(const struct steering *st)
{
    for (int i = 0; i < st->npeers; i++)
        if (st->peers[i].status == NEXTHOP_PENDING)
            return true;
    return false;
}

void steering_on_report(struct steering *st, const void *msg, size_t len)
{
    if (!st->fwd)
        return;
    const struct report_header *h = msg;
    if (len < sizeof(*h) || h->type != REPORT_MEMBERS || h->count > REPORT_MAX_MEMBERS ||
        len != sizeof(*h) + h->count * sizeof(struct report_member)) {
        log_warn("supervisor: a worker's membership report is malformed (%zu bytes); ignored", len);
        return;
    }
    struct report_member *members = malloc(h->count ? h->count * sizeof(*members) : 1);
    if (!members)
        return;
    memcpy(members, h + 1, h->count * sizeof(*members));
    free(st->members);
    st->members = members;
    st->nmembers = (int)h->count;
    update_peers(st);
    publish_routes(st);
}

int64_t steering_tick(struct steering *st, int64_t now_ms)
{
    if (!st->fwd)
        return -1;
    if (now_ms >= st->next_resolve_ms) {
        bool changed = false;
        for (int i = 0; i < st->npeers; i++)
            changed |= resolve_peer(st, &st->peers[i]);
        if (changed)
            publish_routes(st);
        st->next_resolve_ms = now_ms + (any_pending(st) ? RESOLVE_PENDING_EVERY_MS : RESOLVE_EVERY_MS);
    }
    return st->next_resolve_ms;
}

void steering_close(struct steering *st)
{
    if (!st)
        return;
    if (st->kernel) {
        bool none[STEER_MAX_WORKERS] = {false};
        steering_workers_changed(st, none, st->cfg->workers);
    }
    forward_close(st->fwd);
    anyip_close(st->anyip);
    steer_close(st->kernel);
    free(st->members);
    free(st->peers);
    free(st->routes);
    free(st);
}
