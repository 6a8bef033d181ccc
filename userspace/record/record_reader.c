/* Record v2 parsing over memory or a decompressing stream: see record_reader.h. */
#include "record/record_reader.h"

#include "record/batch.h"

void rsrc_memory(struct rsrc *s, const uint8_t *p, size_t len, size_t pos)
{
    *s = (struct rsrc){.p = p, .len = len, .pos = pos, .limit = len};
}

void rsrc_stream(struct rsrc *s, struct dstream *ds)
{
    /* An uncompressed section is its own bound; decompressed ones stop at the cap anyway. */
    uint64_t limit = ds->codec == CODEC_NONE ? ds->n : BATCH_DECOMPRESSED_MAX;
    *s = (struct rsrc){.ds = ds, .limit = limit};
}

/* Moves to the next non-empty chunk: 1, 0 at the clean end of the stream, -1 if it failed. */
static int fill(struct rsrc *s)
{
    if (!s->ds)
        return 0;
    const uint8_t *p;
    size_t n;
    int rc = dstream_next(s->ds, &p, &n);
    if (rc <= 0) {
        s->failed = rc < 0;
        return rc;
    }
    s->base += s->len;
    s->p = p;
    s->len = n;
    s->pos = 0;
    return 1;
}

/* One byte before stream offset end. */
static inline int get_byte(struct rsrc *s, uint64_t end, uint8_t *b)
{
    if (rsrc_tell(s) >= end)
        return -1;
    if (s->pos == s->len && fill(s) <= 0)
        return -1;
    *b = s->p[s->pos++];
    return 0;
}

/* Skips n bytes, all before stream offset end. */
static int skip(struct rsrc *s, uint64_t end, uint64_t n)
{
    if (n > end - rsrc_tell(s))
        return -1;
    while (n) {
        if (s->pos == s->len && fill(s) <= 0)
            return -1;
        size_t k = s->len - s->pos < n ? s->len - s->pos : (size_t)n;
        s->pos += k;
        n -= k;
    }
    return 0;
}

/* ---- varints (zig-zag, as in record v2); as Kafka, at most 5 bytes for 32 bits, 10 for 64 ---- */

static int read_uvarint(struct rsrc *s, uint64_t end, int max_bytes, uint64_t *v)
{
    uint64_t r = 0;
    for (int i = 0; i < max_bytes; i++) {
        uint8_t b;
        if (get_byte(s, end, &b) < 0)
            return -1;
        r |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *v = r;
            return 0;
        }
    }
    return -1;
}

static int read_varint32(struct rsrc *s, uint64_t end, int32_t *v)
{
    uint64_t u;
    if (read_uvarint(s, end, 5, &u) < 0 || u > UINT32_MAX)
        return -1;
    uint32_t z = (uint32_t)u;
    *v = (int32_t)(z >> 1) ^ -(int32_t)(z & 1);
    return 0;
}

static int read_varint64(struct rsrc *s, uint64_t end, int64_t *v)
{
    uint64_t u;
    if (read_uvarint(s, end, 10, &u) < 0)
        return -1;
    *v = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
    return 0;
}

/* A varint-length byte string, skipped; -1 is null when allow_null. */
static int read_bytes(struct rsrc *s, uint64_t end, bool allow_null, uint64_t *at, int32_t *len)
{
    if (read_varint32(s, end, len) < 0)
        return -1;
    if (*len < 0)
        return *len == -1 && allow_null ? 0 : -1;
    *at = rsrc_tell(s);
    return skip(s, end, (uint64_t)*len);
}

int record_read(struct rsrc *s, struct record_meta *m)
{
    if (s->pos == s->len) {
        int rc = fill(s);
        if (rc <= 0)
            return rc; /* clean end between records, or the stream failed */
    }
    int32_t rlen;
    if (read_varint32(s, UINT64_MAX, &rlen) < 0 || rlen < 1)
        return -1;
    if ((uint64_t)rlen > s->limit - rsrc_tell(s)) {
        s->beyond_limit = true;
        return -1;
    }
    uint64_t end = rsrc_tell(s) + (uint64_t)rlen;
    uint8_t attributes; /* unused in v2 */
    if (get_byte(s, end, &attributes) < 0 || read_varint64(s, end, &m->timestamp_delta) < 0 ||
        read_varint32(s, end, &m->offset_delta) < 0)
        return -1;
    m->key_at = m->value_at = 0;
    if (read_bytes(s, end, true, &m->key_at, &m->key_len) < 0 ||
        read_bytes(s, end, true, &m->value_at, &m->value_len) < 0)
        return -1;
    /* Each header takes at least two bytes: a count the record cannot hold fails at once. */
    if (read_varint32(s, end, &m->header_count) < 0 || m->header_count < 0 ||
        (uint64_t)m->header_count > (end - rsrc_tell(s)) / 2)
        return -1;
    for (int32_t h = 0; h < m->header_count; h++) {
        uint64_t at;
        int32_t n;
        if (read_bytes(s, end, false, &at, &n) < 0 || read_bytes(s, end, true, &at, &n) < 0)
            return -1;
    }
    return rsrc_tell(s) == end ? 1 : -1;
}

int record_next(const uint8_t *p, size_t len, size_t *pos, struct record_view *rec)
{
    if (*pos > len)
        return -1;
    struct rsrc s;
    rsrc_memory(&s, p, len, *pos);
    struct record_meta m;
    int rc = record_read(&s, &m);
    if (rc <= 0)
        return rc;
    rec->offset_delta = m.offset_delta;
    rec->timestamp_delta = m.timestamp_delta;
    rec->key = m.key_len >= 0 ? p + m.key_at : NULL;
    rec->key_len = m.key_len;
    rec->value = m.value_len >= 0 ? p + m.value_at : NULL;
    rec->value_len = m.value_len;
    rec->header_count = m.header_count;
    *pos = s.pos;
    return 1;
}
