/* The pieces that keep bytes from being copied or duplicated: fetch answers encoded with their
 * large records left in place (spans), an arena handing its memory over to a reply, and the read
 * cache keeping a chunk larger than itself while a consumer reads through it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker/read_cache.h"
#include "check.h"
#include "messages.h"
#include "protocol/codec.h"
#include "util/arena.h"
#include "util/buf.h"

/* A fetch answer with two partitions: one with large records, one with small ones. */
static void fill_answer(struct fetch_response *resp, struct fetch_response_topic *t,
                        struct fetch_response_topic_partition *parts, const uint8_t *big, size_t big_len)
{
    static const uint8_t small[100] = {7};
    memset(parts, 0, 2 * sizeof(*parts));
    parts[0] = (struct fetch_response_topic_partition){.partition_index = 0, .high_watermark = 10,
                                                      .last_stable_offset = 10, .log_start_offset = 0,
                                                      .preferred_read_replica = -1,
                                                      .records = {big, (int32_t)big_len}};
    parts[1] = (struct fetch_response_topic_partition){.partition_index = 1, .high_watermark = 1,
                                                      .last_stable_offset = 1, .log_start_offset = 0,
                                                      .preferred_read_replica = -1,
                                                      .records = {small, sizeof(small)}};
    *t = (struct fetch_response_topic){.topic = {"t", 1}, .partitions = parts, .partitions_count = 2};
    *resp = (struct fetch_response){.responses = t, .responses_count = 1};
}

TEST(fetch_answer_with_spans_reassembles_to_the_copied_encoding)
{
    size_t big_len = 3 * KSPAN_MIN + 5;
    uint8_t *big = malloc(big_len);
    for (size_t i = 0; i < big_len; i++)
        big[i] = (uint8_t)(i * 31);
    struct fetch_response resp;
    struct fetch_response_topic t;
    struct fetch_response_topic_partition parts[2];
    fill_answer(&resp, &t, parts, big, big_len);
    for (int16_t ver = 4; ver <= 12; ver += 8) { /* classic and flexible */
        bool flex = ver >= 12;
        struct buf copied, cut, joined;
        buf_init(&copied);
        buf_init(&cut);
        buf_init(&joined);
        kencode(&fetch_response_desc, ver, flex, &copied, &resp);
        struct kspan spans[4];
        int n = kencode_spans(&fetch_response_desc, ver, flex, &cut, &resp, spans, 4);
        CHECK_EQ(n, 1); /* the small records are copied */
        CHECK(spans[0].ptr == big && spans[0].len == big_len);
        CHECK_EQ(cut.len + big_len, copied.len);
        size_t from = 0;
        for (int i = 0; i < n; i++) {
            buf_append(&joined, cut.data + from, spans[i].at - from);
            buf_append(&joined, spans[i].ptr, spans[i].len);
            from = spans[i].at;
        }
        buf_append(&joined, cut.data + from, cut.len - from);
        CHECK(joined.len == copied.len && memcmp(joined.data, copied.data, copied.len) == 0);
        /* No room for spans: everything copied, as kencode does. */
        struct buf none;
        buf_init(&none);
        CHECK_EQ(kencode_spans(&fetch_response_desc, ver, flex, &none, &resp, spans, 0), 0);
        CHECK(none.len == copied.len && memcmp(none.data, copied.data, copied.len) == 0);
        buf_free(&none);
        buf_free(&copied);
        buf_free(&cut);
        buf_free(&joined);
    }
    free(big);
}

TEST(arena_hands_over_its_blocks_and_adopted_memory)
{
    struct arena a;
    arena_init(&a);
    char *small = arena_alloc(&a, 10);
    char *large = arena_alloc(&a, 100000);
    char *adopted = malloc(5000);
    arena_adopt(&a, adopted);
    memset(small, 1, 10);
    memset(large, 2, 100000);
    void **owned;
    int n = arena_take(&a, &owned);
    CHECK(n >= 3); /* at least: the small block, the large block, the adopted buffer */
    bool found = false;
    for (int i = 0; i < n; i++)
        found |= owned[i] == adopted;
    CHECK(found);
    arena_free(&a); /* empty now: frees nothing twice */
    CHECK(large[99999] == 2 && small[0] == 1); /* still ours (ASan would say otherwise) */
    for (int i = 0; i < n; i++)
        free(owned[i]);
    free(owned);
    CHECK_EQ(arena_take(&a, &owned), 0);
    CHECK(owned == NULL);
}

static struct buf bytes_of(size_t n)
{
    struct buf b;
    buf_init(&b);
    memset(buf_extend(&b, n), 9, n);
    return b;
}

TEST(read_cache_keeps_a_chunk_larger_than_itself_while_it_is_the_latest)
{
    struct read_cache c;
    read_cache_init(&c, 1000);
    struct buf b = bytes_of(1500);
    struct cache_entry *e = read_cache_put(&c, "obj1", 0, 1500, &b);
    read_cache_pin_entry(&c, e);
    read_cache_unpin(&c, e); /* the answer that used it was sent */
    /* A consumer reading through this chunk finds it again instead of reading it once more. */
    struct cache_entry *again = read_cache_pin(&c, "obj1", 0, 1500);
    CHECK(again == e);
    if (again)
        read_cache_unpin(&c, again);
    /* Once another entry is newer, the bound holds again. */
    struct buf small = bytes_of(100);
    read_cache_put(&c, "obj2", 0, 100, &small);
    CHECK(read_cache_get(&c, "obj1", 0, 1500) == NULL);
    CHECK(read_cache_get(&c, "obj2", 0, 100) != NULL);
    CHECK(c.bytes <= 1000);
    read_cache_free(&c);
}
