/* The Kafka codec: every API at every version round-trips, hand-checked byte vectors, headers,
 * hostile input, and frames captured from a real client (librdkafka via kcat). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "util/hex.h"
#include "messages.h"
#include "protocol/codec.h"

#define KSTR(s) ((struct kstr){.ptr = (s), .len = (int32_t)sizeof(s) - 1})

/* ---------------------------------------------------------------------------------------------
 * Helpers */

/* Decodes a whole body: fails on an error and on bytes left over. */
static int decode_all(const struct kmsg_desc *d, int16_t ver, bool flex, const uint8_t *p, size_t n, void *out,
                      struct arena *a, const char **error)
{
    struct kreader r = {.p = p, .end = p + n};
    int rc = kdecode(d, ver, flex, &r, out, a);
    if (error)
        *error = r.error;
    if (rc == 0 && r.p != r.end) {
        if (error)
            *error = "bytes left over";
        return -1;
    }
    return rc;
}

static void print_hex(const char *what, const uint8_t *p, size_t n)
{
    fprintf(stderr, "    %s (%zu):", what, n);
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, " %02x", p[i]);
    fprintf(stderr, "\n");
}

/* Compares an encoding with the expected bytes, printing both when they differ. */
static int same_bytes(const struct buf *got, const uint8_t *want, size_t n)
{
    if (got->len == n && (n == 0 || memcmp(got->data, want, n) == 0))
        return 1;
    print_hex("got ", got->data, got->len);
    print_hex("want", want, n);
    return 0;
}

static bool flexible(const struct kapi *api, int16_t ver) { return kapi_is_flexible(api, ver); }

/* An empty buf has no data pointer; readers want a real one (NULL + 0 is not valid C). */
static const uint8_t *bytes_of(const struct buf *b)
{
    static const uint8_t none[1];
    return b->data ? b->data : none;
}

static bool same_buf(const struct buf *a, const struct buf *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

/* ---------------------------------------------------------------------------------------------
 * A generic filler: every field present at the version gets a non-default value, arrays get two
 * elements; with nulls set, every field that may be null at this version is null instead. */

struct filler {
    struct arena *arena;
    bool nulls;
    uint32_t seq; /* makes values differ from field to field */
};

static int64_t fill_int(const struct kfield *f, struct filler *fl, int64_t base, int64_t lo, int64_t hi)
{
    int64_t v = base + fl->seq++ % 50;
    if (v < lo || v > hi)
        v = lo + 1;
    if (f && v == f->default_int)
        v = v == hi ? v - 1 : v + 1;
    return v;
}

/* One primitive value; f is NULL for array elements (no default, never null). */
static void fill_scalar(enum kfield_type t, const struct kfield *f, bool may_be_null, struct filler *fl, void *v)
{
    switch (t) {
    case KT_INT8: *(int8_t *)v = (int8_t)fill_int(f, fl, 0x11, INT8_MIN, INT8_MAX); break;
    case KT_INT16: *(int16_t *)v = (int16_t)fill_int(f, fl, 0x1234, INT16_MIN, INT16_MAX); break;
    case KT_INT32: *(int32_t *)v = (int32_t)fill_int(f, fl, 0x12345678, INT32_MIN, INT32_MAX); break;
    case KT_INT64: *(int64_t *)v = fill_int(f, fl, 0x123456789abcdef0, INT64_MIN, INT64_MAX); break;
    case KT_UINT16: *(uint16_t *)v = (uint16_t)fill_int(f, fl, 0xfe00, 0, UINT16_MAX); break;
    case KT_BOOL: *(bool *)v = f ? f->default_int == 0 : (fl->seq++ & 1); break;
    case KT_FLOAT64: *(double *)v = 1.25 + fl->seq++; break;
    case KT_UUID:
        for (int i = 0; i < 16; i++)
            ((struct kuuid *)v)->b[i] = (uint8_t)(fl->seq + i + 1);
        fl->seq++;
        break;
    case KT_STRING: {
        struct kstr *s = v;
        if (may_be_null && fl->nulls) {
            *s = (struct kstr){.ptr = NULL, .len = -1};
            break;
        }
        char tmp[32];
        int n = snprintf(tmp, sizeof(tmp), "s%u", (unsigned)fl->seq++);
        s->ptr = arena_strndup(fl->arena, tmp, (size_t)n);
        s->len = n;
        break;
    }
    case KT_BYTES:
    case KT_RECORDS: {
        struct kbytes *b = v;
        if (may_be_null && fl->nulls) {
            *b = (struct kbytes){.ptr = NULL, .len = -1};
            break;
        }
        int n = 3 + (int)(fl->seq % 3);
        uint8_t *p = arena_alloc(fl->arena, (size_t)n);
        for (int i = 0; i < n; i++)
            p[i] = (uint8_t)(fl->seq * 7 + i);
        fl->seq++;
        b->ptr = p;
        b->len = n;
        break;
    }
    case KT_ARRAY: break;
    }
}

static size_t elem_size(const struct kfield *f)
{
    if (f->elem)
        return f->elem->size;
    switch (f->elem_type) {
    case KT_INT32: return 4;
    case KT_INT64: return 8;
    case KT_STRING: return sizeof(struct kstr);
    default: return 0;
    }
}

static void *array_ptr(const void *base, const struct kfield *f)
{
    void *p;
    memcpy(&p, (const uint8_t *)base + f->offset, sizeof(p));
    return p;
}

static int32_t *array_count(const void *base, const struct kfield *f)
{
    return (int32_t *)((uint8_t *)base + f->count_offset);
}

static bool present_at(const struct kfield *f, int16_t ver) { return ver >= f->min_ver && ver <= f->max_ver; }
static bool nullable_at(const struct kfield *f, int16_t ver) { return ver >= f->null_min_ver; }

static void fill_struct(const struct kmsg_desc *d, int16_t ver, struct filler *fl, void *base)
{
    for (int i = 0; i < d->nfields; i++) {
        const struct kfield *f = &d->fields[i];
        if (!present_at(f, ver))
            continue;
        bool may_be_null = nullable_at(f, ver);
        if (f->type != KT_ARRAY) {
            fill_scalar(f->type, f, may_be_null, fl, (uint8_t *)base + f->offset);
            continue;
        }
        if (may_be_null && fl->nulls) {
            *array_count(base, f) = -1;
            continue;
        }
        size_t es = elem_size(f);
        uint8_t *items = arena_alloc(fl->arena, 2 * es);
        for (int k = 0; k < 2; k++) {
            if (f->elem)
                fill_struct(f->elem, ver, fl, items + k * es);
            else
                fill_scalar(f->elem_type, NULL, false, fl, items + k * es);
        }
        memcpy((uint8_t *)base + f->offset, &items, sizeof(items));
        *array_count(base, f) = 2;
    }
}

/* ---------------------------------------------------------------------------------------------
 * Semantic equality of two messages over the fields present at a version. */

static bool scalar_equal(enum kfield_type t, const void *a, const void *b)
{
    switch (t) {
    case KT_INT8: case KT_BOOL: return memcmp(a, b, 1) == 0;
    case KT_INT16: case KT_UINT16: return memcmp(a, b, 2) == 0;
    case KT_INT32: return memcmp(a, b, 4) == 0;
    case KT_INT64: case KT_FLOAT64: return memcmp(a, b, 8) == 0;
    case KT_UUID: return memcmp(a, b, 16) == 0;
    case KT_STRING: {
        const struct kstr *x = a, *y = b;
        if (x->len < 0 || y->len < 0)
            return x->len < 0 && y->len < 0;
        return x->len == y->len && (x->len == 0 || memcmp(x->ptr, y->ptr, (size_t)x->len) == 0);
    }
    case KT_BYTES:
    case KT_RECORDS: {
        const struct kbytes *x = a, *y = b;
        if (x->len < 0 || y->len < 0)
            return x->len < 0 && y->len < 0;
        return x->len == y->len && (x->len == 0 || memcmp(x->ptr, y->ptr, (size_t)x->len) == 0);
    }
    case KT_ARRAY: break;
    }
    return false;
}

static bool struct_equal(const struct kmsg_desc *d, int16_t ver, const void *a, const void *b)
{
    for (int i = 0; i < d->nfields; i++) {
        const struct kfield *f = &d->fields[i];
        if (!present_at(f, ver))
            continue;
        bool same;
        if (f->type != KT_ARRAY) {
            same = scalar_equal(f->type, (const uint8_t *)a + f->offset, (const uint8_t *)b + f->offset);
        } else {
            int32_t na = *array_count(a, f), nb = *array_count(b, f);
            same = na == nb;
            const uint8_t *pa = array_ptr(a, f), *pb = array_ptr(b, f);
            size_t es = elem_size(f);
            for (int32_t k = 0; same && k < na; k++)
                same = f->elem ? struct_equal(f->elem, ver, pa + k * es, pb + k * es)
                               : scalar_equal(f->elem_type, pa + k * es, pb + k * es);
        }
        if (!same) {
            fprintf(stderr, "    %s.%s differs at v%d\n", d->name, f->name, ver);
            return false;
        }
    }
    return true;
}

/* ---------------------------------------------------------------------------------------------
 * Round trip of every API, version and direction. */

/* Fill, encode, decode, compare, re-encode, compare bytes; also every strict prefix of the
 * encoding must fail to decode. Returns 0 if all is well. */
static int roundtrip(const struct kapi *api, int16_t ver, const struct kmsg_desc *d, bool nulls, bool prefixes)
{
    struct arena a;
    arena_init(&a);
    struct buf b1, b2, dump;
    buf_init(&b1);
    buf_init(&b2);
    buf_init(&dump);
    int bad = 0;
    bool flex = flexible(api, ver);

    struct filler fl = {.arena = &a, .nulls = nulls, .seq = (uint32_t)ver};
    void *msg = arena_alloc(&a, d->size);
    fill_struct(d, ver, &fl, msg);
    kencode(d, ver, flex, &b1, msg);

    void *back = arena_alloc(&a, d->size);
    const char *err = NULL;
    if (decode_all(d, ver, flex, bytes_of(&b1), b1.len, back, &a, &err) != 0) {
        fprintf(stderr, "    %s v%d: decode failed: %s\n", d->name, ver, err);
        bad = 1;
    } else {
        if (!struct_equal(d, ver, msg, back))
            bad = 1;
        kencode(d, ver, flex, &b2, back);
        if (!same_buf(&b1, &b2)) {
            fprintf(stderr, "    %s v%d: re-encoding differs\n", d->name, ver);
            bad = 1;
        }
        kdump(d, ver, back, &dump);
        if (dump.len < 2 || dump.data[0] != '{' || dump.data[dump.len - 1] != '}')
            bad = 1;
    }
    for (size_t n = 0; prefixes && n < b1.len; n++) {
        struct arena pa;
        arena_init(&pa);
        void *out = arena_alloc(&pa, d->size);
        struct kreader r = {.p = b1.data, .end = b1.data + n};
        if (kdecode(d, ver, flex, &r, out, &pa) == 0 || !r.error) {
            fprintf(stderr, "    %s v%d: a %zu-byte prefix of %zu decoded\n", d->name, ver, n, b1.len);
            bad = 1;
        }
        arena_free(&pa);
    }
    buf_free(&b1);
    buf_free(&b2);
    buf_free(&dump);
    arena_free(&a);
    return bad;
}

TEST(codec_roundtrip_every_api_and_version)
{
    int cases = 0;
    for (size_t i = 0; i < kapi_table_len; i++) {
        const struct kapi *api = &kapi_table[i];
        for (int16_t v = api->min_ver; v <= api->max_ver; v++) {
            for (int nulls = 0; nulls <= 1; nulls++) {
                CHECK(roundtrip(api, v, api->request, nulls, !nulls) == 0);
                CHECK(roundtrip(api, v, api->response, nulls, !nulls) == 0);
                cases += 2;
            }
        }
    }
    CHECK(cases > 200);
}

/* The filler must really produce non-default values: a filled v-latest message whose
 * tagged fields are all set must be longer than one with defaults only. */
TEST(codec_filler_sets_tagged_fields)
{
    struct arena a;
    arena_init(&a);
    const struct kapi *api = kapi_find(KAPI_API_VERSIONS);
    struct api_versions_response resp;
    struct filler fl = {.arena = &a};
    memset(&resp, 0, sizeof(resp));
    fill_struct(&api_versions_response_desc, 3, &fl, &resp);
    CHECK(resp.supported_features_count == 2);
    CHECK(resp.finalized_features_epoch != -1);
    CHECK(resp.zk_migration_ready);
    struct buf w;
    buf_init(&w);
    kencode(api->response, 3, true, &w, &resp);
    struct kreader r = {.p = w.data, .end = w.data + w.len};
    struct api_versions_response back;
    CHECK(kdecode(api->response, 3, true, &r, &back, &a) == 0);
    CHECK(back.supported_features_count == 2);
    CHECK(back.finalized_features_count == 2);
    CHECK_EQ(back.finalized_features_epoch, resp.finalized_features_epoch);
    CHECK(back.zk_migration_ready);
    buf_free(&w);
    arena_free(&a);
}

/* ---------------------------------------------------------------------------------------------
 * The generated tables. */

TEST(codec_api_table_has_the_required_versions)
{
    static const struct { int16_t key, min, max, flex; } want[] = {
        {KAPI_PRODUCE, 0, 11, 9}, {KAPI_FETCH, 0, 12, 12}, {KAPI_LIST_OFFSETS, 0, 9, 6},
        {KAPI_METADATA, 0, 12, 9}, {KAPI_API_VERSIONS, 0, 3, 3}, {KAPI_CREATE_TOPICS, 0, 7, 5},
        {KAPI_DELETE_TOPICS, 0, 5, 4},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        const struct kapi *api = kapi_find(want[i].key);
        CHECK(api != NULL);
        if (!api)
            continue;
        CHECK_EQ(api->key, want[i].key);
        CHECK_EQ(api->min_ver, want[i].min);
        CHECK_EQ(api->max_ver, want[i].max);
        CHECK_EQ(api->flex_min, want[i].flex);
    }
    CHECK(kapi_find(7) == NULL);
    CHECK(kapi_find(-1) == NULL);
}

static int check_desc(const struct kmsg_desc *d, int16_t flex_min)
{
    int bad = 0;
    int32_t last_tag = -1;
    for (int i = 0; i < d->nfields; i++) {
        const struct kfield *f = &d->fields[i];
        if (f->tag >= 0) {
            /* the encoder writes tagged fields in table order: ascending, after the others */
            bad |= f->tag <= last_tag || f->min_ver < flex_min;
            last_tag = f->tag;
        } else {
            bad |= last_tag >= 0;
        }
        bad |= f->min_ver > f->max_ver || f->offset >= d->size;
        if (f->type == KT_ARRAY) {
            bad |= !f->elem && elem_size(f) == 0;
            bad |= f->count_offset >= d->size;
            if (f->elem)
                bad |= check_desc(f->elem, flex_min);
        }
        if (bad) {
            fprintf(stderr, "    %s.%s is inconsistent\n", d->name, f->name);
            return 1;
        }
    }
    return bad;
}

TEST(codec_tables_are_consistent)
{
    int16_t last_key = -1;
    for (size_t i = 0; i < kapi_table_len; i++) {
        const struct kapi *api = &kapi_table[i];
        CHECK(api->key > last_key);
        last_key = api->key;
        CHECK(kapi_find(api->key) == api);
        CHECK(check_desc(api->request, api->flex_min) == 0);
        CHECK(check_desc(api->response, api->flex_min) == 0);
    }
}

/* ---------------------------------------------------------------------------------------------
 * Hand-checked byte vectors. */

/* Encodes msg, compares with want, decodes want back and re-encodes it. */
static int vector(const struct kmsg_desc *d, int16_t ver, bool flex, const void *msg, const uint8_t *want, size_t n)
{
    struct arena a;
    arena_init(&a);
    struct buf w, w2;
    buf_init(&w);
    buf_init(&w2);
    int ok = 1;
    kencode(d, ver, flex, &w, msg);
    ok &= same_bytes(&w, want, n);
    void *back = arena_alloc(&a, d->size);
    const char *err = NULL;
    if (decode_all(d, ver, flex, want, n, back, &a, &err) != 0) {
        fprintf(stderr, "    decode failed: %s\n", err);
        ok = 0;
    } else {
        ok &= struct_equal(d, ver, msg, back);
        kencode(d, ver, flex, &w2, back);
        ok &= same_bytes(&w2, want, n);
    }
    buf_free(&w);
    buf_free(&w2);
    arena_free(&a);
    return ok;
}

TEST(codec_vector_api_versions_v3_request)
{
    struct api_versions_request req = {.client_software_name = KSTR("sluice"),
                                       .client_software_version = KSTR("0.1")};
    /* compact strings: length + 1 as a uvarint; then the empty tagged-field section */
    static const uint8_t want[] = {0x07, 's', 'l', 'u', 'i', 'c', 'e', 0x04, '0', '.', '1', 0x00};
    CHECK(vector(&api_versions_request_desc, 3, true, &req, want, sizeof(want)));
    /* v0-2 requests have no body at all */
    struct buf w;
    buf_init(&w);
    kencode(&api_versions_request_desc, 2, false, &w, &req);
    CHECK_EQ(w.len, 0);
    buf_free(&w);
}

TEST(codec_vector_api_versions_responses)
{
    struct api_versions_response_api_key keys[] = {{.api_key = 18, .min_version = 0, .max_version = 3}};
    /* v0 is what a server sends to a client asking a version it does not know (KIP-511) */
    struct api_versions_response v0 = {.error_code = 35, .api_keys = keys, .api_keys_count = 1};
    static const uint8_t want_v0[] = {0x00, 0x23, 0x00, 0x00, 0x00, 0x01, 0x00, 0x12, 0x00, 0x00, 0x00, 0x03};
    CHECK(vector(&api_versions_response_desc, 0, false, &v0, want_v0, sizeof(want_v0)));

    /* v3: tagged fields at their defaults are not written; finalized_features_epoch (tag 1,
     * default -1) is; supported_features (tag 0) is a tagged array. */
    struct api_versions_response_supported_feature feat = {.name = KSTR("x"), .min_version = 1, .max_version = 2};
    struct api_versions_response v3 = {.error_code = 0, .api_keys = keys, .api_keys_count = 1,
                                       .throttle_time_ms = 0, .supported_features = &feat,
                                       .supported_features_count = 1, .finalized_features_epoch = 7};
    static const uint8_t want_v3[] = {
        0x00, 0x00,                                     /* error_code */
        0x02, 0x00, 0x12, 0x00, 0x00, 0x00, 0x03, 0x00, /* api_keys: 1 element + its tag section */
        0x00, 0x00, 0x00, 0x00,                         /* throttle_time_ms */
        0x02,                                           /* two tagged fields */
        0x00, 0x08, 0x02, 0x02, 'x', 0x00, 0x01, 0x00, 0x02, 0x00, /* tag 0, 8 bytes */
        0x01, 0x08, 0, 0, 0, 0, 0, 0, 0, 0x07,          /* tag 1, 8 bytes: int64 7 */
    };
    CHECK(vector(&api_versions_response_desc, 3, true, &v3, want_v3, sizeof(want_v3)));

    /* decoding a v3 response without tags gives the defaults */
    static const uint8_t bare[] = {0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00};
    struct arena a;
    arena_init(&a);
    struct api_versions_response back;
    CHECK(decode_all(&api_versions_response_desc, 3, true, bare, sizeof(bare), &back, &a, NULL) == 0);
    CHECK_EQ(back.api_keys_count, 0);
    CHECK_EQ(back.finalized_features_epoch, -1);
    CHECK_EQ(back.supported_features_count, 0);
    CHECK(!back.zk_migration_ready);
    arena_free(&a);
}

TEST(codec_vector_metadata_requests)
{
    /* v1: a null topics array (all topics) is int32 -1 */
    struct metadata_request all = {.topics = NULL, .topics_count = -1};
    static const uint8_t want_v1[] = {0xff, 0xff, 0xff, 0xff};
    CHECK(vector(&metadata_request_desc, 1, false, &all, want_v1, sizeof(want_v1)));

    /* v0 cannot say null: written as empty (which means all topics in v0), and a -1 is refused */
    struct buf w;
    buf_init(&w);
    kencode(&metadata_request_desc, 0, false, &w, &all);
    static const uint8_t want_v0[] = {0, 0, 0, 0};
    CHECK(same_bytes(&w, want_v0, sizeof(want_v0)));
    buf_free(&w);
    struct arena a;
    arena_init(&a);
    struct metadata_request back;
    const char *err = NULL;
    CHECK(decode_all(&metadata_request_desc, 0, false, want_v1, sizeof(want_v1), &back, &a, &err) == -1);
    CHECK(err != NULL);

    /* absent fields get their defaults: v0 has no allow_auto_topic_creation (default true) */
    CHECK(decode_all(&metadata_request_desc, 0, false, want_v0, sizeof(want_v0), &back, &a, NULL) == 0);
    CHECK(back.allow_auto_topic_creation);
    CHECK_EQ(back.topics_count, 0);

    /* v4: one topic "a", allow_auto_topic_creation */
    struct metadata_request_topic t = {.name = KSTR("a")};
    struct metadata_request v4 = {.topics = &t, .topics_count = 1, .allow_auto_topic_creation = true};
    static const uint8_t want_v4[] = {0, 0, 0, 1, 0, 1, 'a', 0x01};
    CHECK(vector(&metadata_request_desc, 4, false, &v4, want_v4, sizeof(want_v4)));

    /* v9, the first flexible version: compact array and string, a tag section per element */
    struct metadata_request_topic t9 = {.name = KSTR("ab")};
    struct metadata_request v9 = {.topics = &t9, .topics_count = 1, .allow_auto_topic_creation = true,
                                  .include_cluster_authorized_operations = false,
                                  .include_topic_authorized_operations = true};
    static const uint8_t want_v9[] = {0x02, 0x03, 'a', 'b', 0x00, 0x01, 0x00, 0x01, 0x00};
    CHECK(vector(&metadata_request_desc, 9, true, &v9, want_v9, sizeof(want_v9)));

    /* v12: topic ids, and a null topic name (compact null = 0) */
    struct metadata_request_topic t12 = {.name = {.ptr = NULL, .len = -1}};
    for (int i = 0; i < 16; i++)
        t12.topic_id.b[i] = (uint8_t)(i + 1);
    struct metadata_request v12 = {.topics = &t12, .topics_count = 1, .allow_auto_topic_creation = false};
    static const uint8_t want_v12[] = {0x02, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                       0x00, 0x00, 0x00, 0x00, 0x00};
    CHECK(vector(&metadata_request_desc, 12, true, &v12, want_v12, sizeof(want_v12)));
    arena_free(&a);
}

TEST(codec_unknown_tagged_fields_are_skipped)
{
    /* metadata v9 request with unknown tags in the topic element and at the top level */
    static const uint8_t in[] = {
        0x02, 0x03, 'a', 'b',
        0x01, 0x05, 0x02, 0xaa, 0xbb,                   /* element: tag 5, 2 bytes */
        0x01, 0x00, 0x00,
        0x02, 0x00, 0x01, 0xff, 0x09, 0x00,             /* top: tag 0 (1 byte), tag 9 (empty) */
    };
    static const uint8_t clean[] = {0x02, 0x03, 'a', 'b', 0x00, 0x01, 0x00, 0x00, 0x00};
    struct arena a;
    arena_init(&a);
    struct metadata_request m;
    const char *err = NULL;
    CHECK(decode_all(&metadata_request_desc, 9, true, in, sizeof(in), &m, &a, &err) == 0);
    CHECK_EQ(m.topics_count, 1);
    if (m.topics_count == 1)
        CHECK(m.topics[0].name.len == 2 && memcmp(m.topics[0].name.ptr, "ab", 2) == 0);
    CHECK(m.allow_auto_topic_creation);
    struct buf w;
    buf_init(&w);
    kencode(&metadata_request_desc, 9, true, &w, &m);
    CHECK(same_bytes(&w, clean, sizeof(clean)));
    buf_free(&w);
    arena_free(&a);
}

TEST(codec_vector_known_tagged_fields)
{
    /* fetch v12 request: cluster_id is tag 0, a nullable string defaulting to null */
    struct fetch_request f = {.cluster_id = KSTR("c1"), .replica_id = -1, .max_wait_ms = 500, .min_bytes = 1,
                              .max_bytes = 0x7fffffff, .isolation_level = 0, .session_id = 0,
                              .session_epoch = -1, .rack_id = KSTR("")};
    static const uint8_t want[] = {
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x01, 0xf4, 0x00, 0x00, 0x00, 0x01, 0x7f, 0xff, 0xff, 0xff,
        0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff,
        0x01, 0x01, 0x01,                    /* empty topics, forgotten_topics_data, rack_id "" */
        0x01, 0x00, 0x03, 0x03, 'c', '1',    /* one tag: 0, 3 bytes, compact "c1" */
    };
    CHECK(vector(&fetch_request_desc, 12, true, &f, want, sizeof(want)));
    f.cluster_id = (struct kstr){.ptr = NULL, .len = -1};
    uint8_t no_tag[sizeof(want)];
    memcpy(no_tag, want, sizeof(want));
    no_tag[28] = 0x00;
    CHECK(vector(&fetch_request_desc, 12, true, &f, no_tag, 29));

    /* a known tag whose size does not match its value is an error, in both directions */
    struct arena a;
    arena_init(&a);
    struct fetch_request back;
    uint8_t longer[sizeof(want) + 2];
    memcpy(longer, want, sizeof(want));
    longer[30] = 0x05;
    longer[34] = 0xaa;
    longer[35] = 0xbb;
    CHECK(decode_all(&fetch_request_desc, 12, true, longer, sizeof(longer), &back, &a, NULL) == -1);
    uint8_t shorter[sizeof(want)];
    memcpy(shorter, want, sizeof(want));
    shorter[30] = 0x02;
    CHECK(decode_all(&fetch_request_desc, 12, true, shorter, sizeof(shorter), &back, &a, NULL) == -1);

    /* create_topics v5 response: topic_config_error_code (int16, tag 0) is sent when non-zero */
    struct create_topics_response_topic t = {.name = KSTR("t"), .error_code = 0,
                                             .error_message = {.ptr = NULL, .len = -1},
                                             .topic_config_error_code = 42, .num_partitions = 3,
                                             .replication_factor = 1, .configs = NULL, .configs_count = -1};
    struct create_topics_response r = {.throttle_time_ms = 0, .topics = &t, .topics_count = 1};
    static const uint8_t want_ct[] = {
        0, 0, 0, 0, 0x02, 0x02, 't', 0x00, 0x00,  /* throttle, 1 topic "t", error_code */
        0x00, 0x00, 0x00, 0x00, 0x03, 0x00, 0x01, /* null error_message, 3 partitions, rf 1 */
        0x00,                                  /* null configs */
        0x01, 0x00, 0x02, 0x00, 0x2a,          /* tag 0: int16 42 */
        0x00,
    };
    CHECK(vector(&create_topics_response_desc, 5, true, &r, want_ct, sizeof(want_ct)));
    arena_free(&a);
}

TEST(codec_vector_produce_v3_request)
{
    static const uint8_t batch[] = {1, 2, 3};
    struct produce_request_topic_partition p = {.index = 0, .records = {.ptr = batch, .len = 3}};
    struct produce_request_topic t = {.name = KSTR("t"), .partition_data = &p, .partition_data_count = 1};
    struct produce_request req = {.transactional_id = {.ptr = NULL, .len = -1}, .acks = -1, .timeout_ms = 1000,
                                  .topic_data = &t, .topic_data_count = 1};
    static const uint8_t want[] = {
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x03, 0xe8, /* null transactional_id, acks -1, timeout */
        0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 't',
        0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 1, 2, 3,
    };
    CHECK(vector(&produce_request_desc, 3, false, &req, want, sizeof(want)));
    /* records point into the input: zero copy */
    struct arena a;
    arena_init(&a);
    struct produce_request back;
    CHECK(decode_all(&produce_request_desc, 3, false, want, sizeof(want), &back, &a, NULL) == 0);
    CHECK(back.topic_data_count == 1 && back.topic_data[0].partition_data_count == 1);
    if (back.topic_data_count == 1 && back.topic_data[0].partition_data_count == 1)
        CHECK(back.topic_data[0].partition_data[0].records.ptr == want + sizeof(want) - 3);
    arena_free(&a);
}

TEST(codec_vector_offset_fetch_groups)
{
    /* v7: one group, a null topics array (all topics); require_stable */
    struct offset_fetch_request v7 = {.group_id = KSTR("g"), .topics = NULL, .topics_count = -1,
                                      .require_stable = true};
    static const uint8_t want_v7[] = {0x02, 'g', 0x00, 0x01, 0x00};
    CHECK(vector(&offset_fetch_request_desc, 7, true, &v7, want_v7, sizeof(want_v7)));

    /* v8 moves group_id and topics into a groups array */
    int32_t parts[] = {0, 7};
    struct offset_fetch_request_group_topic t = {.name = KSTR("t"), .partition_indexes = parts,
                                                 .partition_indexes_count = 2};
    struct offset_fetch_request_group groups[] = {
        {.group_id = KSTR("g"), .member_id = {.ptr = NULL, .len = -1}, .member_epoch = -1, .topics = NULL,
         .topics_count = -1},
        {.group_id = KSTR("h"), .member_id = {.ptr = NULL, .len = -1}, .member_epoch = -1, .topics = &t,
         .topics_count = 1},
    };
    struct offset_fetch_request v8 = {.groups = groups, .groups_count = 2, .require_stable = false};
    static const uint8_t want_v8[] = {
        0x03,                                           /* two groups */
        0x02, 'g', 0x00, 0x00,                          /* "g", all topics, no tags */
        0x02, 'h', 0x02, 0x02, 't', 0x03, 0, 0, 0, 0, 0, 0, 0, 7, 0x00, 0x00,
        0x00, 0x00,                                     /* require_stable, no tags */
    };
    CHECK(vector(&offset_fetch_request_desc, 8, true, &v8, want_v8, sizeof(want_v8)));

    /* v9 adds member_id and member_epoch after group_id */
    groups[1].topics_count = -1;
    groups[1].member_id = KSTR("m");
    groups[1].member_epoch = 5;
    static const uint8_t want_v9[] = {
        0x03, 0x02, 'g', 0x00, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00,
        0x02, 'h', 0x02, 'm', 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00,
    };
    CHECK(vector(&offset_fetch_request_desc, 9, true, &v8, want_v9, sizeof(want_v9)));
}

TEST(codec_dump_is_readable)
{
    struct metadata_request_topic t = {.name = KSTR("a\"b")};
    struct metadata_request m = {.topics = &t, .topics_count = 1, .allow_auto_topic_creation = true};
    struct buf w;
    buf_init(&w);
    kdump(&metadata_request_desc, 4, &m, &w);
    static const char want[] = "{\"topics\": [{\"name\": \"a\\\"b\"}], \"allow_auto_topic_creation\": true}";
    CHECK(w.len == strlen(want) && memcmp(w.data, want, w.len) == 0);
    if (!(w.len == strlen(want) && memcmp(w.data, want, w.len) == 0))
        fprintf(stderr, "    got %.*s\n", (int)w.len, (const char *)w.data);
    buf_free(&w);
}

/* ---------------------------------------------------------------------------------------------
 * Headers. */

TEST(codec_request_header_v1)
{
    /* metadata v1 is not flexible: header v1 = key, version, correlation id, client_id */
    static const uint8_t in[] = {0x00, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00, 0x07, 0x00, 0x04, 'a', 'b', 'c', 'd',
                                 0xff, 0xff, 0xff, 0xff};
    struct kreader r = {.p = in, .end = in + sizeof(in)};
    struct krequest_header h;
    const struct kapi *api = NULL;
    CHECK(kdecode_request_header(&r, &h, &api) == 0);
    CHECK(api != NULL && api->key == KAPI_METADATA);
    CHECK_EQ(h.api_key, 3);
    CHECK_EQ(h.api_version, 1);
    CHECK_EQ(h.correlation_id, 7);
    CHECK(h.client_id.len == 4 && memcmp(h.client_id.ptr, "abcd", 4) == 0);
    CHECK_EQ(r.p - in, 14);
    struct buf w;
    buf_init(&w);
    kencode_request_header(&w, &h, false);
    CHECK(same_bytes(&w, in, 14));
    buf_free(&w);
}

TEST(codec_request_header_v2)
{
    /* metadata v9 is flexible: header v2 adds a tag section; client_id stays int16-prefixed */
    static const uint8_t in[] = {0x00, 0x03, 0x00, 0x09, 0x00, 0x00, 0x00, 0x08, 0xff, 0xff, 0x00, 0x01};
    struct kreader r = {.p = in, .end = in + sizeof(in)};
    struct krequest_header h;
    const struct kapi *api = NULL;
    CHECK(kdecode_request_header(&r, &h, &api) == 0);
    CHECK(api != NULL);
    CHECK_EQ(h.client_id.len, -1);
    CHECK_EQ(r.p - in, 11);
    struct buf w;
    buf_init(&w);
    kencode_request_header(&w, &h, true);
    CHECK(same_bytes(&w, in, 11));
    buf_free(&w);

    /* unknown tags in the header are skipped */
    static const uint8_t tagged[] = {0x00, 0x12, 0x00, 0x03, 0x00, 0x00, 0x00, 0x01, 0x00, 0x02, 'a', 'b',
                                     0x02, 0x00, 0x01, 0xaa, 0x05, 0x00};
    r = (struct kreader){.p = tagged, .end = tagged + sizeof(tagged)};
    CHECK(kdecode_request_header(&r, &h, &api) == 0);
    CHECK(r.p == r.end);
    CHECK(h.client_id.len == 2);

    /* a version past the one we describe still uses header v2 when past flex_min, so the
     * server can answer ApiVersions v4 with UNSUPPORTED_VERSION */
    static const uint8_t v4[] = {0x00, 0x12, 0x00, 0x04, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00};
    r = (struct kreader){.p = v4, .end = v4 + sizeof(v4)};
    CHECK(kdecode_request_header(&r, &h, &api) == 0);
    CHECK(api != NULL && api->key == KAPI_API_VERSIONS && h.api_version == 4);
    CHECK(r.p == r.end);

    /* a truncated tag section is an error */
    static const uint8_t bad[] = {0x00, 0x03, 0x00, 0x09, 0x00, 0x00, 0x00, 0x08, 0xff, 0xff, 0x01, 0x00, 0x05};
    r = (struct kreader){.p = bad, .end = bad + sizeof(bad)};
    CHECK(kdecode_request_header(&r, &h, &api) == -1);
}

TEST(codec_request_header_v0_unknown_key)
{
    /* ControlledShutdown v0 (key 7) is the one user of header v0, and not an API we know: only
     * key, version and correlation id are read */
    static const uint8_t in[] = {0x00, 0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09, 0x00, 0x00, 0x00, 0x01};
    struct kreader r = {.p = in, .end = in + sizeof(in)};
    struct krequest_header h;
    const struct kapi *api = (const struct kapi *)&h;
    CHECK(kdecode_request_header(&r, &h, &api) == 0);
    CHECK(api == NULL);
    CHECK_EQ(h.api_key, 7);
    CHECK_EQ(h.correlation_id, 9);
    CHECK_EQ(r.p - in, 8);

    static const uint8_t short_hdr[] = {0x00, 0x03, 0x00};
    r = (struct kreader){.p = short_hdr, .end = short_hdr + sizeof(short_hdr)};
    CHECK(kdecode_request_header(&r, &h, &api) == -1);
    CHECK(r.error != NULL);
    /* client_id length past the end */
    static const uint8_t bad_client[] = {0x00, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00, 0x07, 0x00, 0x09, 'a'};
    r = (struct kreader){.p = bad_client, .end = bad_client + sizeof(bad_client)};
    CHECK(kdecode_request_header(&r, &h, &api) == -1);
}

TEST(codec_response_headers)
{
    struct buf w;
    buf_init(&w);
    kencode_response_header(&w, 0x01020304, false);
    static const uint8_t v0[] = {1, 2, 3, 4};
    CHECK(same_bytes(&w, v0, sizeof(v0)));
    buf_reset(&w);
    kencode_response_header(&w, 0x01020304, true);
    static const uint8_t v1[] = {1, 2, 3, 4, 0};
    CHECK(same_bytes(&w, v1, sizeof(v1)));
    struct kreader r = {.p = w.data, .end = w.data + w.len};
    int32_t corr = 0;
    CHECK(kdecode_response_header(&r, &corr, true) == 0);
    CHECK_EQ(corr, 0x01020304);
    CHECK(r.p == r.end);
    buf_free(&w);
}

/* ---------------------------------------------------------------------------------------------
 * Primitives and hostile input. */

TEST(codec_varints)
{
    static const int64_t values[] = {0, 1, -1, 63, -64, 64, 300, -300, INT32_MAX, INT32_MIN, INT64_MAX, INT64_MIN};
    struct buf w;
    buf_init(&w);
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        buf_reset(&w);
        buf_put_varint(&w, values[i]);
        struct kreader r = {.p = w.data, .end = w.data + w.len};
        CHECK_EQ(kread_varint(&r), values[i]);
        CHECK(r.p == r.end && !r.error);
    }
    buf_reset(&w);
    buf_put_uvarint(&w, UINT64_MAX);
    CHECK_EQ(w.len, 10);
    struct kreader r = {.p = w.data, .end = w.data + w.len};
    CHECK(kread_uvarint(&r) == UINT64_MAX && !r.error);
    buf_free(&w);

    /* eleven bytes, or a tenth byte above 1, overflow 64 bits */
    static const uint8_t too_long[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01};
    r = (struct kreader){.p = too_long, .end = too_long + sizeof(too_long)};
    kread_uvarint(&r);
    CHECK(r.error != NULL);
    static const uint8_t overflow[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02};
    r = (struct kreader){.p = overflow, .end = overflow + sizeof(overflow)};
    kread_uvarint(&r);
    CHECK(r.error != NULL);
    static const uint8_t cut[] = {0x80, 0x80};
    r = (struct kreader){.p = cut, .end = cut + sizeof(cut)};
    CHECK(kread_uvarint(&r) == 0 && r.error != NULL);
    /* after an error every read returns 0 */
    CHECK(kread_i32(&r) == 0);
}

static int rejects(const struct kmsg_desc *d, int16_t ver, bool flex, const uint8_t *in, size_t n)
{
    struct arena a;
    arena_init(&a);
    void *out = arena_alloc(&a, d->size);
    struct kreader r = {.p = in, .end = in + n};
    int rc = kdecode(d, ver, flex, &r, out, &a);
    arena_free(&a);
    return rc == -1 && r.error != NULL;
}

TEST(codec_rejects_malformed_input)
{
    /* negative lengths other than -1 */
    static const uint8_t neg_count[] = {0xff, 0xff, 0xff, 0xfe};
    CHECK(rejects(&metadata_request_desc, 1, false, neg_count, sizeof(neg_count)));
    static const uint8_t neg_string[] = {0xff, 0xfe, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
    CHECK(rejects(&produce_request_desc, 3, false, neg_string, sizeof(neg_string)));
    static const uint8_t neg_records[] = {0xff, 0xff, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
                                          0x00, 0x01, 't', 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
                                          0xff, 0xff, 0xff, 0xf0};
    CHECK(rejects(&produce_request_desc, 3, false, neg_records, sizeof(neg_records)));

    /* huge counts must fail before allocating anything */
    static const uint8_t huge[] = {0x7f, 0xff, 0xff, 0xff, 0x00, 0x01, 'a'};
    CHECK(rejects(&metadata_request_desc, 1, false, huge, sizeof(huge)));
    static const uint8_t huge_compact[] = {0xff, 0xff, 0xff, 0xff, 0x07, 0x00};
    CHECK(rejects(&metadata_request_desc, 9, true, huge_compact, sizeof(huge_compact)));
    static const uint8_t over32[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x00};
    CHECK(rejects(&metadata_request_desc, 9, true, over32, sizeof(over32)));
    /* produce v0 topic: 3 claimed partitions of at least 8 bytes each, in 20 bytes */
    static const uint8_t three_partitions[] = {0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                               0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    CHECK(rejects(&produce_request_topic_desc, 0, false, three_partitions, sizeof(three_partitions)));
    static const uint8_t huge_tags[] = {0x01, 0x01, 0x00, 0x00, 0x7f, 0x00};
    CHECK(rejects(&metadata_request_desc, 9, true, huge_tags, sizeof(huge_tags)));
    static const uint8_t tag_too_big[] = {0x01, 0x01, 0x00, 0x00, 0x01, 0x03, 0x7f, 0x00};
    CHECK(rejects(&metadata_request_desc, 9, true, tag_too_big, sizeof(tag_too_big)));

    /* null where the version does not allow it */
    static const uint8_t null_name[] = {0x00, 0x00, 0x00, 0x01, 0xff, 0xff};
    CHECK(rejects(&metadata_request_desc, 1, false, null_name, sizeof(null_name)));
    static const uint8_t null_compact_name[] = {0x02, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00};
    CHECK(rejects(&metadata_request_desc, 9, true, null_compact_name, sizeof(null_compact_name)));
    static const uint8_t null_array_v0[] = {0xff, 0xff, 0xff, 0xff};
    CHECK(rejects(&metadata_request_desc, 0, false, null_array_v0, sizeof(null_array_v0)));

    /* a string longer than the input, and longer than a string may be */
    static const uint8_t long_string[] = {0x00, 0x00, 0x00, 0x01, 0x00, 0x05, 'a'};
    CHECK(rejects(&metadata_request_desc, 1, false, long_string, sizeof(long_string)));
    uint8_t big[40000];
    memset(big, 'x', sizeof(big));
    big[0] = 0x02;
    big[1] = 0x81; /* compact length 32769 - 1 = 32768 > 32767 */
    big[2] = 0x80;
    big[3] = 0x02;
    CHECK(rejects(&metadata_request_desc, 9, true, big, sizeof(big)));

    /* varints in lengths that run past 64 bits */
    static const uint8_t bad_varint[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    CHECK(rejects(&metadata_request_desc, 9, true, bad_varint, sizeof(bad_varint)));
    static const uint8_t nothing[1];
    CHECK(rejects(&metadata_request_desc, 9, true, nothing, 0));
}

/* Random damage to valid encodings: decoding must never crash, and whatever decodes must
 * re-encode to something that decodes to the same encoding again (the fuzz target's property). */
TEST(codec_survives_corrupted_messages)
{
    uint32_t rng = 12345;
    int decoded = 0, rejected = 0;
    for (size_t i = 0; i < kapi_table_len; i++) {
        const struct kapi *api = &kapi_table[i];
        for (int16_t v = api->min_ver; v <= api->max_ver; v++) {
            for (int dir = 0; dir < 2; dir++) {
                const struct kmsg_desc *d = dir ? api->response : api->request;
                bool flex = flexible(api, v);
                struct arena a;
                arena_init(&a);
                struct filler fl = {.arena = &a, .seq = (uint32_t)v * 3};
                void *msg = arena_alloc(&a, d->size);
                fill_struct(d, v, &fl, msg);
                struct buf orig;
                buf_init(&orig);
                kencode(d, v, flex, &orig, msg);
                for (int round = 0; round < 40 && orig.len; round++) {
                    uint8_t *copy = malloc(orig.len);
                    memcpy(copy, orig.data, orig.len);
                    for (int k = 0; k < 1 + round % 4; k++) {
                        rng = rng * 1103515245 + 12345;
                        copy[(rng >> 8) % orig.len] = (uint8_t)(rng >> 20);
                    }
                    struct arena da;
                    arena_init(&da);
                    void *out = arena_alloc(&da, d->size);
                    struct kreader r = {.p = copy, .end = copy + orig.len};
                    if (kdecode(d, v, flex, &r, out, &da) == 0) {
                        decoded++;
                        struct buf e1, e2;
                        buf_init(&e1);
                        buf_init(&e2);
                        kencode(d, v, flex, &e1, out);
                        void *again = arena_alloc(&da, d->size);
                        struct kreader r2 = {.p = bytes_of(&e1), .end = bytes_of(&e1) + e1.len};
                        CHECK(kdecode(d, v, flex, &r2, again, &da) == 0);
                        CHECK(r2.p == r2.end);
                        kencode(d, v, flex, &e2, again);
                        CHECK(same_buf(&e1, &e2));
                        buf_free(&e1);
                        buf_free(&e2);
                    } else {
                        rejected++;
                    }
                    arena_free(&da);
                    free(copy);
                }
                buf_free(&orig);
                arena_free(&a);
            }
        }
    }
    CHECK(decoded > 0);
    CHECK(rejected > 0);
}

/* ---------------------------------------------------------------------------------------------
 * Frames captured from real clients (tests/tools/capture_server.py; see the comments in the
 * files). Read relative to the repository root, where the test runner starts. */

#define MAX_FRAMES 8

struct frame {
    uint8_t *data;
    size_t len;
};

/* Reads the hex lines of a capture file ('#' lines are comments). Returns the frame count,
 * -1 if the file cannot be read or holds something else than hex. */
static int load_frames(const char *path, struct frame *frames, int max)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "    cannot open %s (run the tests from the repository root)\n", path);
        return -1;
    }
    char line[8192];
    int n = 0;
    while (fgets(line, sizeof(line), f)) {
        size_t len = strcspn(line, "\r\n");
        if (len == 0 || line[0] == '#')
            continue;
        if (n == max || len % 2) {
            n = -1;
            break;
        }
        uint8_t *data = malloc(len / 2 + 1);
        for (size_t i = 0; i < len / 2; i++) {
            int hi = hex_digit_value(line[2 * i]), lo = hex_digit_value(line[2 * i + 1]);
            if (hi < 0 || lo < 0) {
                free(data);
                fclose(f);
                return -1;
            }
            data[i] = (uint8_t)(hi << 4 | lo);
        }
        frames[n].data = data;
        frames[n].len = len / 2;
        n++;
    }
    fclose(f);
    return n;
}

static void free_frames(struct frame *frames, int n)
{
    for (int i = 0; i < n; i++)
        free(frames[i].data);
}

struct decoded_frame {
    struct krequest_header h;
    const struct kapi *api;
    void *body;
};

/* Decodes header and body of a captured frame, and checks that encoding them again gives
 * exactly the captured bytes. Returns 0 if all is well. */
static int decode_frame(const struct frame *fr, struct decoded_frame *out, struct arena *a)
{
    struct kreader r = {.p = fr->data, .end = fr->data + fr->len};
    if (kdecode_request_header(&r, &out->h, &out->api) != 0 || !out->api) {
        fprintf(stderr, "    header: %s\n", r.error ? r.error : "unknown api");
        return 1;
    }
    const struct kapi *api = out->api;
    int16_t ver = out->h.api_version;
    if (ver < api->min_ver || ver > api->max_ver)
        return 1;
    bool flex = kapi_is_flexible(api, ver);
    out->body = arena_alloc(a, api->request->size);
    if (kdecode(api->request, ver, flex, &r, out->body, a) != 0 || r.p != r.end) {
        fprintf(stderr, "    %s v%d body: %s\n", api->name, ver, r.error ? r.error : "bytes left over");
        return 1;
    }
    struct buf w;
    buf_init(&w);
    kencode_request_header(&w, &out->h, flex);
    kencode(api->request, ver, flex, &w, out->body);
    int bad = !same_bytes(&w, fr->data, fr->len);
    buf_free(&w);
    return bad;
}

static bool kstr_is(struct kstr s, const char *want)
{
    return s.len >= 0 && (size_t)s.len == strlen(want) && memcmp(s.ptr, want, (size_t)s.len) == 0;
}

TEST(codec_captured_kcat_api_versions)
{
    struct frame fr[MAX_FRAMES];
    struct arena a;
    arena_init(&a);
    struct decoded_frame d;

    int n = load_frames("tests/data/kcat_apiversions_v3.hex", fr, MAX_FRAMES);
    CHECK_EQ(n, 1);
    if (n == 1 && decode_frame(&fr[0], &d, &a) == 0) {
        const struct api_versions_request *req = d.body;
        CHECK_EQ(d.h.api_key, KAPI_API_VERSIONS);
        CHECK_EQ(d.h.api_version, 3);
        CHECK_EQ(d.h.correlation_id, 1);
        CHECK(kstr_is(d.h.client_id, "rdkafka"));
        CHECK(kstr_is(req->client_software_name, "librdkafka"));
        CHECK(kstr_is(req->client_software_version, "2.0.2"));
    } else {
        CHECK(!"kcat ApiVersions v3 frame decodes and re-encodes exactly");
    }
    free_frames(fr, n);

    /* the retry after a KIP-511 refusal: v0, header v1, empty body */
    n = load_frames("tests/data/kcat_apiversions_v0.hex", fr, MAX_FRAMES);
    CHECK_EQ(n, 1);
    if (n == 1 && decode_frame(&fr[0], &d, &a) == 0) {
        CHECK_EQ(d.h.api_version, 0);
        CHECK(kstr_is(d.h.client_id, "rdkafka"));
        CHECK_EQ(fr[0].len, 17);
    } else {
        CHECK(!"kcat ApiVersions v0 frame decodes and re-encodes exactly");
    }
    free_frames(fr, n);
    arena_free(&a);
}

TEST(codec_captured_kcat_metadata_and_produce)
{
    struct frame fr[MAX_FRAMES];
    struct arena a;
    arena_init(&a);
    struct decoded_frame d;

    int n = load_frames("tests/data/kcat_metadata_v4.hex", fr, MAX_FRAMES);
    CHECK_EQ(n, 1);
    if (n == 1 && decode_frame(&fr[0], &d, &a) == 0) {
        const struct metadata_request *req = d.body;
        CHECK_EQ(d.h.api_key, KAPI_METADATA);
        CHECK_EQ(d.h.api_version, 4);
        CHECK_EQ(req->topics_count, 1);
        if (req->topics_count == 1)
            CHECK(kstr_is(req->topics[0].name, "sluice-test"));
        CHECK(req->allow_auto_topic_creation);
    } else {
        CHECK(!"kcat Metadata v4 frame decodes and re-encodes exactly");
    }
    free_frames(fr, n);

    n = load_frames("tests/data/kcat_produce_v7.hex", fr, MAX_FRAMES);
    CHECK_EQ(n, 1);
    if (n == 1 && decode_frame(&fr[0], &d, &a) == 0) {
        const struct produce_request *req = d.body;
        CHECK_EQ(d.h.api_key, KAPI_PRODUCE);
        CHECK_EQ(d.h.api_version, 7);
        CHECK_EQ(req->transactional_id.len, -1);
        CHECK_EQ(req->acks, -1);
        CHECK_EQ(req->timeout_ms, 30000);
        CHECK_EQ(req->topic_data_count, 1);
        if (req->topic_data_count == 1) {
            const struct produce_request_topic *t = &req->topic_data[0];
            CHECK(kstr_is(t->name, "sluice-test"));
            CHECK_EQ(t->partition_data_count, 1);
            if (t->partition_data_count == 1) {
                struct kbytes rec = t->partition_data[0].records;
                CHECK_EQ(t->partition_data[0].index, 0);
                CHECK_EQ(rec.len, 75);
                /* one record batch: batchLength = len - 12, magic 2, one record */
                if (rec.len == 75) {
                    CHECK_EQ(be32_get(rec.ptr + 8), 75 - 12);
                    CHECK_EQ(rec.ptr[16], 2);
                    CHECK_EQ(be32_get(rec.ptr + 57), 1);
                }
            }
        }
    } else {
        CHECK(!"kcat Produce v7 frame decodes and re-encodes exactly");
    }
    free_frames(fr, n);
    arena_free(&a);
}

TEST(codec_captured_confluent_python_admin)
{
    struct frame fr[MAX_FRAMES];
    struct arena a;
    arena_init(&a);
    struct decoded_frame d[MAX_FRAMES];
    int n = load_frames("tests/data/confluent_python_admin.hex", fr, MAX_FRAMES);
    CHECK_EQ(n, 4);
    bool ok = n == 4;
    for (int i = 0; i < n; i++)
        if (decode_frame(&fr[i], &d[i], &a) != 0)
            ok = false;
    CHECK(ok);
    if (ok) {
        const struct api_versions_request *av = d[0].body;
        CHECK_EQ(d[0].h.api_key, KAPI_API_VERSIONS);
        CHECK(kstr_is(d[0].h.client_id, "sluice-capture"));
        CHECK(kstr_is(av->client_software_name, "confluent-kafka-python"));
        CHECK(kstr_is(av->client_software_version, "1.7.0-rdkafka-2.0.2"));

        const struct metadata_request *md = d[1].body;
        CHECK_EQ(d[1].h.api_version, 4);
        CHECK_EQ(md->topics_count, 0); /* v1+: empty = no topics, brokers only */
        CHECK(!md->allow_auto_topic_creation);

        const struct create_topics_request *ct = d[2].body;
        CHECK_EQ(d[2].h.api_key, KAPI_CREATE_TOPICS);
        CHECK_EQ(d[2].h.api_version, 4);
        CHECK_EQ(ct->topics_count, 1);
        if (ct->topics_count == 1) {
            const struct create_topics_request_topic *t = &ct->topics[0];
            CHECK(kstr_is(t->name, "captured-topic"));
            CHECK_EQ(t->num_partitions, 3);
            CHECK_EQ(t->replication_factor, 1);
            CHECK_EQ(t->assignments_count, 0);
            CHECK_EQ(t->configs_count, 1);
            if (t->configs_count == 1) {
                CHECK(kstr_is(t->configs[0].name, "cleanup.policy"));
                CHECK(kstr_is(t->configs[0].value, "compact"));
            }
        }
        CHECK_EQ(ct->timeout_ms, 60000);
        CHECK(!ct->validate_only);

        const struct delete_topics_request *dt = d[3].body;
        CHECK_EQ(d[3].h.api_key, KAPI_DELETE_TOPICS);
        CHECK_EQ(d[3].h.api_version, 1);
        CHECK_EQ(dt->topic_names_count, 1);
        if (dt->topic_names_count == 1)
            CHECK(kstr_is(dt->topic_names[0], "old-topic"));
        CHECK_EQ(dt->timeout_ms, 60000);
    }
    free_frames(fr, n);
    arena_free(&a);
}

TEST(codec_captured_kcat_consumer_group)
{
    struct frame fr[MAX_FRAMES];
    struct arena a;
    arena_init(&a);
    struct decoded_frame d[2];
    int n = load_frames("tests/data/kcat_consumer_group.hex", fr, MAX_FRAMES);
    CHECK_EQ(n, 2);
    bool ok = n == 2 && decode_frame(&fr[0], &d[0], &a) == 0 && decode_frame(&fr[1], &d[1], &a) == 0;
    CHECK(ok);
    if (ok) {
        const struct find_coordinator_request *fc = d[0].body;
        CHECK_EQ(d[0].h.api_key, KAPI_FIND_COORDINATOR);
        CHECK_EQ(d[0].h.api_version, 2);
        CHECK(kstr_is(d[0].h.client_id, "sluice-consumer"));
        CHECK(kstr_is(fc->key, "sluice-group"));
        CHECK_EQ(fc->key_type, 0);

        const struct join_group_request *jg = d[1].body;
        CHECK_EQ(d[1].h.api_key, KAPI_JOIN_GROUP);
        CHECK_EQ(d[1].h.api_version, 5);
        CHECK(kstr_is(jg->group_id, "sluice-group"));
        CHECK_EQ(jg->session_timeout_ms, 45000);
        CHECK_EQ(jg->rebalance_timeout_ms, 300000);
        CHECK(kstr_is(jg->member_id, ""));
        CHECK_EQ(jg->group_instance_id.len, -1);
        CHECK(kstr_is(jg->protocol_type, "consumer"));
        CHECK_EQ(jg->protocols_count, 2);
        if (jg->protocols_count == 2) {
            CHECK(kstr_is(jg->protocols[0].name, "range"));
            CHECK(kstr_is(jg->protocols[1].name, "roundrobin"));
            /* consumer protocol subscription v1: version, one topic "sluice-test", ... */
            CHECK_EQ(jg->protocols[0].metadata.len, 27);
            if (jg->protocols[0].metadata.len == 27)
                CHECK(memcmp(jg->protocols[0].metadata.ptr + 8, "sluice-test", 11) == 0);
        }
    }
    free_frames(fr, n);
    arena_free(&a);
}
