/* deadline: timeouts that are all the same length, kept as a list in order of their start, with
 * one libev timer for the whole list (ev.pod, "be smart about timeouts", the linked-list method).
 * Restarting a timeout is O(1) and costs the connection two pointers and a timestamp. */
#ifndef CONFAB_DEADLINE_H
#define CONFAB_DEADLINE_H

#include <ev.h>

struct dl_list;

struct dl_node {
    struct dl_node *prev, *next;
    struct dl_list *list; /* the list the node is in, NULL when in none */
    ev_tstamp stamp;      /* when the timeout started */
};

/* Called for each node whose timeout passed; it must remove the node or touch it again. */
typedef void (*dl_expire_fn)(struct dl_list *list, struct dl_node *node, ev_tstamp now);

struct dl_list {
    struct dl_node *first, *last;
    ev_tstamp timeout;
    dl_expire_fn expire;
    ev_timer timer;
    struct ev_loop *loop;
};

/* Prepares an empty list whose nodes expire timeout seconds after their stamp. */
void dl_init(struct ev_loop *loop, struct dl_list *list, ev_tstamp timeout, dl_expire_fn expire);

/* (Re)starts node's timeout now: moves it to the end of list (out of any other list). */
void dl_touch(struct dl_list *list, struct dl_node *node);

/* Takes node out of its list (no-op when it is in none). */
void dl_remove(struct dl_node *node);

/* Stops the list's timer; nodes stay linked. */
void dl_stop(struct dl_list *list);

#endif
