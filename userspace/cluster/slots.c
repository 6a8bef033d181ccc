#include "cluster/slots.h"

uint32_t topic_hash(const char *name, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)name[i]) * 16777619u;
    return h;
}

/* splitmix64 finaliser: a well-mixed score from (slot, member). */
static uint64_t mix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

int slot_owner(uint32_t slot, const uint64_t *member_ids, const bool *live, int nmembers)
{
    int best = -1;
    uint64_t best_score = 0;
    for (int i = 0; i < nmembers; i++) {
        if (live && !live[i])
            continue;
        uint64_t score = mix(mix(slot) ^ member_ids[i]);
        if (best < 0 || score > best_score) {
            best = i;
            best_score = score;
        }
    }
    return best;
}
