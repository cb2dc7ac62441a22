/* fuzz_chat: scripts/chat.lua (or $CONFAB_FUZZ_SCRIPT) through the real script runtime, hub and
 * framing, with up to four fake connections. A fresh state is loaded for every input, so an input
 * replays the same way (but for the clock).
 *
 * Input: lines, each one step. The first byte says what, the second which connection (0-3); a
 * connection opens (through the connect hook) on its first message.
 *   0-3 TEXT             a text frame with TEXT from connection 0-3 (the digit is the first byte)
 *   b D BYTES            a binary frame
 *   f D BYTES            raw client bytes (frames of the fuzzer's own making) into the framing
 *   h D NAME [\t JSON]   {"type":"hello","name":NAME} (with "resume":JSON when given)
 *   k D NAME \t KEY      {"type":"hello","name":NAME,"key":KEY} (a returning user)
 *   j/l/w/t D ROOM       join, leave, who, typing
 *   s/m D ROOM \t TEXT   say, me
 *   n D NAME             nick
 *   d D TO \t TEXT       dm
 *   r D                  rooms
 *   x D                  the peer closes (1000)
 *   R                    the script is reloaded (its reload hook runs), at most twice an input
 * Strings in the JSON shapes are escaped for quotes, backslashes and control bytes only, so bytes
 * that are not UTF-8 get through to the framing (which answers 1007).
 *
 * FUZZ_VERBOSE=1 prints every frame queued (to see how deep an input gets).
 *
 * After every step comes a safe point like the server's: connections the script or the framing
 * closed are reported to the disconnect hook and freed; then the checks, and every queue is read
 * (cleared), as by a fast peer. Checks, besides the sanitizers and the leak checker:
 *   - every frame queued is a well-formed server frame (fuzz_common.c) and, with chat.lua, every
 *     text frame is one JSON object (a validator of our own: chat.lua splices some by hand);
 *   - names are unique (ASCII case folded: chat.lua folds more than that), valid UTF-8, and
 *     every connection in a room has one; nobody is in more than 32 rooms;
 *   - a members list names nobody twice (ASCII case folded), users in their leave grace included;
 *   - the hub's connections are exactly the open fake ones;
 *   - at the end, after every peer left: no connection, no room with members, no frame, no
 *     framing state; the hub and the state are then freed (the leak checker sees the rest). */
#include <arpa/inet.h>
#include <ev.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "frame.h"
#include "fuzz_common.h"
#include "http.h"
#include "hub.h"
#include "log.h"
#include "script.h"
#include "ws.h"

#ifndef CHAT_SCRIPT
#define CHAT_SCRIPT "scripts/chat.lua"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define SLOTS 4
#define MAX_MESSAGE 65536
#define QUEUE_LIMIT (1 << 20)
#define HISTORY 50
#define ROOMS_PER_USER 32

static const char *script;
static int is_chat; /* the default chat: its text frames are all JSON objects */
static struct ev_loop *loop;
static struct conn *slot[SLOTS];
static struct conn *closing[64]; /* closed by the script or the framing: freed at the safe point */
static size_t n_closing;

/* ---- a JSON validator (RFC 8259), for the chat's frames ------------------------------- */

static const char *json_value(const char *p, const char *end, int depth);

static const char *json_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

static const char *json_string(const char *p, const char *end)
{
    if (p >= end || *p != '"')
        return NULL;
    for (p++; p < end; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '"')
            return p + 1;
        if (ch < 0x20)
            return NULL;
        if (ch == '\\') {
            if (++p >= end)
                return NULL;
            if (*p == 'u') {
                for (int i = 0; i < 4; i++)
                    if (++p >= end || !strchr("0123456789abcdefABCDEF", *p) || !*p)
                        return NULL;
            } else if (!strchr("\"\\/bfnrt", *p) || !*p) {
                return NULL;
            }
        }
    }
    return NULL;
}

static const char *json_number(const char *p, const char *end)
{
    const char *start = p;
    if (p < end && *p == '-')
        p++;
    if (p < end && *p == '0')
        p++;
    else if (p < end && *p >= '1' && *p <= '9')
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    else
        return NULL;
    if (p < end && *p == '.') {
        if (++p >= end || *p < '0' || *p > '9')
            return NULL;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (p >= end || *p < '0' || *p > '9')
            return NULL;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    return p > start ? p : NULL;
}

static const char *json_value(const char *p, const char *end, int depth)
{
    if (depth > 64)
        return NULL;
    p = json_ws(p, end);
    if (p >= end)
        return NULL;
    if (*p == '{' || *p == '[') {
        char close = *p == '{' ? '}' : ']';
        int object = *p == '{';
        p = json_ws(p + 1, end);
        if (p < end && *p == close)
            return p + 1;
        for (;;) {
            if (object) {
                p = json_string(json_ws(p, end), end);
                if (!p)
                    return NULL;
                p = json_ws(p, end);
                if (p >= end || *p != ':')
                    return NULL;
                p++;
            }
            p = json_value(p, end, depth + 1);
            if (!p)
                return NULL;
            p = json_ws(p, end);
            if (p < end && *p == ',') {
                p++;
                continue;
            }
            return p < end && *p == close ? p + 1 : NULL;
        }
    }
    if (*p == '"')
        return json_string(p, end);
    if (end - p >= 4 && (memcmp(p, "true", 4) == 0 || memcmp(p, "null", 4) == 0))
        return p + 4;
    if (end - p >= 5 && memcmp(p, "false", 5) == 0)
        return p + 5;
    return json_number(p, end);
}

static int json_object(const uint8_t *s, size_t len)
{
    const char *p = (const char *)s, *end = p + len;
    p = json_ws(p, end);
    if (p >= end || *p != '{')
        return 0;
    p = json_value(p, end, 0);
    return p && json_ws(p, end) == end;
}

/* A members frame of chat.lua ({"type":"members","members":[NAME,...],...}, cjson's spelling:
 * no spaces; these bytes cannot occur inside a string) names nobody twice, ASCII case folded. */
static void check_members(const uint8_t *frame, size_t len)
{
    const char *s = (const char *)frame, *end = s + len;
    if (!memmem(s, len, "\"type\":\"members\"", 16))
        return;
    const char *list = memmem(s, len, "\"members\":[", 11);
    FUZZ_CHECK(list != NULL, "members frame without a list: %.*s", (int)(len < 300 ? len : 300), s);
    for (const char *a = list + 11; a < end && *a == '"';) {
        const char *a_end = json_string(a, end);
        FUZZ_CHECK(a_end != NULL, "members list is not strings: %.*s", (int)len, s);
        for (const char *b = a_end; b < end && (*b == ',' || *b == '"');) {
            if (*b == ',') {
                b++;
                continue;
            }
            const char *b_end = json_string(b, end);
            FUZZ_CHECK(b_end != NULL, "members list is not strings: %.*s", (int)len, s);
            FUZZ_CHECK(b_end - b != a_end - a || strncasecmp(a, b, (size_t)(a_end - a)) != 0,
                       "members list names %.*s twice: %.*s", (int)(a_end - a), a,
                       (int)(len < 300 ? len : 300), s);
            b = b_end;
        }
        a = a_end < end && *a_end == ',' ? a_end + 1 : a_end;
    }
}

/* ---- the core's callbacks, as the server answers them --------------------------------- */

/* The server's conn_close_ws: a close frame last, nothing after it, torn down later. */
static void close_conn(struct conn *c, uint16_t code, const char *reason)
{
    if (c->flags & CONN_CLOSE_SENT)
        return;
    struct frame *f = frame_ws_close(code, reason);
    FUZZ_CHECK(f != NULL, "no close frame for %u", code);
    FUZZ_CHECK(outq_push(&c->out, f) == 0, "no memory to queue a close");
    frame_unref(f);
    c->flags |= CONN_CLOSE_SENT;
    c->close_code = code;
    if (c->state == CONN_WS) {
        c->state = CONN_CLOSING;
        FUZZ_CHECK(n_closing < sizeof closing / sizeof *closing, "too many closing");
        closing[n_closing++] = c;
    }
}

static void on_queued(struct conn *c) {}

static void on_overflow(struct conn *c)
{
    outq_drop_unsent(&c->out);
    close_conn(c, 1008, "slow consumer: send queue full");
}

static void on_close(struct conn *c, uint16_t code, const char *reason)
{
    FUZZ_CHECK(hub_find(c->id) == c, "the script closed a connection the hub does not know");
    close_conn(c, code, reason);
}

static void on_message(struct conn *c, int binary, const uint8_t *p, size_t len)
{
    if (c->state == CONN_WS && !(c->flags & CONN_CLOSE_SENT))
        script_message(c, binary, p, len);
}

static const struct hub_callbacks hub_cb = {on_queued, on_overflow, on_close};
static const struct ws_handlers ws_cb = {on_message};

/* ---- fake connections --------------------------------------------------------------- */

static struct conn *open_conn(int i)
{
    if (slot[i])
        return slot[i];
    static const char head[] = "GET /ws?room=lobby HTTP/1.1\r\nHost: chat.test\r\n"
                               "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                               "Sec-WebSocket-Version: 13\r\nUser-Agent: fuzz\r\n\r\n";
    struct http_request req;
    const char *why;
    FUZZ_CHECK(http_parse_head(head, sizeof head - 1, 8192, &req, &why) == 1, "fixed head");
    struct conn *c = calloc(1, sizeof *c);
    c->fd = -1;
    c->state = CONN_WS;
    struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons(40000),
                               .sin_addr.s_addr = htonl(0x7f000001)};
    conn_peer_set(&c->peer, (struct sockaddr *)&peer);
    if (hub_add(c) < 0) {
        free(c);
        return NULL;
    }
    char reason[256];
    if (script_connect(c, &req, "", reason, sizeof reason) < 0) {
        hub_remove(c);
        free(c);
        return NULL;
    }
    c->flags |= CONN_OPENED;
    slot[i] = c;
    return c;
}

/* Reports and frees c (it must be in no list but its slot). */
static void free_conn(struct conn *c, uint16_t code)
{
    if (c->flags & CONN_OPENED) {
        c->flags &= (uint8_t)~CONN_OPENED;
        script_disconnect(c, code, "gone");
    }
    for (int i = 0; i < SLOTS; i++)
        if (slot[i] == c)
            slot[i] = NULL;
    ws_free(c);
    hub_remove(c);
    free(c);
}

static int slot_of(uint8_t ch)
{
    return ch >= '0' ? (ch - '0') & (SLOTS - 1) : ch & (SLOTS - 1);
}

/* A masked client frame with the payload, fed to the framing like a read. */
static void send_frame(int i, int opcode, const uint8_t *p, size_t len)
{
    struct conn *c = open_conn(i);
    if (!c || c->state != CONN_WS)
        return;
    uint8_t *buf = malloc(len + 14);
    static const uint8_t key[4] = {0x12, 0x9a, 0x5c, 0xe3};
    size_t n = 0;
    buf[n++] = (uint8_t)(0x80 | opcode);
    if (len < 126) {
        buf[n++] = (uint8_t)(0x80 | len);
    } else if (len <= 0xFFFF) {
        buf[n++] = 0x80 | 126;
        buf[n++] = (uint8_t)(len >> 8);
        buf[n++] = (uint8_t)len;
    } else {
        buf[n++] = 0x80 | 127;
        for (int b = 7; b >= 0; b--)
            buf[n++] = (uint8_t)((uint64_t)len >> (8 * b));
    }
    memcpy(buf + n, key, 4);
    n += 4;
    for (size_t k = 0; k < len; k++)
        buf[n + k] = p[k] ^ key[k & 3];
    int rc = ws_feed(c, buf, n + len);
    while (rc == 0 && ws_held(c)) /* the rest of a read past its budget: next passes */
        rc = ws_feed(c, NULL, 0);
    free(buf);
    if (rc != 0 && c->state == CONN_WS) {
        /* ws queued the close (a reply or its own); the server then tears the connection down. */
        c->flags |= CONN_CLOSE_SENT;
        c->state = CONN_CLOSING;
        c->close_code = rc > 0 ? (uint16_t)rc : 1011;
        closing[n_closing++] = c;
    }
}

static void send_raw(int i, const uint8_t *p, size_t len)
{
    struct conn *c = open_conn(i);
    if (!c || c->state != CONN_WS || !len)
        return;
    uint8_t *copy = malloc(len);
    memcpy(copy, p, len);
    int rc = ws_feed(c, copy, len);
    while (rc == 0 && ws_held(c))
        rc = ws_feed(c, NULL, 0);
    free(copy);
    if (rc != 0 && c->state == CONN_WS) {
        c->flags |= CONN_CLOSE_SENT;
        c->state = CONN_CLOSING;
        c->close_code = rc > 0 ? (uint16_t)rc : 1011;
        closing[n_closing++] = c;
    }
}

/* ---- JSON shapes ---------------------------------------------------------------------- */

struct buf {
    char *p;
    size_t len, cap;
};

static void put(struct buf *b, const char *s, size_t len)
{
    if (b->len + len + 1 > b->cap) {
        b->cap = (b->len + len + 1) * 2;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, s, len);
    b->len += len;
}

static void puts_(struct buf *b, const char *s) { put(b, s, strlen(s)); }

static void put_json_string(struct buf *b, const char *s, size_t len)
{
    put(b, "\"", 1);
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            char esc[2] = {'\\', (char)ch};
            put(b, esc, 2);
        } else if (ch < 0x20) {
            char esc[8];
            snprintf(esc, sizeof esc, "\\u%04x", ch);
            put(b, esc, 6);
        } else {
            put(b, (const char *)&ch, 1);
        }
    }
    put(b, "\"", 1);
}

/* {"type":TYPE,"K1":A1,"K2":A2} from the tab-separated args; "resume" (k2 of hello) is raw JSON. */
static void send_shape(int i, const char *type, const char *k1, const char *k2, const char *args,
                       size_t len)
{
    const char *tab = memchr(args, '\t', len);
    size_t l1 = tab ? (size_t)(tab - args) : len;
    struct buf b = {0};
    puts_(&b, "{\"type\":\"");
    puts_(&b, type);
    puts_(&b, "\"");
    if (k1) {
        puts_(&b, ",\"");
        puts_(&b, k1);
        puts_(&b, "\":");
        put_json_string(&b, args, l1);
    }
    if (k2 && tab) {
        puts_(&b, ",\"");
        puts_(&b, k2);
        puts_(&b, "\":");
        if (strcmp(k2, "resume") == 0)
            put(&b, tab + 1, len - l1 - 1);
        else
            put_json_string(&b, tab + 1, len - l1 - 1);
    }
    puts_(&b, "}");
    send_frame(i, 1, (const uint8_t *)b.p, b.len);
    free(b.p);
}

/* ---- checks ------------------------------------------------------------------------- */

static void check_conn(struct conn *c)
{
    int last;
    const struct outq *q = &c->out;
    fuzz_check_queue(c, &last);
    static int verbose = -1;
    if (verbose < 0)
        verbose = getenv("FUZZ_VERBOSE") != NULL;
    for (uint32_t k = 0; verbose && k < outq_count(q); k++) {
        const struct frame *f = outq_at(q, k);
        const uint8_t *p;
        size_t len;
        int op = fuzz_check_server_frame(f, &p, &len);
        fprintf(stderr, "  conn %llu <- %s %.*s\n", (unsigned long long)c->id,
                op == 1 ? "text" : op == 8 ? "close" : "frame", (int)(len < 200 ? len : 200),
                op == 1 ? (const char *)p : "");
    }
    if (is_chat)
        for (uint32_t k = 0; k < outq_count(q); k++) {
            const struct frame *f = outq_at(q, k);
            const uint8_t *p;
            size_t len;
            if (fuzz_check_server_frame(f, &p, &len) == 0x1) {
                FUZZ_CHECK(json_object(p, len), "chat.lua sent a text frame that is no JSON "
                           "object: %.*s", (int)(len < 300 ? len : 300), (const char *)p);
                check_members(p, len);
            }
        }
    FUZZ_CHECK(c->rooms_len <= ROOMS_PER_USER, "a connection is in %u rooms", c->rooms_len);
    const struct attr *name = hub_attr_get(c, "name");
    if (name && is_chat) {
        FUZZ_CHECK(name->type == ATTR_STRING, "name of type %d", name->type);
        const char *s = name->key + strlen(name->key) + 1;
        FUZZ_CHECK(ref_utf8_valid((const uint8_t *)s, name->v.len), "name is not UTF-8");
        for (int i = 0; i < SLOTS; i++) {
            struct conn *o = slot[i];
            const struct attr *other = o && o != c ? hub_attr_get(o, "name") : NULL;
            if (other && other->type == ATTR_STRING && other->v.len == name->v.len) {
                const char *t = other->key + strlen(other->key) + 1;
                FUZZ_CHECK(strncasecmp(s, t, name->v.len) != 0, "two users named '%s'/'%s'",
                           s, t);
            }
        }
    }
    if (is_chat && c->rooms_len > 0 && c->state == CONN_WS)
        FUZZ_CHECK(name != NULL, "connection %llu in %u rooms without a name",
                   (unsigned long long)c->id, c->rooms_len);
}

/* The server's safe point: the closed are reported and freed (their hooks may close others),
 * timers that are due run, then every queue is checked and read. */
static void safe_point(void)
{
    for (int round = 0; n_closing && round < 8; round++) {
        struct conn *list[64];
        size_t n = n_closing;
        memcpy(list, closing, n * sizeof *list);
        n_closing = 0;
        for (size_t k = 0; k < n; k++)
            free_conn(list[k], list[k]->close_code);
    }
    FUZZ_CHECK(n_closing == 0, "disconnect hooks kept closing others");
    ev_run(loop, EVRUN_NOWAIT);
    size_t open = 0;
    for (int i = 0; i < SLOTS; i++)
        if (slot[i]) {
            open++;
            check_conn(slot[i]);
        }
    for (int i = 0; i < SLOTS; i++)
        if (slot[i])
            outq_clear(&slot[i]->out);
    FUZZ_CHECK(hub_count() == open, "hub has %zu connections, %zu are open", hub_count(), open);
}

static void count_room(struct room *r, void *arg)
{
    (*(size_t *)arg)++;
}

/* ---- the harness ---------------------------------------------------------------------- */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    log_threshold = (enum log_level)(LOG_NOTICE + 1);
    script = getenv("CONFAB_FUZZ_SCRIPT");
    if (!script || !*script)
        script = CHAT_SCRIPT;
    const char *slash = strrchr(script, '/');
    is_chat = strcmp(slash ? slash + 1 : script, "chat.lua") == 0;
    loop = ev_default_loop(0);
    struct script_config cfg = {.hook_timeout_ms = 2000, .memory = 64 << 20, .epoch = 42};
    script_init(loop, &cfg);
    ws_init(MAX_MESSAGE, &ws_cb);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hub_init(QUEUE_LIMIT, HISTORY, &hub_cb);
    char err[1024];
    if (script_load(script, err, sizeof err) != 0)
        fuzz_fail("cannot load %s: %s", script, err);

    int reloads = 0;
    const uint8_t *p = data, *end = data + size;
    while (p < end) {
        const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
        const uint8_t *line_end = nl ? nl : end;
        size_t len = (size_t)(line_end - p);
        const uint8_t *next = nl ? nl + 1 : end;
        if (len == 0) {
            p = next;
            continue;
        }
        uint8_t op = p[0];
        int i = len > 1 ? slot_of(p[1]) : 0;
        const char *arg = len > 2 ? (const char *)p + 2 : "";
        size_t alen = len > 2 ? len - 2 : 0;
        switch (op) {
        case '0': case '1': case '2': case '3':
            send_frame(op - '0', 1, p + 1, len - 1);
            break;
        case 'b': send_frame(i, 2, (const uint8_t *)arg, alen); break;
        case 'f': send_raw(i, (const uint8_t *)arg, alen); break;
        case 'h': send_shape(i, "hello", "name", "resume", arg, alen); break;
        case 'k': send_shape(i, "hello", "name", "key", arg, alen); break;
        case 'j': send_shape(i, "join", "room", NULL, arg, alen); break;
        case 'l': send_shape(i, "leave", "room", NULL, arg, alen); break;
        case 'w': send_shape(i, "who", "room", NULL, arg, alen); break;
        case 't': send_shape(i, "typing", "room", NULL, arg, alen); break;
        case 's': send_shape(i, "say", "room", "text", arg, alen); break;
        case 'm': send_shape(i, "me", "room", "text", arg, alen); break;
        case 'n': send_shape(i, "nick", "name", NULL, arg, alen); break;
        case 'd': send_shape(i, "dm", "to", "text", arg, alen); break;
        case 'r': send_shape(i, "rooms", NULL, NULL, arg, alen); break;
        case 'x':
            if (slot[i] && slot[i]->state == CONN_WS)
                free_conn(slot[i], 1000);
            break;
        case 'R':
            if (reloads++ < 2 && script_load(script, err, sizeof err) != 0)
                fuzz_fail("reload of %s failed: %s", script, err);
            break;
        default:
            break;
        }
        safe_point();
        p = next;
    }

    /* Everybody leaves. */
    for (int i = 0; i < SLOTS; i++)
        if (slot[i] && slot[i]->state == CONN_WS)
            free_conn(slot[i], 1001);
    safe_point();
    FUZZ_CHECK(hub_count() == 0, "%zu connections left in the hub", hub_count());
    size_t rooms = 0;
    hub_each_room(count_room, &rooms);
    FUZZ_CHECK(rooms == 0, "%zu rooms still have members", rooms);
    FUZZ_CHECK(ws_live == 0, "%zu framing states left", ws_live);
    script_shutdown();
    FUZZ_CHECK(frame_live == 0, "%zu frames left", frame_live);
    hub_shutdown();
    return 0;
}
