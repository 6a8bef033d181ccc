/* A minimal test harness: each tests/unit/test_*.c defines TEST(name) functions; the runner
 * (tests/unit/main.c) calls every registered test and prints "N passed, N failed". */
#ifndef SLUICE_CHECK_H
#define SLUICE_CHECK_H

#include <stdio.h>
#include <string.h>

struct test_case {
    const char *name;
    void (*fn)(int *failed);
};

void test_register(const char *name, void (*fn)(int *failed));

#define TEST(name)                                                               \
    static void test_##name(int *failed_);                                       \
    __attribute__((constructor)) static void register_##name(void)              \
    {                                                                            \
        test_register(#name, test_##name);                                       \
    }                                                                            \
    static void test_##name(int *failed_)

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "  %s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            *failed_ = 1;                                                        \
        }                                                                        \
    } while (0)

#define CHECK_EQ(a, b)                                                           \
    do {                                                                         \
        long long a_ = (long long)(a), b_ = (long long)(b);                      \
        if (a_ != b_) {                                                          \
            fprintf(stderr, "  %s:%d: CHECK_EQ failed: %s == %lld, %s == %lld\n", __FILE__, __LINE__, \
                    #a, a_, #b, b_);                                             \
            *failed_ = 1;                                                        \
        }                                                                        \
    } while (0)

/* Ends the test as skipped (e.g. it needs root), never as passed; a test that already failed a
 * CHECK stays failed. */
#define SKIP(reason)                                                             \
    do {                                                                         \
        fprintf(stderr, "  skipped: %s\n", (reason));                             \
        if (*failed_ == 0)                                                       \
            *failed_ = -1;                                                       \
        return;                                                                  \
    } while (0)

#define CHECK_MEM(a, b, n) CHECK(memcmp((a), (b), (n)) == 0)

#endif
