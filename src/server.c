#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <http_parser.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "admin.h"
#include "bucket.h"
#include "caps.h"
#include "conn.h"
#include "deflate.h"
#include "handshake.h"
#include "http.h"
#include "hub.h"
#include "log.h"
#include "metrics.h"
#include "poller.h"
#include "script.h"
#include "static.h"
#include "tls.h"
#include "uring.h"
#include "ws.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

/* How long a closing connection may take to say goodbye before its socket is closed. */
#define CLOSE_WAIT_SECONDS 3.0
/* Reads per readiness event, so one busy peer cannot starve the others. */
#define READS_PER_EVENT 4

/* Smallest request buffer; it grows by doubling up to --max-request. */
#define HTTP_BUF_MIN 1024

/* A connection's HTTP side, only while it has a request in its buffer or a body to send. */
struct http_conn {
    struct static_body body; /* the rest of the response being sent */
    size_t len, cap;         /* request bytes in buf, size of buf */
    char buf[];
};

/* A listening socket: the public one (--addr), the TLS one (--tls-addr; or --addr itself with
 * a certificate alone), or the admin one (--admin-addr). */
struct listener {
    int fd;                    /* -1 once closed */
    uint8_t tls;               /* its connections get a tls_conn */
    uint8_t admin;             /* its connections are CONN_ADMIN */
    ev_io io;
};

static struct {
    struct ev_loop *loop;
    const struct config *cfg;
    struct hs_config hs;
    struct listener listeners[3]; /* public, then TLS (when separate), then admin */
    int nlisteners;
    ev_timer accept_retry;
    int accept_paused;         /* out of descriptors: accept is retried by a timer */
    unsigned accept_refusals;  /* retries that failed since the last log line */
    ev_tstamp accept_logged;   /* when the last "out of descriptors" line was written */
    ev_prepare prepare;
    ev_idle idle;              /* active while the safe point has work left: the loop won't block */
    ev_timer grace;
    struct conn *flush_list;  /* connections with output to write this loop pass */
    struct conn *held_list;   /* --flush-delay: connections whose output waits for hold_timer */
    ev_timer hold_timer;      /* running while held_list is not empty */
    size_t hold_bytes;        /* a queue charged this much is written without waiting */
    struct conn *close_list;  /* connections to report gone and/or free */
    struct conn **input_held; /* WebSocket input held by ws (its budget used): fed next pass, in
                               * the order held (NULL: freed meanwhile) */
    size_t ninput_held, capinput_held;
    struct dl_list requests;  /* HTTP: time allowed for a request */
    struct dl_list pings;     /* WebSocket: --ping-interval since the peer or the last ping */
    struct dl_list silence;   /* WebSocket: the rest of --pong-timeout after the last ping */
    uint16_t pings_max;       /* pings sent to a silent peer before it waits in silence */
    struct dl_list closing;   /* closing: time allowed to finish */
    struct frame *ping_frame; /* one ping frame shared by every connection */
    size_t nconns;
    size_t request_bytes;     /* request buffers of every connection together, and
                               * TLS_HANDSHAKE_MEMORY per TLS handshake in progress */
    int shutting_down;
    uint64_t rate_pauses;     /* times a peer was paused by its inbound rate */
    size_t rate_paused;       /* peers paused by their inbound rate now */
    /* Connections refused by the caps (or while draining): logged at once, then at most one
     * line per REFUSAL_LOG_SECONDS with the counts since the last one. */
    ev_timer refusal_log;
    unsigned refused[CAPS_NOMEM + 2]; /* by caps_verdict, and [CAPS_NOMEM + 1]: draining */
    uint64_t refused_total[CAPS_NOMEM + 2]; /* the same, since the start */
    char refused_last[INET6_ADDRSTRLEN + 4];
    /* Drain (SIGTERM): the open WebSockets at its start, closed a few at a time. */
    ev_timer drain;
    uint64_t *drain_ids;
    size_t drain_count, drain_next;
    ev_tstamp drain_start, drain_time;
} srv;

/* The inbound rate limits of one WebSocket (--rate-msgs, --rate-bytes). */
struct conn_rate {
    struct bucket msgs, bytes;
    ev_timer timer; /* while paused: when the buckets allow reading again */
    struct conn *conn;
};

static uint8_t readbuf[64 * 1024];
/* Bytes read from every connection so far (a read that made progress). */
static size_t bytes_read;

static void on_conn_io(struct conn *c, int revents);
static void conn_flush(struct conn *c);
static void flush_all(void);
static void http_free(struct conn *c);
static void read_pause(struct conn *c, int on);
static void ws_input(struct conn *c, const uint8_t *data, size_t len);
static void rate_resume(struct conn *c);

/* ---- lifecycle ----------------------------------------------------------------------- */

/* The safe point has work: keep the loop from blocking until it is done. */
static void safe_point_arm(void)
{
    if (!ev_is_active(&srv.idle))
        ev_idle_start(srv.loop, &srv.idle);
}

static void held_release(void);

/* c has output: write it at the safe point, unless it already waits for the socket. Output that
 * must not wait ends the hold of every held connection, c's included (see held_release). */
static void flush_list_add(struct conn *c)
{
    if (c->flags & CONN_HELD) {
        held_release();
    } else if (!(c->flags & (CONN_IN_FLUSH | CONN_WANT_WRITE))) {
        c->flags |= CONN_IN_FLUSH;
        c->next_flush = srv.flush_list;
        srv.flush_list = c;
        safe_point_arm();
    }
}

/* --flush-delay: output held back so that what the next passes queue for c goes in the same
 * write. One timer serves every held connection: it starts with the first hold and, when it
 * fires, all of them are written at the next safe point. So nothing waits longer than the delay
 * (what joins late in the window waits less), and a thousand held connections cost one timer,
 * not a thousand. */
static void hold_add(struct conn *c)
{
    if (c->flags & (CONN_IN_FLUSH | CONN_WANT_WRITE | CONN_HELD))
        return; /* written this pass already, or waiting for the socket, or held */
    c->flags |= CONN_HELD;
    c->next_flush = srv.held_list;
    srv.held_list = c;
    if (!ev_is_active(&srv.hold_timer)) {
        ev_timer_set(&srv.hold_timer, srv.cfg->flush_delay_ms / 1000.0, 0);
        ev_timer_start(srv.loop, &srv.hold_timer);
    }
}

/* Every held connection goes to the flush list: when the delay is over, and as soon as one of
 * them has something that must not wait (a close, a ping or pong, a full queue) or dies. All of
 * them rather than the one: the list has one link per connection (no unlinking from the middle
 * without a walk), they were all going to be written within the delay anyway, and these events
 * are rare next to messages. */
static void held_release(void)
{
    if (!srv.held_list)
        return;
    ev_timer_stop(srv.loop, &srv.hold_timer);
    while (srv.held_list) {
        struct conn *c = srv.held_list;
        srv.held_list = c->next_flush;
        c->flags = (uint16_t)((c->flags & ~CONN_HELD) | CONN_IN_FLUSH);
        c->next_flush = srv.flush_list;
        srv.flush_list = c;
    }
    safe_point_arm();
}

static void on_hold_timer(EV_P_ ev_timer *w, int revents)
{
    held_release();
}

static void close_list_add(struct conn *c)
{
    if (!(c->flags & CONN_IN_CLOSE_LIST)) {
        c->flags |= CONN_IN_CLOSE_LIST;
        c->next_close = srv.close_list;
        srv.close_list = c;
        safe_point_arm();
    }
}

static const char *state_name(int s)
{
    static const char *const names[] = {"http", "ws", "closing", "dead"};
    return s >= 0 && s <= CONN_DEAD ? names[s] : "?";
}

/* The one place a connection's state changes. Allowed: HTTP → WS (upgrade), WS → HTTP (the
 * connect hook refused it: the error response follows), HTTP or WS → CLOSING, anything alive →
 * DEAD. Returns 0, or -1 (logged, nothing changed) for any other transition: a bug. */
static int conn_set_state(struct conn *c, enum conn_state to)
{
    static const uint8_t allowed[4] = {
        [CONN_HTTP] = 1 << CONN_WS | 1 << CONN_CLOSING | 1 << CONN_DEAD,
        [CONN_WS] = 1 << CONN_HTTP | 1 << CONN_CLOSING | 1 << CONN_DEAD,
        [CONN_CLOSING] = 1 << CONN_DEAD,
        [CONN_DEAD] = 0,
    };
    if (!(allowed[c->state] & (1 << to))) {
        log_error("conn %d: bug: state %s -> %s refused", c->fd, state_name(c->state),
                  state_name(to));
        return -1;
    }
    metrics.conns[c->state]--;
    metrics.conns[to]++;
    c->state = to;
    return 0;
}

/* The socket is finished: the connection is freed at the next safe point. */
static void conn_kill(struct conn *c, uint16_t code)
{
    if (c->state == CONN_DEAD)
        return;
    if (c->state == CONN_WS)
        c->close_code = code;
    conn_set_state(c, CONN_DEAD);
    c->flags |= CONN_CLOSE_SENT; /* nothing more is queued for it */
    if (c->flags & CONN_HELD)
        held_release(); /* off the held list before it is freed (the flush list skips the dead) */
    poller_want(c, 0);
    dl_remove(&c->timeout);
    if (conn_rate(c))
        ev_timer_stop(srv.loop, &conn_rate(c)->timer);
    http_free(c); /* its request buffer goes back to --request-memory at once */
    close_list_add(c);
}

/* Enters the closing state; the close frame (if any) was queued by the caller. */
static void conn_closing(struct conn *c, uint16_t code)
{
    if (conn_set_state(c, CONN_CLOSING) < 0)
        return;
    c->flags |= CONN_CLOSE_SENT;
    c->close_code = code;
    dl_touch(&srv.closing, &c->timeout);
    /* A peer paused by its rate is read again: what it sent before its close is discarded
     * (RFC 6455 1.4) and its end is awaited within the closing time. */
    rate_resume(c);
    close_list_add(c); /* to report the disconnect at the safe point */
}

/* Keepalive with one deadline per WebSocket: heard from, a peer waits --ping-interval in
 * srv.pings; each time that passes in silence it is pinged and waits again, until pings_max
 * pings went unanswered; then it waits what is left of --pong-timeout in srv.silence and is
 * closed. That rest is the same for every peer, so both lists stay in order of their stamps
 * and a close comes --pong-timeout after the peer was last heard, as with two deadlines. */
static void keepalive_heard(struct conn *c)
{
    c->pings = 0;
    dl_touch(srv.pings_max ? &srv.pings : &srv.silence, &c->timeout);
}

static void conn_queue_raw(struct conn *c, struct frame *f)
{
    if (!f) {
        conn_kill(c, 1011);
        return;
    }
    if (outq_push(&c->out, f) < 0)
        conn_kill(c, 1011);
    else
        flush_list_add(c);
    frame_unref(f);
}

/* Server-initiated close of an open WebSocket: queue the close frame, stop sending. */
static void conn_close_ws(struct conn *c, uint16_t code, const char *reason)
{
    if (!conn_is_open(c))
        return;
    conn_queue_raw(c, frame_ws_close(code, reason));
    if (c->state == CONN_WS)
        conn_closing(c, code);
}

/* c's conn_ext, made when needed. NULL on no memory. */
static struct conn_ext *ext_of(struct conn *c)
{
    if (!c->ext)
        c->ext = calloc(1, sizeof *c->ext);
    return c->ext;
}

/* Frees c's conn_ext once none of its fields is set. */
static void ext_trim(struct conn *c)
{
    struct conn_ext *x = c->ext;
    if (x && !x->http && !x->meta && !x->rate && !x->tls) {
        free(x);
        c->ext = NULL;
    }
}

/* A new connection on fd from peer (over TLS with tls, which it then owns), watched by the
 * poller, reading an HTTP request. NULL with errno set when it could not be made. */
static struct conn *conn_new(int fd, const struct sockaddr *peer, struct tls_conn *tls)
{
    struct conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->fd = fd;
    if ((tls && !ext_of(c)) || poller_want(c, EV_READ) < 0) {
        int err = tls && !c->ext ? ENOMEM : errno;
        free(c->ext);
        free(c);
        errno = err;
        return NULL;
    }
    if (tls)
        c->ext->tls = tls;
    conn_peer_set(&c->peer, peer);
    c->state = CONN_HTTP;
    srv.nconns++;
    metrics.conns[CONN_HTTP]++;
    return c;
}

static void http_free(struct conn *c)
{
    struct http_conn *h = conn_http(c);
    if (h) {
        srv.request_bytes -= h->cap;
        static_close(&h->body);
        free(h);
        c->ext->http = NULL;
        ext_trim(c);
    }
}

/* The meta of the common upgrade (the --ws-path itself, no query, no subprotocol): one copy
 * shared by every connection that made it, never freed. */
static struct conn_meta common_meta;

static void meta_free(struct conn *c)
{
    if (c->ext) {
        free(c->ext->meta);
        c->ext->meta = NULL;
        ext_trim(c); /* also when making the meta failed */
    }
    c->flags &= (uint16_t)~CONN_META;
}

const struct conn_meta *server_conn_meta(const struct conn *c)
{
    if (!(c->flags & CONN_META))
        return NULL;
    return c->ext && c->ext->meta ? c->ext->meta : &common_meta;
}

static void conn_free(struct conn *c)
{
    poller_forget(c);
    if (c->fd >= 0)
        close(c->fd); /* which takes it out of the poller's set */
    dl_remove(&c->timeout);
    if (c->flags & CONN_INPUT_HELD)
        for (size_t i = 0; i < srv.ninput_held; i++)
            if (srv.input_held[i] == c)
                srv.input_held[i] = NULL;
    hub_remove(c);
    ws_free(c);
    http_free(c);
    if (conn_tls(c) && !tls_handshake_done(conn_tls(c)))
        srv.request_bytes -= TLS_HANDSHAKE_MEMORY;
    tls_conn_free(conn_tls(c));
    meta_free(c);
    if (conn_rate(c)) {
        ev_timer_stop(srv.loop, &c->ext->rate->timer);
        free(c->ext->rate);
        c->ext->rate = NULL;
    }
    if (c->flags & CONN_RATE_PAUSED)
        srv.rate_paused--;
    if (c->flags & CONN_COUNTED) {
        struct sockaddr_storage ss;
        caps_release(conn_peer_sockaddr(&c->peer, &ss));
        log_debug("conn %d: freed, %zu connections admitted", c->fd, caps_total());
    }
    free(c->ext); /* its pointers were all let go above */
    metrics.conns[c->state]--;
    free(c);
    srv.nconns--;
}

static const char *close_reason(uint16_t code)
{
    switch (code) {
    case 1000: return "normal closure";
    case 1001: return "going away";
    case 1002: return "protocol error";
    case 1005: return "no status";
    case 1006: return "connection lost";
    case 1007: return "invalid UTF-8";
    case 1008: return "policy violation";
    case 1009: return "message too big";
    case 1011: return "server error";
    case 1012: return "service restart";
    case 1013: return "try again later";
    default: return "closed";
    }
}

/* Tells the script c is gone, once. */
static void report_disconnect(struct conn *c)
{
    if (c->flags & CONN_OPENED) {
        c->flags &= (uint16_t)~CONN_OPENED;
        metrics_ws_close(c->close_code);
        script_disconnect(c, c->close_code, close_reason(c->close_code));
    }
}

/* The safe point: runs before the loop blocks. Reports disconnects to the script, writes what
 * every listed connection has queued (flush_all: one write each), then frees the connections
 * that are done (only after the flush list let go of them). Disconnect hooks may queue output
 * and close others, so it goes round until nothing is left, a bounded number of times; what is
 * left then keeps the idle watcher active, so the loop polls without blocking and comes back
 * here at once. */
static void on_prepare(EV_P_ ev_prepare *w, int revents)
{
    struct log_ctx prev = log_ctx;
    /* Input a feed held back (a flood of tiny messages): one more budget's worth each, after
     * every other connection had its turn; reading resumes once nothing is held. */
    size_t n = srv.ninput_held; /* what these hold again waits for the next pass */
    for (size_t i = 0; i < n; i++) {
        struct conn *c = srv.input_held[i];
        if (!c)
            continue;
        srv.input_held[i] = NULL;
        c->flags &= (uint16_t)~CONN_INPUT_HELD;
        log_ctx_set(c->id, c->fd);
        if (c->state == CONN_WS)
            ws_input(c, NULL, 0);
        if (!(c->flags & (CONN_INPUT_HELD | CONN_RATE_PAUSED)) && c->state != CONN_DEAD)
            read_pause(c, 0);
    }
    if (n) {
        srv.ninput_held -= n;
        memmove(srv.input_held, srv.input_held + n, srv.ninput_held * sizeof *srv.input_held);
    }
    for (int round = 0; round < 8 && (srv.close_list || srv.flush_list); round++) {
        struct conn *dead = NULL;
        /* This round reports what was listed when it began; what the hooks close goes to the
         * next round, so one pass of the loop does a bounded amount of work. */
        struct conn *closing = srv.close_list;
        srv.close_list = NULL;
        while (closing) {
            struct conn *c = closing;
            closing = c->next_close;
            log_ctx_set(c->id, c->fd);
            report_disconnect(c);
            if (c->state == CONN_DEAD) {
                c->next_close = dead; /* stays flagged: never listed twice */
                dead = c;
            } else {
                c->flags &= (uint16_t)~CONN_IN_CLOSE_LIST;
            }
        }
        flush_all();
        log_ctx = prev;
        while (dead) {
            struct conn *c = dead;
            dead = c->next_close;
            conn_free(c);
        }
    }
    log_ctx = prev;
    if (!srv.close_list && !srv.flush_list && !srv.ninput_held)
        ev_idle_stop(EV_A_ & srv.idle);
    if (srv.shutting_down && srv.nconns == 0)
        ev_break(EV_A_ EVBREAK_ALL);
}

/* Nothing to do: being active is its job (see on_prepare). */
static void on_idle(EV_P_ ev_idle *w, int revents)
{
}

/* ---- output -------------------------------------------------------------------------- */

/* The readiness c's reading waits for (0 while paused), and its writing (0 unless output waits
 * for the socket). Over TLS either may need the other direction: a read that must first send
 * (a handshake message), a write that must first receive. */
static int read_event(const struct conn *c)
{
    if (c->flags & CONN_READ_PAUSED)
        return 0;
    return conn_tls(c) && tls_read_wants_write(conn_tls(c)) ? EV_WRITE : EV_READ;
}

static int write_event(const struct conn *c)
{
    if (!(c->flags & CONN_WANT_WRITE))
        return 0;
    return conn_tls(c) && tls_write_wants_read(conn_tls(c)) ? EV_READ : EV_WRITE;
}

/* Sets what c waits for from its flags: reading unless paused, writing when output is waiting
 * for the socket. A connection the kernel will not watch is closed (it could never be read). */
static void io_update(struct conn *c)
{
    if (c->state == CONN_DEAD)
        return;
    if (poller_want(c, read_event(c) | write_event(c)) < 0) {
        log_warn("conn %d: cannot watch the socket: %s; closed", c->fd, strerror(errno));
        conn_kill(c, 1011);
    }
}

static void want_write(struct conn *c, int on)
{
    if (!!(c->flags & CONN_WANT_WRITE) == on)
        return;
    c->flags ^= CONN_WANT_WRITE;
    io_update(c);
}

/* May c take another HTTP request? Not while a response body is still being sent (the next
 * response would overtake it) nor while its output holds --send-queue bytes or more. */
static int http_has_room(const struct conn *c)
{
    const struct http_conn *h = conn_http(c);
    return outq_bytes(&c->out) < srv.cfg->send_queue && !(h && h->body.fd >= 0);
}

/* Stops or resumes reading c's requests. Resuming also replays a read event, for the requests
 * already in the buffer (the peer may have sent everything and be waiting). */
static void read_pause(struct conn *c, int on)
{
    if (!!(c->flags & CONN_READ_PAUSED) == on)
        return;
    c->flags ^= CONN_READ_PAUSED;
    io_update(c);
    if (!on)
        poller_feed(c, EV_READ);
}

/* Keeps a response body flowing: its next chunk joins the queue once the queue is almost empty,
 * so a body costs one chunk of memory whatever the file's size. */
static void body_fill(struct conn *c)
{
    while (conn_http(c) && conn_http(c)->body.fd >= 0 && outq_bytes(&c->out) < STATIC_CHUNK) {
        struct frame *f = static_next(&conn_http(c)->body);
        if (!f) {
            log_warn("conn %d: file shrank or could not be read while sent; closed", c->fd);
            conn_kill(c, 1006); /* frees conn_http(c) */
            return;
        }
        int rc = outq_push(&c->out, f);
        frame_unref(f);
        if (rc < 0) {
            conn_kill(c, 1011);
            return;
        }
    }
}

/* Everything queued went out. What comes next depends on why the connection is closing. */
static void conn_drained(struct conn *c)
{
    want_write(c, 0);
    if ((c->state == CONN_CLOSING || (c->flags & CONN_HTTP_CLOSE)) && !(c->flags & CONN_SHUT_WR)) {
        /* Half-close and wait for the peer's end: closing at once with unread input would
         * reset the connection and could destroy the response or close frame in flight. */
        if (conn_tls(c))
            tls_close_notify(conn_tls(c));
        shutdown(c->fd, SHUT_WR);
        c->flags |= CONN_SHUT_WR;
        if (c->state == CONN_HTTP) {
            conn_closing(c, 1006);
            c->flags &= (uint16_t)~CONN_READ_PAUSED; /* reads until the peer's EOF */
            io_update(c);
        }
    }
}

/* Writes the n entries of iov (n >= 1) to c's socket, through TLS on a TLS connection (where bytes
 * taken may still wait inside: tls_output_pending). Returns the bytes taken, fewer than
 * offered or with *blocked set when the socket is full, or -1 when the connection failed. */
static ssize_t io_writev(struct conn *c, const struct iovec *iov, int n, int *blocked)
{
    size_t offered = 0;
    for (int i = 0; i < n; i++)
        offered += iov[i].iov_len;
    if (conn_tls(c)) {
        ssize_t w = tls_writev(conn_tls(c), iov, n);
        *blocked = tls_write_blocked(conn_tls(c));
        if (w < 0)
            log_debug("conn %llu: TLS write failed: %s", (unsigned long long)c->id,
                      tls_error(conn_tls(c)));
        return w;
    }
    for (;;) {
        /* The cheapest call for the case: writev goes through the file layer before reaching
         * the socket; send and sendmsg go to it directly (and cannot raise SIGPIPE). */
        ssize_t w;
        if (n == 1) {
            w = send(c->fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL | MSG_DONTWAIT);
        } else {
            struct msghdr m = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)n};
            w = sendmsg(c->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
        }
        if (w >= 0) {
            *blocked = (size_t)w < offered;
            return w;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            *blocked = 1;
            return 0;
        }
        log_debug("conn %llu: write failed: %s", (unsigned long long)c->id, strerror(errno));
        return -1;
    }
}

/* A write of c took w bytes (blocked: the socket took no more). Returns whether c may be
 * written again now. The same for a send made directly (conn_flush) or through io_uring. */
static int conn_wrote(struct conn *c, size_t w, int blocked)
{
    if (c->id) /* a WebSocket (hub_add gave it an id): how well its writes batch */
        METRIC_INC(ws_writes);
    outq_consume(&c->out, w);
    METRIC_ADD(bytes_out, w);
    /* A closing peer that still reads gets its time renewed by the progress. */
    if (w > 0 && c->state == CONN_CLOSING)
        dl_touch(&srv.closing, &c->timeout);
    if ((c->flags & CONN_READ_PAUSED) && c->state == CONN_HTTP && http_has_room(c))
        read_pause(c, 0);
    if (blocked) {
        want_write(c, 1);
        io_update(c); /* a TLS write may wait for the other direction */
        return 0;
    }
    return 1;
}

static void conn_flush(struct conn *c)
{
    struct iovec iov[IOV_MAX];
    for (;;) {
        body_fill(c);
        if (c->state == CONN_DEAD)
            return;
        if (!outq_count(&c->out) && !(conn_tls(c) && tls_output_pending(conn_tls(c))))
            break;
        int n = outq_iov(&c->out, iov, IOV_MAX);
        int blocked = 0;
        ssize_t w = io_writev(c, iov, n, &blocked);
        if (w < 0) {
            conn_kill(c, 1006);
            return;
        }
        if (!conn_wrote(c, (size_t)w, blocked))
            return;
    }
    conn_drained(c);
}

/* One write of c through io_uring took res bytes of offered, or failed with -errno: handled as
 * conn_flush handles io_writev's result. */
static void flush_sent(void *arg, int res, size_t offered)
{
    struct conn *c = arg;
    struct log_ctx prev = log_ctx_set(c->id, c->fd);
    size_t w = res > 0 ? (size_t)res : 0;
    if (res < 0 && res != -EAGAIN && res != -EWOULDBLOCK && res != -EINTR) {
        log_debug("conn %llu: write failed: %s", (unsigned long long)c->id, strerror(-res));
        conn_kill(c, 1006);
    } else if (conn_wrote(c, w, w < offered)) { /* short: the socket is full, wait for it */
        conn_flush(c); /* what one write could not carry (past IOV_MAX frames), or: drained */
    }
    log_ctx = prev;
}

/* Writes what every connection on the flush list has queued. With io_uring, the plain
 * WebSockets' writes go in batches of one system call each (uring.h); TLS and HTTP connections
 * (whose writes may be several calls, or a file's next chunk), and every connection without
 * io_uring, through conn_flush. */
static void flush_all(void)
{
    struct iovec iov[IOV_MAX];
    struct log_ctx prev = log_ctx;
    while (srv.flush_list) {
        while (srv.flush_list) {
            struct conn *c = srv.flush_list;
            srv.flush_list = c->next_flush;
            c->flags &= (uint16_t)~CONN_IN_FLUSH;
            if (c->state == CONN_DEAD)
                continue;
            log_ctx_set(c->id, c->fd);
            if (!uring_on() || conn_tls(c) || !c->id || !outq_count(&c->out)) {
                conn_flush(c);
                continue;
            }
            int n = outq_iov(&c->out, iov, IOV_MAX);
            if (uring_add(c->fd, iov, n, c) < 0) {
                uring_submit(flush_sent);
                if (!uring_on() || uring_add(c->fd, iov, n, c) < 0)
                    conn_flush(c);
            }
        }
        if (uring_on())
            uring_submit(flush_sent); /* its callbacks may list connections again */
    }
    log_ctx = prev;
}


/* ---- hub callbacks ------------------------------------------------------------------- */

/* With --flush-delay, whether what c's queue holds goes out without waiting: a control frame (a
 * close is queued by conn_queue_raw, never held; a ping or pong comes through the hub: the peer
 * measures or awaits it), or a queue that already makes a write worth its cost. A write costs
 * about 6 us here whatever it carries, so at 16 KB (some 100 chat frames) the call is a small
 * part of it and holding more buys little but latency; the queue is also kept well below
 * --send-queue, so holding never makes a peer a slow consumer; and one sendmsg takes at most
 * IOV_MAX frames. */
static int output_urgent(const struct conn *c)
{
    uint32_t count = outq_count(&c->out);
    return (outq_last(&c->out)->data[0] & 0x08) || count >= IOV_MAX ||
           outq_bytes(&c->out) + (size_t)count * OUTQ_FRAME_COST >= srv.hold_bytes;
}

/* Without --flush-delay, called when c's queue fills (written at this pass's safe point); with
 * it, for every frame queued (hub_queued_each): held, or written now when it must not wait. */
static void on_hub_queued(struct conn *c)
{
    if (srv.cfg->flush_delay_ms && !output_urgent(c))
        hold_add(c);
    else
        flush_list_add(c);
}

/* A peer that cannot keep up: its pending frames are dropped (memory stays bounded), a close
 * 1008 follows whatever part of a frame is already on the wire. Called during a fan-out, so
 * membership is left alone until the safe point. */
static void on_hub_overflow(struct conn *c)
{
    if (c->flags & CONN_CLOSE_SENT)
        return;
    struct log_ctx prev = log_ctx_set(c->id, c->fd);
    log_warn("conn %llu: slow consumer closed (%zu bytes queued, limit %zu)",
             (unsigned long long)c->id, outq_bytes(&c->out), srv.cfg->send_queue);
    METRIC_INC(slow_consumers);
    uint32_t queued = outq_count(&c->out);
    outq_drop_unsent(&c->out);
    METRIC_ADD(frames_dropped, queued - outq_count(&c->out));
    conn_close_ws(c, 1008, "slow consumer: send queue full");
    log_ctx = prev;
}

static void on_hub_close(struct conn *c, uint16_t code, const char *reason)
{
    struct log_ctx prev = log_ctx_set(c->id, c->fd);
    log_debug("conn %llu: closed by script (%u %s)", (unsigned long long)c->id, code, reason);
    conn_close_ws(c, code, reason);
    log_ctx = prev;
}

/* ---- inbound rate limits ------------------------------------------------------------ */

/* A peer over its budget is paused, not closed: its socket is not read (TCP pushes back on it)
 * until a timer says its buckets allow it again. Its messages all arrive, late and in order;
 * pings and a close it sends wait behind them on the wire. Only an open WebSocket is limited: a
 * close (ours or its) ends the pause, and a paused peer is not "silent" (--pong-timeout). */

static void on_rate_timer(EV_P_ ev_timer *w, int revents)
{
    rate_resume(container_of(w, struct conn_rate, timer)->conn);
}

/* Gives c its buckets when a rate limit is set (at the upgrade). Without memory it goes
 * unlimited, which is logged. */
static void rate_start(struct conn *c)
{
    const struct config *cfg = srv.cfg;
    if (cfg->rate_msgs <= 0 && cfg->rate_bytes <= 0)
        return;
    struct conn_rate *r = calloc(1, sizeof *r);
    if (!r || !ext_of(c)) {
        free(r);
        log_warn("conn %llu: no memory for its rate limit", (unsigned long long)c->id);
        return;
    }
    ev_tstamp now = ev_now(srv.loop);
    bucket_init(&r->msgs, cfg->rate_msgs, cfg->rate_msgs_burst, now);
    bucket_init(&r->bytes, cfg->rate_bytes, cfg->rate_bytes_burst, now);
    ev_timer_init(&r->timer, on_rate_timer, 0, 0);
    r->conn = c;
    c->ext->rate = r;
}

/* Stops reading c until its buckets refill: a message for --rate-msgs, for --rate-bytes a tenth
 * of a second's worth (at least 512 bytes, at most its burst), so a flooder costs at most about
 * ten wake-ups a second. */
static void rate_pause(struct conn *c)
{
    struct conn_rate *r = conn_rate(c);
    if (c->flags & CONN_RATE_PAUSED)
        return;
    ev_tstamp now = ev_now(srv.loop);
    double wait = 0;
    if (r->msgs.rate > 0 && bucket_level(&r->msgs, now) < 1)
        wait = bucket_wait(&r->msgs, 1, now);
    if (r->bytes.rate > 0 && bucket_level(&r->bytes, now) < 1) {
        double quantum = r->bytes.rate / 10 < 512 ? 512 : r->bytes.rate / 10;
        double w = bucket_wait(&r->bytes, quantum, now);
        if (w > wait)
            wait = w;
    }
    if (wait < 0.001)
        wait = 0.001;
    c->flags |= CONN_RATE_PAUSED;
    read_pause(c, 1);
    ev_timer_set(&r->timer, wait, 0);
    ev_timer_start(srv.loop, &r->timer);
    srv.rate_pauses++;
    srv.rate_paused++;
    log_debug("conn %llu: over its inbound rate: paused %.3f s", (unsigned long long)c->id, wait);
}

/* Ends c's pause: what it sent that is held is fed first (it may pause again), then reading
 * resumes. */
static void rate_resume(struct conn *c)
{
    if (!(c->flags & CONN_RATE_PAUSED))
        return;
    c->flags &= (uint16_t)~CONN_RATE_PAUSED;
    srv.rate_paused--;
    ev_timer_stop(srv.loop, &conn_rate(c)->timer);
    if (c->state == CONN_DEAD)
        return;
    if (c->state == CONN_WS && ws_held(c)) {
        ws_input(c, NULL, 0);
        if (c->flags & (CONN_RATE_PAUSED | CONN_INPUT_HELD) || c->state == CONN_DEAD)
            return;
    }
    read_pause(c, 0);
}

/* Bytes of c's socket that may be read now, up to len; 0 when c is paused (its timer set). */
static size_t rate_allow(struct conn *c, size_t len)
{
    struct conn_rate *r = conn_rate(c);
    if (!r || !conn_is_open(c))
        return len;
    ev_tstamp now = ev_now(srv.loop);
    if (r->msgs.rate > 0 && bucket_level(&r->msgs, now) < 1) {
        rate_pause(c);
        return 0;
    }
    if (r->bytes.rate > 0) {
        double level = bucket_level(&r->bytes, now);
        if (level < 1) {
            rate_pause(c);
            return 0;
        }
        if (level < (double)len)
            len = (size_t)level;
    }
    return len;
}

/* Messages the next feed may deliver under --rate-msgs. */
static unsigned rate_budget(struct conn *c)
{
    struct conn_rate *r = conn_rate(c);
    if (!r || r->msgs.rate <= 0 || !conn_is_open(c))
        return WS_MESSAGES_PER_FEED;
    double level = bucket_level(&r->msgs, ev_now(srv.loop));
    return level < 1 ? 0 : level >= WS_MESSAGES_PER_FEED ? WS_MESSAGES_PER_FEED : (unsigned)level;
}

/* ---- WebSocket input ----------------------------------------------------------------- */

static void on_ws_message(struct conn *c, int binary, const uint8_t *data, size_t len)
{
    if (conn_rate(c))
        bucket_take(&conn_rate(c)->msgs, 1);
    /* After a close, incoming data is no longer delivered (RFC 6455 1.4). */
    if (conn_is_open(c)) {
        METRIC_INC(messages_in);
        METRIC_ADD(message_bytes_in, len);
        script_message(c, binary, data, len);
    }
}

/* Lists c's held input for the next pass. Returns 0, or -1 on no memory. */
static int input_held_add(struct conn *c)
{
    if (srv.ninput_held == srv.capinput_held) {
        size_t cap = srv.capinput_held ? srv.capinput_held * 2 : 16;
        struct conn **n = realloc(srv.input_held, cap * sizeof *n);
        if (!n)
            return -1;
        srv.input_held = n;
        srv.capinput_held = cap;
    }
    srv.input_held[srv.ninput_held++] = c;
    c->flags |= CONN_INPUT_HELD;
    return 0;
}

static void ws_input(struct conn *c, const uint8_t *data, size_t len)
{
    keepalive_heard(c);
    int rc = ws_feed_budget(c, data, len, rate_budget(c));
    if (rc < 0) {
        log_error("conn %llu: out of memory in framing", (unsigned long long)c->id);
        conn_kill(c, 1011);
    } else if (rc > 0 && c->state == CONN_WS) {
        if (rc != 1000 && rc != 1001 && rc != 1005)
            log_info("conn %llu: closed with %d (%s)", (unsigned long long)c->id, rc,
                     close_reason((uint16_t)rc));
        conn_closing(c, (uint16_t)rc);
    } else if (rc == 0 && ws_held(c) && !(c->flags & CONN_INPUT_HELD) && rate_budget(c) == 0) {
        rate_pause(c); /* over --rate-msgs: the rest waits for the bucket */
    } else if (rc == 0 && ws_held(c) && !(c->flags & CONN_INPUT_HELD)) {
        /* Its budget of messages used: the rest waits for the next pass, reading paused. */
        if (input_held_add(c) < 0) {
            log_error("conn %llu: out of memory holding its input", (unsigned long long)c->id);
            conn_kill(c, 1011);
            return;
        }
        read_pause(c, 1);
        safe_point_arm();
    }
}

/* ---- HTTP ---------------------------------------------------------------------------- */

static void http_fail(struct conn *c, int status, const char *reason, const char *extra)
{
    log_info("conn %d: HTTP %d: %s", c->fd, status, reason);
    if (!(c->flags & CONN_ADMIN) && status >= 100 && status < 600)
        metrics.http_responses[status / 100]++;
    conn_queue_raw(c, http_error(status, reason, extra));
    c->flags |= CONN_HTTP_CLOSE;
}

static int is_ws_path(struct http_str path)
{
    size_t n = strlen(srv.cfg->ws_path);
    return path.len >= n && memcmp(path.p, srv.cfg->ws_path, n) == 0 &&
           (path.len == n || path.p[n] == '/');
}

/* Answers a request for a file: the head now, the body as the output drains (body_fill). */
static void serve_file(struct conn *c, const struct http_request *req)
{
    struct static_error err;
    struct frame *head = static_open(req, &conn_http(c)->body, &err);
    if (!head) {
        http_fail(c, err.status, err.reason, err.extra);
        return;
    }
    METRIC_INC(http_responses[2]);
    conn_queue_raw(c, head);
    c->flags |= CONN_SERVED;
    if (!req->keep_alive)
        c->flags |= CONN_HTTP_CLOSE;
}

/* The handshake rules for c: the server's, plus the address c arrived on (an IPv4
 * client of a dual-stack socket arrives on "::ffff:a.b.c.d": it is given as a.b.c.d). That
 * address serves only to check an Origin: without one (not a browser) it is not asked for. */
static const struct hs_config *hs_config_for(struct conn *c, const struct http_request *req)
{
    static struct hs_config hs;
    static char addr[INET6_ADDRSTRLEN];
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    hs = srv.hs;
    if (conn_tls(c) && srv.cfg->tls_port >= 0)
        hs.listen_host = srv.cfg->tls_host; /* it came in on --tls-addr */
    addr[0] = '\0';
    hs.local_addr = addr;
    if (!http_header(req, "Origin") || getsockname(c->fd, (struct sockaddr *)&ss, &sl) < 0)
        return &hs;
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
        if (IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr)) {
            inet_ntop(AF_INET, &a6->sin6_addr.s6_addr[12], addr, sizeof addr);
            hs.local_loopback = a6->sin6_addr.s6_addr[12] == 127;
        } else {
            inet_ntop(AF_INET6, &a6->sin6_addr, addr, sizeof addr);
            hs.local_loopback = IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr);
        }
    } else if (ss.ss_family == AF_INET) {
        struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &a4->sin_addr, addr, sizeof addr);
        hs.local_loopback = (ntohl(a4->sin_addr.s_addr) >> 24) == 127;
    }
    return &hs;
}

/* Is this upgrade the common one, whose meta is common_meta: the --ws-path itself, no query,
 * no subprotocol? */
static int is_common_upgrade(const struct http_request *req, const char *protocol)
{
    return !protocol[0] && !req->query.len && req->path.len == common_meta.path_len &&
           memcmp(req->path.p, common_meta.path, req->path.len) == 0;
}

/* Returns 1 when the connection became a WebSocket. */
static int upgrade(struct conn *c, const struct http_request *req)
{
    struct hs_result hs;
    if (handshake_check(req, hs_config_for(c, req), &hs) < 0) {
        metrics.refused[hs.status == 405   ? REFUSED_METHOD
                        : hs.status == 426 ? REFUSED_VERSION
                        : hs.status == 403 ? REFUSED_ORIGIN
                                           : REFUSED_BAD_REQUEST]++;
        http_fail(c, hs.status, hs.reason, hs.extra_header);
        return 0;
    }
    /* The peer's address is written out only for a line that is logged. */
    char remote[CONN_PEER_TEXT];
    int debug = log_threshold <= LOG_DEBUG;
    if (debug)
        conn_peer_text(&c->peer, remote, sizeof remote);
    int meta_ok = 1;
    if (!is_common_upgrade(req, hs.protocol)) {
        struct conn_meta *m = ext_of(c) ? conn_meta_new(req->path.p, req->path.len, req->query.p,
                                                        req->query.len, hs.protocol)
                                        : NULL;
        if (m)
            c->ext->meta = m;
        meta_ok = m != NULL;
    }
    c->flags |= CONN_META;
    if (!meta_ok || hub_add(c) < 0) {
        meta_free(c);
        METRIC_INC(refused[REFUSED_BUSY]);
        http_fail(c, 503, "out of memory", NULL);
        return 0;
    }

    c->deflate_bits = (uint8_t)hs.deflate.server_bits;
    if (debug && hs.deflate.server_bits)
        log_debug("conn from %s: permessage-deflate (%s)", remote, hs.deflate.response);
    else if (debug && hs.deflate.declined)
        log_debug("conn from %s: permessage-deflate offer declined: %s", remote,
                  hs.deflate.declined);

    /* The 101 goes first; whatever the connect hook sends follows it. */
    log_ctx.conn = c->id;
    conn_set_state(c, CONN_WS);
    conn_queue_raw(c, handshake_response(&hs));
    char reason[256];
    int rc = script_connect(c, req, hs.protocol, reason, sizeof reason);
    if (rc < 0) {
        hub_remove(c); /* drops the 101 and anything the hook queued */
        meta_free(c);
        /* Back to HTTP for the error response, unless the hook already closed it (then it is
         * closing, or dead, and the close frame went with the 101). */
        if (c->state == CONN_WS)
            conn_set_state(c, CONN_HTTP);
        log_info("conn from %s refused by the connect hook: %s",
                 conn_peer_text(&c->peer, remote, sizeof remote), reason);
        METRIC_INC(refused[rc == -1 ? REFUSED_HOOK : REFUSED_HOOK_ERROR]);
        if (c->state != CONN_DEAD)
            conn_queue_raw(c, http_error(rc == -1 ? 403 : 500, reason, NULL));
        c->flags |= CONN_HTTP_CLOSE;
        return 0;
    }
    /* Accepted: its disconnect will be reported, even if the hook already closed it. */
    c->flags |= CONN_OPENED;
    METRIC_INC(upgrades);
    metrics.http_responses[1]++;
    if (c->state == CONN_WS) {
        keepalive_heard(c);
        rate_start(c);
        if (debug)
            log_debug("conn %llu: WebSocket open from %s", (unsigned long long)c->id, remote);
    }
    return 1;
}

/* Handles the complete requests in c's buffer while its output has room for more. */
static void http_process(struct conn *c)
{
    struct http_conn *h;
    while ((h = conn_http(c)) && h->len && c->state == CONN_HTTP && !(c->flags & CONN_HTTP_CLOSE)) {
        if (!http_has_room(c)) {
            read_pause(c, 1); /* resumed by conn_flush once the output drains */
            return;
        }
        struct http_request req;
        const char *reason = NULL;
        int rc = http_parse_head(h->buf, h->len, srv.cfg->max_request, &req, &reason);
        if (rc == 0)
            return;
        if (rc > 1) {
            http_fail(c, rc, reason, NULL);
            return;
        }
        if (req.content_length > srv.cfg->max_body) {
            http_fail(c, 413, "request body too large", NULL);
            return;
        }
        if (c->flags & CONN_ADMIN) {
            int close_after = 0;
            conn_queue_raw(c, admin_respond(&req, server_listening(), &close_after));
            c->flags |= CONN_SERVED;
            if (close_after)
                c->flags |= CONN_HTTP_CLOSE;
        } else if (is_ws_path(req.path)) {
            /* The buffer leaves the connection (req points into it): accepted or refused, no
             * other request is read from it. */
            c->ext->http = NULL;
            ext_trim(c);
            srv.request_bytes -= h->cap;
            if (upgrade(c, &req) && c->state == CONN_WS && h->len > req.head_len)
                ws_input(c, (const uint8_t *)h->buf + req.head_len, h->len - req.head_len);
            free(h);
            return;
        } else {
            serve_file(c, &req);
        }
        if (c->state == CONN_DEAD)
            return; /* out of memory: conn_http(c) is gone */
        /* A request with a body is answered and the connection closed: bodies are never read,
         * so the next request could not be found. */
        if (req.content_length || req.chunked)
            c->flags |= CONN_HTTP_CLOSE;
        memmove(h->buf, h->buf + req.head_len, h->len - req.head_len);
        h->len -= req.head_len;
    }
}

/* A TLS read ended the connection: a failed handshake is one line with the peer and the
 * reason (a peer that left before sending anything is not worth one above debug). */
static void tls_read_failed(struct conn *c)
{
    if (!tls_failed_in_handshake(conn_tls(c))) {
        log_debug("conn %d: TLS connection ended: %s", c->fd, tls_error(conn_tls(c)));
        return;
    }
    char remote[CONN_PEER_TEXT];
    conn_peer_text(&c->peer, remote, sizeof remote);
    if (tls_bytes_received(conn_tls(c)) == 0)
        log_debug("conn %d: TLS: %s left before its ClientHello", c->fd, remote);
    else
        log_info("conn %d: TLS handshake with %s failed: %s", c->fd, remote,
                 tls_error(conn_tls(c)));
}

/* Reads from c's socket into buf, through TLS on a TLS connection. Returns the bytes read
 * (fewer than len only when nothing more is there now), 0 when there is nothing to read now,
 * or -1 when the connection ended (it is killed). */
static ssize_t sock_read(struct conn *c, void *buf, size_t len)
{
    if (conn_tls(c)) {
        int wanted_write = tls_read_wants_write(conn_tls(c));
        int was_done = tls_handshake_done(conn_tls(c));
        ssize_t n = tls_read(conn_tls(c), buf, len);
        if (!was_done && tls_handshake_done(conn_tls(c))) {
            srv.request_bytes -= TLS_HANDSHAKE_MEMORY;
            log_debug("conn %d: TLS handshake done (%s)", c->fd, tls_version(conn_tls(c)));
        }
        if (n < 0) {
            tls_read_failed(c);
            conn_kill(c, 1006);
            return -1;
        }
        if (tls_read_wants_write(conn_tls(c)) != wanted_write) {
            io_update(c);
            if (c->state == CONN_DEAD)
                return -1; /* the kernel would not watch it: closed, its buffers gone */
        }
        bytes_read += (size_t)n;
        METRIC_ADD(bytes_in, (size_t)n);
        return n;
    }
    for (;;) {
        ssize_t n = read(c->fd, buf, len);
        if (n > 0) {
            METRIC_ADD(bytes_in, (size_t)n);
            return n;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        conn_kill(c, 1006);
        return -1;
    }
}

/* One read of request bytes straight into c's request buffer (grown by doubling up to
 * --max-request), then the requests they complete. Returns 1 when more may be waiting. */
static int http_read(struct conn *c)
{
    http_process(c); /* what is buffered first: reading resumes after a drain */
    if (c->state != CONN_HTTP || (c->flags & (CONN_HTTP_CLOSE | CONN_READ_PAUSED)))
        return 0;
    struct http_conn *h = conn_http(c);
    if (!h || h->len == h->cap) {
        size_t old = h ? h->cap : 0;
        size_t cap = h ? h->cap * 2 : HTTP_BUF_MIN;
        if (cap > srv.cfg->max_request)
            cap = srv.cfg->max_request;
        /* Connections still sending requests share one budget: a crowd of half-sent heads
         * cannot take more than --request-memory, whatever the descriptor limit. */
        if (srv.request_bytes - old + cap > srv.cfg->request_memory) {
            log_warn("conn %d: request buffers are at --request-memory (%zu bytes); 503",
                     c->fd, srv.request_bytes);
            http_fail(c, 503, "server busy: too many requests in progress", NULL);
            return 0;
        }
        struct http_conn *n = ext_of(c) ? realloc(h, sizeof *h + cap) : NULL;
        if (!n) {
            conn_kill(c, 1006);
            return 0;
        }
        if (!h)
            *n = (struct http_conn){.body = {-1, 0}};
        n->cap = cap;
        c->ext->http = h = n;
        srv.request_bytes += cap - old;
    }
    ssize_t n = sock_read(c, h->buf + h->len, h->cap - h->len);
    if (n <= 0)
        return 0;
    int full = (size_t)n == h->cap - h->len;
    h->len += (size_t)n;
    http_process(c);
    /* An idle keep-alive connection keeps no buffer. */
    if (conn_http(c) && conn_http(c)->len == 0 && conn_http(c)->body.fd < 0)
        http_free(c);
    return full;
}

static void conn_read_some(struct conn *c)
{
    /* A TLS handshake first, without a request buffer: none is taken before there is a
     * request to put in it. */
    if (conn_tls(c) && !tls_handshake_done(conn_tls(c))) {
        char none;
        if (sock_read(c, &none, 0) < 0 || !tls_handshake_done(conn_tls(c)))
            return;
    }
    for (int i = 0; i < READS_PER_EVENT; i++) {
        if (c->state == CONN_HTTP && !(c->flags & CONN_HTTP_CLOSE)) {
            if (!http_read(c))
                return;
            continue;
        }
        if (c->state == CONN_DEAD || (c->flags & (CONN_INPUT_HELD | CONN_RATE_PAUSED)))
            return;
        size_t want = rate_allow(c, sizeof readbuf);
        if (want == 0)
            return;
        ssize_t n = sock_read(c, readbuf, want);
        if (n <= 0)
            return;
        if (conn_rate(c) && c->state == CONN_WS)
            bucket_take(&conn_rate(c)->bytes, (double)n);
        /* After a close or an HTTP error, the peer's last words are not needed. */
        if (c->state == CONN_WS)
            ws_input(c, readbuf, (size_t)n);
        if ((size_t)n < want || (c->flags & (CONN_INPUT_HELD | CONN_RATE_PAUSED)))
            return;
    }
}

static void conn_read(struct conn *c)
{
    size_t before = bytes_read;
    conn_read_some(c);
    /* What OpenSSL already decrypted makes no readiness event: read it next (when this read
     * made progress, so that it ends). */
    if (conn_tls(c) && c->state != CONN_DEAD &&
        !(c->flags & (CONN_READ_PAUSED | CONN_INPUT_HELD)) && bytes_read != before &&
        tls_has_buffered_input(conn_tls(c)))
        poller_feed(c, EV_READ);
}

static void on_conn_io(struct conn *c, int revents)
{
    struct log_ctx prev = log_ctx_set(c->id, c->fd);
    if (!conn_tls(c)) {
        if (revents & EV_WRITE)
            conn_flush(c);
        if ((revents & EV_READ) && c->state != CONN_DEAD)
            conn_read(c);
    } else {
        /* Over TLS, each side waits for the readiness it asked for (read_event, write_event).
         * A read event fed by read_pause or conn_read is always for reading. */
        int rd = read_event(c), wr = write_event(c);
        if (wr && (revents & wr))
            conn_flush(c);
        if (c->state != CONN_DEAD && (revents & (rd | (rd ? EV_READ : 0))))
            conn_read(c);
    }
    log_ctx = prev;
}

/* Seconds accept() pauses when out of descriptors, and between two log lines about it. */
#define ACCEPT_RETRY_SECONDS 0.1
#define ACCEPT_LOG_SECONDS 10.0

/* Out of descriptors (or memory): the pending connection stays in the backlog and accepting
 * pauses for a while instead of spinning on it. Logged once, then once per ACCEPT_LOG_SECONDS
 * with the number of retries that failed in between. */
static void accept_pause(int err)
{
    ev_tstamp now = ev_now(srv.loop);
    if (!srv.accept_paused) {
        srv.accept_paused = 1;
        srv.accept_refusals = 0;
    }
    if (srv.accept_refusals == 0 || now - srv.accept_logged >= ACCEPT_LOG_SECONDS) {
        log_warn("cannot accept connections: %s (%u retries since the last report); "
                 "retrying every %.0f ms", strerror(err), srv.accept_refusals,
                 ACCEPT_RETRY_SECONDS * 1000);
        srv.accept_logged = now;
        srv.accept_refusals = 0;
    }
    srv.accept_refusals++;
    for (int i = 0; i < srv.nlisteners; i++)
        ev_io_stop(srv.loop, &srv.listeners[i].io);
    /* libev keeps what a fired timer was last set to (0 after a one-shot): set it each time. */
    ev_timer_set(&srv.accept_retry, ACCEPT_RETRY_SECONDS, 0);
    ev_timer_start(srv.loop, &srv.accept_retry);
}

/* Refusals: the first after a quiet spell is logged at once; the ones that follow are counted
 * and summed up in one line per REFUSAL_LOG_SECONDS while they go on. */
#define REFUSAL_LOG_SECONDS 10.0
#define REFUSED_DRAINING (CAPS_NOMEM + 1)
/* Retry-After of a refusal: a full server or address, and a draining one (the next process is
 * taking over: try again at once). */
#define CAPS_RETRY_AFTER "Retry-After: 5\r\n"
#define DRAIN_RETRY_AFTER "Retry-After: 1\r\n"

static const char *refusal_reason(int why)
{
    switch (why) {
    case CAPS_TOTAL: return "server busy: too many connections";
    case CAPS_PER_IP: return "too many connections from your address";
    case REFUSED_DRAINING: return "server restarting: try again";
    default: return "server busy: out of memory";
    }
}

static void on_refusal_log(EV_P_ ev_timer *w, int revents)
{
    unsigned *n = srv.refused;
    if (!(n[CAPS_TOTAL] + n[CAPS_PER_IP] + n[CAPS_NOMEM] + n[REFUSED_DRAINING])) {
        ev_timer_stop(EV_A_ w); /* quiet: the next refusal is logged at once */
        return;
    }
    log_warn("%u more connections refused with 503 in the last %.0f s: %u at "
             "--max-connections %u, %u at --max-connections-per-ip %u (last from %s), %u "
             "without memory, %u while draining", n[CAPS_TOTAL] + n[CAPS_PER_IP] +
             n[CAPS_NOMEM] + n[REFUSED_DRAINING], REFUSAL_LOG_SECONDS, n[CAPS_TOTAL],
             srv.cfg->max_connections, n[CAPS_PER_IP], srv.cfg->max_conns_per_ip,
             srv.refused_last, n[CAPS_NOMEM], n[REFUSED_DRAINING]);
    memset(srv.refused, 0, sizeof srv.refused);
}

/* Answers c 503 with Retry-After and the reason at once, without reading its request (it is
 * read and dropped until the peer's end, so the answer is not lost to a reset). */
static void refuse(struct conn *c, int why, const struct sockaddr *sa)
{
    conn_queue_raw(c, http_error(503, refusal_reason(why),
                                 why == REFUSED_DRAINING ? DRAIN_RETRY_AFTER : CAPS_RETRY_AFTER));
    c->flags |= CONN_HTTP_CLOSE;
    srv.refused_total[why]++;
    if (why == CAPS_PER_IP)
        caps_addr_text(sa, srv.refused_last, sizeof srv.refused_last);
    if (ev_is_active(&srv.refusal_log)) {
        srv.refused[why]++;
        return;
    }
    char addr[INET6_ADDRSTRLEN + 4];
    caps_addr_text(sa, addr, sizeof addr);
    if (why == CAPS_TOTAL)
        log_warn("connection from %s refused with 503: --max-connections %u reached "
                 "(further refusals are summed up every %.0f s)", addr,
                 srv.cfg->max_connections, REFUSAL_LOG_SECONDS);
    else if (why == CAPS_PER_IP)
        log_warn("connection from %s refused with 503: --max-connections-per-ip %u reached "
                 "(further refusals are summed up every %.0f s)", addr,
                 srv.cfg->max_conns_per_ip, REFUSAL_LOG_SECONDS);
    else
        log_warn("connection from %s refused with 503: %s", addr, refusal_reason(why));
    ev_timer_set(&srv.refusal_log, REFUSAL_LOG_SECONDS, REFUSAL_LOG_SECONDS);
    ev_timer_start(srv.loop, &srv.refusal_log);
}

/* Takes one connection from the backlog of listener l: on a public one (plain or TLS), admitted
 * by the caps (counted until freed) or refused; on the admin one, never counted (monitoring still
 * works when the caps are reached). Returns 0, or -1 when there is none to take now. */
static int accept_one(struct listener *l, int draining)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int fd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
            accept_pause(errno);
        return -1;
    }
    if (srv.accept_paused) {
        log_notice("accepting connections again");
        srv.accept_paused = 0;
    }
    /* Linux gives an accepted socket the listener's TCP_NODELAY (set in listen_on): the first
     * accept checks that once, and only if it did not is it set on every one. */
    static int nodelay_inherited = -1;
    int one = 1;
    if (nodelay_inherited < 0) {
        int v = 0;
        socklen_t vl = sizeof v;
        nodelay_inherited = getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &vl) == 0 && v;
    }
    if (!nodelay_inherited)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    /* A TLS handshake holds tens of KB until it completes: the handshakes in progress share
     * --request-memory with the HTTP requests in progress. */
    if (l->tls && srv.request_bytes + TLS_HANDSHAKE_MEMORY > srv.cfg->request_memory) {
        log_warn("TLS connection refused: handshakes and requests in progress are at "
                 "--request-memory (%zu bytes)", srv.request_bytes);
        close(fd);
        return 0;
    }
    struct tls_conn *t = l->tls ? tls_conn_new(fd) : NULL;
    errno = ENOMEM;
    struct conn *c = l->tls && !t ? NULL : conn_new(fd, (struct sockaddr *)&ss, t);
    if (!c) {
        log_warn("connection refused: %s", strerror(errno));
        tls_conn_free(t);
        close(fd);
        return -1;
    }
    if (t)
        srv.request_bytes += TLS_HANDSHAKE_MEMORY;
    METRIC_INC(accepted);
    /* The whole time allowed to send requests counts from here: serving one does not
     * renew it (--handshake-timeout). */
    dl_touch(&srv.requests, &c->timeout);
    if (l->admin) {
        c->flags |= CONN_ADMIN;
        return 0;
    }
    int why = draining ? REFUSED_DRAINING : (int)caps_admit((struct sockaddr *)&ss);
    if (why == CAPS_OK) {
        c->flags |= CONN_COUNTED; /* released by its address (conn_free) */
    } else {
        refuse(c, why, (struct sockaddr *)&ss);
    }
    return 0;
}

static void on_accept(EV_P_ ev_io *w, int revents)
{
    struct listener *l = container_of(w, struct listener, io);
    for (int i = 0; i < 64; i++)
        if (accept_one(l, 0) < 0)
            return;
}

static void on_accept_retry(EV_P_ ev_timer *w, int revents)
{
    if (!srv.shutting_down)
        for (int i = 0; i < srv.nlisteners; i++)
            ev_io_start(EV_A_ & srv.listeners[i].io);
}

/* ---- timeouts ------------------------------------------------------------------------ */

/* An HTTP connection's time is up. With a response still going out, it takes no more requests
 * and gets the closing time (renewed while the peer reads) to finish it; else it is closed. */
static void on_request_timeout(struct dl_list *l, struct dl_node *node, ev_tstamp now)
{
    struct conn *c = container_of(node, struct conn, timeout);
    struct log_ctx prev = log_ctx_set(c->id, c->fd);
    if (outq_count(&c->out) || (conn_http(c) && conn_http(c)->body.fd >= 0)) {
        log_info("conn %d: no more requests after %.1f s; finishing the response", c->fd,
                 l->timeout);
        c->flags |= CONN_HTTP_CLOSE;
        if (conn_http(c))
            conn_http(c)->len = 0;
        conn_closing(c, 1006);
        log_ctx = prev;
        return;
    }
    if (conn_tls(c) && !tls_handshake_done(conn_tls(c)) && tls_bytes_received(conn_tls(c)))
        log_info("conn %d: TLS handshake not completed within %.1f s, closed", c->fd,
                 l->timeout);
    else if (conn_http(c) && conn_http(c)->len)
        log_info("conn %d: request not completed within %.1f s, closed", c->fd, l->timeout);
    else /* idle keep-alive, or never sent a byte: nothing worth a line at info */
        log_debug("conn %d: no request in progress after %.1f s, closed", c->fd, l->timeout);
    conn_kill(c, 1006);
    log_ctx = prev;
}

static void on_silence_timeout(struct dl_list *l, struct dl_node *node, ev_tstamp now)
{
    struct conn *c = container_of(node, struct conn, timeout);
    if (c->flags & CONN_RATE_PAUSED) { /* it is not silent: we are not reading it */
        keepalive_heard(c);
        return;
    }
    struct log_ctx prev = log_ctx_set(c->id, c->fd);
    log_info("conn %llu: silent for %.1f s, closed", (unsigned long long)c->id,
             srv.cfg->pong_timeout);
    conn_kill(c, 1006);
    log_ctx = prev;
}

static void on_ping_due(struct dl_list *l, struct dl_node *node, ev_tstamp now)
{
    struct conn *c = container_of(node, struct conn, timeout);
    hub_send(c, srv.ping_frame);
    if (c->state != CONN_WS)
        return; /* the ping overflowed its queue: closing now, on the closing list */
    /* From when the ping was due, not from now: a late timer does not push the close back. */
    ev_tstamp due = node->stamp + l->timeout;
    if (++c->pings >= srv.pings_max)
        dl_touch_at(&srv.silence, node, due); /* the rest of --pong-timeout */
    else
        dl_touch_at(l, node, due);
}

static void on_closing_timeout(struct dl_list *l, struct dl_node *node, ev_tstamp now)
{
    struct conn *c = container_of(node, struct conn, timeout);
    struct log_ctx prev = log_ctx_set(c->id, c->fd);
    conn_kill(c, 1006);
    log_ctx = prev;
}

/* ---- start and stop ------------------------------------------------------------------ */

/* Binds and listens on host:port ("" host: every address). what names it in the log line:
 * "listening on ADDR" for the public listener ("listening on ADDR (TLS)" with tls), "WHAT on
 * ADDR" for another; reuse_port: SO_REUSEPORT (--reuse-port). */
static int listen_on(const char *chost, int cport, const char *what, int tls, int reuse_port,
                     char *err,
                     size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res, *ai;
    char port[8];
    snprintf(port, sizeof port, "%d", cport);
    int rc = getaddrinfo(chost[0] ? chost : NULL, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve '%s': %s", chost, gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    /* With no host, prefer IPv6 with dual stack so one socket takes both families. */
    for (int pass = 0; pass < 2 && fd < 0; pass++) {
        for (ai = res; ai; ai = ai->ai_next) {
            if (!chost[0] && (pass == 0) != (ai->ai_family == AF_INET6))
                continue;
            fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (fd < 0)
                continue;
            int one = 1, zero = 0;
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
            /* --reuse-port: a second confab may listen beside this one and take over. */
            if (reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) {
                snprintf(err, errlen, "--reuse-port: %s", strerror(errno));
                close(fd);
                fd = -1;
                break;
            }
            if (ai->ai_family == AF_INET6 && !chost[0])
                setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
            /* inherited by the accepted sockets (see accept_one) */
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            /* Every protocol served here has the client speak first (HTTP, TLS): the kernel
             * hands a connection over only once its first bytes are in, so one wake-up takes
             * the connection and its request (before, the handshake's ACK woke the loop and the
             * request often a second time: half the context switches, x0.72-0.94 the CPU per
             * accept+upgrade in make bench). A client that sends nothing is handed over after
             * 1 s anyway (one SYN-ACK retransmission) and gets --handshake-timeout from then;
             * meanwhile it is the kernel's alone (no descriptor, not counted by the caps or the
             * metrics). */
            int defer = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer, sizeof defer);
            if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 4096) == 0)
                break;
            snprintf(err, errlen, "cannot listen on %s:%d%s%s: %s", chost, cport,
                     what ? " for " : "", what ? what : "", strerror(errno));
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        return -1;

    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char host[INET6_ADDRSTRLEN], serv[8];
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    getnameinfo((struct sockaddr *)&ss, sl, host, sizeof host, serv, sizeof serv,
                NI_NUMERICHOST | NI_NUMERICSERV);
    if (what)
        log_notice(ss.ss_family == AF_INET6 ? "%s on [%s]:%s" : "%s on %s:%s", what, host, serv);
    else
        log_notice(ss.ss_family == AF_INET6 ? "listening on [%s]:%s%s" : "listening on %s:%s%s",
                   host, serv, tls ? " (TLS)" : "");
    return fd;
}

/* /metrics: the connection caps and the inbound rate limits. (Nothing of the drain: the admin
 * listener closes when it starts.) */
static void protect_collect(struct metrics_out *o)
{
    static const char *const reasons[] = {
        [CAPS_TOTAL] = "max_connections", [CAPS_PER_IP] = "max_connections_per_ip",
        [CAPS_NOMEM] = "no_memory"};
    const char *name = "confab_connections_refused_total";
    metrics_header(o, name, "counter", "Connections answered 503 at accept by the caps "
                                       "(or for want of memory), by reason");
    for (int i = CAPS_TOTAL; i <= CAPS_NOMEM; i++) {
        char label[64];
        snprintf(label, sizeof label, "reason=\"%s\"", reasons[i]);
        metrics_sample(o, name, label, (double)srv.refused_total[i]);
    }
    metrics_gauge(o, "confab_connections_admitted", "Connections counted by the caps now "
                  "(public listener)", (double)caps_total());
    metrics_gauge(o, "confab_connection_addresses", "Addresses (IPv4, IPv6 /64) with connections "
                  "now, counted with --max-connections-per-ip", (double)caps_addresses());
    metrics_counter(o, "confab_rate_pauses_total", "Times a WebSocket peer was paused by "
                    "--rate-msgs or --rate-bytes", srv.rate_pauses);
    metrics_gauge(o, "confab_rate_paused", "WebSocket peers paused by their inbound rate now",
                  (double)srv.rate_paused);
}

/* Opens the listeners: --addr (TLS when a certificate is given and no --tls-addr), --tls-addr,
 * then --admin-addr: whoever waits for "listening on" finds the public address first. Returns
 * 0, or -1 with a reason in err (none left open). */
static int listeners_open(const struct config *cfg, char *err, size_t errlen)
{
    int separate_tls = cfg->tls_port >= 0;
    struct want { const char *host; int port; const char *what; int tls, admin; } want[3];
    int n = 0;
    want[n++] = (struct want){cfg->host, cfg->port, NULL, cfg->tls_cert && !separate_tls, 0};
    if (separate_tls)
        want[n++] = (struct want){cfg->tls_host, cfg->tls_port, NULL, 1, 0};
    if (cfg->admin_port >= 0)
        want[n++] = (struct want){cfg->admin_host, cfg->admin_port,
                                      "admin (/metrics /healthz /readyz)", 0, 1};
    srv.nlisteners = 0;
    for (int i = 0; i < n; i++) {
        struct listener *l = &srv.listeners[i];
        l->tls = (uint8_t)want[i].tls;
        l->admin = (uint8_t)want[i].admin;
        /* --reuse-port on the public listeners (not the admin one). */
        l->fd = listen_on(want[i].host, want[i].port, want[i].what, want[i].tls,
                          cfg->reuse_port && !want[i].admin, err, errlen);
        if (l->fd < 0) {
            while (srv.nlisteners > 0)
                close(srv.listeners[--srv.nlisteners].fd);
            return -1;
        }
        srv.nlisteners++;
    }
    return 0;
}

int server_start(struct ev_loop *loop, const struct config *cfg, char *err, size_t errlen)
{
    srv.loop = loop;
    srv.cfg = cfg;
    srv.hs = (struct hs_config){.allow_origin = cfg->allow_origin,
                                .subprotocols = cfg->subprotocols, .listen_host = cfg->host,
                                .deflate = cfg->deflate};
    deflate_set_min(cfg->deflate_min);
    if (cfg->tls_cert && tls_init(cfg->tls_cert, cfg->tls_key, err, errlen) < 0)
        return -1;
    if (poller_init(loop, on_conn_io) < 0) {
        snprintf(err, errlen, "epoll_create1: %s", strerror(errno));
        tls_free();
        return -1;
    }
    if (listeners_open(cfg, err, errlen) < 0) {
        poller_free();
        tls_free();
        return -1;
    }
    srv.ping_frame = frame_ws(FRAME_PING, "", 0);
    handshake_init();
    common_meta = (struct conn_meta){.path = cfg->ws_path, .path_len = strlen(cfg->ws_path),
                                     .query = "", .subprotocol = ""};

    static const struct hub_callbacks hub_cb = {on_hub_queued, on_hub_overflow, on_hub_close};
    hub_init(cfg->send_queue, cfg->history, &hub_cb);
    hub_queued_each(cfg->flush_delay_ms != 0);
    srv.hold_bytes = cfg->send_queue / 4 < 16384 ? cfg->send_queue / 4 : 16384;
    ev_init(&srv.hold_timer, on_hold_timer);
    if (cfg->io_uring) {
        char why[160];
        if (uring_init(why, sizeof why) == 0)
            log_info("writes: io_uring, one submission per loop pass");
        else
            log_info("writes: send/sendmsg (io_uring not used: %s)", why);
    } else {
        log_info("writes: send/sendmsg (--io-uring off)");
    }
    static const struct ws_handlers ws_cb = {on_ws_message};
    ws_init(cfg->max_message, &ws_cb);
    /* A reply as large as any message accepted always fits an empty queue. */
    outq_set_frame_max(cfg->max_message + FRAME_HEADER_MAX);
    ws_set_memory_limit(cfg->message_memory);

    dl_init(loop, &srv.requests, cfg->handshake_timeout, on_request_timeout);
    /* Keepalive (keepalive_heard): the pings due before --pong-timeout, and what is left of it
     * after the last. */
    double pings = ceil(cfg->pong_timeout / cfg->ping_interval - 1e-9) - 1;
    srv.pings_max = pings < 0 ? 0 : pings > UINT16_MAX ? UINT16_MAX : (uint16_t)pings;
    double rest = cfg->pong_timeout - srv.pings_max * cfg->ping_interval;
    dl_init(loop, &srv.silence, rest > 0 ? rest : cfg->pong_timeout, on_silence_timeout);
    dl_init(loop, &srv.pings, cfg->ping_interval, on_ping_due);
    dl_init(loop, &srv.closing, CLOSE_WAIT_SECONDS, on_closing_timeout);

    for (int i = 0; i < srv.nlisteners; i++) {
        ev_io_init(&srv.listeners[i].io, on_accept, srv.listeners[i].fd, EV_READ);
        ev_io_start(loop, &srv.listeners[i].io);
    }
    ev_timer_init(&srv.accept_retry, on_accept_retry, ACCEPT_RETRY_SECONDS, 0);
    ev_prepare_init(&srv.prepare, on_prepare);
    ev_prepare_start(loop, &srv.prepare);
    ev_idle_init(&srv.idle, on_idle);
    ev_init(&srv.refusal_log, on_refusal_log);
    caps_init(cfg->max_connections, cfg->max_conns_per_ip);
    metrics_add_collector(protect_collect);
    return 0;
}

/* Stops accepting for good. What is already in the backlog is taken and answered 503 with
 * Retry-After: 1 rather than reset by the close; with --reuse-port the next connections go to
 * the other process listening. */
static void stop_accepting(void)
{
    ev_timer_stop(srv.loop, &srv.accept_retry);
    for (int i = 0; i < srv.nlisteners; i++) {
        struct listener *l = &srv.listeners[i];
        ev_io_stop(srv.loop, &l->io);
        if (l->fd < 0)
            continue;
        /* The plain public backlog is answered 503; a TLS or admin one is closed (a 503 over
         * TLS would first need a handshake per connection). */
        for (int k = 0; k < 4096 && !l->admin && !l->tls && !srv.accept_paused; k++)
            if (accept_one(l, 1) < 0)
                break;
        ev_timer_stop(srv.loop, &srv.accept_retry); /* accept_one may have armed it */
        close(l->fd);
        l->fd = -1;
    }
}

/* An HTTP connection when the server stops: a response going out is finished; an idle
 * keep-alive connection (served before, nothing read since) is closed, as any server may; any
 * other (just accepted, or with a request on its way in) is answered 503 with Retry-After: 1,
 * not reset. No other request is read. */
static void end_http(struct conn *c)
{
    int sending = outq_count(&c->out) || (conn_http(c) && conn_http(c)->body.fd >= 0);
    if (!sending && (c->flags & CONN_SERVED) && !(conn_http(c) && conn_http(c)->len)) {
        conn_kill(c, 1001);
        return;
    }
    if (conn_http(c))
        conn_http(c)->len = 0;
    if (!sending && !(c->flags & CONN_HTTP_CLOSE)) {
        conn_queue_raw(c, http_error(503, refusal_reason(REFUSED_DRAINING), DRAIN_RETRY_AFTER));
        srv.refused_total[REFUSED_DRAINING]++;
    }
    c->flags |= CONN_HTTP_CLOSE;
}

/* Every connection not dead is in exactly one deadline list: requests while HTTP (and while a
 * WebSocket's connect hook runs), pings or silence while open, closing while closing. So those
 * lists are the list of connections. */

struct conns_each_call {
    void (*fn)(struct conn *c, void *arg);
    void *arg;
};

static void conns_each_node(struct dl_node *node, void *arg)
{
    struct conns_each_call *call = arg;
    call->fn(container_of(node, struct conn, timeout), call->arg);
}

/* Calls fn for each connection not dead (one that fn closes may come again, closing); fn may
 * close or kill the one it is given and no other. */
static void conns_each(void (*fn)(struct conn *c, void *arg), void *arg)
{
    struct conns_each_call call = {fn, arg};
    dl_each(&srv.requests, conns_each_node, &call);
    dl_each(&srv.pings, conns_each_node, &call);
    dl_each(&srv.silence, conns_each_node, &call);
    dl_each(&srv.closing, conns_each_node, &call);
}

static void shutdown_each(struct conn *c, void *arg)
{
    if (conn_is_open(c))
        conn_close_ws(c, 1001, "server shutting down");
    else if (c->state == CONN_HTTP)
        end_http(c);
}

static void count_each(struct conn *c, void *arg)
{
    *(size_t *)arg += conn_is_open(c);
}

static void drain_each(struct conn *c, void *arg)
{
    if (conn_is_open(c)) {
        if (srv.drain_ids)
            srv.drain_ids[srv.drain_count++] = c->id;
        else
            conn_close_ws(c, 1012, "service restart");
    } else if (c->state == CONN_HTTP) {
        end_http(c);
    }
}

static void kill_each(struct conn *c, void *arg)
{
    conn_kill(c, 1001);
}

static void on_grace_over(EV_P_ ev_timer *w, int revents)
{
    log_warn("%zu connections still open after the grace period; exiting", srv.nconns);
    ev_break(EV_A_ EVBREAK_ALL);
}

void server_shutdown(double grace)
{
    if (srv.shutting_down)
        return;
    srv.shutting_down = 1;
    stop_accepting();
    /* Open WebSockets get close 1001; connections still in HTTP end now. */
    conns_each(shutdown_each, NULL);
    ev_timer_init(&srv.grace, on_grace_over, grace, 0);
    ev_timer_start(srv.loop, &srv.grace);
    log_info("shutting down: %zu connections to close", srv.nconns);
}

/* Closes the drain's connections due by now: connection i (of n) at drain_time * i / n. */
static void on_drain_tick(EV_P_ ev_timer *w, int revents)
{
    ev_tstamp elapsed = ev_now(EV_A) - srv.drain_start;
    size_t due = srv.drain_count;
    if (srv.drain_time > 0 && elapsed < srv.drain_time)
        due = (size_t)(elapsed / srv.drain_time * (double)srv.drain_count) + 1;
    if (due > srv.drain_count)
        due = srv.drain_count;
    for (; srv.drain_next < due; srv.drain_next++) {
        struct conn *c = hub_find(srv.drain_ids[srv.drain_next]);
        if (c && conn_is_open(c))
            conn_close_ws(c, 1012, "service restart");
    }
    if (srv.drain_next >= srv.drain_count) {
        ev_timer_stop(EV_A_ w);
        log_info("drain: close 1012 sent to all %zu connections", srv.drain_count);
    }
}

void server_drain(double drain_time, double grace)
{
    if (srv.shutting_down)
        return;
    srv.shutting_down = 1;
    stop_accepting();
    size_t n = 0;
    conns_each(count_each, &n);
    srv.drain_ids = n ? malloc(n * sizeof *srv.drain_ids) : NULL;
    if (n && !srv.drain_ids)
        drain_time = 0; /* without the list, everyone at once */
    srv.drain_count = 0;
    conns_each(drain_each, NULL);
    log_info("draining: close 1012 to %zu connections over %.1f s, %zu connections in all",
             srv.drain_count, drain_time, srv.nconns);
    srv.drain_next = 0;
    srv.drain_start = ev_now(srv.loop);
    srv.drain_time = drain_time;
    /* A tick per connection's turn, at most 100 a second (each closes those due). */
    double tick = srv.drain_count ? drain_time / (double)srv.drain_count : 0;
    ev_timer_init(&srv.drain, on_drain_tick, 0, tick < 0.01 ? 0.01 : tick);
    on_drain_tick(srv.loop, &srv.drain, 0);
    if (srv.drain_next < srv.drain_count)
        ev_timer_again(srv.loop, &srv.drain);
    ev_timer_init(&srv.grace, on_grace_over, drain_time + grace, 0);
    ev_timer_start(srv.loop, &srv.grace);
}

void server_free(void)
{
    conns_each(kill_each, NULL);
    srv.flush_list = NULL;
    while (srv.close_list) {
        struct conn *c = srv.close_list;
        srv.close_list = c->next_close;
        report_disconnect(c);
        conn_free(c);
    }
    dl_stop(&srv.requests);
    dl_stop(&srv.silence);
    dl_stop(&srv.pings);
    dl_stop(&srv.closing);
    ev_timer_stop(srv.loop, &srv.grace);
    ev_timer_stop(srv.loop, &srv.drain);
    ev_timer_stop(srv.loop, &srv.refusal_log);
    ev_timer_stop(srv.loop, &srv.hold_timer);
    uring_free();
    free(srv.drain_ids);
    srv.drain_ids = NULL;
    free(srv.input_held);
    srv.input_held = NULL;
    srv.ninput_held = srv.capinput_held = 0;
    caps_free();
    ev_timer_stop(srv.loop, &srv.accept_retry);
    ev_prepare_stop(srv.loop, &srv.prepare);
    ev_idle_stop(srv.loop, &srv.idle);
    frame_unref(srv.ping_frame);
    deflate_shutdown();
    for (int i = 0; i < srv.nlisteners; i++) {
        ev_io_stop(srv.loop, &srv.listeners[i].io);
        if (srv.listeners[i].fd >= 0)
            close(srv.listeners[i].fd);
    }
    poller_free();
    tls_free();
}

size_t server_request_bytes(void)
{
    return srv.request_bytes;
}

int server_listening(void)
{
    return srv.nlisteners > 0 && srv.listeners[0].fd >= 0 && !srv.shutting_down &&
           !srv.accept_paused;
}
