/* Loader of the sk_lookup steering program (bpf/steer.bpf.c): slot port -> owner worker's listener,
 * bootstrap port -> least-loaded live worker (README: "Workers, slots and eBPF steering").
 *
 * Everything lives under /sys/fs/bpf/sluice/<name>/: the maps (config, slot_owner, worker_socks,
 * worker_load, counters, worker_steered) and "link", the sk_lookup link of the network namespace.
 * The pins outlive the agent, so steering keeps working across a restart: the next steer_open()
 * with the same name reuses the pinned maps and swaps its program into the pinned link.
 *
 * Fork: the supervisor calls steer_open() and forks workers; every other function only uses the
 * inherited map fds (plain bpf(2) calls, no libbpf object state), so workers may call them on the
 * inherited struct. */
#ifndef SLUICE_STEER_H
#define SLUICE_STEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bpf/steer.h"

struct steer;

struct steer_options {
    const char *name;        /* pin directory under /sys/fs/bpf/sluice/: letters, digits, '-', '_', '.' */
    uint16_t bootstrap_port; /* served by every worker */
    uint16_t slot_port_base; /* slot s at slot_port_base + s */
    uint32_t nslots;         /* <= STEER_MAX_SLOTS */
    uint32_t nworkers;       /* 1..STEER_MAX_WORKERS */
    /* The destinations that are the agent's (its listener address): bind_family 0 = both
     * families, AF_INET / AF_INET6 = that one; bind_specific = only bind_ip4 / bind_ip6 (network
     * byte order). All zero: every local address of both families. */
    uint16_t bind_family;
    bool bind_specific;
    uint32_t bind_ip4;
    uint32_t bind_ip6[4];
};

/* Loads the program (reusing the maps pinned by a previous run in this network namespace, if
 * compatible), attaches it to the current network namespace (or swaps it into the pinned link) and
 * pins maps and link, mounting bpffs on /sys/fs/bpf first if needed. Slots of freshly created maps
 * start with no owner. A name whose link steers another live network namespace is refused (agents
 * in containers share one bpffs); one whose namespace is gone is taken over afresh. On failure (no
 * CAP_BPF, no kernel support, bad options, name in use, ...) returns NULL with one line in err and
 * logs nothing: the caller logs it and falls back to SO_REUSEPORT. */
struct steer *steer_open(const struct steer_options *o, char *err, size_t errlen);

/* Each returns 0, or -1 with errno set and one log line. */
int steer_set_worker_socket(struct steer *s, uint32_t worker, int listen_fd); /* after listen() */
int steer_clear_worker(struct steer *s, uint32_t worker);                     /* worker died; 0 if already gone */
int steer_set_slot_owner(struct steer *s, uint32_t slot, uint32_t worker);    /* worker may be STEER_NO_WORKER */
int steer_set_worker_load(struct steer *s, uint32_t worker, uint32_t live_conns);
/* Makes peer_addrs hold exactly these IPv4 addresses (network byte order, at most
 * STEER_MAX_PEER_ADDRS): connections XDP forwards here from other hosts keep their destination. */
int steer_set_peer_addrs(struct steer *s, const uint32_t *addrs, int n);

struct steer_stats {
    uint64_t counters[STEER_COUNTER_MAX];    /* by enum steer_counter */
    uint64_t per_worker[STEER_MAX_WORKERS];  /* connections steered to each worker */
};
/* Sums the per-CPU counters. Counters are cumulative over the life of the pinned maps. */
int steer_read_stats(struct steer *s, struct steer_stats *out);

/* The fd of one of the maps named above, or -1 (errno ENOENT). */
int steer_map_fd(struct steer *s, const char *map_name);
/* The fd of the loaded sk_lookup program (e.g. for BPF_PROG_TEST_RUN). */
int steer_prog_fd(struct steer *s);

/* Closes fds and frees s; the pins (and so the attachment) stay. NULL is fine. */
void steer_close(struct steer *s);

/* Removes /sys/fs/bpf/sluice/<name>/ entirely, which detaches the program once no process holds
 * the link any more. 0 if it is gone (or never existed), else -1 with errno set. */
int steer_unpin(const char *name);

#endif
