/* Framing without sockets: scripted client frames in, messages and queued frames out. */
#include <stdlib.h>
#include <string.h>

#include "hub.h"
#include "test.h"
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
    if (!c->out.count)
        return -1;
    struct frame *f = c->out.items[(c->out.head + c->out.count - 1) & (c->out.cap - 1)];
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
    CHECK_INT(c->out.count, 1);
    struct frame *pong = c->out.items[c->out.head];
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
        CHECK_INT(c->out.count, 1);
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
