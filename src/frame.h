/* frame: an immutable, reference-counted block of bytes to send. A broadcast builds one frame and
 * every recipient's queue holds a reference to it: one encoding, one copy, whatever the fan-out. */
#ifndef CONFAB_FRAME_H
#define CONFAB_FRAME_H

#include <stddef.h>
#include <stdint.h>

struct frame {
    uint32_t refs;
    uint32_t len;
    uint8_t pool;   /* 1 + the size class it came from and goes back to (frame.c), 0: none */
    uint8_t data[];
};

/* Frames of up to 64 << (FRAME_POOL_CLASSES - 1) bytes in all (header and data) come from a
 * pool per size and go back to it when the last reference goes (pool.h): a broadcast's frame,
 * built once per message, is then not a malloc and a free each. At most FRAME_POOL_BYTES of each
 * size wait there. */
#define FRAME_POOL_CLASSES 7
#define FRAME_POOL_BYTES (256 * 1024)

/* WebSocket opcodes the server sends. */
enum { FRAME_TEXT = 0x1, FRAME_BINARY = 0x2, FRAME_CLOSE = 0x8, FRAME_PING = 0x9, FRAME_PONG = 0xA };

/* Largest header of a server frame (no mask): what a frame adds to its payload. */
#define FRAME_HEADER_MAX 10

/* Longest close reason: a control frame's 125 bytes minus the status code. */
#define FRAME_CLOSE_REASON_MAX 123

/* A frame of len bytes whose contents the caller fills in. Returns NULL when out of memory. */
struct frame *frame_new(size_t len);

/* A frame holding a copy of len bytes (an HTTP response, bytes wslay wants sent).
 * Returns NULL when out of memory. The caller owns the one reference. */
struct frame *frame_bytes(const void *data, size_t len);

/* A WebSocket frame (server to client, unmasked, FIN) with the given opcode and payload,
 * encoded by wslay. Returns NULL when out of memory or len is too large. */
struct frame *frame_ws(int opcode, const void *payload, size_t len);

/* The same with RSV1 set: payload is a message compressed by permessage-deflate (RFC 7692). */
struct frame *frame_ws_compressed(int opcode, const void *payload, size_t len);

/* A close frame with a status code and a reason. The reason is cut to what may go out: at most
 * FRAME_CLOSE_REASON_MAX bytes, at a character boundary, and before the first byte that is not
 * well-formed UTF-8 (RFC 6455 5.5.1 and 8.1), so the peer never gets an invalid close. Code 0
 * gives an empty close (no code, no reason). */
struct frame *frame_ws_close(uint16_t code, const char *reason);

static inline struct frame *frame_ref(struct frame *f)
{
    f->refs++;
    return f;
}

void frame_unref(struct frame *f);

/* Number of frames alive, for tests and leak checks. */
extern size_t frame_live;

struct pool;
/* The pool of frames of class k (for tests and figures), NULL past the last class. */
const struct pool *frame_pool(unsigned k);

/* Frees the frames kept for reuse (in tests: what a test leaves kept is not a leak). */
void frame_pool_drain(void);

#endif
