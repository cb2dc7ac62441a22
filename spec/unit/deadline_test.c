/* Deadline lists: order of expiry, restarting (touch) moves a node to the end, moving between
 * lists and removing re-arm the list timers (a node knows its list only when it is first). */
#include <ev.h>
#include <string.h>

#include "deadline.h"
#include "test.h"

static struct dl_node *expired[8];
static int nexpired;

static void record(struct dl_list *l, struct dl_node *n, ev_tstamp now)
{
    if (nexpired < 8)
        expired[nexpired++] = n;
    dl_remove(n);
}

TEST(deadline_expires_in_touch_order_and_follows_removals)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct dl_list a, b;
    dl_init(loop, &a, 0, record); /* due at once: the next pass of the loop expires them */
    dl_init(loop, &b, 1000, record);
    struct dl_node n[4];
    memset(n, 0, sizeof n);
    nexpired = 0;
    dl_touch(&a, &n[0]);
    dl_touch(&a, &n[1]);
    dl_touch(&a, &n[2]);
    dl_touch(&a, &n[0]);  /* restarted: now last */
    dl_touch(&b, &n[1]);  /* moved to the other list (its first node) */
    dl_remove(&n[3]);     /* in no list: nothing happens */
    CHECK(ev_is_active(&b.timer));
    ev_run(loop, EVRUN_NOWAIT);
    CHECK_INT(nexpired, 2);
    CHECK(expired[0] == &n[2]);
    CHECK(expired[1] == &n[0]);
    CHECK(!ev_is_active(&a.timer)); /* empty: stopped */
    /* Removing b's only node, its first, stops b's timer. */
    dl_remove(&n[1]);
    CHECK(!ev_is_active(&b.timer));
    CHECK(n[1].next == NULL && n[1].prev == NULL);
    /* A node removed from the middle leaves the others in order. */
    dl_touch(&a, &n[0]);
    dl_touch(&a, &n[1]);
    dl_touch(&a, &n[2]);
    dl_remove(&n[1]);
    nexpired = 0;
    ev_run(loop, EVRUN_NOWAIT);
    CHECK_INT(nexpired, 2);
    CHECK(expired[0] == &n[0]);
    CHECK(expired[1] == &n[2]);
    ev_loop_destroy(loop);
}
