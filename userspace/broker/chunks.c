/* The bytes of committed chunks, for fetch and ListOffsets: from the read cache, pinned for the
 * request that answers with them; or asked of the reader threads (reader.c), the request waiting
 * for every chunk it lacks at once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker_internal.h"
#include "storage/object_format.h"
#include "util/clock.h"
#include "util/log.h"

/* Reads that failed recently: answered with an error for a while instead of retried by every
 * fetch (a store that is down would otherwise be hammered by every consumer's long poll). */
#define READ_FAILURE_MEMORY_MS 1000

static bool recently_failed(struct broker *b, const struct chunk_ref *ref, int64_t since_ms)
{
    int64_t now = mono_ms();
    for (int i = 0; i < READ_FAILURES; i++) {
        const struct read_failure *f = &b->read_failures[i];
        if (f->until_ms > now && f->failed_ms >= since_ms && f->pos == ref->pos && f->len == ref->len &&
            !strcmp(f->key, ref->object_key))
            return true;
    }
    return false;
}

static void note_failure(struct broker *b, const char *key, uint64_t pos, uint32_t len)
{
    struct read_failure *f = &b->read_failures[b->next_read_failure++ % READ_FAILURES];
    snprintf(f->key, sizeof(f->key), "%s", key);
    f->pos = pos;
    f->len = len;
    f->failed_ms = mono_ms();
    f->until_ms = f->failed_ms + READ_FAILURE_MEMORY_MS;
}

/* Is this entry already among rq's pins? */
static bool pinned_by(const struct request *rq, const struct cache_entry *e)
{
    for (int i = 0; i < rq->pins.n; i++)
        if (rq->pins.v[i] == e)
            return true;
    return false;
}

const struct buf *chunk_need(struct broker *b, struct request *rq, const struct chunk_ref *ref, int *err)
{
    *err = 0;
    struct cache_entry *e = read_cache_pin(&b->cache, ref->object_key, ref->pos, ref->len);
    if (e) {
        if (pinned_by(rq, e))
            read_cache_unpin(&b->cache, e); /* once is enough */
        else
            cache_pins_add(&rq->pins, &b->cache, e);
        return cache_entry_data(e);
    }
    /* A read that failed after this request arrived answers it: the store is down. */
    if (recently_failed(b, ref, rq->received_ms)) {
        *err = KERR_KAFKA_STORAGE_ERROR;
        return NULL;
    }
    if (!reader_room(&b->reader, rq))
        return NULL; /* waits for room, then plans its reads again */
    reader_want(&b->reader, ref->object_key, ref->pos, ref->len, ref->object_size, rq);
    return NULL;
}

void chunks_submit(struct broker *b)
{
    reader_submit(&b->reader);
}

/* Is this chunk at least 3/4 of what was read? Then its cache entry keeps the read's buffer. */
static bool is_main(const struct read_job *done, uint32_t len)
{
    return done->data.len > 0 && (uint64_t)len * 4 >= (uint64_t)done->data.len * 3;
}

/* Caches one chunk of a finished read; if a request waited for it, pinned for each of them: they
 * answer with it when they resume, whatever else is read meanwhile. */
static void cache_chunk(struct broker *b, struct read_job *done, uint64_t pos, uint32_t len, bool wanted)
{
    struct buf piece;
    buf_init(&piece);
    struct cache_entry *e;
    /* The read is (mostly) this chunk: the entry keeps the read's buffer instead of a copy. Called
     * last for such a chunk, after the others were copied out. */
    if (is_main(done, len)) {
        piece = done->data;
        buf_init(&done->data);
        e = read_cache_put_view(&b->cache, done->key, pos, len, &piece, (size_t)(pos - done->pos));
    } else {
        buf_append(&piece, done->data.data + (pos - done->pos), len);
        e = read_cache_put(&b->cache, done->key, pos, len, &piece);
    }
    if (!wanted)
        return;
    for (int w = 0; w < done->waiters.n; w++) {
        struct request *rq = done->waiters.v[w];
        if (!pinned_by(rq, e)) {
            read_cache_pin_entry(&b->cache, e);
            cache_pins_add(&rq->pins, &b->cache, e);
        }
    }
}

static bool wanted(const struct read_job *j, uint64_t pos, uint32_t len)
{
    for (int i = 0; i < j->npieces; i++)
        if (j->pieces[i].pos == pos && j->pieces[i].len == len)
            return true;
    return false;
}

/* A read's chunks into the cache. A whole object is checked (CRC) and split by its own index. */
static void cache_read(struct broker *b, struct read_job *done)
{
    if (!done->whole) {
        int main_piece = -1; /* cached last: it takes the read's buffer */
        for (int i = 0; i < done->npieces; i++)
            if (is_main(done, done->pieces[i].len))
                main_piece = i;
        for (int i = 0; i < done->npieces; i++)
            if (i != main_piece)
                cache_chunk(b, done, done->pieces[i].pos, done->pieces[i].len, true);
        if (main_piece >= 0)
            cache_chunk(b, done, done->pieces[main_piece].pos, done->pieces[main_piece].len, true);
        return;
    }
    struct object_chunk *chunks = done->chunks; /* parsed on the reader thread */
    int n = done->nchunks;
    if (done->parse_failed) {
        log_error("object %s (%zu bytes) fails its checks (magic, index or CRC); its reads answer "
                  "KAFKA_STORAGE_ERROR", done->key, done->data.len);
        for (int i = 0; i < done->npieces; i++)
            note_failure(b, done->key, done->pieces[i].pos, done->pieces[i].len);
        return;
    }
    int main_chunk = -1; /* at least 3/4 of the object: cached last, keeping the read's buffer */
    for (int i = 0; i < n; i++)
        if (is_main(done, chunks[i].len))
            main_chunk = i;
    for (int i = 0; i < n; i++)
        if (i != main_chunk)
            cache_chunk(b, done, chunks[i].pos, chunks[i].len, wanted(done, chunks[i].pos, chunks[i].len));
    if (main_chunk >= 0)
        cache_chunk(b, done, chunks[main_chunk].pos, chunks[main_chunk].len,
                    wanted(done, chunks[main_chunk].pos, chunks[main_chunk].len));
    /* A wanted piece the index does not list (cannot happen with a sound store): an error. */
    for (int i = 0; i < done->npieces; i++)
        if (!read_cache_get(&b->cache, done->key, done->pieces[i].pos, done->pieces[i].len)) {
            log_error("object %s has no chunk at %llu+%u its metadata names", done->key,
                      (unsigned long long)done->pieces[i].pos, done->pieces[i].len);
            note_failure(b, done->key, done->pieces[i].pos, done->pieces[i].len);
        }
}

/* The reader's on_done: a finished read fills the cache (or records the failure) and resumes the
 * requests that waited for it. */
void chunks_read_done(struct broker *b, struct job *job)
{
    struct read_job *done = (struct read_job *)job;
    if (!b) {
        read_job_free(done);
        return;
    }
    reader_finished(&b->reader, done);
    if (done->error) {
        log_error("reading %llu bytes at %llu of object %s failed", (unsigned long long)done->len,
                  (unsigned long long)done->pos, done->key);
        for (int i = 0; i < done->npieces; i++)
            note_failure(b, done->key, done->pieces[i].pos, done->pieces[i].len);
    } else {
        cache_read(b, done);
    }
    waiters_release(b, &done->waiters);
    read_job_free(done);
}

void reader_complete(struct broker *b)
{
    jobs_complete(&b->reader.pool, b);
    if (b->reader.bytes_inflight < b->reader.bytes_max)
        waiters_release(b, &b->reader.room_waiters);
    chunks_submit(b); /* resumed requests may have asked for more */
}
