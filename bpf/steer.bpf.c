// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/* Per-worker steering on one host: an sk_lookup program attached to the agent's network namespace.
 *
 *   slot port (slot_port_base + s) -> slot_owner[s] -> that worker's listener in worker_socks
 *   bootstrap port                  -> the live worker with the fewest live connections
 *   any other port, or not TCP      -> untouched: the kernel's usual socket lookup
 *   a local address the agent is not bound to (--kafka-host) -> untouched, as for any listener
 *
 * The listener is assigned with BPF_SK_LOOKUP_F_NO_REUSEPORT so that SO_REUSEPORT groups (the
 * fallback when steering is off) cannot undo the choice. A slot whose owner has no listener in
 * worker_socks (it just died: closing a listener removes it from a SOCKMAP; the supervisor moves
 * its slots a moment later) goes to the least-loaded live worker meanwhile, so no slot connection
 * is refused while one worker lives. Every decision bumps a per-CPU counter.
 */
/* vmlinux.h has a typedef named "config" (zstd's); rename it so our map can have that name. */
#define config vmlinux_config
#include "vmlinux.h"
#undef config
#include <bpf/bpf_helpers.h>

#define ENOENT 2 /* errno values: BPF programs cannot include <errno.h> */

#include "steer.h"

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, steer_u32);
    __type(value, struct steer_config);
} config SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, STEER_MAX_SLOTS);
    __type(key, steer_u32);   /* slot */
    __type(value, steer_u32); /* worker, or STEER_NO_WORKER */
} slot_owner SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_SOCKMAP);
    __uint(max_entries, STEER_MAX_WORKERS);
    __type(key, steer_u32);   /* worker */
    __type(value, steer_u64); /* listener: an fd on update, the socket cookie on lookup */
} worker_socks SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, STEER_MAX_WORKERS);
    __type(key, steer_u32); /* worker */
    __type(value, struct worker_load);
} worker_load SEC(".maps");

/* IPv4 addresses of other hosts whose connections XDP forwards here (the agent accepts them through
 * AnyIP routes): steered like the bind address when the agent is bound to one address. */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, STEER_MAX_PEER_ADDRS);
    __type(key, steer_u32);   /* IPv4 address, network byte order */
    __type(value, steer_u32); /* 1 */
} peer_addrs SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, STEER_COUNTER_MAX);
    __type(key, steer_u32); /* enum steer_counter */
    __type(value, steer_u64);
} counters SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, STEER_MAX_WORKERS);
    __type(key, steer_u32);   /* worker */
    __type(value, steer_u64); /* connections steered to it */
} worker_steered SEC(".maps");

static __always_inline void count(enum steer_counter counter)
{
    steer_u32 key = counter;
    steer_u64 *value = bpf_map_lookup_elem(&counters, &key);
    if (value)
        *value += 1; /* per-CPU: no other writer on this CPU while we run */
}

static __always_inline void count_worker(steer_u32 worker)
{
    steer_u64 *value = bpf_map_lookup_elem(&worker_steered, &worker);
    if (value)
        *value += 1;
}

/* Hands the connection to worker's listener: 0, -ENOENT if the worker has no listener (unset or
 * dead), or the error of bpf_sk_assign() (e.g. an IPv6 connection and an IPv4-only listener).
 * Either way the program returns SK_PASS: without an assignment the kernel's usual lookup runs. */
static __always_inline long assign_to(struct bpf_sk_lookup *ctx, steer_u32 worker)
{
    struct bpf_sock *sk = bpf_map_lookup_elem(&worker_socks, &worker);
    if (!sk)
        return -ENOENT;
    long err = bpf_sk_assign(ctx, sk, BPF_SK_LOOKUP_F_NO_REUSEPORT);
    bpf_sk_release(sk);
    if (!err)
        count_worker(worker);
    return err;
}

/* Counts the outcome of assign_to(). */
static __always_inline int counted(long err, enum steer_counter on_success, enum steer_counter on_missing)
{
    count(err == 0 ? on_success : err == -ENOENT ? on_missing : STEER_ASSIGN_ERROR);
    return SK_PASS;
}

/* The live worker (one with a listener) with the fewest live connections, or STEER_NO_WORKER. The
 * scan starts at a random worker so that ties, e.g. a burst of connections before the workers
 * report their new loads, spread over the tied workers instead of piling onto the first. */
static __always_inline steer_u32 least_loaded_worker(const struct steer_config *cfg)
{
    steer_u32 n = cfg->nworkers;
    if (n == 0 || n > STEER_MAX_WORKERS)
        return STEER_NO_WORKER;

    steer_u32 start = bpf_get_prandom_u32() % n;
    steer_u32 best = STEER_NO_WORKER, best_load = 0;
    for (steer_u32 i = 0; i < STEER_MAX_WORKERS; i++) {
        if (i >= n)
            break;
        steer_u32 worker = start + i;
        if (worker >= n)
            worker -= n;

        struct worker_load *load = bpf_map_lookup_elem(&worker_load, &worker);
        if (!load)
            continue;
        steer_u32 conns = load->live_conns;
        if (best != STEER_NO_WORKER && conns >= best_load)
            continue;

        struct bpf_sock *sk = bpf_map_lookup_elem(&worker_socks, &worker);
        if (!sk)
            continue; /* dead worker */
        bpf_sk_release(sk);
        best = worker;
        best_load = conns;
    }
    return best;
}

/* Is the connection's destination an address the agent serves (its --kafka-host)? */
static __always_inline bool bound_here(const struct bpf_sk_lookup *ctx, const struct steer_config *cfg)
{
    if (cfg->bind_family && cfg->bind_family != ctx->family)
        return false;
    if (!cfg->bind_specific)
        return true;
    if (ctx->family == STEER_AF_INET) {
        steer_u32 addr = ctx->local_ip4;
        return addr == cfg->bind_ip4 || bpf_map_lookup_elem(&peer_addrs, &addr) != NULL;
    }
    return ctx->local_ip6[0] == cfg->bind_ip6[0] && ctx->local_ip6[1] == cfg->bind_ip6[1] &&
           ctx->local_ip6[2] == cfg->bind_ip6[2] && ctx->local_ip6[3] == cfg->bind_ip6[3];
}

SEC("sk_lookup")
int sluice_steer(struct bpf_sk_lookup *ctx)
{
    if (ctx->protocol != IPPROTO_TCP)
        return SK_PASS;

    steer_u32 zero = 0;
    const struct steer_config *cfg = bpf_map_lookup_elem(&config, &zero);
    if (!cfg)
        return SK_PASS;

    steer_u32 port = ctx->local_port; /* host byte order */
    steer_u32 slot = port - cfg->slot_port_base; /* wraps to a huge value below the base */
    bool bootstrap = port == cfg->bootstrap_port && port != 0;
    if (!bootstrap && (slot >= cfg->nslots || slot >= STEER_MAX_SLOTS))
        return SK_PASS; /* not one of ours */
    if (!bound_here(ctx, cfg)) {
        count(STEER_OTHER_ADDRESS);
        return SK_PASS;
    }

    if (bootstrap) {
        steer_u32 worker = least_loaded_worker(cfg);
        if (worker == STEER_NO_WORKER) {
            count(STEER_NO_LIVE_WORKER);
            return SK_PASS;
        }
        /* The pick may die between the scan and here: then it counts as no live worker. */
        return counted(assign_to(ctx, worker), STEER_BOOTSTRAP_PICK, STEER_NO_LIVE_WORKER);
    }

    steer_u32 *owner = bpf_map_lookup_elem(&slot_owner, &slot);
    if (!owner)
        return SK_PASS;
    long err = assign_to(ctx, *owner);
    if (err != -ENOENT)
        return counted(err, STEER_SLOT_HIT, STEER_NO_OWNER);
    /* No owner, or it just died and the supervisor has not moved its slots yet: any live worker
     * serves any partition, so take the least-loaded one rather than refuse the connection. */
    steer_u32 worker = least_loaded_worker(cfg);
    if (worker == STEER_NO_WORKER) {
        count(STEER_NO_OWNER);
        return SK_PASS;
    }
    return counted(assign_to(ctx, worker), STEER_SLOT_FALLBACK, STEER_NO_OWNER);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
