/* Checking produced records before they are buffered: what Kafka's LogValidator checks
 * (records_validate: CRC, counts, offset deltas, every record, decompressing as it reads), that no
 * client writes control batches, max.message.bytes, and keys on compacted topics. Small
 * uncompressed requests are checked on the loop (a CRC and a walk over the records: microseconds);
 * the others on the checker thread, so that a request full of zstd does not hold up every other
 * connection of the worker. */
#include <stdlib.h>

#include "broker/broker_internal.h"
#include "record/batch.h"
#include "storage/producer_state.h"

/* Uncompressed records up to this size are checked on the loop. */
#define CHECK_ON_LOOP_MAX (256 << 10)

/* Compacted topics keep the latest record per key, so a record without a key has no place there. */
static bool all_records_keyed(const uint8_t *p, size_t len)
{
    struct buf records;
    buf_init(&records);
    bool ok = true;
    size_t pos = 0, size;
    struct batch_header h;
    const uint8_t *batch;
    while (ok && batch_next(p, len, &pos, &h, &batch, &size) == 1) {
        if (h.attributes & BATCH_ATTR_CONTROL)
            continue;
        buf_reset(&records);
        if (batch_records_decompress(batch, size, &records) != 0) {
            ok = false;
            break;
        }
        size_t rpos = 0;
        struct record_view rv;
        int rc;
        while ((rc = record_next(records.data, records.len, &rpos, &rv)) == 1)
            if (rv.key_len < 0)
                ok = false;
        if (rc < 0)
            ok = false;
    }
    buf_free(&records);
    return ok;
}

/* What the batch headers alone refuse, before anything is decompressed: a batch larger than
 * max.message.bytes, zstd in a request older than Produce v7 (Kafka's rule). */
static void check_headers(struct part_check *pc)
{
    size_t pos = 0, size;
    struct batch_header h;
    const uint8_t *batch;
    while (batch_next(pc->records, pc->len, &pos, &h, &batch, &size) == 1) {
        if ((int64_t)size > pc->max_message_bytes) {
            pc->err = KERR_MESSAGE_TOO_LARGE;
            pc->why = "batch exceeds max.message.bytes";
            return;
        }
        if ((h.attributes & BATCH_ATTR_CODEC_MASK) == CODEC_ZSTD && !pc->zstd_allowed) {
            pc->err = KERR_UNSUPPORTED_COMPRESSION_TYPE;
            pc->why = "zstd needs Produce v7 or later";
            return;
        }
    }
}

/* An idempotent producer's batch (a producerId) must be the partition's only one, as Kafka
 * requires of every Produce v3+ request: its sequences are checked and deduplicated as a whole. */
static void check_producer(struct part_check *pc)
{
    size_t pos = 0, size;
    struct batch_header h;
    const uint8_t *batch;
    bool any = false;
    while (batch_next(pc->records, pc->len, &pos, &h, &batch, &size) == 1)
        any |= h.producer_id >= 0;
    if (!any)
        return;
    if (pc->sum.batch_count != 1) {
        pc->err = KERR_INVALID_RECORD;
        pc->why = "an idempotent producer's batch must be the only one of its partition";
        return;
    }
    pos = 0;
    if (batch_next(pc->records, pc->len, &pos, &h, &batch, &size) != 1)
        return; /* cannot happen: records_validate read it */
    pc->idempotent = true;
    pc->producer_id = h.producer_id;
    pc->producer_epoch = h.producer_epoch;
    pc->base_sequence = h.base_sequence;
    pc->last_sequence = producer_seq_add(h.base_sequence, h.last_offset_delta);
}

/* Thread-safe: reads pc's records, writes only pc's results. */
static void check_one(struct part_check *pc)
{
    if (pc->err)
        return; /* refused before any look at the records */
    check_headers(pc);
    if (pc->err)
        return;
    pc->err = records_validate(pc->records, pc->len, &pc->sum, &pc->why);
    if (pc->err) {
        if (!pc->why)
            pc->why = "invalid records";
    } else if (pc->sum.attributes_or & BATCH_ATTR_CONTROL) { /* only the transaction coordinator writes those */
        pc->err = KERR_INVALID_RECORD;
        pc->why = "control batch from a client";
    } else if (pc->compacted && !all_records_keyed(pc->records, pc->len)) {
        pc->err = KERR_INVALID_RECORD;
        pc->why = "a record without a key in a compacted topic";
    } else {
        check_producer(pc);
    }
}

/* Would checking these records take more than a moment? */
static bool costly(const struct part_check *v, int n)
{
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        if (v[i].err)
            continue;
        total += v[i].len;
        size_t pos = 0, size;
        struct batch_header h;
        const uint8_t *batch;
        while (batch_next(v[i].records, v[i].len, &pos, &h, &batch, &size) == 1)
            if (h.attributes & BATCH_ATTR_CODEC_MASK)
                return true;
    }
    return total > CHECK_ON_LOOP_MAX;
}

struct check_job {
    struct job base;
    struct request *rq;
    struct part_check *v;
    int n;
};

static void check_run(struct job *job, struct metastore *m)
{
    (void)m;
    struct check_job *j = (struct check_job *)job;
    for (int i = 0; i < j->n; i++)
        check_one(&j->v[i]);
}

static void check_done(struct broker *b, struct job *job)
{
    struct check_job *j = (struct check_job *)job;
    if (b)
        broker_release(b, j->rq);
    free(j);
}

bool produce_check(struct broker *b, struct request *rq, struct part_check *v, int n)
{
    if (!costly(v, n)) {
        for (int i = 0; i < n; i++)
            check_one(&v[i]);
        return true;
    }
    struct check_job *j = calloc(1, sizeof(*j));
    if (!j)
        abort();
    j->base.run = check_run;
    j->base.done = check_done;
    j->rq = rq;
    j->v = v;
    j->n = n;
    rq->reads_pending++;
    jobs_submit(&b->checker, &j->base);
    return false;
}
