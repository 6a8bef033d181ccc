/* The flush batch: produce data of every partition accumulating until the flusher takes it, one
 * chunk per partition (found through a small open-addressing hash), with the producers waiting for
 * each chunk's offsets. */
#include <stdlib.h>
#include <string.h>

#include "broker/broker_internal.h"

struct flush_batch *flush_batch_new(struct buf_pool *pool)
{
    struct flush_batch *fb = calloc(1, sizeof(*fb));
    if (!fb)
        abort();
    fb->pool = pool;
    return fb;
}

void flush_batch_free(struct flush_batch *fb)
{
    for (int i = 0; i < fb->nchunks; i++) {
        buf_pool_put(fb->pool, &fb->chunks[i].data);
        free(fb->chunks[i].waiters);
    }
    free(fb->chunks);
    free(fb->index);
    if (fb->written) { /* stored, never committed (stopped) */
        object_writer_free(fb->written);
        free(fb->written);
    }
    free(fb);
}

static uint32_t chunk_hash(int64_t topic_id, int32_t partition)
{
    uint64_t h = (uint64_t)topic_id * 0x9E3779B97F4A7C15ULL ^ (uint32_t)partition * 0xC2B2AE3DU;
    return (uint32_t)(h ^ (h >> 29));
}

static void index_rebuild(struct flush_batch *fb, int cap)
{
    free(fb->index);
    fb->index = calloc((size_t)cap, sizeof(int32_t));
    if (!fb->index)
        abort();
    fb->index_cap = cap;
    for (int i = 0; i < fb->nchunks; i++) {
        const struct flush_chunk *ch = &fb->chunks[i];
        uint32_t h = chunk_hash(ch->topic_id, ch->partition) & (uint32_t)(cap - 1);
        while (fb->index[h]) {
            const struct flush_chunk *o = &fb->chunks[fb->index[h] - 1];
            if (o->topic_id == ch->topic_id && o->partition == ch->partition)
                break; /* a later chunk of the partition replaces it */
            h = (h + 1) & (uint32_t)(cap - 1);
        }
        fb->index[h] = i + 1;
    }
}

/* The chunk of (topic, partition) in this batch, created on first use. The index points at the
 * partition's newest chunk: an idempotent batch is a chunk of its own, and data that follows it
 * goes to a new chunk after it, so the partition's offsets keep the order the data arrived in. */
struct flush_chunk *batch_chunk(struct flush_batch *fb, const struct topic_info *t, int32_t partition, bool alone)
{
    int32_t *slot = NULL;
    if (fb->index_cap) {
        uint32_t mask = (uint32_t)fb->index_cap - 1;
        for (uint32_t h = chunk_hash(t->id, partition) & mask; fb->index[h]; h = (h + 1) & mask) {
            struct flush_chunk *ch = &fb->chunks[fb->index[h] - 1];
            if (ch->topic_id == t->id && ch->partition == partition) {
                if (!alone && !ch->idempotent)
                    return ch;
                slot = &fb->index[h];
                break;
            }
        }
    }
    if (fb->nchunks == fb->cap_chunks) {
        fb->cap_chunks = fb->cap_chunks ? fb->cap_chunks * 2 : 16;
        fb->chunks = realloc(fb->chunks, sizeof(*fb->chunks) * (size_t)fb->cap_chunks);
        if (!fb->chunks)
            abort();
    }
    struct flush_chunk *ch = &fb->chunks[fb->nchunks++];
    memset(ch, 0, sizeof(*ch));
    ch->topic_id = t->id;
    memcpy(ch->topic_uuid, t->uuid, 16);
    ch->partition = partition;
    ch->first_timestamp = INT64_MAX;
    ch->max_timestamp = -1;
    ch->idempotent = alone;
    ch->data = buf_pool_get(fb->pool);
    if (slot)
        *slot = fb->nchunks; /* the partition's newest chunk (the index keeps its size) */
    else if (fb->nchunks * 2 > fb->index_cap)
        index_rebuild(fb, fb->index_cap ? fb->index_cap * 2 : 64);
    else {
        uint32_t mask = (uint32_t)fb->index_cap - 1;
        uint32_t h = chunk_hash(t->id, partition) & mask;
        while (fb->index[h])
            h = (h + 1) & mask;
        fb->index[h] = fb->nchunks;
    }
    return ch;
}

void chunk_add_waiter(struct flush_chunk *ch, struct produce_waiter w)
{
    if (ch->nwaiters == ch->cap_waiters) {
        ch->cap_waiters = ch->cap_waiters ? ch->cap_waiters * 2 : 4;
        ch->waiters = realloc(ch->waiters, sizeof(*ch->waiters) * (size_t)ch->cap_waiters);
        if (!ch->waiters)
            abort();
    }
    ch->waiters[ch->nwaiters++] = w;
}
