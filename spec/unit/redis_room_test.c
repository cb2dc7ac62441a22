/* redis_room's delivery logic without Redis: messages fed as if from the subscription, the reads
 * it asks for answered by hand. In order: delivered; a gap: held and repaired from the stream, in
 * order, nothing twice; a replay: the list holds what was delivered here, newer messages follow
 * it; the subscriber link coming back: every room read again. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/uio.h>

#include "frame.h"
#include "hub.h"
#include "redis_room.h"
#include "test.h"

static void t_queued(struct conn *c) {}
static void t_overflow(struct conn *c) {}
static void t_close(struct conn *c, uint16_t code, const char *reason) {}
static const struct hub_callbacks cb = {t_queued, t_overflow, t_close};

/* The last read asked for. */
static struct {
    int calls;
    char after[32];
    redis_cb *cb;
    void *ctx;
} asked;

static int fake_eval(unsigned shard, int script, int nkeys, int argc, const char **argv,
                     const size_t *argvlen, redis_cb *fn, void *ctx)
{
    asked.calls++;
    /* A read's ARGV: after, age [, "sync"]; after the two keys (the epoch's read has one key). */
    if (argc > 2)
        snprintf(asked.after, sizeof asked.after, "%.*s", (int)argvlen[2], argv[2]);
    asked.cb = fn;
    asked.ctx = ctx;
    return 0;
}

static int fake_up(unsigned shard) { return 1; }

/* Answers the read with {last, complete, id, data...} for ids from..to ("m<ID>"). */
static void answer(unsigned long long last, int complete, unsigned long long from,
                   unsigned long long to)
{
    static char bufs[64][32];
    redisReply items[66], *elems[66];
    size_t n = 0;
    snprintf(bufs[0], sizeof bufs[0], "%llu", last);
    items[n] = (redisReply){.type = REDIS_REPLY_STRING, .str = bufs[0], .len = strlen(bufs[0])};
    n++;
    items[n] = (redisReply){.type = REDIS_REPLY_INTEGER, .integer = complete};
    n++;
    for (unsigned long long id = from; id && id <= to; id++) {
        char *ids = bufs[n], *data = bufs[n + 1];
        snprintf(ids, 32, "%llu", id);
        snprintf(data, 32, "m%llu", id);
        items[n] = (redisReply){.type = REDIS_REPLY_STRING, .str = ids, .len = strlen(ids)};
        items[n + 1] = (redisReply){.type = REDIS_REPLY_STRING, .str = data, .len = strlen(data)};
        n += 2;
    }
    for (size_t i = 0; i < n; i++)
        elems[i] = &items[i];
    redisReply r = {.type = REDIS_REPLY_ARRAY, .elements = n, .element = elems};
    redis_cb *fn = asked.cb;
    asked.cb = NULL;
    fn(asked.ctx, &r, NULL);
}

/* Each test starts with an empty hub whose rooms go through redis_room with the fakes above (and
 * redis_room told when a room is freed, as main.c does), and ends by putting the real calls back. */
static void fake_redis_begin(void)
{
    hub_init(1 << 20, 10, &cb);
    redis_room_eval = fake_eval;
    redis_room_up = fake_up;
    hub_room_freed = redis_room_forget;
    asked.calls = 0;
}

static void fake_redis_end(void)
{
    redis_room_shutdown();
    redis_room_eval = redis_eval;
    redis_room_up = redis_up;
    hub_room_freed = NULL;
}

static void feed(unsigned long long id, const char *room)
{
    char buf[128];
    char data[32];
    snprintf(data, sizeof data, "m%llu", id);
    int n = snprintf(buf, sizeof buf, "%llu 0 0 0 %zu %s%s", id, strlen(room), room, data);
    redis_room_feed(0, buf, (size_t)n);
}

/* What c's queue holds, as "m1 m2 ..." (small text frames: 2-byte header), then emptied. */
static void received(struct conn *c, char *out, size_t cap)
{
    struct iovec iov[64];
    int n = outq_iov(&c->out, iov, 64);
    size_t off = 0, total = 0;
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        const char *p = (const char *)iov[i].iov_base + 2;
        off += (size_t)snprintf(out + off, cap - off, "%s%.*s", off ? " " : "",
                                (int)iov[i].iov_len - 2, p);
        total += iov[i].iov_len;
    }
    outq_consume(&c->out, total);
}

static char replay_got[256];
static void on_replay(void *ctx, const struct redis_entry *list, size_t n, int complete,
                      const char *err)
{
    struct conn *c = ctx;
    size_t off = (size_t)snprintf(replay_got, sizeof replay_got, "%s:", complete ? "complete" : "incomplete");
    for (size_t i = 0; i < n; i++)
        off += (size_t)snprintf(replay_got + off, sizeof replay_got - off, " %.*s", (int)list[i].len,
                                list[i].data);
    /* What the script sends with the list goes out before any newer live message. */
    struct frame *f = frame_ws(FRAME_TEXT, "HISTORY", 7);
    hub_send(c, f);
    frame_unref(f);
}

TEST(redis_room_orders_repairs_and_holds_for_replays)
{
    fake_redis_begin();
    struct conn *a = test_conn_open();
    char got[512];
    CHECK_INT(hub_join(a, "r", 1), 1);

    /* In order: delivered at once; a duplicate is dropped; another room's message is not ours. */
    feed(101, "r");
    feed(102, "r");
    feed(102, "r");
    feed(7, "other");
    received(a, got, sizeof got);
    CHECK(strcmp(got, "m101 m102") == 0);
    CHECK_INT(asked.calls, 0);

    /* A gap: 104 and 105 are held, the range after 102 is read, then all go out in order once. */
    feed(104, "r");
    feed(105, "r");
    received(a, got, sizeof got);
    CHECK(strcmp(got, "") == 0);
    CHECK_INT(asked.calls, 1);
    CHECK(strcmp(asked.after, "102") == 0);
    feed(106, "r"); /* arrives while the read is in flight: held too */
    answer(105, 1, 103, 105);
    received(a, got, sizeof got);
    CHECK(strcmp(got, "m103 m104 m105 m106") == 0);
    CHECK_INT(asked.calls, 1);

    /* A replay: the list is what was delivered here (up to 106); 107, stored before the answer
     * and arriving live during the read, reaches the room after the list, once. */
    const char *err = NULL;
    CHECK_INT(redis_room_replay("r", 1, 104, on_replay, a, &err), 0);
    CHECK_INT(asked.calls, 2);
    feed(107, "r");
    received(a, got, sizeof got);
    CHECK(strcmp(got, "") == 0);
    answer(107, 1, 105, 107);
    CHECK(strcmp(replay_got, "complete: m105 m106") == 0);
    received(a, got, sizeof got);
    CHECK(strcmp(got, "HISTORY m107") == 0);

    /* The subscriber link came back: the room is read from its last id; what was published
     * meanwhile (108, 109) is delivered, then live goes on. */
    redis_room_link_event(0, REDIS_EV_SUBSCRIBED);
    CHECK_INT(asked.calls, 3);
    CHECK(strcmp(asked.after, "107") == 0);
    /* It drops and comes back again while that read is in flight: one more read after it. */
    redis_room_link_event(0, REDIS_EV_SUBSCRIBED);
    CHECK_INT(asked.calls, 3);
    feed(110, "r");
    answer(109, 1, 108, 109);
    CHECK_INT(asked.calls, 4);
    CHECK(strcmp(asked.after, "110") == 0);
    answer(110, 1, 0, 0);
    feed(111, "r");
    received(a, got, sizeof got);
    CHECK(strcmp(got, "m108 m109 m110 m111") == 0);

    /* Trimmed away before the repair (incomplete): what is kept is delivered, the rest skipped. */
    feed(120, "r");
    CHECK_INT(asked.calls, 5);
    answer(120, 0, 118, 120);
    received(a, got, sizeof got);
    CHECK(strcmp(got, "m118 m119 m120") == 0);

    /* The last member leaves: the room's state goes; a new member starts from the next message. */
    test_conn_close(a);
    struct conn *b = test_conn_open();
    CHECK_INT(hub_join(b, "r", 1), 1);
    feed(200, "r");
    feed(201, "r");
    received(b, got, sizeof got);
    CHECK(strcmp(got, "m200 m201") == 0);
    CHECK_INT(asked.calls, 5);
    test_conn_close(b);
    fake_redis_end();
}

/* A read that fails is made again by the sweep: the tail of a burst missed while the subscriber
 * link was down has nothing after it to show the gap, so a failed repair must not be the end. */
TEST(redis_room_reads_again_after_a_failed_read)
{
    fake_redis_begin();
    struct conn *a = test_conn_open();
    char got[512];
    CHECK_INT(hub_join(a, "r", 1), 1);
    feed(101, "r");
    received(a, got, sizeof got);
    CHECK(strcmp(got, "m101") == 0);

    /* The link came back; the repair read fails: not at once again (the link may be down). */
    redis_room_link_event(0, REDIS_EV_SUBSCRIBED);
    CHECK_INT(asked.calls, 1);
    redis_cb *fn = asked.cb;
    asked.cb = NULL;
    fn(asked.ctx, NULL, "redis timeout");
    CHECK_INT(asked.calls, 1);
    /* The sweep reads again from 101: 102 and 103 (published while the link was down). */
    redis_room_sweep();
    CHECK_INT(asked.calls, 2);
    CHECK(strcmp(asked.after, "101") == 0);
    answer(103, 1, 102, 103);
    received(a, got, sizeof got);
    CHECK(strcmp(got, "m102 m103") == 0);
    redis_room_sweep();
    CHECK_INT(asked.calls, 2); /* nothing more to do */

    /* A room new here whose first read (where it starts) fails: live messages are held, not
     * delivered from a guessed start, until the sweep's read again answers. */
    struct conn *b = test_conn_open();
    CHECK_INT(hub_join(b, "s", 1), 1);
    redis_room_track("s", 1);
    CHECK_INT(asked.calls, 3);
    fn = asked.cb;
    asked.cb = NULL;
    fn(asked.ctx, NULL, "redis disconnected");
    feed(52, "s");
    received(b, got, sizeof got);
    CHECK(strcmp(got, "") == 0);
    redis_room_sweep();
    CHECK_INT(asked.calls, 4);
    answer(51, 1, 0, 0);
    received(b, got, sizeof got);
    CHECK(strcmp(got, "m52") == 0);

    /* A room new here: messages that arrive live while the read of where it starts is in flight
     * reach the member (who joined before they were published), though Redis stored them before
     * the read ran. */
    struct conn *c = test_conn_open();
    CHECK_INT(hub_join(c, "t", 1), 1);
    redis_room_track("t", 1);
    CHECK_INT(asked.calls, 5);
    feed(61, "t");
    feed(62, "t");
    answer(62, 1, 0, 0);
    received(c, got, sizeof got);
    CHECK(strcmp(got, "m61 m62") == 0);
    feed(63, "t");
    received(c, got, sizeof got);
    CHECK(strcmp(got, "m63") == 0);
    /* The same, but the read's answer comes before the messages (another link): 71 and 72,
     * stored before the read ran, still reach the member when they come live, once. */
    struct conn *e = test_conn_open();
    CHECK_INT(hub_join(e, "u", 1), 1);
    redis_room_track("u", 1);
    CHECK_INT(asked.calls, 6);
    answer(72, 1, 0, 0);
    feed(71, "u");
    feed(72, "u");
    feed(72, "u");
    feed(73, "u");
    received(e, got, sizeof got);
    CHECK(strcmp(got, "m71 m72 m73") == 0);
    test_conn_close(e);

    test_conn_close(a);
    test_conn_close(b);
    test_conn_close(c);
    fake_redis_end();
}

/* A room new here, its start read (80); then the command link comes back and every room is read
 * again: 81 and 82 come in that read's answer, before their live copies on the subscriber link
 * (another socket). The live copies are not delivered again, and 80 coming live after 81 and 82
 * would be out of order: dropped too. Before: "m80 m81" went out a second time (a whole room's
 * members got a message twice). */
TEST(redis_room_a_repair_right_after_the_start_read_delivers_nothing_twice)
{
    fake_redis_begin();
    struct conn *a = test_conn_open();
    char got[512];
    CHECK_INT(hub_join(a, "w", 1), 1);
    redis_room_track("w", 1);
    CHECK_INT(asked.calls, 1);
    answer(80, 1, 0, 0);
    redis_room_link_event(0, REDIS_EV_UP); /* the epoch's read, then the room's repair */
    CHECK_INT(asked.calls, 3);
    CHECK(strcmp(asked.after, "80") == 0);
    answer(82, 1, 81, 82);
    received(a, got, sizeof got);
    CHECK(strcmp(got, "m81 m82") == 0);
    feed(80, "w");
    feed(81, "w");
    feed(82, "w");
    feed(83, "w");
    received(a, got, sizeof got);
    CHECK(strcmp(got, "m83") == 0);
    test_conn_close(a);
    fake_redis_end();
}

/* A room new here: its start read (which answers with the room's last id only) comes back after
 * messages came live since the join (held meanwhile): they go out, in order, and what comes live
 * after them follows; none is lost, none twice. */
TEST(redis_room_a_start_read_delivers_what_came_live_since_the_join)
{
    fake_redis_begin();
    struct conn *a = test_conn_open();
    char got[512];
    CHECK_INT(hub_join(a, "t", 1), 1);
    redis_room_track("t", 1);
    CHECK_INT(asked.calls, 1);
    for (unsigned long long id = 101; id <= 106; id++)
        feed(id, "t");
    answer(110, 1, 0, 0);
    received(a, got, sizeof got);
    CHECK(strcmp(got, "m101 m102 m103 m104 m105 m106") == 0);
    for (unsigned long long id = 107; id <= 111; id++)
        feed(id, "t");
    received(a, got, sizeof got);
    CHECK(strcmp(got, "m107 m108 m109 m110 m111") == 0);
    CHECK_INT(asked.calls, 1); /* no repair */
    test_conn_close(a);
    fake_redis_end();
}

/* A repair answered with no entries at all (nothing stored: a history smaller than a message, or
 * all of it past --history-age): the messages held meanwhile up to the room's last id go out, in
 * order, before the last id moves past them. Before, they were dropped as older. */
TEST(redis_room_a_repair_with_nothing_stored_keeps_what_came_live)
{
    fake_redis_begin();
    struct conn *a = test_conn_open();
    char got[512];
    CHECK_INT(hub_join(a, "s", 1), 1);
    redis_room_track("s", 1);
    answer(100, 1, 0, 0);
    feed(101, "s");
    feed(103, "s");
    CHECK_INT(asked.calls, 2);
    for (unsigned long long id = 104; id <= 106; id++)
        feed(id, "s");
    answer(106, 0, 0, 0);
    received(a, got, sizeof got);
    CHECK(strcmp(got, "m101 m103 m104 m105 m106") == 0);
    feed(107, "s");
    received(a, got, sizeof got);
    CHECK(strcmp(got, "m107") == 0);
    CHECK_INT(asked.calls, 2);
    test_conn_close(a);
    fake_redis_end();
}

/* The same for a repair: a gap (102) starts one; 103..106 come live while it is in flight, and the
 * stream has dropped 102..106 by the time it runs. The held ones go out, then the list's (102 is
 * lost for good: not stored, never seen). Before, 103..106 were dropped as older than the list. */
TEST(redis_room_a_repair_of_a_trimmed_stream_keeps_what_came_live)
{
    fake_redis_begin();
    struct conn *a = test_conn_open();
    char got[512];
    CHECK_INT(hub_join(a, "u", 1), 1);
    redis_room_track("u", 1);
    answer(100, 1, 0, 0);
    feed(101, "u");
    feed(103, "u");
    CHECK_INT(asked.calls, 2);
    CHECK(strcmp(asked.after, "101") == 0);
    for (unsigned long long id = 104; id <= 106; id++)
        feed(id, "u");
    answer(110, 0, 107, 110);
    received(a, got, sizeof got);
    CHECK(strcmp(got, "m101 m103 m104 m105 m106 m107 m108 m109 m110") == 0);
    for (unsigned long long id = 107; id <= 111; id++)
        feed(id, "u");
    received(a, got, sizeof got);
    CHECK(strcmp(got, "m111") == 0);
    CHECK_INT(asked.calls, 2);
    test_conn_close(a);
    fake_redis_end();
}

/* A room with no message in Redis when its start read ran (last 0): its ids start at Redis's
 * clock (ms x 10 + 1), and its first message comes live: it starts the room, with no repair from
 * 0 (whose answer, under a tiny history limit, could lack it). After the subscriber link came
 * back that no longer holds (the first message may have gone with the link): a repair reads. */
TEST(redis_room_a_room_empty_in_redis_starts_at_its_first_live_message)
{
    fake_redis_begin();
    struct conn *a = test_conn_open();
    char got[512];
    CHECK_INT(hub_join(a, "v", 1), 1);
    redis_room_track("v", 1);
    answer(0, 1, 0, 0);
    feed(5001, "v");
    feed(5002, "v");
    received(a, got, sizeof got);
    CHECK(strcmp(got, "m5001 m5002") == 0);
    CHECK_INT(asked.calls, 1);
    feed(5004, "v"); /* a gap from there is repaired as usual */
    CHECK_INT(asked.calls, 2);
    CHECK(strcmp(asked.after, "5002") == 0);
    answer(5004, 1, 5003, 5004);
    received(a, got, sizeof got);
    CHECK(strcmp(got, "m5003 m5004") == 0);
    test_conn_close(a); /* v goes: the link event below reads y alone */

    struct conn *b = test_conn_open();
    CHECK_INT(hub_join(b, "y", 1), 1);
    redis_room_track("y", 1);
    CHECK_INT(asked.calls, 3);
    answer(0, 1, 0, 0);
    redis_room_link_event(0, REDIS_EV_SUBSCRIBED); /* every room read again */
    CHECK_INT(asked.calls, 4);
    answer(0, 1, 0, 0); /* y's: still nothing */
    feed(7001, "y");
    CHECK_INT(asked.calls, 5); /* no longer taken as the first: read */
    CHECK(strcmp(asked.after, "0") == 0);
    answer(7001, 1, 7001, 7001);
    received(b, got, sizeof got);
    CHECK(strcmp(got, "m7001") == 0);
    test_conn_close(b);
    fake_redis_end();
}
