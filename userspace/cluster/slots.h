/* Slots are sluice's virtual brokers. Two mappings, both computed identically everywhere:
 *   partition -> slot   fixed: (hash(topic) + partition) mod S, so a topic's partitions spread over slots;
 *   slot -> worker      rendezvous hashing over the live workers: when a worker comes or goes only
 *                       the slots it owned (or wins) move, and every process agrees without talking. */
#ifndef SLUICE_SLOTS_H
#define SLUICE_SLOTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* FNV-1a of the topic name: stable across processes, hosts and versions. */
uint32_t topic_hash(const char *name, size_t len);

static inline uint32_t slot_of_partition(const char *topic, size_t len, int32_t partition, uint32_t nslots)
{
    return (uint32_t)(((uint64_t)topic_hash(topic, len) + (uint32_t)partition) % nslots);
}

/* The live member with the highest score for this slot, or -1 if none is live (live == NULL: all
 * are). Members are identified by a 64-bit id. */
int slot_owner(uint32_t slot, const uint64_t *member_ids, const bool *live, int nmembers);

#endif
