/* A tiny test harness: TEST(name) { CHECK(...); } registers itself; main.c runs them all and
 * prints "unit: N passed, N failed". Tests never open a socket: bytes in, bytes out. */
#ifndef CONFAB_TEST_H
#define CONFAB_TEST_H

#include <stdio.h>
#include <string.h>

struct test {
    const char *name;
    void (*fn)(void);
    struct test *next;
};

void test_register(struct test *t);

struct conn;
/* A connection as the hub and the script see it (open WebSocket, with an id), without a socket. */
struct conn *test_conn_open(void);
/* Takes it out of the hub and frees it. */
void test_conn_close(struct conn *c);
extern int test_failed_checks;

#define TEST(name)                                                   \
    static void name(void);                                          \
    static struct test name##_reg = {#name, name, NULL};             \
    __attribute__((constructor)) static void name##_ctor(void)       \
    {                                                                \
        test_register(&name##_reg);                                  \
    }                                                                \
    static void name(void)

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            printf("    %s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);  \
            test_failed_checks++;                                                \
        }                                                                        \
    } while (0)

#define CHECK_INT(a, b)                                                                  \
    do {                                                                                 \
        long long a_ = (long long)(a), b_ = (long long)(b);                              \
        if (a_ != b_) {                                                                  \
            printf("    %s:%d: %s == %lld, expected %lld\n", __FILE__, __LINE__, #a, a_, \
                   b_);                                                                  \
            test_failed_checks++;                                                        \
        }                                                                                \
    } while (0)

#define CHECK_STR(a, b)                                                                    \
    do {                                                                                   \
        const char *a_ = (a), *b_ = (b);                                                   \
        if (!a_ || strcmp(a_, b_) != 0) {                                                  \
            printf("    %s:%d: %s == \"%s\", expected \"%s\"\n", __FILE__, __LINE__, #a,   \
                   a_ ? a_ : "(null)", b_);                                                \
            test_failed_checks++;                                                          \
        }                                                                                  \
    } while (0)

#endif
