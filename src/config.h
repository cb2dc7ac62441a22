/* config: every setting of the server, its default, and the command line that changes it. */
#ifndef CONFAB_CONFIG_H
#define CONFAB_CONFIG_H

#include <stddef.h>

#define CONFAB_VERSION "0.1.0"

struct config {
    char host[256];            /* listen host; "" means every address */
    int port;                  /* 0 picks an ephemeral port */
    char admin_host[256];      /* --admin-addr host (loopback when given without one) */
    int admin_port;            /* -1: no admin listener; 0 picks an ephemeral port */
    char tls_host[256];        /* --tls-addr: a second listener, for TLS (tls_port >= 0) */
    int tls_port;              /* -1: no second listener (with a certificate, --addr is TLS) */
    const char *tls_cert;      /* --tls-cert FILE: PEM certificate, its chain after it */
    const char *tls_key;       /* --tls-key FILE: PEM private key */
    const char *script_path;   /* Lua script with the hooks (NULL: the default, see paths.h) */
    const char *web_dir;       /* static files served at / (NULL: the script's page or default) */
    char *script_page;         /* the script's own page directory when it is web_dir (malloc'd) */
    const char *pid_file;      /* --pid-file FILE, or NULL */
    const char *ws_path;       /* WebSocket endpoint; sub-paths "/ws/..." are accepted too */
    const char *allow_origin;  /* NULL: only the server's own origins (handshake.h); "*": any;
                                * else a comma list of origins allowed besides those */
    const char *subprotocols;  /* comma list in preference order, or NULL */
    double handshake_timeout;  /* seconds from accept to a complete request / upgrade */
    double ping_interval;      /* seconds of silence before the server pings */
    double pong_timeout;       /* seconds of silence after which the peer is closed */
    size_t max_message;        /* largest incoming WebSocket message, bytes */
    size_t max_request;        /* largest HTTP request head, bytes (431 beyond) */
    size_t max_body;           /* largest HTTP request body announced, bytes (413 beyond) */
    size_t request_memory;     /* request buffers of all connections together (503 beyond) */
    size_t message_memory;     /* WebSocket messages in progress, all connections (1013 beyond) */
    int deflate;               /* permessage-deflate offered to clients (--deflate on|off) */
    size_t deflate_min;        /* messages shorter than this are sent uncompressed */
    size_t send_queue;         /* bytes queued per connection before it is cut off (1008) */
    int io_uring;              /* write through io_uring where the kernel has it (--io-uring) */
    unsigned flush_delay_ms;   /* WebSocket output held this long to go out in fewer writes
                                * (0: written in the loop pass that queued it) */
    unsigned history;          /* messages kept per room */
    size_t history_memory;     /* bytes of history kept, all rooms together */
    double history_age;        /* seconds a history entry is kept; 0: until evicted */
    size_t attr_memory;        /* bytes of confab.set attributes, all connections together */
    unsigned hook_timeout_ms;  /* longest run of one hook call */
    size_t script_memory;      /* cap of the Lua state's memory, bytes */
    unsigned max_connections;  /* connections at once, 503 beyond (0: no cap but descriptors) */
    unsigned max_conns_per_ip; /* connections at once from one IPv4 address or IPv6 /64 */
    double rate_msgs;          /* messages/s read from one WebSocket peer (0: unlimited) */
    double rate_msgs_burst;    /* bucket of rate_msgs, messages */
    double rate_bytes;         /* bytes/s read from one WebSocket peer (0: unlimited) */
    double rate_bytes_burst;   /* bucket of rate_bytes, bytes */
    double drain_time;         /* SIGTERM: seconds over which peers get close 1012 */
    int reuse_port;            /* SO_REUSEPORT on the listener: another process may take over */
    int log_level;             /* enum log_level */
    int log_format;            /* enum log_format */
    const char *config_file;   /* --config FILE, read before the command line, or NULL */
    int watch;                 /* reload the script when its file changes */
    const char *check_path;    /* --check FILE: load the script and exit */
    const char *redis[16];     /* --redis URLs (shards, in order), validated */
    unsigned redis_count;
    double redis_timeout;      /* seconds, deadline of every Redis call */
    double node_heartbeat;     /* seconds between a node's heartbeats (dead after 3 missed) */
};

/* Fills cfg with the defaults. */
void config_defaults(struct config *cfg);

/* Applies argv to cfg: first the settings of the --config file when one is given, then every
 * flag (so flags override the file). Returns 0 to go on serving, 1 when --help or --version was
 * printed (exit 0), -1 on a bad flag or value with a one-line reason in err (exit 2); an error in
 * the file is reported as "FILE:LINE: reason".
 *
 * The file has one setting per line, "name value" with the flag's name without its dashes and
 * its value as on the command line (the rest of the line, spaces trimmed at both ends); "watch"
 * alone (or "watch yes|no") for the flag without a value. Blank lines and lines starting with
 * '#' are ignored. help, version, check and config cannot be set there. */
int config_parse(struct config *cfg, int argc, char **argv, char *err, size_t errlen);

/* Fills the paths not given on the command line: the default script, then the script's page
 * (paths_script_page) or the default web directory. Call after config_parse. */
void config_resolve_paths(struct config *cfg);

#endif
