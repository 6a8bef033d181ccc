/* The metadata store's contract, checked the same way on every backend: test_storage.c runs it on
 * SQLite, test_metastore_pg.c on PostgreSQL (each adds only what is specific to its backend). */
#include "metastore_contract.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "protocol/errors.h"
#include "storage/metastore.h"
#include "storage/producer_state.h"
#include "test_util.h"

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
    struct metastore *m = test_open_meta(url);
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
    struct metastore *m = test_open_meta(url);
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
    struct metastore *m = test_open_meta(url);
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
    m = test_open_meta(url);
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

void metastore_contract_groups(const char *url, int *failed_)
{
    char err[256] = "";
    struct metastore *m = metastore_open(url, err, sizeof(err));
    CHECK(m != NULL);
    if (!m)
        return;
    uint8_t *data;
    size_t len;
    int64_t version;
    CHECK_EQ(metastore_group_load(m, "g1", &data, &len, &version), 1);
    CHECK_EQ(version, 0);
    CHECK_EQ(metastore_group_store(m, "g1", 0, 1, "consumer", (const uint8_t *)"\0abc", 4, true), 0);
    CHECK_EQ(metastore_group_store(m, "g1", 0, 1, "consumer", (const uint8_t *)"lost", 4, true), 1); /* exists */
    CHECK_EQ(metastore_group_load(m, "g1", &data, &len, &version), 0);
    CHECK(version == 1 && len == 4 && memcmp(data, "\0abc", 4) == 0);
    free(data);
    CHECK_EQ(metastore_group_store(m, "g1", 1, 3, "consumer", (const uint8_t *)"v2", 2, false), 0);
    CHECK_EQ(metastore_group_store(m, "g1", 1, 3, "consumer", (const uint8_t *)"stale", 5, true), 1); /* lost the race */
    CHECK_EQ(metastore_group_load(m, "g1", &data, &len, &version), 0);
    CHECK(version == 2 && len == 2 && memcmp(data, "v2", 2) == 0);
    free(data);
    CHECK_EQ(metastore_group_store(m, "g0", 0, 0, "", (const uint8_t *)"e", 1, true), 0);
    struct group_summary *gs = NULL;
    int n;
    CHECK_EQ(metastore_groups_list(m, &gs, &n), 0);
    CHECK(n == 2 && strcmp(gs[0].group_id, "g0") == 0 && strcmp(gs[1].group_id, "g1") == 0 && gs[1].phase == 3 &&
          strcmp(gs[1].protocol_type, "consumer") == 0);
    free(gs);

    struct group_offset o[2];
    memset(o, 0, sizeof(o));
    o[0].topic = "t";
    o[0].partition = 1;
    o[0].offset = 42;
    o[0].leader_epoch = 3;
    o[0].metadata = "meta";
    o[1].topic = "t";
    o[1].partition = 0;
    o[1].offset = 7;
    o[1].leader_epoch = -1;
    o[1].metadata = NULL;
    CHECK_EQ(metastore_offsets_commit(m, "g1", o, 2), 0);
    o[0].offset = 43;
    CHECK_EQ(metastore_offsets_commit(m, "g1", o, 1), 0);
    CHECK_EQ(metastore_offsets_commit(m, "g0", o, 1), 0);
    struct group_offset *got = NULL;
    CHECK_EQ(metastore_offsets_fetch(m, "g1", &got, &n), 0);
    CHECK_EQ(n, 2);
    if (n == 2) {
        CHECK(got[0].partition == 0 && got[0].offset == 7 && got[0].metadata == NULL &&
              strcmp(got[0].topic, "t") == 0);
        CHECK(got[1].partition == 1 && got[1].offset == 43 && got[1].leader_epoch == 3 && got[1].metadata &&
              strcmp(got[1].metadata, "meta") == 0);
    }
    free(got);
    /* Expiry: g0 is empty (phase 0), g1 is not: only g0's offsets go. */
    CHECK_EQ(metastore_offsets_expire(m, -60000), 0);
    CHECK_EQ(metastore_offsets_fetch(m, "g0", &got, &n), 0);
    CHECK_EQ(n, 0);
    free(got);
    CHECK_EQ(metastore_offsets_fetch(m, "g1", &got, &n), 0);
    CHECK_EQ(n, 2);
    free(got);

    /* A group that only committed offsets is listed, Empty. */
    CHECK_EQ(metastore_offsets_commit(m, "g2", o, 2), 0);
    gs = NULL;
    CHECK_EQ(metastore_groups_list(m, &gs, &n), 0);
    CHECK(n == 3 && strcmp(gs[2].group_id, "g2") == 0 && gs[2].phase == 0);
    free(gs);
    /* OffsetDelete and DeleteGroups */
    CHECK_EQ(metastore_offsets_delete(m, "g2", o, 1), 0);
    got = NULL;
    CHECK_EQ(metastore_offsets_fetch(m, "g2", &got, &n), 0);
    CHECK(n == 1 && got[0].partition == 0);
    free(got);
    CHECK_EQ(metastore_group_delete(m, "g1", 1), 1); /* it is at version 2 now */
    CHECK_EQ(metastore_group_delete(m, "g1", 2), 0);
    CHECK_EQ(metastore_group_load(m, "g1", &data, &len, &version), 1);
    got = NULL;
    CHECK_EQ(metastore_offsets_fetch(m, "g1", &got, &n), 0);
    CHECK_EQ(n, 0);
    free(got);
    CHECK_EQ(metastore_group_delete(m, "g2", 0), 0); /* offsets only */
    CHECK_EQ(metastore_group_delete(m, "g2", 0), KERR_GROUP_ID_NOT_FOUND);
    CHECK_EQ(metastore_group_delete(m, "g0", 0), 1); /* has state: must name its version */
    metastore_close(m);
}

/* One idempotent batch of count offsets (sequences base .. base + count - 1, wrapping). */
static struct commit_chunk idem(int64_t topic_id, int32_t partition, int64_t pid, int16_t epoch, int32_t base,
                                int32_t count)
{
    struct commit_chunk c = chunk(topic_id, partition, count, 8, 100);
    c.idempotent = true;
    c.producer_id = pid;
    c.producer_epoch = epoch;
    c.base_sequence = base;
    c.last_sequence = producer_seq_add(base, count - 1);
    return c;
}

/* Commits the chunks in one object named obj/p<k> (k counts up). */
static int commit_n(struct metastore *m, int *k, struct commit_chunk *c, int n)
{
    char key[32];
    snprintf(key, sizeof(key), "obj/p%d", (*k)++);
    return metastore_commit_object(m, key, 1000, c, n);
}

static int64_t hwm(struct metastore *m, int64_t topic_id, int32_t partition)
{
    int64_t ls, hw;
    return metastore_partition_offsets(m, topic_id, partition, &ls, &hw) == 0 ? hw : -1;
}

void metastore_contract_producers(const char *url, int *failed_)
{
    struct metastore *m = test_open_meta(url);
    CHECK(m != NULL);
    if (!m)
        return;
    struct topic_info t;
    CHECK_EQ(metastore_create_topic(m, "idem", 2, NULL, 0, &t), 0);

    /* InitProducerId: new ids, epoch 0; a re-init bumps the epoch; an older epoch is fenced. */
    int64_t pid, pid2, got;
    int16_t epoch;
    CHECK_EQ(metastore_init_producer(m, -1, -1, &pid, &epoch), 0);
    CHECK(pid >= 0);
    CHECK_EQ(epoch, 0);
    CHECK_EQ(metastore_init_producer(m, -1, -1, &pid2, &epoch), 0);
    CHECK(pid2 != pid);
    CHECK_EQ(epoch, 0);

    /* Seven batches of 10, one commit each. */
    int k = 0;
    for (int b = 0; b < 7; b++) {
        struct commit_chunk c = idem(t.id, 0, pid, 0, b * 10, 10);
        CHECK_EQ(commit_n(m, &k, &c, 1), 0);
        CHECK_EQ(c.error, 0);
        CHECK(!c.duplicate);
        CHECK_EQ(c.base_offset, b * 10);
    }
    /* A retry of each of the last 5 gets its original offset and stores nothing; a plain chunk and
     * the next batch in the same commit take offsets as usual. */
    struct commit_chunk r[7];
    for (int b = 2; b < 7; b++)
        r[b - 2] = idem(t.id, 0, pid, 0, b * 10, 10);
    r[5] = chunk(t.id, 0, 3, 8, 100);
    r[6] = idem(t.id, 0, pid, 0, 70, 10);
    CHECK_EQ(commit_n(m, &k, r, 7), 0);
    for (int b = 2; b < 7; b++) {
        CHECK_EQ(r[b - 2].error, 0);
        CHECK(r[b - 2].duplicate);
        CHECK_EQ(r[b - 2].base_offset, b * 10);
    }
    CHECK(!r[5].duplicate);
    CHECK_EQ(r[5].base_offset, 70);
    CHECK_EQ(r[6].error, 0);
    CHECK(!r[6].duplicate);
    CHECK_EQ(r[6].base_offset, 73);
    CHECK_EQ(hwm(m, t.id, 0), 83);
    struct chunk_ref refs[16];
    CHECK_EQ(metastore_find_chunks(m, t.id, 0, 0, refs, 16), 9); /* no chunk row for a duplicate */

    /* Out of the window (now 30..79), a gap, a batch overlapping the last one: 45. */
    struct commit_chunk bad[3] = {idem(t.id, 0, pid, 0, 10, 10), idem(t.id, 0, pid, 0, 90, 10),
                                  idem(t.id, 0, pid, 0, 75, 10)};
    CHECK_EQ(commit_n(m, &k, bad, 3), 0);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(bad[i].error, KERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
        CHECK_EQ(bad[i].base_offset, -1);
        CHECK(!bad[i].duplicate);
    }
    CHECK_EQ(hwm(m, t.id, 0), 83);

    /* Two batches of one commit, the second a retry of the first (pipelined requests). */
    struct commit_chunk two[2] = {idem(t.id, 0, pid, 0, 80, 5), idem(t.id, 0, pid, 0, 80, 5)};
    CHECK_EQ(commit_n(m, &k, two, 2), 0);
    CHECK_EQ(two[0].base_offset, 83);
    CHECK(two[1].duplicate);
    CHECK_EQ(two[1].base_offset, 83);
    CHECK_EQ(hwm(m, t.id, 0), 88);

    /* Re-init: epoch 1. A new epoch starts at sequence 0; then the old epoch is refused (47). */
    CHECK_EQ(metastore_init_producer(m, pid, 0, &got, &epoch), 0);
    CHECK_EQ(got, pid);
    CHECK_EQ(epoch, 1);
    CHECK_EQ(metastore_init_producer(m, pid, 0, &got, &epoch), 0); /* a retry of that bump */
    CHECK_EQ(got, pid);
    CHECK_EQ(epoch, 1);
    struct commit_chunk e1[3] = {idem(t.id, 0, pid, 1, 5, 1), idem(t.id, 0, pid, 1, 0, 2),
                                 idem(t.id, 0, pid, 0, 85, 1)};
    CHECK_EQ(commit_n(m, &k, e1, 3), 0);
    CHECK_EQ(e1[0].error, KERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
    CHECK_EQ(e1[1].error, 0);
    CHECK_EQ(e1[1].base_offset, 88);
    CHECK_EQ(e1[2].error, KERR_INVALID_PRODUCER_EPOCH);
    CHECK_EQ(hwm(m, t.id, 0), 90);

    /* A producer this partition has no state of may start at any sequence (Kafka 3.x); sequences
     * wrap from INT32_MAX to 0. */
    struct commit_chunk w = idem(t.id, 1, pid2, 0, INT32_MAX - 4, 10);
    CHECK_EQ(commit_n(m, &k, &w, 1), 0);
    CHECK_EQ(w.error, 0);
    CHECK_EQ(w.base_offset, 0);
    CHECK_EQ(w.last_sequence, 4);
    struct commit_chunk w2[2] = {idem(t.id, 1, pid2, 0, INT32_MAX - 4, 10), idem(t.id, 1, pid2, 0, 5, 1)};
    CHECK_EQ(commit_n(m, &k, w2, 2), 0);
    CHECK(w2[0].duplicate);
    CHECK_EQ(w2[0].base_offset, 0);
    CHECK_EQ(w2[1].error, 0);
    CHECK_EQ(w2[1].base_offset, 10);
    metastore_close(m);

    /* The state is in the store: a new handle (a restart, another agent) sees it. */
    m = test_open_meta(url);
    CHECK(m != NULL);
    if (!m)
        return;
    struct commit_chunk after[4] = {idem(t.id, 0, pid, 1, 0, 2), idem(t.id, 0, pid, 1, 3, 1),
                                    idem(t.id, 0, pid, 0, 90, 1), idem(t.id, 0, pid, 1, 2, 1)};
    CHECK_EQ(commit_n(m, &k, after, 4), 0);
    CHECK(after[0].duplicate);
    CHECK_EQ(after[0].base_offset, 88);
    CHECK_EQ(after[1].error, KERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
    CHECK_EQ(after[2].error, KERR_INVALID_PRODUCER_EPOCH);
    CHECK_EQ(after[3].error, 0);
    CHECK_EQ(after[3].base_offset, 90);
    /* What DescribeProducers shows: each producer's epoch, last sequence and last timestamp. */
    struct producer_info *pi;
    int npi;
    CHECK_EQ(metastore_list_producers(m, t.id, 0, &pi, &npi), 0);
    CHECK_EQ(npi, 1);
    if (npi == 1) {
        CHECK_EQ(pi[0].producer_id, pid);
        CHECK_EQ(pi[0].epoch, 1);
        CHECK_EQ(pi[0].last_sequence, 2);
        CHECK_EQ(pi[0].last_timestamp, 100);
    }
    free(pi);
    CHECK_EQ(metastore_list_producers(m, t.id, 1, &pi, &npi), 0);
    CHECK_EQ(npi, 1);
    if (npi == 1) {
        CHECK_EQ(pi[0].producer_id, pid2);
        CHECK_EQ(pi[0].last_sequence, 5);
    }
    free(pi);
    CHECK_EQ(metastore_list_producers(m, t.id + 1000, 0, &pi, &npi), 0);
    CHECK_EQ(npi, 0);
    free(pi);
    CHECK_EQ(metastore_init_producer(m, pid, 1, &got, &epoch), 0);
    CHECK_EQ(epoch, 2);
    CHECK_EQ(metastore_init_producer(m, pid, 0, &got, &epoch), KERR_PRODUCER_FENCED);
    CHECK_EQ(metastore_init_producer(m, pid, 3, &got, &epoch), KERR_PRODUCER_FENCED); /* never given out */
    /* Several producers interleaved over two partitions in one commit. */
    int64_t pa, pb, pc;
    CHECK_EQ(metastore_init_producer(m, -1, -1, &pa, &epoch), 0);
    CHECK_EQ(metastore_init_producer(m, -1, -1, &pb, &epoch), 0);
    CHECK_EQ(metastore_init_producer(m, -1, -1, &pc, &epoch), 0);
    struct commit_chunk mix[7] = {idem(t.id, 1, pb, 0, 0, 2), idem(t.id, 0, pa, 0, 0, 1), idem(t.id, 0, pc, 0, 0, 1),
                                  idem(t.id, 0, pa, 0, 1, 1), idem(t.id, 1, pb, 0, 2, 1), idem(t.id, 0, pa, 0, 1, 1),
                                  idem(t.id, 0, pc, 0, 5, 1)};
    CHECK_EQ(commit_n(m, &k, mix, 7), 0);
    const int64_t want[7] = {11, 91, 92, 93, 13, 93, -1};
    for (int i = 0; i < 7; i++)
        CHECK_EQ(mix[i].base_offset, want[i]);
    CHECK(mix[5].duplicate);
    CHECK_EQ(mix[6].error, KERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
    CHECK_EQ(hwm(m, t.id, 0), 94);
    CHECK_EQ(hwm(m, t.id, 1), 14);
    /* An id the store never gave out gets a new one. */
    CHECK_EQ(metastore_init_producer(m, 999999, 3, &got, &epoch), 0);
    CHECK(got != 999999 && got != pid && got != pid2);
    CHECK_EQ(epoch, 0);
    metastore_close(m);
}

static struct acl_entry contract_acl(int8_t rt, const char *name, int8_t pat, const char *principal, int8_t op,
                                     int8_t perm)
{
    struct acl_entry e = {.resource_type = rt, .pattern_type = pat, .operation = op, .permission = perm};
    snprintf(e.resource_name, sizeof(e.resource_name), "%s", name);
    snprintf(e.principal, sizeof(e.principal), "%s", principal);
    snprintf(e.host, sizeof(e.host), "*");
    return e;
}

void metastore_contract_acls(const char *url, int *failed_)
{
    char err[256] = "";
    struct metastore *m = metastore_open(url, err, sizeof(err));
    CHECK(m != NULL);
    if (!m)
        return;
    struct acl_entry a = contract_acl(2, "ok-", 4, "User:ANONYMOUS", 4, 3);
    struct acl_entry b = contract_acl(3, "g\xc3\xa9", 3, "User:*", 2, 2);
    CHECK_EQ(metastore_acl_add(m, &a), 0);
    CHECK_EQ(metastore_acl_add(m, &b), 0);
    CHECK_EQ(metastore_acl_add(m, &a), 0); /* stored once */
    struct acl_entry *v = NULL;
    int n = 0;
    CHECK_EQ(metastore_acl_list(m, &v, &n), 0);
    CHECK_EQ(n, 2);
    if (n == 2) {
        CHECK(v[0].resource_type == 2 && v[0].pattern_type == 4 && v[0].operation == 4 && v[0].permission == 3);
        CHECK(!strcmp(v[0].resource_name, "ok-") && !strcmp(v[0].principal, "User:ANONYMOUS") &&
              !strcmp(v[0].host, "*"));
        CHECK(v[1].resource_type == 3 && !strcmp(v[1].resource_name, "g\xc3\xa9") && v[1].permission == 2);
        CHECK(v[0].id != v[1].id);
        CHECK_EQ(metastore_acl_delete(m, v[0].id), 0);
        CHECK_EQ(metastore_acl_delete(m, v[0].id), 0); /* gone already */
    }
    free(v);
    metastore_close(m);
    m = metastore_open(url, err, sizeof(err));
    CHECK(m != NULL);
    if (!m)
        return;
    CHECK_EQ(metastore_acl_list(m, &v, &n), 0);
    CHECK(n == 1 && !strcmp(v[0].principal, "User:*"));
    free(v);
    metastore_close(m);
}

static struct sasl_credential cred(const char *user, const char *mech, int iterations)
{
    struct sasl_credential c = {0};
    snprintf(c.user, sizeof(c.user), "%s", user);
    snprintf(c.mechanism, sizeof(c.mechanism), "%s", mech);
    snprintf(c.salt, sizeof(c.salt), "00ff");
    c.iterations = iterations;
    snprintf(c.stored_key, sizeof(c.stored_key), "ab%d", iterations);
    snprintf(c.server_key, sizeof(c.server_key), "cd");
    return c;
}

void metastore_contract_credentials(const char *url, int *failed_)
{
    char err[256] = "";
    struct metastore *m = metastore_open(url, err, sizeof(err));
    CHECK(m != NULL);
    if (!m)
        return;
    struct sasl_credential a = cred("bob", "SCRAM-SHA-256", 4096), b = cred("bob", "PLAIN", 5000),
                           c = cred("alice", "SCRAM-SHA-512", 8192);
    CHECK_EQ(metastore_cred_put(m, &a), 0);
    CHECK_EQ(metastore_cred_put(m, &b), 0);
    CHECK_EQ(metastore_cred_put(m, &c), 0);
    a.iterations = 9999; /* replaces */
    CHECK_EQ(metastore_cred_put(m, &a), 0);
    struct sasl_credential *v = NULL;
    int n = 0;
    CHECK_EQ(metastore_cred_list(m, NULL, NULL, &v, &n), 0);
    CHECK_EQ(n, 3);
    if (n == 3) {
        CHECK(!strcmp(v[0].user, "alice") && !strcmp(v[1].mechanism, "PLAIN") && v[2].iterations == 9999);
        CHECK(!strcmp(v[2].stored_key, "ab4096") && !strcmp(v[2].salt, "00ff") && !strcmp(v[2].server_key, "cd"));
    }
    free(v);
    CHECK_EQ(metastore_cred_list(m, "bob", "PLAIN", &v, &n), 0);
    CHECK(n == 1 && v[0].iterations == 5000);
    free(v);
    CHECK_EQ(metastore_cred_list(m, "nobody", NULL, &v, &n), 0);
    CHECK_EQ(n, 0);
    free(v);
    CHECK_EQ(metastore_cred_delete(m, "bob", "PLAIN"), 1);
    CHECK_EQ(metastore_cred_delete(m, "bob", "PLAIN"), 0);
    CHECK_EQ(metastore_cred_put(m, &b), 0);
    CHECK_EQ(metastore_cred_delete(m, "bob", NULL), 2);
    CHECK_EQ(metastore_cred_list(m, NULL, NULL, &v, &n), 0);
    CHECK(n == 1 && !strcmp(v[0].user, "alice"));
    free(v);
    metastore_close(m);
}

void metastore_contract_lifecycle(const char *url, int *failed_)
{
    char err[256] = "";
    struct metastore *m = metastore_open(url, err, sizeof(err));
    CHECK(m != NULL);
    if (!m)
        return;
    /* Leases: one holder at a time; the holder renews; a release or an expiry frees it. */
    CHECK_EQ(metastore_lease_acquire(m, "retention", "agent-a", 60000), 0);
    CHECK_EQ(metastore_lease_acquire(m, "retention", "agent-b", 60000), 1);
    CHECK_EQ(metastore_lease_acquire(m, "other-kind", "agent-b", 60000), 0); /* kinds are independent */
    CHECK_EQ(metastore_lease_acquire(m, "retention", "agent-a", 60000), 0);  /* renewal */
    CHECK_EQ(metastore_lease_release(m, "retention", "agent-b"), 0);          /* not its lease: no effect */
    CHECK_EQ(metastore_lease_acquire(m, "retention", "agent-b", 60000), 1);
    CHECK_EQ(metastore_lease_release(m, "retention", "agent-a"), 0);
    CHECK_EQ(metastore_lease_acquire(m, "retention", "agent-b", 1), 0);
    struct timespec ts = {0, 50 * 1000000L};
    nanosleep(&ts, NULL); /* agent-b "crashed": its 1 ms lease expired */
    CHECK_EQ(metastore_lease_acquire(m, "retention", "agent-a", 60000), 0);
    CHECK_EQ(metastore_lease_acquire(m, "retention", "agent-b", 60000), 1);

    /* Retention and trimming: three chunks of 10 offsets, 100 bytes, max timestamps 1000/2000/3000. */
    struct topic_info t;
    CHECK_EQ(metastore_create_topic(m, "aging", 1, NULL, 0, &t), 0);
    const char *keys[3] = {"objects/0000000000001-a.obj", "objects/0000000000002-a.obj", "objects/0000000000003-a.obj"};
    for (int i = 0; i < 3; i++) {
        struct commit_chunk c = chunk(t.id, 0, 10, 0, 1000 * (i + 1));
        CHECK_EQ(metastore_commit_object(m, keys[i], 100, &c, 1), 0);
    }
    int64_t off = -7, start = -7, hwm = -7;
    CHECK_EQ(metastore_retention_offset(m, t.id, 0, 1500, -1, &off), 0);
    CHECK_EQ(off, 10);
    CHECK_EQ(metastore_retention_offset(m, t.id, 0, INT64_MIN, -1, &off), 0);
    CHECK_EQ(off, 0);
    CHECK_EQ(metastore_retention_offset(m, t.id, 0, 9999, -1, &off), 0);
    CHECK_EQ(off, 30); /* everything expired: up to the high watermark */
    CHECK_EQ(metastore_retention_offset(m, t.id, 0, INT64_MIN, 150, &off), 0);
    CHECK_EQ(off, 10); /* what stays is at least retention.bytes, as in Kafka */
    CHECK_EQ(metastore_retention_offset(m, t.id, 0, INT64_MIN, 100, &off), 0);
    CHECK_EQ(off, 20);
    CHECK_EQ(metastore_retention_offset(m, t.id, 0, 2500, 250, &off), 0);
    CHECK_EQ(off, 20); /* the stricter of the two */
    CHECK_EQ(metastore_retention_offset(m, t.id, 7, 0, -1, &off), KERR_UNKNOWN_TOPIC_OR_PARTITION);

    int removed = -1;
    CHECK_EQ(metastore_trim_partition(m, t.id, 0, 31, &start, &removed), KERR_OFFSET_OUT_OF_RANGE);
    CHECK_EQ(metastore_trim_partition(m, t.id, 0, 15, &start, &removed), 0);
    CHECK_EQ(start, 15);
    CHECK_EQ(removed, 1); /* the chunk ending at 9; the one holding 15 stays */
    CHECK_EQ(metastore_trim_partition(m, t.id, 0, 5, &start, &removed), 0);
    CHECK_EQ(start, 15); /* never down */
    CHECK_EQ(removed, 0);
    CHECK_EQ(metastore_partition_offsets(m, t.id, 0, &start, &hwm), 0);
    CHECK(start == 15 && hwm == 30);
    struct chunk_ref refs[4];
    CHECK_EQ(metastore_find_chunks(m, t.id, 0, 0, refs, 4), 2);
    CHECK_EQ(refs[0].base_offset, 10);
    struct log_start_row *rows = NULL;
    int nrows = 0;
    CHECK_EQ(metastore_log_starts(m, &rows, &nrows), 0);
    CHECK(nrows == 1 && rows[0].topic_id == t.id && rows[0].partition == 0 && rows[0].log_start == 15);
    free(rows);

    /* Unreferenced objects: stamped when first seen, returned once the grace period passed. */
    char(*gone)[OBJECT_KEY_MAX] = NULL;
    int ngone = -1;
    CHECK_EQ(metastore_objects_unreferenced(m, 60000, 100, &gone, &ngone), 0);
    CHECK_EQ(ngone, 0);
    free(gone);
    CHECK_EQ(metastore_objects_unreferenced(m, 0, 100, &gone, &ngone), 0);
    CHECK(ngone == 1 && !strcmp(gone[0], keys[0]));
    free(gone);
    CHECK_EQ(metastore_trim_partition(m, t.id, 0, -1, &start, &removed), 0);
    CHECK(start == 30 && removed == 2);
    CHECK_EQ(metastore_object_known(m, keys[0]), 1);
    CHECK_EQ(metastore_object_forget(m, keys[0]), 0);
    CHECK_EQ(metastore_object_known(m, keys[0]), 0);
    CHECK_EQ(metastore_object_known(m, "objects/never-written"), 0);
    /* A deleted topic's objects become garbage too. */
    struct topic_info t2;
    CHECK_EQ(metastore_create_topic(m, "doomed", 1, NULL, 0, &t2), 0);
    struct commit_chunk c = chunk(t2.id, 0, 10, 0, 1000);
    CHECK_EQ(metastore_commit_object(m, "objects/0000000000004-a.obj", 100, &c, 1), 0);
    CHECK_EQ(metastore_objects_unreferenced(m, 0, 100, &gone, &ngone), 0);
    CHECK_EQ(ngone, 2); /* the trimmed topic's two other objects */
    free(gone);
    CHECK_EQ(metastore_delete_topic(m, "doomed"), 0);
    CHECK_EQ(metastore_objects_unreferenced(m, 0, 100, &gone, &ngone), 0);
    CHECK_EQ(ngone, 3);
    free(gone);
    /* An object none of whose chunks was stored (its topic went meanwhile) is garbage at once. */
    c = chunk(t2.id, 0, 10, 0, 1000);
    CHECK_EQ(metastore_commit_object(m, "objects/0000000000005-a.obj", 100, &c, 1), 0);
    CHECK_EQ(c.error, KERR_UNKNOWN_TOPIC_OR_PARTITION);
    CHECK_EQ(metastore_objects_unreferenced(m, 0, 100, &gone, &ngone), 0);
    CHECK_EQ(ngone, 4);
    free(gone);
    metastore_close(m);
}

/* Finds the unreferenced object key in a list returned by metastore_objects_unreferenced. */
static bool listed(char (*keys)[OBJECT_KEY_MAX], int n, const char *key)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(keys[i], key))
            return true;
    return false;
}

void metastore_contract_compaction(const char *url, int *failed_)
{
    char err[256] = "";
    struct metastore *m = metastore_open(url, err, sizeof(err));
    CHECK(m != NULL);
    if (!m)
        return;
    /* Six objects, each with a chunk of partition 0 (10 offsets) and of partition 1 (5 offsets).
     * Partition 0's timestamps go up and down, as producers may set them. */
    struct topic_info t;
    CHECK_EQ(metastore_create_topic(m, "squash", 2, NULL, 0, &t), 0);
    static const int64_t ts0[6] = {1000, 3000, 2000, 5000, 4000, 6000};
    char keys[6][OBJECT_KEY_MAX];
    for (int i = 0; i < 6; i++) {
        snprintf(keys[i], OBJECT_KEY_MAX, "objects/000000000001%d-small.obj", i);
        struct commit_chunk c[2] = {chunk(t.id, 0, 10, 0, ts0[i]), chunk(t.id, 1, 5, 100, 100 + i)};
        CHECK_EQ(metastore_commit_object(m, keys[i], 200, c, 2), 0);
    }
    /* The time index: the first chunk holding a timestamp >= t, then the later ones by offset. */
    struct chunk_ref refs[8];
    CHECK_EQ(metastore_find_chunks_by_time(m, t.id, 0, 2500, refs, 8), 5);
    CHECK(refs[0].base_offset == 10 && refs[0].max_timestamp == 3000 && refs[4].base_offset == 50);
    CHECK_EQ(metastore_find_chunks_by_time(m, t.id, 0, 4500, refs, 8), 3);
    CHECK_EQ(refs[0].base_offset, 30);
    CHECK_EQ(metastore_find_chunks_by_time(m, t.id, 0, 6001, refs, 8), 0);
    CHECK_EQ(metastore_find_chunks_by_time(m, t.id, 0, 0, refs, 2), 2);
    CHECK(refs[0].base_offset == 0 && refs[1].base_offset == 10);
    CHECK(refs[0].first_timestamp == 995 && !refs[0].cleaned);
    int64_t off = -1;
    CHECK_EQ(metastore_retention_offset(m, t.id, 0, 4500, -1, &off), 0);
    CHECK_EQ(off, 30);
    /* Several chunks of one partition in one commit: each continues the running maximum. */
    struct commit_chunk many[3] = {chunk(t.id, 0, 10, 0, 9000), chunk(t.id, 0, 10, 100, 7000),
                                   chunk(t.id, 0, 10, 200, 9500)};
    CHECK_EQ(metastore_commit_object(m, "objects/0000000000020-many.obj", 300, many, 3), 0);
    CHECK_EQ(metastore_find_chunks_by_time(m, t.id, 0, 6500, refs, 8), 3);
    CHECK_EQ(refs[0].base_offset, 60);
    CHECK_EQ(metastore_find_chunks_by_time(m, t.id, 0, 9200, refs, 8), 1);
    CHECK_EQ(refs[0].base_offset, 80);

    /* Compaction: partition 0's first four chunks and partition 1's first two become one chunk
     * each in a new object; a run listed wrong (three chunks where there are four) changes nothing. */
    struct chunk_replacement runs[3] = {
        {.topic_id = t.id, .partition = 0, .base_offset = 0, .last_offset = 39, .old_chunks = 4, .pos = 0,
         .len = 400, .batch_count = 4},
        {.topic_id = t.id, .partition = 1, .base_offset = 0, .last_offset = 9, .old_chunks = 2, .pos = 400,
         .len = 200, .batch_count = 2, .cleaned = true},
        {.topic_id = t.id, .partition = 1, .base_offset = 10, .last_offset = 24, .old_chunks = 2, .pos = 600,
         .len = 300, .batch_count = 3},
    };
    const char *big = "objects/0000000000030-big.obj";
    CHECK_EQ(metastore_replace_chunks(m, big, 900, runs, 3), 2);
    CHECK(runs[0].replaced && runs[1].replaced && !runs[2].replaced);
    CHECK_EQ(metastore_find_chunks(m, t.id, 0, 0, refs, 8), 6);
    CHECK(!strcmp(refs[0].object_key, big) && refs[0].base_offset == 0 && refs[0].last_offset == 39);
    CHECK(refs[0].pos == 0 && refs[0].len == 400 && refs[0].batch_count == 4 && refs[0].object_size == 900);
    CHECK(refs[0].first_timestamp == 995 && refs[0].max_timestamp == 5000 && !refs[0].cleaned);
    CHECK(refs[1].base_offset == 40 && !strcmp(refs[1].object_key, keys[4]));
    CHECK_EQ(metastore_find_chunks(m, t.id, 1, 0, refs, 8), 5);
    CHECK(refs[0].base_offset == 0 && refs[0].last_offset == 9 && refs[0].cleaned && refs[0].pos == 400);
    CHECK(refs[1].base_offset == 10 && refs[1].len == 100); /* the run that did not match stayed */
    /* The time index still answers: the merged chunk holds 5000, the later ones keep theirs. */
    CHECK_EQ(metastore_find_chunks_by_time(m, t.id, 0, 4500, refs, 8), 6);
    CHECK_EQ(refs[0].base_offset, 0);
    CHECK_EQ(metastore_find_chunks_by_time(m, t.id, 0, 5500, refs, 8), 4);
    CHECK_EQ(refs[0].base_offset, 50);
    /* The objects whose every chunk went into the new one are garbage; the others are not. */
    char(*gone)[OBJECT_KEY_MAX] = NULL;
    int ngone = -1;
    CHECK_EQ(metastore_objects_unreferenced(m, 0, 100, &gone, &ngone), 0);
    CHECK(ngone == 2 && listed(gone, ngone, keys[0]) && listed(gone, ngone, keys[1]));
    free(gone);

    /* A run trimmed meanwhile (DeleteRecords, retention) or of a deleted topic is left alone, and
     * an object nothing went into is garbage. */
    int64_t start;
    int removed;
    CHECK_EQ(metastore_trim_partition(m, t.id, 1, 15, &start, &removed), 0);
    struct chunk_replacement late = {.topic_id = t.id, .partition = 1, .base_offset = 10, .last_offset = 24,
                                     .old_chunks = 3, .pos = 0, .len = 300, .batch_count = 3};
    CHECK_EQ(metastore_replace_chunks(m, "objects/0000000000040-late.obj", 300, &late, 1), 0);
    CHECK(!late.replaced);
    CHECK_EQ(metastore_find_chunks(m, t.id, 1, 0, refs, 8), 3);
    CHECK_EQ(refs[0].base_offset, 15);
    CHECK_EQ(metastore_objects_unreferenced(m, 0, 100, &gone, &ngone), 0);
    CHECK(listed(gone, ngone, "objects/0000000000040-late.obj"));
    free(gone);
    CHECK_EQ(metastore_delete_topic(m, "squash"), 0);
    struct chunk_replacement dead = {.topic_id = t.id, .partition = 0, .base_offset = 40, .last_offset = 59,
                                     .old_chunks = 2, .pos = 0, .len = 200, .batch_count = 2};
    CHECK_EQ(metastore_replace_chunks(m, "objects/0000000000050-dead.obj", 200, &dead, 1), 0);
    CHECK(!dead.replaced);
    metastore_close(m);
}
