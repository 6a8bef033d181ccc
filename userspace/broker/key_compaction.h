/* Key compaction of topics whose cleanup.policy contains "compact" (Kafka's log cleaner): one round,
 * run by the lifecycle job on worker 0's background thread under its lease. */
#ifndef SLUICE_KEY_COMPACTION_H
#define SLUICE_KEY_COMPACTION_H

#include <stdbool.h>
#include <stddef.h>

struct config;
struct metastore;
struct objstore;

/* Cleans every compacted partition that is due, with a key map of at most
 * cfg->key_compaction_map_bytes. Between
 * partitions it asks keep (the lifecycle's lease renewal; false: the lease is lost or the worker
 * stops) whether to go on. */
void key_compaction_round(struct metastore *m, struct objstore *objects, const struct config *cfg,
                          bool (*keep)(void *arg, struct metastore *m), void *arg);

#endif
