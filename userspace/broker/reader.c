#include "broker/reader.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"

/* A reader thread: the GET (the reader's threads have no metadata-store handle). */
static void read_job_run(struct job *job, struct metastore *unused)
{
    (void)unused;
    struct read_job *j = (struct read_job *)job;
    j->error = objstore_get_range(j->reader->objects, j->key, j->pos, (uint32_t)j->len, &j->data) != 0 ||
                       j->data.len != j->len
                   ? -1
                   : 0;
    if (!j->error && j->whole)
        j->parse_failed = object_parse(j->data.data, j->data.len, &j->chunks, &j->nchunks) != 0;
}

int reader_start(struct reader *r, struct objstore *objects, struct server *srv, job_done_fn on_done)
{
    memset(r, 0, sizeof(*r));
    r->objects = objects;
    r->on_done = on_done;
    char err[128];
    if (jobs_start(&r->pool, READER_THREADS, NULL, srv, err, sizeof(err)) != 0) {
        log_error("reader threads: %s", err);
        return -1;
    }
    return 0;
}

void read_job_free(struct read_job *j)
{
    buf_free(&j->data);
    free(j->chunks);
    free(j->pieces);
    free(j->waiters.v);
    free(j);
}

void reader_stop(struct reader *r)
{
    /* Every submitted job is queued, running or done: the pool hands each to on_done(NULL), which
     * frees it. What was gathered and never submitted is freed here. */
    jobs_stop(&r->pool);
    for (struct read_job *j = r->gathered, *next; j; j = next) {
        next = j->next;
        read_job_free(j);
    }
    free(r->room_waiters.v);
    r->inflight = r->gathered = NULL;
}

static void add_piece(struct read_job *j, uint64_t pos, uint32_t len)
{
    if (j->npieces == j->cap_pieces) {
        j->cap_pieces = j->cap_pieces ? 2 * j->cap_pieces : 4;
        j->pieces = realloc(j->pieces, sizeof(*j->pieces) * (size_t)j->cap_pieces);
        if (!j->pieces)
            abort();
    }
    j->pieces[j->npieces++] = (struct read_piece){pos, len};
}

static bool has_piece(const struct read_job *j, uint64_t pos, uint32_t len)
{
    for (int i = 0; i < j->npieces; i++)
        if (j->pieces[i].pos == pos && j->pieces[i].len == len)
            return true;
    return false;
}

/* The job (in flight or gathered) that reads this chunk, or the whole object it is in. */
static struct read_job *job_for(struct read_job *list, bool inflight, const char *key, uint64_t pos, uint32_t len)
{
    for (struct read_job *j = list; j; j = inflight ? j->inflight_next : j->next) {
        if (strcmp(j->key, key) != 0)
            continue;
        if (has_piece(j, pos, len))
            return j;
        if (j->whole && pos + len <= j->len) {
            add_piece(j, pos, len); /* the reader thread never looks at pieces */
            return j;
        }
    }
    return NULL;
}

void reader_want(struct reader *r, const char *key, uint64_t pos, uint32_t len, uint64_t object_size,
                 struct request *rq)
{
    struct read_job *j = job_for(r->inflight, true, key, pos, len);
    if (!j)
        j = job_for(r->gathered, false, key, pos, len);
    if (j) {
        waiters_add(&j->waiters, rq);
        return;
    }
    j = calloc(1, sizeof(*j));
    if (!j)
        abort();
    j->base.run = read_job_run;
    j->base.done = r->on_done;
    j->reader = r;
    snprintf(j->key, sizeof(j->key), "%s", key);
    j->whole = object_size > 0 && object_size <= WHOLE_OBJECT_MAX && pos + len <= object_size;
    j->pos = j->whole ? 0 : pos;
    j->len = j->whole ? object_size : len;
    add_piece(j, pos, len);
    waiters_add(&j->waiters, rq);
    r->bytes_gathered += j->len; /* counts against fetch-read-bytes before it is sent */
    j->next = r->gathered;
    r->gathered = j;
}

static int cmp_job(const void *a, const void *b)
{
    const struct read_job *x = *(struct read_job *const *)a, *y = *(struct read_job *const *)b;
    int c = strcmp(x->key, y->key);
    if (c)
        return c;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* Moves the waiters and the pieces of `from` (which directly follows into) into `into`. */
static void merge(struct read_job *into, struct read_job *from)
{
    for (int i = 0; i < from->npieces; i++)
        add_piece(into, from->pieces[i].pos, from->pieces[i].len);
    into->len = from->pos + from->len - into->pos;
    waiters_move(&into->waiters, &from->waiters);
    read_job_free(from);
}

static void queue(struct reader *r, struct read_job *j)
{
    j->next = NULL;
    j->inflight_next = r->inflight;
    r->inflight = j;
    r->bytes_inflight += j->len;
    jobs_submit(&r->pool, &j->base);
}

void reader_submit(struct reader *r)
{
    int n = 0;
    for (struct read_job *j = r->gathered; j; j = j->next)
        n++;
    if (n == 0)
        return;
    struct read_job **v = calloc((size_t)n, sizeof(*v));
    if (!v)
        abort();
    n = 0;
    for (struct read_job *j = r->gathered; j; j = j->next)
        v[n++] = j;
    r->gathered = NULL;
    r->bytes_gathered = 0;
    qsort(v, (size_t)n, sizeof(*v), cmp_job);
    struct read_job *cur = NULL;
    for (int i = 0; i < n; i++) {
        struct read_job *j = v[i];
        if (cur && !cur->whole && !j->whole && !strcmp(cur->key, j->key) && cur->pos + cur->len == j->pos &&
            cur->len + j->len <= READ_RANGE_MAX) {
            merge(cur, j);
            continue;
        }
        if (cur)
            queue(r, cur);
        cur = j;
    }
    if (cur)
        queue(r, cur);
    free(v);
}

bool reader_room(struct reader *r, struct request *rq)
{
    if (r->bytes_inflight + r->bytes_gathered < r->bytes_max)
        return true;
    waiters_add(&r->room_waiters, rq);
    return false;
}

void reader_finished(struct reader *r, struct read_job *j)
{
    struct read_job **pp = &r->inflight;
    while (*pp != j)
        pp = &(*pp)->inflight_next;
    *pp = j->inflight_next;
    r->bytes_inflight -= j->len;
}
