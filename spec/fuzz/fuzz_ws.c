/* fuzz_ws: WebSocket input through ws.c (wslay underneath), cut where the fuzzer says.
 *
 * Input: one byte of settings (bits 0-1: the message size limit; bit 2: permessage-deflate
 * negotiated, so RSV1 messages are inflated), then chunks, each a length byte and that
 * many bytes of client stream. The stream is fed twice to two fresh connections: once in the
 * fuzzer's chunks and once whole, the way the server feeds reads (a feed that held input back,
 * its budget of messages used, is fed again), stopping at the first non-zero result as the
 * server does. Checks, besides the sanitizers and the leak checker:
 *   - the chunking changes nothing: same messages (count, kinds, bytes), same result, same frames
 *     queued for the peer (when the connection fails, the same close frame: the pongs for pings
 *     that came before the failure in the same read are dropped with wslay's queue, which is
 *     allowed once the connection is failing);
 *   - every message is within the limit (inflated, for a compressed one), and text messages are
 *     valid UTF-8 (by the independent decoder);
 *   - every frame queued is a well-formed server frame (fuzz_common.c), nothing follows a close,
 *     and a closing connection has a close frame last in its queue;
 *   - a connection with nothing half-way holds no framing state, and nothing outlives it. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "fuzz_common.h"
#include "hub.h"
#include "log.h"
#include "ws.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define QUEUE_LIMIT (1 << 20)

static struct {
    size_t max;
    int deflate;   /* permessage-deflate negotiated */
    int messages;
    uint64_t hash; /* FNV-1a over kind, length and bytes of every message */
} run;

static void on_message(struct conn *c, int binary, const uint8_t *p, size_t len)
{
    FUZZ_CHECK(len <= run.max, "message of %zu bytes over the limit %zu", len, run.max);
    FUZZ_CHECK(binary || ref_utf8_valid(p, len), "text message of %zu bytes is not UTF-8", len);
    run.messages++;
    uint64_t h = run.hash ^ (uint64_t)(binary + 1);
    h = (h ^ len) * 1099511628211u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 1099511628211u;
    run.hash = h;
}

static void q_queued(struct conn *c) {}
static void q_overflow(struct conn *c) { fuzz_fail("queue overflow (%zu bytes)", outq_bytes(&c->out)); }
static void q_close(struct conn *c, uint16_t code, const char *reason) {}
static const struct hub_callbacks hub_cb = {q_queued, q_overflow, q_close};
static const struct ws_handlers handlers = {on_message};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    log_threshold = (enum log_level)(LOG_NOTICE + 1);
    hub_init(QUEUE_LIMIT, 0, &hub_cb);
    return 0;
}

struct outcome {
    int rc;
    int messages;
    uint64_t hash;
    size_t frames;
    uint64_t out_hash; /* over every byte queued */
    uint64_t last_hash; /* over the last frame queued */
    size_t out_bytes;
};

/* Feeds the chunks (or the whole stream when whole) to a fresh connection. */
static void feed(const uint8_t *data, size_t size, int whole, struct outcome *o)
{
    struct conn *c = calloc(1, sizeof *c);
    c->state = CONN_WS;
    c->deflate_bits = run.deflate ? 15 : 0;
    hub_add(c);
    run.messages = 0;
    run.hash = 14695981039346656037u;
    int rc = 0;
    if (whole) {
        /* The stream without the length bytes, in one piece. */
        uint8_t *all = malloc(size ? size : 1);
        size_t n = 0;
        for (size_t i = 0; i < size;) {
            size_t len = data[i++];
            len = len < size - i ? len : size - i;
            memcpy(all + n, data + i, len);
            n += len;
            i += len;
        }
        if (n)
            rc = ws_feed(c, all, n);
        while (rc == 0 && ws_held(c)) /* a feed dispatches a bounded number: the server */
            rc = ws_feed(c, NULL, 0); /* feeds the rest at its next passes */
        free(all);
    } else {
        for (size_t i = 0; i < size && rc == 0;) {
            size_t len = data[i++];
            len = len < size - i ? len : size - i;
            if (len) {
                /* A copy of exactly the chunk, so reading past it is caught. */
                uint8_t *chunk = malloc(len);
                memcpy(chunk, data + i, len);
                rc = ws_feed(c, chunk, len);
                free(chunk);
                while (rc == 0 && ws_held(c))
                    rc = ws_feed(c, NULL, 0);
            }
            i += len;
            if (rc == 0 && !c->ws)
                FUZZ_CHECK(ws_live == 0, "framing state kept by nobody");
        }
    }
    FUZZ_CHECK(rc >= -1 && rc <= 4999, "ws_feed returned %d", rc);
    int last;
    o->frames = fuzz_check_queue(c, &last);
    if (rc > 0)
        FUZZ_CHECK(last == 0x8, "closing (%d) without a close frame last", rc);
    o->rc = rc;
    o->messages = run.messages;
    o->hash = run.hash;
    o->out_bytes = outq_bytes(&c->out);
    uint64_t h = 14695981039346656037u, lh = h;
    for (uint32_t i = 0; i < outq_count(&c->out); i++) {
        const struct frame *f = outq_at(&c->out, i);
        lh = 14695981039346656037u;
        for (uint32_t j = 0; j < f->len; j++) {
            h = (h ^ f->data[j]) * 1099511628211u;
            lh = (lh ^ f->data[j]) * 1099511628211u;
        }
    }
    o->out_hash = h;
    o->last_hash = lh;
    ws_free(c);
    hub_remove(c);
    free(c);
    FUZZ_CHECK(ws_live == 0, "%zu framing states left", ws_live);
    FUZZ_CHECK(frame_live == 0, "%zu frames left", frame_live);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const size_t limits[] = {125, 1000, 4096, 65536};
    run.max = limits[data[0] & 3];
    run.deflate = (data[0] & 4) != 0;
    ws_init(run.max, &handlers);

    struct outcome chunked, whole;
    feed(data + 1, size - 1, 0, &chunked);
    feed(data + 1, size - 1, 1, &whole);
    if (getenv("FUZZ_VERBOSE"))
        fprintf(stderr, "chunked: rc %d, %d messages, %zu frames (%zu bytes); "
                "whole: rc %d, %d messages, %zu frames (%zu bytes)\n", chunked.rc,
                chunked.messages, chunked.frames, chunked.out_bytes, whole.rc, whole.messages,
                whole.frames, whole.out_bytes);
    FUZZ_CHECK(chunked.rc == whole.rc, "result %d in chunks, %d whole", chunked.rc, whole.rc);
    FUZZ_CHECK(chunked.messages == whole.messages && chunked.hash == whole.hash,
               "%d messages in chunks, %d whole (or different bytes)", chunked.messages,
               whole.messages);
    if (chunked.rc > 0)
        FUZZ_CHECK(chunked.last_hash == whole.last_hash, "another close frame in chunks");
    else
        FUZZ_CHECK(chunked.frames == whole.frames && chunked.out_bytes == whole.out_bytes &&
                   chunked.out_hash == whole.out_hash,
                   "%zu frames (%zu bytes) queued in chunks, %zu (%zu bytes) whole",
                   chunked.frames, chunked.out_bytes, whole.frames, whole.out_bytes);
    return 0;
}
