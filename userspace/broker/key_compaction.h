/* Key compaction of topics whose cleanup.policy contains "compact" (Kafka's log cleaner): one round,
 * run by the lifecycle job on a store thread under its lease. */
#ifndef SLUICE_KEY_COMPACTION_H
#define SLUICE_KEY_COMPACTION_H

#include <stdint.h>

struct metastore;
struct objstore;

/* Cleans every compacted partition that is due. Renews the lease lease_kind (held by owner, time
 * to live ttl_ms) in long rounds; returns 0, or 1 when another agent holds it now (stop). */
int key_compaction_round(struct metastore *m, struct objstore *objects, const char *lease_kind, const char *owner,
                         int64_t ttl_ms);

#endif
