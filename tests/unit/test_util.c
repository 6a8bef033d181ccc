#include "test_util.h"

#include "storage/metastore.h"

#include <errno.h>
#include <net/if.h>
#include <sched.h>
#include <stdarg.h>
#include <sys/ioctl.h>
#include <sys/wait.h>

#include "check.h"
#include "steer/steer.h"

#include <arpa/inet.h>
#include <ftw.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

char *test_temp_dir(void)
{
    char tmpl[] = "/tmp/sluice-unit-XXXXXX";
    return mkdtemp(tmpl) ? strdup(tmpl) : NULL;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void test_rm_rf(const char *dir) { nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

int test_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 && getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

#define SKIP_STATUS 77

static int bring_lo_up(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct ifreq ifr = {0};
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
    int r = ioctl(fd, SIOCGIFFLAGS, &ifr);
    if (r == 0) {
        ifr.ifr_flags |= IFF_UP;
        r = ioctl(fd, SIOCSIFFLAGS, &ifr);
    }
    close(fd);
    return r;
}

void test_in_netns(int *failed_, test_netns_body body)
{
    if (geteuid() != 0)
        SKIP("needs root");
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid < 0)
        return;
    if (pid == 0) {
        int failed = 0;
        if (unshare(CLONE_NEWNET) < 0 || bring_lo_up() < 0) {
            fprintf(stderr, "  new network namespace: %s\n", strerror(errno));
            exit(1);
        }
        char name[32];
        snprintf(name, sizeof(name), "unit-%d", (int)getpid());
        body(&failed, name);
        if (steer_unpin(name) < 0) {
            fprintf(stderr, "  steer_unpin(%s): %s\n", name, strerror(errno));
            failed = 1;
        }
        exit(failed < 0 ? SKIP_STATUS : failed ? 1 : 0);
    }
    int status = 0;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    if (WIFEXITED(status) && WEXITSTATUS(status) == SKIP_STATUS) {
        *failed_ = -1; /* the child said why */
        return;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        if (WIFSIGNALED(status))
            fprintf(stderr, "  test child killed by signal %d\n", WTERMSIG(status));
        *failed_ = 1;
    }
}

int test_sh(const char *fmt, ...)
{
    char cmd[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    fflush(stdout);
    fflush(stderr);
    int r = system(cmd);
    if (r != 0)
        fprintf(stderr, "  command failed (%d): %s\n", r, cmd);
    return r == 0 ? 0 : -1;
}

struct metastore *test_open_meta(const char *url)
{
    char err[256] = "";
    struct metastore *m = metastore_open(url, err, sizeof(err));
    if (!m)
        fprintf(stderr, "  metastore_open(%s): %s\n", url, err);
    return m;
}
