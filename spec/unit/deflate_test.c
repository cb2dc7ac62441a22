/* permessage-deflate without sockets: compressed client messages in (whole, fragmented, a bomb,
 * corrupt, misplaced RSV1), and compressed broadcasts out (built once per window size, shared). */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "deflate.h"
#include "hub.h"
#include "inflate.h"
#include "outmsg.h"
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

/* A masked client frame with the given RSV bits (RSV1 = 4). */
static size_t frame_rsv(uint8_t *out, int fin, int rsv, int opcode, const void *payload,
                        size_t len)
{
    static const uint8_t key[4] = {0x11, 0x22, 0x33, 0x44};
    size_t n = 0;
    out[n++] = (uint8_t)((fin ? 0x80 : 0) | rsv << 4 | opcode);
    if (len < 126) {
        out[n++] = 0x80 | (uint8_t)len;
    } else if (len <= 0xFFFF) {
        out[n++] = 0x80 | 126;
        out[n++] = (uint8_t)(len >> 8);
        out[n++] = (uint8_t)len;
    } else {
        out[n++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            out[n++] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    memcpy(out + n, key, 4);
    n += 4;
    for (size_t i = 0; i < len; i++)
        out[n + i] = ((const uint8_t *)payload)[i] ^ key[i % 4];
    return n + len;
}

/* data compressed as a permessage-deflate sender does (raw deflate, sync flush, the final
 * 00 00 ff ff removed). Returns the length. */
static size_t compress_msg(uint8_t *out, size_t cap, const void *data, size_t len)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    deflateInit2(&z, 9, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
    z.next_in = (Bytef *)data;
    z.avail_in = (uInt)len;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    deflate(&z, Z_SYNC_FLUSH);
    size_t n = cap - z.avail_out;
    deflateEnd(&z);
    return n - 4;
}

/* The payload of a server frame inflated (a client's view). Returns its length. */
static size_t inflate_payload(const struct frame *f, uint8_t *out, size_t cap)
{
    size_t hl = (f->data[1] & 0x7f) == 126 ? 4 : (f->data[1] & 0x7f) == 127 ? 10 : 2;
    uint8_t in[70000];
    size_t n = f->len - hl;
    memcpy(in, f->data + hl, n);
    memcpy(in + n, "\0\0\xff\xff", 4);
    z_stream z;
    memset(&z, 0, sizeof z);
    inflateInit2(&z, -15);
    z.next_in = in;
    z.avail_in = (uInt)(n + 4);
    z.next_out = out;
    z.avail_out = (uInt)cap;
    inflate(&z, Z_SYNC_FLUSH);
    size_t made = cap - z.avail_out;
    inflateEnd(&z);
    return made;
}

static struct conn *setup(size_t max_message, int bits)
{
    hub_init(1 << 20, 0, &hub_cb);
    ws_init(max_message, &handlers);
    memset(&got, 0, sizeof got);
    struct conn *c = test_conn_open();
    c->deflate_bits = (uint8_t)bits;
    return c;
}

static void teardown(struct conn *c)
{
    ws_free(c);
    test_conn_close(c);
}

static int queued_close_code(struct conn *c)
{
    if (!outq_count(&c->out))
        return -1;
    struct frame *f = outq_at(&c->out, outq_count(&c->out) - 1);
    if (f->len < 4 || f->data[0] != 0x88)
        return -1;
    return f->data[2] << 8 | f->data[3];
}

static const char chat[] = "{\"type\":\"message\",\"room\":\"lobby\",\"from\":\"alice\","
                           "\"text\":\"hello hello hello, is anybody there? hello?\"}";

TEST(deflate_compressed_message_is_inflated_and_state_freed)
{
    struct conn *c = setup(1024, 15);
    uint8_t z[256], buf[300];
    size_t zn = compress_msg(z, sizeof z, chat, strlen(chat));
    CHECK(zn < strlen(chat));
    size_t n = frame_rsv(buf, 1, 4, 1, z, zn);
    n += frame_rsv(buf + n, 1, 0, 1, "plain", 5); /* a plain one after it is fine too */
    CHECK_INT(ws_feed(c, buf, n), 0);
    CHECK_INT(got.count, 2);
    CHECK(c->ws == NULL); /* inflater and all: nothing kept while idle */
    CHECK_INT(ws_live, 0);
    CHECK_INT(ws_memory, 0);
    /* First message, byte by byte: the inflater lives as long as the message is in progress. */
    memset(&got, 0, sizeof got);
    n = frame_rsv(buf, 1, 4, 1, z, zn);
    for (size_t i = 0; i < n; i++)
        CHECK_INT(ws_feed(c, buf + i, 1), 0);
    CHECK(got.count == 1 && got.len == strlen(chat) && memcmp(got.data, chat, got.len) == 0);
    CHECK_INT(ws_memory, 0);
    teardown(c);
}

TEST(deflate_fragmented_compressed_message)
{
    struct conn *c = setup(70000, 15);
    static uint8_t text[60000], z[70000], buf[70100];
    for (size_t i = 0; i < sizeof text; i++)
        text[i] = (uint8_t)('a' + (i * 7 + i / 13) % 26);
    size_t zn = compress_msg(z, sizeof z, text, sizeof text);
    /* RSV1 on the first frame only (RFC 7692 6.1); a ping in between. */
    size_t a = zn / 3, b = zn / 3;
    size_t n = frame_rsv(buf, 0, 4, 2, z, a);
    n += frame_rsv(buf + n, 1, 0, 9, "p", 1);
    n += frame_rsv(buf + n, 0, 0, 0, z + a, b);
    n += frame_rsv(buf + n, 1, 0, 0, z + a + b, zn - a - b);
    CHECK_INT(ws_feed(c, buf, n), 0);
    CHECK(got.count == 1 && got.binary && got.len == sizeof text &&
          memcmp(got.data, text, sizeof text) == 0);
    teardown(c);
}

TEST(deflate_bomb_closes_1009_at_the_limit)
{
    /* 8 MB of zeros compress to 8 KB; the limit is 64 KB. */
    struct conn *c = setup(65536, 15);
    size_t big = 8 << 20;
    uint8_t *zeros = calloc(1, big), *z = malloc(big / 64), *buf = malloc(big / 64 + 16);
    size_t zn = compress_msg(z, big / 64, zeros, big);
    CHECK(zn < 10000);
    size_t n = frame_rsv(buf, 1, 4, 2, z, zn);
    CHECK_INT(ws_feed(c, buf, n), 1009);
    CHECK_INT(got.count, 0);
    CHECK_INT(queued_close_code(c), 1009);
    /* What it took: the message buffer up to the limit, never more. */
    CHECK(ws_memory <= WS_STATE_COST + INFLATE_COST + 65536);
    teardown(c);
    CHECK_INT(ws_memory, 0);

    /* Exactly at the limit it passes. */
    c = setup(65536, 15);
    zn = compress_msg(z, big / 64, zeros, 65536);
    n = frame_rsv(buf, 1, 4, 2, z, zn);
    CHECK_INT(ws_feed(c, buf, n), 0);
    CHECK(got.count == 1 && got.len == 65536);
    teardown(c);
    c = setup(65536, 15);
    zn = compress_msg(z, big / 64, zeros, 65537);
    n = frame_rsv(buf, 1, 4, 2, z, zn);
    CHECK_INT(ws_feed(c, buf, n), 1009);
    teardown(c);
    free(zeros);
    free(z);
    free(buf);
}

TEST(deflate_corrupt_data_closes_1007)
{
    struct conn *c = setup(1024, 15);
    uint8_t buf[64];
    static const uint8_t bad[] = {0xff, 0xff, 0xff, 0xff, 0x00}; /* block type 3: invalid */
    size_t n = frame_rsv(buf, 1, 4, 1, bad, sizeof bad);
    CHECK_INT(ws_feed(c, buf, n), 1007);
    CHECK_INT(queued_close_code(c), 1007);
    CHECK_INT(got.count, 0);
    teardown(c);

    /* Good deflate data of invalid UTF-8 in a text message: 1007 after inflating. */
    c = setup(1024, 15);
    uint8_t z[64];
    size_t zn = compress_msg(z, sizeof z, "ok\xc0\xaf", 4);
    n = frame_rsv(buf, 1, 4, 1, z, zn);
    CHECK_INT(ws_feed(c, buf, n), 1007);
    CHECK_INT(got.count, 0);
    teardown(c);
}

TEST(deflate_misplaced_rsv1_closes_1002)
{
    uint8_t buf[64], z[64];
    size_t zn = compress_msg(z, sizeof z, "hi", 2);
    /* Not negotiated. */
    struct conn *c = setup(1024, 0);
    size_t n = frame_rsv(buf, 1, 4, 1, z, zn);
    CHECK_INT(ws_feed(c, buf, n), 1002);
    teardown(c);
    /* On a control frame. */
    c = setup(1024, 15);
    n = frame_rsv(buf, 1, 4, 9, "p", 1);
    CHECK_INT(ws_feed(c, buf, n), 1002);
    teardown(c);
    /* On a continuation frame. */
    c = setup(1024, 15);
    n = frame_rsv(buf, 0, 4, 1, z, 1);
    n += frame_rsv(buf + n, 1, 4, 0, z + 1, zn - 1);
    CHECK_INT(ws_feed(c, buf, n), 1002);
    CHECK_INT(got.count, 0);
    teardown(c);
    /* RSV2 and RSV3 stay refused. */
    c = setup(1024, 15);
    n = frame_rsv(buf, 1, 2, 1, "hi", 2);
    CHECK_INT(ws_feed(c, buf, n), 1002);
    teardown(c);
}

TEST(deflate_broadcast_compresses_once_per_window_and_shares_frames)
{
    hub_init(1 << 20, 10, &hub_cb);
    deflate_set_min(16);
    int bits[6] = {15, 15, 0, 15, 10, 0};
    struct conn *m[6];
    for (int i = 0; i < 6; i++) {
        m[i] = test_conn_open();
        m[i]->deflate_bits = (uint8_t)bits[i];
        hub_join(m[i], "r", 1);
    }
    size_t runs = deflate_runs, live = frame_live;
    struct outmsg msg;
    outmsg_init(&msg, FRAME_TEXT, chat, strlen(chat));
    CHECK_INT(hub_broadcast_msg(hub_room("r", 1), &msg, NULL), 6);
    /* Two compressions (windows 15 and 10), one plain frame: three frames for six members. */
    CHECK_INT(deflate_runs - runs, 2);
    CHECK_INT(frame_live - live, 3);
    struct frame *f[6];
    for (int i = 0; i < 6; i++)
        f[i] = outq_at(&m[i]->out, 0);
    CHECK(f[0] == f[1] && f[1] == f[3] && f[2] == f[5] && f[4] != f[0] && f[2] != f[0]);
    CHECK_INT(f[0]->data[0], 0xc1); /* FIN, RSV1, text */
    CHECK_INT(f[4]->data[0], 0xc1);
    CHECK_INT(f[2]->data[0], 0x81);
    CHECK(f[0]->len < f[2]->len);
    /* Each decodes to the same text. */
    uint8_t out[1024];
    for (int i = 0; i < 6; i += 4) {
        size_t n = inflate_payload(f[i], out, sizeof out);
        CHECK(n == strlen(chat) && memcmp(out, chat, n) == 0);
    }
    CHECK(memcmp(f[2]->data + 2, chat, strlen(chat)) == 0);
    outmsg_release(&msg);

    /* A room where nobody has deflate: no compression at all. */
    runs = deflate_runs;
    hub_leave(m[0], "r", 1);
    hub_leave(m[1], "r", 1);
    hub_leave(m[3], "r", 1);
    hub_leave(m[4], "r", 1);
    outmsg_init(&msg, FRAME_TEXT, chat, strlen(chat));
    CHECK_INT(hub_broadcast_msg(hub_room("r", 1), &msg, NULL), 2);
    CHECK_INT(deflate_runs, runs);
    outmsg_release(&msg);

    /* Shorter than --deflate-min, or not made smaller: plain for everyone. */
    outmsg_init(&msg, FRAME_TEXT, "short message", 13);
    CHECK(outmsg_frame(&msg, m[0]) == outmsg_frame(&msg, m[2]));
    outmsg_release(&msg);
    static const char noise[] = "q8Zr!xP2@kL0#vB7$mN4%tY1^wE6&uI3*oA5(sD9)fG";
    outmsg_init(&msg, FRAME_TEXT, noise, strlen(noise));
    CHECK(outmsg_frame(&msg, m[0]) == outmsg_frame(&msg, m[2]));
    CHECK_INT(outmsg_frame(&msg, m[0])->data[0], 0x81);
    outmsg_release(&msg);

    for (int i = 0; i < 6; i++)
        test_conn_close(m[i]);
    CHECK_INT(frame_live, live);
    deflate_set_min(DEFLATE_MIN_DEFAULT);
}

TEST(deflate_inflater_is_charged_to_message_memory)
{
    /* Room for the framing state, not for an inflater: a compressed message is refused with
     * 1013, even an empty one (no payload bytes: the inflater is asked for at its end). */
    struct conn *c = setup(1024, 15);
    ws_set_memory_limit(WS_STATE_COST + 4096);
    uint8_t buf[64], z[64];
    size_t n = frame_rsv(buf, 1, 4, 1, "", 0);
    CHECK_INT(ws_feed(c, buf, n), 1013);
    CHECK_INT(got.count, 0);
    teardown(c);
    c = setup(1024, 15);
    size_t zn = compress_msg(z, sizeof z, "hello", 5);
    n = frame_rsv(buf, 1, 4, 1, z, zn);
    CHECK_INT(ws_feed(c, buf, n), 1013);
    teardown(c);
    CHECK_INT(ws_memory, 0);
    /* With room for it, the empty compressed message is an empty message. */
    ws_set_memory_limit(WS_STATE_COST + INFLATE_COST + 4096);
    c = setup(1024, 15);
    n = frame_rsv(buf, 1, 4, 1, "", 0);
    CHECK_INT(ws_feed(c, buf, n), 0);
    CHECK(got.count == 1 && got.len == 0);
    teardown(c);
    ws_set_memory_limit(SIZE_MAX);
    CHECK_INT(ws_memory, 0);
}
