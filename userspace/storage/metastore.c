/* metastore_open picks the backend from the URL scheme; the other calls forward to it. */
#include <stdio.h>
#include <string.h>

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
    return m->ops->commit_object(m, object_key, object_size, chunks, nchunks);
}

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

int metastore_notify_fd(struct metastore *m) { return m->ops->notify_fd(m); }

int metastore_consume_notifications(struct metastore *m) { return m->ops->consume_notifications(m); }
