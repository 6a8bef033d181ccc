#include <stdbool.h>
#include <string.h>

#include "check.h"
#include "cluster/slots.h"

TEST(slots_partition_mapping_is_fixed_and_spreads)
{
    /* FNV-1a known value: the mapping must never change between versions. */
    CHECK_EQ(topic_hash("", 0), 2166136261u);
    CHECK_EQ(topic_hash("a", 1), 0xE40C292Cu);
    uint32_t h = topic_hash("orders", 6);
    for (int p = 0; p < 40; p++)
        CHECK_EQ(slot_of_partition("orders", 6, p, 16), (h + (uint32_t)p) % 16);
    /* Consecutive partitions of a topic land on consecutive slots. */
    int seen[16] = {0};
    for (int p = 0; p < 16; p++)
        seen[slot_of_partition("orders", 6, p, 16)]++;
    for (int s = 0; s < 16; s++)
        CHECK_EQ(seen[s], 1);
}

TEST(slots_rendezvous_moves_only_the_dead_members_slots)
{
    uint64_t ids[4] = {0, 1, 2, 3};
    bool live[4] = {true, true, true, true};
    int before[256], counts[4] = {0};
    for (int s = 0; s < 256; s++) {
        before[s] = slot_owner((uint32_t)s, ids, live, 4);
        CHECK(before[s] >= 0 && before[s] < 4);
        counts[before[s]]++;
    }
    for (int w = 0; w < 4; w++)
        CHECK(counts[w] > 256 / 4 / 2); /* roughly balanced */
    live[2] = false;
    for (int s = 0; s < 256; s++) {
        int after = slot_owner((uint32_t)s, ids, live, 4);
        CHECK(after != 2);
        if (before[s] != 2)
            CHECK_EQ(after, before[s]); /* slots of live members stay put */
    }
    bool none[4] = {false, false, false, false};
    CHECK_EQ(slot_owner(7, ids, none, 4), -1);
}
