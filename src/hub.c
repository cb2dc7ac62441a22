/* hub: rooms, membership, fan-out, attributes and history, with every stored byte accounted
 * (see hub.h for the bounds). */
#include "hub.h"

#include <assert.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conn_ids.h"
#include "metrics.h"
#include "pool.h"

/* Last ids of freed rooms, indexed by a hash of the name: a slot holds the highest last id of the
 * rooms freed into it, and a room created again starts there (ids never go back; a resume from
 * before is incomplete). Collisions only make a resume conservative. */
#define ID_SLOTS 1024

static struct {
    struct conn_ids conns; /* by id */
    struct room *rooms;   /* uthash by name */
    uint64_t next_id;
    size_t queue_limit;
    int queued_each;      /* hub_queued_each */
    unsigned history_cap;
    struct hub_callbacks cb;
    struct hub_limits lim;
    struct hist_entry *oldest, *newest; /* every stored entry, in the order added */
    size_t hist_bytes, attr_bytes;
    uint64_t freed_last[ID_SLOTS];
    struct ev_loop *loop;
    ev_timer expiry;
} hub = {.lim = {SIZE_MAX, 0, SIZE_MAX, NULL}};

static void room_hash_setup(void);

void hub_init(size_t queue_limit, unsigned history_cap, const struct hub_callbacks *cb)
{
    room_hash_setup();
    hub.queue_limit = queue_limit;
    hub.history_cap = history_cap;
    hub.cb = *cb;
    if (!hub.next_id)
        hub.next_id = 1;
}

void hub_queued_each(int on)
{
    hub.queued_each = on;
}

static double now_monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double hub_now(void)
{
    return hub.lim.now ? hub.lim.now() : now_monotonic();
}

static void on_expiry(EV_P_ ev_timer *w, int revents)
{
    hub_expire();
}

void hub_set_limits(struct ev_loop *loop, const struct hub_limits *limits)
{
    room_hash_setup();
    hub.lim = *limits;
    if (hub.loop) {
        ev_ref(hub.loop);
        ev_timer_stop(hub.loop, &hub.expiry);
        hub.loop = NULL;
    }
    if (loop && limits->history_age > 0) {
        /* Expired entries are gone within an eighth of the age (between 1 s and a minute). */
        double every = limits->history_age / 8;
        every = every < 1 ? 1 : every > 60 ? 60 : every;
        hub.loop = loop;
        ev_timer_init(&hub.expiry, on_expiry, every, every);
        ev_timer_start(loop, &hub.expiry);
        ev_unref(loop); /* the timer alone does not keep the server running */
    }
}

size_t hub_history_bytes(void)
{
    return hub.hist_bytes;
}

size_t hub_attr_bytes(void)
{
    return hub.attr_bytes;
}

static size_t slot_of(const char *name, size_t len)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)name[i]) * 16777619u;
    return h % ID_SLOTS;
}

static size_t entry_cost(size_t len)
{
    return sizeof(struct hist_entry) + len + 1;
}

/* A room at its history capacity drops an entry for every entry added, and a full budget drops
 * the oldest entries of any room: the blocks of entries of up to HIST_POOL_MAX bytes go to a
 * bounded free list per size class (pool.h, at most HIST_POOL_BYTES per class) and the next
 * entries of their class come from there, so a busy room replaces its entries without malloc
 * and free. The classes are 24, 40, 56, ... bytes (16n + 8): glibc hands out that much for any
 * request from 16n - 7 to 16n + 8 (a chunk of 16n + 16 with its 8-byte header), so rounding an
 * entry up to its class costs no memory there. The budget still charges entry_cost(len), as
 * before; a block on a list is no entry's and is not charged (at most 1 MB on all the lists). */
#define HIST_POOL_MAX (2048 + 8)
#define HIST_POOL_CLASSES ((HIST_POOL_MAX - 8) / 16)
#define HIST_POOL_BYTES (8 * 1024)
static struct pool hist_pools[HIST_POOL_CLASSES];

/* The pool for blocks of `bytes` (at least 1), or NULL past HIST_POOL_MAX. */
static struct pool *hist_pool(size_t bytes)
{
    if (bytes > HIST_POOL_MAX)
        return NULL;
    size_t k = bytes <= 24 ? 0 : (bytes - 9) / 16; /* class k holds 16k + 24 bytes */
    struct pool *p = &hist_pools[k];
    if (!p->size) {
        p->size = 16 * k + 24;
        p->max = (uint32_t)(HIST_POOL_BYTES / p->size);
    }
    return p;
}

const struct pool *hub_history_pool(size_t len)
{
    return hist_pool(entry_cost(len));
}

static struct hist_entry *entry_alloc(size_t len)
{
    struct pool *p = hist_pool(entry_cost(len));
    return p ? pool_get(p) : malloc(entry_cost(len));
}

static void entry_free(struct hist_entry *e)
{
    struct pool *p = hist_pool(entry_cost(e->len));
    if (p)
        pool_put(p, e);
    else
        free(e);
}

static void hist_pools_drain(void)
{
    for (size_t k = 0; k < HIST_POOL_CLASSES; k++)
        pool_drain(&hist_pools[k]);
}

/* A room holding history is charged to the history budget too (it may have no member left). */
static size_t room_cost(const struct room *r)
{
    return sizeof *r + strlen(r->name) + 1;
}

static size_t attr_cost(const struct attr *a)
{
    size_t klen = strlen(a->key);
    return sizeof *a + klen + 1 + (a->type == ATTR_STRING ? a->v.len + 1 : 0);
}

static void attr_free(struct attr *a)
{
    hub.attr_bytes -= attr_cost(a);
    free(a);
}

/* Unlinks and frees the room's oldest entry. */
static void entry_drop(struct room *r)
{
    struct hist_entry *e = r->hist_first;
    r->hist_first = e->next;
    if (!r->hist_first)
        r->hist_tail = NULL;
    if (--r->hist_len == 0)
        hub.hist_bytes -= room_cost(r);
    if (e->id > r->hist_dropped)
        r->hist_dropped = e->id;
    if (e->older)
        e->older->newer = e->newer;
    else
        hub.oldest = e->newer;
    if (e->newer)
        e->newer->older = e->older;
    else
        hub.newest = e->older;
    hub.hist_bytes -= entry_cost(e->len);
    entry_free(e);
}

void (*hub_room_freed)(const char *name, size_t len);

static void room_free(struct room *r)
{
    HASH_DEL(hub.rooms, r);
    if (hub_room_freed)
        hub_room_freed(r->name, strlen(r->name));
    while (r->hist_first)
        entry_drop(r);
    uint64_t *slot = &hub.freed_last[slot_of(r->name, strlen(r->name))];
    if (r->hist_last > *slot)
        *slot = r->hist_last;
    free(r->members);
    free(r->name);
    free(r);
}

static uint32_t room_size(const struct room *r)
{
    return r->members_len - r->members_gone;
}

/* A room lives while it has members or stored history (or an add in progress). */
static void room_release(struct room *r)
{
    if (room_size(r) == 0 && r->hist_len == 0 && r->pinned == 0)
        room_free(r);
}

/* Drops the oldest entry of any room, freeing the room if that left it empty. */
static void evict_oldest(void)
{
    struct room *r = hub.oldest->room;
    entry_drop(r);
    room_release(r);
}

void hub_expire(void)
{
    if (hub.lim.history_age <= 0)
        return;
    double cutoff = hub_now() - hub.lim.history_age;
    while (hub.oldest && hub.oldest->at <= cutoff)
        evict_oldest();
}

void hub_shutdown(void)
{
    struct room *r, *tmp;
    HASH_ITER(hh, hub.rooms, r, tmp) {
        assert(room_size(r) == 0);
        room_free(r);
    }
    memset(hub.freed_last, 0, sizeof hub.freed_last);
    hist_pools_drain();
    conn_ids_free(&hub.conns);
    if (hub.loop) {
        ev_ref(hub.loop);
        ev_timer_stop(hub.loop, &hub.expiry);
        hub.loop = NULL;
    }
}

void (*hub_changed)(struct conn *c);

static void changed(struct conn *c)
{
    if (hub_changed && !(c->flags & CONN_REMOTE))
        hub_changed(c);
}

int hub_add(struct conn *c)
{
    c->id = hub.next_id;
    if (conn_ids_put(&hub.conns, c) < 0) {
        c->id = 0;
        return -1;
    }
    hub.next_id++;
    return 0;
}

void hub_set_id_base(uint64_t base)
{
    hub.next_id = base + 1;
}

struct conn *hub_add_remote(uint64_t id)
{
    struct conn *c = hub_find(id);
    if (c)
        return c;
    c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->id = id;
    c->fd = -1;
    c->state = CONN_DEAD; /* readable (get, rooms_of), never open */
    c->flags = CONN_REMOTE;
    if (conn_ids_put(&hub.conns, c) < 0) {
        free(c);
        return NULL;
    }
    return c;
}

void hub_remove_remote(struct conn *c)
{
    hub_remove(c);
    free(c);
}

struct conn *hub_find(uint64_t id)
{
    return conn_ids_get(&hub.conns, id);
}

size_t hub_room_count(void)
{
    return HASH_COUNT(hub.rooms);
}

size_t hub_count(void)
{
    return hub.conns.count;
}

void hub_each(void (*fn)(struct conn *c, void *arg), void *arg)
{
    conn_ids_each(&hub.conns, fn, arg);
}

/* The hash of a room name for the rooms table: SipHash (OpenSSL's) under a key drawn at start,
 * so that nobody can choose names that pile up in one chain of the table (uthash's own hash is
 * unkeyed: names found offline to collide would make every room lookup walk them all). Without
 * SipHash or randomness it falls back to FNV-1a, as predictable as uthash's. */
static struct {
    EVP_MAC_CTX *ctx;
    unsigned char key[16];
    int state; /* 0: not set up, 1: SipHash, -1: fallback */
} sip;

/* Sets SipHash up. Done at start (hub_init, hub_set_limits): OpenSSL's first fetch takes
 * milliseconds, which must not land inside a hook's time limit. */
static void room_hash_setup(void)
{
    if (sip.state)
        return;
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "SIPHASH", NULL);
    sip.ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
    EVP_MAC_free(mac); /* the context keeps its own reference */
    sip.state = sip.ctx && RAND_bytes(sip.key, sizeof sip.key) == 1 ? 1 : -1;
}

static unsigned room_hash(const char *name, size_t len)
{
    static size_t out_size = 8;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &out_size),
                           OSSL_PARAM_construct_end()};
    unsigned char out[8];
    size_t n;
    room_hash_setup();
    if (sip.state == 1 && EVP_MAC_init(sip.ctx, sip.key, sizeof sip.key, params) == 1 &&
        EVP_MAC_update(sip.ctx, (const unsigned char *)name, len) == 1 &&
        EVP_MAC_final(sip.ctx, out, &n, sizeof out) == 1) {
        unsigned h;
        memcpy(&h, out, sizeof h);
        return h;
    }
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)name[i]) * 16777619u;
    return h;
}

struct room *hub_room(const char *name, size_t len)
{
    struct room *r;
    HASH_FIND_BYHASHVALUE(hh, hub.rooms, name, len, room_hash(name, len), r);
    return r;
}

size_t hub_rooms_longest_chain(void)
{
    size_t longest = 0;
    if (hub.rooms)
        for (unsigned i = 0; i < hub.rooms->hh.tbl->num_buckets; i++)
            if (hub.rooms->hh.tbl->buckets[i].count > longest)
                longest = hub.rooms->hh.tbl->buckets[i].count;
    return longest;
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
    r->hist_last = r->hist_dropped = hub.freed_last[slot_of(name, len)];
    HASH_ADD_KEYPTR_BYHASHVALUE(hh, hub.rooms, r->name, len, room_hash(name, len), r);
    return r;
}

/* Doubles an array (none to four slots). */
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

/* Halves an array while it is at most a quarter used, so a room that was once crowded does not
 * keep its peak size (a failed realloc keeps the bigger array). */
static void shrink(void **arr, uint32_t len, uint32_t *cap, size_t elem)
{
    uint32_t ncap = *cap;
    while (ncap > 8 && len <= ncap / 4)
        ncap /= 2;
    if (ncap == *cap)
        return;
    void *n = realloc(*arr, ncap * elem);
    if (n) {
        *arr = n;
        *cap = ncap;
    }
}

/* Closes the holes left by members gone, keeping join order, and gives back spare room. */
static void members_compact(struct room *r)
{
    if (r->members_gone) {
        uint32_t n = 0;
        for (uint32_t i = 0; i < r->members_len; i++) {
            struct conn *c = r->members[i];
            if (!c)
                continue;
            if (n != i) {
                r->members[n] = c;
                /* its membership of r says where it now is (a connection is in few rooms) */
                struct conn_room *m = conn_rooms(c);
                for (uint32_t j = 0; j < c->rooms_len; j++)
                    if (m[j].room == r)
                        m[j].idx = n;
            }
            n++;
        }
        r->members_len = n;
        r->members_gone = 0;
    }
    shrink((void **)&r->members, r->members_len, &r->members_cap, sizeof *r->members);
}

/* Room for one more membership in c: the first is kept in c itself, the second moves both to
 * an array. Returns 0, or -1 on no memory. */
static int memberships_grow(struct conn *c)
{
    if (c->rooms_len < c->rooms_cap)
        return 0;
    if (c->rooms_cap == 0) {
        c->rooms_cap = 1;
        return 0;
    }
    uint32_t ncap = c->rooms_cap * 2u;
    struct conn_room *n;
    if (c->rooms_cap == 1) {
        n = malloc(ncap * sizeof *n);
        if (n)
            n[0] = c->rooms.one;
    } else {
        n = realloc(c->rooms.many, ncap * sizeof *n);
    }
    if (!n)
        return -1;
    c->rooms.many = n;
    c->rooms_cap = (uint16_t)ncap;
    return 0;
}

/* Gives back what c's memberships no longer need: an array with one left goes back into c;
 * one at most a quarter used is halved. */
static void memberships_shrink(struct conn *c)
{
    if (c->rooms_cap <= 1) {
        if (c->rooms_len == 0)
            c->rooms_cap = 0;
        return;
    }
    if (c->rooms_len <= 1) {
        struct conn_room *many = c->rooms.many;
        if (c->rooms_len)
            c->rooms.one = many[0];
        free(many);
        c->rooms_cap = c->rooms_len;
        return;
    }
    uint32_t ccap = c->rooms_cap;
    shrink((void **)&c->rooms.many, c->rooms_len, &ccap, sizeof *c->rooms.many);
    c->rooms_cap = (uint16_t)ccap;
}

int hub_join(struct conn *c, const char *name, size_t len)
{
    struct conn_room *m = conn_rooms(c);
    for (uint32_t i = 0; i < c->rooms_len; i++) {
        struct room *r = m[i].room;
        if (strlen(r->name) == len && memcmp(r->name, name, len) == 0)
            return 0;
    }
    if (c->rooms_len >= HUB_ROOMS_PER_CONN)
        return -2;
    struct room *r = room_get(name, len);
    if (!r)
        return -1;
    if (r->members_len == r->members_cap)
        members_compact(r);
    if ((r->members_len == r->members_cap &&
         grow((void **)&r->members, &r->members_cap, sizeof *r->members) < 0) ||
        memberships_grow(c) < 0) {
        room_release(r);
        return -1;
    }
    conn_rooms(c)[c->rooms_len++] = (struct conn_room){r, r->members_len};
    r->members[r->members_len++] = c;
    if (c->flags & CONN_REMOTE)
        r->members_remote++;
    changed(c);
    return 1;
}

/* Takes c out of its k-th room. */
static void member_remove(struct conn *c, uint32_t k)
{
    struct conn_room *m = conn_rooms(c);
    struct room *r = m[k].room;
    /* Room order is join order (members() promises it): leave a hole, and close the holes
     * once they are half the slots, so that N members leaving costs O(N), not O(N^2).
     * Connection order does not matter: swap. */
    r->members[m[k].idx] = NULL;
    r->members_gone++;
    if (c->flags & CONN_REMOTE)
        r->members_remote--;
    while (r->members_len && !r->members[r->members_len - 1]) {
        r->members_len--;
        r->members_gone--;
    }
    if (r->members_gone > r->members_len / 2)
        members_compact(r);
    else
        shrink((void **)&r->members, r->members_len, &r->members_cap, sizeof *r->members);
    m[k] = m[--c->rooms_len];
    memberships_shrink(c);
    room_release(r);
    changed(c);
}

int hub_leave(struct conn *c, const char *name, size_t len)
{
    struct conn_room *m = conn_rooms(c);
    for (uint32_t i = 0; i < c->rooms_len; i++) {
        struct room *r = m[i].room;
        if (strlen(r->name) == len && memcmp(r->name, name, len) == 0) {
            member_remove(c, i);
            return 1;
        }
    }
    return 0;
}

void hub_each_room(void (*fn)(struct room *r, void *arg), void *arg)
{
    struct room *r, *tmp;
    HASH_ITER(hh, hub.rooms, r, tmp) {
        if (room_size(r))
            fn(r, arg);
    }
}

void hub_remove(struct conn *c)
{
    while (c->rooms_len)
        member_remove(c, c->rooms_len - 1);
    struct attr *a = c->attrs;
    while (a) {
        struct attr *next = a->next;
        attr_free(a);
        a = next;
    }
    c->attrs = NULL;
    outq_clear(&c->out);
    if (c->id) {
        changed(c);
        conn_ids_del(&hub.conns, c);
        c->id = 0;
    }
}

int hub_send(struct conn *c, struct frame *f)
{
    if (c->flags & CONN_CLOSE_SENT)
        return -1; /* nothing may follow a close frame */
    int admitted = outq_admit(&c->out, f->len, hub.queue_limit);
    if (!admitted) {
        METRIC_INC(frames_dropped);
        hub.cb.overflow(c);
        return -1;
    }
    int was_empty = outq_count(&c->out) == 0;
    if (outq_push(&c->out, f) < 0) {
        METRIC_INC(frames_dropped);
        hub.cb.overflow(c);
        return -1;
    }
    if (!(f->data[0] & 0x08)) /* data frames only: not pings, pongs, closes */
        METRIC_INC(deliveries);
    if (admitted == OUTQ_BIG)
        outq_mark_big(&c->out);
    if (was_empty || hub.queued_each)
        hub.cb.queued(c);
    return 0;
}

size_t hub_broadcast(struct room *r, struct frame *f, const struct conn *except)
{
    size_t n = 0;
    /* The overflow callback never changes membership (the server cuts the connection off
     * later, at its safe point), so the member array is stable during the walk. */
    for (uint32_t i = 0; i < r->members_len; i++) {
        struct conn *c = r->members[i];
        if (c && c != except && !(c->flags & CONN_REMOTE) && hub_send(c, f) == 0)
            n++;
    }
    return n;
}

size_t hub_broadcast_msg(struct room *r, struct outmsg *m, const struct conn *except)
{
    size_t n = 0;
    for (uint32_t i = 0; i < r->members_len; i++) {
        struct conn *c = r->members[i];
        /* Another node's members (presence's mirror) have no socket: their node delivers. */
        if (!c || c == except || (c->flags & (CONN_CLOSE_SENT | CONN_REMOTE)))
            continue;
        struct frame *f = outmsg_frame(m, c);
        if (f && hub_send(c, f) == 0)
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
            attr_free(a);
            changed(c);
            return;
        }
    }
}

int hub_attr_set(struct conn *c, const char *key, enum attr_type type, int64_t i, double n,
                 const char *str, size_t len)
{
    size_t klen = strlen(key), count = 0, old_cost = 0;
    for (const struct attr *a = c->attrs; a; a = a->next) {
        if (strcmp(a->key, key) == 0)
            old_cost = attr_cost(a);
        else
            count++;
    }
    if (count >= HUB_ATTRS_PER_CONN)
        return -3;
    size_t vlen = type == ATTR_STRING ? len + 1 : 0;
    if (klen > SIZE_MAX / 2 || vlen > SIZE_MAX / 2)
        return -2;
    size_t cost = sizeof(struct attr) + klen + 1 + vlen;
    if (hub.attr_bytes - old_cost + cost > hub.lim.attr_memory)
        return -2;
    struct attr *a = malloc(cost);
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
    hub.attr_bytes += cost;
    changed(c);
    return 0;
}

int hub_history_add(const char *name, size_t rlen, uint64_t id, const char *data, size_t len)
{
    hub_expire();
    struct room *r = room_get(name, rlen);
    if (!r)
        return -2;
    if (id <= r->hist_last) {
        room_release(r);
        return -1;
    }
    size_t cost = entry_cost(len), rcost = room_cost(r);
    if (hub.history_cap == 0 || len > SIZE_MAX / 2 || cost + rcost > hub.lim.history_memory) {
        /* Not stored: as if it were added and dropped at once. */
        r->hist_last = r->hist_dropped = id;
        room_release(r);
        return 0;
    }
    struct hist_entry *e = entry_alloc(len);
    if (!e) {
        room_release(r);
        return -2;
    }
    e->next = NULL;
    e->room = r;
    e->at = hub_now();
    e->id = id;
    e->len = len;
    memcpy(e->data, data, len);
    e->data[len] = '\0';
    if (r->hist_len >= hub.history_cap)
        entry_drop(r);
    r->pinned++; /* evicting its own last entries must not free the room */
    while (hub.hist_bytes + cost + (r->hist_len ? 0 : rcost) > hub.lim.history_memory)
        evict_oldest();
    r->pinned--;
    if (r->hist_tail)
        r->hist_tail->next = e;
    else
        r->hist_first = e;
    r->hist_tail = e;
    if (r->hist_len++ == 0)
        hub.hist_bytes += rcost;
    r->hist_last = id;
    e->older = hub.newest;
    e->newer = NULL;
    if (hub.newest)
        hub.newest->newer = e;
    else
        hub.oldest = e;
    hub.newest = e;
    hub.hist_bytes += cost;
    return 0;
}

uint64_t hub_history_last(const char *name, size_t rlen)
{
    struct room *r = hub_room(name, rlen);
    return r ? r->hist_last : hub.freed_last[slot_of(name, rlen)];
}

int hub_history_each(const char *name, size_t rlen, uint64_t after,
                     void (*fn)(const struct hist_entry *e, void *arg), void *arg)
{
    hub_expire();
    struct room *r = hub_room(name, rlen);
    if (!r)
        return after >= hub.freed_last[slot_of(name, rlen)];
    if (after >= r->hist_last)
        return 1;
    int complete = after >= r->hist_dropped;
    for (const struct hist_entry *e = r->hist_first; e; e = e->next) {
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
    return room_size(r);
}

size_t hub_room_local_size(const struct room *r)
{
    return room_size(r) - r->members_remote;
}

uint64_t hub_room_member(const struct room *r, size_t i)
{
    members_compact((struct room *)r); /* the same members in the same order: still const */
    return r->members[i]->id;
}

size_t hub_conn_room_count(const struct conn *c)
{
    return c->rooms_len;
}

const char *hub_conn_room(const struct conn *c, size_t i)
{
    return conn_rooms(c)[i].room->name;
}

const char *hub_attr_string(const struct attr *a, size_t *len)
{
    *len = a->v.len;
    return a->key + strlen(a->key) + 1;
}
