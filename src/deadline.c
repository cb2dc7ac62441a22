#include "deadline.h"

#include <stddef.h>

/* The list whose head h is. */
#define LIST_OF(h) ((struct dl_list *)((char *)(h) - offsetof(struct dl_list, head)))

static int is_head(const struct dl_node *n)
{
    return n->stamp < 0;
}

static struct dl_node *first_of(struct dl_list *list)
{
    return list->head.next == &list->head ? NULL : list->head.next;
}

static void dl_arm(struct dl_list *list)
{
    struct dl_node *first = first_of(list);
    if (!first) {
        ev_timer_stop(list->loop, &list->timer);
        return;
    }
    ev_tstamp after = first->stamp + list->timeout - ev_now(list->loop);
    ev_timer_stop(list->loop, &list->timer);
    ev_timer_set(&list->timer, after > 0 ? after : 0, 0);
    ev_timer_start(list->loop, &list->timer);
}

static void on_dl_timer(EV_P_ ev_timer *w, int revents)
{
    struct dl_list *list = w->data;
    ev_tstamp now = ev_now(EV_A);
    /* Each expired node is removed or moved behind the current time by its callback, so
     * the walk from the front ends at the first node still running. */
    struct dl_node *first;
    while ((first = first_of(list)) && first->stamp + list->timeout <= now)
        list->expire(list, first, now);
    dl_arm(list);
}

void dl_init(struct ev_loop *loop, struct dl_list *list, ev_tstamp timeout, dl_expire_fn expire)
{
    list->head.prev = list->head.next = &list->head;
    list->head.stamp = DL_HEAD;
    list->timeout = timeout;
    list->expire = expire;
    list->loop = loop;
    ev_init(&list->timer, on_dl_timer);
    list->timer.data = list;
}

/* Unlinks node (which is in a list); returns its list when it was that list's first, else
 * NULL. */
static struct dl_list *unlink_node(struct dl_node *node)
{
    struct dl_list *was_first_of = is_head(node->prev) ? LIST_OF(node->prev) : NULL;
    node->prev->next = node->next;
    node->next->prev = node->prev;
    node->prev = node->next = NULL;
    return was_first_of;
}

void dl_remove(struct dl_node *node)
{
    if (!node->next)
        return;
    struct dl_list *list = unlink_node(node);
    /* The timer follows the first node: rearm only when the first node changed. */
    if (list)
        dl_arm(list);
}

void dl_touch(struct dl_list *list, struct dl_node *node)
{
    dl_touch_at(list, node, ev_now(list->loop));
}

void dl_touch_at(struct dl_list *list, struct dl_node *node, ev_tstamp stamp)
{
    struct dl_list *was_first_of = node->next ? unlink_node(node) : NULL;
    if (was_first_of && was_first_of != list)
        dl_arm(was_first_of);
    node->stamp = stamp;
    node->next = &list->head;
    node->prev = list->head.prev;
    list->head.prev->next = node;
    list->head.prev = node;
    if (was_first_of == list || first_of(list) == node)
        dl_arm(list);
}

void dl_each(struct dl_list *list, void (*fn)(struct dl_node *node, void *arg), void *arg)
{
    struct dl_node *last = list->head.prev, *node = list->head.next;
    if (node == &list->head)
        return;
    for (;;) {
        struct dl_node *next = node->next;
        int was_last = node == last;
        fn(node, arg);
        if (was_last)
            return;
        node = next;
    }
}

void dl_stop(struct dl_list *list)
{
    ev_timer_stop(list->loop, &list->timer);
}
