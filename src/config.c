#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "paths.h"
#include "redis_url.h"

void config_defaults(struct config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->port = 8080;
    cfg->admin_port = -1;
    cfg->tls_port = -1;
    cfg->script_path = NULL;   /* resolved by config_resolve_paths */
    cfg->web_dir = NULL;
    cfg->ws_path = "/ws";
    cfg->handshake_timeout = 5;
    cfg->ping_interval = 54;
    cfg->pong_timeout = 60;
    cfg->max_message = 64 * 1024;
    cfg->max_request = 8 * 1024;
    cfg->max_body = 64 * 1024;
    cfg->request_memory = 64 * 1024 * 1024;
    cfg->message_memory = 64 * 1024 * 1024;
    cfg->send_queue = 1024 * 1024;
    cfg->io_uring = 1;
    cfg->deflate = 1;
    cfg->deflate_min = 64;
    cfg->history = 100;
    cfg->history_memory = 64 * 1024 * 1024;
    cfg->attr_memory = 16 * 1024 * 1024;
    cfg->hook_timeout_ms = 50;
    cfg->script_memory = 64 * 1024 * 1024;
    cfg->log_level = LOG_INFO;
    cfg->redis_timeout = 2;
    cfg->node_heartbeat = 1;
}

static const char usage[] =
    "usage: confab [options]\n"
    "  --addr HOST:PORT          listen address (default :8080, which is every interface:\n"
    "                            use 127.0.0.1:8080 for this machine only; port 0 picks one)\n"
    "  --tls-cert FILE           serve HTTPS and wss:// with this PEM certificate (its chain\n"
    "                            after it): on --addr, or on --tls-addr when given; reloaded\n"
    "                            with the key on SIGHUP\n"
    "  --tls-key FILE            the certificate's PEM private key\n"
    "  --tls-addr HOST:PORT      a second listener for TLS beside the plain one on --addr\n"
    "  --script FILE             Lua script with the chat's hooks (default: scripts/chat.lua of\n"
    "                            the data directory below)\n"
    "  --web DIR                 static files served at / (default: the script's page FILE.web/\n"
    "                            beside it if there is one, else web/ of the data directory)\n"
    "  --admin-addr [HOST:]PORT  serve /metrics, /healthz and /readyz on this address (default:\n"
    "                            none); without a host only on loopback (127.0.0.1)\n"
    "  --ws-path PATH            WebSocket endpoint (default /ws)\n"
    "  --allow-origin LIST|*     browser origins allowed besides the server's own, e.g.\n"
    "                            https://chat.example.com (comma list, or * for any). Own:\n"
    "                            http(s)://A:ANYPORT where A is the address the client reached,\n"
    "                            the --addr host, or localhost/127.0.0.1/[::1] on loopback\n"
    "  --subprotocol LIST        subprotocols offered, in preference order\n"
    "  --handshake-timeout SEC   time from accept to send HTTP requests or upgrade (default 5)\n"
    "  --ping-interval SEC       ping a peer silent this long (default 54)\n"
    "  --pong-timeout SEC        close a peer silent this long (default 60)\n"
    "  --max-message BYTES       largest incoming message, 1009 beyond (default 64K)\n"
    "  --max-request BYTES       largest HTTP request head, 431 beyond (default 8K)\n"
    "  --max-body BYTES          largest HTTP request body, 413 beyond (default 64K)\n"
    "  --request-memory BYTES    HTTP request buffers of all connections together; a request\n"
    "                            that needs more gets 503 (default 64M)\n"
    "  --message-memory BYTES    WebSocket messages in progress, all connections together; a\n"
    "                            connection that needs more is closed with 1013 (default 64M)\n"
    "  --deflate on|off          permessage-deflate for clients that offer it (default on)\n"
    "  --deflate-min BYTES       messages shorter than this are sent uncompressed (default 64)\n"
    "  --send-queue BYTES        outbound bytes queued per connection, 1008 beyond (default 1M);\n"
    "                            HTTP requests wait while their responses fill it\n"
    "  --io-uring on|off         write a loop pass's WebSocket output with one io_uring\n"
    "                            submission where the kernel allows it, else send/sendmsg\n"
    "                            (default on)\n"
    "  --flush-delay MS          hold a WebSocket's outgoing messages up to MS milliseconds so\n"
    "                            that several go out in one write: fewer system calls under\n"
    "                            moderate load, for up to MS of latency; closes, pings, pongs\n"
    "                            and a queue past 16K go at once (default 0: no delay; 0..10000)\n"
    "  --history N               messages kept per room (default 100)\n"
    "  --history-memory BYTES    history kept, all rooms together; oldest go first (default 64M)\n"
    "  --history-age SEC         drop history older than this (default: kept until evicted)\n"
    "  --attr-memory BYTES       confab.set attributes, all connections together (default 16M)\n"
    "  --hook-timeout MS         longest run of one hook call, CPU time (default 50)\n"
    "  --script-memory BYTES     memory cap of the Lua state (default 64M)\n"
    "  --max-connections N       connections at once; more get 503 with Retry-After (default:\n"
    "                            no cap but the descriptor limit)\n"
    "  --max-connections-per-ip N  connections at once from one IPv4 address or IPv6 /64; more\n"
    "                            get 503 with Retry-After (default: no cap)\n"
    "  --rate-msgs RATE[:BURST]  messages/s read from one WebSocket peer, bursts of BURST\n"
    "                            (default RATE, at least 1); a peer over it is paused, not\n"
    "                            closed: its socket is not read until the budget refills\n"
    "                            (default: unlimited)\n"
    "  --rate-bytes RATE[:BURST] bytes/s read from one WebSocket peer, e.g. 64K:256K; paused\n"
    "                            likewise (default: unlimited)\n"
    "  --drain-time SEC          on SIGTERM, close peers with 1012 (service restart) spread\n"
    "                            over SEC seconds, then exit (default 0: all at once);\n"
    "                            SIGINT closes them all at once with 1001\n"
    "  --reuse-port              listen with SO_REUSEPORT, so a new confab on the same port can\n"
    "                            take over while this one drains (both need the flag)\n"
    "  --watch                   reload the script when its file changes (SIGHUP always does)\n"
    "  --check FILE              load FILE as a script, report errors, exit 0 or 2\n"
    "  --log-format text|json    log lines as text (default) or one JSON object per line\n"
    "  --log-level LEVEL         debug, info, warn or error (default info); lines marked\n"
    "                            \"note\" (listening, stopped) are always printed\n"
    "  --pid-file FILE           write the process id to FILE at start, remove it at exit\n"
    "  --redis URL               run as one node of many on Redis: rooms, ids and history\n"
    "                            live there (redis://[:PASSWORD@]HOST[:PORT][/DB] or\n"
    "                            unix:/PATH[?db=N]); repeat to spread rooms over several\n"
    "                            servers (every node lists the same URLs in the same order)\n"
    "  --redis-timeout SEC       deadline of every Redis call (default 2)\n"
    "  --config FILE             read settings from FILE first, one \"name value\" per line\n"
    "                            (names as the flags without \"--\"; flags given here win)\n"
    "  --node-heartbeat SEC      with --redis: heartbeat of this node (default 1); a node\n"
    "                            silent for 3 heartbeats is declared dead and its clients\n"
    "                            leave every room\n"
    "  --help, --version\n";

/* "64K", "1M", "1048576" → bytes. */
static int parse_size(const char *s, size_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || errno || *s == '-')
        return -1;
    unsigned long long mul = 1;
    switch (*end) {
    case 'k': case 'K': mul = 1024; end++; break;
    case 'm': case 'M': mul = 1024 * 1024; end++; break;
    case 'g': case 'G': mul = 1024ULL * 1024 * 1024; end++; break;
    }
    if (*end == 'i' || *end == 'B')
        end += (*end == 'i' && end[1] == 'B') ? 2 : 1;
    if (*end || v > SIZE_MAX / mul)
        return -1;
    *out = (size_t)(v * mul);
    return 0;
}

static int parse_seconds(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno || !isfinite(v) || v <= 0 || v > 1e7)
        return -1;
    *out = v;
    return 0;
}

/* Seconds, 0 allowed. */
static int parse_seconds0(const char *s, double *out)
{
    if (strcmp(s, "0") == 0) {
        *out = 0;
        return 0;
    }
    return parse_seconds(s, out);
}

/* One number of a rate: a size ("64K") when bytes, else a positive number. */
static int parse_amount(const char *s, int bytes, double *out)
{
    if (!bytes)
        return parse_seconds(s, out);
    size_t z;
    if (parse_size(s, &z) < 0 || z == 0)
        return -1;
    *out = (double)z;
    return 0;
}

/* "RATE[:BURST]": RATE > 0, BURST >= min (default: RATE, at least min); "0" turns the limit
 * off. */
static int parse_rate(const char *s, int bytes, double min, double *rate, double *burst)
{
    if (strcmp(s, "0") == 0) {
        *rate = *burst = 0;
        return 0;
    }
    char head[64];
    const char *colon = strchr(s, ':');
    size_t n = colon ? (size_t)(colon - s) : strlen(s);
    if (n == 0 || n >= sizeof head)
        return -1;
    memcpy(head, s, n);
    head[n] = '\0';
    double r, b;
    if (parse_amount(head, bytes, &r) < 0)
        return -1;
    if (colon) {
        if (parse_amount(colon + 1, bytes, &b) < 0 || b < min)
            return -1;
    } else {
        b = r < min ? min : r;
    }
    *rate = r;
    *burst = b;
    return 0;
}

static int parse_uint(const char *s, unsigned max, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (end == s || *end || errno || *s == '-' || v > max)
        return -1;
    *out = (unsigned)v;
    return 0;
}

/* "HOST:PORT", ":PORT", "[::1]:PORT" into host (size hostlen) and port. */
static int parse_hostport(const char *s, char *host, size_t hostlen, int *portp)
{
    const char *colon = strrchr(s, ':');
    if (!colon)
        return -1;
    size_t hlen = (size_t)(colon - s);
    const char *h = s;
    if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    unsigned port;
    if (hlen >= hostlen || parse_uint(colon + 1, 65535, &port) < 0 || !colon[1])
        return -1;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *portp = (int)port;
    return 0;
}

static int parse_addr(const char *s, struct config *cfg)
{
    return parse_hostport(s, cfg->host, sizeof cfg->host, &cfg->port);
}

/* --admin-addr: like --addr, but "PORT" or ":PORT" means loopback only. */
static int parse_admin_addr(const char *s, struct config *cfg)
{
    char buf[300];
    if (!strchr(s, ':')) {
        snprintf(buf, sizeof buf, ":%s", s);
        s = buf;
    }
    if (parse_hostport(s, cfg->admin_host, sizeof cfg->admin_host, &cfg->admin_port) < 0)
        return -1;
    if (!cfg->admin_host[0])
        strcpy(cfg->admin_host, "127.0.0.1");
    return 0;
}

/* Values read from the config file live as long as the process (cfg points into them): kept in
 * this list, so they stay reachable. */
struct kept {
    struct kept *next;
    char text[];
};
static struct kept *kept_values;

static const char *keep(const char *s, size_t len)
{
    struct kept *k = malloc(sizeof *k + len + 1);
    if (!k)
        return NULL;
    memcpy(k->text, s, len);
    k->text[len] = '\0';
    k->next = kept_values;
    kept_values = k;
    return k->text;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

/* Applies the settings of the file at path through config_parse, one line at a time. */
static int config_file(struct config *cfg, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot read config file '%s': %s", path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    int lineno = 0, rc = 0;
    while (rc == 0 && (got = getline(&line, &cap, f)) >= 0) {
        lineno++;
        char *p = line, *end = line + got;
        while (p < end && is_space(*p))
            p++;
        while (end > p && is_space(end[-1]))
            end--;
        if (p == end || *p == '#')
            continue;
        const char *why = NULL;
        char *name = p;
        while (p < end && !is_space(*p))
            p++;
        size_t nlen = (size_t)(p - name);
        while (p < end && is_space(*p))
            p++;
        while (nlen && *name == '-') { /* "--addr" is taken as "addr" */
            name++;
            nlen--;
        }
        char flag[72];
        if (memchr(name, '\0', (size_t)(end - name)))
            why = "a NUL byte in the line";
        else if (nlen == 0 || nlen > 60)
            why = "expected \"name value\"";
        snprintf(flag, sizeof flag, "--%.*s", (int)(nlen <= 60 ? nlen : 60), name);
        if (!why && (strcmp(flag, "--help") == 0 || strcmp(flag, "--version") == 0 ||
                     strcmp(flag, "--check") == 0 || strcmp(flag, "--config") == 0 ||
                     strcmp(flag, "--h") == 0))
            why = "this setting is only accepted on the command line";
        if (why) {
            snprintf(err, errlen, "%s:%d: %s", path, lineno, why);
            rc = -1;
            break;
        }
        char *args[3] = {"confab", flag, NULL};
        int nargs = 2;
        /* The flags without a value: "watch", "watch yes", "reuse-port no"... */
        int *on_off = strcmp(flag, "--watch") == 0        ? &cfg->watch
                      : strcmp(flag, "--reuse-port") == 0 ? &cfg->reuse_port
                                                          : NULL;
        if (on_off) {
            size_t vlen = (size_t)(end - p);
            int on = vlen == 0 || (vlen == 3 && !strncmp(p, "yes", 3)) ||
                     (vlen == 4 && !strncmp(p, "true", 4)) || (vlen == 2 && !strncmp(p, "on", 2)) ||
                     (vlen == 1 && *p == '1');
            int off = (vlen == 2 && !strncmp(p, "no", 2)) ||
                      (vlen == 5 && !strncmp(p, "false", 5)) ||
                      (vlen == 3 && !strncmp(p, "off", 3)) || (vlen == 1 && *p == '0');
            if (!on && !off) {
                snprintf(err, errlen, "%s:%d: %s takes yes or no", path, lineno, flag + 2);
                rc = -1;
                break;
            }
            *on_off = on;
            continue;
        }
        if (p == end) {
            snprintf(err, errlen, "%s:%d: '%.60s' needs a value", path, lineno, flag + 2);
            rc = -1;
            break;
        }
        const char *val = keep(p, (size_t)(end - p));
        if (!val) {
            snprintf(err, errlen, "%s:%d: out of memory", path, lineno);
            rc = -1;
            break;
        }
        args[nargs++] = (char *)val;
        char why2[512];
        if (config_parse(cfg, nargs, args, why2, sizeof why2) != 0) {
            snprintf(err, errlen, "%s:%d: %s", path, lineno, why2);
            rc = -1;
        }
    }
    free(line);
    fclose(f);
    return rc;
}

int config_parse(struct config *cfg, int argc, char **argv, char *err, size_t errlen)
{
    /* The file first, so the command line overrides it (not again for the file's own lines). */
    static int in_file;
    if (!in_file) {
        for (int i = 1; i < argc; i++) {
            const char *path = NULL;
            if (strncmp(argv[i], "--config=", 9) == 0)
                path = argv[i] + 9;
            else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
                path = argv[i + 1];
            else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0 ||
                     strcmp(argv[i], "--version") == 0)
                break;
            if (path) {
                cfg->config_file = path;
                in_file = 1;
                int rc = config_file(cfg, path, err, errlen);
                in_file = 0;
                if (rc < 0)
                    return -1;
                break;
            }
        }
    }
    int redis_from_argv = 0;
    for (int i = 1; i < argc; i++) {
        const char *flag = argv[i];
        const char *val = NULL;
        char name[64];

        if (strcmp(flag, "--help") == 0 || strcmp(flag, "-h") == 0) {
            fputs(usage, stdout);
            printf("data directory (found from this binary, not the current directory):\n  %s\n",
                   paths_data_dir());
            return 1;
        }
        if (strcmp(flag, "--version") == 0) {
            printf("confab %s\n", CONFAB_VERSION);
            return 1;
        }
        if (strcmp(flag, "--watch") == 0) {
            cfg->watch = 1;
            continue;
        }
        if (strcmp(flag, "--reuse-port") == 0) {
            cfg->reuse_port = 1;
            continue;
        }
        /* Every other flag takes a value: "--flag VALUE" or "--flag=VALUE". */
        const char *eq = strchr(flag, '=');
        size_t nlen = eq ? (size_t)(eq - flag) : strlen(flag);
        if (strncmp(flag, "--", 2) != 0 || nlen >= sizeof name) {
            snprintf(err, errlen, "unknown argument '%s' (see --help)", flag);
            return -1;
        }
        memcpy(name, flag, nlen);
        name[nlen] = '\0';
        if (eq)
            val = eq + 1;
        else if (i + 1 < argc)
            val = argv[++i];

#define IS(n) (strcmp(name, n) == 0)
        int known = IS("--addr") || IS("--admin-addr") || IS("--config") || IS("--log-format") || IS("--script") || IS("--web") || IS("--ws-path") ||
                    IS("--allow-origin") || IS("--subprotocol") || IS("--handshake-timeout") ||
                    IS("--ping-interval") || IS("--pong-timeout") || IS("--max-message") ||
                    IS("--max-request") || IS("--max-body") || IS("--send-queue") ||
                    IS("--flush-delay") || IS("--io-uring") ||
                    IS("--request-memory") || IS("--message-memory") ||
                    IS("--deflate") || IS("--deflate-min") ||
                    IS("--history") || IS("--history-memory") || IS("--history-age") ||
                    IS("--attr-memory") || IS("--hook-timeout") || IS("--script-memory") ||
                    IS("--check") || IS("--log-level") || IS("--pid-file") ||
                    IS("--redis") || IS("--redis-timeout") ||
                    IS("--max-connections") || IS("--max-connections-per-ip") ||
                    IS("--rate-msgs") || IS("--rate-bytes") || IS("--drain-time") ||
                    IS("--tls-cert") || IS("--tls-key") || IS("--tls-addr") ||
                    IS("--node-heartbeat");
        if (!known) {
            snprintf(err, errlen, "unknown option '%s' (see --help)", name);
            return -1;
        }
        if (!val) {
            snprintf(err, errlen, "option '%s' needs a value", name);
            return -1;
        }

        int bad = 0;
        unsigned u;
        enum log_level lv;
        enum log_format lf;
        if (IS("--addr"))
            bad = parse_addr(val, cfg);
        else if (IS("--config"))
            bad = 0; /* read before the other flags */
        else if (IS("--log-format"))
            bad = log_parse_format(val, &lf) < 0 ? -1 : (cfg->log_format = (int)lf, 0);
        else if (IS("--admin-addr"))
            bad = parse_admin_addr(val, cfg);
        else if (IS("--tls-addr"))
            bad = parse_hostport(val, cfg->tls_host, sizeof cfg->tls_host, &cfg->tls_port);
        else if (IS("--tls-cert"))
            bad = val[0] ? (cfg->tls_cert = val, 0) : -1;
        else if (IS("--tls-key"))
            bad = val[0] ? (cfg->tls_key = val, 0) : -1;
        else if (IS("--script"))
            cfg->script_path = val;
        else if (IS("--web"))
            cfg->web_dir = val;
        else if (IS("--ws-path"))
            bad = (val[0] != '/' || strlen(val) > 200) ? -1 : (cfg->ws_path = val, 0);
        else if (IS("--allow-origin"))
            cfg->allow_origin = val;
        else if (IS("--subprotocol"))
            cfg->subprotocols = val;
        else if (IS("--handshake-timeout"))
            bad = parse_seconds(val, &cfg->handshake_timeout);
        else if (IS("--ping-interval"))
            bad = parse_seconds(val, &cfg->ping_interval);
        else if (IS("--pong-timeout"))
            bad = parse_seconds(val, &cfg->pong_timeout);
        else if (IS("--max-message"))
            bad = parse_size(val, &cfg->max_message) || cfg->max_message == 0;
        else if (IS("--max-request"))
            bad = parse_size(val, &cfg->max_request) || cfg->max_request < 256;
        else if (IS("--max-body"))
            bad = parse_size(val, &cfg->max_body);
        else if (IS("--request-memory"))
            bad = parse_size(val, &cfg->request_memory) || cfg->request_memory < 1024;
        else if (IS("--message-memory"))
            bad = parse_size(val, &cfg->message_memory) || cfg->message_memory < 1024;
        else if (IS("--deflate"))
            bad = strcmp(val, "on") == 0    ? (cfg->deflate = 1, 0)
                  : strcmp(val, "off") == 0 ? (cfg->deflate = 0, 0)
                                            : -1;
        else if (IS("--deflate-min"))
            bad = parse_size(val, &cfg->deflate_min);
        else if (IS("--send-queue"))
            bad = parse_size(val, &cfg->send_queue) || cfg->send_queue < 1024;
        else if (IS("--io-uring"))
            bad = strcmp(val, "on") == 0    ? (cfg->io_uring = 1, 0)
                  : strcmp(val, "off") == 0 ? (cfg->io_uring = 0, 0)
                                            : -1;
        else if (IS("--flush-delay"))
            bad = parse_uint(val, 10000, &cfg->flush_delay_ms);
        else if (IS("--history"))
            bad = parse_uint(val, 1000000, &cfg->history);
        else if (IS("--history-memory"))
            bad = parse_size(val, &cfg->history_memory);
        else if (IS("--history-age"))
            bad = parse_seconds(val, &cfg->history_age);
        else if (IS("--attr-memory"))
            bad = parse_size(val, &cfg->attr_memory);
        else if (IS("--hook-timeout"))
            bad = parse_uint(val, 3600000, &u) || u == 0 ? -1 : (cfg->hook_timeout_ms = u, 0);
        else if (IS("--script-memory"))
            bad = parse_size(val, &cfg->script_memory) || cfg->script_memory < 1024 * 1024;
        else if (IS("--check"))
            cfg->check_path = val;
        else if (IS("--pid-file"))
            bad = val[0] ? (cfg->pid_file = val, 0) : -1;
        else if (IS("--redis")) {
            struct redis_url ru;
            char why[160];
            if (redis_url_parse(val, &ru, why, sizeof why) < 0) {
                snprintf(err, errlen, "bad --redis URL '%s': %s", val, why);
                return -1;
            }
            /* Repeatable: the command line's list replaces the config file's. */
            if (!in_file && !redis_from_argv) {
                cfg->redis_count = 0;
                redis_from_argv = 1;
            }
            if (cfg->redis_count >= sizeof cfg->redis / sizeof *cfg->redis) {
                snprintf(err, errlen, "at most 16 --redis URLs");
                return -1;
            }
            cfg->redis[cfg->redis_count++] = val;
        } else if (IS("--redis-timeout"))
            bad = parse_seconds(val, &cfg->redis_timeout) || cfg->redis_timeout > 600;
        else if (IS("--max-connections"))
            bad = parse_uint(val, 100000000, &cfg->max_connections);
        else if (IS("--max-connections-per-ip"))
            bad = parse_uint(val, 100000000, &cfg->max_conns_per_ip);
        else if (IS("--rate-msgs"))
            bad = parse_rate(val, 0, 1, &cfg->rate_msgs, &cfg->rate_msgs_burst);
        else if (IS("--rate-bytes"))
            bad = parse_rate(val, 1, 1, &cfg->rate_bytes, &cfg->rate_bytes_burst);
        else if (IS("--drain-time"))
            bad = parse_seconds0(val, &cfg->drain_time);
        else if (IS("--node-heartbeat"))
            bad = parse_seconds(val, &cfg->node_heartbeat) || cfg->node_heartbeat < 0.05 ||
                  cfg->node_heartbeat > 3600;
        else if (IS("--log-level"))
            bad = log_parse_level(val, &lv) < 0 ? -1 : (cfg->log_level = (int)lv, 0);
#undef IS
        if (bad) {
            snprintf(err, errlen, "bad value '%s' for %s (see --help)", val, name);
            return -1;
        }
    }
    if (!in_file && !cfg->tls_cert != !cfg->tls_key) {
        snprintf(err, errlen, "--tls-cert and --tls-key go together (see --help)");
        return -1;
    }
    if (!in_file && cfg->tls_port >= 0 && !cfg->tls_cert) {
        snprintf(err, errlen, "--tls-addr needs --tls-cert and --tls-key (see --help)");
        return -1;
    }
    if (!in_file && cfg->admin_port > 0 && cfg->admin_port == cfg->port) {
        snprintf(err, errlen, "--admin-addr must not use the public port %d", cfg->port);
        return -1;
    }
    return 0;
}

void config_resolve_paths(struct config *cfg)
{
    if (!cfg->script_path)
        cfg->script_path = paths_default_script();
    if (!cfg->web_dir) {
        cfg->script_page = paths_script_page(cfg->script_path);
        cfg->web_dir = cfg->script_page ? cfg->script_page : paths_default_web();
    }
}
