/* Framing without sockets: scripted client frames in, messages and queued frames out. */
#include <stdlib.h>
#include <string.h>

#include "hub.h"
#include "test.h"
#include "utf8.h"
#include "ws.h"

static void q_queued(struct conn *c) {}
static void q_overflow(struct conn *c) {}
static void q_close(struct conn *c, uint16_t code, const char *reason) {}
static const struct hub_callbacks hub_cb = {q_queued, q_overflow, q_close};

static struct {
    int count;
    int binary;
    size_t len;
    char data[70000];
} got;

static void on_message(struct conn *c, int binary, const uint8_t *data, size_t len)
{
    got.count++;
    got.binary = binary;
    got.len = len;
    memcpy(got.data, data, len < sizeof got.data ? len : sizeof got.data);
}

static const struct ws_handlers handlers = {on_message};

/* A masked client frame. */
static size_t client_frame(uint8_t *out, int fin, int opcode, const void *payload, size_t len,
                           int masked)
{
    static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    size_t n = 0;
    out[n++] = (uint8_t)((fin ? 0x80 : 0) | opcode);
    uint8_t m = masked ? 0x80 : 0;
    if (len < 126) {
        out[n++] = m | (uint8_t)len;
    } else if (len <= 0xFFFF) {
        out[n++] = m | 126;
        out[n++] = (uint8_t)(len >> 8);
        out[n++] = (uint8_t)len;
    } else {
        out[n++] = m | 127;
        for (int i = 7; i >= 0; i--)
            out[n++] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    if (masked) {
        memcpy(out + n, key, 4);
        n += 4;
    }
    for (size_t i = 0; i < len; i++)
        out[n + i] = ((const uint8_t *)payload)[i] ^ (masked ? key[i % 4] : 0);
    return n + len;
}

static struct conn *setup(size_t max_message)
{
    hub_init(1 << 20, 0, &hub_cb);
    ws_init(max_message, &handlers);
    memset(&got, 0, sizeof got);
    return test_conn_open();
}

static void teardown(struct conn *c)
{
    ws_free(c);
    test_conn_close(c);
}

/* The close code in the last frame queued for c, or -1. */
static int queued_close_code(struct conn *c)
{
    if (!outq_count(&c->out))
        return -1;
    struct frame *f = outq_at(&c->out, outq_count(&c->out) - 1);
    if (f->len < 4 || f->data[0] != 0x88)
        return -1;
    return f->data[2] << 8 | f->data[3];
}

TEST(ws_text_message_and_idle_state_freed)
{
    struct conn *c = setup(1024);
    uint8_t buf[256];
    size_t n = client_frame(buf, 1, 1, "hello", 5, 1);
    CHECK_INT(ws_feed(c, buf, n), 0);
    CHECK_INT(got.count, 1);
    CHECK(got.len == 5 && memcmp(got.data, "hello", 5) == 0 && !got.binary);
    /* A whole message consumed: no framing state is kept for the idle connection. */
    CHECK(c->ws == NULL);
    CHECK_INT(ws_live, 0);
    teardown(c);
}

TEST(ws_split_and_fragmented_messages)
{
    struct conn *c = setup(1024);
    uint8_t buf[256];
    size_t n = client_frame(buf, 0, 1, "hel", 3, 1);
    n += client_frame(buf + n, 0, 0, "lo ", 3, 1);
    n += client_frame(buf + n, 1, 9, "p", 1, 1); /* a ping between fragments */
    n += client_frame(buf + n, 1, 0, "world", 5, 1);
    /* Byte by byte: the state must survive between reads, and is freed at the end. */
    for (size_t i = 0; i < n; i++) {
        CHECK_INT(ws_feed(c, buf + i, 1), 0);
        if (i + 1 < n)
            CHECK(c->ws != NULL);
    }
    CHECK_INT(got.count, 1);
    CHECK(got.len == 11 && memcmp(got.data, "hello world", 11) == 0);
    CHECK(c->ws == NULL);
    /* The ping was answered with a pong carrying its payload. */
    CHECK_INT(outq_count(&c->out), 1);
    struct frame *pong = outq_at(&c->out, 0);
    CHECK_INT(pong->len, 3);
    CHECK_INT(pong->data[0], 0x8a);
    CHECK_INT(pong->data[pong->len - 1], 'p');
    teardown(c);
}

TEST(ws_invalid_utf8_closes_1007)
{
    struct conn *c = setup(1024);
    uint8_t buf[64];
    size_t n = client_frame(buf, 1, 1, "ok\xc0\xaf", 4, 1);
    CHECK_INT(ws_feed(c, buf, n), 1007);
    CHECK_INT(got.count, 0);
    CHECK_INT(queued_close_code(c), 1007);
    teardown(c);
}

TEST(ws_too_big_closes_1009)
{
    struct conn *c = setup(1000);
    static uint8_t buf[2100], payload[2000];
    memset(payload, 'x', sizeof payload);
    size_t n = client_frame(buf, 1, 2, payload, 1001, 1);
    CHECK_INT(ws_feed(c, buf, n), 1009);
    CHECK_INT(got.count, 0);
    CHECK_INT(queued_close_code(c), 1009);
    teardown(c);

    /* The limit is on the message, not the frame: two fragments of 600 fail too. */
    c = setup(1000);
    n = client_frame(buf, 0, 2, payload, 600, 1);
    n += client_frame(buf + n, 1, 0, payload, 600, 1);
    CHECK_INT(ws_feed(c, buf, n), 1009);
    teardown(c);

    c = setup(1000);
    n = client_frame(buf, 1, 2, payload, 1000, 1);
    CHECK_INT(ws_feed(c, buf, n), 0);
    CHECK(got.count == 1 && got.binary && got.len == 1000);
    teardown(c);
}

TEST(ws_protocol_errors_close_1002)
{
    uint8_t buf[64];
    struct conn *c = setup(1024);
    size_t n = client_frame(buf, 1, 1, "hi", 2, 0); /* unmasked */
    CHECK_INT(ws_feed(c, buf, n), 1002);
    CHECK_INT(queued_close_code(c), 1002);
    teardown(c);

    c = setup(1024);
    n = client_frame(buf, 1, 3, "hi", 2, 1); /* reserved opcode */
    CHECK_INT(ws_feed(c, buf, n), 1002);
    teardown(c);

    c = setup(1024);
    n = client_frame(buf, 1, 0, "hi", 2, 1); /* continuation with nothing to continue */
    CHECK_INT(ws_feed(c, buf, n), 1002);
    teardown(c);
}

TEST(ws_peer_close_is_echoed)
{
    struct conn *c = setup(1024);
    uint8_t buf[64];
    const uint8_t body[] = {0x03, 0xe8, 'b', 'y', 'e'}; /* 1000 "bye" */
    size_t n = client_frame(buf, 1, 8, body, sizeof body, 1);
    CHECK_INT(ws_feed(c, buf, n), 1000);
    CHECK_INT(queued_close_code(c), 1000);
    teardown(c);
}

TEST(ws_violations_wslay_answers_badly_get_1002)
{
    static uint8_t buf[300], payload[200];
    memset(payload, 'p', sizeof payload);
    static const struct { const char *what; int fin, opcode; size_t len; int code; } cases[] = {
        {"fragmented ping", 0, 9, 2, 1002},
        {"ping over 125 bytes", 1, 9, 126, 1002},
        {"one-byte close payload", 1, 8, 1, 1002},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct conn *c = setup(1024);
        size_t n = client_frame(buf, cases[i].fin, cases[i].opcode, payload, cases[i].len, 1);
        int rc = ws_feed(c, buf, n);
        if (rc != cases[i].code || queued_close_code(c) != cases[i].code) {
            printf("    %s: feed %d, queued close %d\n", cases[i].what, rc, queued_close_code(c));
            test_failed_checks++;
        }
        /* Only our close frame is queued: no pong, no echo of the bad close. */
        CHECK_INT(outq_count(&c->out), 1);
        teardown(c);
    }

    struct conn *c = setup(1024);
    const uint8_t bad_code[] = {0x03, 0xed}; /* 1005 may never be sent */
    size_t n = client_frame(buf, 1, 8, bad_code, 2, 1);
    CHECK_INT(ws_feed(c, buf, n), 1002);
    teardown(c);

    /* A header announcing a huge message is refused with its first payload byte, long before
     * the payload could be buffered. */
    c = setup(1024);
    const uint8_t header[] = {0x82, 0xff, 0, 0, 0x01, 0, 0, 0, 0, 0, 1, 2, 3, 4, 'x'};
    CHECK_INT(ws_feed(c, header, sizeof header), 1009);
    CHECK_INT(queued_close_code(c), 1009);
    teardown(c);
}

/* ---- memory, control frames and close reasons (issue 7) ---------------------------------- */

/* Bytes of heap in use, from the allocator that is really in use. */
#if defined(__SANITIZE_ADDRESS__)
#define ASAN_HEAP 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ASAN_HEAP 1
#endif
#endif
#ifdef ASAN_HEAP
/* From ASan's runtime (sanitizer/allocator_interface.h, which gcc does not ship). */
size_t __sanitizer_get_current_allocated_bytes(void);
static size_t heap_in_use(void)
{
    return __sanitizer_get_current_allocated_bytes();
}
#else
#include <malloc.h>
static size_t heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}
#endif

/* The i-th frame queued for c (from the front), or NULL. */
static struct frame *queued(struct conn *c, uint32_t i)
{
    if (i >= outq_count(&c->out))
        return NULL;
    return outq_at(&c->out, i);
}

TEST(ws_unfinished_fragments_cost_at_most_the_message_limit)
{
    /* 65,000 one-byte fragments of a message that never ends: wslay kept each as its own
     * allocation (6.1 MB for a 64 KB limit); reassembled in one buffer it is the bytes. */
    enum { FRAGMENTS = 65000 };
    struct conn *c = setup(65536);
    static uint8_t buf[FRAGMENTS * 7];
    size_t n = client_frame(buf, 0, 1, "a", 1, 1);
    for (int i = 1; i < FRAGMENTS; i++)
        n += client_frame(buf + n, 0, 0, "a", 1, 1);
    size_t before = heap_in_use();
    for (size_t off = 0; off < n; off += 65536) /* in reads of 64 KB, as the server reads */
        CHECK_INT(ws_feed(c, buf + off, n - off < 65536 ? n - off : 65536), 0);
    size_t grown = heap_in_use() - before;
    CHECK(c->ws != NULL);
    CHECK_INT(got.count, 0);
    /* The message so far (65,000 bytes, in a buffer of at most 64 KB) and wslay's context. */
    if (grown > 65536 + 32768) {
        printf("    heap grew by %zu bytes for a 65,000-byte unfinished message\n", grown);
        test_failed_checks++;
    }
    /* The last fragment completes it. */
    n = client_frame(buf, 1, 0, "b", 1, 1);
    CHECK_INT(ws_feed(c, buf, n), 0);
    CHECK(got.count == 1 && got.len == FRAGMENTS + 1 && got.data[FRAGMENTS] == 'b');
    CHECK(c->ws == NULL);
    teardown(c);
}

TEST(ws_pings_keep_one_pong_waiting)
{
    /* A peer that sends pings and never reads: an unsent pong is replaced by the newest one,
     * whose payload it carries (RFC 6455 5.5.3), in one read or across reads. */
    struct conn *c = setup(1024);
    static uint8_t buf[1000 * 10];
    size_t n = 0;
    for (int i = 0; i < 1000; i++) {
        char p[12];
        snprintf(p, sizeof p, "%03d", i % 1000);
        n += client_frame(buf + n, 1, 9, p, 3, 1);
    }
    CHECK_INT(ws_feed(c, buf, n / 2), 0);
    CHECK_INT(ws_feed(c, buf + n / 2, n - n / 2), 0);
    CHECK_INT(outq_count(&c->out), 1);
    struct frame *pong = queued(c, 0);
    CHECK(pong && pong->len == 5 && pong->data[0] == 0x8a && memcmp(pong->data + 2, "999", 3) == 0);

    /* Once a pong is on the wire, the next one queues behind it (and replaces no more). */
    outq_consume(&c->out, 1);
    n = client_frame(buf, 1, 9, "new", 3, 1);
    CHECK_INT(ws_feed(c, buf, n), 0);
    CHECK_INT(outq_count(&c->out), 2);
    CHECK(memcmp(queued(c, 1)->data + 2, "new", 3) == 0);
    teardown(c);
}

/* The message handler of the ordering test: replies at once, as an echo script does. */
static void reply_at_once(struct conn *c, int binary, const uint8_t *data, size_t len)
{
    on_message(c, binary, data, len);
    struct frame *f = frame_ws(FRAME_TEXT, data, len);
    hub_send(c, f);
    frame_unref(f);
}

TEST(ws_pong_goes_before_the_reply_to_the_interrupted_message)
{
    static const struct ws_handlers echo = {reply_at_once};
    struct conn *c = setup(1024);
    ws_init(1024, &echo);
    uint8_t buf[64];
    size_t n = client_frame(buf, 0, 1, "ab", 2, 1);
    n += client_frame(buf + n, 1, 9, "p", 1, 1);
    n += client_frame(buf + n, 1, 0, "cd", 2, 1);
    CHECK_INT(ws_feed(c, buf, n), 0); /* all three frames in one read */
    CHECK_INT(outq_count(&c->out), 2);
    CHECK(queued(c, 0) && queued(c, 0)->data[0] == 0x8a);           /* pong "p" */
    CHECK(queued(c, 1) && queued(c, 1)->data[0] == 0x81 &&
          memcmp(queued(c, 1)->data + 2, "abcd", 4) == 0);           /* then the echo */
    teardown(c);
}

/* Payload of the last close frame queued for c (after the code), length in *len; NULL if the
 * last frame is not a close. */
static const uint8_t *queued_close_reason(struct conn *c, size_t *len)
{
    struct frame *f = queued(c, outq_count(&c->out) ? outq_count(&c->out) - 1 : 0);
    if (!f || f->data[0] != 0x88 || f->len < 4)
        return NULL;
    *len = f->len - 4;
    return f->data + 4;
}

TEST(ws_close_reason_checked_whatever_the_reads)
{
    /* A close with a reason split between two reads at every possible point: an invalid
     * reason is 1007 (never echoed), a valid one (a character cut by the split) is echoed. */
    static const struct { const char *what; const char *reason; int code; } cases[] = {
        {"invalid", "bye \xff\xfe bye", 1007},
        {"overlong", "\xc0\xaf!", 1007},
        {"valid", "caf\xc3\xa9 \xe2\x82\xac", 1000},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        uint8_t body[64], buf[80];
        size_t rlen = strlen(cases[k].reason);
        body[0] = 0x03;
        body[1] = 0xe8;
        memcpy(body + 2, cases[k].reason, rlen);
        size_t n = client_frame(buf, 1, 8, body, rlen + 2, 1);
        for (size_t split = 1; split < n; split++) {
            struct conn *c = setup(1024);
            int rc = ws_feed(c, buf, split);
            if (rc == 0)
                rc = ws_feed(c, buf + split, n - split);
            size_t len = 0;
            const uint8_t *reason = queued_close_reason(c, &len);
            if (rc != cases[k].code || queued_close_code(c) != cases[k].code || !reason ||
                !utf8_valid(reason, len)) {
                printf("    %s reason split at %zu: feed %d, queued close %d\n", cases[k].what,
                       split, rc, queued_close_code(c));
                test_failed_checks++;
            }
            teardown(c);
        }
    }
}

TEST(ws_close_frames_carry_valid_utf8_within_123_bytes)
{
    /* Reasons from the script or the core: cut at a character boundary within 123 bytes, and
     * before any byte that is not UTF-8. */
    char reason[400];
    reason[0] = '\0';
    for (int i = 0; i < 100; i++)
        strcat(reason, "\xc3\xa9"); /* 200 bytes of 'é' */
    struct frame *f = frame_ws_close(4000, reason);
    CHECK(f && f->data[0] == 0x88);
    size_t len = f->data[1];
    CHECK_INT(len, 2 + 122); /* 61 characters: the 62nd would end past 123 */
    CHECK(utf8_valid(f->data + 4, len - 2));
    frame_unref(f);

    strcpy(reason, "x\xf0\x9f\x98\x80"); /* 'x' and a 4-byte character across byte 123 */
    char longer[200];
    memset(longer, 'a', 120);
    strcpy(longer + 120, reason);
    f = frame_ws_close(4000, longer);
    CHECK_INT(f->data[1], 2 + 121);
    frame_unref(f);

    f = frame_ws_close(4001, "ok\xff\xfe and more");
    CHECK(f->data[1] == 4 && memcmp(f->data + 4, "ok", 2) == 0);
    frame_unref(f);
}

TEST(ws_length_with_top_bit_or_not_minimal_is_1002)
{
    static const uint8_t cases[][15] = {
        /* 64-bit length with the most significant bit set (RFC 6455 5.2) */
        {0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4, 'x'},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct conn *c = setup(1024);
        CHECK_INT(ws_feed(c, cases[i], sizeof cases[i]), 1002);
        CHECK_INT(queued_close_code(c), 1002);
        teardown(c);
    }
}

TEST(ws_nothing_after_the_close_is_delivered_or_answered)
{
    /* Pipelined behind the peer's close: a message and a ping. Neither is delivered nor
     * answered; only the close echo is queued. */
    struct conn *c = setup(1024);
    uint8_t buf[64];
    const uint8_t body[] = {0x03, 0xe8};
    size_t n = client_frame(buf, 1, 8, body, 2, 1);
    n += client_frame(buf + n, 1, 1, "late", 4, 1);
    n += client_frame(buf + n, 1, 9, "p", 1, 1);
    CHECK_INT(ws_feed(c, buf, n), 1000);
    CHECK_INT(got.count, 0);
    CHECK_INT(outq_count(&c->out), 1);
    CHECK_INT(queued_close_code(c), 1000);
    teardown(c);

    /* The server closed it (a script's confab.close): pings are no longer answered. */
    c = setup(1024);
    c->flags |= CONN_CLOSE_SENT;
    n = client_frame(buf, 1, 9, "p", 1, 1);
    ws_feed(c, buf, n);
    CHECK_INT(outq_count(&c->out), 0);
    teardown(c);
}

TEST(ws_one_feed_dispatches_a_bounded_number_of_messages)
{
    /* 1,000 one-byte messages in one read: each feed dispatches WS_MESSAGES_PER_FEED, keeps the
     * rest, and the next feeds (no new bytes) go on from there, in order. */
    enum { MESSAGES = 1000 };
    struct conn *c = setup(1024);
    static uint8_t buf[MESSAGES * 7 + 64];
    size_t n = 0;
    for (int i = 0; i < MESSAGES - 1; i++)
        n += client_frame(buf + n, 1, 2, (uint8_t[]){(uint8_t)i}, 1, 1);
    n += client_frame(buf + n, 0, 1, "la", 2, 1); /* the last one in two fragments */
    size_t tail = client_frame(buf + n, 1, 0, "st", 2, 1);
    CHECK_INT(ws_feed(c, buf, n), 0);
    CHECK_INT(got.count, WS_MESSAGES_PER_FEED);
    CHECK(ws_held(c));
    CHECK(got.len == 1 && (uint8_t)got.data[0] == WS_MESSAGES_PER_FEED - 1);
    /* Bytes that arrive meanwhile join the held ones, behind them. */
    CHECK_INT(ws_feed(c, buf + n, tail), 0);
    CHECK_INT(got.count, 2 * WS_MESSAGES_PER_FEED);
    int feeds = 2;
    while (ws_held(c) && feeds < 100) {
        int before = got.count;
        CHECK_INT(ws_feed(c, NULL, 0), 0);
        CHECK(got.count - before <= WS_MESSAGES_PER_FEED);
        feeds++;
    }
    CHECK_INT(got.count, MESSAGES);
    CHECK_INT(feeds, (MESSAGES + WS_MESSAGES_PER_FEED - 1) / WS_MESSAGES_PER_FEED);
    CHECK(got.len == 4 && memcmp(got.data, "last", 4) == 0);
    CHECK(c->ws == NULL); /* all consumed: nothing kept */

    /* A close among them: what follows it is dropped, nothing is held. */
    n = 0;
    for (int i = 0; i < 300; i++)
        n += client_frame(buf + n, 1, 2, "x", 1, 1);
    const uint8_t body[] = {0x03, 0xe8};
    size_t at = n;
    n += client_frame(buf + n, 1, 8, body, 2, 1);
    for (int i = 0; i < 300; i++)
        n += client_frame(buf + n, 1, 2, "y", 1, 1);
    got.count = 0;
    CHECK_INT(ws_feed(c, buf, at), 0);
    CHECK(ws_held(c));
    CHECK_INT(ws_feed(c, buf + at, n - at), 1000); /* appended: 44 more, then the close */
    CHECK_INT(got.count, 300);
    CHECK(!ws_held(c));
    teardown(c);
}

TEST(ws_message_memory_is_shared_and_bounded)
{
    /* Room for one connection's state and 8 KB of message: a second connection with a message
     * in progress, or the first growing past 8 KB, is closed with 1013 (try again later). */
    struct conn *a = setup(65536), *b = test_conn_open();
    ws_set_memory_limit(WS_STATE_COST + 8192);
    static uint8_t buf[20000], payload[16384];
    memset(payload, 'm', sizeof payload);
    size_t n = client_frame(buf, 0, 1, payload, 6000, 1); /* unfinished */
    CHECK_INT(ws_feed(a, buf, n), 0);
    CHECK(ws_memory >= WS_STATE_COST + 6000 && ws_memory <= WS_STATE_COST + 8192);
    CHECK_INT(ws_feed(b, buf, 1), 1013);
    CHECK_INT(queued_close_code(b), 1013);
    CHECK(b->ws == NULL);
    n = client_frame(buf, 0, 0, payload, 3000, 1);
    CHECK_INT(ws_feed(a, buf, n), 1013);
    CHECK_INT(queued_close_code(a), 1013);
    ws_free(a);
    CHECK_INT(ws_memory, 0);
    ws_set_memory_limit(SIZE_MAX);
    /* Without the limit, the same goes through. */
    ws_free(b);
    test_conn_close(b);
    teardown(a);
    a = setup(65536);
    n = client_frame(buf, 0, 1, payload, 6000, 1);
    n += client_frame(buf + n, 1, 0, payload, 3000, 1);
    CHECK_INT(ws_feed(a, buf, n), 0);
    CHECK(got.count == 1 && got.len == 9000);
    CHECK_INT(ws_memory, 0);
    teardown(a);
}

TEST(ws_state_cost_covers_the_real_allocation)
{
    /* What --message-memory charges per connection covers what the state really takes. */
    struct conn *c = setup(1024);
    size_t before = heap_in_use();
    uint8_t byte = 0x81;
    CHECK_INT(ws_feed(c, &byte, 1), 0); /* half a header: the state stays */
    size_t taken = heap_in_use() - before;
    CHECK(c->ws != NULL);
    if (taken > WS_STATE_COST) {
        printf("    framing state takes %zu bytes, charged %d\n", taken, WS_STATE_COST);
        test_failed_checks++;
    }
    teardown(c);
}
