// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/* Per-worker steering on one host: an sk_lookup program attached to the agent's network namespace.
 *
 *   slot port (slot_port_base + s) -> slot_owner[s] -> that worker's listener in worker_socks
 *   bootstrap port                  -> the live worker with the fewest live connections
 *   any other port, or not TCP      -> untouched: the kernel's usual socket lookup
 *
 * The listener is assigned with BPF_SK_LOOKUP_F_NO_REUSEPORT so that SO_REUSEPORT groups (the
 * fallback when steering is off) cannot undo the choice. A worker whose listener is missing from
 * worker_socks (it died: closing a listener removes it from a SOCKMAP) gets nothing; the program
 * then leaves the connection to the kernel's usual lookup. Every decision bumps a per-CPU counter.
 */
/* vmlinux.h has a typedef named "config" (zstd's); rename it so our map can have that name. */
#define config vmlinux_config
#include "vmlinux.h"
#undef config
#include <bpf/bpf_helpers.h>

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

/* Hands the connection to worker's listener. Returns SK_PASS in every case: when the worker has no
 * listener, or the kernel refuses it, the connection goes through the usual lookup instead. */
static __always_inline int assign_worker(struct bpf_sk_lookup *ctx, steer_u32 worker,
                                         enum steer_counter on_success, enum steer_counter on_missing)
{
    struct bpf_sock *sk = bpf_map_lookup_elem(&worker_socks, &worker);
    if (!sk) {
        count(on_missing);
        return SK_PASS;
    }
    long err = bpf_sk_assign(ctx, sk, BPF_SK_LOOKUP_F_NO_REUSEPORT);
    bpf_sk_release(sk);
    if (err) {
        count(STEER_ASSIGN_ERROR);
        return SK_PASS;
    }
    count(on_success);
    count_worker(worker);
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
    if (port == cfg->bootstrap_port && port != 0) {
        steer_u32 worker = least_loaded_worker(cfg);
        if (worker == STEER_NO_WORKER) {
            count(STEER_NO_LIVE_WORKER);
            return SK_PASS;
        }
        /* The pick may die between the scan and here: then it counts as no live worker. */
        return assign_worker(ctx, worker, STEER_BOOTSTRAP_PICK, STEER_NO_LIVE_WORKER);
    }

    steer_u32 slot = port - cfg->slot_port_base; /* wraps to a huge value below the base */
    if (slot >= cfg->nslots || slot >= STEER_MAX_SLOTS)
        return SK_PASS; /* not one of ours */

    steer_u32 *owner = bpf_map_lookup_elem(&slot_owner, &slot);
    if (!owner)
        return SK_PASS;
    /* An unset owner (STEER_NO_WORKER) or a dead one has no entry in worker_socks. */
    return assign_worker(ctx, *owner, STEER_SLOT_HIT, STEER_NO_OWNER);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
