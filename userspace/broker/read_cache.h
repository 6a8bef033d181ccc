/* An LRU cache of object byte ranges (chunks), bounded in bytes. The worker that flushed a chunk
 * keeps it (its partition's consumers come to it when steered); fetches that read from the object
 * store keep what they read. A request pins the entries it is about to answer with, so that other
 * requests' reads cannot evict them meanwhile; pinned bytes may exceed the bound for that moment. */
#ifndef SLUICE_READ_CACHE_H
#define SLUICE_READ_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

struct cache_entry;

struct read_cache {
    struct cache_entry **slots;
    size_t nslots, count;
    struct cache_entry *lru_head, *lru_tail; /* head = most recently used */
    size_t bytes, max_bytes;
    uint64_t hits, misses;
};

void read_cache_init(struct read_cache *c, size_t max_bytes);
void read_cache_free(struct read_cache *c);
/* The cached bytes of (key, pos, len), or NULL. Valid until the next insert (pin to keep them). */
const struct buf *read_cache_get(struct read_cache *c, const char *key, uint64_t pos, uint32_t len);
/* Takes ownership of data's memory (data is reset); keeps the entry already cached for the same
 * range, if any. Returns the cached entry. */
struct cache_entry *read_cache_put(struct read_cache *c, const char *key, uint64_t pos, uint32_t len,
                                   struct buf *data);
/* The same, for len bytes at off of data, whose whole memory the entry then holds (and counts): a
 * whole object read becomes the entry of its main chunk without a copy. */
struct cache_entry *read_cache_put_view(struct read_cache *c, const char *key, uint64_t pos, uint32_t len,
                                        struct buf *data, size_t off);
/* The entry of (key, pos, len), pinned (never evicted until unpinned), or NULL. */
struct cache_entry *read_cache_pin(struct read_cache *c, const char *key, uint64_t pos, uint32_t len);
void read_cache_pin_entry(struct read_cache *c, struct cache_entry *e);
void read_cache_unpin(struct read_cache *c, struct cache_entry *e);
const struct buf *cache_entry_data(const struct cache_entry *e);
/* Keeps the bytes of an entry (data as returned by cache_entry_data or read_cache_get) alive past
 * its eviction until read_cache_release(the returned handle): for answers sent from them. */
void *read_cache_hold(const struct buf *data);
void read_cache_release(void *held);

/* The entries one request holds pinned until it is answered. */
struct cache_pins {
    struct read_cache *cache;
    struct cache_entry **v;
    int n, cap;
};
/* Records an entry the caller pinned; release unpins them all. */
void cache_pins_add(struct cache_pins *p, struct read_cache *c, struct cache_entry *e);
void cache_pins_release(struct cache_pins *p);

#endif
