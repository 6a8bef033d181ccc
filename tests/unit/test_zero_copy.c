/* The pieces that keep bytes from being copied or duplicated: fetch answers encoded with their
 * large records left in place (spans), an arena handing its memory over to a reply, and the read
 * cache keeping a chunk larger than itself while a consumer reads through it. */
#include <stdbool.h>
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
    struct buf adopted;
    buf_init(&adopted);
    buf_extend(&adopted, 2 * BUF_BIG); /* a big, reusable buffer */
    arena_adopt(&a, adopted.data, adopted.cap);
    memset(small, 1, 10);
    memset(large, 2, 100000);
    struct buf_mem *owned;
    int n = arena_take(&a, &owned);
    CHECK(n >= 3); /* at least: the small block, the large block, the adopted buffer */
    bool found = false;
    for (int i = 0; i < n; i++)
        found |= owned[i].p == adopted.data && owned[i].cap == adopted.cap;
    CHECK(found);
    arena_free(&a); /* empty now: frees nothing twice */
    CHECK(large[99999] == 2 && small[0] == 1); /* still ours (ASan would say otherwise) */
    for (int i = 0; i < n; i++)
        buf_mem_free(owned[i].p, owned[i].cap);
    free(owned);
    CHECK_EQ(arena_take(&a, &owned), 0);
    CHECK(owned == NULL);
}

TEST(big_buffers_are_reused_not_mapped_afresh)
{
    struct buf a;
    buf_init(&a);
    buf_extend(&a, 3 * BUF_BIG); /* an empty buffer gets about what it asks */
    CHECK_EQ(a.cap, 3 * BUF_BIG);
    uint8_t *first = a.data;
    buf_free(&a);
    struct buf b;
    buf_init(&b);
    buf_reserve(&b, 3 * BUF_BIG - 1000);
    CHECK(b.data == first); /* the block just freed, pages still in place */
    buf_free(&b);
    struct buf c;
    buf_init(&c);
    buf_reserve(&c, BUF_BIG); /* far smaller: not given a 3 MiB block whose pages it would not use */
    CHECK(c.data != first);
    CHECK_EQ(c.cap, BUF_BIG);
    /* Growing moves the bytes into a block twice as large. */
    memset(buf_extend(&c, BUF_BIG), 7, BUF_BIG);
    buf_reserve(&c, 1);
    CHECK_EQ(c.cap, 2 * BUF_BIG);
    CHECK(c.data[0] == 7 && c.data[BUF_BIG - 1] == 7);
    buf_free(&c);
    /* What is kept is bounded: 32 MiB freed, at most BUF_BIG_KEPT kept, the rest unmapped. */
    struct buf many[8];
    for (int i = 0; i < 8; i++) {
        buf_init(&many[i]);
        buf_reserve(&many[i], 4 * BUF_BIG);
    }
    for (int i = 0; i < 8; i++)
        buf_free(&many[i]);
}
