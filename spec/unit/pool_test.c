/* The reuse of steady-state allocations: the bounded free list (pool.h) and its users, the
 * queue arrays (outq.h), frames (frame.h), framing states (ws.h) and the Lua allocator's small
 * blocks (script.c): a block put back is handed out again, never twice at once, and no list
 * grows past its bound. */
#include <ev.h>
#include <lua.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "frame.h"
#include "hub.h"
#include "outq.h"
#include "pool.h"
#include "script.h"
#include "script_int.h"
#include "test.h"
#include "ws.h"

TEST(pool_reuses_a_block_put_back)
{
    struct pool p = POOL_INIT(48, 4);
    void *a = pool_get(&p);
    CHECK(a != NULL);
    memset(a, 0xab, 48); /* the whole block is the caller's */
    pool_put(&p, a);
    CHECK_INT(p.n, 1);
    CHECK(pool_get(&p) == a);
    CHECK_INT(p.n, 0);
    CHECK(p.gets == 2 && p.hits == 1);
    pool_put(&p, NULL); /* ignored */
    CHECK_INT(p.n, 0);
    pool_put(&p, a);
    pool_drain(&p);
    CHECK(p.n == 0 && p.head == NULL);
}

TEST(pool_never_hands_a_block_out_twice)
{
    struct pool p = POOL_INIT(32, 8);
    void *a = pool_get(&p), *b = pool_get(&p);
    CHECK(a && b && a != b);
    pool_put(&p, a);
    pool_put(&p, b);
    void *x = pool_get(&p), *y = pool_get(&p);
    /* Both come back, each once, the latest first. */
    CHECK(x == b && y == a);
    /* The list is empty now: a third block is a new one, not one of the two still in use. */
    void *z = pool_get(&p);
    CHECK(z && z != x && z != y);
    CHECK_INT(p.hits, 2);
    pool_put(&p, x);
    pool_put(&p, y);
    pool_put(&p, z);
    CHECK_INT(p.n, 3);
    pool_drain(&p);
}

TEST(pool_never_grows_past_its_bound)
{
    struct pool p = POOL_INIT(64, 3);
    void *b[10];
    for (int i = 0; i < 10; i++)
        b[i] = pool_get(&p);
    for (int i = 0; i < 10; i++) {
        pool_put(&p, b[i]); /* past 3, the block is freed (valgrind/ASan see no leak) */
        CHECK(p.n <= 3);
    }
    CHECK_INT(p.n, 3);
    /* The three kept are the first three put back. */
    void *got[3];
    for (int i = 0; i < 3; i++)
        got[i] = pool_get(&p);
    CHECK(got[0] == b[2] && got[1] == b[1] && got[2] == b[0]);
    for (int i = 0; i < 3; i++)
        pool_put(&p, got[i]);
    pool_drain(&p);
    CHECK_INT(p.n, 0);
}

/* ---- queue arrays -------------------------------------------------------------------- */

TEST(outq_array_of_a_drained_queue_is_reused)
{
    outq_spare_drain();
    struct outq_spare_stats st0 = outq_spare_stats();
    struct frame *f = frame_bytes("abcdef", 6);
    struct outq q = {0};
    CHECK_INT(outq_push(&q, f), 0);
    struct outq_ring *first = q.r;
    CHECK_INT(q.r->cap, 4);
    outq_consume(&q, 6);
    /* Empty: the queue holds no array, the spare list does. */
    CHECK(q.r == NULL);
    CHECK_INT(outq_spare_stats().count, 1);
    CHECK_INT(outq_spare_stats().bytes, sizeof(struct outq_ring) + 4 * sizeof(struct frame *));
    /* Another queue takes that same array. */
    struct outq r = {0};
    CHECK_INT(outq_push(&r, f), 0);
    CHECK(r.r == first);
    CHECK_INT(outq_spare_stats().count, 0);
    CHECK_INT(outq_spare_stats().hits - st0.hits, 1);
    /* A queue that grew gives back its larger array, which the next queue starts with: the
     * next burst needs no growing. */
    for (int i = 0; i < 20; i++)
        CHECK_INT(outq_push(&r, f), 0);
    CHECK_INT(r.r->cap, 32);
    struct outq_ring *big = r.r;
    outq_clear(&r);
    struct outq s = {0};
    CHECK_INT(outq_push(&s, f), 0);
    CHECK(s.r == big && s.r->cap == 32);
    /* Two queues never share an array: the next one gets what is left, or a new one. */
    struct outq t = {0};
    CHECK_INT(outq_push(&t, f), 0);
    CHECK(t.r != s.r);
    outq_clear(&s);
    outq_clear(&t);
    CHECK(f->refs == 1);
    frame_unref(f);
    outq_spare_drain();
    CHECK_INT(outq_spare_stats().count, 0);
}

/* The spares' entries: the bound counts them, not the rings' headers. */
static size_t spare_entry_bytes(void)
{
    struct outq_spare_stats st = outq_spare_stats();
    return st.bytes - st.count * sizeof(struct outq_ring);
}

TEST(outq_spare_arrays_stay_within_their_bound)
{
    outq_spare_drain();
    struct frame *f = frame_bytes("x", 1);
    /* 80 queues of 1024 entries (8 KB each, 640 KB) and 8 of 2048 entries. */
    enum { N = 80, BIG = 8 };
    struct outq *q = calloc(N + BIG, sizeof *q);
    for (int i = 0; i < N + BIG; i++)
        for (int k = 0; k < (i < N ? 1024 : 1025); k++)
            outq_push(&q[i], f);
    CHECK_INT(q[0].r->cap, 1024);
    CHECK_INT(q[N].r->cap, 2048);
    CHECK(spare_entry_bytes() <= OUTQ_SPARE_BYTES); /* what growing gave back */
    outq_spare_drain();
    /* Arrays of more than OUTQ_SPARE_CAP_MAX entries are never kept. */
    for (int i = N; i < N + BIG; i++)
        outq_clear(&q[i]);
    CHECK_INT(outq_spare_stats().count, 0);
    /* Those of 1024 are, up to the byte bound. */
    for (int i = 0; i < N; i++) {
        outq_clear(&q[i]);
        CHECK(spare_entry_bytes() <= OUTQ_SPARE_BYTES);
    }
    size_t fit = OUTQ_SPARE_BYTES / (1024 * sizeof(struct frame *));
    CHECK_INT(outq_spare_stats().count, N < fit ? N : fit);
    outq_spare_drain();
    free(q);
    CHECK(f->refs == 1);
    frame_unref(f);
}

/* ---- frames -------------------------------------------------------------------------- */

TEST(frame_freed_is_reused_for_the_next_of_its_size)
{
    frame_pool_drain();
    size_t live = frame_live;
    struct frame *a = frame_ws(FRAME_TEXT, "hello", 5);
    CHECK(a && a->len == 7 && a->pool == 1);
    CHECK_INT(frame_live, live + 1);
    frame_unref(a);
    CHECK_INT(frame_live, live);
    CHECK_INT(frame_pool(0)->n, 1);
    /* The next small frame is the same block, with its own contents. */
    struct frame *b = frame_bytes("0123456789", 10);
    CHECK(b == a && b->refs == 1 && b->len == 10 && memcmp(b->data, "0123456789", 10) == 0);
    CHECK_INT(frame_pool(0)->n, 0);
    /* ...and a second one while it lives is not. */
    struct frame *c = frame_bytes("x", 1);
    CHECK(c != b);
    frame_unref(b);
    frame_unref(c);
    /* Sizes past the largest class are plain allocations. */
    size_t top = ((size_t)64 << (FRAME_POOL_CLASSES - 1)) - sizeof(struct frame);
    struct frame *d = frame_new(top), *e = frame_new(top + 1);
    CHECK(d->pool == FRAME_POOL_CLASSES && e->pool == 0);
    frame_unref(d);
    frame_unref(e);
    frame_pool_drain();
    CHECK_INT(frame_live, live);
}

TEST(frame_pools_stay_within_their_bound)
{
    frame_pool_drain();
    const struct pool *p0 = frame_pool(0);
    size_t n = p0->max + 10;
    struct frame **fs = calloc(n, sizeof *fs);
    for (size_t i = 0; i < n; i++)
        fs[i] = frame_bytes("abc", 3);
    for (size_t i = 0; i < n; i++) {
        frame_unref(fs[i]);
        CHECK(p0->n <= p0->max);
    }
    CHECK_INT(p0->n, p0->max);
    CHECK(p0->max * p0->size <= FRAME_POOL_BYTES);
    CHECK(frame_pool(FRAME_POOL_CLASSES) == NULL);
    free(fs);
    frame_pool_drain();
    CHECK_INT(p0->n, 0);
}

/* ---- framing states ------------------------------------------------------------------ */

static int ws_got;
static void on_message(struct conn *c, int binary, const uint8_t *data, size_t len)
{
    ws_got++;
}
static void q_queued(struct conn *c) {}
static void q_overflow(struct conn *c) {}
static void q_close(struct conn *c, uint16_t code, const char *reason) {}
static const struct hub_callbacks hub_cb = {q_queued, q_overflow, q_close};

/* A masked client frame of under 126 bytes; rsv1 sets RSV1. */
static size_t client_frame(uint8_t *out, int rsv1, const char *text)
{
    static const uint8_t key[4] = {1, 2, 3, 4};
    size_t len = strlen(text);
    out[0] = (uint8_t)(0x81 | (rsv1 ? 0x40 : 0));
    out[1] = (uint8_t)(0x80 | len);
    memcpy(out + 2, key, 4);
    for (size_t i = 0; i < len; i++)
        out[6 + i] = (uint8_t)(text[i] ^ key[i % 4]);
    return 6 + len;
}

static int last_close(struct conn *c)
{
    if (!outq_count(&c->out))
        return -1;
    struct frame *f = outq_at(&c->out, outq_count(&c->out) - 1);
    return f->len >= 4 && f->data[0] == 0x88 ? f->data[2] << 8 | f->data[3] : -1;
}

TEST(ws_state_between_messages_is_kept_and_reused)
{
    static const struct ws_handlers h = {on_message};
    hub_init(1 << 20, 0, &hub_cb);
    ws_init(1024, &h);
    ws_spare_drain();
    ws_got = 0;
    struct conn *a = test_conn_open(), *b = test_conn_open();
    a->deflate_bits = 15;
    uint8_t buf[64];
    CHECK_INT(ws_feed(a, buf, client_frame(buf, 0, "one")), 0);
    CHECK_INT(ws_got, 1);
    /* Kept, not charged, not the connection's. */
    CHECK(a->ws == NULL);
    CHECK_INT(ws_live, 0);
    CHECK_INT(ws_memory, 0);
    CHECK_INT(ws_spare_count(), 1);
    /* Half a frame from b takes it (it stays b's until the message ends). */
    size_t n = client_frame(buf, 0, "two");
    CHECK_INT(ws_feed(b, buf, 3), 0);
    CHECK(b->ws != NULL);
    CHECK_INT(ws_spare_count(), 0);
    CHECK_INT(ws_live, 1);
    /* a needs its own meanwhile: a new one. */
    CHECK_INT(ws_feed(a, buf, 3), 0);
    CHECK(a->ws != NULL && a->ws != b->ws);
    CHECK_INT(ws_feed(b, buf + 3, n - 3), 0);
    CHECK_INT(ws_feed(a, buf + 3, n - 3), 0);
    CHECK_INT(ws_got, 3);
    CHECK_INT(ws_spare_count(), 2);
    CHECK_INT(ws_memory, 0);
    /* The settings are b's, not those of a's deflate: RSV1 without the extension is 1002. */
    CHECK_INT(ws_feed(b, buf, client_frame(buf, 1, "three")), 1002);
    CHECK_INT(last_close(b), 1002);
    CHECK_INT(ws_got, 3);
    /* A state that ended in a failure is freed, not kept. */
    ws_free(b);
    outq_clear(&b->out);
    CHECK_INT(ws_spare_count(), 1);
    ws_free(a);
    test_conn_close(a);
    test_conn_close(b);
    CHECK_INT(ws_memory, 0);
    ws_spare_drain();
}

TEST(ws_spare_states_stay_within_their_bound)
{
    static const struct ws_handlers h = {on_message};
    hub_init(1 << 20, 0, &hub_cb);
    ws_init(1024, &h);
    ws_spare_drain();
    enum { N = WS_SPARE_MAX + 3 };
    struct conn *c[N];
    uint8_t buf[64];
    size_t n = client_frame(buf, 0, "hello");
    /* N messages half-way at once, then all end. */
    for (int i = 0; i < N; i++) {
        c[i] = test_conn_open();
        CHECK_INT(ws_feed(c[i], buf, 4), 0);
    }
    CHECK_INT(ws_live, N);
    for (int i = 0; i < N; i++) {
        CHECK_INT(ws_feed(c[i], buf + 4, n - 4), 0);
        CHECK(ws_spare_count() <= WS_SPARE_MAX);
    }
    CHECK_INT(ws_spare_count(), WS_SPARE_MAX);
    CHECK_INT(ws_live, 0);
    CHECK_INT(ws_memory, 0);
    for (int i = 0; i < N; i++)
        test_conn_close(c[i]);
    ws_spare_drain();
    CHECK_INT(ws_spare_count(), 0);
}

/* ---- the Lua allocator --------------------------------------------------------------- */

/* Starts the script runtime with a memory cap and loads src from a file at path (a mkstemps
 * template, unlinked by the caller). */
static void script_start(size_t memory, char *path, const char *src)
{
    struct script_config cfg = {.hook_timeout_ms = 1000, .memory = memory};
    script_init(ev_default_loop(0), &cfg);
    hub_init(1 << 20, 10, &hub_cb);
    int fd = mkstemps(path, 4);
    CHECK(write(fd, src, strlen(src)) == (ssize_t)strlen(src));
    close(fd);
    char err[256];
    CHECK_INT(script_load(path, err, sizeof err), 0);
}

TEST(script_pools_keep_the_memory_count_exact_and_bounded)
{
    char path[] = "/tmp/confab-pool-XXXXXX.lua";
    static const char src[] =
        "local confab = require 'confab'\n"
        "local keep = {}\n"
        "confab.on('message', function(ev)\n"
        "  local t = {}\n"
        "  for i = 1, 200 do t[i] = ev.data .. i end\n"
        "  keep[#keep % 50 + 1] = table.concat(t, ',')\n"
        "end)\n";
    script_start(8 * 1024 * 1024, path, src);
    struct conn *c = test_conn_open();
    for (int i = 0; i < 300; i++)
        script_message(c, 0, (const uint8_t *)"some text", 9);
    /* Lua's own count of its memory is what the cap counts: the pools do not change it. */
    lua_State *L = script_current();
    size_t lua_bytes = (size_t)lua_gc(L, LUA_GCCOUNT) * 1024 + (size_t)lua_gc(L, LUA_GCCOUNTB);
    CHECK_INT(script_memory_used(), lua_bytes);
    /* Blocks freed by the collector went to the pools, each within its bound. */
    size_t kept = 0;
    for (unsigned k = 0; script_pool(k); k++) {
        const struct pool *p = script_pool(k);
        CHECK(p->n <= p->max);
        kept += p->n * p->size;
    }
    CHECK(kept > 0);
    CHECK_INT(script_pool_bytes(), kept);
    /* The strings of each event (ev.data .. i: 24-byte header + about 12 bytes, class 48) are
     * made from blocks the collector gave back. */
    CHECK(script_pool(2)->hits > 0);
    test_conn_close(c);
    script_shutdown();
    for (unsigned k = 0; script_pool(k); k++)
        CHECK(script_pool(k)->n <= script_pool(k)->max);
    script_pool_drain();
    for (unsigned k = 0; script_pool(k); k++)
        CHECK_INT(script_pool(k)->n, 0);
    CHECK_INT(script_pool_bytes(), 0);
    unlink(path);
}

/* The pools share one budget: a collection that gives back more blocks of one class than the
 * budget holds keeps the budget's worth and frees the rest; the other classes are not starved
 * by a share of their own (what a share per class did: it freed what the next events made
 * again). */
TEST(script_pools_share_one_budget)
{
    script_pool_drain();
    char path[] = "/tmp/confab-pool-XXXXXX.lua";
    /* Each message makes 20,000 tables of one class (an empty table: about 56 bytes) and drops
     * them: 1.1 MB, more than a share of 128 KB, less than the whole budget; "big" makes
     * 100,000 (5.6 MB, more than the budget). */
    static const char src[] =
        "local confab = require 'confab'\n"
        "confab.on('message', function(ev)\n"
        "  local t = {}\n"
        "  for i = 1, ev.data == 'big' and 100000 or 20000 do t[i] = {} end\n"
        "  t = nil\n"
        "  collectgarbage()\n"
        "end)\n";
    script_start(64 * 1024 * 1024, path, src);
    struct conn *c = test_conn_open();
    script_message(c, 0, (const uint8_t *)"x", 1);
    const struct pool *tables = NULL;
    for (unsigned k = 0; script_pool(k); k++)
        if (!tables || script_pool(k)->n > tables->n)
            tables = script_pool(k);
    CHECK(tables->n >= 20000);
    CHECK(tables->n * tables->size > 128 * 1024);
    CHECK(script_pool_bytes() <= SCRIPT_POOLS_BYTES);
    /* The next message's tables all come from the list. */
    uint64_t hits = tables->hits;
    script_message(c, 0, (const uint8_t *)"x", 1);
    CHECK(tables->hits - hits >= 20000);
    /* More than the budget at once: the lists stop at it. */
    script_message(c, 0, (const uint8_t *)"big", 3);
    CHECK(script_pool_bytes() <= SCRIPT_POOLS_BYTES);
    CHECK(script_pool_bytes() > SCRIPT_POOLS_BYTES - 1024);
    test_conn_close(c);
    script_shutdown();
    CHECK(script_pool_bytes() <= SCRIPT_POOLS_BYTES);
    script_pool_drain();
    CHECK_INT(script_pool_bytes(), 0);
    unlink(path);
}

/* ---- history entries ----------------------------------------------------------------- */

struct last_entry {
    uint64_t id;
    size_t len;
    char data[256];
};

static void keep_last(const struct hist_entry *e, void *arg)
{
    struct last_entry *l = arg;
    l->id = e->id;
    l->len = e->len;
    memcpy(l->data, e->data, e->len + 1);
}

static double hist_clock_now;
static double hist_clock(void) { return hist_clock_now; }

TEST(history_at_its_cap_replaces_entries_without_allocating)
{
    hub_init(1 << 20, 3, &hub_cb);
    char text[120];
    memset(text, 'm', sizeof text);
    /* Lengths 100..107 are one size class: each add at the cap takes the block the previous
     * add's eviction put back. */
    const struct pool *p = hub_history_pool(100);
    CHECK(p != NULL && p == hub_history_pool(107));
    CHECK(p->size >= sizeof(struct hist_entry) + 107 + 1);
    for (uint64_t id = 1; id <= 3; id++)
        CHECK_INT(hub_history_add("r", 1, id, text, 100), 0);
    size_t bytes = hub_history_bytes();
    uint64_t misses = p->gets - p->hits;
    for (uint64_t id = 4; id <= 1000; id++) {
        text[0] = (char)('a' + id % 26);
        CHECK_INT(hub_history_add("r", 1, id, text, 100 + id % 8), 0);
        CHECK(p->n <= 1);
    }
    /* One block was new (the first eviction came after the first add at the cap's get). */
    CHECK(p->gets - p->hits - misses <= 1);
    /* What is charged is exact, as before: three entries of the lengths kept, and the room. */
    size_t lens = (100 + 998 % 8) + (100 + 999 % 8) + (100 + 1000 % 8);
    CHECK_INT(hub_history_bytes(), bytes - 3 * 100 + lens);
    /* A reused block holds the new entry, not the old one's bytes. */
    struct last_entry last = {0};
    CHECK_INT(hub_history_each("r", 1, 999, keep_last, &last), 1);
    CHECK(last.id == 1000 && last.len == 100 + 1000 % 8 && last.data[0] == 'a' + 1000 % 26);
    CHECK(last.data[1] == 'm' && last.data[last.len] == '\0');
    hub_shutdown();
    CHECK_INT(hub_history_bytes(), 0);
    CHECK_INT(p->n, 0); /* the lists are emptied with the history */
    /* Entries larger than the largest class are plain allocations. */
    CHECK(hub_history_pool(4096) == NULL);
}

TEST(history_pools_stay_within_their_bound)
{
    hub_init(1 << 20, 1000, &hub_cb);
    hub_set_limits(NULL, &(struct hub_limits){SIZE_MAX, 10, SIZE_MAX, hist_clock});
    const struct pool *p = hub_history_pool(50);
    hist_clock_now = 100;
    size_t n = p->max + 20;
    char text[50] = {0};
    for (uint64_t id = 1; id <= n; id++)
        CHECK_INT(hub_history_add("r", 1, id, text, sizeof text), 0);
    /* Every entry expires at once: the list keeps its bound, the rest is freed. */
    hist_clock_now = 200;
    hub_expire();
    CHECK_INT(hub_history_bytes(), 0);
    CHECK_INT(p->n, p->max);
    CHECK(p->max * p->size <= 8 * 1024);
    hub_shutdown();
    CHECK_INT(p->n, 0);
    hub_set_limits(NULL, &(struct hub_limits){SIZE_MAX, 0, SIZE_MAX, NULL});
}
