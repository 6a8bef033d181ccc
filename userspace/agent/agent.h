/* The agent: a supervisor process that owns steering (the BPF maps) and forks one worker process
 * per core; each worker runs its own event loop, flush buffer and read cache. */
#ifndef SLUICE_AGENT_H
#define SLUICE_AGENT_H

#include "config.h"

struct steer;

/* Runs the supervisor until SIGTERM/SIGINT; returns the process exit status. */
int agent_run(const struct config *cfg);

/* Runs worker `id` in this (forked) process; steer is NULL when steering is off. report_fd is its
 * end of a SOCK_SEQPACKET pair with the supervisor: REPORT_READY once the worker accepts
 * connections, then the group's membership when XDP forwarding needs it (agent/report.h).
 * Returns the process exit status. */
int worker_run(const struct config *cfg, int id, struct steer *steer, int report_fd);

#endif
