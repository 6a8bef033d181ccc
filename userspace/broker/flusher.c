/* The flusher thread: turns a sealed batch of produce data into one object, stores it, then commits
 * its chunks to the metadata store, which assigns the offsets. Only after both succeed are the
 * producers answered (by the loop thread, see produce_complete). Batches are handled strictly in
 * the order they were sealed, so a partition's offsets follow the order its data arrived in. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/broker_internal.h"
#include "server/server.h"
#include "storage/object_format.h"
#include "util/clock.h"
#include "util/log.h"

/* Stage 1 (a putter thread): the object, written from the chunks' own buffers (no copy into one
 * object buffer) and stored. */
static void put_batch(struct flusher *f, struct flush_batch *fb, uint64_t seq)
{
    struct object_writer *ow = calloc(1, sizeof(*ow));
    if (!ow)
        abort();
    object_writer_init(ow);
    for (int i = 0; i < fb->nchunks; i++) {
        struct flush_chunk *ch = &fb->chunks[i];
        object_writer_add(ow, ch->topic_uuid, ch->partition, ch->data.data, ch->data.len, ch->batch_count,
                          ch->offset_count, ch->first_timestamp, ch->max_timestamp);
    }
    object_writer_finish(ow);

    /* Keys sort by creation time; the member id (random per agent start) keeps writers apart. */
    snprintf(fb->object_key, sizeof(fb->object_key), "objects/%013lld-%s-%06llu.obj", (long long)wall_ms(),
             f->key_prefix, (unsigned long long)seq);
    int64_t t0 = mono_ms();
    if (objstore_putv(f->objects, fb->object_key, ow->iov, ow->niov) != 0) {
        log_error("flush: storing object %s (%zu bytes) failed; %d partitions answered KAFKA_STORAGE_ERROR",
                  fb->object_key, (size_t)ow->size, fb->nchunks);
        fb->error = KERR_KAFKA_STORAGE_ERROR;
        object_writer_free(ow);
        free(ow);
        return;
    }
    log_debug("flush: %s %zu bytes, %d chunks, put %lldms", fb->object_key, (size_t)ow->size, fb->nchunks,
              (long long)(mono_ms() - t0));
    fb->written = ow;
}

/* Stage 2 (the committer thread, batches in seal order): the chunks into the metadata store, which
 * assigns their offsets. */
static void commit_batch(struct flusher *f, struct flush_batch *fb)
{
    struct object_writer *ow = fb->written;
    if (!ow)
        return; /* the put failed */
    fb->written = NULL;
    int64_t t0 = mono_ms();
    struct commit_chunk *cc = calloc((size_t)fb->nchunks, sizeof(*cc));
    if (!cc)
        abort();
    for (int i = 0; i < fb->nchunks; i++) {
        struct flush_chunk *ch = &fb->chunks[i];
        ch->pos = ow->chunks[i].pos;
        cc[i] = (struct commit_chunk){
            .topic_id = ch->topic_id,
            .partition = ch->partition,
            .pos = ow->chunks[i].pos,
            .len = ow->chunks[i].len,
            .batch_count = ch->batch_count,
            .offset_count = ch->offset_count,
            .first_timestamp = ch->first_timestamp,
            .max_timestamp = ch->max_timestamp,
            .idempotent = ch->idempotent,
            .producer_id = ch->producer_id,
            .producer_epoch = ch->producer_epoch,
            .base_sequence = ch->base_sequence,
            .last_sequence = ch->last_sequence,
        };
    }
    if (metastore_commit_object(f->meta, fb->object_key, (size_t)ow->size, cc, fb->nchunks) != 0) {
        /* The object stays unreferenced: invisible to fetches, garbage to collect. */
        log_error("flush: committing object %s failed; %d partitions answered KAFKA_STORAGE_ERROR",
                  fb->object_key, fb->nchunks);
        fb->error = KERR_KAFKA_STORAGE_ERROR;
    } else {
        for (int i = 0; i < fb->nchunks; i++) {
            fb->chunks[i].base_offset = cc[i].base_offset;
            fb->chunks[i].error = cc[i].error;
            fb->chunks[i].duplicate = cc[i].duplicate;
        }
        flush_metrics_committed(fb, (uint64_t)ow->size);
        log_debug("flush: %s committed in %lldms", fb->object_key, (long long)(mono_ms() - t0));
    }
    free(cc);
    object_writer_free(ow);
    free(ow);
}

/* A putter takes the oldest batch nobody is putting yet. */
static void *putter_main(void *arg)
{
    struct flusher *f = arg;
    pthread_mutex_lock(&f->mu);
    for (;;) {
        struct flush_batch *fb = f->todo_head;
        while (fb && fb->stage != FLUSH_QUEUED)
            fb = fb->next;
        if (!fb) {
            if (f->stop)
                break;
            pthread_cond_wait(&f->cv, &f->mu);
            continue;
        }
        fb->stage = FLUSH_PUTTING;
        uint64_t seq = ++f->seq;
        pthread_mutex_unlock(&f->mu);

        put_batch(f, fb, seq);

        pthread_mutex_lock(&f->mu);
        fb->stage = FLUSH_PUT_DONE;
        pthread_cond_broadcast(&f->cv);
    }
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

/* The committer commits batches strictly in seal order, so a partition's offsets follow the order
 * its data arrived in, whichever put finished first. */
static void *committer_main(void *arg)
{
    struct flusher *f = arg;
    pthread_mutex_lock(&f->mu);
    for (;;) {
        struct flush_batch *fb = f->todo_head;
        if (!fb || fb->stage != FLUSH_PUT_DONE) {
            if (!fb && f->stop)
                break;
            pthread_cond_wait(&f->cv, &f->mu);
            continue;
        }
        f->todo_head = fb->next;
        if (!f->todo_head)
            f->todo_tail = NULL;
        fb->next = NULL;
        pthread_mutex_unlock(&f->mu);

        commit_batch(f, fb);

        pthread_mutex_lock(&f->mu);
        if (f->done_tail)
            f->done_tail->next = fb;
        else
            f->done_head = fb;
        f->done_tail = fb;
        server_wakeup(f->srv);
    }
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

int flusher_start(struct flusher *f, const struct config *cfg, struct server *srv, int worker_id, char *err,
                  size_t errlen)
{
    memset(f, 0, sizeof(*f));
    f->srv = srv;
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    /* The member id in the key shows which worker of which agent wrote an object (locality is
     * observable from the store alone). */
    snprintf(f->key_prefix, sizeof(f->key_prefix), "%s-w%d", cfg->agent_id, worker_id);
    f->objects = objstore_open(cfg->bucket_url, err, errlen);
    if (!f->objects)
        return -1;
    f->meta = metastore_open(cfg->metadata_url, err, errlen);
    if (!f->meta)
        return -1;
    if (pthread_create(&f->committer, NULL, committer_main, f) != 0) {
        snprintf(err, errlen, "cannot start the flusher's commit thread: %s", strerror(errno));
        return -1;
    }
    f->started = true;
    for (int i = 0; i < FLUSH_PUTTERS; i++)
        if (pthread_create(&f->putters[i], NULL, putter_main, f) != 0) {
            snprintf(err, errlen, "cannot start a flusher thread: %s", strerror(errno));
            f->nputters = i;
            return -1;
        }
    f->nputters = FLUSH_PUTTERS;
    return 0;
}

void flusher_stop(struct flusher *f)
{
    if (f->started) {
        /* Whatever was handed over is stored and committed first (the putters and the committer
         * leave only once the queue is empty). */
        pthread_mutex_lock(&f->mu);
        f->stop = true;
        pthread_cond_broadcast(&f->cv);
        pthread_mutex_unlock(&f->mu);
        for (int i = 0; i < f->nputters; i++)
            pthread_join(f->putters[i], NULL);
        pthread_join(f->committer, NULL);
        f->started = false;
    }
    if (f->meta)
        metastore_close(f->meta);
    if (f->objects)
        objstore_close(f->objects);
    f->meta = NULL;
    f->objects = NULL;
}

void flusher_submit(struct flusher *f, struct flush_batch *fb)
{
    pthread_mutex_lock(&f->mu);
    fb->next = NULL;
    if (f->todo_tail)
        f->todo_tail->next = fb;
    else
        f->todo_head = fb;
    f->todo_tail = fb;
    f->queued++;
    fb->stage = FLUSH_QUEUED;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

struct flush_batch *flusher_take_done(struct flusher *f)
{
    pthread_mutex_lock(&f->mu);
    struct flush_batch *list = f->done_head;
    f->done_head = f->done_tail = NULL;
    for (struct flush_batch *fb = list; fb; fb = fb->next)
        f->queued--;
    pthread_mutex_unlock(&f->mu);
    return list;
}
