/* ws: WebSocket framing of incoming bytes through wslay's event API: reassembly of fragments,
 * control frames (pong replies, the close handshake), RFC 6455 checks, UTF-8 validation of text
 * (1007) and the message size limit (1009). The wslay context (about 9 KB) exists only while a
 * message is in progress: it is created when bytes arrive and freed when they all made whole
 * messages, so an idle connection holds none. Outgoing data frames bypass wslay's queue: they are
 * shared frames (frame.h) in the connection's own queue, and wslay's control frames join them. */
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

/* Feeds bytes read from c's socket. Returns 0 while the WebSocket stays open; a close code > 0
 * once it is closing: the peer's close was received (the reply is queued), or wslay failed the
 * connection (its close frame is queued: 1002, 1007 or 1009); -1 when out of memory. */
int ws_feed(struct conn *c, const uint8_t *data, size_t len);

/* Releases c's framing state. */
void ws_free(struct conn *c);

/* Number of connections holding a wslay context, for tests and the benchmark. */
extern size_t ws_live;

#endif
