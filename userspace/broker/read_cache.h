/* An LRU cache of object byte ranges read by fetches, bounded in bytes. Consumers reading the tail
 * of a partition hit the chunk the flusher just committed; re-reads of older data hit too. */
#ifndef SLUICE_READ_CACHE_H
#define SLUICE_READ_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

struct cache_entry;

struct read_cache {
    struct cache_entry **slots;
    size_t nslots;
    struct cache_entry *lru_head, *lru_tail; /* head = most recently used */
    size_t bytes, max_bytes;
    uint64_t hits, misses;
};

void read_cache_init(struct read_cache *c, size_t max_bytes);
void read_cache_free(struct read_cache *c);
/* The cached bytes of (key, pos, len), or NULL. Valid until the next insert. */
const struct buf *read_cache_get(struct read_cache *c, const char *key, uint64_t pos, uint32_t len);
/* Takes ownership of data's memory (data is reset). Returns the cached copy. */
const struct buf *read_cache_put(struct read_cache *c, const char *key, uint64_t pos, uint32_t len, struct buf *data);

#endif
