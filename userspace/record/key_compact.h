/* Key compaction (cleanup.policy=compact), the pure part: a map of each key's latest offset, and
 * the rewrite of a chunk's batches keeping only the records that are still the latest for their
 * key, as Kafka's log cleaner does. No I/O, no store: broker/key_compaction.c drives it. */
#ifndef SLUICE_KEY_COMPACT_H
#define SLUICE_KEY_COMPACT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

/* key (128 bits of its SHA-256: a collision, which could drop a latest record, is as likely as a
 * SHA-256 one) -> the latest offset seen for it. Open addressing, a fixed size chosen up front. */
struct key_map;

/* A map that uses at most max_bytes. NULL on out-of-memory. */
struct key_map *key_map_new(size_t max_bytes);
void key_map_free(struct key_map *km);
/* Records that key's latest offset is offset (offsets only grow). 0, or -1 when the map is full
 * (nothing changed). */
int key_map_put(struct key_map *km, const uint8_t *key, size_t key_len, int64_t offset);
/* The latest offset of key, or -1. */
int64_t key_map_get(const struct key_map *km, const uint8_t *key, size_t key_len);
size_t key_map_count(const struct key_map *km);

/* Adds every keyed record of a chunk (its batches back to back, first offset base_offset, last
 * last_offset: gaps allowed, see batch_walk_base) to the map. 0; -1 when the chunk does not parse;
 * 1 when the map filled up (the records already added stay, they are true "later" offsets). */
int key_map_add_chunk(struct key_map *km, const uint8_t *data, size_t len, int64_t base_offset,
                      int64_t last_offset);

struct key_compact_stats {
    int64_t records_in, records_kept;
    int64_t tombstones_removed;
    int32_t batches_out;
    int64_t first_tombstone_kept;  /* the smallest timestamp of a tombstone kept; set INT64_MAX first */
};

/* Rewrites a chunk: a record is kept when the map has no later offset for its key (a key not in
 * the map is kept too), except a tombstone (null value) whose timestamp is before
 * tombstone_horizon_ms, which goes once it is the latest. Kept records are copied byte for byte
 * (offset delta, timestamp delta, key, value, headers); each batch keeps its header fields (leader
 * epoch, lastOffsetDelta, timestamps, producer id/epoch/base sequence) with its absolute baseOffset
 * stored, its records uncompressed when it was compressed and any record went, and its CRC
 * recomputed; a batch left with no record is dropped; one whose records all stay is copied as it
 * was; control batches and keyless records stay. Appends to out; 0, or -1 when the chunk does not
 * parse (out unchanged then). */
int key_compact_chunk(const struct key_map *km, const uint8_t *data, size_t len, int64_t base_offset,
                      int64_t last_offset, int64_t tombstone_horizon_ms, struct buf *out,
                      struct key_compact_stats *st);

#endif
