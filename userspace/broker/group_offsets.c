/* OffsetCommit and OffsetFetch: a group's committed offsets, in the metadata store, each request
 * one store job. A commit from a group member is checked against the group's state (member and
 * generation); a simple consumer (generation -1, no member id) commits freely. */
#include <stdlib.h>
#include <string.h>

#include "broker/broker_internal.h"
#include "broker/group_state.h"
#include "util/log.h"

struct commit_job {
    struct job base;
    struct request *rq;
    const char *group_id, *member_id, *instance_id;
    int32_t generation;
    struct group_offset *offsets; /* one per requested partition */
    int16_t *errors;              /* in the request's arena; preset errors are not stored */
    int n;
};

static void commit_run(struct job *job, struct metastore *m)
{
    struct commit_job *j = (struct commit_job *)job;
    int err = 0;
    if (j->generation >= 0 || j->member_id[0] || j->instance_id) {
        uint8_t *data;
        size_t len;
        int64_t version;
        struct group g;
        group_init(&g);
        int rc = metastore_group_load(m, j->group_id, &data, &len, &version);
        if (rc < 0) {
            err = KERR_COORDINATOR_NOT_AVAILABLE;
        } else {
            if (rc == 0 && group_decode(&g, data, len) != 0)
                group_init(&g);
            free(data);
            err = group_commit_allowed(&g, j->member_id, j->instance_id, j->generation);
            group_free(&g);
        }
    }
    /* Store the partitions that had no error of their own. */
    struct group_offset *ok = malloc(sizeof(*ok) * (size_t)(j->n > 0 ? j->n : 1));
    if (!ok)
        abort();
    int nok = 0;
    for (int i = 0; !err && i < j->n; i++)
        if (!j->errors[i])
            ok[nok++] = j->offsets[i];
    if (!err && nok > 0 && metastore_offsets_commit(m, j->group_id, ok, nok) != 0)
        err = KERR_COORDINATOR_NOT_AVAILABLE;
    free(ok);
    for (int i = 0; err && i < j->n; i++)
        if (!j->errors[i])
            j->errors[i] = (int16_t)err;
}

static void commit_done(struct broker *b, struct job *job)
{
    struct commit_job *j = (struct commit_job *)job;
    if (b)
        broker_release(b, j->rq);
    free(j->offsets);
    free(j);
}

static void commit_answer(void *broker, struct request *rq)
{
    (void)broker;
    struct offset_commit_request *req = rq->body;
    int16_t *errors = rq->state;
    struct offset_commit_response *r = RQ_ALLOC(rq, struct offset_commit_response, 1);
    int nt = req->topics_count > 0 ? req->topics_count : 0;
    r->topics = RQ_ALLOC(rq, struct offset_commit_response_topic, nt);
    r->topics_count = nt;
    int k = 0;
    for (int t = 0; t < nt; t++) {
        const struct offset_commit_request_topic *tin = &req->topics[t];
        int np = tin->partitions_count > 0 ? tin->partitions_count : 0;
        r->topics[t].name = tin->name;
        r->topics[t].partitions = RQ_ALLOC(rq, struct offset_commit_response_topic_partition, np);
        r->topics[t].partitions_count = np;
        for (int p = 0; p < np; p++) {
            r->topics[t].partitions[p].partition_index = tin->partitions[p].partition_index;
            r->topics[t].partitions[p].error_code = errors[k++];
        }
    }
    request_respond(rq, r);
}

static void resume_offset_commit(void *broker, struct request *rq)
{
    handle_offset_commit(broker, rq);
}

void handle_offset_commit(struct broker *b, struct request *rq)
{
    struct offset_commit_request *req = rq->body;
    /* First, as Kafka: the topics must exist. Every unknown one is looked up at once; the round in
     * which nothing waits any more decides. */
    int nt = req->topics_count > 0 ? req->topics_count : 0;
    const struct topic_entry **topics = RQ_ALLOC(rq, const struct topic_entry *, nt);
    int *topic_errs = RQ_ALLOC(rq, int, nt);
    bool waits = false;
    for (int t = 0; t < nt; t++) {
        struct kstr name = req->topics[t].name;
        int err = KERR_UNKNOWN_TOPIC_OR_PARTITION;
        if (topic_name_valid(name.ptr, name.len)) {
            topics[t] = topics_need(b, rq, name.ptr, name.len, &err);
            waits |= !topics[t] && err == 0;
        }
        topic_errs[t] = err == KERR_KAFKA_STORAGE_ERROR ? KERR_COORDINATOR_NOT_AVAILABLE : KERR_UNKNOWN_TOPIC_OR_PARTITION;
    }
    if (waits) {
        rq->resume = resume_offset_commit;
        return;
    }
    int n = 0;
    for (int t = 0; t < req->topics_count; t++)
        n += req->topics[t].partitions_count > 0 ? req->topics[t].partitions_count : 0;
    int16_t *errors = RQ_ALLOC(rq, int16_t, n);
    rq->state = errors;
    bool bad_group = req->group_id.len <= 0 || req->group_id.len > GROUP_ID_MAX;
    bool denied = !bad_group && !authz_allow(b, rq, ACL_OP_READ, ACL_RES_GROUP, req->group_id.ptr, req->group_id.len);
    struct commit_job *j = calloc(1, sizeof(*j));
    if (!j)
        abort();
    j->offsets = calloc((size_t)(n > 0 ? n : 1), sizeof(*j->offsets));
    if (!j->offsets)
        abort();
    int k = 0;
    for (int t = 0; t < req->topics_count; t++) {
        const struct offset_commit_request_topic *tin = &req->topics[t];
        const struct topic_entry *te = topics[t];
        const char *topic = rq_cstr(rq, tin->name);
        for (int p = 0; p < tin->partitions_count; p++, k++) {
            const struct offset_commit_request_topic_partition *pin = &tin->partitions[p];
            struct group_offset *o = &j->offsets[k];
            if (bad_group)
                errors[k] = KERR_INVALID_GROUP_ID;
            else if (denied)
                errors[k] = KERR_GROUP_AUTHORIZATION_FAILED;
            else if (!authz_allow(b, rq, ACL_OP_READ, ACL_RES_TOPIC, tin->name.ptr, tin->name.len))
                errors[k] = KERR_TOPIC_AUTHORIZATION_FAILED;
            else if (!te)
                errors[k] = (int16_t)topic_errs[t];
            else if (pin->partition_index < 0 || pin->partition_index >= te->info.partitions)
                errors[k] = KERR_UNKNOWN_TOPIC_OR_PARTITION;
            else if (pin->committed_metadata.len > OFFSET_METADATA_MAX)
                errors[k] = KERR_OFFSET_METADATA_TOO_LARGE;
            if (errors[k])
                continue;
            o->topic = topic;
            o->partition = pin->partition_index;
            o->offset = pin->committed_offset;
            o->leader_epoch = pin->committed_leader_epoch;
            o->metadata = pin->committed_metadata.len < 0 ? NULL : rq_cstr(rq, pin->committed_metadata);
        }
    }
    if (bad_group || denied || n == 0) {
        free(j->offsets);
        free(j);
        commit_answer(b, rq);
        return;
    }
    j->base.run = commit_run;
    j->base.done = commit_done;
    j->rq = rq;
    j->group_id = rq_cstr(rq, req->group_id);
    j->member_id = rq_cstr(rq, req->member_id);
    j->instance_id = req->group_instance_id.len >= 0 ? rq_cstr(rq, req->group_instance_id) : NULL;
    j->generation = rq->hdr.api_version >= 1 ? req->generation_id_or_member_epoch : -1;
    j->errors = errors;
    j->n = n;
    rq->reads_pending++;
    rq->resume = commit_answer;
    jobs_submit(&b->store, &j->base);
}

/* ---- OffsetFetch: every group's offsets in one job, matched to the request on the loop ---- */

struct fetch_group {
    const char *group_id;
    struct group_offset *offsets; /* malloc'd by the store */
    int n;
    int error;
};

struct offsets_job {
    struct job base;
    struct request *rq;
    struct fetch_group *groups;   /* in the request's arena */
    int n;
};

static void offsets_run(struct job *job, struct metastore *m)
{
    struct offsets_job *j = (struct offsets_job *)job;
    for (int i = 0; i < j->n; i++) {
        struct fetch_group *fg = &j->groups[i];
        if (!fg->error && metastore_offsets_fetch(m, fg->group_id, &fg->offsets, &fg->n) != 0)
            fg->error = KERR_COORDINATOR_NOT_AVAILABLE;
    }
}

static void offsets_done(struct broker *b, struct job *job)
{
    struct offsets_job *j = (struct offsets_job *)job;
    if (b) {
        broker_release(b, j->rq);
    } else {
        for (int i = 0; i < j->n; i++)
            free(j->groups[i].offsets);
    }
    free(j);
}

static const struct group_offset *find_offset(const struct fetch_group *fg, struct kstr topic, int32_t partition)
{
    for (int i = 0; i < fg->n; i++)
        if ((int32_t)strlen(fg->offsets[i].topic) == topic.len &&
            memcmp(fg->offsets[i].topic, topic.ptr, (size_t)topic.len) == 0 && fg->offsets[i].partition == partition)
            return &fg->offsets[i];
    return NULL;
}

/* One partition's answer (the v0-7 and v8+ partition structs have the same fields). */
static void fill_partition(struct request *rq, const struct fetch_group *fg, struct kstr topic, int32_t partition,
                           int32_t *index, int64_t *offset, int32_t *epoch, struct kstr *metadata, int16_t *error)
{
    const struct group_offset *o = fg->error ? NULL : find_offset(fg, topic, partition);
    *index = partition;
    *offset = o ? o->offset : -1;
    *epoch = o ? o->leader_epoch : -1;
    *metadata = !o ? kstr_c("") : !o->metadata ? (struct kstr){NULL, -1} : kstr_c(rq_cstr(rq, kstr_c(o->metadata)));
    *error = (int16_t)fg->error;
}

/* The distinct topics of the group's offsets (for a request that asks for all of them). */
static int group_topics(const struct fetch_group *fg, int *first)
{
    int n = 0;
    for (int i = 0; i < fg->n; i++)
        if (i == 0 || strcmp(fg->offsets[i].topic, fg->offsets[i - 1].topic) != 0)
            first[n++] = i;
    return n;
}

static void fill_group_v8(struct request *rq, const struct offset_fetch_request_group *gin,
                          const struct fetch_group *fg, struct offset_fetch_response_group *out)
{
    out->group_id = gin->group_id;
    out->error_code = (int16_t)fg->error;
    if (fg->error)
        return;
    if (gin->topics_count < 0) {
        int *first = RQ_ALLOC(rq, int, fg->n);
        int nt = group_topics(fg, first);
        out->topics = RQ_ALLOC(rq, struct offset_fetch_response_group_topic, nt);
        out->topics_count = nt;
        for (int t = 0; t < nt; t++) {
            struct kstr name = kstr_c(rq_cstr(rq, kstr_c(fg->offsets[first[t]].topic)));
            int end = t + 1 < nt ? first[t + 1] : fg->n;
            out->topics[t].name = name;
            out->topics[t].partitions =
                RQ_ALLOC(rq, struct offset_fetch_response_group_topic_partition, end - first[t]);
            out->topics[t].partitions_count = end - first[t];
            for (int i = first[t]; i < end; i++) {
                struct offset_fetch_response_group_topic_partition *p = &out->topics[t].partitions[i - first[t]];
                fill_partition(rq, fg, name, fg->offsets[i].partition, &p->partition_index, &p->committed_offset,
                               &p->committed_leader_epoch, &p->metadata, &p->error_code);
                p->error_code = 0;
            }
        }
        return;
    }
    out->topics = RQ_ALLOC(rq, struct offset_fetch_response_group_topic, gin->topics_count);
    out->topics_count = gin->topics_count;
    for (int t = 0; t < gin->topics_count; t++) {
        const struct offset_fetch_request_group_topic *tin = &gin->topics[t];
        int np = tin->partition_indexes_count > 0 ? tin->partition_indexes_count : 0;
        out->topics[t].name = tin->name;
        out->topics[t].partitions = RQ_ALLOC(rq, struct offset_fetch_response_group_topic_partition, np);
        out->topics[t].partitions_count = np;
        for (int i = 0; i < np; i++) {
            struct offset_fetch_response_group_topic_partition *p = &out->topics[t].partitions[i];
            fill_partition(rq, fg, tin->name, tin->partition_indexes[i], &p->partition_index, &p->committed_offset,
                           &p->committed_leader_epoch, &p->metadata, &p->error_code);
        }
    }
}

static void fill_old(struct request *rq, const struct offset_fetch_request *req, const struct fetch_group *fg,
                     struct offset_fetch_response *r)
{
    r->error_code = (int16_t)fg->error;
    if (fg->error && rq->hdr.api_version >= 2)
        return;
    bool all = req->topics_count < 0;
    int *first = all ? RQ_ALLOC(rq, int, fg->n) : NULL;
    int nt = all ? group_topics(fg, first) : req->topics_count;
    r->topics = RQ_ALLOC(rq, struct offset_fetch_response_topic, nt);
    r->topics_count = nt;
    for (int t = 0; t < nt; t++) {
        struct offset_fetch_response_topic *out = &r->topics[t];
        if (all) {
            int end = t + 1 < nt ? first[t + 1] : fg->n;
            out->name = kstr_c(rq_cstr(rq, kstr_c(fg->offsets[first[t]].topic)));
            out->partitions = RQ_ALLOC(rq, struct offset_fetch_response_topic_partition, end - first[t]);
            out->partitions_count = end - first[t];
            for (int i = first[t]; i < end; i++) {
                struct offset_fetch_response_topic_partition *p = &out->partitions[i - first[t]];
                fill_partition(rq, fg, out->name, fg->offsets[i].partition, &p->partition_index, &p->committed_offset,
                               &p->committed_leader_epoch, &p->metadata, &p->error_code);
            }
            continue;
        }
        const struct offset_fetch_request_topic *tin = &req->topics[t];
        int np = tin->partition_indexes_count > 0 ? tin->partition_indexes_count : 0;
        out->name = tin->name;
        out->partitions = RQ_ALLOC(rq, struct offset_fetch_response_topic_partition, np);
        out->partitions_count = np;
        for (int i = 0; i < np; i++) {
            struct offset_fetch_response_topic_partition *p = &out->partitions[i];
            fill_partition(rq, fg, tin->name, tin->partition_indexes[i], &p->partition_index, &p->committed_offset,
                           &p->committed_leader_epoch, &p->metadata, &p->error_code);
        }
    }
}

static void fetch_answer(void *broker, struct request *rq)
{
    (void)broker;
    struct offset_fetch_request *req = rq->body;
    struct fetch_group *groups = rq->state;
    struct offset_fetch_response *r = RQ_ALLOC(rq, struct offset_fetch_response, 1);
    if (rq->hdr.api_version >= 8) {
        int n = req->groups_count > 0 ? req->groups_count : 0;
        r->groups = RQ_ALLOC(rq, struct offset_fetch_response_group, n);
        r->groups_count = n;
        for (int i = 0; i < n; i++)
            fill_group_v8(rq, &req->groups[i], &groups[i], &r->groups[i]);
    } else {
        fill_old(rq, req, &groups[0], r);
    }
    int n = rq->hdr.api_version >= 8 ? (req->groups_count > 0 ? req->groups_count : 0) : 1;
    for (int i = 0; i < n; i++)
        free(groups[i].offsets);
    request_respond(rq, r);
}

void handle_offset_fetch(struct broker *b, struct request *rq)
{
    struct offset_fetch_request *req = rq->body;
    bool v8 = rq->hdr.api_version >= 8;
    int n = v8 ? (req->groups_count > 0 ? req->groups_count : 0) : 1;
    struct fetch_group *groups = RQ_ALLOC(rq, struct fetch_group, n);
    rq->state = groups;
    for (int i = 0; i < n; i++) {
        struct kstr id = v8 ? req->groups[i].group_id : req->group_id;
        groups[i].group_id = rq_cstr(rq, id);
        if (id.len <= 0 || id.len > GROUP_ID_MAX)
            groups[i].error = KERR_INVALID_GROUP_ID;
        else if (!authz_allow(b, rq, ACL_OP_DESCRIBE, ACL_RES_GROUP, id.ptr, id.len))
            groups[i].error = KERR_GROUP_AUTHORIZATION_FAILED;
    }
    struct offsets_job *j = calloc(1, sizeof(*j));
    if (!j)
        abort();
    j->base.run = offsets_run;
    j->base.done = offsets_done;
    j->rq = rq;
    j->groups = groups;
    j->n = n;
    rq->reads_pending++;
    rq->resume = fetch_answer;
    jobs_submit(&b->store, &j->base);
}
