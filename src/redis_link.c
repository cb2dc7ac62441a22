/* redis_link: see redis_link.h. Each link is one socket with a FIFO of calls waiting for their
 * reply (Redis answers in order), an output buffer, a deadline timer on the oldest call and a
 * reconnect timer. A link that misses a deadline, errs or ends is closed: its calls fail at once,
 * and it connects again after a backoff (50 ms doubling to 2 s). */
#include "redis_link.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"

#define BACKOFF_MIN 0.05
#define BACKOFF_MAX 2.0
#define PING_EVERY 1.0
#define MAX_SCRIPTS 16
#define MAX_SUBS 16
#define MAX_WATCHERS 8

enum link_state { L_DOWN, L_CONNECTING, L_HANDSHAKE, L_UP };
enum call_kind { K_USER, K_HELLO, K_SCRIPT_LOAD, K_PING };

struct call {
    struct call *next;
    redis_cb *cb;
    void *ctx;
    double deadline;
    int kind;
    int script;  /* EVALSHA: the script (for EVAL after NOSCRIPT), else -1 */
    char *tail;  /* EVALSHA: the command after the sha (numkeys, keys, args) */
    size_t tail_len;
    int nargs;   /* EVALSHA: elements in tail */
};

struct shard;

struct link {
    struct shard *sh;
    int sub; /* the subscriber link */
    int fd;
    enum link_state state;
    ev_io rio, wio;
    ev_timer deadline, retry, ping;
    redisReader *rd;
    char *out;
    size_t out_len, out_off, out_cap;
    struct call *head, *tail;
    unsigned pending;
    unsigned hello_left; /* handshake replies still expected */
    double backoff;
    double ping_sent; /* subscriber: when the unanswered PING went out (0: none) */
};

struct shard {
    unsigned index;
    struct redis_url url;
    struct link cmd, sub;
    struct redis_link_stats stats;
};

static struct {
    struct ev_loop *loop;
    double timeout;
    unsigned n;
    struct shard shards[REDIS_MAX_SHARDS];
    struct {
        char *src;
        size_t len;
        char sha[41];
    } scripts[MAX_SCRIPTS];
    int nscripts;
    struct {
        char *channel;
        redis_msg_fn *fn;
        void *ctx;
    } subs[MAX_SUBS];
    int nsubs;
    struct {
        redis_event_fn *fn;
        void *ctx;
    } watchers[MAX_WATCHERS];
    int nwatchers;
    int started;
    ev_prepare flush;
} R;

static void link_fail(struct link *l, const char *why, const char *call_err);
static void link_connect(struct link *l);

/* ---- RESP encoding ------------------------------------------------------------------- */

static int buf_reserve(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 256;
    while (n < need)
        n *= 2;
    char *p = realloc(*buf, n);
    if (!p)
        return -1;
    *buf = p;
    *cap = n;
    return 0;
}

static size_t bulk_size(size_t len)
{
    return 1 + 20 + 2 + len + 2;
}

static size_t put_bulk(char *p, const char *s, size_t len)
{
    int n = sprintf(p, "$%zu\r\n", len);
    memcpy(p + n, s, len);
    memcpy(p + n + len, "\r\n", 2);
    return (size_t)n + len + 2;
}

char *redis_format(int argc, const char **argv, const size_t *argvlen, size_t *outlen)
{
    size_t need = 1 + 20 + 2 + 1;
    for (int i = 0; i < argc; i++)
        need += bulk_size(argvlen[i]);
    char *buf = malloc(need);
    if (!buf)
        return NULL;
    size_t off = (size_t)sprintf(buf, "*%d\r\n", argc);
    for (int i = 0; i < argc; i++)
        off += put_bulk(buf + off, argv[i], argvlen[i]);
    *outlen = off;
    return buf;
}

/* Elements only (no "*N" header): the part of an EVALSHA after the sha. */
static char *format_elements(int argc, const char **argv, const size_t *argvlen, size_t *outlen)
{
    size_t need = 1;
    for (int i = 0; i < argc; i++)
        need += bulk_size(argvlen[i]);
    char *buf = malloc(need);
    if (!buf)
        return NULL;
    size_t off = 0;
    for (int i = 0; i < argc; i++)
        off += put_bulk(buf + off, argv[i], argvlen[i]);
    *outlen = off;
    return buf;
}

/* ---- output and the call FIFO ---------------------------------------------------------- */

static int out_append(struct link *l, const char *data, size_t len)
{
    if (l->out_off && l->out_off == l->out_len)
        l->out_off = l->out_len = 0;
    if (buf_reserve(&l->out, &l->out_cap, l->out_len + len) < 0)
        return -1;
    memcpy(l->out + l->out_len, data, len);
    l->out_len += len;
    if (l->state != L_CONNECTING && !ev_is_active(&l->wio))
        ev_io_start(R.loop, &l->wio);
    return 0;
}

static void deadline_arm(struct link *l)
{
    ev_timer_stop(R.loop, &l->deadline);
    if (!l->head)
        return;
    double in = l->head->deadline - ev_now(R.loop);
    ev_timer_set(&l->deadline, in > 0 ? in : 0, 0);
    ev_timer_start(R.loop, &l->deadline);
}

static void call_free(struct call *c)
{
    free(c->tail);
    free(c);
}

/* Appends a call expecting one reply, after its bytes were queued. */
static void call_push(struct link *l, struct call *c)
{
    /* From now, not from the loop's time: a long callback may have run since that was taken. */
    c->deadline = ev_time() + R.timeout;
    c->next = NULL;
    if (l->tail)
        l->tail->next = c;
    else
        l->head = c;
    l->tail = c;
    l->pending++;
    if (l->head == c)
        deadline_arm(l);
}

static struct call *call_pop(struct link *l)
{
    struct call *c = l->head;
    if (!c)
        return NULL;
    l->head = c->next;
    if (!l->head)
        l->tail = NULL;
    l->pending--;
    deadline_arm(l);
    return c;
}

/* Queues one command and its call record (no callback yet); NULL on no memory. */
static struct call *send_internal(struct link *l, int kind, int argc, const char **argv,
                                  const size_t *argvlen)
{
    size_t len;
    char *cmd = redis_format(argc, argv, argvlen, &len);
    struct call *c = calloc(1, sizeof *c);
    if (!cmd || !c || out_append(l, cmd, len) < 0) {
        free(cmd);
        free(c);
        return NULL;
    }
    free(cmd);
    c->kind = kind;
    c->script = -1;
    call_push(l, c);
    return c;
}

/* ---- events ---------------------------------------------------------------------------- */

static void notify(unsigned shard, int event)
{
    for (int i = 0; i < R.nwatchers; i++)
        R.watchers[i].fn(R.watchers[i].ctx, shard, event);
}

static const char *link_name(const struct link *l)
{
    return l->sub ? "subscriber" : "command";
}

static void describe(const struct shard *sh, char *buf, size_t len)
{
    if (sh->url.path[0])
        snprintf(buf, len, "unix:%s", sh->url.path);
    else
        snprintf(buf, len, "%s:%d", sh->url.host, sh->url.port);
}

static void link_ready(struct link *l)
{
    char where[300];
    describe(l->sh, where, sizeof where);
    l->state = L_UP;
    l->backoff = 0;
    if (l->sub) {
        l->sh->stats.sub_up = 1;
        l->sh->stats.sub_connects++;
        log_info("redis %s: subscribed (shard %u)", where, l->sh->index);
        ev_timer_again(R.loop, &l->ping);
        notify(l->sh->index, REDIS_EV_SUBSCRIBED);
    } else {
        l->sh->stats.up = 1;
        l->sh->stats.connects++;
        log_info("redis %s: connected (shard %u)", where, l->sh->index);
        ev_timer_again(R.loop, &l->ping);
        notify(l->sh->index, REDIS_EV_UP);
    }
}

/* After connect: AUTH, SELECT; then SCRIPT LOADs (command link) or SUBSCRIBEs (subscriber). */
static void link_handshake(struct link *l)
{
    const struct redis_url *u = &l->sh->url;
    l->state = L_HANDSHAKE;
    l->hello_left = 0;
    if (u->password[0]) {
        const char *argv[] = {"AUTH", u->password};
        size_t lens[] = {4, strlen(u->password)};
        send_internal(l, K_HELLO, 2, argv, lens);
        l->hello_left++;
    }
    if (u->db) {
        char db[16];
        int n = snprintf(db, sizeof db, "%d", u->db);
        const char *argv[] = {"SELECT", db};
        size_t lens[] = {6, (size_t)n};
        send_internal(l, K_HELLO, 2, argv, lens);
        l->hello_left++;
    }
    if (l->sub) {
        for (int i = 0; i < R.nsubs; i++) {
            const char *argv[] = {"SUBSCRIBE", R.subs[i].channel};
            size_t lens[] = {9, strlen(R.subs[i].channel)};
            size_t len;
            char *cmd = redis_format(2, argv, lens, &len);
            if (cmd)
                out_append(l, cmd, len);
            free(cmd);
            l->hello_left++; /* the confirmation, a push, not a call */
        }
    } else {
        for (int i = 0; i < R.nscripts; i++) {
            const char *argv[] = {"SCRIPT", "LOAD", R.scripts[i].src};
            size_t lens[] = {6, 4, R.scripts[i].len};
            send_internal(l, K_SCRIPT_LOAD, 3, argv, lens);
            l->hello_left++;
        }
    }
    /* The subscribe confirmations have no call of their own: keep a deadline on them. */
    if (l->sub && R.nsubs) {
        struct call *c = calloc(1, sizeof *c);
        if (c) {
            c->kind = K_HELLO;
            c->script = -1;
            c->deadline = ev_now(R.loop) + R.timeout;
            /* a placeholder at the end of the FIFO, popped by the last confirmation */
            call_push(l, c);
        }
    }
    if (l->hello_left == 0)
        link_ready(l);
}

static void link_close_socket(struct link *l)
{
    ev_io_stop(R.loop, &l->rio);
    ev_io_stop(R.loop, &l->wio);
    ev_timer_stop(R.loop, &l->deadline);
    ev_timer_stop(R.loop, &l->ping);
    if (l->fd >= 0)
        close(l->fd);
    l->fd = -1;
    if (l->rd)
        redisReaderFree(l->rd);
    l->rd = NULL;
    l->out_len = l->out_off = 0;
    l->ping_sent = 0;
}

/* Closes the link, fails every waiting call with call_err, schedules a reconnect. */
static void link_fail(struct link *l, const char *why, const char *call_err)
{
    char where[300];
    describe(l->sh, where, sizeof where);
    int was_up = l->state == L_UP;
    if (l->state != L_DOWN && l->state != L_CONNECTING)
        log_warn("redis %s: %s link lost: %s", where, link_name(l), why);
    else if (l->backoff == 0 || l->backoff >= BACKOFF_MAX)
        log_warn("redis %s: cannot connect the %s link: %s", where, link_name(l), why);
    link_close_socket(l);
    l->state = L_DOWN;
    if (l->sub)
        l->sh->stats.sub_up = 0;
    else
        l->sh->stats.up = 0;
    struct call *c;
    while ((c = call_pop(l))) {
        if (c->kind == K_USER && c->cb)
            c->cb(c->ctx, NULL, call_err);
        call_free(c);
    }
    if (was_up && !l->sub)
        notify(l->sh->index, REDIS_EV_DOWN);
    if (!R.started)
        return;
    l->backoff = l->backoff == 0 ? BACKOFF_MIN : l->backoff * 2;
    if (l->backoff > BACKOFF_MAX)
        l->backoff = BACKOFF_MAX;
    ev_timer_set(&l->retry, l->backoff, 0);
    ev_timer_start(R.loop, &l->retry);
}

/* ---- replies --------------------------------------------------------------------------- */

static int is_error(const redisReply *r, const char *prefix)
{
    return r->type == REDIS_REPLY_ERROR && strncmp(r->str, prefix, strlen(prefix)) == 0;
}

/* An EVALSHA answered NOSCRIPT: send it again as EVAL (which caches the script again). */
static int eval_again(struct link *l, struct call *c)
{
    const char *src = R.scripts[c->script].src;
    size_t slen = R.scripts[c->script].len;
    char head[64];
    int hn = snprintf(head, sizeof head, "*%d\r\n$4\r\nEVAL\r\n", c->nargs + 2);
    char *cmd = malloc((size_t)hn + bulk_size(slen) + c->tail_len);
    if (!cmd)
        return -1;
    memcpy(cmd, head, (size_t)hn);
    size_t off = (size_t)hn + put_bulk(cmd + hn, src, slen);
    memcpy(cmd + off, c->tail, c->tail_len);
    off += c->tail_len;
    int rc = out_append(l, cmd, off);
    free(cmd);
    if (rc < 0)
        return -1;
    c->script = -1; /* once */
    call_push(l, c);
    return 0;
}

static void on_sub_push(struct link *l, const redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 || r->element[0]->type != REDIS_REPLY_STRING) {
        if (r->type == REDIS_REPLY_ERROR)
            link_fail(l, r->str, "redis disconnected");
        return;
    }
    const char *kind = r->element[0]->str;
    if (strcmp(kind, "message") == 0 && r->elements == 3) {
        const redisReply *ch = r->element[1], *d = r->element[2];
        for (int i = 0; i < R.nsubs; i++)
            if (strlen(R.subs[i].channel) == ch->len && memcmp(R.subs[i].channel, ch->str, ch->len) == 0)
                R.subs[i].fn(R.subs[i].ctx, l->sh->index, ch->str, ch->len, d->str, d->len);
    } else if (strcmp(kind, "subscribe") == 0) {
        if (l->state == L_HANDSHAKE && l->hello_left > 0 && --l->hello_left == 0) {
            call_free(call_pop(l)); /* the placeholder */
            link_ready(l);
        }
    } else if (strcmp(kind, "pong") == 0) {
        l->ping_sent = 0;
        struct call *c = call_pop(l);
        if (c)
            call_free(c);
    }
}

static void on_reply(struct link *l, redisReply *r)
{
    if (l->sub && (l->state == L_UP || (l->state == L_HANDSHAKE && r->type == REDIS_REPLY_ARRAY))) {
        on_sub_push(l, r);
        return;
    }
    struct call *c = call_pop(l);
    if (!c) {
        link_fail(l, "reply nobody asked for", "redis disconnected");
        return;
    }
    switch (c->kind) {
    case K_HELLO:
    case K_SCRIPT_LOAD:
        if (r->type == REDIS_REPLY_ERROR) {
            char why[300];
            snprintf(why, sizeof why, "%s", r->str);
            call_free(c);
            link_fail(l, why, "redis disconnected");
            return;
        }
        call_free(c);
        if (l->state == L_HANDSHAKE && --l->hello_left == 0 && !l->sub)
            link_ready(l);
        return;
    case K_USER:
        if (c->script >= 0 && is_error(r, "NOSCRIPT")) {
            l->sh->stats.noscript++;
            if (eval_again(l, c) == 0)
                return;
        }
        if (r->type == REDIS_REPLY_ERROR)
            l->sh->stats.errors++;
        if (c->cb)
            c->cb(c->ctx, r, NULL);
        call_free(c);
        return;
    default: /* K_PING of the command link */
        l->ping_sent = 0;
        call_free(c);
    }
}

/* ---- I/O ------------------------------------------------------------------------------- */

static void on_read(EV_P_ ev_io *w, int revents)
{
    struct link *l = w->data;
    char buf[16384];
    for (int rounds = 0; rounds < 16; rounds++) {
        ssize_t n = read(l->fd, buf, sizeof buf);
        if (n == 0) {
            link_fail(l, "closed by the server", "redis disconnected");
            return;
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                break;
            link_fail(l, strerror(errno), "redis disconnected");
            return;
        }
        if (redisReaderFeed(l->rd, buf, (size_t)n) != REDIS_OK) {
            link_fail(l, "reply parser", "redis disconnected");
            return;
        }
        for (;;) {
            void *reply = NULL;
            if (redisReaderGetReply(l->rd, &reply) != REDIS_OK) {
                link_fail(l, "protocol error", "redis disconnected");
                return;
            }
            if (!reply)
                break;
            int fd = l->fd;
            on_reply(l, reply);
            freeReplyObject(reply);
            if (l->fd != fd) /* failed (and maybe reconnecting) meanwhile */
                return;
        }
        if ((size_t)n < sizeof buf)
            break;
    }
}

static void on_write(EV_P_ ev_io *w, int revents)
{
    struct link *l = w->data;
    if (l->state == L_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(l->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) {
            link_fail(l, strerror(err), "redis disconnected");
            return;
        }
        ev_io_stop(R.loop, &l->wio);
        ev_io_start(R.loop, &l->rio);
        ev_timer_stop(R.loop, &l->deadline);
        link_handshake(l);
        if (l->state == L_DOWN || l->out_len == l->out_off)
            return;
    }
    while (l->out_off < l->out_len) {
        ssize_t n = write(l->fd, l->out + l->out_off, l->out_len - l->out_off);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            link_fail(l, strerror(errno), "redis disconnected");
            return;
        }
        l->out_off += (size_t)n;
    }
    l->out_off = l->out_len = 0;
    ev_io_stop(R.loop, &l->wio);
}

static void on_deadline(EV_P_ ev_timer *w, int revents)
{
    struct link *l = w->data;
    if (l->state == L_CONNECTING) {
        link_fail(l, "connect timed out", "redis disconnected");
        return;
    }
    if (l->head && l->head->deadline <= ev_now(R.loop) + 1e-3) {
        /* The loop itself may have been busy past the deadline with the reply waiting in the
         * socket: read what is there first, and fail only what is still unanswered. */
        int fd = l->fd;
        on_read(EV_A_ &l->rio, EV_READ);
        if (l->fd != fd || !l->head || l->head->deadline > ev_now(R.loop) + 1e-3) {
            if (l->fd == fd)
                deadline_arm(l);
            return;
        }
        l->sh->stats.timeouts++;
        link_fail(l, "no reply within --redis-timeout", "redis timeout");
        return;
    }
    deadline_arm(l);
}

static void on_retry(EV_P_ ev_timer *w, int revents)
{
    link_connect(w->data);
}

/* Every second on an idle link: a PING (answered even while subscribed), so a hung or silently
 * dropped link is noticed within --redis-timeout, and posts are refused at once rather than
 * left to time out. A command link with calls waiting needs none: their deadlines do that. */
static void on_ping(EV_P_ ev_timer *w, int revents)
{
    struct link *l = w->data;
    if (l->state != L_UP || l->ping_sent || (!l->sub && l->pending))
        return;
    const char *argv[] = {"PING"};
    size_t lens[] = {4};
    if (send_internal(l, K_PING, 1, argv, lens))
        l->ping_sent = ev_now(R.loop);
}

static void link_connect(struct link *l)
{
    const struct redis_url *u = &l->sh->url;
    int fd = -1;
    struct sockaddr_storage ss;
    socklen_t sslen = 0;
    memset(&ss, 0, sizeof ss);
    if (u->path[0]) {
        struct sockaddr_un *sun = (struct sockaddr_un *)&ss;
        sun->sun_family = AF_UNIX;
        snprintf(sun->sun_path, sizeof sun->sun_path, "%s", u->path);
        sslen = sizeof *sun;
    } else {
        /* Numeric addresses only resolve without blocking; names are resolved at start-up
         * (redis_init) into u->host by getaddrinfo once. */
        struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
                                 .ai_socktype = SOCK_STREAM};
        struct addrinfo *ai = NULL;
        char port[8];
        snprintf(port, sizeof port, "%d", u->port);
        if (getaddrinfo(u->host, port, &hints, &ai) != 0 || !ai) {
            l->state = L_CONNECTING;
            link_fail(l, "bad address", "redis disconnected");
            return;
        }
        memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
        sslen = ai->ai_addrlen;
        freeaddrinfo(ai);
    }
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    l->state = L_CONNECTING;
    if (fd < 0) {
        link_fail(l, strerror(errno), "redis disconnected");
        return;
    }
    if (ss.ss_family != AF_UNIX) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    l->fd = fd;
    l->rd = redisReaderCreate();
    if (!l->rd) {
        link_fail(l, "no memory", "redis disconnected");
        return;
    }
    ev_io_set(&l->rio, fd, EV_READ);
    ev_io_set(&l->wio, fd, EV_WRITE);
    if (connect(fd, (struct sockaddr *)&ss, sslen) < 0 && errno != EINPROGRESS) {
        link_fail(l, strerror(errno), "redis disconnected");
        return;
    }
    ev_io_start(R.loop, &l->wio); /* writable = connected (or failed) */
    ev_timer_set(&l->deadline, R.timeout, 0);
    ev_timer_start(R.loop, &l->deadline);
}

/* ---- the API --------------------------------------------------------------------------- */

static void link_setup(struct shard *sh, struct link *l, int sub)
{
    l->sh = sh;
    l->sub = sub;
    l->fd = -1;
    l->state = L_DOWN;
    ev_io_init(&l->rio, on_read, -1, EV_READ);
    ev_io_init(&l->wio, on_write, -1, EV_WRITE);
    /* Read before the clients in the same pass of the loop: what another node published (a
     * connection's state, a claim) is applied before a client's message that it caused. */
    ev_set_priority(&l->rio, EV_MAXPRI);
    ev_timer_init(&l->deadline, on_deadline, 0, 0);
    ev_timer_init(&l->retry, on_retry, 0, 0);
    ev_timer_init(&l->ping, on_ping, 0, PING_EVERY);
    l->rio.data = l->wio.data = l->deadline.data = l->retry.data = l->ping.data = l;
}

/* Host names are resolved once here (blocking, before serving); the links connect to the
 * numeric address. */
static void resolve(struct redis_url *u)
{
    if (u->path[0])
        return;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    if (getaddrinfo(u->host, NULL, &hints, &ai) != 0 || !ai)
        return; /* connecting reports it */
    getnameinfo(ai->ai_addr, ai->ai_addrlen, u->host, sizeof u->host, NULL, 0, NI_NUMERICHOST);
    freeaddrinfo(ai);
}

/* Before the loop blocks, and before the server writes its clients' output (this watcher has
 * the highest priority): what the links have queued goes out now, not at the loop's next pass.
 * A post queued in a pass that also fans a message out to a thousand clients reaches Redis
 * before those writes, not after them. */
static void on_flush_all(EV_P_ ev_prepare *w, int revents)
{
    for (unsigned i = 0; i < R.n; i++) {
        struct link *ls[] = {&R.shards[i].cmd, &R.shards[i].sub};
        for (int k = 0; k < 2; k++) {
            struct link *l = ls[k];
            if ((l->state == L_UP || l->state == L_HANDSHAKE) && l->out_off < l->out_len)
                on_write(R.loop, &l->wio, EV_WRITE);
        }
    }
}

void redis_init(struct ev_loop *loop, const struct redis_url *urls, unsigned n, double timeout)
{
    ev_prepare_init(&R.flush, on_flush_all);
    ev_set_priority(&R.flush, EV_MAXPRI);
    ev_prepare_start(loop, &R.flush);
    ev_unref(loop); /* it does not keep the loop running */
    R.loop = loop;
    R.timeout = timeout;
    R.n = n > REDIS_MAX_SHARDS ? REDIS_MAX_SHARDS : n;
    for (unsigned i = 0; i < R.n; i++) {
        struct shard *sh = &R.shards[i];
        sh->index = i;
        sh->url = urls[i];
        resolve(&sh->url);
        link_setup(sh, &sh->cmd, 0);
        link_setup(sh, &sh->sub, 1);
    }
}

void redis_start(void)
{
    R.started = 1;
    for (unsigned i = 0; i < R.n; i++) {
        link_connect(&R.shards[i].cmd);
        if (R.nsubs)
            link_connect(&R.shards[i].sub);
    }
}

void redis_stop(void)
{
    R.started = 0;
    if (ev_is_active(&R.flush)) {
        ev_ref(R.loop);
        ev_prepare_stop(R.loop, &R.flush);
    }
    for (unsigned i = 0; i < R.n; i++) {
        struct link *ls[] = {&R.shards[i].cmd, &R.shards[i].sub};
        for (int k = 0; k < 2; k++) {
            struct link *l = ls[k];
            ev_timer_stop(R.loop, &l->retry);
            l->state = L_DOWN;
            link_close_socket(l);
            struct call *c;
            while ((c = call_pop(l))) {
                if (c->kind == K_USER && c->cb)
                    c->cb(c->ctx, NULL, "redis stopped");
                call_free(c);
            }
            free(l->out);
            l->out = NULL;
            l->out_cap = 0;
        }
    }
    for (int i = 0; i < R.nscripts; i++)
        free(R.scripts[i].src);
    for (int i = 0; i < R.nsubs; i++)
        free(R.subs[i].channel);
    R.nscripts = R.nsubs = R.nwatchers = 0;
    R.n = 0;
}

int redis_enabled(void)
{
    return R.n > 0;
}

unsigned redis_shards(void)
{
    return R.n;
}

unsigned redis_shard_of(const char *name, size_t len)
{
    uint32_t h = 2166136261u; /* FNV-1a: stable across nodes and versions */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)name[i]) * 16777619u;
    return R.n ? h % R.n : 0;
}

int redis_up(unsigned shard)
{
    return shard < R.n && R.shards[shard].cmd.state == L_UP;
}

void redis_flush(unsigned shard)
{
    if (!redis_up(shard))
        return;
    struct link *l = &R.shards[shard].cmd;
    if (l->out_off < l->out_len)
        on_write(R.loop, &l->wio, EV_WRITE);
}

static struct link *usable(unsigned shard)
{
    if (shard >= R.n)
        return NULL;
    struct link *l = &R.shards[shard].cmd;
    if (l->state != L_UP || l->pending >= REDIS_QUEUE_MAX) {
        R.shards[shard].stats.refused++;
        return NULL;
    }
    return l;
}

int redis_call(unsigned shard, int argc, const char **argv, const size_t *argvlen, redis_cb *cb,
               void *ctx)
{
    struct link *l = usable(shard);
    if (!l)
        return -1;
    struct call *c = send_internal(l, K_USER, argc, argv, argvlen);
    if (!c)
        return -1;
    c->cb = cb;
    c->ctx = ctx;
    R.shards[shard].stats.calls++;
    return 0;
}

int redis_script(const char *source)
{
    if (R.nscripts >= MAX_SCRIPTS)
        return -1;
    int i = R.nscripts++;
    R.scripts[i].len = strlen(source);
    R.scripts[i].src = strdup(source);
    unsigned char md[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)source, R.scripts[i].len, md);
    for (int k = 0; k < SHA_DIGEST_LENGTH; k++)
        sprintf(R.scripts[i].sha + 2 * k, "%02x", md[k]);
    return i;
}

int redis_eval(unsigned shard, int script, int nkeys, int argc, const char **argv,
               const size_t *argvlen, redis_cb *cb, void *ctx)
{
    if (script < 0 || script >= R.nscripts)
        return -1;
    struct link *l = usable(shard);
    if (!l)
        return -1;
    char nk[16];
    int nklen = snprintf(nk, sizeof nk, "%d", nkeys);
    size_t tail_len, rest_len;
    char *rest = format_elements(argc, argv, argvlen, &rest_len);
    char *tail = rest ? malloc(bulk_size((size_t)nklen) + rest_len) : NULL;
    struct call *c = calloc(1, sizeof *c);
    char head[80];
    int hn = snprintf(head, sizeof head, "*%d\r\n$7\r\nEVALSHA\r\n$40\r\n%s\r\n", argc + 3,
                      R.scripts[script].sha);
    if (!tail || !c) {
        free(rest);
        free(tail);
        free(c);
        return -1;
    }
    tail_len = put_bulk(tail, nk, (size_t)nklen);
    memcpy(tail + tail_len, rest, rest_len);
    tail_len += rest_len;
    free(rest);
    char *cmd = malloc((size_t)hn + tail_len);
    if (!cmd) {
        free(tail);
        free(c);
        return -1;
    }
    memcpy(cmd, head, (size_t)hn);
    memcpy(cmd + hn, tail, tail_len);
    int rc = out_append(l, cmd, (size_t)hn + tail_len);
    free(cmd);
    if (rc < 0) {
        free(tail);
        free(c);
        return -1;
    }
    c->kind = K_USER;
    c->cb = cb;
    c->ctx = ctx;
    c->script = script;
    c->tail = tail;
    c->tail_len = tail_len;
    c->nargs = argc + 1;
    call_push(l, c);
    R.shards[shard].stats.calls++;
    return 0;
}

int redis_subscribe(const char *channel, redis_msg_fn *fn, void *ctx)
{
    if (R.nsubs >= MAX_SUBS)
        return -1;
    R.subs[R.nsubs].channel = strdup(channel);
    R.subs[R.nsubs].fn = fn;
    R.subs[R.nsubs].ctx = ctx;
    R.nsubs++;
    return 0;
}

int redis_watch(redis_event_fn *fn, void *ctx)
{
    if (R.nwatchers >= MAX_WATCHERS)
        return -1;
    R.watchers[R.nwatchers].fn = fn;
    R.watchers[R.nwatchers].ctx = ctx;
    R.nwatchers++;
    return 0;
}

void redis_link_stats(unsigned shard, struct redis_link_stats *out)
{
    if (shard < R.n)
        *out = R.shards[shard].stats;
    else
        memset(out, 0, sizeof *out);
}

struct redis_link_stats *redis_stats_of(unsigned shard)
{
    return &R.shards[shard < R.n ? shard : 0].stats;
}
