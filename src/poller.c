#include "poller.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "conn.h"
#include "log.h"

/* Events taken per epoll_wait: one call's worth (libev calls again while more are ready). */
#define POLLER_BATCH 256

static struct {
    struct ev_loop *loop;
    poller_cb *cb;
    int epfd;
    ev_io io;          /* the set is readable while it has events */
    ev_check check;    /* delivers feeds after the loop polled */
    ev_idle idle;      /* active while feeds wait: the loop does not block */
    struct conn **fed; /* connections with c->io_fed set, in the order fed (NULL: forgotten) */
    size_t nfed, capfed;
} p = {.epfd = -1};

static uint32_t epoll_bits(int events)
{
    return (events & EV_READ ? EPOLLIN : 0) | (events & EV_WRITE ? EPOLLOUT : 0);
}

/* Makes the kernel's set hold exactly what c waits for (removing its socket for nothing). Called
 * only when the two differ, so the socket is in the set unless io_set is 0. */
static int set_sync(struct conn *c)
{
    int op = !c->io_want ? EPOLL_CTL_DEL : c->io_set ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    struct epoll_event ev = {.events = epoll_bits(c->io_want), .data.ptr = c};
    if (epoll_ctl(p.epfd, op, c->fd, &ev) < 0)
        return -1;
    c->io_set = c->io_want;
    return 0;
}

int poller_want(struct conn *c, int events)
{
    c->io_want = (uint8_t)(events & (EV_READ | EV_WRITE));
    if (!(c->io_want & ~c->io_set))
        return 0; /* narrower or the same: narrowed when an unwanted event comes */
    int rc = set_sync(c);
    if (rc < 0)
        c->io_want = c->io_set;
    return rc;
}

static void deliver_feeds(void)
{
    /* Feeds made while delivering go to the next round, so this one ends. */
    size_t n = p.nfed;
    for (size_t i = 0; i < n; i++) {
        struct conn *c = p.fed[i];
        if (!c)
            continue;
        int revents = c->io_fed;
        c->io_fed = 0;
        p.fed[i] = NULL;
        if (c->state != CONN_DEAD)
            p.cb(c, revents);
    }
    memmove(p.fed, p.fed + n, (p.nfed - n) * sizeof *p.fed);
    p.nfed -= n;
    if (!p.nfed) {
        ev_check_stop(p.loop, &p.check);
        ev_idle_stop(p.loop, &p.idle);
    }
}

void poller_feed(struct conn *c, int revents)
{
    if (!revents)
        return; /* nothing to deliver (and io_fed 0 would hide the entry from poller_forget) */
    if (c->io_fed) {
        c->io_fed |= (uint8_t)revents;
        return;
    }
    if (p.nfed == p.capfed) {
        size_t cap = p.capfed ? p.capfed * 2 : 64;
        struct conn **n = realloc(p.fed, cap * sizeof *n);
        if (!n) {
            /* Nothing is lost but time: the connection waits for its next readiness event
             * (which comes if its socket still has data) or, with its data already buffered
             * (TLS, a pipelined request), for its deadline. A rare stall, never a crash. */
            log_warn("poller: out of memory; an event fed to conn %d was dropped", c->fd);
            return;
        }
        p.fed = n;
        p.capfed = cap;
    }
    c->io_fed = (uint8_t)revents;
    p.fed[p.nfed++] = c;
    if (!ev_is_active(&p.check)) {
        ev_check_start(p.loop, &p.check);
        ev_idle_start(p.loop, &p.idle);
    }
}

void poller_forget(struct conn *c)
{
    if (!c->io_fed)
        return;
    c->io_fed = 0;
    for (size_t i = 0; i < p.nfed; i++)
        if (p.fed[i] == c)
            p.fed[i] = NULL;
}

static void on_set_ready(EV_P_ ev_io *w, int revents)
{
    struct epoll_event evs[POLLER_BATCH];
    int n = epoll_wait(p.epfd, evs, POLLER_BATCH, 0);
    if (n < 0 && errno != EINTR)
        log_error("poller: epoll_wait: %s", strerror(errno));
    for (int i = 0; i < n; i++) {
        struct conn *c = evs[i].data.ptr;
        uint32_t e = evs[i].events;
        int got = (e & (EPOLLIN | EPOLLERR | EPOLLHUP) ? EV_READ : 0) |
                  (e & (EPOLLOUT | EPOLLERR | EPOLLHUP) ? EV_WRITE : 0);
        /* Something the connection no longer waits for (an error or hang-up is reported even
         * for nothing): narrow the set now, or the level-triggered set reports it forever. */
        if ((got & ~c->io_want) && c->io_set != c->io_want) {
            if (set_sync(c) < 0)
                log_warn("conn %d: epoll_ctl: %s", c->fd, strerror(errno));
        }
        got &= c->io_want;
        if (got && c->state != CONN_DEAD)
            p.cb(c, got);
    }
    if (p.nfed)
        deliver_feeds();
}

static void on_check(EV_P_ ev_check *w, int revents)
{
    deliver_feeds();
}

static void on_idle(EV_P_ ev_idle *w, int revents)
{
}

int poller_init(struct ev_loop *loop, poller_cb *cb)
{
    p.loop = loop;
    p.cb = cb;
    p.epfd = epoll_create1(EPOLL_CLOEXEC);
    if (p.epfd < 0)
        return -1;
    ev_io_init(&p.io, on_set_ready, p.epfd, EV_READ);
    ev_io_start(loop, &p.io);
    ev_check_init(&p.check, on_check);
    ev_idle_init(&p.idle, on_idle);
    return 0;
}

void poller_free(void)
{
    if (p.epfd < 0)
        return;
    ev_io_stop(p.loop, &p.io);
    ev_check_stop(p.loop, &p.check);
    ev_idle_stop(p.loop, &p.idle);
    close(p.epfd);
    p.epfd = -1;
    free(p.fed);
    p.fed = NULL;
    p.nfed = p.capfed = 0;
}
