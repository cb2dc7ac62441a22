/* deadline: timeouts that are all the same length, kept as a list in order of their start, with
 * one libev timer for the whole list (ev.pod, "be smart about timeouts", the linked-list method).
 * Restarting a timeout is O(1) and costs the connection two pointers and a timestamp. */
#ifndef CONFAB_DEADLINE_H
#define CONFAB_DEADLINE_H

#include <ev.h>

struct dl_list;

/* 24 bytes (two per connection): a node knows its list only when it is the list's first, from
 * its prev, the list's own head node (marked by a negative stamp): that is the one case where
 * the list's timer must follow. */
struct dl_node {
    struct dl_node *prev, *next; /* NULL when in no list */
    ev_tstamp stamp;             /* when the timeout started; DL_HEAD in a list's head */
};

#define DL_HEAD (-1.0)

/* Called for each node whose timeout passed; it must remove the node or touch it again. */
typedef void (*dl_expire_fn)(struct dl_list *list, struct dl_node *node, ev_tstamp now);

struct dl_list {
    struct dl_node head; /* circular: head.next is the first node, head.prev the last */
    ev_tstamp timeout;
    dl_expire_fn expire;
    ev_timer timer;
    struct ev_loop *loop;
};

/* Prepares an empty list whose nodes expire timeout seconds after their stamp. */
void dl_init(struct ev_loop *loop, struct dl_list *list, ev_tstamp timeout, dl_expire_fn expire);

/* (Re)starts node's timeout now: moves it to the end of list (out of any other list). */
void dl_touch(struct dl_list *list, struct dl_node *node);

/* The same with the timeout started at stamp (at most now): for a node moved when its previous
 * timeout was due, so that a timer that fired late does not push the next expiry back. The node
 * may then sit behind newer ones by that lateness, so it can expire that much late, never early. */
void dl_touch_at(struct dl_list *list, struct dl_node *node, ev_tstamp stamp);

/* Takes node out of its list (no-op when it is in none). */
void dl_remove(struct dl_node *node);

/* Calls fn for each node of list, oldest first, up to the one that was last when it began. fn
 * may remove the node it is given or move it to any list (this one included), and nothing
 * else. */
void dl_each(struct dl_list *list, void (*fn)(struct dl_node *node, void *arg), void *arg);

/* Stops the list's timer; nodes stay linked. */
void dl_stop(struct dl_list *list);

#endif
