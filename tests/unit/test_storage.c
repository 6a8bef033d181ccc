/* Object format, the file object store and the SQLite metadata store, on real temp folders. */
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "batch_builder.h"
#include "check.h"
#include "test_util.h"
#include "metastore_contract.h"
#include "protocol/errors.h"
#include "storage/metastore.h"
#include "storage/object_format.h"
#include "storage/objstore.h"

/* ---- temp folders ---- */

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* ---- object format ---- */

TEST(storage_object_format_roundtrip)
{
    uint8_t uuid_a[16], uuid_b[16];
    memset(uuid_a, 0xaa, 16);
    memset(uuid_b, 0xbb, 16);
    struct buf b1, b2, b3;
    buf_init(&b1);
    buf_init(&b2);
    buf_init(&b3);
    bb_build_simple(&b1, CODEC_NONE, 3, 1000, 10);
    bb_build_simple(&b2, CODEC_ZSTD, 5, 900, 100);
    bb_build_simple(&b3, CODEC_LZ4, 2, 5000, 1);

    struct object_builder ob;
    object_builder_init(&ob);
    object_builder_begin_chunk(&ob, uuid_a, 0);
    object_builder_append(&ob, b1.data, b1.len, 1, 3, 1000, 1020);
    object_builder_append(&ob, b2.data, b2.len, 1, 5, 900, 1300);
    object_builder_end_chunk(&ob);
    object_builder_begin_chunk(&ob, uuid_b, 7);
    object_builder_append(&ob, b3.data, b3.len, 1, 2, 5000, 5001);
    object_builder_end_chunk(&ob);
    object_builder_finish(&ob);

    const uint8_t *obj = ob.data.data;
    size_t len = ob.data.len;
    CHECK_MEM(obj, OBJECT_HEADER_MAGIC, 8);
    CHECK_MEM(obj + len - 8, OBJECT_FOOTER_MAGIC, 8);
    struct object_chunk *ch;
    int n;
    CHECK_EQ(object_parse(obj, len, &ch, &n), 0);
    CHECK_EQ(n, 2);
    if (n == 2) {
        CHECK_MEM(ch[0].topic_uuid, uuid_a, 16);
        CHECK_EQ(ch[0].partition, 0);
        CHECK_EQ(ch[0].pos, 8);
        CHECK_EQ(ch[0].len, b1.len + b2.len);
        CHECK_EQ(ch[0].batch_count, 2);
        CHECK_EQ(ch[0].offset_count, 8);
        CHECK_EQ(ch[0].first_timestamp, 1000);
        CHECK_EQ(ch[0].max_timestamp, 1300);
        CHECK_MEM(obj + ch[0].pos, b1.data, b1.len);
        CHECK_MEM(obj + ch[0].pos + b1.len, b2.data, b2.len);
        CHECK_MEM(ch[1].topic_uuid, uuid_b, 16);
        CHECK_EQ(ch[1].partition, 7);
        CHECK_EQ(ch[1].pos, 8 + b1.len + b2.len);
        CHECK_EQ(ch[1].len, b3.len);
        CHECK_EQ(ch[1].offset_count, 2);
        CHECK_EQ(ch[1].first_timestamp, 5000);
        CHECK_EQ(ch[1].max_timestamp, 5001);
        /* The chunk bytes are whole batches again. */
        struct records_summary s;
        CHECK_EQ(records_validate(obj + ch[0].pos, ch[0].len, &s, NULL), 0);
        CHECK_EQ(s.offset_count, 8);
    }
    free(ch);

    /* Any flipped byte, or a cut, is detected. */
    uint8_t *copy = malloc(len);
    for (size_t i = 0; i < len; i++) {
        memcpy(copy, obj, len);
        copy[i] ^= 0x10;
        int rc = object_parse(copy, len, &ch, &n);
        if (rc == 0)
            fprintf(stderr, "  flipped byte %zu not detected\n", i);
        CHECK_EQ(rc, -1);
        free(ch);
    }
    for (size_t cut = 1; cut < len; cut += 7) {
        CHECK_EQ(object_parse(obj, len - cut, &ch, &n), -1);
        free(ch);
    }
    free(copy);
    object_builder_free(&ob);

    /* An object without chunks is valid too. */
    object_builder_init(&ob);
    object_builder_finish(&ob);
    CHECK_EQ(object_parse(ob.data.data, ob.data.len, &ch, &n), 0);
    CHECK_EQ(n, 0);
    free(ch);
    object_builder_free(&ob);
    buf_free(&b1);
    buf_free(&b2);
    buf_free(&b3);
}

/* ---- file object store ---- */

struct listing {
    char keys[16][64];
    uint64_t sizes[16];
    int n;
};

static void collect(const char *key, uint64_t size, void *arg)
{
    struct listing *l = arg;
    if (l->n < 16) {
        snprintf(l->keys[l->n], sizeof(l->keys[0]), "%s", key);
        l->sizes[l->n] = size;
    }
    l->n++;
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

TEST(storage_objstore_file_put_get_list_delete)
{
    char *tmp = test_temp_dir();
    CHECK(tmp != NULL);
    if (!tmp)
        return;
    char url[512], path[600], err[256] = "";
    snprintf(url, sizeof(url), "file://%s/store/nested", tmp);
    struct objstore *s = objstore_open(url, err, sizeof(err));
    CHECK(s != NULL);
    if (!s) {
        fprintf(stderr, "  %s\n", err);
        free(tmp);
        return;
    }
    CHECK(strcmp(s->url, url) == 0);

    CHECK_EQ(objstore_put(s, "a/b/c.obj", "hello world", 11), 0);
    snprintf(path, sizeof(path), "%s/store/nested/a/b/c.obj", tmp);
    CHECK(file_exists(path));
    CHECK_EQ(objstore_put(s, "top", "x", 1), 0);
    CHECK_EQ(objstore_put(s, "a-c", "12345", 5), 0);
    CHECK_EQ(objstore_put(s, "a/b/d.obj", "", 0), 0);

    struct buf out;
    buf_init(&out);
    CHECK_EQ(objstore_get_range(s, "a/b/c.obj", 0, 11, &out), 0);
    CHECK_EQ(out.len, 11);
    CHECK_MEM(out.data, "hello world", 11);
    CHECK_EQ(objstore_get_range(s, "a/b/c.obj", 6, 5, &out), 0); /* appends */
    CHECK_EQ(out.len, 16);
    CHECK_MEM(out.data + 11, "world", 5);
    CHECK_EQ(objstore_get_range(s, "a/b/c.obj", 11, 0, &out), 0);
    CHECK_EQ(objstore_get_range(s, "a/b/c.obj", 6, 6, &out), -1); /* one byte past the end */
    CHECK_EQ(objstore_get_range(s, "a/b/c.obj", 12, 0, &out), -1);
    CHECK_EQ(objstore_get_range(s, "a/b/missing", 0, 1, &out), -1);
    CHECK_EQ(out.len, 16);

    /* Overwrite replaces the whole object. */
    CHECK_EQ(objstore_put(s, "a/b/c.obj", "bye", 3), 0);
    buf_reset(&out);
    CHECK_EQ(objstore_get_range(s, "a/b/c.obj", 0, 3, &out), 0);
    CHECK_MEM(out.data, "bye", 3);
    CHECK_EQ(objstore_get_range(s, "a/b/c.obj", 0, 4, &out), -1);

    /* Listing: whole-key byte order, like S3 ("a-c" < "a/b/..."), prefix filtered. */
    struct listing l = {0};
    CHECK_EQ(objstore_list(s, "", collect, &l), 0);
    CHECK_EQ(l.n, 4);
    if (l.n == 4) {
        CHECK(strcmp(l.keys[0], "a-c") == 0);
        CHECK(strcmp(l.keys[1], "a/b/c.obj") == 0);
        CHECK(strcmp(l.keys[2], "a/b/d.obj") == 0);
        CHECK(strcmp(l.keys[3], "top") == 0);
        CHECK_EQ(l.sizes[0], 5);
        CHECK_EQ(l.sizes[1], 3);
        CHECK_EQ(l.sizes[2], 0);
    }
    memset(&l, 0, sizeof(l));
    CHECK_EQ(objstore_list(s, "a/", collect, &l), 0);
    CHECK_EQ(l.n, 2);
    memset(&l, 0, sizeof(l));
    CHECK_EQ(objstore_list(s, "a/b/c", collect, &l), 0);
    CHECK_EQ(l.n, 1);
    CHECK(strcmp(l.keys[0], "a/b/c.obj") == 0);
    memset(&l, 0, sizeof(l));
    CHECK_EQ(objstore_list(s, "a", collect, &l), 0);
    CHECK_EQ(l.n, 3);
    memset(&l, 0, sizeof(l));
    CHECK_EQ(objstore_list(s, "zzz", collect, &l), 0);
    CHECK_EQ(l.n, 0);

    /* No temp files are left behind. */
    snprintf(path, sizeof(path), "%s/store/nested/a/b", tmp);
    CHECK_EQ(count_entries(path), 2);

    CHECK_EQ(objstore_delete(s, "a/b/c.obj"), 0);
    CHECK_EQ(objstore_get_range(s, "a/b/c.obj", 0, 1, &out), -1);
    CHECK_EQ(objstore_delete(s, "a/b/c.obj"), 0); /* deleting a missing key is fine, as on S3 */
    memset(&l, 0, sizeof(l));
    CHECK_EQ(objstore_list(s, NULL, collect, &l), 0);
    CHECK_EQ(l.n, 3);

    /* Bad keys are refused and create nothing. */
    const char *bad[] = {"", "/abs", "../x", "a/../../x", "a/..", "a//b", "a/", ".hidden", "a/./b", "..", "."};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK_EQ(objstore_put(s, bad[i], "x", 1), -1);
        CHECK_EQ(objstore_get_range(s, bad[i], 0, 0, &out), -1);
        CHECK_EQ(objstore_delete(s, bad[i]), -1);
    }
    CHECK_EQ(count_entries(tmp), 1); /* still only "store" */
    snprintf(path, sizeof(path), "%s/store", tmp);
    CHECK_EQ(count_entries(path), 1); /* still only "nested" */

    /* A large object, read back in pieces. */
    size_t big = 5 << 20;
    uint8_t *data = malloc(big);
    for (size_t i = 0; i < big; i++)
        data[i] = (uint8_t)(i * 2654435761u >> 13);
    CHECK_EQ(objstore_put(s, "big/one", data, big), 0);
    buf_reset(&out);
    CHECK_EQ(objstore_get_range(s, "big/one", 1234567, 2000000, &out), 0);
    CHECK(out.len == 2000000 && memcmp(out.data, data + 1234567, 2000000) == 0);
    free(data);

    buf_free(&out);
    objstore_close(s);

    /* Reopening sees the same objects. */
    s = objstore_open(url, err, sizeof(err));
    CHECK(s != NULL);
    if (s) {
        memset(&l, 0, sizeof(l));
        CHECK_EQ(objstore_list(s, "", collect, &l), 0);
        CHECK_EQ(l.n, 4);
        objstore_close(s);
    }
    test_rm_rf(tmp);
    free(tmp);
}

TEST(storage_objstore_open_urls)
{
    char err[256] = "";
    CHECK(objstore_open("ftp://host/x", err, sizeof(err)) == NULL);
    CHECK(strstr(err, "ftp://host/x") != NULL || strstr(err, "ftp") != NULL);
    err[0] = '\0';
    CHECK(objstore_open("file://", err, sizeof(err)) == NULL);
    CHECK(err[0] != '\0');
    /* A folder that cannot be created. */
    err[0] = '\0';
    CHECK(objstore_open("file:///proc/sluice-cannot-exist/x", err, sizeof(err)) == NULL);
    CHECK(err[0] != '\0');
}

/* ---- SQLite metadata store ---- */

static struct metastore *open_meta(const char *dir, char *url, size_t urlsz)
{
    char err[256] = "";
    snprintf(url, urlsz, "sqlite://%s/deeper/folder/meta.db", dir);
    struct metastore *m = metastore_open(url, err, sizeof(err));
    if (!m)
        fprintf(stderr, "  metastore_open: %s\n", err);
    return m;
}

TEST(storage_metastore_topics)
{
    char *tmp = test_temp_dir(), url[512];
    CHECK(tmp != NULL);
    if (!tmp)
        return;
    snprintf(url, sizeof(url), "sqlite://%s/deeper/folder/meta.db", tmp);
    metastore_contract_topics(url, failed_);
    test_rm_rf(tmp);
    free(tmp);
}

TEST(storage_metastore_groups)
{
    char *tmp = test_temp_dir(), url[512];
    CHECK(tmp != NULL);
    if (!tmp)
        return;
    snprintf(url, sizeof(url), "sqlite://%s/meta.db", tmp);
    metastore_contract_groups(url, failed_);
    test_rm_rf(tmp);
    free(tmp);
}

TEST(storage_metastore_credentials)
{
    char *tmp = test_temp_dir(), url[512];
    CHECK(tmp != NULL);
    if (!tmp)
        return;
    snprintf(url, sizeof(url), "sqlite://%s/meta.db", tmp);
    metastore_contract_credentials(url, failed_);
    test_rm_rf(tmp);
    free(tmp);
}

TEST(storage_metastore_topic_changes)
{
    char *tmp = test_temp_dir(), url[512];
    CHECK(tmp != NULL);
    if (!tmp)
        return;
    snprintf(url, sizeof(url), "sqlite://%s/meta.db", tmp);
    metastore_contract_topic_changes(url, failed_);
    test_rm_rf(tmp);
    free(tmp);
}

#define chunk contract_chunk

TEST(storage_metastore_commit_assigns_offsets)
{
    char *tmp = test_temp_dir(), url[512];
    CHECK(tmp != NULL);
    if (!tmp)
        return;
    snprintf(url, sizeof(url), "sqlite://%s/deeper/folder/meta.db", tmp);
    metastore_contract_commits(url, failed_);
    test_rm_rf(tmp);
    free(tmp);
}

TEST(storage_metastore_idempotent_producers)
{
    char *tmp = test_temp_dir(), url[512];
    CHECK(tmp != NULL);
    if (!tmp)
        return;
    snprintf(url, sizeof(url), "sqlite://%s/meta.db", tmp);
    metastore_contract_producers(url, failed_);
    test_rm_rf(tmp);
    free(tmp);
}

TEST(storage_metastore_persists_across_reopen)
{
    char *tmp = test_temp_dir(), url[512];
    struct metastore *m = tmp ? open_meta(tmp, url, sizeof(url)) : NULL;
    CHECK(m != NULL);
    if (!m) {
        free(tmp);
        return;
    }
    struct topic_config cfg = {"max.message.bytes", "1048588"};
    struct topic_info t;
    CHECK_EQ(metastore_create_topic(m, "keep", 2, &cfg, 1, &t), 0);
    struct commit_chunk c[2] = {chunk(t.id, 0, 10, 8, 1000), chunk(t.id, 1, 4, 108, 2000)};
    CHECK_EQ(metastore_commit_object(m, "objects/keep-1", 500, c, 2), 0);
    /* A second handle on the same file sees the commit at once. */
    char err[256];
    struct metastore *m2 = metastore_open(url, err, sizeof(err));
    CHECK(m2 != NULL);
    int64_t ls, hw;
    if (m2) {
        CHECK_EQ(metastore_partition_offsets(m2, t.id, 0, &ls, &hw), 0);
        CHECK_EQ(hw, 10);
        metastore_close(m2);
    }
    metastore_close(m);

    m = metastore_open(url, err, sizeof(err));
    CHECK(m != NULL);
    if (!m) {
        test_rm_rf(tmp);
        free(tmp);
        return;
    }
    struct topic_info got;
    CHECK_EQ(metastore_get_topic(m, "keep", &got), 0);
    CHECK_EQ(got.id, t.id);
    CHECK_MEM(got.uuid, t.uuid, 16);
    CHECK_EQ(got.partitions, 2);
    struct topic_config *cs;
    int n;
    CHECK_EQ(metastore_topic_configs(m, t.id, &cs, &n), 0);
    CHECK_EQ(n, 1);
    CHECK(n == 1 && strcmp(cs[0].value, "1048588") == 0);
    free(cs);
    CHECK_EQ(metastore_partition_offsets(m, t.id, 0, &ls, &hw), 0);
    CHECK_EQ(hw, 10);
    CHECK_EQ(metastore_partition_offsets(m, t.id, 1, &ls, &hw), 0);
    CHECK_EQ(hw, 4);
    struct chunk_ref r[2];
    CHECK_EQ(metastore_find_chunks(m, t.id, 1, 0, r, 2), 1);
    CHECK(strcmp(r[0].object_key, "objects/keep-1") == 0);
    CHECK_EQ(r[0].pos, 108);
    /* Offsets continue where they were. */
    struct commit_chunk c2 = chunk(t.id, 0, 1, 8, 1);
    CHECK_EQ(metastore_commit_object(m, "objects/keep-2", 500, &c2, 1), 0);
    CHECK_EQ(c2.base_offset, 10);
    metastore_close(m);
    test_rm_rf(tmp);
    free(tmp);
}

TEST(storage_metastore_open_urls)
{
    char err[256] = "";
    CHECK(metastore_open("mysql://x", err, sizeof(err)) == NULL);
    CHECK(strstr(err, "mysql") != NULL);
    err[0] = '\0';
    CHECK(metastore_open("sqlite://", err, sizeof(err)) == NULL);
    CHECK(err[0] != '\0');
    err[0] = '\0';
    CHECK(metastore_open("sqlite:///proc/sluice-no/meta.db", err, sizeof(err)) == NULL);
    CHECK(err[0] != '\0');
}

/* ---- concurrent commits from two handles ---- */

#define COMMITS 200
#define CHUNKS_PER_COMMIT 3

#define RACES 20

struct committer {
    const char *url;
    int64_t topic_id;
    int id;
    int failures;
    int created[RACES]; /* create_topic results for the names both threads race for */
    struct commit_chunk done[COMMITS * CHUNKS_PER_COMMIT];
    int ndone;
};

static void *commit_loop(void *arg)
{
    struct committer *w = arg;
    char err[256];
    struct metastore *m = metastore_open(w->url, err, sizeof(err));
    if (!m) {
        w->failures = COMMITS;
        return NULL;
    }
    unsigned seed = (unsigned)w->id * 7919u + 1;
    for (int i = 0; i < COMMITS; i++) {
        if (i < RACES) {
            char name[32];
            snprintf(name, sizeof(name), "race-%d", i);
            w->created[i] = metastore_create_topic(m, name, 1, NULL, 0, NULL);
        }
        struct commit_chunk c[CHUNKS_PER_COMMIT];
        for (int k = 0; k < CHUNKS_PER_COMMIT; k++) {
            seed = seed * 1103515245u + 12345u;
            /* Two chunks of partition 0 and one of partition 1 per commit. */
            c[k] = chunk(w->topic_id, k == 2, 1 + (seed >> 16) % 5, 8 + 100 * (uint64_t)k, i);
        }
        char key[64];
        snprintf(key, sizeof(key), "w%d/%d", w->id, i);
        if (metastore_commit_object(m, key, 1000, c, CHUNKS_PER_COMMIT) != 0) {
            w->failures++;
            continue;
        }
        for (int k = 0; k < CHUNKS_PER_COMMIT; k++) {
            if (c[k].error)
                w->failures++;
            else
                w->done[w->ndone++] = c[k];
        }
    }
    metastore_close(m);
    return NULL;
}

static int by_base(const void *a, const void *b)
{
    const struct commit_chunk *x = a, *y = b;
    if (x->partition != y->partition)
        return x->partition - y->partition;
    return x->base_offset < y->base_offset ? -1 : x->base_offset > y->base_offset;
}

TEST(storage_metastore_concurrent_commits_from_two_handles)
{
    char *tmp = test_temp_dir(), url[512];
    struct metastore *m = tmp ? open_meta(tmp, url, sizeof(url)) : NULL;
    CHECK(m != NULL);
    if (!m) {
        free(tmp);
        return;
    }
    struct topic_info t;
    CHECK_EQ(metastore_create_topic(m, "busy", 2, NULL, 0, &t), 0);

    struct committer *w = calloc(2, sizeof(*w));
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        w[i].url = url;
        w[i].topic_id = t.id;
        w[i].id = i;
        pthread_create(&th[i], NULL, commit_loop, &w[i]);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    CHECK_EQ(w[0].failures, 0);
    CHECK_EQ(w[1].failures, 0);
    /* Each raced name was created exactly once; the loser was told it exists. */
    for (int i = 0; i < RACES; i++) {
        int a = w[0].created[i], b = w[1].created[i];
        CHECK((a == 0 && b == KERR_TOPIC_ALREADY_EXISTS) || (a == KERR_TOPIC_ALREADY_EXISTS && b == 0));
    }

    /* Every assigned range, of both threads, tiles [0, high watermark) of its partition. */
    int total = w[0].ndone + w[1].ndone;
    struct commit_chunk *all = malloc((size_t)total * sizeof(*all));
    memcpy(all, w[0].done, (size_t)w[0].ndone * sizeof(*all));
    memcpy(all + w[0].ndone, w[1].done, (size_t)w[1].ndone * sizeof(*all));
    qsort(all, (size_t)total, sizeof(*all), by_base);
    CHECK_EQ(total, 2 * COMMITS * CHUNKS_PER_COMMIT);
    int64_t next[2] = {0, 0};
    int count[2] = {0, 0}, gaps = 0;
    for (int i = 0; i < total; i++) {
        int p = all[i].partition;
        if (all[i].base_offset != next[p])
            gaps++;
        next[p] = all[i].base_offset + all[i].offset_count;
        count[p]++;
    }
    CHECK_EQ(gaps, 0);
    for (int p = 0; p < 2; p++) {
        int64_t ls, hw;
        CHECK_EQ(metastore_partition_offsets(m, t.id, p, &ls, &hw), 0);
        CHECK_EQ(hw, next[p]);
        /* And the store holds exactly those chunks. */
        struct chunk_ref *r = malloc(2000 * sizeof(*r));
        CHECK_EQ(metastore_find_chunks(m, t.id, p, 0, r, 2000), count[p]);
        free(r);
    }
    free(all);
    free(w);
    metastore_close(m);
    test_rm_rf(tmp);
    free(tmp);
}

TEST(storage_metastore_acls)
{
    char *tmp = test_temp_dir(), url[512];
    CHECK(tmp != NULL);
    if (!tmp)
        return;
    snprintf(url, sizeof(url), "sqlite://%s/meta.db", tmp);
    metastore_contract_acls(url, failed_);
    test_rm_rf(tmp);
    free(tmp);
}

TEST(storage_metastore_lifecycle)
{
    char *tmp = test_temp_dir(), url[512];
    CHECK(tmp != NULL);
    if (!tmp)
        return;
    snprintf(url, sizeof(url), "sqlite://%s/meta.db", tmp);
    metastore_contract_lifecycle(url, failed_);
    test_rm_rf(tmp);
    free(tmp);
}

TEST(storage_metastore_compaction)
{
    char *tmp = test_temp_dir(), url[512];
    CHECK(tmp != NULL);
    if (!tmp)
        return;
    snprintf(url, sizeof(url), "sqlite://%s/meta.db", tmp);
    metastore_contract_compaction(url, failed_);
    test_rm_rf(tmp);
    free(tmp);
}
