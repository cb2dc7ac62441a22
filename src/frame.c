#include "frame.h"

#include <stdlib.h>
#include <string.h>
#include <wslay/wslay.h>

#include "pool.h"
#include "utf8.h"

size_t frame_live;

/* Class k holds blocks of 64 << k bytes. */
static struct pool pools[FRAME_POOL_CLASSES];

static struct pool *class_pool(unsigned k)
{
    struct pool *p = &pools[k];
    if (!p->size) {
        p->size = (size_t)64 << k;
        p->max = (uint32_t)(FRAME_POOL_BYTES / p->size);
    }
    return p;
}

const struct pool *frame_pool(unsigned k)
{
    return k < FRAME_POOL_CLASSES ? class_pool(k) : NULL;
}

void frame_pool_drain(void)
{
    for (unsigned k = 0; k < FRAME_POOL_CLASSES; k++)
        pool_drain(&pools[k]);
}

static struct frame *frame_alloc(size_t len)
{
    if (len > UINT32_MAX - 16)
        return NULL;
    size_t need = sizeof(struct frame) + len;
    unsigned k = 0;
    while (k < FRAME_POOL_CLASSES && ((size_t)64 << k) < need)
        k++;
    struct frame *f = k < FRAME_POOL_CLASSES ? pool_get(class_pool(k)) : malloc(need);
    if (!f)
        return NULL;
    f->refs = 1;
    f->len = 0;
    f->pool = k < FRAME_POOL_CLASSES ? (uint8_t)(k + 1) : 0;
    frame_live++;
    return f;
}

static void frame_free(struct frame *f)
{
    frame_live--;
    if (f->pool)
        pool_put(&pools[f->pool - 1], f);
    else
        free(f);
}

struct frame *frame_new(size_t len)
{
    struct frame *f = frame_alloc(len);
    if (f)
        f->len = (uint32_t)len;
    return f;
}

struct frame *frame_bytes(const void *data, size_t len)
{
    struct frame *f = frame_new(len);
    if (f)
        memcpy(f->data, data, len);
    return f;
}

void frame_unref(struct frame *f)
{
    if (f && --f->refs == 0)
        frame_free(f);
}

/* The encoder: one wslay frame context, shared by every frame we build, whose send callback
 * appends to the frame under construction. The server never masks, so it needs no genmask. */
static wslay_frame_context_ptr encoder;
static struct frame *building;

static ssize_t encoder_send(const uint8_t *buf, size_t len, int flags, void *user_data)
{
    memcpy(building->data + building->len, buf, len);
    building->len += (uint32_t)len;
    return (ssize_t)len;
}

static struct frame *encode(int opcode, uint8_t rsv, const void *payload, size_t len)
{
    if (!encoder) {
        static const struct wslay_frame_callbacks cb = {encoder_send, NULL, NULL};
        if (wslay_frame_context_init(&encoder, &cb, NULL) != 0)
            return NULL;
    }
    struct frame *f = frame_alloc(len + FRAME_HEADER_MAX);
    if (!f)
        return NULL;

    struct wslay_frame_iocb iocb = {
        .fin = 1, .rsv = rsv, .opcode = (uint8_t)opcode, .payload_length = len,
        .mask = 0, .data = payload, .data_length = len,
    };
    building = f;
    /* wslay may hand over the header and the payload in separate calls; the callback never
     * refuses, so the loop ends once the payload is all written. */
    size_t done = 0;
    do {
        ssize_t n = wslay_frame_send(encoder, &iocb);
        if (n < 0) {
            building = NULL;
            frame_free(f);
            return NULL;
        }
        done += (size_t)n;
        if (done < len) { /* (payload may be NULL when len is 0: no pointer arithmetic on it) */
            iocb.data = (const uint8_t *)payload + done;
            iocb.data_length = len - done;
        }
    } while (done < len);
    building = NULL;
    return f;
}

struct frame *frame_ws(int opcode, const void *payload, size_t len)
{
    return encode(opcode, 0, payload, len);
}

struct frame *frame_ws_compressed(int opcode, const void *payload, size_t len)
{
    return encode(opcode, WSLAY_RSV1_BIT, payload, len);
}

struct frame *frame_ws_close(uint16_t code, const char *reason)
{
    uint8_t body[2 + FRAME_CLOSE_REASON_MAX];
    size_t rlen = reason ? strnlen(reason, FRAME_CLOSE_REASON_MAX) : 0;
    rlen = rlen ? utf8_valid_prefix(reason, rlen) : 0;
    body[0] = (uint8_t)(code >> 8);
    body[1] = (uint8_t)code;
    if (rlen)
        memcpy(body + 2, reason, rlen);
    return frame_ws(FRAME_CLOSE, body, code ? rlen + 2 : 0);
}
