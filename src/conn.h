/* conn: the connection, shared by server (sockets, lifecycle), ws (framing), hub (rooms, queue)
 * and script (ids, attributes). Every field has one owner, named in its comment. */
#ifndef CONFAB_CONN_H
#define CONFAB_CONN_H

#include <ev.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "deadline.h"
#include "outq.h"

enum conn_state {
    CONN_HTTP,    /* reading HTTP requests (static files, or the upgrade) */
    CONN_WS,      /* WebSocket open */
    CONN_CLOSING, /* close sent or received: flushing, then waiting for the peer to go */
    CONN_DEAD,    /* to be freed at the next safe point */
};

/* conn.flags */
enum {
    CONN_IN_FLUSH = 1 << 0,     /* on the server's list of connections with output to write */
    CONN_WANT_WRITE = 1 << 1,   /* the poller also waits for the socket to take output */
    CONN_CLOSE_SENT = 1 << 2,   /* a close frame was queued: nothing else may follow it */
    CONN_HTTP_CLOSE = 1 << 3,   /* close the socket once the HTTP response is written */
    CONN_SHUT_WR = 1 << 4,      /* shutdown(SHUT_WR) done: only reading until EOF remains */
    CONN_IN_CLOSE_LIST = 1 << 5,/* on the server's list of connections to tear down */
    CONN_OPENED = 1 << 6,       /* the connect hook accepted it: disconnect will be reported */
    CONN_READ_PAUSED = 1 << 7,  /* not reading: HTTP until the output drains, WS while held */
    CONN_INPUT_HELD = 1 << 8,   /* on the server's list of connections whose input ws holds */
    CONN_ADMIN = 1 << 9,        /* accepted on the admin listener: admin requests only */
    CONN_COUNTED = 1 << 10,     /* admitted by the connection caps: released when freed */
    CONN_RATE_PAUSED = 1 << 11, /* over its inbound rate: not read until its timer fires */
    CONN_SERVED = 1 << 12,      /* HTTP: a response was queued (an idle keep-alive when empty) */
    CONN_REMOTE = 1 << 13,      /* presence: another node's connection mirrored into the hub */
    CONN_HELD = 1 << 14,        /* its output is held for --flush-delay (on the server's held
                                 * list, through next_flush: never on the flush list too) */
    CONN_META = 1 << 15,        /* upgraded: its conn_meta is ext->meta, or the common one */
};

/* The peer's address as accept gave it, kept compact (20 bytes) and written out only when
 * something asks: most connections are never logged about nor asked for confab.info. */
struct conn_peer {
    uint8_t family;   /* AF_INET, AF_INET6, or AF_UNSPEC when unknown */
    uint8_t unused;
    uint16_t port;    /* host byte order */
    uint8_t addr[16]; /* an IPv4 address in the first 4 bytes */
};

/* Room for conn_peer_text: "[" IPv6 "]:" port. */
#define CONN_PEER_TEXT (INET6_ADDRSTRLEN + 8)

/* Keeps the address of sa (AF_INET or AF_INET6; anything else is unknown). */
void conn_peer_set(struct conn_peer *p, const struct sockaddr *sa);

/* The address back as a sockaddr (family AF_UNSPEC when unknown); returns it. */
struct sockaddr *conn_peer_sockaddr(const struct conn_peer *p, struct sockaddr_storage *ss);

/* "ip:port", "[ipv6]:port", or "?:0" when unknown, into out; returns out. */
const char *conn_peer_text(const struct conn_peer *p, char *out, size_t len);

/* What the upgrade request said, kept for the script's confab.info. One allocation: the
 * strings follow the struct, each NUL-terminated. */
struct conn_meta {
    const char *path, *query;
    size_t path_len, query_len;
    const char *subprotocol; /* "" when none was negotiated */
    char buf[];
};

/* A new conn_meta (free it with free()), or NULL on no memory. */
struct conn_meta *conn_meta_new(const char *path, size_t path_len,
                                const char *query, size_t query_len, const char *subprotocol);

struct room;

/* One membership (hub): the room and the connection's slot in room->members, which holds the
 * connection itself. */
struct conn_room {
    struct room *room;
    uint32_t idx; /* position in room->members */
};

struct attr;
struct conn_rate;
struct http_conn;
struct ws_conn;
struct tls_conn;

/* What few connections need, in one allocation made when the first field is set and freed when
 * the last is cleared (server), so that an open plain WebSocket carries one NULL pointer. */
struct conn_ext {
    struct http_conn *http; /* request buffer, only while reading a request */
    struct conn_meta *meta; /* what an upgrade said, unless the common one (server_conn_meta) */
    struct conn_rate *rate; /* inbound rate buckets, only with --rate-* set */
    struct tls_conn *tls;   /* TLS state (tls.h), NULL on a plain connection */
};

struct conn {
    uint64_t id;               /* hub: Lua's handle for it, never reused */
    int fd;                    /* server */
    uint8_t state;             /* server: enum conn_state, changed only by its setter */
    uint8_t io_want, io_set;   /* poller: the events waited for, and those the kernel's set has */
    uint8_t io_fed;            /* poller: events fed and not yet delivered */
    uint16_t flags;            /* server */
    uint16_t close_code;       /* server: the code reported to the disconnect hook */
    uint16_t pings;            /* server: pings sent since the peer was last heard */
    uint8_t deflate_bits;      /* server: permessage-deflate negotiated, with this window for
                                * what the server sends (9..15); 0: not negotiated */
    struct conn_peer peer;     /* server: the peer's address, from accept */
    uint16_t rooms_len, rooms_cap; /* hub */
    struct dl_node timeout;    /* server: request, keepalive (ping, silence) or closing deadline */
    struct outq out;           /* hub: frames waiting to be written */
    struct conn *next_flush;   /* server: list of connections with output (or held) */
    struct conn *next_close;   /* server: list of connections to tear down */
    struct ws_conn *ws;        /* ws: wslay state, only while a message is in progress */
    union {                    /* hub: memberships, rooms_len of rooms_cap used (conn_rooms) */
        struct conn_room one;  /* rooms_cap 1: the usual single room, with no allocation */
        struct conn_room *many;/* rooms_cap > 1 */
    } rooms;
    struct attr *attrs;        /* hub: per-connection attributes set by the script */
    struct conn_ext *ext;      /* server: what few connections need, NULL when none of it */
};

static inline struct http_conn *conn_http(const struct conn *c)
{
    return c->ext ? c->ext->http : NULL;
}

static inline struct conn_rate *conn_rate(const struct conn *c)
{
    return c->ext ? c->ext->rate : NULL;
}

static inline struct tls_conn *conn_tls(const struct conn *c)
{
    return c->ext ? c->ext->tls : NULL;
}

/* c's memberships, rooms_len of them (writable when c is, as with strchr). */
static inline struct conn_room *conn_rooms(const struct conn *c)
{
    return c->rooms_cap <= 1 ? (struct conn_room *)&c->rooms.one : c->rooms.many;
}

/* The one definition of "open": a WebSocket whose close has not started. Only an open connection
 * gets messages delivered or new frames queued. */
static inline int conn_is_open(const struct conn *c)
{
    return c->state == CONN_WS && !(c->flags & CONN_CLOSE_SENT);
}

#endif
