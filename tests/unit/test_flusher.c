/* The flusher stores several objects at once (one written while another is fsynced) but commits
 * them strictly in the order the batches were sealed: a partition's offsets follow the order its
 * data arrived in. Real file:// objects and a real SQLite store in a temporary folder. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "batch_builder.h"
#include "broker/broker_internal.h"
#include "check.h"
#include "server/server.h"
#include "storage/metastore.h"
#include "test_util.h"

#define BATCHES 12

TEST(flusher_commits_in_seal_order_while_putting_in_parallel)
{
    char *tmp = test_temp_dir();
    CHECK(tmp != NULL);
    if (!tmp)
        return;
    struct config cfg;
    memset(&cfg, 0, sizeof(cfg));
    snprintf(cfg.bucket_url, sizeof(cfg.bucket_url), "file://%s/objects", tmp);
    snprintf(cfg.metadata_url, sizeof(cfg.metadata_url), "sqlite://%s/meta.db", tmp);
    snprintf(cfg.agent_id, sizeof(cfg.agent_id), "test");
    char err[512] = "";
    struct metastore *m = metastore_open(cfg.metadata_url, err, sizeof(err));
    CHECK(m != NULL);
    struct topic_info t;
    CHECK_EQ(m ? metastore_create_topic(m, "ordered", 1, NULL, 0, &t) : -1, 0);

    struct server srv;
    memset(&srv, 0, sizeof(srv));
    srv.event_fd = eventfd(0, EFD_CLOEXEC);
    struct flusher f;
    CHECK_EQ(flusher_start(&f, &cfg, &srv, 0, err, sizeof(err)), 0);
    struct buf_pool pool;
    buf_pool_init(&pool, 0);

    /* Batch i holds i+1 records: its committed offsets tell which batch got which range. Sizes
     * vary so that puts finish in varying order. */
    struct flush_batch *sealed[BATCHES];
    for (int i = 0; i < BATCHES; i++) {
        sealed[i] = flush_batch_new(&pool);
        struct flush_chunk *ch = batch_chunk(sealed[i], &t, 0, false);
        struct buf b;
        buf_init(&b);
        bb_build_simple(&b, CODEC_NONE, i + 1, 1000, 1);
        if (i % 3 == 0) /* some large objects among small ones (the flusher does not parse them) */
            memset(buf_extend(&b, 2u << 20), 0, 2u << 20);
        buf_append(&ch->data, b.data, b.len);
        ch->batch_count = 1;
        ch->offset_count = i + 1;
        ch->first_timestamp = ch->max_timestamp = 1000;
        buf_free(&b);
        flusher_submit(&f, sealed[i]);
    }
    int done = 0;
    struct flush_batch *order[BATCHES];
    for (int waited = 0; done < BATCHES && waited < 3000; waited++) {
        for (struct flush_batch *fb = flusher_take_done(&f), *next; fb; fb = next) {
            next = fb->next;
            order[done++] = fb;
        }
        if (done < BATCHES)
            usleep(10000);
    }
    CHECK_EQ(done, BATCHES);
    int64_t expect_base = 0;
    for (int i = 0; i < done; i++) {
        CHECK(order[i] == sealed[i]); /* completed in seal order */
        CHECK_EQ(order[i]->error, 0);
        CHECK_EQ(order[i]->chunks[0].base_offset, expect_base); /* offsets in seal order */
        expect_base += i + 1;
        char path[1024];
        struct stat st;
        snprintf(path, sizeof(path), "%s/objects/%s", tmp, order[i]->object_key);
        CHECK(stat(path, &st) == 0);
    }
    flusher_stop(&f);
    for (int i = 0; i < done; i++)
        flush_batch_free(order[i]);
    buf_pool_free(&pool);
    close(srv.event_fd);
    if (m)
        metastore_close(m);
    test_rm_rf(tmp);
    free(tmp);
}
