/* The hub without sockets: rooms, membership both ways, shared frames, queue limits, history. */
#include <stdlib.h>
#include <string.h>

#include "hub.h"
#include "outmsg.h"
#include "test.h"

static int queued_calls, overflow_calls, close_calls;
static struct conn *last_overflow;

static void t_queued(struct conn *c) { queued_calls++; }
static void t_overflow(struct conn *c)
{
    overflow_calls++;
    last_overflow = c;
    c->flags |= CONN_CLOSE_SENT; /* as the server does: nothing more is queued */
}
static void t_close(struct conn *c, uint16_t code, const char *reason) { close_calls++; }

static const struct hub_callbacks cb = {t_queued, t_overflow, t_close};


/* Where c's membership of r says c is in r->members (UINT32_MAX when not a member). */
static uint32_t slot_in(const struct conn *c, const struct room *r)
{
    for (uint32_t j = 0; j < c->rooms_len; j++)
        if (conn_rooms(c)[j].room == r)
            return conn_rooms(c)[j].idx;
    return UINT32_MAX;
}

TEST(hub_rooms_both_ways)
{
    hub_init(1 << 20, 10, &cb);
    struct conn *a = test_conn_open(), *b = test_conn_open(), *c = test_conn_open();
    CHECK(a->id && b->id && a->id != b->id);
    CHECK(hub_find(b->id) == b);

    CHECK_INT(hub_join(a, "lobby", 5), 1);
    CHECK_INT(hub_join(a, "lobby", 5), 0);
    CHECK_INT(hub_join(b, "lobby", 5), 1);
    CHECK_INT(hub_join(c, "lobby", 5), 1);
    CHECK_INT(hub_join(a, "dev", 3), 1);

    struct room *lobby = hub_room("lobby", 5);
    CHECK(lobby && hub_room_size(lobby) == 3);
    CHECK(hub_room_member(lobby, 0) == a->id && hub_room_member(lobby, 2) == c->id);
    CHECK_INT(a->rooms_len, 2);

    /* Leaving keeps the join order of the others and both indexes consistent. */
    CHECK_INT(hub_leave(b, "lobby", 5), 1);
    CHECK_INT(hub_leave(b, "lobby", 5), 0);
    CHECK_INT(hub_room_size(lobby), 2);
    CHECK(hub_room_member(lobby, 1) == c->id && slot_in(c, lobby) == 1);
    CHECK_INT(hub_leave(b, "lobby", 5), 0);
    CHECK_INT(hub_join(b, "lobby", 5), 1);
    CHECK(hub_room_member(lobby, 0) == a->id && hub_room_member(lobby, 2) == b->id);

    /* Removing a connection takes it out of every room; an empty room goes away. */
    uint64_t a_id = a->id;
    test_conn_close(a);
    CHECK(hub_find(a_id) == NULL);
    CHECK(hub_room("dev", 3) == NULL);
    CHECK_INT(hub_room_size(hub_room("lobby", 5)), 2);
    test_conn_close(b);
    test_conn_close(c);
    CHECK(hub_room("lobby", 5) == NULL);
    CHECK_INT(hub_count(), 0);
}

/* One room is kept in the connection itself; a second moves both to an array, and leaving down
 * to one brings it back, with each membership still pointing at its slot in the room. */
TEST(hub_single_membership_lives_in_the_connection)
{
    hub_init(1 << 20, 10, &cb);
    struct conn *a = test_conn_open(), *b = test_conn_open();
    CHECK_INT(hub_join(b, "x", 1), 1);
    CHECK_INT(hub_join(a, "x", 1), 1);
    CHECK_INT(a->rooms_cap, 1);
    CHECK(conn_rooms(a) == &a->rooms.one);
    CHECK_INT(hub_join(a, "y", 1), 1);
    CHECK_INT(hub_join(a, "z", 1), 1);
    CHECK_INT(a->rooms_len, 3);
    CHECK(a->rooms_cap >= 3 && conn_rooms(a) == a->rooms.many);
    struct room *x = hub_room("x", 1), *z = hub_room("z", 1);
    CHECK(slot_in(a, x) == 1 && hub_room_member(x, 1) == a->id);
    CHECK_INT(hub_leave(a, "x", 1), 1);
    CHECK_INT(hub_leave(a, "y", 1), 1);
    CHECK_INT(a->rooms_cap, 1); /* back in the connection */
    CHECK(conn_rooms(a) == &a->rooms.one && conn_rooms(a)[0].room == z);
    CHECK(slot_in(a, z) == 0 && hub_room_member(z, 0) == a->id);
    CHECK_INT(hub_leave(a, "z", 1), 1);
    CHECK_INT(a->rooms_len, 0);
    CHECK_INT(a->rooms_cap, 0);
    CHECK_INT(hub_join(a, "x", 1), 1); /* and in again, after b */
    CHECK(slot_in(a, hub_room("x", 1)) == 1);
    test_conn_close(a);
    test_conn_close(b);
    CHECK_INT(hub_count(), 0);
}

TEST(hub_broadcast_shares_one_frame)
{
    hub_init(1 << 20, 10, &cb);
    struct conn *m[5];
    for (int i = 0; i < 5; i++) {
        m[i] = test_conn_open();
        hub_join(m[i], "r", 1);
    }
    size_t live_before = frame_live;
    struct frame *f = frame_ws(FRAME_TEXT, "hello", 5);
    queued_calls = 0;
    CHECK_INT(hub_broadcast(hub_room("r", 1), f, m[2]), 4);
    /* One frame, one reference per recipient plus ours: no copies. */
    CHECK_INT(frame_live, live_before + 1);
    CHECK_INT(f->refs, 5);
    CHECK_INT(outq_count(&m[2]->out), 0);
    CHECK(outq_count(&m[0]->out) == 1 && outq_at(&m[0]->out, 0) == f);
    CHECK_INT(queued_calls, 4);
    /* A second frame on a non-empty queue does not wake the server again. */
    CHECK_INT(hub_broadcast(hub_room("r", 1), f, NULL), 5);
    CHECK_INT(queued_calls, 5);
    frame_unref(f);
    for (int i = 0; i < 5; i++)
        test_conn_close(m[i]);
    CHECK_INT(frame_live, live_before);
}

/* With --flush-delay the server holds output and must see every frame queued (a pong, a close,
 * the queue's growth end the hold): hub_queued_each makes the callback come for each. */
TEST(hub_queued_each_calls_for_every_frame)
{
    hub_init(1 << 20, 10, &cb);
    struct conn *a = test_conn_open();
    struct frame *f = frame_ws(FRAME_TEXT, "hi", 2);
    struct frame *ping = frame_ws(FRAME_PING, "", 0);
    queued_calls = 0;
    CHECK_INT(hub_send(a, f), 0);
    CHECK_INT(hub_send(a, f), 0);
    CHECK_INT(queued_calls, 1); /* by default once, for the queue that filled */
    hub_queued_each(1);
    CHECK_INT(hub_send(a, f), 0);
    CHECK_INT(hub_send(a, ping), 0);
    CHECK_INT(queued_calls, 3);
    CHECK(outq_last(&a->out) == ping);
    hub_queued_each(0);
    CHECK_INT(hub_send(a, f), 0);
    CHECK_INT(queued_calls, 3);
    CHECK(outq_last(&a->out) == f);
    frame_unref(f);
    frame_unref(ping);
    test_conn_close(a);
}

TEST(hub_queue_limit_cuts_off_slow_consumer)
{
    hub_init(200, 10, &cb); /* the first frame, and behind it 200 bytes counting OUTQ_FRAME_COST each */
    struct conn *slow = test_conn_open(), *fast = test_conn_open();
    hub_join(slow, "r", 1);
    hub_join(fast, "r", 1);
    struct frame *f = frame_ws(FRAME_TEXT, "0123456789012345678901234567890123456789", 40);
    overflow_calls = 0;
    CHECK_INT(hub_broadcast(hub_room("r", 1), f, NULL), 2);
    CHECK_INT(hub_broadcast(hub_room("r", 1), f, NULL), 2);
    /* The third would pass 200 bytes behind the first: both overflow, nothing more is queued. */
    CHECK_INT(hub_broadcast(hub_room("r", 1), f, NULL), 0);
    CHECK_INT(overflow_calls, 2);
    CHECK(outq_bytes(&slow->out) <= 100);
    CHECK_INT(hub_send(slow, f), -1);
    CHECK_INT(overflow_calls, 2); /* closed connections are skipped, not re-reported */
    frame_unref(f);
    test_conn_close(slow);
    test_conn_close(fast);
}

TEST(hub_outq_partial_writes)
{
    struct outq q = {0};
    struct frame *a = frame_bytes("abc", 3), *b = frame_bytes("defgh", 5);
    outq_push(&q, a);
    outq_push(&q, b);
    CHECK_INT(outq_bytes(&q), 8);
    struct iovec iov[4];
    CHECK_INT(outq_iov(&q, iov, 4), 2);
    outq_consume(&q, 4); /* "abc" and "d" written */
    CHECK_INT(outq_count(&q), 1);
    CHECK_INT(outq_iov(&q, iov, 4), 1);
    CHECK(iov[0].iov_len == 4 && memcmp(iov[0].iov_base, "efgh", 4) == 0);
    CHECK_INT(a->refs, 1);
    outq_push(&q, a);
    outq_drop_unsent(&q); /* keeps the half-written "defgh", drops "abc" */
    CHECK_INT(outq_count(&q), 1);
    CHECK_INT(outq_bytes(&q), 4);
    CHECK_INT(a->refs, 1);
    outq_consume(&q, 4);
    CHECK(q.r == NULL && outq_bytes(&q) == 0);
    frame_unref(a);
    frame_unref(b);
}

struct collect {
    int n;
    uint64_t ids[16];
};

static void collect_entry(const struct hist_entry *e, void *arg)
{
    struct collect *c = arg;
    c->ids[c->n++] = e->id;
}

TEST(hub_history_ring)
{
    hub_init(1 << 20, 3, &cb);
    CHECK_INT(hub_history_last("h", 1), 0);
    for (uint64_t id = 1; id <= 5; id++)
        CHECK_INT(hub_history_add("h", 1, id, "msg", 3), 0);
    CHECK_INT(hub_history_add("h", 1, 5, "dup", 3), -1);
    CHECK_INT(hub_history_last("h", 1), 5);

    struct collect got = {0};
    /* Only 3..5 are kept: after 3 is complete, after 1 has a gap. */
    CHECK_INT(hub_history_each("h", 1, 3, collect_entry, &got), 1);
    CHECK(got.n == 2 && got.ids[0] == 4 && got.ids[1] == 5);
    got.n = 0;
    CHECK_INT(hub_history_each("h", 1, 2, collect_entry, &got), 1);
    CHECK_INT(got.n, 3);
    got.n = 0;
    CHECK_INT(hub_history_each("h", 1, 1, collect_entry, &got), 0);
    CHECK(got.n == 3 && got.ids[0] == 3);
    got.n = 0;
    CHECK_INT(hub_history_each("h", 1, 5, collect_entry, &got), 1);
    CHECK_INT(got.n, 0);

    /* The room outlives its members while it has history. */
    struct conn *a = test_conn_open();
    hub_join(a, "h", 1);
    test_conn_close(a);
    CHECK(hub_room("h", 1) != NULL);
    hub_shutdown();
    CHECK(hub_room("h", 1) == NULL);
}

TEST(hub_attributes)
{
    hub_init(1 << 20, 3, &cb);
    struct conn *a = test_conn_open();
    CHECK(hub_attr_get(a, "name") == NULL);
    CHECK_INT(hub_attr_set(a, "name", ATTR_STRING, 0, 0, "alice", 5), 0);
    CHECK_INT(hub_attr_set(a, "age", ATTR_INTEGER, 42, 0, NULL, 0), 0);
    CHECK_INT(hub_attr_set(a, "name", ATTR_STRING, 0, 0, "bob", 3), 0);
    const struct attr *n = hub_attr_get(a, "name");
    CHECK(n && n->type == ATTR_STRING && n->v.len == 3 &&
          strcmp(n->key + strlen(n->key) + 1, "bob") == 0);
    CHECK(hub_attr_get(a, "age")->v.i == 42);
    hub_attr_del(a, "age");
    CHECK(hub_attr_get(a, "age") == NULL);
    test_conn_close(a);
}

/* ---- bounds on what scripts store (issue 7) --------------------------------------------- */

static double fake_now;
static double fake_clock(void) { return fake_now; }

static void limits(size_t history_memory, double age, size_t attr_memory)
{
    hub_set_limits(NULL, &(struct hub_limits){history_memory, age, attr_memory, fake_clock});
}

static const struct hub_limits no_limits = {SIZE_MAX, 0, SIZE_MAX, NULL};

TEST(hub_history_memory_evicts_oldest_across_rooms)
{
    hub_init(1 << 20, 100, &cb);
    char text[1000];
    memset(text, 'x', sizeof text);
    limits(SIZE_MAX, 0, SIZE_MAX);
    CHECK_INT(hub_history_add("a", 1, 1, text, sizeof text), 0);
    size_t first = hub_history_bytes(); /* an entry and its room */
    CHECK_INT(hub_history_add("a", 1, 2, text, sizeof text), 0);
    size_t one = hub_history_bytes() - first, room = first - one; /* an entry; a room */
    CHECK(one > sizeof text && one < sizeof text + 100);
    CHECK(room > 0 && room < 300);
    hub_shutdown();
    CHECK_INT(hub_history_bytes(), 0);

    /* Room for 10 entries in 3 rooms: 30 adds over a, b, c (ids 1..10 each) keep the last 10. */
    size_t limit = 10 * one + 3 * room;
    limits(limit, 0, SIZE_MAX);
    for (uint64_t id = 1; id <= 10; id++) {
        CHECK_INT(hub_history_add("a", 1, id, text, sizeof text), 0);
        CHECK_INT(hub_history_add("b", 1, id, text, sizeof text), 0);
        CHECK_INT(hub_history_add("c", 1, id, text, sizeof text), 0);
        CHECK(hub_history_bytes() <= limit);
    }
    CHECK_INT(hub_history_bytes(), limit);
    /* Added in the order a1 b1 c1 a2 ...: the survivors are a8.. b7.. c7.. (the last ten). */
    struct collect got = {0};
    CHECK_INT(hub_history_each("a", 1, 0, collect_entry, &got), 0);
    CHECK(got.n == 3 && got.ids[0] == 8);
    got.n = 0;
    CHECK_INT(hub_history_each("c", 1, 6, collect_entry, &got), 1);
    CHECK(got.n == 4 && got.ids[0] == 7);
    got.n = 0;
    CHECK_INT(hub_history_each("c", 1, 5, collect_entry, &got), 0);

    /* An entry bigger than the whole limit is not stored, and its id counts as lost. */
    char big[20000];
    memset(big, 'y', sizeof big);
    CHECK_INT(hub_history_add("b", 1, 11, big, sizeof big), 0);
    CHECK_INT(hub_history_last("b", 1), 11);
    got.n = 0;
    CHECK_INT(hub_history_each("b", 1, 10, collect_entry, &got), 0);
    CHECK_INT(got.n, 0);
    CHECK_INT(hub_history_each("b", 1, 11, collect_entry, &got), 1);
    hub_shutdown();
    CHECK_INT(hub_history_bytes(), 0);
    hub_set_limits(NULL, &no_limits);
}

TEST(hub_room_freed_when_empty_and_evicted_keeps_ids)
{
    hub_init(1 << 20, 100, &cb);
    limits(SIZE_MAX, 0, SIZE_MAX);
    CHECK_INT(hub_history_add("old", 3, 1, "m", 1), 0);
    size_t first = hub_history_bytes();
    CHECK_INT(hub_history_add("old", 3, 2, "m", 1), 0);
    size_t one = hub_history_bytes() - first, room = first - one;
    limits(5 * one + 2 * room, 0, SIZE_MAX); /* 5 entries in 2 rooms */
    for (uint64_t id = 3; id <= 5; id++)
        CHECK_INT(hub_history_add("old", 3, id, "m", 1), 0);
    struct conn *a = test_conn_open();
    hub_join(a, "old", 3);
    /* Traffic elsewhere evicts all of "old"; its member keeps it. */
    for (uint64_t id = 1; id <= 5; id++)
        CHECK_INT(hub_history_add("new", 3, id, "m", 1), 0);
    CHECK(hub_room("old", 3) != NULL);
    CHECK_INT(hub_room("old", 3)->hist_len, 0);
    CHECK_INT(hub_history_bytes(), 5 * one + room);
    CHECK_INT(hub_history_last("old", 3), 5);
    /* Leaving an empty-history room frees it; its last id is not forgotten. */
    test_conn_close(a);
    CHECK(hub_room("old", 3) == NULL);
    CHECK_INT(hub_history_last("old", 3), 5);
    struct collect got = {0};
    CHECK_INT(hub_history_each("old", 3, 3, collect_entry, &got), 0); /* resume from 3: gap */
    CHECK_INT(hub_history_each("old", 3, 5, collect_entry, &got), 1); /* had everything */
    CHECK_INT(got.n, 0);
    /* The room comes back with ids going on from there. */
    CHECK_INT(hub_history_add("old", 3, 5, "m", 1), -1);
    CHECK_INT(hub_history_add("old", 3, 6, "m", 1), 0);
    CHECK_INT(hub_history_each("old", 3, 4, collect_entry, &got), 0);
    got.n = 0;
    CHECK_INT(hub_history_each("old", 3, 5, collect_entry, &got), 1);
    CHECK(got.n == 1 && got.ids[0] == 6);

    /* A room of members only goes as soon as it is empty, with nothing to remember. */
    struct conn *b = test_conn_open();
    hub_join(b, "tmp", 3);
    test_conn_close(b);
    CHECK(hub_room("tmp", 3) == NULL);
    hub_shutdown();
    hub_set_limits(NULL, &no_limits);
}

TEST(hub_history_age_expires_and_frees_rooms)
{
    hub_init(1 << 20, 100, &cb);
    fake_now = 1000;
    limits(SIZE_MAX, 60, SIZE_MAX);
    CHECK_INT(hub_history_add("r", 1, 1, "one", 3), 0);
    fake_now = 1030;
    CHECK_INT(hub_history_add("r", 1, 2, "two", 3), 0);
    fake_now = 1061; /* the first is older than 60 s */
    struct collect got = {0};
    CHECK_INT(hub_history_each("r", 1, 0, collect_entry, &got), 0);
    CHECK(got.n == 1 && got.ids[0] == 2);
    fake_now = 1200;
    hub_expire();
    CHECK(hub_room("r", 1) == NULL);
    CHECK_INT(hub_history_bytes(), 0);
    CHECK_INT(hub_history_last("r", 1), 2);
    hub_shutdown();
    hub_set_limits(NULL, &no_limits);
}

TEST(hub_attribute_limits)
{
    hub_init(1 << 20, 3, &cb);
    limits(SIZE_MAX, 0, 1000);
    struct conn *a = test_conn_open(), *b = test_conn_open();
    char v[600];
    memset(v, 'v', sizeof v);
    CHECK_INT(hub_attr_set(a, "big", ATTR_STRING, 0, 0, v, 600), 0);
    size_t used = hub_attr_bytes();
    CHECK(used > 600 && used < 700);
    /* The limit is server-wide: b cannot store another 600 bytes... */
    CHECK_INT(hub_attr_set(b, "big", ATTR_STRING, 0, 0, v, 600), -2);
    CHECK(hub_attr_get(b, "big") == NULL);
    /* ...but a may replace its own value (only the difference counts). */
    CHECK_INT(hub_attr_set(a, "big", ATTR_STRING, 0, 0, v, 500), 0);
    CHECK(hub_attr_bytes() < used);
    CHECK_INT(hub_attr_set(b, "n", ATTR_INTEGER, 7, 0, NULL, 0), 0);
    hub_attr_del(b, "n");
    test_conn_close(a);
    CHECK_INT(hub_attr_bytes(), 0);

    /* A count per connection keeps lookups short. */
    limits(SIZE_MAX, 0, SIZE_MAX);
    char key[16];
    int rc = 0;
    for (int i = 0; i < HUB_ATTRS_PER_CONN && rc == 0; i++) {
        snprintf(key, sizeof key, "k%d", i);
        rc = hub_attr_set(b, key, ATTR_BOOLEAN, 1, 0, NULL, 0);
    }
    CHECK_INT(rc, 0);
    CHECK_INT(hub_attr_set(b, "one-more", ATTR_BOOLEAN, 1, 0, NULL, 0), -3);
    CHECK_INT(hub_attr_set(b, "k0", ATTR_BOOLEAN, 0, 0, NULL, 0), 0); /* replacing is fine */
    test_conn_close(b);
    CHECK_INT(hub_attr_bytes(), 0);
    hub_set_limits(NULL, &no_limits);
}

TEST(hub_membership_bounds)
{
    hub_init(1 << 20, 3, &cb);
    struct conn *a = test_conn_open();
    char name[16];
    int rc = 1;
    for (int i = 0; i < HUB_ROOMS_PER_CONN && rc == 1; i++) {
        snprintf(name, sizeof name, "r%d", i);
        rc = hub_join(a, name, strlen(name));
    }
    CHECK_INT(rc, 1);
    CHECK_INT(hub_join(a, "one-more", 8), -2);
    CHECK(hub_room("one-more", 8) == NULL);
    CHECK_INT(hub_join(a, "r0", 2), 0); /* already a member: still fine */
    test_conn_close(a);

    /* A crowded room's member array shrinks as it empties. */
    struct conn *m[200];
    for (int i = 0; i < 200; i++) {
        m[i] = test_conn_open();
        hub_join(m[i], "crowd", 5);
    }
    struct room *r = hub_room("crowd", 5);
    uint32_t peak = r->members_cap;
    CHECK(peak >= 200);
    for (int i = 1; i < 200; i++)
        test_conn_close(m[i]);
    CHECK(r->members_cap <= 16);
    CHECK(hub_room_size(r) == 1 && hub_room_member(r, 0) == m[0]->id);
    test_conn_close(m[0]);
}

/* Members leaving in any order: order, indexes, sizes and broadcast stay right. */
TEST(hub_members_leave_in_any_order)
{
    hub_init(1 << 20, 3, &cb);
    enum { N = 100 };
    struct conn *m[N];
    int in[N];
    for (int i = 0; i < N; i++) {
        m[i] = test_conn_open();
        hub_join(m[i], "r", 1);
        in[i] = 1;
    }
    struct room *r = hub_room("r", 1);
    unsigned seed = 7;
    int left = N;
    struct frame *f = frame_ws(FRAME_TEXT, "x", 1);
    while (left > 1) {
        seed = seed * 1103515245 + 12345;
        int k = (int)((seed >> 16) % N);
        if (!in[k])
            continue;
        hub_leave(m[k], "r", 1);
        in[k] = 0;
        left--;
        CHECK_INT(hub_room_size(r), left);
        CHECK_INT(hub_broadcast(r, f, NULL), left);
        size_t j = 0;
        for (int i = 0; i < N; i++) {
            if (in[i]) {
                if (hub_room_member(r, j) != m[i]->id)
                    CHECK(!"members in join order");
                j++;
            }
        }
        for (uint32_t i = 0; i < r->members_len; i++)
            if (r->members[i] && slot_in(r->members[i], r) != i)
                CHECK(!"the membership's slot matches the room's");
    }
    frame_unref(f);
    for (int i = 0; i < N; i++)
        test_conn_close(m[i]);
    CHECK(hub_room("r", 1) == NULL);
}

/* Rooms that exist only for their history are paid for from the history budget too. */
TEST(hub_history_memory_counts_rooms)
{
    hub_init(1 << 20, 100, &cb);
    limits(10000, 0, SIZE_MAX);
    char name[16];
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof name, "room%d", i);
        uint64_t id = hub_history_last(name, strlen(name)) + 1; /* a freed room's slot may */
        CHECK_INT(hub_history_add(name, strlen(name), id, "m", 1), 0); /* have a last id */
    }
    CHECK(hub_history_bytes() <= 10000);
    int kept = 0;
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof name, "room%d", i);
        kept += hub_room(name, strlen(name)) != NULL;
    }
    CHECK(kept > 0 && (size_t)kept * (sizeof(struct room) + sizeof(struct hist_entry)) <= 10000);
    CHECK(hub_room("room999", 7) != NULL && hub_room("room0", 5) == NULL);
    hub_shutdown();
    hub_set_limits(NULL, &no_limits);
}

/* Room names found to collide under uthash's own (unkeyed) hash do not pile up in one chain. */
TEST(hub_room_names_cannot_flood_one_hash_chain)
{
    hub_init(1 << 20, 3, &cb);
    struct conn *a = test_conn_open();
    char name[32];
    int made = 0;
    for (unsigned i = 0; made < 300; i++) {
        snprintf(name, sizeof name, "x%u", i);
        unsigned hv;
        HASH_JEN(name, strlen(name), hv);
        if ((hv & 0xfff) == 0) { /* same bucket in every table of up to 4096 buckets */
            CHECK_INT(hub_join(a, name, strlen(name)), 1);
            made++;
        }
    }
    CHECK(hub_rooms_longest_chain() < 20);
    test_conn_close(a);
}

/* Memberships live in the connection's array: compacting one room's holes moves its members,
 * whose entries for that room follow, and their other rooms are untouched. */
TEST(hub_compaction_keeps_every_membership_right)
{
    hub_init(1 << 20, 100, &cb);
    enum { N = 40 };
    struct conn *m[N];
    const char *names[3] = {"a", "b", "c"};
    for (int i = 0; i < N; i++) {
        m[i] = test_conn_open();
        for (int k = 0; k < 3; k++)
            CHECK_INT(hub_join(m[i], names[(i + k) % 3], 1), 1);
    }
    struct room *a = hub_room("a", 1);
    /* Two of every three leave "a": holes pass half the slots, "a" is compacted. */
    for (int i = 0; i < N; i++)
        if (i % 3)
            CHECK_INT(hub_leave(m[i], "a", 1), 1);
    CHECK_INT(hub_room_size(a), (N + 2) / 3);
    for (int k = 0; k < 3; k++) {
        struct room *r = hub_room(names[k], 1);
        for (uint32_t i = 0; i < r->members_len; i++)
            if (r->members[i] && slot_in(r->members[i], r) != i)
                CHECK(!"the membership's slot matches the room's");
    }
    size_t j = 0;
    for (int i = 0; i < N; i += 3)
        CHECK(hub_room_member(a, j++) == m[i]->id); /* join order kept */
    for (int i = 0; i < N; i++) {
        CHECK_INT(hub_conn_room_count(m[i]), i % 3 ? 2 : 3);
        test_conn_close(m[i]);
    }
    for (int k = 0; k < 3; k++)
        CHECK(hub_room(names[k], 1) == NULL);
}

/* A room with another node's member (presence's mirror, no socket): a broadcast skips it, as a
 * fan-out of a room message from Redis (hub_broadcast_msg) does. Before, hub_broadcast_msg
 * queued every message to every mirrored member, put them on the server's flush list (where a
 * member freed when its node died was then read: a crash), and kept the frames until the
 * queue limit. */
TEST(hub_broadcasts_skip_other_nodes_members)
{
    hub_init(1 << 20, 10, &cb);
    struct conn *local = test_conn_open();
    struct conn *remote = hub_add_remote(((uint64_t)7 << 32) | 1);
    CHECK(remote != NULL);
    CHECK_INT(hub_join(local, "r", 1), 1);
    CHECK_INT(hub_join(remote, "r", 1), 1);
    struct room *r = hub_room("r", 1);
    CHECK_INT(hub_room_size(r), 2);
    CHECK_INT(hub_room_local_size(r), 1);
    queued_calls = 0;
    struct outmsg m;
    outmsg_init(&m, FRAME_TEXT, "hello", 5);
    CHECK_INT(hub_broadcast_msg(r, &m, NULL), 1);
    outmsg_release(&m);
    struct frame *f = frame_ws(FRAME_TEXT, "again", 5);
    CHECK_INT(hub_broadcast(r, f, NULL), 1);
    frame_unref(f);
    CHECK_INT(outq_count(&remote->out), 0);
    CHECK_INT(outq_count(&local->out), 2);
    CHECK_INT(queued_calls, 1);
    hub_remove_remote(remote);
    test_conn_close(local);
}
