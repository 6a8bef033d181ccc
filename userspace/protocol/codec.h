/* The Kafka wire codec. Messages are described once, in the userspace/protocol/schema .def files; a small
 * generator (tools/gen_messages.py) turns those into C structs plus descriptor tables, and the
 * generic functions here walk the tables to decode and encode any API at any version. */
#ifndef SLUICE_CODEC_H
#define SLUICE_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/arena.h"
#include "util/buf.h"

/* Strings and byte fields point into the request buffer (zero copy) when decoded.
 * len < 0 means null. */
struct kstr {
    const char *ptr;
    int32_t len;
};
struct kbytes {
    const uint8_t *ptr;
    int32_t len;
};
struct kuuid {
    uint8_t b[16];
};

enum kfield_type {
    KT_INT8, KT_INT16, KT_INT32, KT_INT64, KT_UINT16, KT_BOOL, KT_FLOAT64, KT_UUID,
    KT_STRING,  /* struct kstr */
    KT_BYTES,   /* struct kbytes */
    KT_RECORDS, /* struct kbytes holding record batches (nullable bytes on the wire) */
    KT_ARRAY,   /* pointer + int32 count; element is a primitive (elem_type) or a struct (elem) */
};

struct kmsg_desc;

struct kfield {
    const char *name;
    enum kfield_type type;
    int16_t min_ver, max_ver;     /* present in [min_ver, max_ver] */
    int16_t null_min_ver;         /* nullable from this version on; INT16_MAX = never */
    int32_t tag;                  /* >= 0: tagged field (flexible versions only); -1 = regular */
    size_t offset;                /* offsetof the value (for arrays: the pointer) */
    size_t count_offset;          /* arrays: offsetof the int32 count */
    int64_t default_int;          /* value when absent at this version (ints and bools) */
    enum kfield_type elem_type;   /* arrays of primitives */
    const struct kmsg_desc *elem; /* arrays of structs */
};

struct kmsg_desc {
    const char *name;
    size_t size;                  /* sizeof the C struct */
    int nfields;
    const struct kfield *fields;
};

struct kapi {
    int16_t key;
    const char *name;
    int16_t min_ver, max_ver;     /* versions the schema describes */
    int16_t flex_min;             /* first flexible version; INT16_MAX = none */
    const struct kmsg_desc *request;
    const struct kmsg_desc *response;
};

/* From the generated tables: the API with this key, or NULL. */
const struct kapi *kapi_find(int16_t key);

struct kreader {
    const uint8_t *p, *end;
    const char *error; /* first decode error, NULL if none */
};

static inline bool kapi_is_flexible(const struct kapi *api, int16_t ver) { return ver >= api->flex_min; }

/* Decode one message body. out must point to a struct of d->size bytes; it is zeroed and fields
 * absent at this version get their defaults. Arrays are allocated from the arena. Returns 0 or -1
 * (r->error says why). Unknown tagged fields are skipped. */
int kdecode(const struct kmsg_desc *d, int16_t ver, bool flexible, struct kreader *r, void *out, struct arena *a);

/* Encode one message body (fields absent at this version are skipped; a null value in a version
 * where the field is not nullable is written as empty). */
void kencode(const struct kmsg_desc *d, int16_t ver, bool flexible, struct buf *w, const void *in);

/* kencode, except that records fields of at least KSPAN_MIN bytes are not copied into w: each is
 * listed in spans (where in w its bytes belong), for a writer that sends them from where they are.
 * Beyond max spans, records are copied as usual. Returns the number of spans. */
#define KSPAN_MIN (16u * 1024)
struct kspan {
    size_t at;
    const uint8_t *ptr;
    size_t len;
};
int kencode_spans(const struct kmsg_desc *d, int16_t ver, bool flexible, struct buf *w, const void *in,
                  struct kspan *spans, int max);

/* Request header v0..v2 (v1 adds client_id, v2 adds tagged fields; header v2 iff the API version is
 * flexible). client_id is a classic nullable string even in v2. */
struct krequest_header {
    int16_t api_key;
    int16_t api_version;
    int32_t correlation_id;
    struct kstr client_id;
};
/* Decodes the header; sets *api to the schema (NULL if the key is unknown, in which case only
 * key/version/correlation id are decoded and the function still returns 0). */
int kdecode_request_header(struct kreader *r, struct krequest_header *h, const struct kapi **api);

/* Response header v0 (correlation id) or v1 (+ empty tagged fields). ApiVersions always uses v0. */
void kencode_response_header(struct buf *w, int32_t correlation_id, bool header_v1);

/* The client side of the same headers (for tools that talk to a broker, and for tests):
 * request header v1 or v2 (header_v2 iff the API version is flexible; no tagged fields written),
 * and a response header v0 or v1 (tagged fields skipped). Decoding returns 0 or -1. */
void kencode_request_header(struct buf *w, const struct krequest_header *h, bool header_v2);
int kdecode_response_header(struct kreader *r, int32_t *correlation_id, bool header_v1);

/* Primitive readers used by the codec and by record-batch parsing; set r->error on underflow. */
int8_t kread_i8(struct kreader *r);
int16_t kread_i16(struct kreader *r);
int32_t kread_i32(struct kreader *r);
int64_t kread_i64(struct kreader *r);
uint64_t kread_uvarint(struct kreader *r);
int64_t kread_varint(struct kreader *r);

/* The first non-zero error_code field of a message (depth first, fields in order), or 0. */
int16_t kfirst_error(const struct kmsg_desc *d, int16_t ver, const void *msg);

/* Debug: dump a decoded message as JSON-ish text into w (used by tests and `sluice` tools). */
void kdump(const struct kmsg_desc *d, int16_t ver, const void *msg, struct buf *w);

#endif
