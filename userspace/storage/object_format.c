/* Builds and parses objects: header, chunks, index, footer (see object_format.h). */
#include "storage/object_format.h"

#include <stdlib.h>
#include <string.h>

#include "record/crc32c.h"

#define MAGIC_SIZE 8
#define INDEX_ENTRY_SIZE 60 /* 16 + 4 + 8 + 4 + 4 + 8 + 8 + 8 */

void object_builder_init(struct object_builder *b)
{
    memset(b, 0, sizeof(*b));
    buf_init(&b->data);
    buf_append(&b->data, OBJECT_HEADER_MAGIC, MAGIC_SIZE);
}

void object_builder_free(struct object_builder *b)
{
    buf_free(&b->data);
    free(b->chunks);
    memset(b, 0, sizeof(*b));
}

void object_builder_begin_chunk(struct object_builder *b, const uint8_t topic_uuid[16], int32_t partition)
{
    if (b->nchunks == b->cap) {
        int cap = b->cap ? b->cap * 2 : 16;
        struct object_chunk *c = realloc(b->chunks, (size_t)cap * sizeof(*c));
        if (!c)
            abort(); /* as buf_reserve: out of memory is fatal */
        b->chunks = c;
        b->cap = cap;
    }
    struct object_chunk *c = &b->chunks[b->nchunks++];
    memset(c, 0, sizeof(*c));
    memcpy(c->topic_uuid, topic_uuid, 16);
    c->partition = partition;
    c->pos = b->data.len;
    c->first_timestamp = -1;
    c->max_timestamp = -1;
    b->open = 1;
}

void object_builder_append(struct object_builder *b, const uint8_t *batches, size_t len,
                           int32_t batch_count, int64_t offset_count, int64_t first_ts, int64_t max_ts)
{
    struct object_chunk *c = &b->chunks[b->nchunks - 1];
    buf_append(&b->data, batches, len);
    if (c->batch_count == 0) {
        c->first_timestamp = first_ts;
        c->max_timestamp = max_ts;
    } else if (max_ts > c->max_timestamp) {
        c->max_timestamp = max_ts;
    }
    c->len += (uint32_t)len;
    c->batch_count += batch_count;
    c->offset_count += offset_count;
}

void object_builder_end_chunk(struct object_builder *b) { b->open = 0; }

void object_builder_finish(struct object_builder *b)
{
    if (b->open)
        object_builder_end_chunk(b);
    uint64_t index_pos = b->data.len;
    buf_put_i32(&b->data, b->nchunks);
    for (int i = 0; i < b->nchunks; i++) {
        const struct object_chunk *c = &b->chunks[i];
        buf_append(&b->data, c->topic_uuid, 16);
        buf_put_i32(&b->data, c->partition);
        buf_put_i64(&b->data, (int64_t)c->pos);
        buf_put_i32(&b->data, (int32_t)c->len);
        buf_put_i32(&b->data, c->batch_count);
        buf_put_i64(&b->data, c->offset_count);
        buf_put_i64(&b->data, c->first_timestamp);
        buf_put_i64(&b->data, c->max_timestamp);
    }
    uint32_t index_len = (uint32_t)(b->data.len - index_pos);
    buf_put_i64(&b->data, (int64_t)index_pos);
    buf_put_i32(&b->data, (int32_t)index_len);
    uint32_t crc = crc32c(0, b->data.data, b->data.len - 12); /* everything before the footer */
    buf_put_i32(&b->data, (int32_t)crc);
    buf_append(&b->data, OBJECT_FOOTER_MAGIC, MAGIC_SIZE);
}

static const uint8_t header_magic[MAGIC_SIZE] = OBJECT_HEADER_MAGIC;

static void writer_iov(struct object_writer *w, const void *p, size_t len)
{
    if (w->niov == w->cap_iov) {
        w->cap_iov = w->cap_iov ? w->cap_iov * 2 : 32;
        w->iov = realloc(w->iov, (size_t)w->cap_iov * sizeof(*w->iov));
        if (!w->iov)
            abort();
    }
    w->iov[w->niov++] = (struct iovec){.iov_base = (void *)p, .iov_len = len};
    w->size += len;
}

void object_writer_init(struct object_writer *w)
{
    memset(w, 0, sizeof(*w));
    buf_init(&w->tail);
    writer_iov(w, header_magic, MAGIC_SIZE);
    w->crc = crc32c(0, header_magic, MAGIC_SIZE);
}

void object_writer_free(struct object_writer *w)
{
    free(w->iov);
    free(w->chunks);
    buf_free(&w->tail);
    memset(w, 0, sizeof(*w));
}

void object_writer_add(struct object_writer *w, const uint8_t topic_uuid[16], int32_t partition,
                       const uint8_t *data, size_t len, int32_t batch_count, int64_t offset_count,
                       int64_t first_ts, int64_t max_ts)
{
    if (w->nchunks == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 16;
        w->chunks = realloc(w->chunks, (size_t)w->cap * sizeof(*w->chunks));
        if (!w->chunks)
            abort();
    }
    struct object_chunk *c = &w->chunks[w->nchunks++];
    memset(c, 0, sizeof(*c));
    memcpy(c->topic_uuid, topic_uuid, 16);
    c->partition = partition;
    c->pos = w->size;
    c->len = (uint32_t)len;
    c->batch_count = batch_count;
    c->offset_count = offset_count;
    /* as the builder: an empty chunk keeps -1 timestamps */
    c->first_timestamp = batch_count ? first_ts : -1;
    c->max_timestamp = batch_count ? max_ts : -1;
    if (len) {
        writer_iov(w, data, len);
        w->crc = crc32c(w->crc, data, len);
    }
}

void object_writer_finish(struct object_writer *w)
{
    struct buf *t = &w->tail;
    uint64_t index_pos = w->size;
    buf_put_i32(t, w->nchunks);
    for (int i = 0; i < w->nchunks; i++) {
        const struct object_chunk *c = &w->chunks[i];
        buf_append(t, c->topic_uuid, 16);
        buf_put_i32(t, c->partition);
        buf_put_i64(t, (int64_t)c->pos);
        buf_put_i32(t, (int32_t)c->len);
        buf_put_i32(t, c->batch_count);
        buf_put_i64(t, c->offset_count);
        buf_put_i64(t, c->first_timestamp);
        buf_put_i64(t, c->max_timestamp);
    }
    uint32_t index_len = (uint32_t)t->len;
    uint32_t crc = crc32c(w->crc, t->data, t->len); /* everything before the footer */
    buf_put_i64(t, (int64_t)index_pos);
    buf_put_i32(t, (int32_t)index_len);
    buf_put_i32(t, (int32_t)crc);
    buf_append(t, OBJECT_FOOTER_MAGIC, MAGIC_SIZE);
    writer_iov(w, t->data, t->len); /* t no longer grows: the pointer stays valid */
}

int object_parse(const uint8_t *obj, size_t len, struct object_chunk **chunks, int *nchunks)
{
    *chunks = NULL;
    *nchunks = 0;
    if (len < MAGIC_SIZE + 4 + OBJECT_FOOTER_SIZE)
        return -1;
    if (memcmp(obj, OBJECT_HEADER_MAGIC, MAGIC_SIZE) != 0 ||
        memcmp(obj + len - MAGIC_SIZE, OBJECT_FOOTER_MAGIC, MAGIC_SIZE) != 0)
        return -1;
    const uint8_t *f = obj + len - OBJECT_FOOTER_SIZE;
    uint64_t index_pos = be64_get(f);
    uint32_t index_len = be32_get(f + 8);
    uint32_t crc = be32_get(f + 12);
    size_t footer_pos = len - OBJECT_FOOTER_SIZE;
    if (crc32c(0, obj, footer_pos) != crc)
        return -1;
    if (index_pos < MAGIC_SIZE || index_pos > footer_pos || footer_pos - index_pos != index_len || index_len < 4)
        return -1;
    const uint8_t *p = obj + index_pos;
    uint32_t n = be32_get(p);
    if (n > (index_len - 4) / INDEX_ENTRY_SIZE || (uint64_t)n * INDEX_ENTRY_SIZE + 4 != index_len)
        return -1;
    struct object_chunk *out = calloc(n ? n : 1, sizeof(*out));
    if (!out)
        return -1;
    p += 4;
    for (uint32_t i = 0; i < n; i++, p += INDEX_ENTRY_SIZE) {
        struct object_chunk *c = &out[i];
        memcpy(c->topic_uuid, p, 16);
        c->partition = (int32_t)be32_get(p + 16);
        c->pos = be64_get(p + 20);
        c->len = be32_get(p + 28);
        c->batch_count = (int32_t)be32_get(p + 32);
        c->offset_count = (int64_t)be64_get(p + 36);
        c->first_timestamp = (int64_t)be64_get(p + 44);
        c->max_timestamp = (int64_t)be64_get(p + 52);
        if (c->pos < MAGIC_SIZE || c->pos > index_pos || c->len > index_pos - c->pos) {
            free(out);
            return -1;
        }
    }
    *chunks = out;
    *nchunks = (int)n;
    return 0;
}
