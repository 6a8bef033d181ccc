/* libFuzzer target for whole requests through the broker's handlers.
 *
 * Input: one request frame without its length prefix (header + body), as a client sends it. It
 * goes to a real worker: the io_uring loop and its connection code, request decoding, every
 * handler, the store threads on SQLite, the flusher and the readers on file:// objects, all in a
 * temporary folder. Each input comes on a fresh connection (a socketpair) whose client side then
 * closes; the worker must answer or close it and free the connection. A connection still open
 * 10 s later aborts: a request that never finishes is a bug too. The sanitizers catch the rest.
 *
 * State carries over between inputs (topics created, records produced), as it does in a broker:
 * a later input can fetch what an earlier one wrote. */
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "broker/broker.h"
#include "config.h"
#include "server/conn.h"
#include "server/server.h"
#include "util/clock.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define INPUT_MAX (1 << 20)
#define FINISH_WITHIN_MS 10000

static char dir[] = "/tmp/sluice-fuzz-handlers-XXXXXX";
static struct config cfg;
static struct server srv;
static struct broker *broker;

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void cleanup(void)
{
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    if (!mkdtemp(dir)) {
        perror("fuzz_handlers: mkdtemp");
        exit(1);
    }
    atexit(cleanup);
    char bucket[128], meta[128];
    snprintf(bucket, sizeof(bucket), "file://%s/objects", dir);
    snprintf(meta, sizeof(meta), "sqlite://%s/metadata.db", dir);
    /* Quiet (bad input is the point: one warning per input would drown the fuzzer's output), a
     * short batch timeout (produce answers quickly), three partitions per new topic. */
    char *level = getenv("FUZZ_LOG_LEVEL"); /* e.g. debug, to see what an input does */
    char *args[] = {"--bucket-url", bucket, "--metadata-url", meta, "--log-level", level ? level : "error",
                    "--batch-timeout", "1ms",
                    "--default-partitions", "3", "--fetch-cache-bytes", "8MiB"};
    if (config_load(&cfg, (int)(sizeof(args) / sizeof(args[0])), args) != 0)
        exit(1);
    signal(SIGPIPE, SIG_IGN);
    if (server_init(&srv, &cfg, 0, NULL, 0) != 0)
        exit(1);
    broker = broker_create(&cfg, &srv, 0);
    if (!broker)
        exit(1);
    broker_started(broker);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > INPUT_MAX)
        return -1;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        perror("fuzz_handlers: socketpair");
        abort();
    }
    int sndbuf = 4 * INPUT_MAX;
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof(sndbuf));
    uint8_t prefix[4] = {(uint8_t)(size >> 24), (uint8_t)(size >> 16), (uint8_t)(size >> 8), (uint8_t)size};
    struct iovec iov[2] = {{prefix, 4}, {(void *)data, size}};
    ssize_t n = writev(sv[1], iov, 2);
    if (n != (ssize_t)(size + 4)) {
        fprintf(stderr, "fuzz_handlers: wrote %zd of %zu bytes: %s\n", n, size + 4, strerror(errno));
        abort();
    }
    close(sv[1]); /* the client leaves: what it sent is still read, answers go nowhere */
    if (!conn_new(&srv, sv[0])) {
        close(sv[0]);
        return 0;
    }
    int64_t deadline = mono_ms() + FINISH_WITHIN_MS;
    while (srv.nconns > 0) {
        if (mono_ms() > deadline) {
            fprintf(stderr, "fuzz_handlers: the request was not finished %d ms after its client left\n",
                    FINISH_WITHIN_MS);
            abort();
        }
        if (server_turn(&srv, 10) != 0)
            abort();
    }
    return 0;
}
