#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* With arguments, only the tests whose name contains one of them run. */
static int selected(const char *name, int argc, char **argv)
{
    if (argc < 2)
        return 1;
    for (int i = 1; i < argc; i++)
        if (strstr(name, argv[i]))
            return 1;
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    log_threshold = (enum log_level)(LOG_NOTICE + 1); /* tests check results, not log lines */
    int passed = 0, failed = 0;
    for (struct test *t = first; t; t = t->next) {
        if (!selected(t->name, argc, argv))
            continue;
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
