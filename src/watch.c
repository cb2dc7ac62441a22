#include "watch.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#define SETTLE_SECONDS 0.05

static struct {
    struct ev_loop *loop;
    int fd;
    char name[NAME_MAX + 1]; /* the file's name in its directory */
    void (*changed)(void);
    ev_io io;
    ev_timer settle;
} w = {.fd = -1};

static void on_settled(EV_P_ ev_timer *t, int revents)
{
    w.changed();
}

static void on_inotify(EV_P_ ev_io *io, int revents)
{
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    ssize_t n;
    int hit = 0;
    while ((n = read(w.fd, buf, sizeof buf)) > 0) {
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            if (ev->len && strcmp(ev->name, w.name) == 0)
                hit = 1;
            p += sizeof *ev + ev->len;
        }
    }
    if (hit) {
        /* Restart the settle time: one reload for a burst of writes and renames. */
        ev_timer_stop(EV_A_ & w.settle);
        ev_timer_set(&w.settle, SETTLE_SECONDS, 0);
        ev_timer_start(EV_A_ & w.settle);
    }
}

int watch_start(struct ev_loop *loop, const char *path, void (*changed)(void), char *err,
                size_t errlen)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t dlen = slash ? (size_t)(slash - path) : 0;
    if (!*base || strlen(base) > NAME_MAX || dlen >= sizeof dir) {
        snprintf(err, errlen, "cannot watch '%s': not a file name", path);
        return -1;
    }
    if (slash) {
        memcpy(dir, path, dlen);
        dir[dlen] = '\0';
        if (dlen == 0)
            strcpy(dir, "/");
    } else {
        strcpy(dir, ".");
    }
    w.fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w.fd < 0 ||
        inotify_add_watch(w.fd, dir, IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE) < 0) {
        snprintf(err, errlen, "cannot watch '%s': %s", path, strerror(errno));
        if (w.fd >= 0)
            close(w.fd);
        w.fd = -1;
        return -1;
    }
    strcpy(w.name, base);
    w.loop = loop;
    w.changed = changed;
    ev_io_init(&w.io, on_inotify, w.fd, EV_READ);
    ev_io_start(loop, &w.io);
    ev_timer_init(&w.settle, on_settled, SETTLE_SECONDS, 0);
    return 0;
}

void watch_stop(void)
{
    if (w.fd < 0)
        return;
    ev_io_stop(w.loop, &w.io);
    ev_timer_stop(w.loop, &w.settle);
    close(w.fd);
    w.fd = -1;
}
