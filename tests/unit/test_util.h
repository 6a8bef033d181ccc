/* Small helpers the unit tests share: temp folders, free ports, private network namespaces. */
#ifndef SLUICE_TEST_UTIL_H
#define SLUICE_TEST_UTIL_H

/* A new empty folder /tmp/sluice-unit-XXXXXX (malloc'd path), or NULL. */
char *test_temp_dir(void);
/* Removes a folder and everything in it. */
void test_rm_rf(const char *dir);
/* A metadata store handle for url, or NULL after printing why. */
struct metastore *test_open_meta(const char *url);
/* A TCP port on 127.0.0.1 that was free a moment ago, or -1. */
int test_free_port(void);

/* A test body run by test_in_netns: name is unique to the child ("unit-<pid>"), for BPF pins. */
typedef void (*test_netns_body)(int *failed_, const char *name);
/* Runs body in a forked child inside a new network namespace with lo up (unshare cannot be undone,
 * hence the child); its CHECK failures and SKIPs come back through its exit status. The pins under
 * /sys/fs/bpf/sluice/<name>/ are removed when it ends. Without root: SKIP. */
void test_in_netns(int *failed_, test_netns_body body);
/* Runs a shell command (set-up of test topologies with iproute2); 0 if it exited 0. */
int test_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
