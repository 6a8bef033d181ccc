/* libFuzzer target for the Kafka codec.
 *
 * Input: one selector byte, then
 *   even selector: a request frame without its length prefix (header + body), as a broker
 *                  receives it;
 *   odd selector:  int16 api key, int16 api version, then a response body (no header), as a
 *                  client receives it.
 * Whatever decodes must encode, decode again and encode to the same bytes; a mismatch aborts.
 * The sanitizers catch the rest (out-of-bounds reads, overflows, leaks). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "messages.h"
#include "protocol/codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_same(const struct buf *a, const struct buf *b, const char *what)
{
    if (a->len != b->len || (a->len && memcmp(a->data, b->data, a->len) != 0)) {
        fprintf(stderr, "fuzz_request: %s: encoding of the decoded encoding differs\n", what);
        abort();
    }
}

/* Decodes the encoding again and checks its encoding is identical. */
static void check_stable(const struct kmsg_desc *d, int16_t ver, bool flex, const struct buf *first,
                         struct arena *a)
{
    static const uint8_t none[1];
    const uint8_t *p = first->data ? first->data : none;
    struct kreader r = {.p = p, .end = p + first->len};
    void *again = arena_alloc(a, d->size);
    if (kdecode(d, ver, flex, &r, again, a) != 0 || r.p != r.end) {
        fprintf(stderr, "fuzz_request: %s v%d: own encoding does not decode: %s\n", d->name, ver,
                r.error ? r.error : "bytes left over");
        abort();
    }
    struct buf second;
    buf_init(&second);
    kencode(d, ver, flex, &second, again);
    check_same(first, &second, d->name);
    buf_free(&second);

    struct buf dump; /* the dump walks everything too */
    buf_init(&dump);
    kdump(d, ver, again, &dump);
    buf_free(&dump);
}

static void fuzz_request(const uint8_t *data, size_t size, struct arena *a)
{
    struct kreader r = {.p = data, .end = data + size};
    struct krequest_header h;
    const struct kapi *api;
    if (kdecode_request_header(&r, &h, &api) != 0 || !api)
        return;
    int16_t ver = h.api_version;
    if (ver < api->min_ver || ver > api->max_ver)
        return;
    bool flex = kapi_is_flexible(api, ver);
    void *body = arena_alloc(a, api->request->size);
    if (kdecode(api->request, ver, flex, &r, body, a) != 0)
        return;

    /* header + body as one frame, then the same frame decoded again */
    struct buf first;
    buf_init(&first);
    kencode_request_header(&first, &h, flex);
    kencode(api->request, ver, flex, &first, body);
    struct kreader r2 = {.p = first.data, .end = first.data + first.len};
    struct krequest_header h2;
    const struct kapi *api2;
    if (kdecode_request_header(&r2, &h2, &api2) != 0 || api2 != api || h2.api_version != ver ||
        h2.correlation_id != h.correlation_id) {
        fprintf(stderr, "fuzz_request: re-encoded header does not decode the same\n");
        abort();
    }
    struct buf rest;
    buf_init(&rest);
    buf_append(&rest, r2.p, (size_t)(r2.end - r2.p));
    check_stable(api->request, ver, flex, &rest, a);
    buf_free(&rest);
    buf_free(&first);
}

static void fuzz_response(const uint8_t *data, size_t size, struct arena *a)
{
    struct kreader r = {.p = data, .end = data + size};
    int16_t key = kread_i16(&r);
    int16_t ver = kread_i16(&r);
    if (r.error)
        return;
    const struct kapi *api = kapi_find(key);
    if (!api || ver < api->min_ver || ver > api->max_ver)
        return;
    bool flex = kapi_is_flexible(api, ver);
    void *body = arena_alloc(a, api->response->size);
    if (kdecode(api->response, ver, flex, &r, body, a) != 0)
        return;
    struct buf first;
    buf_init(&first);
    kencode(api->response, ver, flex, &first, body);
    check_stable(api->response, ver, flex, &first, a);
    buf_free(&first);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    struct arena a;
    arena_init(&a);
    if (data[0] & 1)
        fuzz_response(data + 1, size - 1, &a);
    else
        fuzz_request(data + 1, size - 1, &a);
    arena_free(&a);
    return 0;
}
