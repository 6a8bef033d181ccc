/* Kafka's idempotence rules (ProducerStateManager / ProducerAppendInfo, Kafka 3.x), applied to the
 * idempotent chunks of one commit against the state read from the store. See producer_state.h. */
#include "storage/producer_state.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/errors.h"

int32_t producer_seq_add(int32_t seq, int32_t n)
{
    if (seq > INT32_MAX - n)
        return n - (INT32_MAX - seq) - 1;
    return seq + n;
}

/* Kafka's inSequence: the next batch starts right after the last one (0 after INT32_MAX). */
static bool in_sequence(int32_t last, int32_t next)
{
    return (int64_t)next == (int64_t)last + 1 || (next == 0 && last == INT32_MAX);
}

static int entry_cmp(const void *a, const void *b)
{
    const struct producer_entry *x = a, *y = b;
    if (x->producer_id != y->producer_id)
        return x->producer_id < y->producer_id ? -1 : 1;
    if (x->topic_id != y->topic_id)
        return x->topic_id < y->topic_id ? -1 : 1;
    return x->partition < y->partition ? -1 : x->partition > y->partition;
}

/* The entries are sorted by key, so a flush of thousands of idempotent batches finds each one in
 * log time. */
void producer_plan_init(struct producer_plan *p, const struct commit_chunk *chunks, int nchunks)
{
    memset(p, 0, sizeof(*p));
    p->e = calloc((size_t)(nchunks > 0 ? nchunks : 1), sizeof(*p->e));
    p->dup_of = malloc((size_t)(nchunks > 0 ? nchunks : 1) * sizeof(*p->dup_of));
    if (!p->e || !p->dup_of)
        abort();
    int n = 0;
    for (int i = 0; i < nchunks; i++) {
        const struct commit_chunk *c = &chunks[i];
        p->dup_of[i] = -1;
        if (!c->idempotent)
            continue;
        struct producer_entry *e = &p->e[n++];
        e->producer_id = c->producer_id;
        e->topic_id = c->topic_id;
        e->partition = c->partition;
        e->epoch = -1;
    }
    qsort(p->e, (size_t)n, sizeof(*p->e), entry_cmp);
    for (int i = 0; i < n; i++) /* one entry per key */
        if (p->n == 0 || entry_cmp(&p->e[p->n - 1], &p->e[i]) != 0)
            p->e[p->n++] = p->e[i];
}

void producer_plan_free(struct producer_plan *p)
{
    free(p->e);
    free(p->dup_of);
    memset(p, 0, sizeof(*p));
}

struct producer_entry *producer_plan_find(struct producer_plan *p, int64_t producer_id, int64_t topic_id,
                                          int32_t partition)
{
    struct producer_entry key = {.producer_id = producer_id, .topic_id = topic_id, .partition = partition};
    return p->n > 0 ? bsearch(&key, p->e, (size_t)p->n, sizeof(*p->e), entry_cmp) : NULL;
}

int producer_entry_load(struct producer_entry *e, int16_t epoch, const char *batches)
{
    e->n = 0;
    for (const char *s = batches; *s && e->n < PRODUCER_BATCHES_KEPT;) {
        struct producer_batch *b = &e->b[e->n];
        int used = 0;
        if (sscanf(s, "%" SCNd32 ":%" SCNd32 ":%" SCNd64 "%n", &b->first_seq, &b->last_seq, &b->first_offset,
                   &used) != 3) {
            e->n = 0;
            e->known = false;
            return -1;
        }
        b->chunk = -1;
        e->n++;
        s += used;
        if (*s == ';')
            s++;
    }
    e->known = true;
    e->epoch = epoch;
    return 0;
}

void producer_info_from_row(struct producer_info *pi, int64_t producer_id, int16_t epoch, const char *batches,
                            int64_t last_timestamp)
{
    struct producer_entry e = {0};
    producer_entry_load(&e, epoch, batches);
    pi->producer_id = producer_id;
    pi->epoch = epoch;
    pi->last_sequence = e.n > 0 ? e.b[e.n - 1].last_seq : -1;
    pi->last_timestamp = last_timestamp;
}

void producer_entry_format(const struct producer_entry *e, char *out, size_t len)
{
    size_t at = 0;
    out[0] = '\0';
    for (int i = 0; i < e->n && at < len; i++)
        at += (size_t)snprintf(out + at, len - at, "%s%" PRId32 ":%" PRId32 ":%" PRId64, i ? ";" : "",
                               e->b[i].first_seq, e->b[i].last_seq, e->b[i].first_offset);
}

/* Kafka's decision for one batch: 0 (append), or an error; *dup set to the repeated batch. */
static int check(const struct producer_entry *e, const struct commit_chunk *c, const struct producer_batch **dup)
{
    *dup = NULL;
    if (!e->known)
        return 0; /* no state of this producer here: any sequence is accepted (Kafka 3.x) */
    if (c->producer_epoch < e->epoch)
        return KERR_INVALID_PRODUCER_EPOCH;
    if (c->producer_epoch > e->epoch) /* a new epoch starts its sequences again */
        return c->base_sequence == 0 ? 0 : KERR_OUT_OF_ORDER_SEQUENCE_NUMBER;
    for (int i = 0; i < e->n; i++)
        if (e->b[i].first_seq == c->base_sequence && e->b[i].last_seq == c->last_sequence) {
            *dup = &e->b[i];
            return 0;
        }
    int32_t last = e->n > 0 ? e->b[e->n - 1].last_seq : -1;
    return in_sequence(last, c->base_sequence) ? 0 : KERR_OUT_OF_ORDER_SEQUENCE_NUMBER;
}

void producer_plan_decide(struct producer_plan *p, struct commit_chunk *chunks, int nchunks)
{
    for (int i = 0; i < nchunks; i++) {
        struct commit_chunk *c = &chunks[i];
        if (!c->idempotent || c->error)
            continue;
        struct producer_entry *e = producer_plan_find(p, c->producer_id, c->topic_id, c->partition);
        const struct producer_batch *dup;
        c->error = check(e, c, &dup);
        if (c->error)
            continue;
        if (dup) {
            c->duplicate = true;
            if (dup->chunk >= 0)
                p->dup_of[i] = dup->chunk; /* its offsets are assigned later in this commit */
            else
                c->base_offset = dup->first_offset;
            continue;
        }
        if (!e->known || c->producer_epoch != e->epoch) {
            e->known = true;
            e->epoch = c->producer_epoch;
            e->n = 0;
        }
        if (e->n == PRODUCER_BATCHES_KEPT) {
            memmove(e->b, e->b + 1, sizeof(e->b[0]) * (PRODUCER_BATCHES_KEPT - 1));
            e->n--;
        }
        e->b[e->n++] = (struct producer_batch){c->base_sequence, c->last_sequence, -1, i};
        e->last_timestamp = c->max_timestamp;
        e->dirty = true;
    }
}

void producer_plan_settle(struct producer_plan *p, struct commit_chunk *chunks, int nchunks)
{
    for (int k = 0; k < p->n; k++) {
        struct producer_entry *e = &p->e[k];
        for (int i = 0; i < e->n; i++) {
            int ci = e->b[i].chunk;
            if (ci < 0)
                continue;
            if (chunks[ci].error) /* the partition is gone: nothing to remember */
                e->dirty = false;
            e->b[i].first_offset = chunks[ci].base_offset;
            e->b[i].chunk = -1;
        }
    }
    for (int i = 0; i < nchunks; i++) {
        int of = p->dup_of[i];
        if (of < 0)
            continue;
        if (chunks[of].error) {
            chunks[i].duplicate = false;
            chunks[i].error = chunks[of].error;
        } else {
            chunks[i].base_offset = chunks[of].base_offset;
        }
    }
}
