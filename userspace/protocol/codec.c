/* The generic Kafka codec: walks the kfield tables generated from the schema files, so one
 * decoder and one encoder serve every API at every version.
 *
 * The wire rules, all in this file:
 *  - Integers are big-endian, uuid is 16 raw bytes, float64 is an IEEE-754 double, bool one byte.
 *  - Classic (non-flexible) versions: strings have an int16 length, bytes/records an int32
 *    length, arrays an int32 count; -1 means null.
 *  - Flexible versions: the same lengths and counts as an unsigned varint of (n + 1), 0 = null.
 *    Every struct (the message and each array element) ends with a tagged-field section:
 *    uvarint count, then per field uvarint tag, uvarint size, value; tags in ascending order.
 *
 * Decoding is written for hostile input: every length is checked against the bytes left before
 * anything is allocated or read, and a claimed array count must fit in the remaining bytes at
 * the smallest possible element size. Recursion follows the nesting of the schema, never the
 * input, so its depth is fixed at build time. */
#include "protocol/codec.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------------
 * Reading primitives. After the first error every read returns 0, so callers may read a few
 * fields and check r->error once. */

static bool fail(struct kreader *r, const char *why)
{
    if (!r->error)
        r->error = why;
    return false;
}

static size_t remaining(const struct kreader *r) { return (size_t)(r->end - r->p); }

/* The next n bytes, or NULL (and an error) if there are fewer. */
static const uint8_t *take(struct kreader *r, size_t n)
{
    if (r->error)
        return NULL;
    if (remaining(r) < n) {
        fail(r, "truncated");
        return NULL;
    }
    const uint8_t *p = r->p;
    r->p += n;
    return p;
}

int8_t kread_i8(struct kreader *r)
{
    const uint8_t *p = take(r, 1);
    return p ? (int8_t)p[0] : 0;
}

int16_t kread_i16(struct kreader *r)
{
    const uint8_t *p = take(r, 2);
    return p ? (int16_t)be16_get(p) : 0;
}

int32_t kread_i32(struct kreader *r)
{
    const uint8_t *p = take(r, 4);
    return p ? (int32_t)be32_get(p) : 0;
}

int64_t kread_i64(struct kreader *r)
{
    const uint8_t *p = take(r, 8);
    return p ? (int64_t)be64_get(p) : 0;
}

uint64_t kread_uvarint(struct kreader *r)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        const uint8_t *p = take(r, 1);
        if (!p)
            return 0;
        if (shift == 63 && *p > 1)
            break; /* the tenth byte may only hold the 64th bit */
        v |= (uint64_t)(*p & 0x7f) << shift;
        if (!(*p & 0x80))
            return v;
    }
    fail(r, "varint too long");
    return 0;
}

int64_t kread_varint(struct kreader *r)
{
    uint64_t u = kread_uvarint(r);
    return (int64_t)(u >> 1) ^ -(int64_t)(u & 1); /* zig-zag */
}

/* ---------------------------------------------------------------------------------------------
 * Helpers shared by decoder and encoder. */

static bool present(const struct kfield *f, int16_t ver) { return ver >= f->min_ver && ver <= f->max_ver; }
static bool nullable(const struct kfield *f, int16_t ver) { return ver >= f->null_min_ver; }

/* Fields store pointers of many struct types; going through memcpy keeps that free of aliasing
 * questions. */
static void *get_ptr(const uint8_t *base, const struct kfield *f)
{
    void *p;
    memcpy(&p, base + f->offset, sizeof(p));
    return p;
}

static void set_ptr(uint8_t *base, const struct kfield *f, void *p) { memcpy(base + f->offset, &p, sizeof(p)); }

static int32_t *count_of(uint8_t *base, const struct kfield *f) { return (int32_t *)(base + f->count_offset); }

static int32_t get_count(const uint8_t *base, const struct kfield *f)
{
    return *(const int32_t *)(base + f->count_offset);
}

/* Bytes one array element occupies in memory. */
static size_t elem_mem_size(const struct kfield *f)
{
    if (f->elem)
        return f->elem->size;
    switch (f->elem_type) {
    case KT_INT8: case KT_BOOL: return 1;
    case KT_INT16: case KT_UINT16: return 2;
    case KT_INT32: return 4;
    case KT_INT64: case KT_FLOAT64: return 8;
    case KT_UUID: return sizeof(struct kuuid);
    case KT_STRING: return sizeof(struct kstr);
    case KT_BYTES: case KT_RECORDS: return sizeof(struct kbytes);
    case KT_ARRAY: break; /* arrays of arrays are not a Kafka thing */
    }
    return 0;
}

/* The fewest bytes a value of this type can take on the wire. */
static size_t min_wire_size(enum kfield_type t, bool flex)
{
    switch (t) {
    case KT_INT8: case KT_BOOL: return 1;
    case KT_INT16: case KT_UINT16: return 2;
    case KT_INT32: return 4;
    case KT_INT64: case KT_FLOAT64: return 8;
    case KT_UUID: return 16;
    case KT_STRING: return flex ? 1 : 2;
    case KT_BYTES: case KT_RECORDS: case KT_ARRAY: return flex ? 1 : 4;
    }
    return 1;
}

/* The fewest bytes one array element can take: bounds the count an input may claim. Never 0,
 * so even elements with no fields at this version cannot be claimed more often than there
 * are bytes left. */
static size_t min_elem_wire_size(const struct kfield *f, int16_t ver, bool flex)
{
    if (!f->elem)
        return min_wire_size(f->elem_type, flex);
    size_t n = flex ? 1 : 0; /* the empty tagged-field section */
    for (int i = 0; i < f->elem->nfields; i++) {
        const struct kfield *g = &f->elem->fields[i];
        if (g->tag < 0 && present(g, ver))
            n += min_wire_size(g->type, flex);
    }
    return n ? n : 1;
}

/* ---------------------------------------------------------------------------------------------
 * Defaults: the value of a field that is absent at this version or a tagged field not sent. */

static void apply_default(const struct kfield *f, uint8_t *base)
{
    void *v = base + f->offset;
    int64_t d = f->default_int;
    switch (f->type) {
    case KT_INT8: *(int8_t *)v = (int8_t)d; break;
    case KT_INT16: *(int16_t *)v = (int16_t)d; break;
    case KT_INT32: *(int32_t *)v = (int32_t)d; break;
    case KT_INT64: *(int64_t *)v = d; break;
    case KT_UINT16: *(uint16_t *)v = (uint16_t)d; break;
    case KT_BOOL: *(bool *)v = d != 0; break;
    case KT_FLOAT64: *(double *)v = (double)d; break;
    case KT_UUID: memset(v, 0, sizeof(struct kuuid)); break;
    /* For strings, bytes and arrays default_int -1 means "null by default", 0 "empty". */
    case KT_STRING: ((struct kstr *)v)->ptr = NULL; ((struct kstr *)v)->len = d == -1 ? -1 : 0; break;
    case KT_BYTES: case KT_RECORDS:
        ((struct kbytes *)v)->ptr = NULL;
        ((struct kbytes *)v)->len = d == -1 ? -1 : 0;
        break;
    case KT_ARRAY: set_ptr(base, f, NULL); *count_of(base, f) = d == -1 ? -1 : 0; break;
    }
}

/* The length a string, bytes or array field has on the wire: a null where the version does
 * not allow one is sent as empty. */
static int64_t wire_len(int64_t len, bool can_be_null) { return len < 0 ? (can_be_null ? -1 : 0) : len; }

/* Whether a tagged field holds its default value (then it is not sent). */
static bool is_default(const struct kfield *f, int16_t ver, const uint8_t *base)
{
    const void *v = base + f->offset;
    int64_t d = f->default_int;
    int64_t empty = d == -1 ? -1 : 0; /* the default length of strings, bytes and arrays */
    switch (f->type) {
    case KT_INT8: return *(const int8_t *)v == d;
    case KT_INT16: return *(const int16_t *)v == d;
    case KT_INT32: return *(const int32_t *)v == d;
    case KT_INT64: return *(const int64_t *)v == d;
    case KT_UINT16: return *(const uint16_t *)v == d;
    case KT_BOOL: return *(const bool *)v == (d != 0);
    case KT_FLOAT64: {
        double x;
        memcpy(&x, v, sizeof(x));
        return x == (double)d;
    }
    case KT_UUID: {
        static const struct kuuid zero;
        return memcmp(v, &zero, sizeof(zero)) == 0;
    }
    case KT_STRING: return wire_len(((const struct kstr *)v)->len, nullable(f, ver)) == empty;
    case KT_BYTES: case KT_RECORDS: return wire_len(((const struct kbytes *)v)->len, nullable(f, ver)) == empty;
    case KT_ARRAY: return wire_len(get_count(base, f), nullable(f, ver)) == empty;
    }
    return true;
}

/* ---------------------------------------------------------------------------------------------
 * Decoder. */

static bool decode_struct(const struct kmsg_desc *d, int16_t ver, bool flex, struct kreader *r, uint8_t *base,
                          struct arena *a);

/* A string/bytes length or array count. Classic: int16 (short_len) or int32, -1 = null.
 * Compact: uvarint of n + 1, 0 = null. Returns -1 for null, -2 on error. */
static int64_t read_length(struct kreader *r, bool flex, bool short_len)
{
    int64_t n;
    if (flex) {
        uint64_t u = kread_uvarint(r);
        if (r->error)
            return -2;
        if (u > (uint64_t)INT32_MAX + 1) {
            fail(r, "length does not fit in 32 bits");
            return -2;
        }
        n = (int64_t)u - 1;
    } else {
        n = short_len ? kread_i16(r) : kread_i32(r);
        if (r->error)
            return -2;
        if (n < -1) {
            fail(r, "negative length");
            return -2;
        }
    }
    return n;
}

/* Reads a length and the bytes it announces. Returns false on error; *len = -1 for null. */
static bool read_sized(struct kreader *r, bool flex, bool short_len, bool can_be_null, const uint8_t **ptr,
                       int32_t *len)
{
    int64_t n = read_length(r, flex, short_len);
    if (n == -2)
        return false;
    if (n == -1) {
        if (!can_be_null)
            return fail(r, "null in a non-nullable field");
        *ptr = NULL;
        *len = -1;
        return true;
    }
    if (short_len && n > INT16_MAX)
        return fail(r, "string longer than 32767 bytes");
    const uint8_t *p = take(r, (size_t)n);
    if (!p)
        return false;
    *ptr = p;
    *len = (int32_t)n;
    return true;
}

/* A value of a primitive (non-array) type into *v. */
static bool decode_scalar(enum kfield_type t, bool can_be_null, bool flex, struct kreader *r, void *v)
{
    switch (t) {
    case KT_INT8: *(int8_t *)v = kread_i8(r); break;
    case KT_INT16: *(int16_t *)v = kread_i16(r); break;
    case KT_INT32: *(int32_t *)v = kread_i32(r); break;
    case KT_INT64: *(int64_t *)v = kread_i64(r); break;
    case KT_UINT16: *(uint16_t *)v = (uint16_t)kread_i16(r); break;
    case KT_BOOL: *(bool *)v = kread_i8(r) != 0; break;
    case KT_FLOAT64: {
        uint64_t bits = (uint64_t)kread_i64(r);
        memcpy(v, &bits, sizeof(bits)); /* bit-exact, NaN payloads included */
        break;
    }
    case KT_UUID: {
        const uint8_t *p = take(r, sizeof(struct kuuid));
        if (p)
            memcpy(v, p, sizeof(struct kuuid));
        break;
    }
    case KT_STRING: {
        struct kstr *s = v;
        const uint8_t *p = NULL;
        if (!read_sized(r, flex, true, can_be_null, &p, &s->len))
            return false;
        s->ptr = (const char *)p;
        break;
    }
    case KT_BYTES:
    case KT_RECORDS: {
        struct kbytes *b = v;
        return read_sized(r, flex, false, can_be_null, &b->ptr, &b->len);
    }
    case KT_ARRAY:
        return fail(r, "nested primitive arrays are not supported");
    }
    return !r->error;
}

static bool decode_array(const struct kfield *f, int16_t ver, bool flex, struct kreader *r, uint8_t *base,
                         struct arena *a)
{
    int64_t n = read_length(r, flex, false);
    if (n == -2)
        return false;
    if (n == -1) {
        if (!nullable(f, ver))
            return fail(r, "null array in a non-nullable field");
        set_ptr(base, f, NULL);
        *count_of(base, f) = -1;
        return true;
    }
    /* Refuse counts the input cannot back before allocating anything. */
    if ((uint64_t)n > remaining(r) / min_elem_wire_size(f, ver, flex))
        return fail(r, "array count exceeds the remaining bytes");
    size_t esize = elem_mem_size(f);
    uint8_t *items = n ? arena_alloc(a, (size_t)n * esize) : NULL;
    set_ptr(base, f, items);
    *count_of(base, f) = (int32_t)n;
    for (int64_t i = 0; i < n; i++) {
        uint8_t *item = items + (size_t)i * esize;
        bool ok = f->elem ? decode_struct(f->elem, ver, flex, r, item, a)
                          : decode_scalar(f->elem_type, false, flex, r, item);
        if (!ok)
            return false;
    }
    return true;
}

static bool decode_field(const struct kfield *f, int16_t ver, bool flex, struct kreader *r, uint8_t *base,
                         struct arena *a)
{
    if (f->type == KT_ARRAY)
        return decode_array(f, ver, flex, r, base, a);
    return decode_scalar(f->type, nullable(f, ver), flex, r, base + f->offset);
}

static const struct kfield *find_tag(const struct kmsg_desc *d, int16_t ver, uint64_t tag)
{
    for (int i = 0; i < d->nfields; i++) {
        const struct kfield *f = &d->fields[i];
        if (f->tag >= 0 && (uint64_t)f->tag == tag && present(f, ver))
            return f;
    }
    return NULL;
}

/* The tagged-field section that ends every struct in flexible versions: known tags are decoded
 * (each must fill exactly its announced size), unknown ones skipped. */
static bool decode_tagged_fields(const struct kmsg_desc *d, int16_t ver, struct kreader *r, uint8_t *base,
                                 struct arena *a)
{
    uint64_t n = kread_uvarint(r);
    if (r->error)
        return false;
    if (n > remaining(r) / 2) /* each takes at least a tag byte and a size byte */
        return fail(r, "tagged field count exceeds the remaining bytes");
    for (uint64_t i = 0; i < n; i++) {
        uint64_t tag = kread_uvarint(r);
        uint64_t size = kread_uvarint(r);
        if (r->error)
            return false;
        if (size > remaining(r))
            return fail(r, "tagged field size exceeds the remaining bytes");
        const struct kfield *f = find_tag(d, ver, tag);
        if (f) {
            struct kreader sub = {.p = r->p, .end = r->p + size};
            if (!decode_field(f, ver, true, &sub, base, a))
                return fail(r, sub.error);
            if (sub.p != sub.end)
                return fail(r, "tagged field has bytes after its value");
        }
        r->p += size;
    }
    return true;
}

static bool decode_struct(const struct kmsg_desc *d, int16_t ver, bool flex, struct kreader *r, uint8_t *base,
                          struct arena *a)
{
    for (int i = 0; i < d->nfields; i++)
        apply_default(&d->fields[i], base);
    for (int i = 0; i < d->nfields; i++) {
        const struct kfield *f = &d->fields[i];
        if (f->tag >= 0 || !present(f, ver))
            continue;
        if (!decode_field(f, ver, flex, r, base, a))
            return false;
    }
    return flex ? decode_tagged_fields(d, ver, r, base, a) : true;
}

int kdecode(const struct kmsg_desc *d, int16_t ver, bool flexible, struct kreader *r, void *out, struct arena *a)
{
    memset(out, 0, d->size);
    if (r->error)
        return -1;
    return decode_struct(d, ver, flexible, r, out, a) ? 0 : -1;
}

/* ---------------------------------------------------------------------------------------------
 * Encoder. */

static void encode_struct(const struct kmsg_desc *d, int16_t ver, bool flex, struct buf *w, const uint8_t *base);

/* Set only inside kencode_spans (one encoder per thread at a time). */
static _Thread_local struct {
    struct kspan *v;
    int n, max;
} spans_out;

/* n = -1 writes null. */
static void put_length(struct buf *w, bool flex, bool short_len, int64_t n)
{
    if (flex)
        buf_put_uvarint(w, (uint64_t)(n + 1));
    else if (short_len)
        buf_put_i16(w, (int16_t)n);
    else
        buf_put_i32(w, (int32_t)n);
}

static void encode_scalar(enum kfield_type t, bool can_be_null, bool flex, struct buf *w, const void *v)
{
    switch (t) {
    case KT_INT8: buf_put_i8(w, *(const int8_t *)v); break;
    case KT_INT16: buf_put_i16(w, *(const int16_t *)v); break;
    case KT_INT32: buf_put_i32(w, *(const int32_t *)v); break;
    case KT_INT64: buf_put_i64(w, *(const int64_t *)v); break;
    case KT_UINT16: be16_put(buf_extend(w, 2), *(const uint16_t *)v); break;
    case KT_BOOL: buf_put_i8(w, *(const bool *)v ? 1 : 0); break;
    case KT_FLOAT64: {
        uint64_t bits;
        memcpy(&bits, v, sizeof(bits));
        buf_put_i64(w, (int64_t)bits);
        break;
    }
    case KT_UUID: buf_append(w, v, sizeof(struct kuuid)); break;
    case KT_STRING: {
        const struct kstr *s = v;
        int64_t n = wire_len(s->len, can_be_null);
        if (n > INT16_MAX)
            n = INT16_MAX; /* the wire cannot say more; callers keep strings short */
        put_length(w, flex, true, n);
        if (n > 0)
            buf_append(w, s->ptr, (size_t)n);
        break;
    }
    case KT_BYTES:
    case KT_RECORDS: {
        const struct kbytes *b = v;
        int64_t n = wire_len(b->len, can_be_null);
        put_length(w, flex, false, n);
        if (t == KT_RECORDS && n >= (int64_t)KSPAN_MIN && spans_out.n < spans_out.max)
            spans_out.v[spans_out.n++] = (struct kspan){w->len, b->ptr, (size_t)n};
        else if (n > 0)
            buf_append(w, b->ptr, (size_t)n);
        break;
    }
    case KT_ARRAY: break; /* never: arrays go through encode_array */
    }
}

static void encode_array(const struct kfield *f, int16_t ver, bool flex, struct buf *w, const uint8_t *base)
{
    int64_t n = wire_len(get_count(base, f), nullable(f, ver));
    put_length(w, flex, false, n);
    const uint8_t *items = get_ptr(base, f);
    size_t esize = elem_mem_size(f);
    for (int64_t i = 0; i < n; i++) {
        const uint8_t *item = items + (size_t)i * esize;
        if (f->elem)
            encode_struct(f->elem, ver, flex, w, item);
        else
            encode_scalar(f->elem_type, false, flex, w, item);
    }
}

static void encode_field(const struct kfield *f, int16_t ver, bool flex, struct buf *w, const uint8_t *base)
{
    if (f->type == KT_ARRAY)
        encode_array(f, ver, flex, w, base);
    else
        encode_scalar(f->type, nullable(f, ver), flex, w, base + f->offset);
}

static bool tag_written(const struct kfield *f, int16_t ver, const uint8_t *base)
{
    return f->tag >= 0 && present(f, ver) && !is_default(f, ver, base);
}

/* Tagged fields holding something other than their default, in ascending tag order (the
 * generator lists tagged fields sorted by tag). Each value is encoded aside first because its
 * size goes before it. */
static void encode_tagged_fields(const struct kmsg_desc *d, int16_t ver, struct buf *w, const uint8_t *base)
{
    uint64_t n = 0;
    for (int i = 0; i < d->nfields; i++)
        n += tag_written(&d->fields[i], ver, base);
    buf_put_uvarint(w, n);
    if (!n)
        return;
    struct buf value;
    buf_init(&value);
    int spans_max = spans_out.max;
    spans_out.max = 0; /* a value encoded aside has no place in the final buffer yet */
    for (int i = 0; i < d->nfields; i++) {
        const struct kfield *f = &d->fields[i];
        if (!tag_written(f, ver, base))
            continue;
        buf_reset(&value);
        encode_field(f, ver, true, &value, base);
        buf_put_uvarint(w, (uint64_t)f->tag);
        buf_put_uvarint(w, value.len);
        buf_append(w, value.data, value.len);
    }
    spans_out.max = spans_max;
    buf_free(&value);
}

static void encode_struct(const struct kmsg_desc *d, int16_t ver, bool flex, struct buf *w, const uint8_t *base)
{
    for (int i = 0; i < d->nfields; i++) {
        const struct kfield *f = &d->fields[i];
        if (f->tag < 0 && present(f, ver))
            encode_field(f, ver, flex, w, base);
    }
    if (flex)
        encode_tagged_fields(d, ver, w, base);
}

void kencode(const struct kmsg_desc *d, int16_t ver, bool flexible, struct buf *w, const void *in)
{
    encode_struct(d, ver, flexible, w, in);
}

int kencode_spans(const struct kmsg_desc *d, int16_t ver, bool flexible, struct buf *w, const void *in,
                  struct kspan *spans, int max)
{
    spans_out.v = spans;
    spans_out.n = 0;
    spans_out.max = max;
    encode_struct(d, ver, flexible, w, in);
    int n = spans_out.n;
    spans_out.v = NULL;
    spans_out.n = spans_out.max = 0;
    return n;
}

/* ---------------------------------------------------------------------------------------------
 * Request and response headers. */

int kdecode_request_header(struct kreader *r, struct krequest_header *h, const struct kapi **api)
{
    static const struct kmsg_desc no_fields = {.name = "request_header"};
    memset(h, 0, sizeof(*h));
    h->client_id.len = -1;
    *api = NULL;
    h->api_key = kread_i16(r);
    h->api_version = kread_i16(r);
    h->correlation_id = kread_i32(r);
    if (r->error)
        return -1;
    const struct kapi *found = kapi_find(h->api_key);
    if (!found)
        return 0; /* unknown key: the caller answers from what we have or drops the connection */
    *api = found;
    /* client_id stays a classic nullable string even in header v2. */
    if (!decode_scalar(KT_STRING, true, false, r, &h->client_id))
        return -1;
    if (kapi_is_flexible(found, h->api_version) && !decode_tagged_fields(&no_fields, 0, r, NULL, NULL))
        return -1;
    return 0;
}

void kencode_response_header(struct buf *w, int32_t correlation_id, bool header_v1)
{
    buf_put_i32(w, correlation_id);
    if (header_v1)
        buf_put_uvarint(w, 0); /* no tagged fields */
}

void kencode_request_header(struct buf *w, const struct krequest_header *h, bool header_v2)
{
    buf_put_i16(w, h->api_key);
    buf_put_i16(w, h->api_version);
    buf_put_i32(w, h->correlation_id);
    encode_scalar(KT_STRING, true, false, w, &h->client_id); /* classic even in header v2 */
    if (header_v2)
        buf_put_uvarint(w, 0); /* no tagged fields */
}

int kdecode_response_header(struct kreader *r, int32_t *correlation_id, bool header_v1)
{
    static const struct kmsg_desc no_fields = {.name = "response_header"};
    *correlation_id = kread_i32(r);
    if (r->error)
        return -1;
    if (header_v1 && !decode_tagged_fields(&no_fields, 0, r, NULL, NULL))
        return -1;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Dump: one line of JSON-ish text, for tests, logs and tools. */

__attribute__((format(printf, 2, 3))) static void put_fmt(struct buf *w, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n > 0)
        buf_append(w, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

static void put_str(struct buf *w, const char *s) { buf_append(w, s, strlen(s)); }

static void dump_string(struct buf *w, const struct kstr *s)
{
    if (s->len < 0) {
        put_str(w, "null");
        return;
    }
    buf_put_i8(w, '"');
    for (int32_t i = 0; i < s->len; i++) {
        unsigned char c = (unsigned char)s->ptr[i];
        if (c == '"' || c == '\\')
            put_fmt(w, "\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            put_fmt(w, "\\u%04x", c);
        else
            buf_append(w, &c, 1);
    }
    buf_put_i8(w, '"');
}

/* Bytes as a quoted hex string; long values show their first 32 bytes and their length. */
static void dump_bytes(struct buf *w, const struct kbytes *b)
{
    if (b->len < 0) {
        put_str(w, "null");
        return;
    }
    int32_t shown = b->len > 32 ? 32 : b->len;
    buf_put_i8(w, '"');
    for (int32_t i = 0; i < shown; i++)
        put_fmt(w, "%02x", b->ptr[i]);
    if (shown < b->len)
        put_fmt(w, "...(%d bytes)", (int)b->len);
    buf_put_i8(w, '"');
}

static void dump_struct(const struct kmsg_desc *d, int16_t ver, const uint8_t *base, struct buf *w);

static void dump_scalar(enum kfield_type t, const void *v, struct buf *w)
{
    switch (t) {
    case KT_INT8: put_fmt(w, "%d", *(const int8_t *)v); break;
    case KT_INT16: put_fmt(w, "%d", *(const int16_t *)v); break;
    case KT_INT32: put_fmt(w, "%d", (int)*(const int32_t *)v); break;
    case KT_INT64: put_fmt(w, "%lld", (long long)*(const int64_t *)v); break;
    case KT_UINT16: put_fmt(w, "%u", *(const uint16_t *)v); break;
    case KT_BOOL: put_str(w, *(const bool *)v ? "true" : "false"); break;
    case KT_FLOAT64: {
        double x;
        memcpy(&x, v, sizeof(x));
        put_fmt(w, "%.17g", x);
        break;
    }
    case KT_UUID: {
        const struct kuuid *u = v;
        buf_put_i8(w, '"');
        for (int i = 0; i < 16; i++)
            put_fmt(w, "%02x", u->b[i]);
        buf_put_i8(w, '"');
        break;
    }
    case KT_STRING: dump_string(w, v); break;
    case KT_BYTES: case KT_RECORDS: dump_bytes(w, v); break;
    case KT_ARRAY: break;
    }
}

static void dump_array(const struct kfield *f, int16_t ver, const uint8_t *base, struct buf *w)
{
    int32_t n = get_count(base, f);
    if (n < 0) {
        put_str(w, "null");
        return;
    }
    const uint8_t *items = get_ptr(base, f);
    size_t esize = elem_mem_size(f);
    buf_put_i8(w, '[');
    for (int32_t i = 0; i < n; i++) {
        if (i)
            put_str(w, ", ");
        const uint8_t *item = items + (size_t)i * esize;
        if (f->elem)
            dump_struct(f->elem, ver, item, w);
        else
            dump_scalar(f->elem_type, item, w);
    }
    buf_put_i8(w, ']');
}

static void dump_struct(const struct kmsg_desc *d, int16_t ver, const uint8_t *base, struct buf *w)
{
    bool first = true;
    buf_put_i8(w, '{');
    for (int i = 0; i < d->nfields; i++) {
        const struct kfield *f = &d->fields[i];
        if (!present(f, ver))
            continue;
        if (!first)
            put_str(w, ", ");
        first = false;
        buf_put_i8(w, '"');
        put_str(w, f->name);
        put_str(w, "\": ");
        if (f->type == KT_ARRAY)
            dump_array(f, ver, base, w);
        else
            dump_scalar(f->type, base + f->offset, w);
    }
    buf_put_i8(w, '}');
}

void kdump(const struct kmsg_desc *d, int16_t ver, const void *msg, struct buf *w)
{
    dump_struct(d, ver, msg, w);
}
