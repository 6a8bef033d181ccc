/* The loop thread's view of topics and partition offsets, cached from the metadata store. */
#include <stdlib.h>
#include <string.h>

#include "broker/broker_internal.h"
#include "util/clock.h"
#include "util/log.h"

/* How long a partition's offsets are trusted before re-reading them: other workers and agents
 * commit to the same partitions. */
#define OFFSETS_FRESH_MS 20

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

static int cmp_name(const char *a, int32_t alen, const char *b)
{
    size_t blen = strlen(b);
    size_t n = (size_t)alen < blen ? (size_t)alen : blen;
    int c = memcmp(a, b, n);
    if (c)
        return c;
    return (size_t)alen < blen ? -1 : (size_t)alen > blen ? 1 : 0;
}

static struct topic_entry *find(struct topic_cache *tc, const char *name, int32_t len)
{
    int lo = 0, hi = tc->n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        int c = cmp_name(name, len, tc->topics[mid].info.name);
        if (c == 0)
            return &tc->topics[mid];
        if (c < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return NULL;
}

/* Reads the configs of a topic that produce applies. */
static void load_produce_configs(struct broker *b, struct topic_entry *t)
{
    t->max_message_bytes = b->cfg->max_message_bytes;
    struct topic_config *cfgs;
    int n;
    if (metastore_topic_configs(b->meta, t->info.id, &cfgs, &n) != 0)
        return;
    for (int i = 0; i < n; i++) {
        if (!strcmp(cfgs[i].key, "message.timestamp.type"))
            t->log_append_time = !strcmp(cfgs[i].value, "LogAppendTime");
        else if (!strcmp(cfgs[i].key, "cleanup.policy"))
            t->compacted = strstr(cfgs[i].value, "compact") != NULL;
        else if (!strcmp(cfgs[i].key, "max.message.bytes"))
            t->max_message_bytes = strtoll(cfgs[i].value, NULL, 10);
    }
    free(cfgs);
}

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const struct topic_entry *)a)->info.name, ((const struct topic_entry *)b)->info.name);
}

static void free_entries(struct topic_entry *t, int n)
{
    for (int i = 0; i < n; i++)
        free(t[i].parts);
    free(t);
}

int topics_refresh(struct broker *b)
{
    struct topic_info *infos;
    int n;
    if (metastore_list_topics(b->meta, &infos, &n) != 0)
        return -1;
    struct topic_entry *entries = calloc((size_t)(n ? n : 1), sizeof(*entries));
    if (!entries)
        abort();
    for (int i = 0; i < n; i++) {
        entries[i].info = infos[i];
        entries[i].parts = calloc((size_t)(infos[i].partitions ? infos[i].partitions : 1), sizeof(struct partition_state));
        /* Keep the offsets already known for a topic that is still the same topic. */
        struct topic_entry *old = find(&b->topics, infos[i].name, (int32_t)strlen(infos[i].name));
        if (old && old->info.id == infos[i].id) {
            int keep = old->info.partitions < infos[i].partitions ? old->info.partitions : infos[i].partitions;
            memcpy(entries[i].parts, old->parts, sizeof(struct partition_state) * (size_t)keep);
            entries[i].log_append_time = old->log_append_time;
            entries[i].compacted = old->compacted;
            entries[i].max_message_bytes = old->max_message_bytes;
        } else {
            load_produce_configs(b, &entries[i]);
        }
    }
    free(infos);
    qsort(entries, (size_t)n, sizeof(*entries), cmp_entry);
    free_entries(b->topics.topics, b->topics.n);
    b->topics.topics = entries;
    b->topics.n = n;
    b->topics.refreshed_ms = mono_ms();
    return 0;
}

struct topic_entry *topics_lookup(struct broker *b, const char *name, int32_t name_len)
{
    struct topic_entry *t = find(&b->topics, name, name_len);
    if (t)
        return t;
    /* Another worker or agent may have just created it: one indexed look-up tells. */
    if (name_len <= 0 || name_len > TOPIC_NAME_MAX)
        return NULL;
    char cname[TOPIC_NAME_MAX + 1];
    memcpy(cname, name, (size_t)name_len);
    cname[name_len] = 0;
    struct topic_info info;
    if (metastore_get_topic(b->meta, cname, &info) != 0 || topics_refresh(b) != 0)
        return NULL;
    return find(&b->topics, name, name_len);
}

struct topic_entry *topics_lookup_id(struct broker *b, int64_t topic_id)
{
    for (int i = 0; i < b->topics.n; i++)
        if (b->topics.topics[i].info.id == topic_id)
            return &b->topics.topics[i];
    return NULL;
}

struct partition_state *topics_partition_fresh(struct broker *b, struct topic_entry *t, int32_t partition, int *err)
{
    if (partition >= 0 && partition < t->info.partitions)
        t->parts[partition].checked_ms = INT64_MIN / 2; /* older than any freshness window */
    return topics_partition(b, t, partition, err);
}

struct partition_state *topics_partition(struct broker *b, struct topic_entry *t, int32_t partition, int *err)
{
    if (partition < 0 || partition >= t->info.partitions) {
        *err = KERR_UNKNOWN_TOPIC_OR_PARTITION;
        return NULL;
    }
    struct partition_state *ps = &t->parts[partition];
    int64_t now = mono_ms();
    if (!ps->loaded || now - ps->checked_ms > OFFSETS_FRESH_MS || ps->epoch != b->offsets_epoch) {
        int64_t log_start, hwm;
        if (metastore_partition_offsets(b->meta, t->info.id, partition, &log_start, &hwm) != 0) {
            *err = KERR_KAFKA_STORAGE_ERROR;
            return NULL;
        }
        ps->log_start = log_start;
        /* A local commit may be newer than what this read saw: never move backwards. */
        if (!ps->loaded || hwm > ps->high_watermark)
            ps->high_watermark = hwm;
        ps->loaded = true;
        ps->checked_ms = now;
        ps->epoch = b->offsets_epoch;
    }
    *err = 0;
    return ps;
}

int topics_create(struct broker *b, const char *name, int32_t partitions, const struct topic_config *configs,
                  int nconfigs, struct topic_entry **out)
{
    struct topic_info info;
    int rc = metastore_create_topic(b->meta, name, partitions, configs, nconfigs, &info);
    if (rc != 0)
        return rc < 0 ? KERR_KAFKA_STORAGE_ERROR : rc;
    log_info("created topic %s with %d partitions", name, partitions);
    if (topics_refresh(b) != 0)
        return KERR_KAFKA_STORAGE_ERROR;
    if (out)
        *out = find(&b->topics, name, (int32_t)strlen(name));
    return 0;
}

int topics_delete(struct broker *b, const char *name)
{
    int rc = metastore_delete_topic(b->meta, name);
    if (rc != 0)
        return rc < 0 ? KERR_KAFKA_STORAGE_ERROR : rc;
    log_info("deleted topic %s", name);
    topics_refresh(b);
    return 0;
}
