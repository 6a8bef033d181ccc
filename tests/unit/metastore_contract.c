/* The metadata store's contract, checked the same way on every backend: test_storage.c runs it on
 * SQLite, test_metastore_pg.c on PostgreSQL (each adds only what is specific to its backend). */
#include "metastore_contract.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/errors.h"
#include "storage/metastore.h"

static struct metastore *open_url(const char *url)
{
    char err[256] = "";
    struct metastore *m = metastore_open(url, err, sizeof(err));
    if (!m)
        fprintf(stderr, "  metastore_open(%s): %s\n", url, err);
    return m;
}

struct commit_chunk contract_chunk(int64_t topic_id, int32_t partition, int64_t count, uint64_t pos, int64_t max_ts)
{
    struct commit_chunk c = {.topic_id = topic_id, .partition = partition, .pos = pos, .len = 100,
                             .batch_count = 1, .offset_count = count, .first_timestamp = max_ts - 5,
                             .max_timestamp = max_ts};
    return c;
}

#define chunk contract_chunk

/* An edit for update_topic_configs: sets retention.ms to arg's value, or fails with arg's error. */
struct edit_arg {
    const char *retention;
    int fail;
    int calls;
    int seen;                    /* configs the edit was given */
};

static int edit_retention(void *arg, struct topic_config **cfgs, int *n)
{
    struct edit_arg *e = arg;
    e->calls++;
    e->seen = *n;
    if (e->fail)
        return e->fail;
    struct topic_config *v = realloc(*cfgs, sizeof(**cfgs) * (size_t)(*n + 1));
    if (!v)
        abort();
    *cfgs = v;
    snprintf(v[*n].key, sizeof(v[*n].key), "retention.ms");
    snprintf(v[*n].value, sizeof(v[*n].value), "%s", e->retention);
    (*n)++;
    return 0;
}

void metastore_contract_topic_changes(const char *url, int *failed_)
{
    struct metastore *m = open_url(url);
    CHECK(m != NULL);
    if (!m)
        return;
    struct topic_info t, got;
    struct topic_config cfg = {"cleanup.policy", "compact"};
    CHECK_EQ(metastore_create_topic(m, "grow", 3, &cfg, 1, &t), 0);
    CHECK_EQ(t.config_epoch, 0);

    /* more partitions: the new ones exist, empty, and take commits */
    CHECK_EQ(metastore_create_partitions(m, "grow", 6, &got), 0);
    CHECK_EQ(got.partitions, 6);
    CHECK_EQ(got.id, t.id);
    CHECK_EQ(metastore_get_topic(m, "grow", &got), 0);
    CHECK_EQ(got.partitions, 6);
    int64_t ls, hw;
    CHECK_EQ(metastore_partition_offsets(m, t.id, 5, &ls, &hw), 0);
    CHECK_EQ(hw, 0);
    CHECK_EQ(metastore_partition_offsets(m, t.id, 6, &ls, &hw), KERR_UNKNOWN_TOPIC_OR_PARTITION);
    struct commit_chunk c = chunk(t.id, 5, 4, 0, 1000);
    CHECK_EQ(metastore_commit_object(m, "grown-object", 100, &c, 1), 0);
    CHECK_EQ(c.error, 0);
    CHECK_EQ(c.base_offset, 0);
    /* not growing */
    CHECK_EQ(metastore_create_partitions(m, "grow", 6, &got), KERR_INVALID_PARTITIONS);
    CHECK_EQ(got.partitions, 6);
    CHECK_EQ(metastore_create_partitions(m, "grow", 2, NULL), KERR_INVALID_PARTITIONS);
    CHECK_EQ(metastore_create_partitions(m, "nope", 9, NULL), KERR_UNKNOWN_TOPIC_OR_PARTITION);

    /* configs: the edit sees what is stored, its result replaces it, the epoch moves */
    struct edit_arg e = {.retention = "1000"};
    CHECK_EQ(metastore_update_topic_configs(m, "grow", edit_retention, &e, &got), 0);
    CHECK(e.calls >= 1);
    CHECK_EQ(e.seen, 1);
    CHECK_EQ(got.config_epoch, 1);
    struct topic_config *cs = NULL;
    int n = 0;
    CHECK_EQ(metastore_topic_configs(m, t.id, &cs, &n), 0);
    CHECK_EQ(n, 2);
    if (n == 2) {
        CHECK(strcmp(cs[0].key, "cleanup.policy") == 0 && strcmp(cs[0].value, "compact") == 0);
        CHECK(strcmp(cs[1].key, "retention.ms") == 0 && strcmp(cs[1].value, "1000") == 0);
    }
    free(cs);
    struct topic_info *list;
    CHECK_EQ(metastore_list_topics(m, &list, &n), 0);
    CHECK(n == 1 && list[0].config_epoch == 1 && list[0].partitions == 6);
    free(list);
    /* an edit's error: nothing changes */
    e = (struct edit_arg){.retention = "5", .fail = KERR_INVALID_CONFIG};
    CHECK_EQ(metastore_update_topic_configs(m, "grow", edit_retention, &e, &got), KERR_INVALID_CONFIG);
    CHECK_EQ(metastore_get_topic(m, "grow", &got), 0);
    CHECK_EQ(got.config_epoch, 1);
    CHECK_EQ(metastore_topic_configs(m, t.id, &cs, &n), 0);
    CHECK_EQ(n, 2);
    free(cs);
    e = (struct edit_arg){.retention = "5"};
    CHECK_EQ(metastore_update_topic_configs(m, "nope", edit_retention, &e, NULL), KERR_UNKNOWN_TOPIC_OR_PARTITION);
    CHECK_EQ(e.calls, 0);
    metastore_close(m);
}

void metastore_contract_topics(const char *url, int *failed_)
{
    struct metastore *m = open_url(url);
    CHECK(m != NULL);
    if (!m)
        return;
    struct topic_config cfg[2];
    memset(cfg, 0, sizeof(cfg));
    strcpy(cfg[0].key, "retention.ms");
    strcpy(cfg[0].value, "86400000");
    strcpy(cfg[1].key, "cleanup.policy");
    strcpy(cfg[1].value, "it's \"quoted\" \\ and ünïcode");

    struct topic_info t1, t2, got;
    CHECK_EQ(metastore_create_topic(m, "orders", 3, cfg, 2, &t1), 0);
    CHECK(t1.id > 0);
    CHECK(strcmp(t1.name, "orders") == 0);
    CHECK_EQ(t1.partitions, 3);
    CHECK(t1.created_ms > 1600000000000);
    CHECK_EQ(t1.uuid[6] >> 4, 4); /* random UUID, version 4 */
    CHECK_EQ(metastore_create_topic(m, "orders", 5, NULL, 0, &t2), KERR_TOPIC_ALREADY_EXISTS);
    CHECK_EQ(metastore_create_topic(m, "bad", 0, NULL, 0, &t2), KERR_INVALID_PARTITIONS);
    CHECK_EQ(metastore_create_topic(m, "", 1, NULL, 0, &t2), KERR_INVALID_TOPIC_EXCEPTION);
    CHECK_EQ(metastore_create_topic(m, "zebra", 1, NULL, 0, &t2), 0);
    CHECK_EQ(metastore_create_topic(m, "Apple", 2, NULL, 0, NULL), 0);
    CHECK(t2.id != t1.id);
    CHECK(memcmp(t2.uuid, t1.uuid, 16) != 0);

    CHECK_EQ(metastore_get_topic(m, "orders", &got), 0);
    CHECK_EQ(got.id, t1.id);
    CHECK_MEM(got.uuid, t1.uuid, 16);
    CHECK_EQ(got.partitions, 3);
    CHECK_EQ(got.created_ms, t1.created_ms);
    CHECK_EQ(metastore_get_topic(m, "nope", &got), KERR_UNKNOWN_TOPIC_OR_PARTITION);

    struct topic_info *list;
    int n;
    CHECK_EQ(metastore_list_topics(m, &list, &n), 0);
    CHECK_EQ(n, 3);
    if (n == 3) { /* byte order, as SQLite: upper case first */
        CHECK(strcmp(list[0].name, "Apple") == 0);
        CHECK(strcmp(list[1].name, "orders") == 0);
        CHECK(strcmp(list[2].name, "zebra") == 0);
        CHECK_MEM(list[1].uuid, t1.uuid, 16);
    }
    free(list);

    struct topic_config *cs;
    CHECK_EQ(metastore_topic_configs(m, t1.id, &cs, &n), 0);
    CHECK_EQ(n, 2);
    if (n == 2) { /* sorted by key */
        CHECK(strcmp(cs[0].key, "cleanup.policy") == 0);
        CHECK(strcmp(cs[0].value, cfg[1].value) == 0);
        CHECK(strcmp(cs[1].key, "retention.ms") == 0);
        CHECK(strcmp(cs[1].value, "86400000") == 0);
    }
    free(cs);
    CHECK_EQ(metastore_topic_configs(m, t2.id, &cs, &n), 0);
    CHECK_EQ(n, 0);
    free(cs);

    int64_t ls, hw;
    CHECK_EQ(metastore_partition_offsets(m, t1.id, 2, &ls, &hw), 0);
    CHECK_EQ(ls, 0);
    CHECK_EQ(hw, 0);
    CHECK_EQ(metastore_partition_offsets(m, t1.id, 3, &ls, &hw), KERR_UNKNOWN_TOPIC_OR_PARTITION);

    /* Delete, then re-create under the same name: a new topic. */
    CHECK_EQ(metastore_delete_topic(m, "orders"), 0);
    CHECK_EQ(metastore_delete_topic(m, "orders"), KERR_UNKNOWN_TOPIC_OR_PARTITION);
    CHECK_EQ(metastore_get_topic(m, "orders", &got), KERR_UNKNOWN_TOPIC_OR_PARTITION);
    CHECK_EQ(metastore_partition_offsets(m, t1.id, 0, &ls, &hw), KERR_UNKNOWN_TOPIC_OR_PARTITION);
    CHECK_EQ(metastore_list_topics(m, &list, &n), 0);
    CHECK_EQ(n, 2);
    free(list);
    struct topic_info t3;
    CHECK_EQ(metastore_create_topic(m, "orders", 1, NULL, 0, &t3), 0);
    CHECK(t3.id != t1.id);
    CHECK(memcmp(t3.uuid, t1.uuid, 16) != 0);
    CHECK_EQ(t3.partitions, 1);
    CHECK_EQ(metastore_topic_configs(m, t3.id, &cs, &n), 0);
    CHECK_EQ(n, 0); /* the old topic's configs do not come back */
    free(cs);
    metastore_close(m);
}

void metastore_contract_commits(const char *url, int *failed_)
{
    struct metastore *m = open_url(url);
    CHECK(m != NULL);
    if (!m)
        return;
    struct topic_info t, gone;
    CHECK_EQ(metastore_create_topic(m, "events", 2, NULL, 0, &t), 0);
    CHECK_EQ(metastore_create_topic(m, "gone", 1, NULL, 0, &gone), 0);

    /* Several chunks of one partition in one commit get consecutive ranges, in array order. */
    struct commit_chunk c1[3] = {chunk(t.id, 0, 5, 8, 100), chunk(t.id, 1, 3, 108, 300), chunk(t.id, 0, 2, 208, 200)};
    CHECK_EQ(metastore_commit_object(m, "obj/1", 1000, c1, 3), 0);
    CHECK_EQ(c1[0].error, 0);
    CHECK_EQ(c1[0].base_offset, 0);
    CHECK_EQ(c1[1].base_offset, 0);
    CHECK_EQ(c1[2].base_offset, 5);

    CHECK_EQ(metastore_delete_topic(m, "gone"), 0);
    struct commit_chunk c2[5] = {chunk(t.id, 0, 4, 8, 150), chunk(gone.id, 0, 9, 108, 1), chunk(t.id, 9, 1, 208, 1),
                                 chunk(t.id, 1, 1, 308, 300), chunk(t.id, 1, 0, 408, 1)};
    CHECK_EQ(metastore_commit_object(m, "obj/2", 2000, c2, 5), 0);
    CHECK_EQ(c2[0].error, 0);
    CHECK_EQ(c2[0].base_offset, 7);
    CHECK_EQ(c2[1].error, KERR_UNKNOWN_TOPIC_OR_PARTITION); /* deleted topic */
    CHECK_EQ(c2[1].base_offset, -1);
    CHECK_EQ(c2[2].error, KERR_UNKNOWN_TOPIC_OR_PARTITION); /* no such partition */
    CHECK_EQ(c2[2].base_offset, -1);
    CHECK_EQ(c2[3].error, 0);
    CHECK_EQ(c2[3].base_offset, 3);
    CHECK_EQ(c2[4].error, KERR_INVALID_RECORD); /* a chunk without offsets */

    int64_t ls, hw;
    CHECK_EQ(metastore_partition_offsets(m, t.id, 0, &ls, &hw), 0);
    CHECK_EQ(hw, 11);
    CHECK_EQ(metastore_partition_offsets(m, t.id, 1, &ls, &hw), 0);
    CHECK_EQ(hw, 4);
    CHECK_EQ(metastore_partition_offsets(m, gone.id, 0, &ls, &hw), KERR_UNKNOWN_TOPIC_OR_PARTITION);

    /* The same object key twice: the whole commit fails and assigns nothing. */
    struct commit_chunk c3[1] = {chunk(t.id, 0, 1, 8, 1)};
    CHECK_EQ(metastore_commit_object(m, "obj/2", 10, c3, 1), -1);
    CHECK_EQ(c3[0].error, KERR_KAFKA_STORAGE_ERROR);
    CHECK_EQ(c3[0].base_offset, -1);
    CHECK_EQ(metastore_partition_offsets(m, t.id, 0, &ls, &hw), 0);
    CHECK_EQ(hw, 11);

    /* find_chunks: chunks whose last offset >= from, by offset. */
    struct chunk_ref r[8];
    int n = metastore_find_chunks(m, t.id, 0, 0, r, 8);
    CHECK_EQ(n, 3);
    if (n == 3) {
        CHECK(strcmp(r[0].object_key, "obj/1") == 0);
        CHECK_EQ(r[0].base_offset, 0);
        CHECK_EQ(r[0].last_offset, 4);
        CHECK_EQ(r[0].pos, 8);
        CHECK_EQ(r[0].len, 100);
        CHECK_EQ(r[0].batch_count, 1);
        CHECK_EQ(r[0].max_timestamp, 100);
        CHECK(strcmp(r[1].object_key, "obj/1") == 0);
        CHECK_EQ(r[1].base_offset, 5);
        CHECK_EQ(r[1].last_offset, 6);
        CHECK_EQ(r[1].pos, 208);
        CHECK(strcmp(r[2].object_key, "obj/2") == 0);
        CHECK_EQ(r[2].base_offset, 7);
        CHECK_EQ(r[2].last_offset, 10);
    }
    n = metastore_find_chunks(m, t.id, 0, 6, r, 8);
    CHECK_EQ(n, 2);
    CHECK_EQ(r[0].base_offset, 5); /* the chunk holding offset 6 */
    CHECK_EQ(metastore_find_chunks(m, t.id, 0, 5, r, 1), 1);
    CHECK_EQ(r[0].base_offset, 5);
    CHECK_EQ(metastore_find_chunks(m, t.id, 0, 11, r, 8), 0);
    CHECK_EQ(metastore_find_chunks(m, t.id, 1, 0, r, 8), 2);
    CHECK_EQ(metastore_find_chunks(m, gone.id, 0, 0, r, 8), 0);
    CHECK_EQ(metastore_find_chunks(m, t.id, 0, 0, r, 0), 0);

    /* By time: max_timestamp >= ts, by offset. Partition 0 has maxima 100, 200, 150. */
    n = metastore_find_chunks_by_time(m, t.id, 0, 120, r, 8);
    CHECK_EQ(n, 2);
    CHECK_EQ(r[0].base_offset, 5);
    CHECK_EQ(r[1].base_offset, 7);
    CHECK_EQ(metastore_find_chunks_by_time(m, t.id, 0, 0, r, 8), 3);
    CHECK_EQ(metastore_find_chunks_by_time(m, t.id, 0, 201, r, 8), 0);
    CHECK_EQ(metastore_find_chunks_by_time(m, t.id, 0, 150, r, 1), 1);
    CHECK_EQ(r[0].base_offset, 5);

    struct chunk_ref mx;
    CHECK_EQ(metastore_max_timestamp(m, t.id, 0, &mx), 0);
    CHECK_EQ(mx.max_timestamp, 200);
    CHECK_EQ(mx.base_offset, 5);
    CHECK_EQ(metastore_max_timestamp(m, t.id, 1, &mx), 0);
    CHECK_EQ(mx.max_timestamp, 300);
    CHECK_EQ(mx.base_offset, 0); /* two chunks share the largest timestamp: the first one */
    struct topic_info empty;
    CHECK_EQ(metastore_create_topic(m, "empty", 1, NULL, 0, &empty), 0);
    CHECK_EQ(metastore_max_timestamp(m, empty.id, 0, &mx), 1);

    /* Deleting the topic makes its chunks unreachable, also by a stale id. */
    CHECK_EQ(metastore_delete_topic(m, "events"), 0);
    CHECK_EQ(metastore_find_chunks(m, t.id, 0, 0, r, 8), 0);
    CHECK_EQ(metastore_max_timestamp(m, t.id, 0, &mx), 1);
    metastore_close(m);

    /* Persistence across close/open, and offsets continue where they were. */
    m = open_url(url);
    CHECK(m != NULL);
    if (m) {
        struct topic_info got;
        CHECK_EQ(metastore_get_topic(m, "empty", &got), 0);
        CHECK_EQ(got.id, empty.id);
        CHECK_MEM(got.uuid, empty.uuid, 16);
        CHECK_EQ(metastore_get_topic(m, "events", &got), KERR_UNKNOWN_TOPIC_OR_PARTITION);
        struct commit_chunk c4[2] = {chunk(empty.id, 0, 3, 8, 1), chunk(empty.id, 0, 2, 108, 1)};
        CHECK_EQ(metastore_commit_object(m, "obj/3", 300, c4, 2), 0);
        CHECK_EQ(c4[1].base_offset, 3);
        metastore_close(m);
    }
}
