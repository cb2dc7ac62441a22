/* deflate_negotiate: the server side of permessage-deflate's negotiation (RFC 7692 section 5 and
 * 7.1), as a pure function of the Sec-WebSocket-Extensions header values a client sent.
 *
 * The offers are read in order (every header line, every comma-separated element); the first
 * permessage-deflate offer the server can honour is accepted, the others declined (RFC 7692 5.1:
 * an offer with an unknown parameter, a parameter twice, a bad value, or a configuration the
 * server does not support is declined, and the next one is tried). A syntax error spoils only the
 * element it is in: parsing goes on after the next comma outside a quoted string.
 *
 * What the server answers, always: server_no_context_takeover (every message is compressed on
 * its own, so one compressed frame of a broadcast serves every member) and
 * client_no_context_takeover (the client compresses every message on its own too, so the server
 * keeps no inflate state between messages: an idle connection holds no zlib context). Both may
 * be put in a response whether or not the client offered them (RFC 7692 7.1.1.1 and 7.1.1.2).
 * server_max_window_bits=N offered: the server compresses with a 2^N window and echoes it (N = 8
 * is declined: zlib's raw deflate has no 256-byte window). client_max_window_bits, with or
 * without a value, is accepted and not answered: the server inflates with a 32 KB window, which
 * reads any smaller one. */
#ifndef CONFAB_DEFLATE_NEGOTIATE_H
#define CONFAB_DEFLATE_NEGOTIATE_H

#include <stddef.h>

#include "http.h"

/* Longest response value: the extension with its two flags and a server_max_window_bits. */
#define DEFLATE_RESPONSE_MAX 128

struct deflate_agreement {
    int server_bits;   /* window bits of what the server sends (9..15); 0: not negotiated */
    char response[DEFLATE_RESPONSE_MAX]; /* the Sec-WebSocket-Extensions value, "" when none */
    const char *declined; /* why the last permessage-deflate offer was declined, or NULL */
};

/* Reads n header values (the Sec-WebSocket-Extensions lines, in order). Returns 1 when an offer
 * was accepted (a->server_bits and a->response set), 0 when none was (a->declined says why the
 * last permessage-deflate offer was refused, NULL when there was none). */
int deflate_negotiate(const struct http_str *values, size_t n, struct deflate_agreement *a);

/* The same over every Sec-WebSocket-Extensions header of a request. */
int deflate_negotiate_request(const struct http_request *req, struct deflate_agreement *a);

#endif
