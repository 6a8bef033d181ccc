/* The loop thread's view of topics and partition offsets, kept from the metadata store by jobs on
 * the store threads (jobs.c): the loop reads only this cache. What a request needs and the
 * cache lacks (a topic it has never seen, offsets that must be fresh) is asked for, the request
 * waits, and it runs again when the answer is in. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker_internal.h"
#include "util/clock.h"
#include "util/log.h"

/* The whole topic list is read again this often (topics created or deleted elsewhere). */
#define TOPIC_REFRESH_MS 2000
/* A request that needs a fresh listing waits at most this long for it; then (a slow or unreachable
 * store) it is answered from the cache. */
#define LISTING_WAIT_MS 500
/* Look-ups of names that turned out not to exist are forgotten after this. */
#define LOOKUP_MEMORY_MS 10000

bool topic_name_valid(const char *name, int32_t len)
{
    if (len <= 0 || len > TOPIC_NAME_MAX)
        return false;
    if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
        return false;
    for (int32_t i = 0; i < len; i++) {
        char ch = name[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
              ch == '_' || ch == '-'))
            return false;
    }
    return true;
}

/* ---- the cache ---- */

static int cmp_name(const char *a, int32_t alen, const char *b)
{
    size_t blen = strlen(b);
    size_t n = (size_t)alen < blen ? (size_t)alen : blen;
    int c = memcmp(a, b, n);
    if (c)
        return c;
    return (size_t)alen < blen ? -1 : (size_t)alen > blen ? 1 : 0;
}

static int find_index(const struct topic_cache *tc, const char *name, int32_t len, bool *found)
{
    int lo = 0, hi = tc->n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        int c = cmp_name(name, len, tc->topics[mid].info.name);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    *found = false;
    return lo;
}

struct topic_entry *topics_find(struct broker *b, const char *name, int32_t len)
{
    bool found;
    int i = find_index(&b->topics, name, len, &found);
    return found ? &b->topics.topics[i] : NULL;
}

struct topic_entry *topics_find_id(struct broker *b, int64_t topic_id)
{
    for (int i = 0; i < b->topics.n; i++)
        if (b->topics.topics[i].info.id == topic_id)
            return &b->topics.topics[i];
    return NULL;
}

/* The configs of a topic that produce applies, from what the store holds. */
static void apply_configs(const struct config *cfg, struct topic_entry *t, const struct topic_config *cfgs, int n)
{
    t->max_message_bytes = cfg->max_message_bytes;
    t->log_append_time = false;
    t->compacted = false;
    for (int i = 0; i < n; i++) {
        if (!strcmp(cfgs[i].key, "message.timestamp.type"))
            t->log_append_time = !strcmp(cfgs[i].value, "LogAppendTime");
        else if (!strcmp(cfgs[i].key, "cleanup.policy"))
            t->compacted = strstr(cfgs[i].value, "compact") != NULL;
        else if (!strcmp(cfgs[i].key, "max.message.bytes"))
            t->max_message_bytes = strtoll(cfgs[i].value, NULL, 10);
    }
}

/* What a job read about one topic. */
struct topic_read {
    struct topic_info info;
    struct topic_config *configs; /* malloc'd */
    int nconfigs;
    bool configs_read;
};

static void free_parts(struct topic_entry *t)
{
    for (int p = 0; p < t->info.partitions; p++)
        free(t->parts[p].waiters.v); /* nobody waits on a topic that goes: see topics_apply_listing */
    free(t->parts);
}

/* Inserts a topic the store knows into the cache (or refreshes its entry). */
static struct topic_entry *cache_put(struct broker *b, const struct topic_read *r)
{
    struct topic_cache *tc = &b->topics;
    bool found;
    int i = find_index(tc, r->info.name, (int32_t)strlen(r->info.name), &found);
    if (found && tc->topics[i].info.id == r->info.id)
        return &tc->topics[i];
    if (found) { /* the name now belongs to a new topic: the old one was deleted */
        free_parts(&tc->topics[i]);
    } else {
        struct topic_entry *v = realloc(tc->topics, sizeof(*v) * (size_t)(tc->n + 1));
        if (!v)
            abort();
        tc->topics = v;
        memmove(&tc->topics[i + 1], &tc->topics[i], sizeof(*v) * (size_t)(tc->n - i));
        tc->n++;
    }
    struct topic_entry *t = &tc->topics[i];
    memset(t, 0, sizeof(*t));
    t->info = r->info;
    t->parts = calloc((size_t)(r->info.partitions > 0 ? r->info.partitions : 1), sizeof(*t->parts));
    if (!t->parts)
        abort();
    apply_configs(b->cfg, t, r->configs, r->nconfigs);
    return t;
}

/* ---- the full listing, every TOPIC_REFRESH_MS ---- */

struct listing_job {
    struct job base;
    int64_t started_ms;
    int64_t *known_ids;           /* topics the cache has: their configs are read again only */
    int64_t *known_epochs;        /* when their config_epoch changed (AlterConfigs) */
    int nknown;
    struct topic_read *topics;
    int n;
    int rc;
    struct log_start_row *starts; /* partitions retention or DeleteRecords trimmed */
    int nstarts;
};

static void listing_run(struct job *job, struct metastore *m)
{
    struct listing_job *j = (struct listing_job *)job;
    struct topic_info *infos;
    int n;
    j->rc = metastore_list_topics(m, &infos, &n);
    if (j->rc != 0)
        return;
    j->topics = calloc((size_t)(n ? n : 1), sizeof(*j->topics));
    if (!j->topics)
        abort();
    j->n = n;
    for (int i = 0; i < n; i++) {
        j->topics[i].info = infos[i];
        bool known = false;
        for (int k = 0; k < j->nknown && !known; k++)
            known = j->known_ids[k] == infos[i].id && j->known_epochs[k] == infos[i].config_epoch;
        if (!known)
            j->topics[i].configs_read =
                metastore_topic_configs(m, infos[i].id, &j->topics[i].configs, &j->topics[i].nconfigs) == 0;
    }
    free(infos);
    if (metastore_log_starts(m, &j->starts, &j->nstarts) != 0)
        j->nstarts = 0;
}

static void free_reads(struct topic_read *r, int n)
{
    for (int i = 0; i < n; i++)
        free(r[i].configs);
    free(r);
}

/* The store's list replaces the cache: entries of topics that are still the same topic (same id)
 * keep their offsets and configs. */
static void apply_listing(struct broker *b, struct listing_job *j)
{
    struct topic_cache *tc = &b->topics;
    struct topic_entry *entries = calloc((size_t)(j->n ? j->n : 1), sizeof(*entries));
    if (!entries)
        abort();
    for (int i = 0; i < j->n; i++) {
        const struct topic_read *r = &j->topics[i];
        struct topic_entry *old = topics_find(b, r->info.name, (int32_t)strlen(r->info.name));
        if (old && old->info.id == r->info.id) {
            entries[i] = *old;
            old->parts = NULL; /* moved, with the requests that wait on them */
            /* Partitions only grow, and configs only move to a newer epoch: a listing read before
             * a change this worker made (topics_update) must not undo it. */
            if (r->info.partitions > old->info.partitions) {
                /* more partitions (CreatePartitions): the known ones keep their state */
                struct partition_state *parts = calloc((size_t)r->info.partitions, sizeof(*parts));
                if (!parts)
                    abort();
                memcpy(parts, entries[i].parts, sizeof(*parts) * (size_t)old->info.partitions);
                free(entries[i].parts);
                entries[i].parts = parts;
            }
            int32_t partitions = r->info.partitions > old->info.partitions ? r->info.partitions : old->info.partitions;
            int64_t applied_epoch = old->info.config_epoch;
            entries[i].info = r->info;
            entries[i].info.partitions = partitions;
            if (r->configs_read && r->info.config_epoch > applied_epoch)
                apply_configs(b->cfg, &entries[i], r->configs, r->nconfigs);
            else /* not read, the read failed, or older than what is applied: the next listing sees */
                entries[i].info.config_epoch = applied_epoch;
        } else {
            entries[i].info = r->info;
            entries[i].parts = calloc((size_t)(r->info.partitions > 0 ? r->info.partitions : 1),
                                      sizeof(struct partition_state));
            if (!entries[i].parts)
                abort();
            apply_configs(b->cfg, &entries[i], r->configs, r->nconfigs);
        }
    }
    /* Topics that are gone: requests waiting on their offsets resume (and find no topic). */
    struct waiters orphans = {0};
    for (int i = 0; i < tc->n; i++) {
        if (!tc->topics[i].parts)
            continue;
        for (int p = 0; p < tc->topics[i].info.partitions; p++) {
            waiters_move(&orphans, &tc->topics[i].parts[p].waiters);
        }
        free(tc->topics[i].parts);
    }
    free(tc->topics);
    tc->topics = entries;
    tc->n = j->n;
    tc->listed_ms = j->started_ms;
    /* Log starts only move up (retention, DeleteRecords, on any agent). */
    for (int i = 0; i < j->nstarts; i++) {
        struct topic_entry *t = topics_find_id(b, j->starts[i].topic_id);
        if (t && j->starts[i].partition < t->info.partitions) {
            struct partition_state *ps = &t->parts[j->starts[i].partition];
            if (ps->loaded && j->starts[i].log_start > ps->log_start)
                ps->log_start = j->starts[i].log_start;
        }
    }
    waiters_release(b, &orphans);
}

static void listing_done(struct broker *b, struct job *job)
{
    struct listing_job *j = (struct listing_job *)job;
    if (b) {
        b->topics.listing = false;
        if (j->rc == 0)
            apply_listing(b, j);
        else
            b->topics.listing_failed_ms = j->started_ms;
        waiters_release(b, &b->topics.listing_waiters);
    }
    free(j->known_ids);
    free(j->known_epochs);
    free(j->starts);
    free_reads(j->topics, j->n);
    free(j);
}

static void start_listing(struct broker *b)
{
    if (b->topics.listing)
        return;
    struct listing_job *j = calloc(1, sizeof(*j));
    if (!j)
        abort();
    j->base.run = listing_run;
    j->base.done = listing_done;
    j->started_ms = mono_ms();
    j->known_ids = calloc((size_t)(b->topics.n ? b->topics.n : 1), sizeof(int64_t));
    j->known_epochs = calloc((size_t)(b->topics.n ? b->topics.n : 1), sizeof(int64_t));
    if (!j->known_ids || !j->known_epochs)
        abort();
    for (int i = 0; i < b->topics.n; i++) {
        j->known_ids[j->nknown] = b->topics.topics[i].info.id;
        j->known_epochs[j->nknown++] = b->topics.topics[i].info.config_epoch;
    }
    b->topics.listing = true;
    b->topics.listing_started_ms = j->started_ms;
    jobs_submit(&b->store, &j->base);
}

bool topics_need_listing(struct broker *b, struct request *rq, int64_t max_age_ms, int *err)
{
    *err = 0;
    int64_t since = rq->received_ms - max_age_ms;
    if (b->topics.listed_ms >= since)
        return true;
    if (b->topics.listing_failed_ms >= since) {
        *err = KERR_KAFKA_STORAGE_ERROR;
        return false;
    }
    if (b->topics.listing && mono_ms() - b->topics.listing_started_ms >= LISTING_WAIT_MS)
        return true; /* the store is slow: what the cache knows */
    start_listing(b);
    waiters_add(&b->topics.listing_waiters, rq);
    return false;
}

/* ---- one topic by name ---- */

struct lookup_job {
    struct job base;
    struct topic_lookup *lookup;
    struct topic_read read;
    int rc;
};

static void lookup_run(struct job *job, struct metastore *m)
{
    struct lookup_job *j = (struct lookup_job *)job;
    j->rc = metastore_get_topic(m, j->lookup->name, &j->read.info);
    if (j->rc == 0)
        j->read.configs_read = metastore_topic_configs(m, j->read.info.id, &j->read.configs, &j->read.nconfigs) == 0;
}

static void lookup_done(struct broker *b, struct job *job)
{
    struct lookup_job *j = (struct lookup_job *)job;
    if (b) {
        struct topic_lookup *l = j->lookup;
        l->done = true;
        l->result = j->rc < 0 ? KERR_KAFKA_STORAGE_ERROR : j->rc;
        if (j->rc == 0)
            cache_put(b, &j->read);
        waiters_release(b, &l->waiters);
    }
    free(j->read.configs);
    free(j);
}

struct topic_entry *topics_need(struct broker *b, struct request *rq, const char *name, int32_t len, int *err)
{
    return topics_need_since(b, rq, name, len, rq->received_ms, err);
}

struct topic_entry *topics_need_since(struct broker *b, struct request *rq, const char *name, int32_t len,
                                      int64_t since_ms, int *err)
{
    *err = 0;
    struct topic_entry *t = topics_find(b, name, len);
    if (t)
        return t;
    if (!topic_name_valid(name, len)) { /* no such topic can exist: nothing to ask the store */
        *err = KERR_UNKNOWN_TOPIC_OR_PARTITION;
        return NULL;
    }
    /* A look-up that started after this request arrived answers for it; an older one may predate
     * the topic's creation by another worker. */
    for (struct topic_lookup *l = b->topics.lookups; l; l = l->next) {
        if (l->started_ms < since_ms || (int32_t)strlen(l->name) != len || memcmp(l->name, name, (size_t)len))
            continue;
        if (!l->done) {
            waiters_add(&l->waiters, rq);
            return NULL;
        }
        if (l->result) {
            *err = l->result;
            return NULL;
        }
    }
    struct topic_lookup *l = calloc(1, sizeof(*l));
    struct lookup_job *j = calloc(1, sizeof(*j));
    if (!l || !j)
        abort();
    memcpy(l->name, name, (size_t)len);
    l->started_ms = mono_ms();
    l->next = b->topics.lookups;
    b->topics.lookups = l;
    waiters_add(&l->waiters, rq);
    j->base.run = lookup_run;
    j->base.done = lookup_done;
    j->lookup = l;
    jobs_submit(&b->store, &j->base);
    return NULL;
}

/* ---- partition offsets ---- */

struct offsets_job {
    struct job base;
    int64_t started_ms;
    int n;
    struct offsets_item {
        int64_t topic_id;
        int32_t partition;
        int64_t log_start, high_watermark;
        int rc;
    } items[];
};

static void offsets_run(struct job *job, struct metastore *m)
{
    struct offsets_job *j = (struct offsets_job *)job;
    for (int i = 0; i < j->n; i++) {
        struct offsets_item *it = &j->items[i];
        it->rc = metastore_partition_offsets(m, it->topic_id, it->partition, &it->log_start, &it->high_watermark);
    }
}

static void offsets_apply(struct broker *b, const struct offsets_job *j, bool release)
{
    for (int i = 0; i < j->n; i++) {
        const struct offsets_item *it = &j->items[i];
        struct topic_entry *t = topics_find_id(b, it->topic_id);
        if (!t || it->partition < 0 || it->partition >= t->info.partitions)
            continue;
        struct partition_state *ps = &t->parts[it->partition];
        if (it->rc == 0) {
            ps->log_start = it->log_start;
            /* A local commit may be newer than what this read saw: never move backwards. */
            if (!ps->loaded || it->high_watermark > ps->high_watermark)
                ps->high_watermark = it->high_watermark;
            ps->loaded = true;
            if (j->started_ms > ps->read_ms)
                ps->read_ms = j->started_ms;
        } else {
            ps->failed_ms = j->started_ms;
            ps->failed_err = it->rc < 0 ? KERR_KAFKA_STORAGE_ERROR : it->rc;
        }
        if (release) {
            ps->loading = false;
            waiters_release(b, &ps->waiters);
        }
    }
}

static void offsets_done(struct broker *b, struct job *job)
{
    if (b)
        offsets_apply(b, (struct offsets_job *)job, true);
    free(job);
}

static struct offsets_job *offsets_job_new(int n)
{
    struct offsets_job *j = calloc(1, sizeof(*j) + sizeof(struct offsets_item) * (size_t)(n ? n : 1));
    if (!j)
        abort();
    j->started_ms = mono_ms();
    return j;
}

struct partition_state *partition_need(struct broker *b, struct request *rq, struct topic_entry *t, int32_t partition,
                                       int64_t since_ms, int *err)
{
    *err = 0;
    if (partition < 0 || partition >= t->info.partitions) {
        *err = KERR_UNKNOWN_TOPIC_OR_PARTITION;
        return NULL;
    }
    struct partition_state *ps = &t->parts[partition];
    if (ps->loaded && ps->read_ms >= since_ms)
        return ps;
    if (ps->failed_ms >= since_ms && ps->failed_ms >= rq->received_ms) {
        *err = ps->failed_err;
        return NULL;
    }
    waiters_add(&ps->waiters, rq);
    if (!ps->loading) {
        struct offsets_job *j = offsets_job_new(1);
        j->base.run = offsets_run;
        j->base.done = offsets_done;
        j->n = 1;
        j->items[0].topic_id = t->info.id;
        j->items[0].partition = partition;
        ps->loading = true;
        jobs_submit(&b->store, &j->base);
    }
    return NULL;
}

void topics_advance(struct broker *b, int64_t topic_id, int32_t partition, int64_t end)
{
    struct topic_entry *t = topics_find_id(b, topic_id);
    if (!t || partition < 0 || partition >= t->info.partitions || !t->parts[partition].loaded)
        return;
    if (end > t->parts[partition].high_watermark)
        t->parts[partition].high_watermark = end;
}

/* ---- polling offsets for waiting fetches ---- */

static void poll_done(struct broker *b, struct job *job)
{
    if (b) {
        b->topics.polling = false;
        offsets_apply(b, (struct offsets_job *)job, false);
        fetch_wake(b, mono_ms(), true);
    }
    free(job);
}

void topics_poll(struct broker *b, const int64_t *topic_ids, const int32_t *partitions, int n)
{
    if (b->topics.polling || n == 0)
        return;
    struct offsets_job *j = offsets_job_new(n);
    j->base.run = offsets_run;
    j->base.done = poll_done;
    j->n = n;
    for (int i = 0; i < n; i++) {
        j->items[i].topic_id = topic_ids[i];
        j->items[i].partition = partitions[i];
    }
    b->topics.polling = true;
    jobs_submit(&b->store, &j->base);
}

/* A change made here (CreatePartitions, AlterConfigs) is in the cache at once; other workers and
 * agents see it with their next listing. */
void topics_update(struct broker *b, const struct topic_info *info, const struct topic_config *configs, int n)
{
    struct topic_entry *t = topics_find(b, info->name, (int32_t)strlen(info->name));
    if (!t || t->info.id != info->id)
        return; /* not known here yet: the next look-up or listing reads it whole */
    if (info->partitions > t->info.partitions) {
        struct partition_state *parts = realloc(t->parts, sizeof(*parts) * (size_t)info->partitions);
        if (!parts)
            abort();
        memset(&parts[t->info.partitions], 0, sizeof(*parts) * (size_t)(info->partitions - t->info.partitions));
        t->parts = parts;
        t->info.partitions = info->partitions;
    }
    if (configs && info->config_epoch > t->info.config_epoch) {
        apply_configs(b->cfg, t, configs, n);
        t->info.config_epoch = info->config_epoch;
    }
}

/* ---- create and delete ---- */

struct admin_job {
    struct job base;
    struct request *rq;
    int *result;
    bool create;
    char name[TOPIC_NAME_MAX + 1];
    int32_t partitions;
    struct topic_config *configs;
    int nconfigs;
    struct topic_read read;
    int rc;
};

static void admin_run(struct job *job, struct metastore *m)
{
    struct admin_job *j = (struct admin_job *)job;
    if (j->create) {
        j->rc = metastore_create_topic(m, j->name, j->partitions, j->configs, j->nconfigs, &j->read.info);
        if (j->rc == 0)
            j->read.configs_read =
                metastore_topic_configs(m, j->read.info.id, &j->read.configs, &j->read.nconfigs) == 0;
    } else {
        j->rc = metastore_delete_topic(m, j->name);
    }
}

static void admin_done(struct broker *b, struct job *job)
{
    struct admin_job *j = (struct admin_job *)job;
    if (b) {
        *j->result = j->rc < 0 ? KERR_KAFKA_STORAGE_ERROR : j->rc;
        if (j->rc == 0 && j->create) {
            log_info("created topic %s with %d partitions", j->name, j->partitions);
            cache_put(b, &j->read);
        } else if (j->rc == 0) {
            log_info("deleted topic %s", j->name);
            start_listing(b); /* the cache forgets it */
        }
        broker_release(b, j->rq);
    }
    free(j->configs);
    free(j->read.configs);
    free(j);
}

static struct admin_job *admin_job_new(struct request *rq, const char *name, int *result)
{
    struct admin_job *j = calloc(1, sizeof(*j));
    if (!j)
        abort();
    j->base.run = admin_run;
    j->base.done = admin_done;
    j->rq = rq;
    j->result = result;
    snprintf(j->name, sizeof(j->name), "%s", name);
    rq->reads_pending++;
    return j;
}

void topics_create(struct broker *b, struct request *rq, const char *name, int32_t partitions,
                   const struct topic_config *configs, int nconfigs, int *result)
{
    struct admin_job *j = admin_job_new(rq, name, result);
    j->create = true;
    j->partitions = partitions;
    if (nconfigs > 0) {
        j->configs = calloc((size_t)nconfigs, sizeof(*configs));
        if (!j->configs)
            abort();
        memcpy(j->configs, configs, sizeof(*configs) * (size_t)nconfigs);
        j->nconfigs = nconfigs;
    }
    jobs_submit(&b->store, &j->base);
}

void topics_delete(struct broker *b, struct request *rq, const char *name, int *result)
{
    jobs_submit(&b->store, &admin_job_new(rq, name, result)->base);
}

/* ---- timers and exit ---- */

int64_t topics_next_deadline(struct broker *b)
{
    const struct topic_cache *tc = &b->topics;
    /* the next listing: none while one is in flight (its completion wakes the loop) */
    int64_t last = tc->listed_ms > tc->listing_failed_ms ? tc->listed_ms : tc->listing_failed_ms;
    int64_t d = tc->listing ? INT64_MAX : last + TOPIC_REFRESH_MS;
    if (b->topics.listing_waiters.n > 0 && b->topics.listing_started_ms + LISTING_WAIT_MS < d)
        d = b->topics.listing_started_ms + LISTING_WAIT_MS;
    return d;
}

void topics_tick(struct broker *b, int64_t now_ms)
{
    if (b->topics.listing_waiters.n > 0 && now_ms >= b->topics.listing_started_ms + LISTING_WAIT_MS)
        waiters_release(b, &b->topics.listing_waiters); /* they answer from the cache */
    if (now_ms >= b->topics.listed_ms + TOPIC_REFRESH_MS && now_ms >= b->topics.listing_failed_ms + TOPIC_REFRESH_MS)
        start_listing(b);
    /* Forget finished look-ups no request can use any more. */
    for (struct topic_lookup **pp = &b->topics.lookups; *pp;) {
        struct topic_lookup *l = *pp;
        if (l->done && l->started_ms + LOOKUP_MEMORY_MS < now_ms) {
            *pp = l->next;
            free(l->waiters.v);
            free(l);
        } else {
            pp = &l->next;
        }
    }
}

void topics_free(struct broker *b)
{
    for (int i = 0; i < b->topics.n; i++)
        if (b->topics.topics[i].parts)
            free_parts(&b->topics.topics[i]);
    free(b->topics.topics);
    while (b->topics.lookups) {
        struct topic_lookup *l = b->topics.lookups;
        b->topics.lookups = l->next;
        free(l->waiters.v);
        free(l);
    }
    free(b->topics.listing_waiters.v);
    memset(&b->topics, 0, sizeof(b->topics));
}

/* ---- at start-up: one synchronous read, before the loop runs ---- */

int topics_load(struct broker *b, struct metastore *m)
{
    struct listing_job j = {.started_ms = mono_ms()};
    listing_run(&j.base, m);
    if (j.rc != 0)
        return -1;
    apply_listing(b, &j);
    free(j.starts);
    free_reads(j.topics, j.n);
    return 0;
}
