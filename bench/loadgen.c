/*
 * loadgen: confab's own WebSocket load generator.
 *
 * One process, one libev loop, non-blocking sockets. Two modes:
 *
 *   loadgen idle   --addr 127.0.0.1:PORT [--server-pid PID] [-n 10000] [--sources 4]
 *   loadgen fanout --addr 127.0.0.1:PORT [--server-pid PID] [--subscribers 1000]
 *                  [--senders 1] [--messages 5000] [--size 64] [--window 64] [--rate 0] [--words]
 *                  [--rooms R]
 *   either with --deflate: offers permessage-deflate as Chromium does and inflates what comes
 *   compressed; fanout reports the bytes read from the sockets per delivery (bytes on the wire).
 *
 * --tls speaks wss:// (TLS 1.3 by default, the server's certificate is not checked): the TLS
 * handshake, then the same upgrade and traffic.
 *
 * Several --addr (a cluster's nodes): connection i goes to address i mod A, so members and
 * senders are spread over every node. Several --server-pid: their CPU times are summed (all
 * nodes and the Redis server); RSS is read from the first.
 *
 * idle opens N WebSocket connections (real upgrade handshake, Sec-WebSocket-Accept checked),
 * spread over the source addresses 127.0.0.2 .. 127.0.0.(1+S) so N can exceed one address's
 * ephemeral ports, answers pings, and reports how much the server's VmRSS grew per connection,
 * and the server CPU time spent from the first connect to the last 101 (accept and upgrade).
 * With --rooms R each connection then sends bench/rooms.lua's hello into room r<i mod R> and
 * the RSS is read once every welcome has come back (idle members of rooms).
 *
 * fanout --rooms R (bench/rooms.lua's protocol): member i is in room r<i mod R>, its hello and
 * says name that room; each message must reach the other members of its sender's room (and the
 * sender). Senders may be all members. Loss and duplicates are counted per message, not per
 * member (no per-member bitmap: 10,000 members x 100,000 messages would not fit).
 *
 * fanout speaks the chat protocol of the README (The chat protocol): every connection sends `hello` (and so
 * lands in `lobby`), the first K of them also send `say` messages whose text carries a sequence
 * number and the CLOCK_MONOTONIC send time, and every connection checks what it receives: loss,
 * duplicates, order, delivery latency. Server CPU comes from /proc/PID/stat.
 *
 * Results are `key=value` lines on stdout; diagnostics go to stderr. Exit 0 when the run
 * completed (whatever the figures), 1 when it could not (connect failures, deadline, lost
 * connections), 2 for bad usage.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <zlib.h>
#include <openssl/ssl.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define MAX_HANDSHAKE 8192
#define ROOM "lobby"
#define MAX_ADDRS 16
#define MAX_PIDS 16

enum mode { MODE_IDLE, MODE_FANOUT };
enum conn_state { CS_CONNECTING, CS_TLS, CS_HANDSHAKE, CS_OPEN, CS_CLOSED };
enum phase { PH_CONNECT, PH_SYNC, PH_RUN, PH_ECHO, PH_DONE };

struct conn {
    ev_io io;                 /* first member: the watcher pointer is the conn pointer */
    int fd;
    int idx;
    SSL *ssl;                 /* --tls: the connection's TLS state */
    uint8_t state;
    bool welcomed;
    bool synced;
    bool write_armed;
    char accept[32];          /* expected Sec-WebSocket-Accept */
    char *rbuf;               /* unparsed bytes kept between reads */
    size_t rlen, rcap;
    char *wbuf;               /* bytes the socket did not take yet */
    size_t wlen, woff, wcap;
    char *frag;               /* a fragmented message being reassembled */
    size_t flen, fcap;
    int frag_op;
    bool compressed;          /* the message being received has RSV1 */
    int64_t last_seq;         /* last sequence seen from sender 0 (order check) */
    uint64_t order_hash;      /* hash of the sequence of messages received, in order */
};

/* ---- options ---- */
static struct {
    enum mode mode;
    struct sockaddr_in addr[MAX_ADDRS];
    char host[MAX_ADDRS][64];
    int naddrs;
    const char *path;
    pid_t server_pid;         /* the first --server-pid */
    pid_t pids[MAX_PIDS];
    int npids;
    int n;                    /* idle: connections */
    int sources;
    int batch;                /* connections in flight (connecting + handshaking) */
    double deadline;          /* seconds for the whole run */
    double hold;              /* idle: seconds to hold after measuring */
    int subscribers, senders, messages, size, window;
    double rate;              /* fanout: messages/s per sender, 0 = as fast as the window allows */
    const char *prefix;
    const char *on_run;       /* fanout: shell command run when the measured run starts */
    const char *on_done;      /* fanout: shell command run when it ends, before disconnecting */
    int verbose;
    bool deflate;             /* offer permessage-deflate (as Chromium does) and inflate */
    bool words;               /* fanout: pad texts with words (compresses like chat), not 'x' */
    int tls;                  /* wss: TLS to the server (certificate not checked: a benchmark) */
    int rooms;                /* bench/rooms.lua: member i in room r<i mod rooms>; 0: chat.lua */
} opt = {
    .path = "/ws", .n = 10000, .sources = 4, .batch = 500, .deadline = 120, .hold = 0,
    .subscribers = 1000, .senders = 1, .messages = 5000, .size = 64, .window = 64, .rate = 0,
    .prefix = "lg",
};

/* ---- state ---- */
static struct ev_loop *loop;
static struct conn *conns;
static int nconns;
static int next_to_start, inflight, nopen, nfailed, nclosed_by_server, nwelcomed, nsynced;
static uint64_t pings_answered;
static enum phase phase = PH_CONNECT;
static int exit_status = 0;
static uint64_t t_start, t_open_all;
static long long cpu_start, cpu_open_all; /* server CPU ns at the first connect, the last 101 */
static char rx[1 << 18];
static uint64_t rng_state;

/* fanout bookkeeping */
static uint16_t *recv_others; /* [seq] receipts by connections other than the sender */
static uint16_t *need_others; /* --rooms: [seq] members of the sender's room but the sender */
static uint64_t expected_others; /* --rooms: the sum of need_others over the messages sent */
static uint8_t *seen;         /* [conn][seq] bitmap */
static size_t seen_stride;
static int64_t sent, done_upto;
static uint64_t deliveries_others, deliveries_echo, duplicates, reordered, foreign, server_errors;
static uint64_t echo_unique;
static uint64_t rx_bytes, rx_run0, rx_run1;  /* bytes read from sockets; at run start and end */
static uint64_t frames_compressed, frames_plain; /* data messages received during the run */
static int ndeflate;                          /* connections that negotiated permessage-deflate */
static z_stream inflater;                     /* shared: the server takes no context over */
static char *inflated;
static size_t inflated_cap;
static int rr_sender;
static uint64_t t_run0, t_run1, t_setup0;
static unsigned long long cpu_run0, cpu_run1;
static ev_timer *pace_timers;

/* latency histogram: 10 us buckets up to 10 s, plus overflow */
#define HIST_BUCKET_NS 10000ULL
#define HIST_N 1000000
static uint32_t *hist;
static uint64_t hist_over, hist_count, lat_max_ns;
/* Where a latency comes from, with several nodes: deliveries to members on the sender's node and
 * on the others (every one goes through Redis), and each message's first delivery (the path
 * through the server and Redis, before the fan-out to its members). */
static uint32_t *hist_same, *hist_other;
static uint64_t same_count, other_count;
static uint64_t *first_ns;

static ev_timer deadline_timer, poll_timer, abort_timer;
static ev_signal sigint_w, sigterm_w;

static void conn_start(int i);
static void conn_fail(struct conn *c, const char *why);
static void pump(void);
static void finish(void);

/* ---- small helpers ---- */

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static uint64_t rng(void)
{   /* xorshift64*: mask keys only need to be unpredictable to proxies, not secret */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}

static void random_bytes(void *p, size_t n)
{
    if (getrandom(p, n, 0) != (ssize_t)n)
        for (size_t i = 0; i < n; i++) ((uint8_t *)p)[i] = (uint8_t)rng();
}

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (!q) { fprintf(stderr, "loadgen: out of memory\n"); exit(1); }
    return q;
}

static void buf_append(char **buf, size_t *len, size_t *cap, const void *data, size_t n)
{
    if (*len + n > *cap) {
        size_t nc = *cap ? *cap : 256;
        while (nc < *len + n) nc *= 2;
        *buf = xrealloc(*buf, nc);
        *cap = nc;
    }
    memcpy(*buf + *len, data, n);
    *len += n;
}

/* A field of the server's /proc/PID/status in kB ("VmRSS:", "RssAnon:"), or -1. */
static long server_status_kb(const char *field)
{
    char path[64], line[256];
    size_t n = strlen(field);
    if (!opt.server_pid) return -1;
    snprintf(path, sizeof path, "/proc/%d/status", (int)opt.server_pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, field, n)) { kb = strtol(line + n, NULL, 10); break; }
    fclose(f);
    return kb;
}

static long server_rss_kb(void)
{
    return server_status_kb("VmRSS:");
}

/* utime + stime of one process, in clock ticks; returns 0 and sets *ok=false if unreadable */
static unsigned long long pid_cpu_ticks(pid_t pid, bool *ok)
{
    char path[64], buf[2048];
    *ok = false;
    if (!pid) return 0;
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');   /* comm may contain spaces */
    if (!p) return 0;
    /* after ")": state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime(14) stime(15) */
    unsigned long long ut, st;
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return 0;
    *ok = true;
    return ut + st;
}

/* utime + stime of every --server-pid together; *ok=false if one is unreadable */
static unsigned long long server_cpu_ticks(bool *ok)
{
    unsigned long long sum = 0;
    *ok = opt.npids > 0;
    for (int i = 0; i < opt.npids; i++) {
        bool one;
        sum += pid_cpu_ticks(opt.pids[i], &one);
        if (!one) *ok = false;
    }
    return sum;
}

/* CPU time of every thread of the first --server-pid in ns, from /proc/PID/task/TID/schedstat
 * (exact, where /proc/PID/stat counts 10 ms ticks: too coarse for the ~0.1 s of 10,000
 * handshakes); -1 when unreadable. Threads that ended meanwhile are not counted. */
static long long server_cpu_ns(void)
{
    char path[64];
    if (!opt.server_pid) return -1;
    snprintf(path, sizeof path, "/proc/%d/task", (int)opt.server_pid);
    DIR *d = opendir(path);
    if (!d) return -1;
    long long sum = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char p2[384];
        snprintf(p2, sizeof p2, "%s/%s/schedstat", path, e->d_name);
        FILE *f = fopen(p2, "r");
        long long ns = 0;
        if (f) {
            if (fscanf(f, "%lld", &ns) != 1) ns = 0;
            fclose(f);
        }
        sum += ns;
    }
    closedir(d);
    return sum;
}

static double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) perror("loadgen: setrlimit");
    }
}

static long nofile_limit(void)
{
    struct rlimit rl;
    return getrlimit(RLIMIT_NOFILE, &rl) == 0 ? (long)rl.rlim_cur : 1024;
}

/* ---- the socket, plain or TLS ---- */

static SSL_CTX *tls_ctx;

/* read() and write() with their results and errno, through TLS with --tls (EAGAIN when TLS
 * waits for the socket either way, 0 for the server's close). With partial writes and a moving
 * buffer, a write that stopped is retried from the connection's wbuf, which holds the same
 * bytes (conn_write). */
static ssize_t io_read(struct conn *c, void *buf, size_t len)
{
    if (!c->ssl) return read(c->fd, buf, len);
    size_t n;
    ERR_clear_error();
    if (SSL_read_ex(c->ssl, buf, len, &n) == 1) return (ssize_t)n;
    int e = SSL_get_error(c->ssl, 0);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) { errno = EAGAIN; return -1; }
    if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && errno == 0)) return 0;
    if (e != SSL_ERROR_SYSCALL) errno = EPROTO;
    return -1;
}

static ssize_t io_write(struct conn *c, const void *buf, size_t len)
{
    if (!c->ssl) return write(c->fd, buf, len);
    size_t n;
    ERR_clear_error();
    if (SSL_write_ex(c->ssl, buf, len, &n) == 1) return (ssize_t)n;
    int e = SSL_get_error(c->ssl, 0);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) { errno = EAGAIN; return -1; }
    if (e != SSL_ERROR_SYSCALL) errno = EPROTO;
    return -1;
}

/* ---- websocket framing (client side: masked) ---- */

static void ws_encode(struct conn *c, int opcode, const void *payload, size_t n);

static void conn_flush(struct conn *c);

static void conn_write(struct conn *c, const void *data, size_t n)
{
    if (c->state == CS_CLOSED) return;
    if (c->wlen == c->woff) {
        c->wlen = c->woff = 0;
        while (n > 0) {
            ssize_t w = io_write(c, data, n);
            if (w > 0) { data = (const char *)data + w; n -= (size_t)w; continue; }
            if (w < 0 && errno == EINTR) continue;
            if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
            conn_fail(c, "write");
            return;
        }
        if (n == 0) return;
    }
    buf_append(&c->wbuf, &c->wlen, &c->wcap, data, n);
    if (!c->write_armed) {
        c->write_armed = true;
        ev_io_stop(loop, &c->io);
        ev_io_set(&c->io, c->fd, EV_READ | EV_WRITE);
        ev_io_start(loop, &c->io);
    }
}

static void ws_encode(struct conn *c, int opcode, const void *payload, size_t n)
{
    uint8_t stackbuf[512];
    size_t hdr = 2 + (n < 126 ? 0 : n < 65536 ? 2 : 8) + 4;
    uint8_t *f = hdr + n <= sizeof stackbuf ? stackbuf : xrealloc(NULL, hdr + n);
    size_t i = 0;
    f[i++] = (uint8_t)(0x80 | opcode);
    if (n < 126) {
        f[i++] = (uint8_t)(0x80 | n);
    } else if (n < 65536) {
        f[i++] = 0x80 | 126;
        f[i++] = (uint8_t)(n >> 8);
        f[i++] = (uint8_t)n;
    } else {
        f[i++] = 0x80 | 127;
        for (int s = 56; s >= 0; s -= 8) f[i++] = (uint8_t)((uint64_t)n >> s);
    }
    uint32_t key = (uint32_t)rng();
    uint8_t mask[4] = { (uint8_t)(key >> 24), (uint8_t)(key >> 16), (uint8_t)(key >> 8), (uint8_t)key };
    memcpy(f + i, mask, 4);
    i += 4;
    const uint8_t *p = payload;
    for (size_t k = 0; k < n; k++) f[i + k] = p[k] ^ mask[k & 3];
    conn_write(c, f, hdr + n);
    if (f != stackbuf) free(f);
}

/* ---- connection lifecycle ---- */

static void conn_close(struct conn *c)
{
    if (c->state == CS_CLOSED) return;
    if (c->state == CS_CONNECTING || c->state == CS_TLS || c->state == CS_HANDSHAKE) inflight--;
    if (c->state == CS_OPEN) nopen--;
    ev_io_stop(loop, &c->io);
    SSL_free(c->ssl);
    c->ssl = NULL;
    close(c->fd);
    c->fd = -1;
    c->state = CS_CLOSED;
    free(c->rbuf); c->rbuf = NULL; c->rlen = c->rcap = 0;
    free(c->wbuf); c->wbuf = NULL; c->wlen = c->woff = c->wcap = 0;
    free(c->frag); c->frag = NULL; c->flen = c->fcap = 0;
}

static void fill_starts(void);

static void conn_fail(struct conn *c, const char *why)
{
    if (c->state == CS_CLOSED) return;
    bool was_open = c->state == CS_OPEN;
    if (nfailed + nclosed_by_server < 5 || opt.verbose)
        fprintf(stderr, "loadgen: connection %d: %s%s%s\n", c->idx, why,
                errno ? ": " : "", errno ? strerror(errno) : "");
    conn_close(c);
    if (was_open) nclosed_by_server++; else nfailed++;
    /* a fan-out run needs every member: stop at once rather than wait for the deadline */
    if (opt.mode == MODE_FANOUT && phase != PH_DONE && !ev_is_active(&abort_timer))
        ev_timer_start(loop, &abort_timer);
    if (phase == PH_CONNECT) fill_starts();
}

static void conn_flush(struct conn *c)
{
    while (c->woff < c->wlen) {
        ssize_t w = io_write(c, c->wbuf + c->woff, c->wlen - c->woff);
        if (w > 0) { c->woff += (size_t)w; continue; }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        conn_fail(c, "write");
        return;
    }
    c->wlen = c->woff = 0;
    if (c->write_armed) {
        c->write_armed = false;
        ev_io_stop(loop, &c->io);
        ev_io_set(&c->io, c->fd, EV_READ);
        ev_io_start(loop, &c->io);
    }
}

static bool is_sender(const struct conn *c)
{
    return opt.mode == MODE_FANOUT && c->idx < opt.senders;
}

static void send_text(struct conn *c, const char *s, size_t n)
{
    ws_encode(c, 1, s, n);
}

/* --rooms: members of room r (connections i with i mod rooms == r) */
static int room_size(int r)
{
    return nconns / opt.rooms + (r < nconns % opt.rooms ? 1 : 0);
}

static void all_open(void)
{
    t_open_all = mono_ns();
    cpu_open_all = server_cpu_ns();
}

static void on_open(struct conn *c)
{
    c->state = CS_OPEN;
    inflight--;
    nopen++;
    char msg[128];
    int n = 0;
    if (opt.rooms)
        n = snprintf(msg, sizeof msg, "{\"type\":\"hello\",\"name\":\"%s%d\",\"room\":\"r%d\"}",
                     opt.prefix, c->idx, c->idx % opt.rooms);
    else if (opt.mode == MODE_FANOUT)
        n = snprintf(msg, sizeof msg, "{\"type\":\"hello\",\"name\":\"%s%c%d\"}", opt.prefix,
                     is_sender(c) ? 'p' : 's', c->idx);
    if (n > 0) send_text(c, msg, (size_t)n);
    if (nopen + nfailed + nclosed_by_server == nconns && !t_open_all) all_open();
    fill_starts();
}

/* ---- fan-out message handling ---- */

static const char *find(const char *h, size_t hn, const char *needle)
{
    return memmem(h, hn, needle, strlen(needle));
}

static bool parse_u64(const char **p, const char *end, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;
    if (s >= end || *s < '0' || *s > '9') return false;
    while (s < end && *s >= '0' && *s <= '9') v = v * 10 + (uint64_t)(*s++ - '0');
    *p = s;
    *out = v;
    return true;
}

static void start_run(void);

static void advance_done(void)
{
    int64_t before = done_upto;
    while (done_upto < sent &&
           recv_others[done_upto] >= (opt.rooms ? need_others[done_upto] : (uint16_t)(nconns - 1)))
        done_upto++;
    if (done_upto != before) {
        if (done_upto == opt.messages && phase == PH_RUN) {
            t_run1 = mono_ns();
            rx_run1 = rx_bytes;
            bool ok;
            cpu_run1 = server_cpu_ticks(&ok);
            phase = PH_ECHO;
            if (deliveries_echo == 0 || echo_unique == (uint64_t)opt.messages) finish();
        }
    }
}

static void on_bench_message(struct conn *c, const char *p, size_t n, uint64_t now)
{
    /* "@B<seq>.<ts>.<sender>." inside the text field */
    const char *m = find(p, n, "@B");
    if (!m) { foreign++; return; }
    const char *end = p + n, *q = m + 2;
    uint64_t seq, ts, snd;
    if (!parse_u64(&q, end, &seq) || q >= end || *q++ != '.' || !parse_u64(&q, end, &ts) ||
        q >= end || *q++ != '.' || !parse_u64(&q, end, &snd) || seq >= (uint64_t)opt.messages) {
        foreign++;
        return;
    }
    if (opt.rooms) {
        /* no per-member bitmap: a message counted more often than its room has members */
        if ((int)snd != c->idx && recv_others[seq] >= need_others[seq]) { duplicates++; return; }
    } else {
        uint8_t *bits = seen + (size_t)c->idx * seen_stride;
        if (bits[seq >> 3] & (1u << (seq & 7))) { duplicates++; return; }
        bits[seq >> 3] |= (uint8_t)(1u << (seq & 7));
    }
    if (opt.senders == 1) {
        if ((int64_t)seq < c->last_seq) reordered++;
        c->last_seq = (int64_t)seq;
    }
    c->order_hash = c->order_hash * 1000003u + seq + 1;
    uint64_t lat = now > ts ? now - ts : 0;
    uint64_t b = lat / HIST_BUCKET_NS;
    if (b < HIST_N) hist[b]++; else hist_over++;
    hist_count++;
    if (lat < first_ns[seq]) first_ns[seq] = lat;
    if (opt.naddrs > 1 && b < HIST_N) {
        if ((int)(snd % (uint64_t)opt.naddrs) == c->idx % opt.naddrs) hist_same[b]++, same_count++;
        else hist_other[b]++, other_count++;
    }
    if (lat > lat_max_ns) lat_max_ns = lat;
    if ((int)snd == c->idx) {
        deliveries_echo++;
        echo_unique++;
        if (phase == PH_ECHO && echo_unique == (uint64_t)opt.messages) finish();
    } else {
        deliveries_others++;
        recv_others[seq]++;
        if ((int64_t)seq == done_upto) advance_done();
    }
}

static void idle_welcomed(void);

static void on_text(struct conn *c, const char *p, size_t n, uint64_t now)
{
    if (opt.mode != MODE_FANOUT) {
        if (opt.rooms && !c->welcomed && find(p, n, "\"welcome\"")) {
            c->welcomed = true;
            nwelcomed++;
            idle_welcomed();
        }
        return;
    }
    if (c->welcomed && find(p, n, "@B")) { on_bench_message(c, p, n, now); return; }
    if (find(p, n, "\"error\"") && find(p, n, "\"code\"")) {
        if (server_errors++ < 5) fprintf(stderr, "loadgen: server error to %d: %.*s\n", c->idx, (int)n, p);
        return;
    }
    if (!c->welcomed && find(p, n, "\"welcome\"")) {
        c->welcomed = true;
        if (++nwelcomed == nconns && phase == PH_CONNECT) {
            phase = PH_SYNC;
            /* everyone is in lobby: one message through the room proves every earlier
             * join broadcast has been delivered (per-connection order is FIFO); with --rooms,
             * one through each room, sent by its first member */
            for (int r = 0; r < (opt.rooms ? opt.rooms : 1); r++) {
                char msg[128];
                int k = snprintf(msg, sizeof msg,
                                 "{\"type\":\"say\",\"room\":\"%s%d\",\"text\":\"@S%s sync\"}",
                                 opt.rooms ? "r" : ROOM, opt.rooms ? r : 0, opt.prefix);
                if (!opt.rooms) k = snprintf(msg, sizeof msg,
                                 "{\"type\":\"say\",\"room\":\"" ROOM "\",\"text\":\"@S%s sync\"}", opt.prefix);
                send_text(&conns[r], msg, (size_t)k);
            }
        }
        return;
    }
    if (!c->synced && phase == PH_SYNC && find(p, n, "@S")) {
        c->synced = true;
        int syncers = opt.rooms ? opt.rooms : 1;
        if (c->idx >= syncers && ++nsynced == nconns - syncers) start_run();
        return;
    }
    foreign++;
}

/* ---- frame parsing (server frames are unmasked) ---- */

/* One process stands for a thousand clients, each of which would inflate on its own CPU: a
 * broadcast reaches them all as the same compressed bytes (the server compresses it once), so
 * what one inflated is remembered by those bytes, and the load generator does not become the
 * bottleneck the server is measured behind. */
#define INFLATE_CACHE 4096
static struct { char *z, *text; size_t zlen, tlen; } icache[INFLATE_CACHE];
static uint64_t inflate_cache_hits, inflate_runs;

/* The compressed message in c->frag inflated (RFC 7692: the 00 00 ff ff the sender removed is
 * put back), or NULL with c failed. */
static const char *inflate_message(struct conn *c, size_t *out_len)
{
    static const uint8_t tail[4] = {0, 0, 0xff, 0xff};
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < c->flen; i++) h = (h ^ (uint8_t)c->frag[i]) * 16777619u;
    h %= INFLATE_CACHE;
    if (icache[h].z && icache[h].zlen == c->flen && !memcmp(icache[h].z, c->frag, c->flen)) {
        inflate_cache_hits++;
        *out_len = icache[h].tlen;
        return icache[h].text;
    }
    size_t zlen = c->flen;
    buf_append(&c->frag, &c->flen, &c->fcap, tail, sizeof tail);
    inflate_runs++;
    if (!inflater.state && inflateInit2(&inflater, -15) != Z_OK) {
        errno = 0; conn_fail(c, "inflateInit2"); return NULL;
    }
    inflateReset(&inflater);
    inflater.next_in = (Bytef *)c->frag;
    inflater.avail_in = (uInt)c->flen;
    size_t n = 0;
    for (;;) {
        if (inflated_cap - n < 4096) {
            inflated_cap = inflated_cap ? inflated_cap * 2 : 65536;
            inflated = xrealloc(inflated, inflated_cap);
        }
        inflater.next_out = (Bytef *)inflated + n;
        inflater.avail_out = (uInt)(inflated_cap - n);
        int rc = inflate(&inflater, Z_SYNC_FLUSH);
        n = inflated_cap - inflater.avail_out;
        if (rc != Z_OK && rc != Z_BUF_ERROR && rc != Z_STREAM_END) {
            errno = 0; conn_fail(c, "bad compressed message"); return NULL;
        }
        if (inflater.avail_in == 0 && inflater.avail_out > 0) break;
    }
    free(icache[h].z);
    free(icache[h].text);
    icache[h].z = xrealloc(NULL, zlen);
    icache[h].text = xrealloc(NULL, n ? n : 1);
    memcpy(icache[h].z, c->frag, zlen);
    memcpy(icache[h].text, inflated, n);
    icache[h].zlen = zlen;
    icache[h].tlen = n;
    *out_len = n;
    return inflated;
}

static size_t parse_frames(struct conn *c, const char *buf, size_t len, uint64_t now)
{
    size_t off = 0;
    while (c->state == CS_OPEN && len - off >= 2) {
        const uint8_t *h = (const uint8_t *)buf + off;
        int fin = h[0] & 0x80, op = h[0] & 0x0f, rsv1 = h[0] & 0x40;
        if (h[1] & 0x80) { errno = 0; conn_fail(c, "masked frame from server"); return len; }
        uint64_t plen = h[1] & 0x7f;
        size_t hdr = 2;
        if (plen == 126) {
            if (len - off < 4) break;
            plen = (uint64_t)h[2] << 8 | h[3];
            hdr = 4;
        } else if (plen == 127) {
            if (len - off < 10) break;
            plen = 0;
            for (int i = 0; i < 8; i++) plen = plen << 8 | h[2 + i];
            hdr = 10;
        }
        if (plen > (1u << 26)) { errno = 0; conn_fail(c, "frame too large"); return len; }
        if (len - off < hdr + plen) break;
        const char *pl = buf + off + hdr;
        off += hdr + (size_t)plen;
        switch (op) {
        case 0x9:   /* ping → pong with the same payload */
            ws_encode(c, 0xA, pl, (size_t)plen);
            pings_answered++;
            break;
        case 0xA:
            break;
        case 0x8: { /* close: answer with the same code, then drop */
            size_t k = plen >= 2 ? 2 : 0;
            ws_encode(c, 0x8, pl, k);
            errno = 0;
            char why[96];
            snprintf(why, sizeof why, "server closed (code %d)",
                     plen >= 2 ? ((uint8_t)pl[0] << 8 | (uint8_t)pl[1]) : 1005);
            conn_fail(c, why);
            return len;
        }
        case 0x1: case 0x2: case 0x0:
            if (op != 0) c->compressed = rsv1 != 0;
            if (op != 0 && fin && !rsv1) {
                frames_plain++;
                on_text(c, pl, (size_t)plen, now);
            } else {
                if (op != 0) { c->flen = 0; c->frag_op = op; }
                buf_append(&c->frag, &c->flen, &c->fcap, pl, (size_t)plen);
                if (fin && c->compressed) {
                    frames_compressed++;
                    size_t n;
                    const char *msg = inflate_message(c, &n);
                    if (!msg) return len;
                    on_text(c, msg, n, now);
                    c->flen = 0;
                } else if (fin) {
                    frames_plain++;
                    on_text(c, c->frag, c->flen, now);
                    c->flen = 0;
                }
            }
            break;
        default:
            errno = 0;
            conn_fail(c, "unknown opcode");
            return len;
        }
    }
    return off;
}

/* ---- handshake ---- */

static void make_key(struct conn *c, char key_out[32])
{
    uint8_t raw[16], digest[EVP_MAX_MD_SIZE];
    unsigned dlen = 0;
    random_bytes(raw, sizeof raw);
    EVP_EncodeBlock((unsigned char *)key_out, raw, sizeof raw);        /* 24 chars */
    char cat[64];
    int n = snprintf(cat, sizeof cat, "%s%s", key_out, WS_GUID);
    EVP_Digest(cat, (size_t)n, digest, &dlen, EVP_sha1(), NULL);
    EVP_EncodeBlock((unsigned char *)c->accept, digest, (int)dlen);     /* 28 chars */
}

/* Returns bytes consumed by the response head, 0 if incomplete; fails the connection if bad. */
static size_t parse_handshake(struct conn *c, const char *buf, size_t len)
{
    const char *e = memmem(buf, len, "\r\n\r\n", 4);
    if (!e) {
        if (len > MAX_HANDSHAKE) { errno = 0; conn_fail(c, "handshake response too long"); }
        return 0;
    }
    size_t head = (size_t)(e - buf) + 4;
    if (len < 12 || memcmp(buf, "HTTP/1.1 101", 12) != 0) {
        errno = 0;
        char why[128];
        const char *nl = memchr(buf, '\r', head);
        snprintf(why, sizeof why, "no 101: %.*s", (int)(nl ? nl - buf : 40), buf);
        conn_fail(c, why);
        return 0;
    }
    bool ok = false;
    for (const char *l = memchr(buf, '\n', head) + 1; l < e; ) {
        const char *nl = memchr(l, '\r', (size_t)(e - l) + 1);
        if (!nl) break;
        static const char name[] = "sec-websocket-accept:";
        if ((size_t)(nl - l) > sizeof name - 1 && !strncasecmp(l, name, sizeof name - 1)) {
            const char *v = l + sizeof name - 1;
            while (v < nl && (*v == ' ' || *v == '\t')) v++;
            const char *ve = nl;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
            ok = (size_t)(ve - v) == strlen(c->accept) && !memcmp(v, c->accept, (size_t)(ve - v));
        }
        static const char ext[] = "sec-websocket-extensions:";
        if ((size_t)(nl - l) > sizeof ext - 1 && !strncasecmp(l, ext, sizeof ext - 1) &&
            memmem(l, (size_t)(nl - l), "permessage-deflate", 18))
            ndeflate++;
        l = nl + 2;
    }
    if (!ok) { errno = 0; conn_fail(c, "bad or missing Sec-WebSocket-Accept"); return 0; }
    on_open(c);
    return head;
}

static size_t parse_input(struct conn *c, const char *buf, size_t len, uint64_t now)
{
    size_t off = 0;
    if (c->state == CS_HANDSHAKE) {
        off = parse_handshake(c, buf, len);
        if (c->state != CS_OPEN) return c->state == CS_CLOSED ? len : 0;
    }
    return off + parse_frames(c, buf + off, len - off, now);
}

static void conn_read(struct conn *c)
{
    for (int rounds = 0; rounds < 16 && c->state != CS_CLOSED; rounds++) {
        ssize_t n = io_read(c, rx, sizeof rx);
        if (n == 0) { errno = 0; conn_fail(c, "server closed the TCP connection"); return; }
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            conn_fail(c, "read");
            return;
        }
        uint64_t now = mono_ns();
        rx_bytes += (uint64_t)n;
        if (c->rlen) {
            buf_append(&c->rbuf, &c->rlen, &c->rcap, rx, (size_t)n);
            size_t used = parse_input(c, c->rbuf, c->rlen, now);
            if (c->state == CS_CLOSED) return;
            memmove(c->rbuf, c->rbuf + used, c->rlen - used);
            c->rlen -= used;
            if (c->rlen == 0 && c->rcap > 65536) { free(c->rbuf); c->rbuf = NULL; c->rcap = 0; }
        } else {
            size_t used = parse_input(c, rx, (size_t)n, now);
            if (c->state == CS_CLOSED) return;
            if (used < (size_t)n) buf_append(&c->rbuf, &c->rlen, &c->rcap, rx + used, (size_t)n - used);
        }
        if ((size_t)n < sizeof rx && !c->ssl) return; /* TLS reads a record at a time */
    }
}

static void send_handshake(struct conn *c)
{
    char key[32], req[512];
    make_key(c, key);
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n",
                     opt.path, opt.host[c->idx % opt.naddrs], key,
                     opt.deflate ? "Sec-WebSocket-Extensions: permessage-deflate; "
                                   "client_max_window_bits\r\n" : "");
    c->state = CS_HANDSHAKE;
    conn_write(c, req, (size_t)n);
}

static void set_events(struct conn *c, int events)
{
    if (c->io.events == events && ev_is_active(&c->io)) return;
    ev_io_stop(loop, &c->io);
    ev_io_set(&c->io, c->fd, events);
    ev_io_start(loop, &c->io);
}

/* The TLS handshake, a step at a time; the upgrade request follows it. */
static void tls_step(struct conn *c)
{
    ERR_clear_error();
    int rc = SSL_do_handshake(c->ssl);
    if (rc == 1) {
        set_events(c, EV_READ);
        c->write_armed = false;
        send_handshake(c);
        return;
    }
    int e = SSL_get_error(c->ssl, rc);
    if (e == SSL_ERROR_WANT_READ) { set_events(c, EV_READ); return; }
    if (e == SSL_ERROR_WANT_WRITE) { set_events(c, EV_READ | EV_WRITE); return; }
    char why[160];
    unsigned long ec = ERR_get_error();
    snprintf(why, sizeof why, "TLS handshake failed: %s",
             ec ? ERR_reason_error_string(ec) : "connection closed");
    errno = 0;
    conn_fail(c, why);
}

static void on_io(struct ev_loop *l, ev_io *w, int revents)
{
    struct conn *c = (struct conn *)w;
    if (c->state == CS_TLS) {
        tls_step(c);
        return;
    }
    if (c->state == CS_CONNECTING) {
        int err = 0;
        socklen_t sl = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &sl);
        if (err) { errno = err; conn_fail(c, "connect"); return; }
        if (opt.tls) {
            c->ssl = SSL_new(tls_ctx);
            if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1) { errno = 0; conn_fail(c, "SSL_new"); return; }
            SSL_set_connect_state(c->ssl);
            c->state = CS_TLS;
            tls_step(c);
            return;
        }
        ev_io_stop(l, &c->io);
        ev_io_set(&c->io, c->fd, EV_READ);
        ev_io_start(l, &c->io);
        c->write_armed = false;
        send_handshake(c);
        return;
    }
    if (revents & EV_WRITE) {
        conn_flush(c);
        if (c->state == CS_CLOSED) return;
        if (c->wlen == 0 && is_sender(c) && phase == PH_RUN) pump();
    }
    if (revents & EV_READ) conn_read(c);
    if (opt.mode == MODE_FANOUT && phase == PH_RUN) pump();
}

static void conn_start(int i)
{
    struct conn *c = &conns[i];
    memset(c, 0, sizeof *c);
    c->idx = i;
    c->last_seq = -1;
    c->state = CS_CONNECTING;
    inflight++;
    errno = 0;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    c->fd = fd;
    if (fd < 0) { conn_fail(c, "socket"); return; }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (opt.sources > 0) {
        /* defer the port choice to connect(): then ports are per 4-tuple, not per source */
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        struct sockaddr_in src = { .sin_family = AF_INET };
        src.sin_addr.s_addr = htonl(0x7f000002u + (uint32_t)(i % opt.sources));
        if (bind(fd, (struct sockaddr *)&src, sizeof src) != 0) {
            ev_io_init(&c->io, on_io, fd, EV_WRITE);
            conn_fail(c, "bind");
            return;
        }
    }
    ev_io_init(&c->io, on_io, fd, EV_WRITE);
    const struct sockaddr_in *to = &opt.addr[i % opt.naddrs];
    if (connect(fd, (const struct sockaddr *)to, sizeof *to) != 0 && errno != EINPROGRESS) {
        conn_fail(c, "connect");
        return;
    }
    c->write_armed = true;
    ev_io_start(loop, &c->io);
}

static void fill_starts(void)
{
    static bool busy;
    if (busy) return;   /* conn_start can fail synchronously and call back here */
    busy = true;
    while (inflight < opt.batch && next_to_start < nconns) conn_start(next_to_start++);
    busy = false;
}

/* ---- fan-out run ---- */

static void send_bench(struct conn *c)
{
    int64_t seq = sent++;
    char text[4096], msg[4200];
    uint64_t ts = mono_ns();
    int k = snprintf(text, sizeof text, "@B%" PRId64 ".%" PRIu64 ".%d.", seq, ts, c->idx);
    int head = k;
    if (opt.words) {
        /* Words drawn from a small vocabulary: text that compresses about as chat does. */
        static const char *const vocab[] = {
            "the", "a", "and", "is", "it", "to", "of", "in", "that", "you", "for", "on", "was",
            "with", "he", "as", "at", "be", "this", "have", "from", "or", "one", "had", "by",
            "word", "but", "not", "what", "all", "were", "we", "when", "your", "can", "said",
            "there", "use", "an", "each", "which", "she", "do", "how", "their", "if", "will",
            "up", "other", "about", "out", "many", "then", "them", "these", "so", "some", "her",
            "would", "make", "like", "him", "into", "time", "has", "look", "two", "more",
            "write", "go", "see", "number", "no", "way", "could", "people", "my", "than",
            "first", "water", "been", "call", "who", "oil", "its", "now", "find", "long",
            "down", "day", "did", "get", "come", "made", "may", "part", "lunch", "deploy",
            "meeting", "tomorrow", "thanks", "great", "idea", "server", "build", "release"};
        while (k < opt.size && k < (int)sizeof text - 16) {
            const char *w = vocab[rng() % (sizeof vocab / sizeof vocab[0])];
            k += snprintf(text + k, sizeof text - (size_t)k, " %s", w);
        }
        if (k > opt.size) k = opt.size > head ? opt.size : head;
    } else {
        while (k < opt.size && k < (int)sizeof text - 1) text[k++] = 'x';
    }
    text[k] = 0;
    int n;
    if (opt.rooms) {
        need_others[seq] = (uint16_t)(room_size(c->idx % opt.rooms) - 1);
        expected_others += need_others[seq];
        n = snprintf(msg, sizeof msg, "{\"type\":\"say\",\"room\":\"r%d\",\"text\":\"%s\"}",
                     c->idx % opt.rooms, text);
    } else {
        n = snprintf(msg, sizeof msg, "{\"type\":\"say\",\"room\":\"" ROOM "\",\"text\":\"%s\"}", text);
    }
    send_text(c, msg, (size_t)n);
}

static void pump(void)
{
    static bool busy;
    if (phase != PH_RUN || opt.rate > 0 || busy) return;
    busy = true;
    while (sent < opt.messages && sent - done_upto < opt.window) {
        struct conn *s = NULL;
        for (int t = 0; t < opt.senders; t++) {
            struct conn *x = &conns[(rr_sender + t) % opt.senders];
            if (x->state == CS_OPEN && x->wlen == x->woff) { s = x; rr_sender = (x->idx + 1) % opt.senders; break; }
        }
        if (!s) break;   /* every sender's socket is full: wait for EV_WRITE */
        send_bench(s);
    }
    busy = false;
}

static void on_pace(struct ev_loop *l, ev_timer *w, int revents)
{
    struct conn *c = &conns[w - pace_timers];
    if (phase != PH_RUN || sent >= opt.messages) { ev_timer_stop(l, w); return; }
    if (c->state == CS_OPEN && sent - done_upto < opt.window) send_bench(c);
}

static void start_run(void)
{
    bool ok;
    /* e.g. reset a Redis server's command counts, so they cover the run alone (not the setup) */
    if (opt.on_run && system(opt.on_run) != 0)
        fprintf(stderr, "loadgen: --on-run command failed: %s\n", opt.on_run);
    phase = PH_RUN;
    cpu_run0 = server_cpu_ticks(&ok);
    t_run0 = mono_ns();
    rx_run0 = rx_bytes;
    frames_compressed = frames_plain = 0;
    if (opt.rate > 0) {
        pace_timers = calloc((size_t)opt.senders, sizeof *pace_timers);
        double iv = 1.0 / opt.rate;
        for (int i = 0; i < opt.senders; i++) {
            /* spread the senders' phases over one interval so the total rate is smooth */
            ev_timer_init(&pace_timers[i], on_pace, iv * (i + 1) / opt.senders, iv);
            ev_timer_start(loop, &pace_timers[i]);
        }
    } else {
        pump();
    }
}

/* ---- reporting ---- */

static double hist_pct_of(const uint32_t *h, uint64_t count, double p)
{
    if (!count) return 0;
    uint64_t want = (uint64_t)(p * (double)count + 0.5), acc = 0;
    if (want == 0) want = 1;
    for (size_t i = 0; i < HIST_N; i++) {
        acc += h[i];
        if (acc >= want) return (double)(i * HIST_BUCKET_NS + HIST_BUCKET_NS / 2) / 1e6;
    }
    return (double)lat_max_ns / 1e6;
}

static double hist_pct(double p)
{
    return hist_pct_of(hist, hist_count, p);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The p-quantile of the messages' first deliveries, in ms (sorts first_ns). */
static double first_pct(double p)
{
    size_t n = 0;
    for (int i = 0; i < opt.messages; i++)
        if (first_ns[i] != UINT64_MAX) first_ns[n++] = first_ns[i];
    if (!n) return 0;
    qsort(first_ns, n, sizeof *first_ns, cmp_u64);
    size_t k = (size_t)(p * (double)n + 0.5);
    if (k > 0) k--;
    if (k >= n) k = n - 1;
    return (double)first_ns[k] / 1e6;
}

static void report_fanout(void)
{
    long tck = sysconf(_SC_CLK_TCK);
    bool have_cpu = opt.server_pid && cpu_run1 >= cpu_run0 && t_run1;
    double run_s = t_run1 ? (double)(t_run1 - t_run0) / 1e9 : (double)(mono_ns() - t_run0) / 1e9;
    bool echo = deliveries_echo > 0;
    /* every message sent must reach every other member, and its sender too if the server echoes */
    uint64_t expected = (opt.rooms ? expected_others : (uint64_t)sent * (uint64_t)(nconns - 1)) +
                        (echo ? (uint64_t)sent : 0);
    uint64_t got = deliveries_others + echo_unique;
    double cpu = have_cpu ? (double)(cpu_run1 - cpu_run0) / (double)tck : -1;
    printf("mode=fanout\n");
    printf("room_members=%d\n", opt.rooms ? nconns / opt.rooms : nconns);
    printf("rooms=%d\n", opt.rooms ? opt.rooms : 1);
    printf("members=%d\n", nconns);
    printf("senders=%d\n", opt.senders);
    printf("rate_per_sender=%g\n", opt.rate);
    printf("window=%d\n", opt.window);
    printf("messages=%d\n", opt.messages);
    printf("sent=%" PRId64 "\n", sent);
    printf("size=%d\n", opt.size);
    printf("setup_s=%.3f\n", t_run0 ? (double)(t_run0 - t_setup0) / 1e9 : -1.0);
    printf("run_s=%.3f\n", run_s);
    printf("sender_gets_own=%d\n", echo ? 1 : 0);
    printf("deliveries=%" PRIu64 "\n", got);
    printf("expected=%" PRIu64 "\n", expected);
    printf("lost=%" PRId64 "\n", (int64_t)expected - (int64_t)got);
    printf("duplicates=%" PRIu64 "\n", duplicates);
    printf("reordered=%" PRIu64 "\n", reordered);
    if (echo && !opt.rooms) {
        /* every member received every message (its own too): with one total order per room,
         * every member saw the same sequence. Count the members whose sequence differs from
         * member 0's (a lost or duplicated message counts too). */
        int differ = 0;
        for (int i = 1; i < nconns; i++) if (conns[i].order_hash != conns[0].order_hash) differ++;
        printf("order_differs=%d\n", differ);
    }
    printf("nodes=%d\n", opt.naddrs);
    printf("deliveries_per_s=%.0f\n", run_s > 0 ? (double)got / run_s : 0);
    if (have_cpu) {
        printf("server_cpu_s=%.2f\n", cpu);
        printf("server_cores=%.3f\n", run_s > 0 ? cpu / run_s : 0);
        printf("server_cpu_s_per_million=%.3f\n", got ? cpu * 1e6 / (double)got : 0);
        printf("deliveries_per_server_cpu_s=%.0f\n", cpu > 0 ? (double)got / cpu : 0);
    }
    printf("loadgen_cpu_s=%.2f\n", self_cpu_s());
    uint64_t wire = (rx_run1 ? rx_run1 : rx_bytes) - rx_run0;
    printf("deflate_negotiated=%d\n", ndeflate);
    printf("messages_compressed=%" PRIu64 "\n", frames_compressed);
    printf("messages_plain=%" PRIu64 "\n", frames_plain);
    printf("wire_bytes=%" PRIu64 "\n", wire);
    printf("inflate_runs=%" PRIu64 "\n", inflate_runs);
    printf("inflate_cache_hits=%" PRIu64 "\n", inflate_cache_hits);
    printf("wire_bytes_per_delivery=%.1f\n", got ? (double)wire / (double)got : 0);
    printf("latency_p50_ms=%.2f\n", hist_pct(0.50));
    printf("latency_p99_ms=%.2f\n", hist_pct(0.99));
    printf("latency_max_ms=%.2f\n", (double)lat_max_ns / 1e6);
    if (opt.naddrs > 1) {
        printf("latency_same_node_p99_ms=%.2f\n", hist_pct_of(hist_same, same_count, 0.99));
        printf("latency_other_node_p99_ms=%.2f\n", hist_pct_of(hist_other, other_count, 0.99));
    }
    double f50 = first_pct(0.50), f99 = first_pct(0.99); /* first_pct sorts: p50 before p99 is fine */
    printf("first_delivery_p50_ms=%.2f\n", f50);
    printf("first_delivery_p99_ms=%.2f\n", f99);
    printf("server_errors=%" PRIu64 "\n", server_errors);
    printf("other_frames=%" PRIu64 "\n", foreign);
    printf("connect_failed=%d\n", nfailed);
    printf("closed_by_server=%d\n", nclosed_by_server);
}

static long rss_before = -1, anon_before = -1;

static void report_idle(long rss_after)
{
    printf("mode=idle\n");
    printf("connections=%d\n", nopen);
    printf("requested=%d\n", nconns);
    printf("connect_failed=%d\n", nfailed);
    printf("closed_by_server=%d\n", nclosed_by_server);
    printf("sources=%d\n", opt.sources);
    printf("connect_s=%.3f\n", t_open_all ? (double)(t_open_all - t_start) / 1e9 : -1.0);
    printf("pings_answered=%" PRIu64 "\n", pings_answered);
    printf("deflate_negotiated=%d\n", ndeflate);
    if (opt.rooms) printf("rooms=%d\nwelcomed=%d\n", opt.rooms, nwelcomed);
    if (opt.server_pid && t_open_all && cpu_start >= 0 && cpu_open_all >= cpu_start) {
        double s = (double)(cpu_open_all - cpu_start) / 1e9;
        printf("server_cpu_connect_s=%.4f\n", s);
        printf("server_cpu_s_per_1000_conns=%.4f\n", nopen ? s * 1000 / nopen : 0);
    }
    if (opt.server_pid) {
        printf("server_rss_before_kb=%ld\n", rss_before);
        printf("server_rss_after_kb=%ld\n", rss_after);
        long d = (rss_after - rss_before) * 1024;
        printf("server_rss_delta_bytes=%ld\n", d);
        printf("server_rss_per_conn_bytes=%.0f\n", nopen ? (double)d / nopen : 0);
        /* The heap alone: VmRSS also counts the code pages the first connections fault in
         * (about 140 kB, once), which belong to no connection. */
        long anon = server_status_kb("RssAnon:");
        if (anon >= 0 && anon_before >= 0) {
            printf("server_anon_before_kb=%ld\nserver_anon_after_kb=%ld\n", anon_before, anon);
            printf("server_anon_per_conn_bytes=%.0f\n",
                   nopen ? (double)(anon - anon_before) * 1024 / nopen : 0);
        }
    }
}

static void finish(void)
{
    if (phase == PH_DONE) return;
    phase = PH_DONE;
    if (opt.mode == MODE_FANOUT) {
        if (opt.on_done && system(opt.on_done) != 0)
            fprintf(stderr, "loadgen: --on-done command failed: %s\n", opt.on_done);
        report_fanout();
        if (sent < opt.messages || done_upto < opt.messages || nfailed || nclosed_by_server) exit_status = 1;
    }
    printf("status=%s\n", exit_status ? "incomplete" : "ok");
    fflush(stdout);
    ev_break(loop, EVBREAK_ALL);
}

/* ---- idle mode measurement ---- */

static long rss_prev = -1;
static int hold_closed0;

static void idle_done(void)
{
    if (nfailed || nclosed_by_server) exit_status = 1;
    printf("status=%s\n", exit_status ? "incomplete" : "ok");
    fflush(stdout);
    phase = PH_DONE;
    ev_break(loop, EVBREAK_ALL);
}

static void on_hold_end(struct ev_loop *l, ev_timer *w, int revents)
{
    printf("held_s=%.0f\nclosed_during_hold=%d\npings_answered_total=%" PRIu64 "\nstill_open=%d\n",
           opt.hold, nclosed_by_server - hold_closed0, pings_answered, nopen);
    idle_done();
}
static int rss_stable, rss_samples;

static void on_rss_poll(struct ev_loop *l, ev_timer *w, int revents)
{
    long r = server_rss_kb();
    rss_samples++;
    if (r == rss_prev) rss_stable++; else rss_stable = 0;
    rss_prev = r;
    /* RSS unchanged over 3 samples 200 ms apart (or 5 s passed): the server has settled */
    if (rss_stable >= 3 || rss_samples >= 25) {
        ev_timer_stop(l, w);
        if (rss_samples >= 25) fprintf(stderr, "loadgen: server RSS still moving after 5 s\n");
        report_idle(r);
        if (opt.hold > 0) {
            /* keep answering the server's pings for a while; any close is a failure */
            fprintf(stderr, "loadgen: holding %d connections for %.0f s\n", nopen, opt.hold);
            hold_closed0 = nclosed_by_server;
            ev_timer_init(w, on_hold_end, opt.hold, 0);
            ev_timer_start(l, w);
            return;
        }
        idle_done();
    }
}

/* --rooms: the RSS is read once every member is in its room */
static void idle_welcomed(void)
{
    if (nwelcomed == nopen && nopen + nfailed + nclosed_by_server == nconns &&
        !ev_is_active(&poll_timer) && phase == PH_CONNECT) {
        phase = PH_SYNC;
        ev_timer_init(&poll_timer, on_rss_poll, 0.2, 0.2);
        ev_timer_start(loop, &poll_timer);
    }
}

static void on_connect_poll(struct ev_loop *l, ev_timer *w, int revents)
{
    if (opt.verbose) fprintf(stderr, "loadgen: open=%d inflight=%d failed=%d\n", nopen, inflight, nfailed);
    if (opt.mode == MODE_IDLE && nopen + nfailed + nclosed_by_server == nconns) {
        ev_timer_stop(l, w);
        if (!t_open_all) all_open();
        if (nopen == 0) { report_idle(-1); idle_done(); return; }
        if (opt.rooms) { idle_welcomed(); return; }
        /* every 101 has arrived, so the server has finished each handshake; now wait for its RSS
         * to settle (allocator and lazily touched pages) before reading it */
        ev_timer_init(w, on_rss_poll, 0.2, 0.2);
        ev_timer_start(l, w);
    }
}

static void on_deadline(struct ev_loop *l, ev_timer *w, int revents)
{
    fprintf(stderr, "loadgen: deadline of %.0f s reached (phase %d, open %d, failed %d, welcomed %d, synced %d, sent %" PRId64 ", done %" PRId64 ")\n",
            opt.deadline, phase, nopen, nfailed, nwelcomed, nsynced, sent, done_upto);
    exit_status = 1;
    if (opt.mode == MODE_FANOUT) {
        if (phase == PH_RUN && !t_run1) { bool ok; t_run1 = mono_ns(); rx_run1 = rx_bytes; cpu_run1 = server_cpu_ticks(&ok); }
        finish();
    } else {
        report_idle(server_rss_kb());
        printf("status=incomplete\n");
        ev_break(l, EVBREAK_ALL);
    }
}

static void on_abort(struct ev_loop *l, ev_timer *w, int revents)
{
    fprintf(stderr, "loadgen: a room member's connection failed or was closed: run aborted\n");
    exit_status = 1;
    if (phase == PH_RUN && !t_run1) { bool ok; t_run1 = mono_ns(); rx_run1 = rx_bytes; cpu_run1 = server_cpu_ticks(&ok); }
    finish();
}

static void on_signal(struct ev_loop *l, ev_signal *w, int revents)
{
    fprintf(stderr, "loadgen: interrupted\n");
    exit_status = 1;
    ev_break(l, EVBREAK_ALL);
}

/* ---- main ---- */

static void usage(void)
{
    fprintf(stderr,
            "usage: loadgen idle   --addr HOST:PORT [--server-pid PID] [-n N] [--sources S] [--batch B]\n"
            "                      [--hold SEC] [--path /ws] [--deadline SEC] [--tls] [--rooms R]\n"
            "       loadgen fanout --addr HOST:PORT [--addr HOST:PORT...] [--server-pid PID...] [--subscribers N] [--senders K]\n"
            "                      [--messages M] [--size BYTES] [--window W] [--rate MSG_PER_S_PER_SENDER]\n"
            "                      [--sources S] [--batch B] [--prefix NAME] [--path /ws] [--deadline SEC]\n"
            "                      [--words] [--tls] [--rooms R]\n"
            "                      [--on-run SHELL_COMMAND] [--on-done SHELL_COMMAND]\n"
            "       either: --deflate offers permessage-deflate (and inflates what comes compressed)\n");
    exit(2);
}

static int parse_addr(const char *s)
{
    const char *colon = strrchr(s, ':');
    if (opt.naddrs >= MAX_ADDRS) return -1;
    char *host = opt.host[opt.naddrs];
    struct sockaddr_in *addr = &opt.addr[opt.naddrs];
    if (!colon || colon == s || (size_t)(colon - s) >= sizeof opt.host[0]) return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = 0;
    addr->sin_family = AF_INET;
    long port = strtol(colon + 1, NULL, 10);
    if (port <= 0 || port > 65535 || inet_pton(AF_INET, host, &addr->sin_addr) != 1) return -1;
    addr->sin_port = htons((uint16_t)port);
    snprintf(host, sizeof opt.host[0], "%s", s);   /* Host header carries the port */
    opt.naddrs++;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) usage();
    if (!strcmp(argv[1], "idle")) opt.mode = MODE_IDLE;
    else if (!strcmp(argv[1], "fanout")) opt.mode = MODE_FANOUT;
    else usage();
    bool have_addr = false;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(name) (!strcmp(a, name) && v && (i++, 1))
        if (ARG("--addr")) { if (parse_addr(v)) { fprintf(stderr, "loadgen: bad --addr %s\n", v); return 2; } have_addr = true; }
        else if (ARG("--server-pid")) {
            if (opt.npids >= MAX_PIDS) { fprintf(stderr, "loadgen: at most %d --server-pid\n", MAX_PIDS); return 2; }
            opt.pids[opt.npids++] = (pid_t)atoi(v);
            if (!opt.server_pid) opt.server_pid = opt.pids[0];
        }
        else if (ARG("-n") || ARG("--connections")) opt.n = atoi(v);
        else if (ARG("--sources")) opt.sources = atoi(v);
        else if (ARG("--batch")) opt.batch = atoi(v);
        else if (ARG("--deadline")) opt.deadline = atof(v);
        else if (ARG("--hold")) opt.hold = atof(v);
        else if (ARG("--path")) opt.path = v;
        else if (ARG("--subscribers")) opt.subscribers = atoi(v);
        else if (ARG("--senders")) opt.senders = atoi(v);
        else if (ARG("--messages")) opt.messages = atoi(v);
        else if (ARG("--size")) opt.size = atoi(v);
        else if (ARG("--window")) opt.window = atoi(v);
        else if (ARG("--rate")) opt.rate = atof(v);
        else if (ARG("--prefix")) opt.prefix = v;
        else if (ARG("--on-run")) opt.on_run = v;
        else if (ARG("--on-done")) opt.on_done = v;
        else if (ARG("--rooms")) opt.rooms = atoi(v);
        else if (!strcmp(a, "-v")) opt.verbose = 1;
        else if (!strcmp(a, "--deflate")) opt.deflate = true;
        else if (!strcmp(a, "--words")) opt.words = true;
        else if (!strcmp(a, "--tls")) opt.tls = 1;
        else { fprintf(stderr, "loadgen: unknown or incomplete argument %s\n", a); usage(); }
#undef ARG
    }
    if (!have_addr || opt.n < 1 || opt.sources < 0 || opt.sources > 250 || opt.batch < 1 ||
        opt.subscribers < 2 || opt.senders < 1 || opt.rooms < 0 ||
        (opt.senders >= opt.subscribers && !(opt.rooms && opt.senders == opt.subscribers)) ||
        (opt.rooms && opt.mode == MODE_FANOUT && opt.subscribers < 2 * opt.rooms) ||
        opt.subscribers > 65535 || opt.messages < 1 || opt.size < 1 || opt.size > 2000 ||
        opt.window < 1 || opt.rate < 0 || opt.deadline <= 0)
        usage();

    signal(SIGPIPE, SIG_IGN);
    if (opt.tls) {
        tls_ctx = SSL_CTX_new(TLS_client_method());
        if (!tls_ctx) { fprintf(stderr, "loadgen: cannot create a TLS context\n"); return 1; }
        SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_NONE, NULL);
        SSL_CTX_set_mode(tls_ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                                  SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    }
    random_bytes(&rng_state, sizeof rng_state);
    rng_state |= 1;
    raise_nofile();

    nconns = opt.mode == MODE_IDLE ? opt.n : opt.subscribers;
    long lim = nofile_limit();
    if (nconns + 16 > lim) {
        fprintf(stderr, "loadgen: %d connections need %d file descriptors but RLIMIT_NOFILE is %ld\n",
                nconns, nconns + 16, lim);
        return 1;
    }
    conns = calloc((size_t)nconns, sizeof *conns);
    if (!conns) return 1;
    for (int i = 0; i < nconns; i++) { conns[i].state = CS_CLOSED; conns[i].fd = -1; }
    if (opt.mode == MODE_FANOUT) {
        seen_stride = ((size_t)opt.messages + 7) / 8;
        seen = opt.rooms ? NULL : calloc((size_t)nconns, seen_stride);
        need_others = opt.rooms ? calloc((size_t)opt.messages, sizeof *need_others) : NULL;
        recv_others = calloc((size_t)opt.messages, sizeof *recv_others);
        hist = calloc(HIST_N, sizeof *hist);
        hist_same = calloc(HIST_N, sizeof *hist_same);
        hist_other = calloc(HIST_N, sizeof *hist_other);
        first_ns = malloc((size_t)opt.messages * sizeof *first_ns);
        if (first_ns)
            for (int i = 0; i < opt.messages; i++) first_ns[i] = UINT64_MAX;
        if ((!opt.rooms && !seen) || (opt.rooms && !need_others) || !recv_others || !hist ||
            !hist_same || !hist_other || !first_ns) {
            fprintf(stderr, "loadgen: out of memory\n");
            return 1;
        }
    }

    loop = ev_default_loop(EVBACKEND_EPOLL);
    if (!loop) loop = ev_default_loop(0);
    ev_timer_init(&deadline_timer, on_deadline, opt.deadline, 0);
    ev_timer_start(loop, &deadline_timer);
    ev_timer_init(&abort_timer, on_abort, 0, 0);
    ev_timer_init(&poll_timer, on_connect_poll, 0.05, 0.05);
    ev_timer_start(loop, &poll_timer);
    ev_signal_init(&sigint_w, on_signal, SIGINT);
    ev_signal_start(loop, &sigint_w);
    ev_signal_init(&sigterm_w, on_signal, SIGTERM);
    ev_signal_start(loop, &sigterm_w);
    ev_unref(loop); ev_unref(loop);   /* the signal watchers alone do not keep the loop alive */

    rss_before = server_rss_kb();
    anon_before = server_status_kb("RssAnon:");
    if (opt.server_pid && rss_before < 0) {
        fprintf(stderr, "loadgen: cannot read /proc/%d/status\n", (int)opt.server_pid);
        return 1;
    }
    cpu_start = server_cpu_ns();
    t_start = t_setup0 = mono_ns();
    fill_starts();
    ev_run(loop, 0);

    if (phase != PH_DONE) {   /* loop ended early (signal, or every watcher gone) */
        if (opt.mode == MODE_FANOUT) { exit_status = 1; finish(); }
        else { exit_status = 1; printf("status=incomplete\n"); }
    }
    for (int i = 0; i < nconns; i++) if (conns[i].state != CS_CLOSED) conn_close(&conns[i]);
    return exit_status;
}
