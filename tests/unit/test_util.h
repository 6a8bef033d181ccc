/* Small helpers the unit tests share: temp folders and free ports. */
#ifndef SLUICE_TEST_UTIL_H
#define SLUICE_TEST_UTIL_H

/* A new empty folder /tmp/sluice-unit-XXXXXX (malloc'd path), or NULL. */
char *test_temp_dir(void);
/* Removes a folder and everything in it. */
void test_rm_rf(const char *dir);
/* A TCP port on 127.0.0.1 that was free a moment ago, or -1. */
int test_free_port(void);

#endif
