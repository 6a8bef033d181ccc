/* metastore_open picks the backend from the URL scheme; the other calls forward to it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/metrics.h"
#include "storage/metastore_backend.h"

struct metastore *metastore_open(const char *url, char *err, size_t errlen)
{
    if (strncmp(url, "sqlite://", 9) == 0)
        return metastore_sqlite_open(url + 9, err, errlen);
    if (strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0)
        return metastore_pg_open(url, err, errlen);
    snprintf(err, errlen, "unknown metadata store URL '%s' (expected sqlite://PATH or postgres://...)", url);
    return NULL;
}

void metastore_close(struct metastore *m)
{
    if (m)
        m->ops->close(m);
}

int metastore_create_topic(struct metastore *m, const char *name, int32_t partitions,
                           const struct topic_config *configs, int nconfigs, struct topic_info *out)
{
    return m->ops->create_topic(m, name, partitions, configs, nconfigs, out);
}

int metastore_delete_topic(struct metastore *m, const char *name) { return m->ops->delete_topic(m, name); }

int metastore_get_topic(struct metastore *m, const char *name, struct topic_info *out)
{
    return m->ops->get_topic(m, name, out);
}

int metastore_list_topics(struct metastore *m, struct topic_info **out, int *n)
{
    return m->ops->list_topics(m, out, n);
}

int metastore_topic_configs(struct metastore *m, int64_t topic_id, struct topic_config **out, int *n)
{
    return m->ops->topic_configs(m, topic_id, out, n);
}

int metastore_create_partitions(struct metastore *m, const char *name, int32_t partitions, struct topic_info *out)
{
    return m->ops->create_partitions(m, name, partitions, out);
}

int metastore_update_topic_configs(struct metastore *m, const char *name, topic_configs_edit edit, void *arg,
                                   struct topic_info *out)
{
    return m->ops->update_topic_configs(m, name, edit, arg, out);
}

int metastore_commit_object(struct metastore *m, const char *object_key, uint64_t object_size,
                            struct commit_chunk *chunks, int nchunks)
{
    uint64_t t0 = metrics_now_us();
    int rc = m->ops->commit_object(m, object_key, object_size, chunks, nchunks);
    metrics_observe_since(H_METADATA_COMMIT, t0);
    if (rc != 0)
        metrics_add(M_METADATA_COMMIT_ERRORS, 1);
    return rc;
}

void metastore_get_counters(struct metastore *m, struct metastore_counters *out) { *out = m->counters; }

int metastore_init_producer(struct metastore *m, int64_t producer_id, int16_t epoch, int64_t *out_id,
                            int16_t *out_epoch)
{
    return m->ops->init_producer(m, producer_id, epoch, out_id, out_epoch);
}

int metastore_list_producers(struct metastore *m, int64_t topic_id, int32_t partition, struct producer_info **out,
                             int *n)
{
    return m->ops->list_producers(m, topic_id, partition, out, n);
}

int metastore_partition_offsets(struct metastore *m, int64_t topic_id, int32_t partition, int64_t *log_start,
                                int64_t *high_watermark)
{
    return m->ops->partition_offsets(m, topic_id, partition, log_start, high_watermark);
}

int metastore_find_chunks(struct metastore *m, int64_t topic_id, int32_t partition, int64_t from_offset,
                          struct chunk_ref *out, int max)
{
    return m->ops->find_chunks(m, topic_id, partition, from_offset, out, max);
}

int metastore_find_chunks_by_time(struct metastore *m, int64_t topic_id, int32_t partition, int64_t ts,
                                  struct chunk_ref *out, int max)
{
    return m->ops->find_chunks_by_time(m, topic_id, partition, ts, out, max);
}

int metastore_max_timestamp(struct metastore *m, int64_t topic_id, int32_t partition, struct chunk_ref *out)
{
    return m->ops->max_timestamp(m, topic_id, partition, out);
}

int metastore_heartbeat(struct metastore *m, const struct member_info *self) { return m->ops->heartbeat(m, self); }

int metastore_list_members(struct metastore *m, const char *agent_group, int64_t alive_within_ms,
                           struct member_info **out, int *n)
{
    return m->ops->list_members(m, agent_group, alive_within_ms, out, n);
}

int metastore_remove_member(struct metastore *m, const char *id) { return m->ops->remove_member(m, id); }
int metastore_prune_members(struct metastore *m, int64_t older_than_ms)
{
    return m->ops->prune_members(m, older_than_ms);
}

int metastore_group_load(struct metastore *m, const char *group_id, uint8_t **data, size_t *len,
                         int64_t *version)
{
    return m->ops->group_load(m, group_id, data, len, version);
}

int metastore_group_store(struct metastore *m, const char *group_id, int64_t version, int phase,
                          const char *protocol_type, const uint8_t *data, size_t len, bool announce)
{
    return m->ops->group_store(m, group_id, version, phase, protocol_type, data, len, announce);
}

int metastore_groups_list(struct metastore *m, struct group_summary **out, int *n)
{
    return m->ops->groups_list(m, out, n);
}

int metastore_offsets_commit(struct metastore *m, const char *group_id, const struct group_offset *v, int n)
{
    return m->ops->offsets_commit(m, group_id, v, n);
}

int metastore_offsets_fetch(struct metastore *m, const char *group_id, struct group_offset **out, int *n)
{
    return m->ops->offsets_fetch(m, group_id, out, n);
}

int metastore_offsets_expire(struct metastore *m, int64_t older_than_ms)
{
    return m->ops->offsets_expire(m, older_than_ms);
}

int metastore_group_delete(struct metastore *m, const char *group_id, int64_t version)
{
    return m->ops->group_delete(m, group_id, version);
}

int metastore_offsets_delete(struct metastore *m, const char *group_id, const struct group_offset *v, int n)
{
    return m->ops->offsets_delete(m, group_id, v, n);
}

struct group_offset *group_offsets_pack(struct group_offset *v, int n)
{
    size_t strings = 0;
    for (int i = 0; i < n; i++)
        strings += strlen(v[i].topic) + 1 + (v[i].metadata ? strlen(v[i].metadata) + 1 : 0);
    struct group_offset *out = malloc(sizeof(*out) * (size_t)n + strings + 1);
    if (!out)
        abort();
    char *p = (char *)(out + n);
    for (int i = 0; i < n; i++) {
        out[i] = v[i];
        size_t len = strlen(v[i].topic) + 1;
        memcpy(p, v[i].topic, len);
        out[i].topic = p;
        p += len;
        if (v[i].metadata) {
            len = strlen(v[i].metadata) + 1;
            memcpy(p, v[i].metadata, len);
            out[i].metadata = p;
            p += len;
        }
        free((char *)v[i].topic);
        free((char *)v[i].metadata);
    }
    free(v);
    return out;
}

int metastore_notify_fd(struct metastore *m) { return m->ops->notify_fd(m); }

int metastore_consume_notifications(struct metastore *m) { return m->ops->consume_notifications(m); }

int metastore_acl_add(struct metastore *m, const struct acl_entry *e)
{
    return m->ops->acl_add(m, e);
}

int metastore_acl_list(struct metastore *m, struct acl_entry **out, int *n)
{
    return m->ops->acl_list(m, out, n);
}

int metastore_acl_delete(struct metastore *m, int64_t id)
{
    return m->ops->acl_delete(m, id);
}

int metastore_cred_put(struct metastore *m, const struct sasl_credential *c) { return m->ops->cred_put(m, c); }

int metastore_cred_delete(struct metastore *m, const char *user, const char *mechanism)
{
    return m->ops->cred_delete(m, user, mechanism);
}

int metastore_cred_list(struct metastore *m, const char *user, const char *mechanism, struct sasl_credential **out,
                        int *n)
{
    return m->ops->cred_list(m, user, mechanism, out, n);
}

int metastore_lease_acquire(struct metastore *m, const char *kind, const char *owner, int64_t ttl_ms)
{
    return m->ops->lease_acquire(m, kind, owner, ttl_ms);
}

int metastore_lease_release(struct metastore *m, const char *kind, const char *owner)
{
    return m->ops->lease_release(m, kind, owner);
}

int metastore_retention_offset(struct metastore *m, int64_t topic_id, int32_t partition, int64_t min_timestamp,
                               int64_t max_bytes, int64_t *offset)
{
    return m->ops->retention_offset(m, topic_id, partition, min_timestamp, max_bytes, offset);
}

int metastore_trim_partition(struct metastore *m, int64_t topic_id, int32_t partition, int64_t offset,
                             int64_t *log_start, int *chunks_removed)
{
    int removed = 0;
    int rc = m->ops->trim_partition(m, topic_id, partition, offset, log_start, &removed);
    if (chunks_removed)
        *chunks_removed = rc == 0 ? removed : 0;
    return rc;
}

int metastore_log_starts(struct metastore *m, struct log_start_row **out, int *n)
{
    return m->ops->log_starts(m, out, n);
}

int metastore_objects_unreferenced(struct metastore *m, int64_t grace_ms, int max, char (**keys)[OBJECT_KEY_MAX],
                                   int *n)
{
    return m->ops->objects_unreferenced(m, grace_ms, max, keys, n);
}

int metastore_object_forget(struct metastore *m, const char *key) { return m->ops->object_forget(m, key); }

int metastore_object_known(struct metastore *m, const char *key) { return m->ops->object_known(m, key); }

int metastore_replace_chunks(struct metastore *m, const char *object_key, uint64_t object_size,
                             struct chunk_replacement *runs, int n)
{
    for (int i = 0; i < n; i++)
        runs[i].replaced = false;
    int rc = m->ops->replace_chunks(m, object_key, object_size, runs, n);
    for (int i = 0; rc < 0 && i < n; i++)
        runs[i].replaced = false; /* rolled back: nothing was replaced */
    return rc;
}
