#include "deadline.h"

static void dl_arm(struct dl_list *list)
{
    if (!list->first) {
        ev_timer_stop(list->loop, &list->timer);
        return;
    }
    ev_tstamp after = list->first->stamp + list->timeout - ev_now(list->loop);
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
    while (list->first && list->first->stamp + list->timeout <= now)
        list->expire(list, list->first, now);
    dl_arm(list);
}

void dl_init(struct ev_loop *loop, struct dl_list *list, ev_tstamp timeout, dl_expire_fn expire)
{
    list->first = list->last = NULL;
    list->timeout = timeout;
    list->expire = expire;
    list->loop = loop;
    ev_init(&list->timer, on_dl_timer);
    list->timer.data = list;
}

static void unlink_node(struct dl_node *node)
{
    struct dl_list *list = node->list;
    if (node->prev)
        node->prev->next = node->next;
    else
        list->first = node->next;
    if (node->next)
        node->next->prev = node->prev;
    else
        list->last = node->prev;
    node->prev = node->next = NULL;
    node->list = NULL;
}

void dl_remove(struct dl_node *node)
{
    struct dl_list *list = node->list;
    if (!list)
        return;
    int was_first = list->first == node;
    unlink_node(node);
    if (was_first)
        dl_arm(list);
}

void dl_touch(struct dl_list *list, struct dl_node *node)
{
    if (node->list && node->list != list)
        dl_remove(node);
    int was_first = list->first == node;
    if (node->list)
        unlink_node(node);
    node->stamp = ev_now(list->loop);
    node->list = list;
    node->prev = list->last;
    if (list->last)
        list->last->next = node;
    else
        list->first = node;
    list->last = node;
    /* The timer follows the first node: rearm only when the first node changed. */
    if (was_first || list->first == node)
        dl_arm(list);
}

void dl_stop(struct dl_list *list)
{
    ev_timer_stop(list->loop, &list->timer);
}
