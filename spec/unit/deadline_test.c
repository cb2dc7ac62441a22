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

/* dl_touch_at: a timeout started in the past expires that much sooner (the keepalive moves a
 * node from when its ping was due, not from when the late timer ran); the timer follows it. */
TEST(deadline_touch_at_counts_from_the_stamp_given)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct dl_list a;
    dl_init(loop, &a, 100, record);
    struct dl_node n[2];
    memset(n, 0, sizeof n);
    nexpired = 0;
    ev_tstamp now = ev_now(loop);
    dl_touch(&a, &n[0]);               /* due in 100 s */
    dl_touch_at(&a, &n[1], now - 100); /* due now, behind a node due later */
    CHECK(n[1].stamp == now - 100);
    ev_run(loop, EVRUN_NOWAIT);
    CHECK_INT(nexpired, 0); /* the list's first is not due: the late one waits behind it */
    dl_remove(&n[0]);       /* now it is first, and due */
    ev_run(loop, EVRUN_NOWAIT);
    CHECK_INT(nexpired, 1);
    CHECK(expired[0] == &n[1]);
    ev_loop_destroy(loop);
}
