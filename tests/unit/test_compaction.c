#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/compaction.h"
#include "check.h"
#include "config.h"
#include "storage/objstore.h"
#include "test_util.h"

static struct chunk_ref chunk(int64_t base, int64_t count, uint32_t len)
{
    return (struct chunk_ref){.base_offset = base, .last_offset = base + count - 1, .len = len};
}

TEST(compaction_find_run)
{
    struct compaction_limits lim = {.min_chunks = 2, .small_bytes = 1000, .max_run_bytes = 2500};
    struct chunk_ref c[8];
    int start = -1;
    /* a large chunk, then four small ones: the run is the small ones, capped at 2500 bytes */
    c[0] = chunk(0, 10, 5000);
    c[1] = chunk(10, 1, 800);
    c[2] = chunk(11, 2, 800);
    c[3] = chunk(13, 1, 800);
    c[4] = chunk(14, 1, 800);
    CHECK_EQ(compaction_find_run(c, 5, &lim, &start), 3);
    CHECK_EQ(start, 1);
    /* two small chunks are not more than min_chunks */
    CHECK_EQ(compaction_find_run(c, 3, &lim, &start), 0);
    /* a gap in offsets (a trimmed chunk) ends a run: 1..2 then 3..4, neither long enough */
    c[3] = chunk(20, 1, 800);
    CHECK_EQ(compaction_find_run(c, 5, &lim, &start), 0);
    /* after a short run, a later one qualifies */
    c[4] = chunk(21, 1, 100);
    c[5] = chunk(22, 1, 100);
    CHECK_EQ(compaction_find_run(c, 6, &lim, &start), 3);
    CHECK_EQ(start, 3);
    CHECK_EQ(compaction_find_run(c, 0, &lim, &start), 0);
    /* a chunk key compaction wrote (absolute baseOffsets, may end early) is never part of a run */
    c[4].cleaned = true;
    CHECK_EQ(compaction_find_run(c, 6, &lim, &start), 0);
    c[6] = chunk(23, 1, 100);
    c[7] = chunk(24, 1, 100);
    CHECK_EQ(compaction_find_run(c, 8, &lim, &start), 3);
    CHECK_EQ(start, 5);
}

TEST(compaction_find_run_edges)
{
    struct compaction_limits lim = {.min_chunks = 2, .small_bytes = 1000, .max_run_bytes = 2400};
    struct chunk_ref c[8];
    int start = -1;
    /* exactly at the cap: all three fit (800 * 3 = 2400) */
    for (int i = 0; i < 4; i++)
        c[i] = chunk(i, 1, 800);
    CHECK_EQ(compaction_find_run(c, 4, &lim, &start), 3);
    CHECK_EQ(start, 0);
    /* a chunk of exactly small_bytes is not small: it ends the run */
    c[2] = chunk(2, 1, 1000);
    CHECK_EQ(compaction_find_run(c, 4, &lim, &start), 0);
    /* a run at the very end of the listing */
    c[0] = chunk(0, 5, 9000);
    for (int i = 1; i < 5; i++)
        c[i] = chunk(4 + i, 1, 10);
    CHECK_EQ(compaction_find_run(c, 5, &lim, &start), 4);
    CHECK_EQ(start, 1);
    /* the cap splits a long run: the second half is found from where the first ended */
    lim.max_run_bytes = 30;
    CHECK_EQ(compaction_find_run(c, 5, &lim, &start), 3);
    CHECK_EQ(start, 1);
    CHECK_EQ(compaction_find_run(c + 4, 1, &lim, &start), 0);
}

TEST(compaction_run_info)
{
    struct chunk_ref c[3] = {chunk(10, 2, 100), chunk(12, 3, 50), chunk(15, 1, 7)};
    for (int i = 0; i < 3; i++) {
        c[i].batch_count = i + 1;
        c[i].first_timestamp = 1000 + i;
        c[i].max_timestamp = i == 1 ? 5000 : 2000 + i;
        c[i].cleaned = i != 2;
    }
    struct compaction_run_info info;
    compaction_run_info(c, 3, &info);
    CHECK_EQ(info.bytes, 157);
    CHECK_EQ(info.batch_count, 6);
    CHECK_EQ(info.offset_count, 6);
    CHECK_EQ(info.first_timestamp, 1000);
    CHECK_EQ(info.max_timestamp, 5000);
    CHECK(!info.cleaned);
    compaction_run_info(c, 2, &info);
    CHECK(info.cleaned);
    CHECK_EQ(info.offset_count, 5);
}

TEST(compaction_object_ms)
{
    CHECK_EQ(compaction_object_ms("objects/1764340000123-abc-w0-000001.obj"), 1764340000123LL);
    CHECK_EQ(compaction_object_ms("objects/1764340000123-x-compact-000001.obj"), 1764340000123LL);
    CHECK_EQ(compaction_object_ms("objects/176434000012-short.obj"), INT64_MAX);
    CHECK_EQ(compaction_object_ms("other/1764340000123-abc.obj"), INT64_MAX);
    CHECK_EQ(compaction_object_ms("objects/17643400001x3-abc.obj"), INT64_MAX);
    CHECK_EQ(compaction_object_ms("objects/"), INT64_MAX);
}

/* The keep-lease callback of the round trims partition 0 by one offset after the round listed it
 * (as DeleteRecords between listing and switch would): that run is a conflict and stays as it is,
 * partition 1's run is switched to the new object byte-identical; the next round takes partition 0. */
static int keeps;
static int64_t trim_topic;

static bool trim_once(void *arg, struct metastore *m)
{
    (void)arg;
    int64_t start;
    int removed;
    if (keeps++ == 0)
        metastore_trim_partition(m, trim_topic, 0, 1, &start, &removed);
    return true;
}

static bool keep_always(void *arg, struct metastore *m)
{
    (void)arg;
    (void)m;
    return true;
}

TEST(compaction_round_conflict_and_switch)
{
    char *dir = test_temp_dir(), url[512], err[256] = "";
    CHECK(dir != NULL);
    if (!dir)
        return;
    snprintf(url, sizeof(url), "sqlite://%s/m.db", dir);
    struct metastore *m = metastore_open(url, err, sizeof(err));
    snprintf(url, sizeof(url), "file://%s/objects", dir);
    struct objstore *os = objstore_open(url, err, sizeof(err));
    CHECK(m != NULL && os != NULL);
    if (!m || !os)
        return;
    struct topic_info t;
    CHECK_EQ(metastore_create_topic(m, "runs", 2, NULL, 0, &t), 0);
    /* twelve old flushes, each 10 bytes of partition 0 and 10 of partition 1 */
    char want1[120];
    for (int i = 0; i < 12; i++) {
        char key[OBJECT_KEY_MAX], data[20];
        memset(data, 'a' + i, 10);
        memset(data + 10, 'A' + i, 10);
        memcpy(want1 + 10 * i, data + 10, 10);
        snprintf(key, sizeof(key), "objects/00000000001%02d-old.obj", i);
        CHECK_EQ(objstore_put(os, key, data, sizeof(data)), 0);
        struct commit_chunk c[2] = {
            {.topic_id = t.id, .partition = 0, .pos = 0, .len = 10, .batch_count = 1, .offset_count = 1,
             .first_timestamp = 100 + i, .max_timestamp = 100 + i},
            {.topic_id = t.id, .partition = 1, .pos = 10, .len = 10, .batch_count = 1, .offset_count = 1,
             .first_timestamp = 100 + i, .max_timestamp = 100 + i},
        };
        CHECK_EQ(metastore_commit_object(m, key, sizeof(data), c, 2), 0);
    }
    struct config cfg = {.compaction_target_bytes = 1 << 20, .compaction_small_bytes = 1000,
                         .compaction_min_chunks = 8, .compaction_max_run_bytes = 1 << 20,
                         .compaction_min_age_ms = 1000, .agent_id = "unit"};
    struct compaction_stats st = {0};
    trim_topic = t.id;
    compaction_round(m, os, &cfg, trim_once, NULL, &st);
    CHECK_EQ(st.conflicts, 1);
    CHECK_EQ(st.objects, 1);
    CHECK_EQ(st.chunks, 12);
    struct chunk_ref refs[16];
    CHECK_EQ(metastore_find_chunks(m, t.id, 0, 0, refs, 16), 11);
    CHECK_EQ(metastore_find_chunks(m, t.id, 1, 0, refs, 16), 1);
    CHECK(refs[0].base_offset == 0 && refs[0].last_offset == 11 && refs[0].len == 120 && refs[0].batch_count == 12);
    CHECK(refs[0].first_timestamp == 100 && refs[0].max_timestamp == 111);
    CHECK(strstr(refs[0].object_key, "-unit-compact-") != NULL);
    struct buf got;
    buf_init(&got);
    CHECK_EQ(objstore_get_range(os, refs[0].object_key, refs[0].pos, refs[0].len, &got), 0);
    CHECK(got.len == 120 && memcmp(got.data, want1, 120) == 0);
    buf_free(&got);

    /* the next round: partition 0's eleven chunks (more than eight) are one now */
    st = (struct compaction_stats){0};
    compaction_round(m, os, &cfg, keep_always, NULL, &st);
    CHECK(st.conflicts == 0 && st.objects == 1 && st.chunks == 11);
    CHECK_EQ(metastore_find_chunks(m, t.id, 0, 0, refs, 16), 1);
    CHECK(refs[0].base_offset == 1 && refs[0].last_offset == 11 && refs[0].len == 110);
    /* nothing left to do: no object written */
    st = (struct compaction_stats){0};
    compaction_round(m, os, &cfg, keep_always, NULL, &st);
    CHECK(st.objects == 0 && st.chunks == 0 && st.conflicts == 0);
    metastore_close(m);
    objstore_close(os);
    test_rm_rf(dir);
    free(dir);
}
