#include <stdio.h>
#include <stdlib.h>

#include "hub.h"

#include "log.h"
#include "test.h"

static struct test *first, *last;
int test_failed_checks;

void test_register(struct test *t)
{
    if (last)
        last->next = t;
    else
        first = t;
    last = t;
}

struct conn *test_conn_open(void)
{
    struct conn *c = calloc(1, sizeof *c);
    c->state = CONN_WS;
    c->flags = CONN_OPENED;
    hub_add(c);
    return c;
}

void test_conn_close(struct conn *c)
{
    hub_remove(c);
    free(c);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    log_threshold = (enum log_level)(LOG_NOTICE + 1); /* tests check results, not log lines */
    int passed = 0, failed = 0;
    for (struct test *t = first; t; t = t->next) {
        int before = test_failed_checks;
        t->fn();
        if (test_failed_checks == before) {
            passed++;
            printf("ok   %s\n", t->name);
        } else {
            failed++;
            printf("FAIL %s\n", t->name);
        }
    }
    printf("unit: %d passed, %d failed\n", passed, failed);
    return failed != 0;
}
