/* Runs every TEST registered by the linked test files; optional argument: a substring of the
 * test names to run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "util/log.h"

#define MAX_TESTS 1024
static struct test_case tests[MAX_TESTS];
static int ntests;

void test_register(const char *name, void (*fn)(int *failed))
{
    if (ntests == MAX_TESTS) {
        fprintf(stderr, "too many tests\n");
        exit(2);
    }
    tests[ntests].name = name;
    tests[ntests].fn = fn;
    ntests++;
}

int main(int argc, char **argv)
{
    const char *filter = argc > 1 ? argv[1] : NULL;
    /* Tests provoke errors on purpose; their log lines are noise unless asked for. */
    if (!getenv("SLUICE_TEST_LOGS"))
        log_min_level = (enum log_level)(LOG_ERROR + 1);
    int passed = 0, failed = 0, skipped = 0;
    for (int i = 0; i < ntests; i++) {
        if (filter && !strstr(tests[i].name, filter))
            continue;
        int f = 0;
        tests[i].fn(&f);
        printf("%s %s\n", f < 0 ? "skip" : f ? "FAIL" : "ok  ", tests[i].name);
        if (f < 0)
            skipped++;
        else if (f)
            failed++;
        else
            passed++;
    }
    printf("unit: %d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed ? 1 : 0;
}
