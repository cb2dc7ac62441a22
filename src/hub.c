#include "hub.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

static struct {
    struct conn *conns;   /* uthash by id */
    struct room *rooms;   /* uthash by name */
    uint64_t next_id;
    size_t queue_limit;
    unsigned history_cap;
    struct hub_callbacks cb;
} hub;

void hub_init(size_t queue_limit, unsigned history_cap, const struct hub_callbacks *cb)
{
    hub.queue_limit = queue_limit;
    hub.history_cap = history_cap;
    hub.cb = *cb;
    if (!hub.next_id)
        hub.next_id = 1;
}

static void room_free(struct room *r)
{
    HASH_DEL(hub.rooms, r);
    if (r->hist) {
        for (uint32_t i = 0; i < r->hist_len; i++)
            free(r->hist[(r->hist_head + i) % hub.history_cap].data);
        free(r->hist);
    }
    free(r->members);
    free(r->name);
    free(r);
}

void hub_shutdown(void)
{
    struct room *r, *tmp;
    HASH_ITER(hh, hub.rooms, r, tmp) {
        assert(r->members_len == 0);
        room_free(r);
    }
}

void hub_add(struct conn *c)
{
    c->id = hub.next_id++;
    HASH_ADD(hh, hub.conns, id, sizeof c->id, c);
}

struct conn *hub_find(uint64_t id)
{
    struct conn *c;
    HASH_FIND(hh, hub.conns, &id, sizeof id, c);
    return c;
}

size_t hub_count(void)
{
    return HASH_COUNT(hub.conns);
}

void hub_each(void (*fn)(struct conn *c, void *arg), void *arg)
{
    struct conn *c, *tmp;
    HASH_ITER(hh, hub.conns, c, tmp) fn(c, arg);
}

struct room *hub_room(const char *name, size_t len)
{
    struct room *r;
    HASH_FIND(hh, hub.rooms, name, len, r);
    return r;
}

static struct room *room_get(const char *name, size_t len)
{
    struct room *r = hub_room(name, len);
    if (r)
        return r;
    r = calloc(1, sizeof *r);
    if (!r || !(r->name = malloc(len + 1))) {
        free(r);
        return NULL;
    }
    memcpy(r->name, name, len);
    r->name[len] = '\0';
    HASH_ADD_KEYPTR(hh, hub.rooms, r->name, len, r);
    return r;
}

/* A room lives while it has members or history worth replaying. */
static void room_release(struct room *r)
{
    if (r->members_len == 0 && r->hist_last == 0)
        room_free(r);
}

static int grow(void **arr, uint32_t *cap, size_t elem)
{
    uint32_t ncap = *cap ? *cap * 2 : 4;
    void *n = realloc(*arr, ncap * elem);
    if (!n)
        return -1;
    *arr = n;
    *cap = ncap;
    return 0;
}

int hub_join(struct conn *c, const char *name, size_t len)
{
    for (uint32_t i = 0; i < c->rooms_len; i++) {
        struct room *r = c->rooms[i]->room;
        if (strlen(r->name) == len && memcmp(r->name, name, len) == 0)
            return 0;
    }
    struct room *r = room_get(name, len);
    if (!r)
        return -1;
    struct member *m = malloc(sizeof *m);
    uint32_t ccap = c->rooms_cap;
    if (!m || (r->members_len == r->members_cap &&
               grow((void **)&r->members, &r->members_cap, sizeof *r->members) < 0) ||
        (c->rooms_len == c->rooms_cap && (ccap >= UINT16_MAX / 2 ||
         grow((void **)&c->rooms, &ccap, sizeof *c->rooms) < 0))) {
        free(m);
        room_release(r);
        return -1;
    }
    c->rooms_cap = (uint16_t)ccap;
    m->room = r;
    m->conn = c;
    m->room_idx = r->members_len;
    m->conn_idx = c->rooms_len;
    r->members[r->members_len++] = m;
    c->rooms[c->rooms_len++] = m;
    return 1;
}

static void member_remove(struct member *m)
{
    struct room *r = m->room;
    struct conn *c = m->conn;
    /* Room order is join order (members() promises it): shift. Connection order: swap. */
    memmove(r->members + m->room_idx, r->members + m->room_idx + 1,
            (r->members_len - m->room_idx - 1) * sizeof *r->members);
    r->members_len--;
    for (uint32_t i = m->room_idx; i < r->members_len; i++)
        r->members[i]->room_idx = i;
    struct member *last = c->rooms[--c->rooms_len];
    c->rooms[m->conn_idx] = last;
    last->conn_idx = m->conn_idx;
    if (c->rooms_len == 0) {
        free(c->rooms);
        c->rooms = NULL;
        c->rooms_cap = 0;
    }
    free(m);
    room_release(r);
}

int hub_leave(struct conn *c, const char *name, size_t len)
{
    for (uint32_t i = 0; i < c->rooms_len; i++) {
        struct room *r = c->rooms[i]->room;
        if (strlen(r->name) == len && memcmp(r->name, name, len) == 0) {
            member_remove(c->rooms[i]);
            return 1;
        }
    }
    return 0;
}

void hub_each_room(void (*fn)(struct room *r, void *arg), void *arg)
{
    struct room *r, *tmp;
    HASH_ITER(hh, hub.rooms, r, tmp) {
        if (r->members_len)
            fn(r, arg);
    }
}

void hub_remove(struct conn *c)
{
    while (c->rooms_len)
        member_remove(c->rooms[c->rooms_len - 1]);
    struct attr *a = c->attrs;
    while (a) {
        struct attr *next = a->next;
        free(a);
        a = next;
    }
    c->attrs = NULL;
    outq_clear(&c->out);
    if (c->id) {
        HASH_DEL(hub.conns, c);
        c->id = 0;
    }
}

int hub_send(struct conn *c, struct frame *f)
{
    if (c->flags & CONN_CLOSE_SENT)
        return -1; /* nothing may follow a close frame */
    if (c->out.bytes + f->len > hub.queue_limit) {
        hub.cb.overflow(c);
        return -1;
    }
    int was_empty = c->out.count == 0;
    if (outq_push(&c->out, f) < 0) {
        hub.cb.overflow(c);
        return -1;
    }
    if (was_empty)
        hub.cb.queued(c);
    return 0;
}

size_t hub_broadcast(struct room *r, struct frame *f, const struct conn *except)
{
    size_t n = 0;
    /* The overflow callback never changes membership (the server cuts the connection off
     * later, at its safe point), so the member array is stable during the walk. */
    for (uint32_t i = 0; i < r->members_len; i++) {
        struct conn *c = r->members[i]->conn;
        if (c != except && hub_send(c, f) == 0)
            n++;
    }
    return n;
}

void hub_close(struct conn *c, uint16_t code, const char *reason)
{
    hub.cb.close(c, code, reason);
}

const struct attr *hub_attr_get(const struct conn *c, const char *key)
{
    for (const struct attr *a = c->attrs; a; a = a->next)
        if (strcmp(a->key, key) == 0)
            return a;
    return NULL;
}

void hub_attr_del(struct conn *c, const char *key)
{
    for (struct attr **p = &c->attrs; *p; p = &(*p)->next) {
        if (strcmp((*p)->key, key) == 0) {
            struct attr *a = *p;
            *p = a->next;
            free(a);
            return;
        }
    }
}

int hub_attr_set(struct conn *c, const char *key, enum attr_type type, int64_t i, double n,
                 const char *str, size_t len)
{
    size_t klen = strlen(key);
    struct attr *a = malloc(sizeof *a + klen + 1 + (type == ATTR_STRING ? len + 1 : 0));
    if (!a)
        return -1;
    a->type = (uint8_t)type;
    memcpy(a->key, key, klen + 1);
    switch (type) {
    case ATTR_STRING:
        a->v.len = len;
        memcpy(a->key + klen + 1, str, len);
        a->key[klen + 1 + len] = '\0';
        break;
    case ATTR_INTEGER: a->v.i = i; break;
    case ATTR_NUMBER: a->v.n = n; break;
    case ATTR_BOOLEAN: a->v.b = (int)i; break;
    }
    hub_attr_del(c, key);
    a->next = c->attrs;
    c->attrs = a;
    return 0;
}

int hub_history_add(const char *name, size_t rlen, uint64_t id, const char *data, size_t len)
{
    struct room *r = room_get(name, rlen);
    if (!r)
        return -2;
    if (id <= r->hist_last) {
        room_release(r);
        return -1;
    }
    if (hub.history_cap) {
        char *copy = malloc(len + 1);
        if (!copy || (!r->hist && !(r->hist = malloc(hub.history_cap * sizeof *r->hist)))) {
            free(copy);
            room_release(r);
            return -2;
        }
        memcpy(copy, data, len);
        copy[len] = '\0';
        struct hist_entry *e;
        if (r->hist_len == hub.history_cap) {
            e = &r->hist[r->hist_head];
            r->hist_dropped = e->id;
            free(e->data);
            r->hist_head = (r->hist_head + 1) % hub.history_cap;
        } else {
            e = &r->hist[(r->hist_head + r->hist_len) % hub.history_cap];
            r->hist_len++;
        }
        e->id = id;
        e->len = len;
        e->data = copy;
    } else {
        r->hist_dropped = id;
    }
    r->hist_last = id;
    return 0;
}

uint64_t hub_history_last(const char *name, size_t rlen)
{
    struct room *r = hub_room(name, rlen);
    return r ? r->hist_last : 0;
}

int hub_history_each(const char *name, size_t rlen, uint64_t after,
                     void (*fn)(const struct hist_entry *e, void *arg), void *arg)
{
    struct room *r = hub_room(name, rlen);
    if (!r || after >= r->hist_last)
        return 1;
    int complete = after >= r->hist_dropped;
    for (uint32_t i = 0; i < r->hist_len; i++) {
        const struct hist_entry *e = &r->hist[(r->hist_head + i) % hub.history_cap];
        if (e->id > after)
            fn(e, arg);
    }
    return complete;
}

const char *hub_room_name(const struct room *r)
{
    return r->name;
}

size_t hub_room_size(const struct room *r)
{
    return r->members_len;
}

uint64_t hub_room_member(const struct room *r, size_t i)
{
    return r->members[i]->conn->id;
}

size_t hub_conn_room_count(const struct conn *c)
{
    return c->rooms_len;
}

const char *hub_conn_room(const struct conn *c, size_t i)
{
    return c->rooms[i]->room->name;
}

const char *hub_attr_string(const struct attr *a, size_t *len)
{
    *len = a->v.len;
    return a->key + strlen(a->key) + 1;
}
