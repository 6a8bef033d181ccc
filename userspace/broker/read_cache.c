#include "broker/read_cache.h"

#include <stdlib.h>
#include <string.h>

#include "metrics/metrics.h"

struct cache_entry {
    struct cache_entry *hash_next;
    struct cache_entry *prev, *next; /* LRU list */
    char *key;
    uint64_t pos;
    uint32_t len;
    uint64_t hash;
    int pins;
    struct cache_data *cd;
};

/* An entry's bytes, counted: an answer sent straight from them holds them until sent, even if the
 * entry is evicted meanwhile (or the cache is gone, at exit). */
struct cache_data {
    struct buf data; /* first: cache_entry_data's pointer is the struct's. A view into mem */
    struct buf mem;  /* the allocation (a whole object read may hold more than this chunk) */
    int refs;
};

static void data_unref(struct cache_data *cd)
{
    if (--cd->refs == 0) {
        buf_free(&cd->mem);
        free(cd);
    }
}

void *read_cache_hold(const struct buf *data)
{
    struct cache_data *cd = (struct cache_data *)data;
    cd->refs++;
    return cd;
}

void read_cache_release(void *held)
{
    data_unref(held);
}

static uint64_t hash_of(const char *key, uint64_t pos, uint32_t len)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (const char *p = key; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ULL;
    h = (h ^ pos) * 1099511628211ULL;
    return (h ^ len) * 1099511628211ULL;
}

void read_cache_init(struct read_cache *c, size_t max_bytes)
{
    memset(c, 0, sizeof(*c));
    c->nslots = 4096;
    c->slots = calloc(c->nslots, sizeof(*c->slots));
    if (!c->slots)
        abort();
    c->max_bytes = max_bytes;
}

static void lru_unlink(struct read_cache *c, struct cache_entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        c->lru_head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        c->lru_tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push_front(struct read_cache *c, struct cache_entry *e)
{
    e->prev = NULL;
    e->next = c->lru_head;
    if (c->lru_head)
        c->lru_head->prev = e;
    c->lru_head = e;
    if (!c->lru_tail)
        c->lru_tail = e;
}

static void entry_remove(struct read_cache *c, struct cache_entry *e)
{
    struct cache_entry **pp = &c->slots[e->hash % c->nslots];
    while (*pp != e)
        pp = &(*pp)->hash_next;
    *pp = e->hash_next;
    lru_unlink(c, e);
    c->bytes -= e->cd->mem.len;
    c->count--;
    data_unref(e->cd);
    free(e->key);
    free(e);
}

void read_cache_free(struct read_cache *c)
{
    while (c->lru_head)
        entry_remove(c, c->lru_head);
    free(c->slots);
    c->slots = NULL;
}

static struct cache_entry *find(struct read_cache *c, const char *key, uint64_t pos, uint32_t len)
{
    uint64_t h = hash_of(key, pos, len);
    for (struct cache_entry *e = c->slots[h % c->nslots]; e; e = e->hash_next)
        if (e->hash == h && e->pos == pos && e->len == len && !strcmp(e->key, key))
            return e;
    return NULL;
}

static void touch(struct read_cache *c, struct cache_entry *e)
{
    lru_unlink(c, e);
    lru_push_front(c, e);
}

const struct buf *read_cache_get(struct read_cache *c, const char *key, uint64_t pos, uint32_t len)
{
    struct cache_entry *e = find(c, key, pos, len);
    if (!e) {
        c->misses++;
        metrics_add(M_READ_CACHE_MISSES, 1);
        return NULL;
    }
    touch(c, e);
    c->hits++;
    metrics_add(M_READ_CACHE_HITS, 1);
    return &e->cd->data;
}

/* More entries than slots times two: double the table, so chains stay short. */
static void maybe_grow(struct read_cache *c)
{
    if (c->count < 2 * c->nslots)
        return;
    size_t n = 2 * c->nslots;
    struct cache_entry **slots = calloc(n, sizeof(*slots));
    if (!slots)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < c->nslots; i++) {
        struct cache_entry *e = c->slots[i];
        while (e) {
            struct cache_entry *next = e->hash_next;
            e->hash_next = slots[e->hash % n];
            slots[e->hash % n] = e;
            e = next;
        }
    }
    free(c->slots);
    c->slots = slots;
    c->nslots = n;
}

/* Evicts least recently used unpinned entries until extra more bytes fit. The most recently used
 * entry stays even when it alone is over the bound (a chunk larger than the cache): a consumer
 * reading through it would otherwise have it read again from the store for every answer. */
static void make_room(struct read_cache *c, size_t extra)
{
    struct cache_entry *e = c->lru_tail;
    while (e && c->bytes + extra > c->max_bytes) {
        struct cache_entry *prev = e->prev;
        if (e->pins == 0 && e != c->lru_head)
            entry_remove(c, e);
        e = prev;
    }
}

struct cache_entry *read_cache_put(struct read_cache *c, const char *key, uint64_t pos, uint32_t len,
                                   struct buf *data)
{
    return read_cache_put_view(c, key, pos, len, data, 0);
}

struct cache_entry *read_cache_put_view(struct read_cache *c, const char *key, uint64_t pos, uint32_t len,
                                        struct buf *data, size_t off)
{
    struct cache_entry *e = find(c, key, pos, len);
    if (e) { /* cached meanwhile (a flush kept it, another read brought it) */
        buf_free(data);
        touch(c, e);
        return e;
    }
    e = calloc(1, sizeof(*e));
    if (!e || !(e->key = strdup(key)))
        abort();
    e->pos = pos;
    e->len = len;
    e->hash = hash_of(key, pos, len);
    e->cd = calloc(1, sizeof(*e->cd));
    if (!e->cd)
        abort();
    e->cd->mem = *data;
    e->cd->data = (struct buf){data->data + off, len, 0};
    e->cd->refs = 1;
    buf_init(data);
    maybe_grow(c);
    struct cache_entry **slot = &c->slots[e->hash % c->nslots];
    e->hash_next = *slot;
    *slot = e;
    lru_push_front(c, e);
    c->bytes += e->cd->mem.len; /* what it holds, not only its own bytes */
    c->count++;
    make_room(c, 0); /* after the insert: the new entry is the one kept if it alone is too large */
    return e;
}

struct cache_entry *read_cache_pin(struct read_cache *c, const char *key, uint64_t pos, uint32_t len)
{
    struct cache_entry *e = find(c, key, pos, len);
    if (e) {
        touch(c, e);
        e->pins++;
        c->hits++;
        metrics_add(M_READ_CACHE_HITS, 1);
    } else {
        c->misses++;
        metrics_add(M_READ_CACHE_MISSES, 1);
    }
    return e;
}

void read_cache_pin_entry(struct read_cache *c, struct cache_entry *e)
{
    (void)c;
    e->pins++;
}

void read_cache_unpin(struct read_cache *c, struct cache_entry *e)
{
    if (--e->pins == 0 && c->bytes > c->max_bytes)
        make_room(c, 0);
}

const struct buf *cache_entry_data(const struct cache_entry *e)
{
    return &e->cd->data;
}

void cache_pins_add(struct cache_pins *p, struct read_cache *c, struct cache_entry *e)
{
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 8;
        p->v = realloc(p->v, sizeof(*p->v) * (size_t)p->cap);
        if (!p->v)
            abort();
    }
    p->cache = c;
    p->v[p->n++] = e;
}

void cache_pins_release(struct cache_pins *p)
{
    for (int i = 0; i < p->n; i++)
        read_cache_unpin(p->cache, p->v[i]);
    free(p->v);
    *p = (struct cache_pins){0};
}
