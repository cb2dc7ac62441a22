/* inflate: decompressing a permessage-deflate message (RFC 7692 7.2.2) into the reassembly
 * buffer of ws.c, never writing past the message limit: a compressed bomb is stopped at the
 * first byte beyond it, so it costs what a message of the limit's size costs.
 *
 * The server always answers client_no_context_takeover, so an inflater serves one message and
 * is reset for the next; ws.c keeps it only while a message is in progress. */
#ifndef CONFAB_INFLATE_H
#define CONFAB_INFLATE_H

#include <stddef.h>
#include <stdint.h>

/* What an inflater costs while it lives: zlib's state (7 KB) and its 32 KB window. */
#define INFLATE_COST (40 * 1024)

struct inflater;

/* Where the output goes: room() gives the free space at the end of the message (growing the
 * buffer when it is full), n = 0 when the message is at the limit, or returns -1 when it cannot
 * grow (memory); wrote() reports the bytes written there. */
struct inflate_sink {
    int (*room)(void *user, uint8_t **at, size_t *n);
    void (*wrote)(void *user, size_t n);
    void *user;
};

enum { INFLATE_OK = 0, INFLATE_TOO_BIG, INFLATE_BAD_DATA, INFLATE_NO_MEMORY, INFLATE_REFUSED };

/* A new inflater (raw deflate, 32 KB window), or NULL when out of memory. */
struct inflater *inflater_new(void);

/* Ready for a new message. */
void inflater_reset(struct inflater *z);

void inflater_free(struct inflater *z);

/* Inflates len bytes of a message's compressed payload; with last, the message ends here (the
 * 00 00 ff ff the sender removed is put back). INFLATE_TOO_BIG: the output would pass the
 * limit; INFLATE_BAD_DATA: not deflate data; INFLATE_REFUSED: room() returned -1. */
int inflater_feed(struct inflater *z, const uint8_t *in, size_t len, int last,
                  const struct inflate_sink *sink);

#endif
