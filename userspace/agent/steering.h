/* The one place where an agent decides the kernel's steering, run by the supervisor:
 *
 *   sk_lookup (steer/steer.c): slot -> local worker, from which of this agent's workers are live;
 *   XDP (steer/forward.c):     slot -> owner host (+ previous owner), from the agent group's
 *                              membership that the workers report (agent/report.h);
 *   AnyIP (steer/anyip.c):     the other hosts' addresses this host accepts forwarded flows for.
 *
 * Both tables come from the same rendezvous hashing over member ids (cluster/slots.h) that every
 * agent computes, so a slot's owner worker, its host's XDP and its host's sk_lookup all agree
 * without any coordination. Nothing here waits on a store: membership arrives from the workers. */
#ifndef SLUICE_STEERING_H
#define SLUICE_STEERING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct steering;
struct steer;
struct forward;

/* Opens what cfg asks for. Returns NULL only when the agent must not start (steering=on without
 * BPF, or an XDP interface that cannot be used); with steering=auto and no BPF it returns a
 * steering whose steering_kernel() is NULL (workers then share the ports with SO_REUSEPORT). */
struct steering *steering_open(const struct config *cfg);
/* The sk_lookup maps the workers register with, or NULL when steering is off. */
struct steer *steering_kernel(struct steering *st);
/* The XDP forwarding program, or NULL without --xdp-interface. */
struct forward *steering_forward(struct steering *st);

/* Which of this agent's workers are live (own slots) changed. */
void steering_workers_changed(struct steering *st, const bool *live, int nworkers);
/* A worker's report (agent/report.h, REPORT_MEMBERS) arrived. */
void steering_on_report(struct steering *st, const void *msg, size_t len);
/* Periodic work (next hops not resolved yet, neighbours kept fresh); returns the next deadline
 * (monotonic ms), or -1 if none is needed. */
int64_t steering_tick(struct steering *st, int64_t now_ms);

/* Clean stop: slots have no owner on this host, XDP is detached and the AnyIP routes removed;
 * the pinned maps stay. NULL is fine. */
void steering_close(struct steering *st);

#endif
