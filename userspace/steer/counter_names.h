/* Names of the BPF programs' decision counters, shared by `sluice steer status` and /metrics. */
#ifndef SLUICE_COUNTER_NAMES_H
#define SLUICE_COUNTER_NAMES_H

#include "bpf/forward.h"
#include "bpf/steer.h"

extern const char *const steer_counter_names[STEER_COUNTER_MAX]; /* by enum steer_counter */
extern const char *const fwd_counter_names[FWD_COUNTER_MAX];     /* by enum fwd_counter */

#endif
