/* The poller on a pipe (no socket): readiness delivered as wanted, a lazily narrowed set that
 * neither reports what nobody waits for nor spins on a hang-up, feeds (union, not masked,
 * forgotten on free) and no delivery to a dead connection. */
#include <ev.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "conn.h"
#include "poller.h"
#include "test.h"

static struct conn *seen;
static int calls, last_revents;

static void on_ready(struct conn *c, int revents)
{
    seen = c;
    calls++;
    last_revents = revents;
}

/* One pass of the loop without blocking; returns the callbacks it made. */
static int pass(struct ev_loop *loop)
{
    calls = 0;
    last_revents = 0;
    ev_run(loop, EVRUN_NOWAIT);
    return calls;
}

struct fixture {
    struct ev_loop *loop;
    int fds[2];
    struct conn c; /* watches the pipe's read end */
};

static void setup(struct fixture *f)
{
    f->loop = ev_loop_new(EVFLAG_AUTO);
    CHECK_INT(poller_init(f->loop, on_ready), 0);
    CHECK_INT(pipe2(f->fds, O_NONBLOCK | O_CLOEXEC), 0);
    f->c = (struct conn){.fd = f->fds[0], .state = CONN_WS};
}

static void teardown(struct fixture *f)
{
    poller_forget(&f->c);
    close(f->fds[0]);
    if (f->fds[1] >= 0)
        close(f->fds[1]);
    poller_free();
    ev_loop_destroy(f->loop);
}

TEST(poller_delivers_readiness_as_long_as_it_lasts)
{
    struct fixture f;
    setup(&f);
    CHECK_INT(poller_want(&f.c, EV_READ), 0);
    CHECK_INT(f.c.io_set, EV_READ);
    CHECK_INT(pass(f.loop), 0); /* nothing written yet */
    CHECK_INT(write(f.fds[1], "x", 1), 1);
    CHECK_INT(pass(f.loop), 1);
    CHECK(seen == &f.c);
    CHECK_INT(last_revents, EV_READ);
    CHECK_INT(pass(f.loop), 1); /* level-triggered: still unread */
    char b;
    CHECK_INT(read(f.fds[0], &b, 1), 1);
    CHECK_INT(pass(f.loop), 0);
    teardown(&f);
}

TEST(poller_narrows_lazily_and_reports_nothing_unwanted)
{
    struct fixture f;
    setup(&f);
    CHECK_INT(poller_want(&f.c, EV_READ), 0);
    CHECK_INT(poller_want(&f.c, 0), 0);
    CHECK_INT(f.c.io_set, EV_READ); /* no system call until something unwanted comes */
    CHECK_INT(write(f.fds[1], "x", 1), 1);
    CHECK_INT(pass(f.loop), 0);
    CHECK_INT(f.c.io_set, 0); /* the unwanted event took the pipe out of the set */
    CHECK_INT(pass(f.loop), 0);
    CHECK_INT(poller_want(&f.c, EV_READ), 0); /* waiting again: the data is still there */
    CHECK_INT(f.c.io_set, EV_READ);
    CHECK_INT(pass(f.loop), 1);
    CHECK_INT(last_revents, EV_READ);
    teardown(&f);
}

TEST(poller_hang_up_of_an_unwatched_peer_does_not_spin)
{
    struct fixture f;
    setup(&f);
    CHECK_INT(poller_want(&f.c, EV_READ), 0);
    CHECK_INT(poller_want(&f.c, 0), 0);
    close(f.fds[1]);
    f.fds[1] = -1;
    CHECK_INT(pass(f.loop), 0);
    CHECK_INT(f.c.io_set, 0);
    CHECK_INT(pass(f.loop), 0);
    CHECK_INT(poller_want(&f.c, EV_READ), 0);
    CHECK_INT(pass(f.loop), 1); /* the hang-up is for reading: EOF */
    CHECK_INT(last_revents, EV_READ);
    teardown(&f);
}

TEST(poller_feeds_are_delivered_once_unmasked_and_merged)
{
    struct fixture f;
    setup(&f);
    CHECK_INT(poller_want(&f.c, EV_READ), 0);
    poller_feed(&f.c, EV_READ);
    poller_feed(&f.c, EV_WRITE);
    CHECK_INT(pass(f.loop), 1);
    CHECK_INT(last_revents, EV_READ | EV_WRITE); /* EV_WRITE though only reading is waited */
    CHECK_INT(pass(f.loop), 0);
    teardown(&f);
}

TEST(poller_forgets_a_feed_and_never_delivers_to_the_dead)
{
    struct fixture f;
    setup(&f);
    CHECK_INT(poller_want(&f.c, EV_READ), 0);
    poller_feed(&f.c, EV_READ);
    poller_forget(&f.c);
    CHECK_INT(pass(f.loop), 0);
    CHECK_INT(write(f.fds[1], "x", 1), 1);
    f.c.state = CONN_DEAD;
    poller_feed(&f.c, EV_READ);
    CHECK_INT(pass(f.loop), 0); /* neither the readiness nor the feed */
    teardown(&f);
}
