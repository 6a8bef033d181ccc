/* The produce path's object writer (slices written with writev, no object buffer) and the
 * recycled chunk buffers: the objects are byte for byte what the object_builder makes, read back
 * from a real file:// store. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch_builder.h"
#include "check.h"
#include "test_util.h"
#include "storage/object_format.h"
#include "storage/objstore.h"
#include "util/buf_pool.h"

#define NCHUNKS 150 /* more slices than one writev call takes (64) */

struct chunks {
    struct buf data[NCHUNKS];
    uint8_t uuid[NCHUNKS][16];
};

/* Chunks of real batches of varied codecs and sizes; every 7th is empty. */
static void make_chunks(struct chunks *c)
{
    static const enum batch_codec codecs[] = {CODEC_NONE, CODEC_ZSTD, CODEC_LZ4, CODEC_GZIP};
    for (int i = 0; i < NCHUNKS; i++) {
        buf_init(&c->data[i]);
        memset(c->uuid[i], i + 1, 16);
        if (i % 7 == 3)
            continue;
        bb_build_simple(&c->data[i], codecs[i % 4], 1 + i % 5, 1000 + i, 1 + i % 40);
        if (i % 3 == 0) /* two batches in one chunk */
            bb_build_simple(&c->data[i], CODEC_NONE, 2, 2000 + i, 10);
    }
}

static void free_chunks(struct chunks *c)
{
    for (int i = 0; i < NCHUNKS; i++)
        buf_free(&c->data[i]);
}

static int32_t batches_of(int i) { return i % 7 == 3 ? 0 : i % 3 == 0 ? 2 : 1; }

static void build_old(struct chunks *c, struct object_builder *ob)
{
    object_builder_init(ob);
    for (int i = 0; i < NCHUNKS; i++) {
        object_builder_begin_chunk(ob, c->uuid[i], i);
        if (c->data[i].len)
            object_builder_append(ob, c->data[i].data, c->data[i].len, batches_of(i), 10 + i, 1000 + i, 3000 + i);
        object_builder_end_chunk(ob);
    }
    object_builder_finish(ob);
}

static void build_new(struct chunks *c, struct object_writer *ow)
{
    object_writer_init(ow);
    for (int i = 0; i < NCHUNKS; i++)
        object_writer_add(ow, c->uuid[i], i, c->data[i].data, c->data[i].len, batches_of(i),
                          c->data[i].len ? 10 + i : 0, 1000 + i, 3000 + i);
    object_writer_finish(ow);
}

static void gather(const struct object_writer *ow, struct buf *out)
{
    for (int i = 0; i < ow->niov; i++)
        buf_append(out, ow->iov[i].iov_base, ow->iov[i].iov_len);
}

TEST(flushpath_object_writer_same_bytes_as_builder)
{
    struct chunks c;
    make_chunks(&c);
    struct object_builder ob;
    struct object_writer ow;
    build_old(&c, &ob);
    build_new(&c, &ow);

    struct buf all;
    buf_init(&all);
    gather(&ow, &all);
    CHECK_EQ(ow.size, ob.data.len);
    CHECK_EQ(all.len, ob.data.len);
    if (all.len == ob.data.len)
        CHECK_MEM(all.data, ob.data.data, all.len);
    /* The data slices are the chunks' own buffers, not copies. */
    CHECK(ow.iov[1].iov_base == (void *)c.data[0].data);

    struct object_chunk *ch;
    int n;
    CHECK_EQ(object_parse(all.data, all.len, &ch, &n), 0);
    CHECK_EQ(n, NCHUNKS);
    for (int i = 0; i < n && i < NCHUNKS; i++) {
        CHECK_EQ(ch[i].pos, ow.chunks[i].pos);
        CHECK_EQ(ch[i].len, c.data[i].len);
        CHECK_EQ(ch[i].partition, i);
        if (c.data[i].len) {
            CHECK_MEM(all.data + ch[i].pos, c.data[i].data, c.data[i].len);
            struct records_summary s;
            CHECK_EQ(records_validate(all.data + ch[i].pos, ch[i].len, &s, NULL), 0);
        } else {
            CHECK_EQ(ch[i].first_timestamp, -1);
        }
    }
    free(ch);

    /* An object without chunks: the same two slices' worth as the builder's. */
    object_writer_free(&ow);
    object_builder_free(&ob);
    object_writer_init(&ow);
    object_writer_finish(&ow);
    object_builder_init(&ob);
    object_builder_finish(&ob);
    buf_reset(&all);
    gather(&ow, &all);
    CHECK_EQ(all.len, ob.data.len);
    if (all.len == ob.data.len)
        CHECK_MEM(all.data, ob.data.data, all.len);

    buf_free(&all);
    object_writer_free(&ow);
    object_builder_free(&ob);
    free_chunks(&c);
}

/* A store with only put: objstore_putv gathers the slices for it (the S3 path). */
struct put_only {
    struct objstore base;
    struct buf got;
};

static int put_only_put(struct objstore *s, const char *key, const void *data, size_t len)
{
    (void)key;
    struct put_only *p = (struct put_only *)s;
    buf_append(&p->got, data, len);
    return 0;
}

static const struct objstore_ops put_only_ops = {.put = put_only_put};

TEST(flushpath_objstore_putv_file_and_gathered)
{
    struct chunks c;
    make_chunks(&c);
    struct object_writer ow;
    struct object_builder ob;
    build_new(&c, &ow);
    build_old(&c, &ob);

    char *tmp = test_temp_dir();
    CHECK(tmp != NULL);
    if (!tmp)
        return;
    char url[512], err[256] = "";
    snprintf(url, sizeof(url), "file://%s/objects", tmp);
    struct objstore *s = objstore_open(url, err, sizeof(err));
    CHECK(s != NULL);
    if (s) {
        CHECK(ow.niov > 64);
        CHECK_EQ(objstore_putv(s, "objects/one.obj", ow.iov, ow.niov), 0);
        struct buf back;
        buf_init(&back);
        CHECK_EQ(objstore_get_range(s, "objects/one.obj", 0, ow.size, &back), 0);
        CHECK_EQ(back.len, ob.data.len);
        if (back.len == ob.data.len)
            CHECK_MEM(back.data, ob.data.data, back.len);
        CHECK_EQ(objstore_get_range(s, "objects/one.obj", 0, ow.size + 1, &back), -1); /* nothing more */
        struct object_chunk *ch;
        int n;
        CHECK_EQ(object_parse(back.data, back.len, &ch, &n), 0);
        CHECK_EQ(n, NCHUNKS);
        free(ch);
        buf_free(&back);
        objstore_close(s);
    }
    test_rm_rf(tmp);
    free(tmp);

    struct put_only po = {.base = {.ops = &put_only_ops}};
    buf_init(&po.got);
    CHECK_EQ(objstore_putv(&po.base, "k", ow.iov, ow.niov), 0);
    CHECK_EQ(po.got.len, ob.data.len);
    if (po.got.len == ob.data.len)
        CHECK_MEM(po.got.data, ob.data.data, po.got.len);
    buf_free(&po.got);

    object_writer_free(&ow);
    object_builder_free(&ob);
    free_chunks(&c);
}

TEST(flushpath_buf_pool_recycles_within_bound)
{
    struct buf_pool p;
    buf_pool_init(&p, 1 << 20);
    struct buf a = buf_pool_get(&p);
    CHECK(a.data == NULL); /* empty pool: a fresh, empty buffer */
    buf_reserve(&a, 300000);
    buf_append(&a, "abc", 3);
    uint8_t *mem = a.data;
    size_t cap = a.cap;
    buf_pool_put(&p, &a);
    CHECK(a.data == NULL);
    CHECK_EQ(p.n, 1);
    CHECK_EQ(p.bytes, cap);

    /* The next buffer is the same memory, empty, with its capacity. */
    struct buf b = buf_pool_get(&p);
    CHECK(b.data == mem);
    CHECK_EQ(b.len, 0);
    CHECK_EQ(b.cap, cap);
    CHECK_EQ(p.bytes, 0);

    /* Beyond max_bytes a returned buffer is freed, not kept (capacities grow in powers of two:
     * 300000 -> 512 KiB, 400000 -> 512 KiB). */
    struct buf c2 = buf_pool_get(&p), d = buf_pool_get(&p), e = buf_pool_get(&p);
    buf_reserve(&c2, 400000);
    buf_reserve(&d, 400000);
    buf_reserve(&e, 10);
    buf_pool_put(&p, &b);
    buf_pool_put(&p, &c2); /* exactly 1 MiB kept */
    CHECK_EQ(p.n, 2);
    buf_pool_put(&p, &d); /* would pass 1 MiB */
    CHECK(d.data == NULL);
    CHECK_EQ(p.n, 2);
    CHECK_EQ(p.bytes, (size_t)(1 << 20));
    buf_pool_put(&p, &e); /* even 256 bytes would pass it */
    CHECK(e.data == NULL);
    CHECK_EQ(p.n, 2);
    struct buf none;
    buf_init(&none);
    buf_pool_put(&p, &none); /* nothing to keep */
    CHECK_EQ(p.n, 2);
    buf_pool_free(&p);
    CHECK_EQ(p.n, 0);
}
