/* ws: WebSocket framing of incoming bytes through wslay's event API. wslay parses frames and
 * checks them (masking, reserved bits, opcodes and their order, control frame rules, UTF-8 of
 * text, close codes); the core adds what must not be left to it:
 *   - memory: wslay buffers nothing of data messages (no-buffering mode); fragments are
 *     reassembled here into one buffer that grows with what arrived, never past --max-message
 *     (wslay would keep every fragment as its own allocation: 94x the limit);
 *   - replies: wslay's own pongs and closes are discarded. A ping is answered at once with a pong
 *     of ours, ahead of any reply to the message it interrupted, and an unsent pong is replaced
 *     by a newer one (outq.h); closes carry a checked code and a valid UTF-8 reason;
 *   - control frames reach wslay whole, never split between reads (wslay checks a close reason's
 *     UTF-8 correctly only then), which a boundary scan of the byte stream ensures; the reason
 *     is checked again here.
 * The wslay context (about 9 KB) exists only while a message is in progress: it is created when
 * bytes arrive and freed when they all made whole messages, so an idle connection holds none. */
#ifndef CONFAB_WS_H
#define CONFAB_WS_H

#include <stddef.h>
#include <stdint.h>

#include "conn.h"

struct ws_handlers {
    /* A complete text or binary message arrived. */
    void (*message)(struct conn *c, int binary, const uint8_t *data, size_t len);
};

/* Sets the largest message accepted and the handlers. */
void ws_init(size_t max_message, const struct ws_handlers *handlers);

/* Bounds the framing memory of all connections together (--message-memory): each connection
 * with a message in progress is charged WS_STATE_COST for its state, plus its reassembly buffer
 * and any input held back. A connection that would pass it is closed with 1013 (try again
 * later). Unlimited until set. */
void ws_set_memory_limit(size_t bytes);

/* What one connection's framing state is charged: ours, and wslay's context (its two 4 KB
 * buffers and queues), about 9 KB. */
#define WS_STATE_COST 10240

/* A connection holds its framing state only while a message is in progress. When a message
 * ends at a frame boundary (nothing more fed), the state, wslay's context with it, is kept for
 * the next message of any connection rather than freed, at most WS_SPARE_MAX of them: a server
 * reading one message at a time from many peers then makes no context per message. A kept state
 * is not charged to --message-memory; it holds no inflater and a reassembly buffer of at most
 * its first size (1 KB). */
#define WS_SPARE_MAX 4

/* States kept now, and freeing them (for tests). */
unsigned ws_spare_count(void);
void ws_spare_drain(void);

/* Framing memory charged now, all connections together (for tests and the benchmark). */
extern size_t ws_memory;

/* Messages one feed dispatches at most: a peer sending thousands of tiny messages per read gets
 * its turn like everyone else, not the loop for as long as its hooks run. */
#define WS_MESSAGES_PER_FEED 256

/* Feeds bytes read from c's socket. Returns 0 while the WebSocket stays open; a close code > 0
 * once it is closing, its close frame queued: the peer's close was received (its code is echoed;
 * 1005 when it had none), or the connection failed (1002 protocol error, 1007 invalid UTF-8,
 * 1009 message too big); -1 when out of memory. At most WS_MESSAGES_PER_FEED messages are
 * dispatched: what follows them is kept (ws_held) until the next feed, which may bring no new
 * bytes (data NULL, len 0). */
int ws_feed(struct conn *c, const uint8_t *data, size_t len);

/* ws_feed with a smaller budget: at most max_messages (capped at WS_MESSAGES_PER_FEED) message
 * ends are taken; 0 takes none, so everything is kept. The rate limit (--rate-msgs) gives each
 * feed what the connection's bucket holds. Control frames queued behind a kept message wait
 * with it (they come after it on the wire). */
int ws_feed_budget(struct conn *c, const uint8_t *data, size_t len, unsigned max_messages);

/* Whether c has input kept by a feed that used its budget: feed it again (without reading
 * more from the socket) at the next turn. */
int ws_held(const struct conn *c);

/* Releases c's framing state. */
void ws_free(struct conn *c);

/* Number of connections holding a wslay context, for tests and the benchmark. */
extern size_t ws_live;

#endif
