/* Steering counters (sk_lookup, XDP) in the /metrics exposition. */
#ifndef SLUICE_STEER_METRICS_H
#define SLUICE_STEER_METRICS_H

#include "util/buf.h"

struct steering;

/* Appends the series of what st has loaded (nothing when steering is off). */
void steer_metrics_render(struct steering *st, int nworkers, struct buf *out);

#endif
