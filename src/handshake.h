/* handshake: the server side of the RFC 6455 opening handshake, as a pure function of a parsed
 * request, so every rule is tested without a socket. */
#ifndef CONFAB_HANDSHAKE_H
#define CONFAB_HANDSHAKE_H

#include "deflate_negotiate.h"
#include "http.h"

/* Which Origin may connect. A request without Origin (not a browser) always may; else the
 * origin must be the server's own (http or https, any port, and as host the address the
 * connection arrived on, the host of --addr, or localhost/127.0.0.1/[::1] when it arrived on
 * loopback), one listed in allow_origin, or allow_origin is "*". */
struct hs_config {
    const char *allow_origin; /* NULL: only the server's own origins; "*": any; else comma list */
    const char *subprotocols; /* comma list in preference order, or NULL */
    const char *listen_host;  /* the host of --addr ("" or NULL for every address) */
    const char *local_addr;   /* numeric address the connection arrived on (IPv6 without []) */
    int local_loopback;       /* local_addr is a loopback address */
    int deflate;              /* permessage-deflate may be negotiated (--deflate on) */
};

struct hs_result {
    int status;               /* 101, or the HTTP error status */
    const char *reason;       /* why, for an error */
    const char *extra_header; /* an error's extra header line (426's Sec-WebSocket-Version) */
    char accept[32];          /* Sec-WebSocket-Accept value */
    char protocol[64];        /* chosen subprotocol, "" for none */
    struct deflate_agreement deflate; /* permessage-deflate: server_bits 0 when not in use */
};

/* Checks an upgrade request (already known to target the WebSocket path). Returns 0 with
 * res->status 101 when it is good, -1 with status and reason set otherwise. */
int handshake_check(const struct http_request *req, const struct hs_config *cfg,
                    struct hs_result *res);

/* Fetches SHA-1 and makes the context handshake_accept_key uses (at start: the first fetch
 * sets up much of OpenSSL, a one-time step in memory that belongs to no connection). Also done
 * by the first handshake_accept_key. */
void handshake_init(void);

/* Base64 of SHA-1 of key + the RFC 6455 GUID into out (at least 29 bytes). */
void handshake_accept_key(const char *key, size_t len, char *out);

/* The 101 response for a successful check. */
struct frame *handshake_response(const struct hs_result *res);

#endif
