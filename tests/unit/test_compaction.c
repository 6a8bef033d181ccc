#include "broker/compaction.h"
#include "check.h"

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
