/* See pg_fixture.h. Commands run as the postgres user through fork + setuid + exec; their output
 * goes to DIR/commands.log (kept only while the server exists: the folder goes at exit). */
#include "pg_fixture.h"
#include "test_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <postgresql/libpq-fe.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int exec_in(const char *name, const char *sql);

static struct {
    int state; /* 0 not tried, 1 running, 2 stopped, -1 unavailable */
    char why[256];
    char bin[256];
    char dir[64];
    int port;
    bool as_postgres; /* we are root: run commands as the postgres user */
    uid_t uid;
    gid_t gid;
} pg;

/* Runs bin/prog args... as the server's user, output appended to DIR/commands.log. */
static int run(const char *prog, const char *const *args)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", pg.bin, prog);
    const char *argv[16];
    int n = 0;
    argv[n++] = path;
    for (int i = 0; args[i] && n < 15; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        char log[128];
        snprintf(log, sizeof(log), "%s/commands.log", pg.dir);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        if (pg.as_postgres && (setgroups(0, NULL) < 0 || setgid(pg.gid) < 0 || setuid(pg.uid) < 0))
            _exit(126);
        if (chdir(pg.dir) < 0) /* the server's user may not read our working folder */
            _exit(126);
        execv(path, (char *const *)argv);
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

int pg_fixture_start(void)
{
    char opts[512], datadir[128], log[128];
    snprintf(datadir, sizeof(datadir), "%s/data", pg.dir);
    snprintf(log, sizeof(log), "%s/server.log", pg.dir);
    /* fsync off: a throwaway server; SLUICE_TEST_PG_FSYNC=1 keeps it on, for timing commits. */
    const char *fsync = getenv("SLUICE_TEST_PG_FSYNC") ? "on" : "off";
    snprintf(opts, sizeof(opts), "-k %s -p %d -c listen_addresses=127.0.0.1 -c fsync=%s -c max_connections=60",
             pg.dir, pg.port, fsync);
    const char *args[] = {"-D", datadir, "-l", log, "-w", "-t", "30", "-o", opts, "start", NULL};
    if (run("pg_ctl", args) < 0)
        return -1;
    pg.state = 1;
    return 0;
}

int pg_fixture_stop(void)
{
    char datadir[128];
    snprintf(datadir, sizeof(datadir), "%s/data", pg.dir);
    const char *args[] = {"-D", datadir, "-m", "fast", "-w", "stop", NULL};
    if (run("pg_ctl", args) < 0)
        return -1;
    pg.state = 2;
    return 0;
}

static void remove_all(void)
{
    if (pg.state == 1)
        pg_fixture_stop();
    if (pg.dir[0])
        test_rm_rf(pg.dir);
}

static pid_t owner_pid;

static void at_exit(void)
{
    if (getpid() == owner_pid) /* not in forked test children that return normally */
        remove_all();
}

/* A test binary killed by a signal runs no atexit handler: a small process waits for the end of
 * a pipe only the test processes hold, and then removes whatever is left. */
static void start_watchdog(void)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0)
        return;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[1]);
        int null = open("/dev/null", O_RDWR | O_CLOEXEC); /* let go of the test's output pipes */
        if (null >= 0) {
            dup2(null, 1);
            dup2(null, 2);
        }
        signal(SIGINT, SIG_IGN); /* Ctrl-C reaches the whole process group */
        signal(SIGTERM, SIG_IGN);
        signal(SIGHUP, SIG_IGN);
        char c;
        while (read(fds[0], &c, 1) != 0 && errno == EINTR)
            ;
        struct stat st;
        if (stat(pg.dir, &st) == 0) {
            pg.state = 1;
            remove_all();
        }
        _exit(0);
    }
    close(fds[0]);
    /* fds[1] stays open, unused, for as long as this process (or a forked test child) lives. */
}

/* Remembers why there is no server: later tests skip with the same reason. */
static int unavailable(char *why, size_t whylen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int unavailable(char *why, size_t whylen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pg.why, sizeof(pg.why), fmt, ap);
    va_end(ap);
    pg.state = -1;
    snprintf(why, whylen, "%s", pg.why);
    return -1;
}

int pg_fixture_up(char *why, size_t whylen)
{
    if (pg.state == 0) {
        const char *bin = getenv("SLUICE_PG_BIN");
        snprintf(pg.bin, sizeof(pg.bin), "%s", bin ? bin : "/usr/lib/postgresql/15/bin");
        static const char *const progs[] = {"initdb", "pg_ctl", "postgres"};
        for (int i = 0; i < 3; i++) {
            char path[512];
            snprintf(path, sizeof(path), "%s/%s", pg.bin, progs[i]);
            if (access(path, X_OK) != 0)
                return unavailable(why, whylen, "no PostgreSQL: %s not found (set SLUICE_PG_BIN)", path);
        }
        if (geteuid() == 0) {
            struct passwd *pw = getpwnam("postgres");
            if (!pw)
                return unavailable(why, whylen, "running as root and there is no %s user to run the server as",
                                   "postgres");
            pg.as_postgres = true;
            pg.uid = pw->pw_uid;
            pg.gid = pw->pw_gid;
        }
        snprintf(pg.dir, sizeof(pg.dir), "/tmp/sluice-pg-XXXXXX");
        if (!mkdtemp(pg.dir) || (pg.as_postgres && chown(pg.dir, pg.uid, pg.gid) < 0))
            return unavailable(why, whylen, "cannot make a temp folder: %s", strerror(errno));
        owner_pid = getpid();
        atexit(at_exit);
        start_watchdog();
        char datadir[128];
        snprintf(datadir, sizeof(datadir), "%s/data", pg.dir);
        /* -N: no fsync of the new cluster; C locale: byte order, as the store expects anyway. */
        const char *args[] = {"-D", datadir, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "-N", NULL};
        pg.port = test_free_port();
        if (run("initdb", args) < 0 || pg.port < 0 || pg_fixture_start() < 0 ||
            exec_in(NULL, "CREATE DATABASE sluice") < 0) {
            unavailable(why, whylen, "could not start a PostgreSQL server (see %s/commands.log)", pg.dir);
            pg.dir[0] = '\0'; /* kept for a look: only this failure leaves the folder behind */
            return -1;
        }
    } else if (pg.state == 2) {
        if (pg_fixture_start() < 0) {
            snprintf(why, whylen, "could not restart the PostgreSQL server");
            return -1;
        }
    }
    if (pg.state < 0) {
        snprintf(why, whylen, "%s", pg.why);
        return -1;
    }
    return 0;
}

const char *pg_fixture_socket_dir(void) { return pg.dir; }
int pg_fixture_port(void) { return pg.port; }

static void quiet(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

void pg_fixture_conninfo(const char *name, char *out, size_t outsz)
{
    snprintf(out, outsz, "host=127.0.0.1 port=%d user=postgres dbname=%s options=-csearch_path=%s", pg.port,
             name ? "sluice" : "postgres", name ? name : "public");
}

static int exec_in(const char *name, const char *sql)
{
    char conninfo[256];
    pg_fixture_conninfo(name, conninfo, sizeof(conninfo));
    PGconn *c = PQconnectdb(conninfo);
    int rc = -1;
    if (PQstatus(c) == CONNECTION_OK) {
        PQsetNoticeProcessor(c, quiet, NULL); /* "... does not exist, skipping" */
        PGresult *r = PQexec(c, sql);
        ExecStatusType st = PQresultStatus(r);
        rc = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? 0 : -1;
        if (rc < 0)
            fprintf(stderr, "  pg_fixture_exec: %s", PQresultErrorMessage(r));
        PQclear(r);
    } else {
        fprintf(stderr, "  pg_fixture_exec: %s", PQerrorMessage(c));
    }
    PQfinish(c);
    return rc;
}

int pg_fixture_exec(const char *name, const char *sql) { return exec_in(name, sql); }

int pg_fixture_new_store(const char *name, char *url, size_t urlsz)
{
    char sql[256];
    snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS %s CASCADE; CREATE SCHEMA %s", name, name);
    if (exec_in("public", sql) < 0)
        return -1;
    snprintf(url, urlsz, "postgres://postgres@127.0.0.1:%d/sluice?options=-csearch_path%%3D%s", pg.port, name);
    return 0;
}
