/* Idempotent producers' state, as Kafka's ProducerStateManager keeps it: per (producer id, topic,
 * partition) the producer's epoch and its last 5 batches (first and last sequence, first offset).
 * It lives in the metadata store and is checked and updated inside the offset-assigning commit,
 * so it holds across agents and restarts. Both backends run the same steps:
 *
 *   producer_plan_init(chunks)      the distinct (producer, topic, partition) of the idempotent chunks
 *   producer_entry_load(...)        each one the store has (after locking the partitions)
 *   producer_plan_decide(chunks)    Kafka's rules, chunk by chunk in array order: sets error (45, 47)
 *                                   or duplicate; the other chunks take offsets as usual
 *   (offsets assigned)
 *   producer_plan_settle(chunks)    the new batches' offsets, duplicates of this commit's chunks
 *   save every entry with dirty set: epoch and producer_entry_format(). */
#ifndef SLUICE_PRODUCER_STATE_H
#define SLUICE_PRODUCER_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/metastore.h"

#define PRODUCER_BATCHES_KEPT 5
/* InitProducerId gives a new id rather than bump an epoch past this (Kafka: Short.MaxValue - 1). */
#define PRODUCER_EPOCH_MAX 32766
/* The batches as the store keeps them: "first:last:offset;..." oldest first. */
#define PRODUCER_BATCHES_TEXT_MAX 320

struct producer_batch {
    int32_t first_seq, last_seq;
    int64_t first_offset;
    int chunk;                   /* the chunk of this commit that appends it (its offset comes later); -1 */
};

struct producer_entry {
    int64_t producer_id, topic_id;
    int32_t partition;
    bool known;                  /* the store has it (else: a producer new to this partition) */
    int16_t epoch;
    int n;
    struct producer_batch b[PRODUCER_BATCHES_KEPT]; /* oldest first */
    int64_t last_timestamp;      /* the max timestamp of its last batch */
    bool dirty;                  /* to be saved */
};

struct producer_plan {
    struct producer_entry *e;
    int n;
    int *dup_of;                 /* per chunk: the chunk of this commit it repeats, or -1 */
};

void producer_plan_init(struct producer_plan *p, const struct commit_chunk *chunks, int nchunks);
void producer_plan_free(struct producer_plan *p);
struct producer_entry *producer_plan_find(struct producer_plan *p, int64_t producer_id, int64_t topic_id,
                                          int32_t partition);
/* An entry as read from the store. Returns 0, or -1 if batches does not parse (then it counts as
 * unknown: any sequence is accepted, as Kafka does for a producer it has no state of). */
int producer_entry_load(struct producer_entry *e, int16_t epoch, const char *batches);
/* A stored row as DescribeProducers shows it. */
void producer_info_from_row(struct producer_info *pi, int64_t producer_id, int16_t epoch, const char *batches,
                            int64_t last_timestamp);
void producer_entry_format(const struct producer_entry *e, char *out, size_t len);
void producer_plan_decide(struct producer_plan *p, struct commit_chunk *chunks, int nchunks);
void producer_plan_settle(struct producer_plan *p, struct commit_chunk *chunks, int nchunks);
/* Does the chunk take offsets after producer_plan_decide? */
static inline bool producer_chunk_appends(const struct commit_chunk *c) { return !c->error && !c->duplicate; }

/* Kafka's sequence arithmetic: sequences wrap from INT32_MAX to 0. */
int32_t producer_seq_add(int32_t seq, int32_t n);

#endif
