#include "ws.h"

#include <stdlib.h>
#include <string.h>
#include <wslay/wslay.h>

#include "hub.h"
#include "inflate.h"
#include "log.h"
#include "utf8.h"

/* The largest unit the boundary scan gathers: a frame header with a 64-bit length and a mask key
 * (14 bytes) followed by a control frame's largest payload (125). */
#define UNIT_MAX (14 + 125)
/* First size of the reassembly buffer; it doubles from there, up to --max-message. */
#define MSG_MIN_CAP 1024
/* The close code when --message-memory is used up: 1013, try again later. */
#define WS_CODE_BUSY 1013

struct ws_conn {
    wslay_event_context_ptr ctx;
    struct conn *conn;
    const uint8_t *in;     /* bytes being fed, not yet taken */
    size_t in_len;
    uint8_t *held;         /* a copy of the input left over by a feed that used its budget */
    size_t held_len;       /* bytes in held */
    unsigned turn_messages; /* message ends handed to wslay during this feed */
    unsigned turn_max;     /* message ends this feed may hand over */
    /* The boundary scan (on_recv): a data frame's header is handed to wslay whole, its payload
     * straight from the input; a control frame is gathered whole first, so that wslay never
     * gets it in two pieces. */
    uint8_t unit[UNIT_MAX]; /* header or whole control frame being gathered */
    uint8_t unit_len;      /* bytes of it gathered */
    uint8_t unit_pos;      /* bytes of a complete unit already handed to wslay */
    uint8_t unit_ready;    /* the unit is complete */
    uint64_t unit_pass;    /* payload bytes that follow the unit (a data frame's) */
    uint64_t pass;         /* payload bytes of the current data frame still to hand over */
    uint64_t fed;          /* bytes handed to wslay */
    uint64_t framed;       /* bytes of frames wslay finished */
    uint64_t frame_size;   /* header + payload of the frame in progress */
    /* The message being reassembled. */
    uint8_t *msg;
    size_t msg_len, msg_cap;
    uint16_t fail_code;    /* our verdict (1002, 1007, 1009): stop and close with it */
    uint8_t oom;           /* an allocation failed in a callback */
    uint8_t fragmented;    /* a data message's final frame has not come yet */
    uint8_t fin, opcode;   /* of the frame in progress */
    uint8_t binary;        /* of the message in progress */
    uint8_t compressed;    /* the message in progress is compressed (RSV1, permessage-deflate) */
    uint64_t wire_len;     /* compressed bytes of it received so far */
    uint8_t bad_deflate;   /* failed (1007) on compressed data that does not inflate */
    struct inflater *inflater; /* made at the first compressed message, kept while w lives */
};

static size_t max_message;

/* The most compressed bytes a message may take: deflate adds at most 5 bytes per 16 KB stored
 * block (and a little more) to data it cannot make smaller. */
static size_t max_wire(void)
{
    size_t slack = max_message / 2048 + 64;
    return max_message > SIZE_MAX - slack ? SIZE_MAX : max_message + slack;
}
static struct ws_handlers handlers;
size_t ws_live;
static size_t memory_limit = SIZE_MAX;
size_t ws_memory;

void ws_set_memory_limit(size_t bytes)
{
    memory_limit = bytes;
}

/* Takes n bytes from --message-memory; 0, or -1 when they are not there. */
static int charge(size_t n)
{
    if (n > memory_limit - ws_memory) {
        log_warn("WebSocket messages in progress are at --message-memory (%zu bytes): a "
                 "connection that needs more is closed with 1013", memory_limit);
        return -1;
    }
    ws_memory += n;
    return 0;
}

/* The bytes the unit starting with the `have` bytes at b needs in all: its header, and for a
 * control frame of legal size its payload too. *pass gets the payload length of a data frame
 * (or of an oversized control frame, which wslay refuses at its header). */
static size_t unit_need(const uint8_t *b, size_t have, uint64_t *pass)
{
    *pass = 0;
    if (have < 2)
        return 2;
    unsigned len7 = b[1] & 0x7f;
    size_t ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
    size_t head = 2 + ext + ((b[1] & 0x80) ? 4 : 0);
    if (have < head)
        return head;
    uint64_t len = len7;
    if (ext) {
        len = 0;
        for (size_t i = 0; i < ext; i++)
            len = len << 8 | b[2 + i];
    }
    if ((b[0] & 0x08) && len <= 125)
        return head + (size_t)len;
    *pass = len;
    return head;
}

static ssize_t on_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                       void *user)
{
    struct ws_conn *w = user;
    size_t n = 0;
    /* Once the connection fails or the server closed it, nothing more is read. */
    while (!w->fail_code && !(w->conn->flags & CONN_CLOSE_SENT) && n < len) {
        if (w->pass) {
            size_t take = w->in_len < len - n ? w->in_len : len - n;
            if (take > w->pass)
                take = (size_t)w->pass;
            if (take == 0)
                break;
            memcpy(buf + n, w->in, take);
            w->in += take;
            w->in_len -= take;
            w->pass -= take;
            n += take;
        } else if (w->unit_ready) {
            /* A feed dispatches at most its budget of messages: the rest waits. */
            if (w->unit_pos == 0 && w->turn_messages >= w->turn_max)
                break;
            size_t left = (size_t)(w->unit_len - w->unit_pos);
            /* wslay asks for bytes only once its 4 KB buffer is nearly empty: a unit never has
             * to be split unless it shares the hand-over with bytes before it. */
            if (left > len - n && n > 0)
                break;
            size_t take = left < len - n ? left : len - n;
            if (w->unit_pos == 0 && (w->unit[0] & 0x88) == 0x80)
                w->turn_messages++; /* the final frame of a data message */
            memcpy(buf + n, w->unit + w->unit_pos, take);
            w->unit_pos += (uint8_t)take;
            n += take;
            if (w->unit_pos == w->unit_len) {
                w->pass = w->unit_pass;
                w->unit_ready = 0;
                w->unit_len = w->unit_pos = 0;
            }
        } else if (w->in_len) {
            uint64_t pass;
            size_t need = unit_need(w->unit, w->unit_len, &pass);
            while (w->unit_len < need && w->in_len) {
                size_t take = need - w->unit_len < w->in_len ? need - w->unit_len : w->in_len;
                memcpy(w->unit + w->unit_len, w->in, take);
                w->unit_len += (uint8_t)take;
                w->in += take;
                w->in_len -= take;
                need = unit_need(w->unit, w->unit_len, &pass);
            }
            if (w->unit_len == need) {
                w->unit_ready = 1;
                w->unit_pass = pass;
            }
        } else {
            break;
        }
    }
    if (n == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    w->fed += n;
    return (ssize_t)n;
}

/* wslay's own pongs and closes are not sent: the core answers with its own (send_pong, and
 * the close frame ws_feed queues). */
static ssize_t on_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *user)
{
    return (ssize_t)len;
}

static void fail(struct ws_conn *w, uint16_t code)
{
    if (!w->fail_code)
        w->fail_code = code;
}

static void on_frame_start(wslay_event_context_ptr ctx,
                           const struct wslay_event_on_frame_recv_start_arg *arg, void *user)
{
    struct ws_conn *w = user;
    uint64_t len = arg->payload_length;
    /* Client frames are always masked (wslay refuses others): 4 bytes of mask key. */
    w->frame_size = len + 2 + 4 + (len < 126 ? 0 : len <= 0xFFFF ? 2 : 8);
    w->fin = arg->fin;
    w->opcode = arg->opcode;
    if (wslay_is_ctrl_frame(arg->opcode))
        return;
    if (arg->opcode != WSLAY_CONTINUATION_FRAME) {
        w->binary = arg->opcode == WSLAY_BINARY_FRAME;
        w->msg_len = 0;
        /* wslay refuses RSV1 unless permessage-deflate was negotiated (allowed_rsv_bits), and on
         * control and continuation frames (1002). */
        w->compressed = wslay_get_rsv1(arg->rsv);
        w->wire_len = 0;
    }
    if (w->compressed) {
        /* The limit is on the inflated size (on_frame_chunk); the compressed bytes get the
         * slack deflate may add to data it cannot compress. */
        if (len > max_wire() - w->wire_len)
            fail(w, WSLAY_CODE_MESSAGE_TOO_BIG);
        w->wire_len += len;
        return;
    }
    /* wslay checks each frame against the limit; the message is the sum of its fragments. */
    if (len > max_message - w->msg_len)
        fail(w, WSLAY_CODE_MESSAGE_TOO_BIG);
}

/* Makes room for need bytes of message, growing the buffer by doubling (never past
 * --max-message). Returns 0, or -1 with w failed (1013 over --message-memory, 1011 no memory). */
static int msg_grow(struct ws_conn *w, size_t need)
{
    if (need <= w->msg_cap)
        return 0;
    size_t cap = w->msg_cap ? w->msg_cap * 2 : MSG_MIN_CAP;
    if (cap > max_message)
        cap = max_message;
    if (cap < need)
        cap = need;
    if (charge(cap - w->msg_cap) < 0) {
        fail(w, WS_CODE_BUSY);
        return -1;
    }
    uint8_t *p = realloc(w->msg, cap);
    if (!p) {
        ws_memory -= cap - w->msg_cap;
        w->oom = 1;
        fail(w, 1011);
        return -1;
    }
    w->msg = p;
    w->msg_cap = cap;
    return 0;
}

/* The inflater's output goes to the end of the message (inflate.h). */
static int sink_room(void *user, uint8_t **at, size_t *n)
{
    struct ws_conn *w = user;
    if (w->msg_len == w->msg_cap && w->msg_cap < max_message &&
        msg_grow(w, w->msg_len + 1) < 0)
        return -1;
    *at = w->msg + w->msg_len;
    *n = w->msg_cap - w->msg_len;
    return 0;
}

static void sink_wrote(void *user, size_t n)
{
    struct ws_conn *w = user;
    w->msg_len += n;
}

/* Inflates a piece of a compressed message (last: the message ends) into the buffer. */
static void inflate_piece(struct ws_conn *w, const uint8_t *data, size_t len, int last)
{
    if (!w->inflater) {
        if (charge(INFLATE_COST) < 0) {
            fail(w, WS_CODE_BUSY);
            return;
        }
        if (!(w->inflater = inflater_new())) {
            ws_memory -= INFLATE_COST;
            w->oom = 1;
            fail(w, 1011);
            return;
        }
    }
    const struct inflate_sink sink = {sink_room, sink_wrote, w};
    switch (inflater_feed(w->inflater, data, len, last, &sink)) {
    case INFLATE_OK: break;
    case INFLATE_TOO_BIG: fail(w, WSLAY_CODE_MESSAGE_TOO_BIG); break;
    case INFLATE_BAD_DATA: /* 1007, invalid payload data */
        if (!w->fail_code)
            w->bad_deflate = 1;
        fail(w, WSLAY_CODE_INVALID_FRAME_PAYLOAD_DATA);
        break;
    case INFLATE_NO_MEMORY: w->oom = 1; fail(w, 1011); break;
    default: break; /* refused: msg_grow failed w already */
    }
}

/* Appends a piece of a data frame's payload to the message, inflated when it is compressed. */
static void on_frame_chunk(wslay_event_context_ptr ctx,
                           const struct wslay_event_on_frame_recv_chunk_arg *arg, void *user)
{
    struct ws_conn *w = user;
    if (w->fail_code || wslay_is_ctrl_frame(w->opcode) || arg->data_length == 0)
        return;
    if (w->compressed) {
        inflate_piece(w, arg->data, arg->data_length, 0);
        return;
    }
    size_t need = w->msg_len + arg->data_length;
    if (msg_grow(w, need) < 0)
        return;
    memcpy(w->msg + w->msg_len, arg->data, arg->data_length);
    w->msg_len = need;
}

static void on_frame_end(wslay_event_context_ptr ctx, void *user)
{
    struct ws_conn *w = user;
    w->framed += w->frame_size;
    if (!wslay_is_ctrl_frame(w->opcode))
        w->fragmented = !w->fin;
}

/* Answers a ping at once, so the pong goes ahead of whatever the message in progress will
 * bring. A pong still waiting in the queue is replaced by the new one (RFC 6455 5.5.3: a
 * pong may answer only the most recent ping), so pings from a peer that never reads cost
 * nothing more. */
static void send_pong(struct ws_conn *w, const uint8_t *data, size_t len)
{
    struct conn *c = w->conn;
    if (c->flags & CONN_CLOSE_SENT)
        return;
    struct frame *f = frame_ws(FRAME_PONG, data, len);
    if (!f) {
        w->oom = 1;
        return;
    }
    if (!outq_replace_pong(&c->out, f) && hub_send(c, f) == 0)
        outq_mark_pong(&c->out);
    frame_unref(f);
}

static void on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                   void *user)
{
    struct ws_conn *w = user;
    if (w->fail_code)
        return;
    switch (arg->opcode) {
    case WSLAY_TEXT_FRAME:
    case WSLAY_BINARY_FRAME: {
        /* wslay passes no payload in no-buffering mode: the message is ours. */
        if (w->compressed) {
            inflate_piece(w, NULL, 0, 1);
            if (w->inflater) /* (not made when --message-memory refused it) */
                inflater_reset(w->inflater); /* client_no_context_takeover: alone */
            if (w->fail_code)
                break;
            /* wslay does not check the UTF-8 of a compressed text message: we do, inflated. */
            if (!w->binary && !utf8_valid(w->msg, w->msg_len)) {
                fail(w, WSLAY_CODE_INVALID_FRAME_PAYLOAD_DATA);
                break;
            }
        }
        size_t n = w->msg_len;
        w->msg_len = 0;
        handlers.message(w->conn, w->binary, w->msg, n);
        break;
    }
    case WSLAY_PING:
        send_pong(w, arg->msg, arg->msg_length);
        wslay_event_send(ctx); /* drops wslay's own pong now, not one per ping at the end */
        break;
    case WSLAY_CONNECTION_CLOSE:
        /* A one-byte payload has half a status code: wslay would echo an empty close. */
        if (arg->msg_length == 1)
            fail(w, WSLAY_CODE_PROTOCOL_ERROR);
        else if (arg->msg_length > 2 && !utf8_valid(arg->msg + 2, arg->msg_length - 2))
            fail(w, WSLAY_CODE_INVALID_FRAME_PAYLOAD_DATA);
        break;
    default:
        break; /* pongs only prove the peer is alive, which any byte does */
    }
}

void ws_init(size_t max, const struct ws_handlers *h)
{
    max_message = max;
    handlers = *h;
}

/* Frees w and all it holds (its charge to --message-memory is the caller's). */
static void ws_destroy(struct ws_conn *w)
{
    wslay_event_context_free(w->ctx);
    inflater_free(w->inflater);
    free(w->msg);
    free(w->held);
    free(w);
}

/* States between messages kept for the next message of any connection (ws.h): their wslay
 * context and their reassembly buffer if it is no larger than its first size. */
static struct {
    struct ws_conn *list[WS_SPARE_MAX];
    unsigned n;
} spare;

void ws_free(struct conn *c)
{
    if (c->ws) {
        ws_memory -= WS_STATE_COST + c->ws->msg_cap + c->ws->held_len;
        if (c->ws->inflater)
            ws_memory -= INFLATE_COST;
        ws_destroy(c->ws);
        c->ws = NULL;
        ws_live--;
    }
}

/* ws_free for a state that is between messages (every byte fed made whole frames, nothing held,
 * no close or failure): its wslay context is at a frame boundary with nothing queued, as a new
 * one is, so it is kept for the next message (while there is room) instead of freed. */
static void ws_release(struct conn *c)
{
    struct ws_conn *w = c->ws;
    if (spare.n == WS_SPARE_MAX || w->held || w->fail_code || w->oom ||
        !wslay_event_get_read_enabled(w->ctx) || !wslay_event_get_write_enabled(w->ctx) ||
        wslay_event_get_close_received(w->ctx) || wslay_event_get_close_sent(w->ctx) ||
        wslay_event_get_queued_msg_count(w->ctx) != 0) {
        ws_free(c);
        return;
    }
    ws_memory -= WS_STATE_COST + w->msg_cap;
    if (w->inflater) {
        ws_memory -= INFLATE_COST;
        inflater_free(w->inflater); /* 40 KB: made again by the next compressed message */
        w->inflater = NULL;
    }
    if (w->msg_cap > MSG_MIN_CAP) {
        free(w->msg);
        w->msg = NULL;
        w->msg_cap = 0;
    }
    w->conn = NULL;
    spare.list[spare.n++] = w;
    c->ws = NULL;
    ws_live--;
}

unsigned ws_spare_count(void)
{
    return spare.n;
}

void ws_spare_drain(void)
{
    while (spare.n)
        ws_destroy(spare.list[--spare.n]);
}

static struct ws_conn *ws_get(struct conn *c)
{
    if (c->ws)
        return c->ws;
    static const struct wslay_event_callbacks cb = {
        .recv_callback = on_recv,
        .send_callback = on_send,
        .on_frame_recv_start_callback = on_frame_start,
        .on_frame_recv_chunk_callback = on_frame_chunk,
        .on_frame_recv_end_callback = on_frame_end,
        .on_msg_recv_callback = on_msg,
    };
    struct ws_conn *w;
    if (spare.n) {
        w = spare.list[--spare.n];
        /* Everything but the context and the buffer starts as in a new state. */
        wslay_event_context_ptr ctx = w->ctx;
        uint8_t *msg = w->msg;
        size_t msg_cap = w->msg_cap;
        memset(w, 0, sizeof *w);
        w->ctx = ctx;
        if (msg_cap && msg_cap <= memory_limit - ws_memory) { /* (charge() without its warning) */
            ws_memory += msg_cap;
            w->msg = msg;
            w->msg_cap = msg_cap;
        } else {
            free(msg);
        }
        /* The context's settings are per connection. */
        wslay_event_config_set_allowed_rsv_bits(w->ctx, 0);
    } else {
        w = calloc(1, sizeof *w);
        if (!w)
            return NULL;
        if (wslay_event_context_server_init(&w->ctx, &cb, w) != 0) {
            free(w);
            return NULL;
        }
        wslay_event_config_set_no_buffering(w->ctx, 1);
    }
    wslay_event_config_set_max_recv_msg_length(w->ctx, max_message);
    if (c->deflate_bits) {
        wslay_event_config_set_allowed_rsv_bits(w->ctx, WSLAY_RSV1_BIT);
        wslay_event_config_set_max_recv_msg_length(w->ctx, max_wire());
    }
    w->conn = c;
    c->ws = w;
    ws_live++;
    return w;
}

static const char *fail_reason(uint16_t code)
{
    switch (code) {
    case WSLAY_CODE_INVALID_FRAME_PAYLOAD_DATA: return "invalid UTF-8";
    case WSLAY_CODE_MESSAGE_TOO_BIG: return "message too big";
    case WS_CODE_BUSY: return "server busy: too many messages in progress";
    default: return "protocol error";
    }
}

/* Queues the close frame that ends c; returns code. */
static int queue_close(struct conn *c, uint16_t code, const char *reason)
{
    struct frame *f = frame_ws_close(code, reason);
    if (!f)
        return -1;
    hub_send(c, f);
    frame_unref(f);
    return code;
}

int ws_held(const struct conn *c)
{
    /* Input not taken, or a unit gathered whole from it and stopped by the budget (a control
     * frame after the last message allowed: nothing else may follow it on the wire). */
    return c->ws && (c->ws->in_len > 0 || c->ws->unit_ready);
}

/* Keeps the input a feed left over (its budget used) in w->held, unless it is there already. */
static void held_free(struct ws_conn *w)
{
    ws_memory -= w->held_len;
    free(w->held);
    w->held = NULL;
    w->held_len = 0;
}

/* Returns 0, -1 when out of memory, WS_CODE_BUSY when over --message-memory. */
static int hold_rest(struct ws_conn *w)
{
    if (w->in_len == 0) {
        held_free(w);
        return 0;
    }
    if (w->held && w->in >= w->held && w->in + w->in_len == w->held + w->held_len)
        return 0;
    if (charge(w->in_len) < 0)
        return WS_CODE_BUSY;
    uint8_t *p = malloc(w->in_len);
    if (!p) {
        ws_memory -= w->in_len;
        return -1;
    }
    memcpy(p, w->in, w->in_len);
    held_free(w);
    w->held = p;
    w->held_len = w->in_len;
    w->in = p;
    return 0;
}

int ws_feed(struct conn *c, const uint8_t *data, size_t len)
{
    return ws_feed_budget(c, data, len, WS_MESSAGES_PER_FEED);
}

int ws_feed_budget(struct conn *c, const uint8_t *data, size_t len, unsigned max_messages)
{
    struct ws_conn *w = c->ws;
    if (!w) {
        if (charge(WS_STATE_COST) < 0)
            return queue_close(c, WS_CODE_BUSY, fail_reason(WS_CODE_BUSY));
        if (!(w = ws_get(c))) {
            ws_memory -= WS_STATE_COST;
            return -1;
        }
    }
    if (len && w->in_len) {
        /* New bytes behind held ones (the server pauses reading meanwhile, but the bytes that
         * came with the upgrade request arrive in two pieces): they join the held input. */
        if (charge(w->in_len + len) < 0)
            return queue_close(c, WS_CODE_BUSY, fail_reason(WS_CODE_BUSY));
        uint8_t *p = malloc(w->in_len + len);
        if (!p) {
            ws_memory -= w->in_len + len;
            return -1;
        }
        memcpy(p, w->in, w->in_len);
        memcpy(p + w->in_len, data, len);
        held_free(w);
        w->held = p;
        w->held_len = w->in_len + len;
        w->in = p;
        w->in_len = w->held_len;
    } else if (len) {
        w->in = data;
        w->in_len = len;
    }
    w->turn_messages = 0;
    w->turn_max = max_messages < WS_MESSAGES_PER_FEED ? max_messages : WS_MESSAGES_PER_FEED;
    int rc = wslay_event_recv(w->ctx);
    if (w->oom)
        return -1;
    /* Only a feed stopped by its budget keeps input: after a failure or a close, the rest of
     * what the peer sent is not needed. */
    if (w->fail_code || !conn_is_open(c) || !wslay_event_get_read_enabled(w->ctx)) {
        w->in_len = 0;
        w->unit_ready = 0;
    }
    int held = hold_rest(w);
    if (held < 0)
        return -1;
    if (held == WS_CODE_BUSY) {
        w->in_len = 0;
        fail(w, WS_CODE_BUSY);
    }
    /* wslay's frame layer reports the RFC violations it finds in a header (a fragmented or long
     * control frame, a length with the top bit set) as a callback failure. */
    if (rc == WSLAY_ERR_CALLBACK_FAILURE)
        fail(w, WSLAY_CODE_PROTOCOL_ERROR);
    else if (rc != 0)
        return -1;
    wslay_event_send(w->ctx); /* discards what wslay queued (on_send) */

    if (w->fail_code)
        return queue_close(c, w->fail_code, w->bad_deflate ? "invalid compressed data"
                                                           : fail_reason(w->fail_code));
    if (wslay_event_get_close_received(w->ctx)) {
        /* Echo the peer's code (RFC 6455 5.5.1), without its reason. 1005: it had none. */
        uint16_t code = wslay_event_get_status_code_received(w->ctx);
        if (queue_close(c, code == WSLAY_CODE_NO_STATUS_RCVD ? 0 : code, NULL) < 0)
            return -1;
        return code;
    }
    if (wslay_event_get_close_sent(w->ctx)) {
        /* wslay failed the connection (masking, opcodes, UTF-8, close codes, frame size). */
        uint16_t code = wslay_event_get_status_code_sent(w->ctx);
        if (code == WSLAY_CODE_NO_STATUS_RCVD)
            code = WSLAY_CODE_PROTOCOL_ERROR;
        return queue_close(c, code, fail_reason(code));
    }

    /* Every byte made whole frames and no message is half-way: nothing is kept. */
    if (w->framed == w->fed && !w->fragmented && w->unit_len == 0 && w->pass == 0 && !w->in_len)
        ws_release(c);
    return 0;
}
