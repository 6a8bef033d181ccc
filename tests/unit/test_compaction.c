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
