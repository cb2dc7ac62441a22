/* poller: the readiness of the client connections' sockets, from an epoll set of confab's own
 * that libev watches as one descriptor.
 *
 * libev's ev_io is 48 bytes in every connection and its table of descriptors 16 more per socket:
 * a fifth of what an idle connection cost. Here a connection spends three bytes (what it waits
 * for, what the kernel's set holds for it, what was fed to it) and the set itself lives in the
 * kernel. Timers, signals, listeners and Redis stay on libev; when the set has events, libev
 * calls us once and we take up to a batch of them with one epoll_wait.
 *
 * Like libev, the kernel's set is changed lazily: waiting for less costs nothing until an event
 * nobody waits for arrives (then the set is narrowed, or the socket removed), so a pause that
 * ends before the next event makes no system call. A socket leaves the set when it is closed:
 * the kernel drops a registration with the last reference to the socket, and confab never
 * duplicates a client socket nor forks (accepted sockets are close-on-exec besides), so a freed
 * connection gets no event.
 *
 * Events go to the callback given to poller_init, as EV_READ and/or EV_WRITE masked by what the
 * connection waits for now (an error or hang-up counts as both). A connection is never freed
 * while a batch is dispatched (the server frees at its safe point), so a batch may hold events
 * of a connection killed by an earlier one: the callback checks its state. */
#ifndef CONFAB_POLLER_H
#define CONFAB_POLLER_H

#include <ev.h>

struct conn;

typedef void poller_cb(struct conn *c, int revents);

/* Creates the set and its watcher on loop. Returns 0, or -1 with errno set. */
int poller_init(struct ev_loop *loop, poller_cb *cb);

/* Stops the watcher and closes the set (the connections' sockets are the caller's). */
void poller_free(void);

/* c now waits for events (EV_READ, EV_WRITE, both or 0). Its socket is added to the set, or the
 * set widened, at once; narrowing waits (see above). Returns 0, or -1 with errno set when the
 * kernel refused (out of memory, or past fs.epoll.max_user_watches): c is then not watched. */
int poller_want(struct conn *c, int events);

/* Delivers revents to c from the loop, soon, as libev's ev_feed_event does (not masked by what
 * c waits for): before the loop next blocks. Feeding twice before delivery delivers the union. */
void poller_feed(struct conn *c, int revents);

/* c is about to be freed: drops a feed not yet delivered. */
void poller_forget(struct conn *c);

#endif
