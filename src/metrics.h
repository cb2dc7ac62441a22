/* metrics: counters, gauges and histograms of the running server, and their rendering in
 * Prometheus' text exposition format (version 0.0.4) for the admin listener's /metrics.
 *
 * Everything runs on the loop's one thread: the core's figures are plain integers in one global
 * struct, bumped where the event happens (METRIC_INC(messages_in)): a counter costs one add.
 * What is cheaper to compute when scraped than to track (rooms, Lua memory, the process's CPU
 * time) is read at render time.
 *
 * A part of the server outside the core (TLS, compression, Redis) keeps its own counters in its
 * own file and registers a collector once at start:
 *
 *     static uint64_t tls_failed;
 *     static void tls_collect(struct metrics_out *o)
 *     {
 *         metrics_counter(o, "confab_tls_handshakes_failed_total", "TLS handshakes failed",
 *                         tls_failed);
 *     }
 *     ... metrics_add_collector(tls_collect);
 *
 * See /work/team/METRICS.md (and README's operations section) for the names in use. */
#ifndef CONFAB_METRICS_H
#define CONFAB_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include <ev.h>

/* Upper bounds (seconds) of the duration histograms' buckets; +Inf is implicit. */
#define METRICS_BUCKETS 12
extern const double metrics_bucket_bounds[METRICS_BUCKETS];

struct metrics_hist {
    uint64_t counts[METRICS_BUCKETS + 1]; /* per bucket (not cumulative); the last is +Inf */
    uint64_t count;
    double sum;
};

/* Why a WebSocket handshake was refused (label "reason"). */
enum metrics_refusal {
    REFUSED_BAD_REQUEST, /* 400: headers missing or malformed */
    REFUSED_METHOD,      /* 405: not GET */
    REFUSED_VERSION,     /* 426: not WebSocket 13 */
    REFUSED_ORIGIN,      /* 403: Origin not allowed */
    REFUSED_HOOK,        /* the connect hook said no */
    REFUSED_HOOK_ERROR,  /* the connect hook failed */
    REFUSED_BUSY,        /* out of memory, or a limit of the server */
    REFUSED_COUNT
};

/* What ran in the script (label "hook"): the events, timers and the main chunk at load. */
enum metrics_hook {
    HOOK_CONNECT, HOOK_MESSAGE, HOOK_JOIN, HOOK_LEAVE, HOOK_DISCONNECT, HOOK_RELOAD, HOOK_EPOCH,
    HOOK_TIMER, HOOK_LOAD, HOOK_OTHER, HOOK_KINDS
};

struct metrics {
    int64_t conns[4];           /* connections by state (enum conn_state), a gauge */
    uint64_t accepted;          /* connections accepted */
    uint64_t admin_requests;    /* requests answered on the admin listener */
    uint64_t http_responses[6]; /* HTTP responses by class: [1] 1xx ... [5] 5xx */
    uint64_t refused[REFUSED_COUNT];
    uint64_t upgrades;          /* WebSocket handshakes accepted */
    uint64_t messages_in;       /* complete WebSocket messages received */
    uint64_t message_bytes_in;  /* their payload bytes */
    uint64_t deliveries;        /* frames queued to a peer (one per recipient of a broadcast) */
    uint64_t bytes_in;          /* bytes read from sockets (HTTP and WebSocket) */
    uint64_t bytes_out;         /* bytes written to sockets */
    uint64_t ws_writes;         /* writes to WebSocket peers (send/sendmsg, io_uring sends) */
    uint64_t frames_dropped;    /* frames not delivered because a peer's queue was full */
    uint64_t slow_consumers;    /* connections closed because their queue was full */
    uint64_t ws_closes[8];      /* closes by code class, see metrics_close_class */
    uint64_t hook_calls[HOOK_KINDS];
    struct metrics_hist hook_time[HOOK_KINDS];
    uint64_t hook_errors;       /* calls that raised an error (a time-limit abort included) */
    uint64_t hook_aborts;       /* calls stopped at the time limit */
    uint64_t reloads_ok, reloads_failed;
    int script_ok;              /* the last load of the script succeeded */
    double script_loaded_at;    /* when (Unix time) the running script was loaded */
    struct metrics_hist loop_time; /* time the loop spent working per iteration */
    uint64_t deflate_runs[2];   /* messages compressed: [0] smaller, [1] not (sent plain) */
    uint64_t deflate_in, deflate_out; /* bytes before and after, of those compressed smaller */
};

extern struct metrics metrics;

#define METRIC_INC(field) (metrics.field++)
#define METRIC_ADD(field, n) (metrics.field += (n))

/* Adds one observation of seconds to h. */
void metrics_observe(struct metrics_hist *h, double seconds);

/* The hook label of a call into Lua, from the name it runs under ("message", "timer", ...). */
enum metrics_hook metrics_hook_kind(const char *what);

/* Counts a close of an open WebSocket with code. */
void metrics_ws_close(unsigned code);

/* Starts measuring each loop iteration's busy time (from waking up to going back to sleep). */
void metrics_loop_start(struct ev_loop *loop);
void metrics_loop_stop(void);

/* ---- rendering ------------------------------------------------------------------------- */

/* A text being rendered. Functions below append to it; on no memory it is marked failed. */
struct metrics_out {
    char *buf;
    size_t len, cap;
    int failed;
};

/* "# HELP" and "# TYPE" lines, then one sample: name value. type is "counter" or "gauge". */
void metrics_counter(struct metrics_out *o, const char *name, const char *help, uint64_t v);
void metrics_gauge(struct metrics_out *o, const char *name, const char *help, double v);

/* For labelled families: the header once, then one sample per label set. labels is the inside of
 * the braces, e.g. "state=\"ws\"" (label values must be escaped by the caller: metrics_label). */
void metrics_header(struct metrics_out *o, const char *name, const char *type, const char *help);
void metrics_sample(struct metrics_out *o, const char *name, const char *labels, double v);

/* Appends name="value" to out (size outlen), escaping value as the format requires. */
void metrics_label(char *out, size_t outlen, const char *name, const char *value);

/* A histogram's samples (_bucket, _sum, _count) with labels (may be NULL or ""), after a header
 * of type "histogram". */
void metrics_histogram(struct metrics_out *o, const char *name, const char *labels,
                       const struct metrics_hist *h);

/* Something that adds its own families when the metrics are rendered. At most 16. */
typedef void (*metrics_collector)(struct metrics_out *o);
int metrics_add_collector(metrics_collector fn);

/* Renders every family into o (o->buf is malloc'd; free it). Returns 0, or -1 on no memory. */
int metrics_render(struct metrics_out *o);

#endif
