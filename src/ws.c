#include "ws.h"

#include <stdlib.h>
#include <string.h>
#include <wslay/wslay.h>

#include "hub.h"

struct ws_conn {
    wslay_event_context_ptr ctx;
    struct conn *conn;
    const uint8_t *in;   /* bytes being fed */
    size_t in_len;
    uint64_t fed;        /* bytes handed to wslay */
    uint64_t framed;     /* bytes of frames wslay finished */
    uint64_t frame_size; /* header + payload of the frame in progress */
    uint16_t fail_code;  /* 1002 when we answer a violation wslay answers badly (see ws_feed) */
    uint8_t fragmented;  /* a data message's final frame has not come yet */
    uint8_t fin;
    uint8_t opcode;
};

static size_t max_message;
static struct ws_handlers handlers;
size_t ws_live;

static ssize_t on_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                       void *user)
{
    struct ws_conn *w = user;
    if (w->in_len == 0 || w->fail_code) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    size_t n = len < w->in_len ? len : w->in_len;
    memcpy(buf, w->in, n);
    w->in += n;
    w->in_len -= n;
    w->fed += n;
    return (ssize_t)n;
}

/* wslay's control frames (pong, close) join the connection's queue like any other frame. wslay
 * hands over a frame's header and payload separately (WSLAY_MSG_MORE between them): they are
 * gathered here and queued as one. After the server sent its own close, nothing may follow it,
 * so wslay's close reply is dropped. */
static uint8_t stage[256];
static size_t stage_len;

static int stage_flush(struct conn *c)
{
    if (stage_len == 0)
        return 0;
    struct frame *f = frame_bytes(stage, stage_len);
    stage_len = 0;
    if (!f)
        return -1;
    if (!(c->flags & CONN_CLOSE_SENT))
        hub_send(c, f);
    frame_unref(f);
    return 0;
}

static ssize_t on_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *user)
{
    struct ws_conn *w = user;
    if (w->fail_code)
        return (ssize_t)len; /* our own close replaces whatever wslay wanted to say */
    /* Only control frames pass here (at most 2 + 125 bytes): data frames bypass wslay. */
    if ((stage_len + len > sizeof stage && stage_flush(w->conn) < 0) || len > sizeof stage)
        goto fail;
    memcpy(stage + stage_len, data, len);
    stage_len += len;
    if (!(flags & WSLAY_MSG_MORE) && stage_flush(w->conn) < 0)
        goto fail;
    return (ssize_t)len;
fail:
    wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
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
}

static void on_frame_end(wslay_event_context_ptr ctx, void *user)
{
    struct ws_conn *w = user;
    w->framed += w->frame_size;
    if (!wslay_is_ctrl_frame(w->opcode))
        w->fragmented = !w->fin;
}

static void on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                   void *user)
{
    struct ws_conn *w = user;
    if (w->fail_code)
        return;
    /* A one-byte close payload has half a status code: wslay echoes an empty close. */
    if (arg->opcode == WSLAY_CONNECTION_CLOSE && arg->msg_length == 1) {
        w->fail_code = WSLAY_CODE_PROTOCOL_ERROR;
        return;
    }
    if (arg->opcode == WSLAY_TEXT_FRAME || arg->opcode == WSLAY_BINARY_FRAME)
        handlers.message(w->conn, arg->opcode == WSLAY_BINARY_FRAME, arg->msg, arg->msg_length);
    /* Pings are answered by wslay; pongs only prove the peer is alive, which any byte does. */
}

void ws_init(size_t max, const struct ws_handlers *h)
{
    max_message = max;
    handlers = *h;
}

void ws_free(struct conn *c)
{
    if (c->ws) {
        wslay_event_context_free(c->ws->ctx);
        free(c->ws);
        c->ws = NULL;
        ws_live--;
    }
}

static struct ws_conn *ws_get(struct conn *c)
{
    if (c->ws)
        return c->ws;
    static const struct wslay_event_callbacks cb = {
        .recv_callback = on_recv,
        .send_callback = on_send,
        .on_frame_recv_start_callback = on_frame_start,
        .on_frame_recv_end_callback = on_frame_end,
        .on_msg_recv_callback = on_msg,
    };
    struct ws_conn *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    if (wslay_event_context_server_init(&w->ctx, &cb, w) != 0) {
        free(w);
        return NULL;
    }
    wslay_event_config_set_max_recv_msg_length(w->ctx, max_message);
    w->conn = c;
    c->ws = w;
    ws_live++;
    return w;
}

int ws_feed(struct conn *c, const uint8_t *data, size_t len)
{
    struct ws_conn *w = ws_get(c);
    if (!w)
        return -1;
    w->in = data;
    w->in_len = len;
    int rc = wslay_event_recv(w->ctx);
    /* wslay's frame layer reports the RFC violations it finds in a header (a fragmented or long
     * control frame) as a callback failure and queues an empty close; we answer with the proper
     * 1002 instead. Everything else (masking, opcodes, UTF-8, sizes, close codes) wslay answers
     * itself, with the right code. */
    if (rc == WSLAY_ERR_CALLBACK_FAILURE && !w->fail_code)
        w->fail_code = WSLAY_CODE_PROTOCOL_ERROR;
    else if (rc != 0 && rc != WSLAY_ERR_CALLBACK_FAILURE)
        return -1;
    if (wslay_event_send(w->ctx) != 0 || stage_flush(c) < 0)
        return -1;

    if (w->fail_code) {
        uint16_t code = w->fail_code;
        struct frame *f = frame_ws_close(code, "protocol error");
        if (!f)
            return -1;
        hub_send(c, f);
        frame_unref(f);
        return code;
    }
    if (wslay_event_get_close_received(w->ctx)) {
        uint16_t code = wslay_event_get_status_code_received(w->ctx);
        /* 1005: the peer's close had no status code. */
        return code ? code : WSLAY_CODE_NO_STATUS_RCVD;
    }
    if (wslay_event_get_close_sent(w->ctx))
        return wslay_event_get_status_code_sent(w->ctx);

    /* Every byte fed made whole frames and no message is half-way: nothing is kept. */
    if (w->framed == w->fed && !w->fragmented)
        ws_free(c);
    return 0;
}
