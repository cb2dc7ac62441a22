/* metrics: the server's figures and their Prometheus text rendering (see metrics.h). */
#include "metrics.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "hub.h"
#include "script.h"
#include "server.h"
#include "ws.h"

struct metrics metrics;

/* 10 µs .. 1 s: hook calls and loop iterations are both expected to take well under 1 ms. */
const double metrics_bucket_bounds[METRICS_BUCKETS] = {
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.01, 0.05, 0.25, 1.0,
};

void metrics_observe(struct metrics_hist *h, double seconds)
{
    unsigned i = 0;
    while (i < METRICS_BUCKETS && seconds > metrics_bucket_bounds[i])
        i++;
    h->counts[i]++;
    h->count++;
    h->sum += seconds;
}

static const char *const hook_names[HOOK_KINDS] = {
    "connect", "message", "join", "leave", "disconnect", "reload", "epoch", "timer", "load", "other",
};

enum metrics_hook metrics_hook_kind(const char *what)
{
    if (strcmp(what, "script load") == 0)
        return HOOK_LOAD;
    for (unsigned i = 0; i < HOOK_LOAD; i++)
        if (strcmp(what, hook_names[i]) == 0)
            return (enum metrics_hook)i;
    return HOOK_OTHER;
}

/* Close codes in a few classes (label "code"): the ones worth telling apart, and the rest. */
static const char *const close_classes[8] = {
    "1000", "1001", "1006", "1008", "1009", "1011", "1013", "other",
};

void metrics_ws_close(unsigned code)
{
    static const unsigned codes[7] = {1000, 1001, 1006, 1008, 1009, 1011, 1013};
    unsigned i = 0;
    while (i < 7 && codes[i] != code)
        i++;
    metrics.ws_closes[i]++;
}

/* ---- loop iteration time ---------------------------------------------------------------- */

static struct {
    struct ev_loop *loop;
    ev_check woke;     /* first after the poll returns */
    ev_prepare sleeps; /* last before the loop polls again */
    struct timespec at;
    int have_at;
} lp;

static void on_woke(EV_P_ ev_check *w, int revents)
{
    clock_gettime(CLOCK_MONOTONIC, &lp.at);
    lp.have_at = 1;
}

static void on_sleeps(EV_P_ ev_prepare *w, int revents)
{
    if (!lp.have_at)
        return;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    metrics_observe(&metrics.loop_time,
                    (double)(now.tv_sec - lp.at.tv_sec) + (now.tv_nsec - lp.at.tv_nsec) / 1e9);
    lp.have_at = 0;
}

void metrics_loop_start(struct ev_loop *loop)
{
    lp.loop = loop;
    ev_check_init(&lp.woke, on_woke);
    ev_set_priority(&lp.woke, EV_MAXPRI);
    ev_check_start(loop, &lp.woke);
    ev_unref(loop);
    ev_prepare_init(&lp.sleeps, on_sleeps);
    ev_set_priority(&lp.sleeps, EV_MINPRI); /* after the server's safe point */
    ev_prepare_start(loop, &lp.sleeps);
    ev_unref(loop);
}

void metrics_loop_stop(void)
{
    if (!lp.loop)
        return;
    ev_ref(lp.loop);
    ev_check_stop(lp.loop, &lp.woke);
    ev_ref(lp.loop);
    ev_prepare_stop(lp.loop, &lp.sleeps);
    lp.loop = NULL;
}

/* ---- text ------------------------------------------------------------------------------- */

static void out_printf(struct metrics_out *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void out_printf(struct metrics_out *o, const char *fmt, ...)
{
    if (o->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = o->cap - o->len;
        int n = vsnprintf(o->buf ? o->buf + o->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0) {
            o->failed = 1;
            return;
        }
        if ((size_t)n < room) {
            o->len += (size_t)n;
            return;
        }
        size_t cap = o->cap ? o->cap * 2 : 16384;
        while (cap - o->len <= (size_t)n)
            cap *= 2;
        char *b = realloc(o->buf, cap);
        if (!b) {
            o->failed = 1;
            return;
        }
        o->buf = b;
        o->cap = cap;
    }
}

/* A sample value: integers exactly, others with enough digits to read back. */
static void out_value(struct metrics_out *o, double v)
{
    if (v == (double)(int64_t)v && v < 9e15 && v > -9e15)
        out_printf(o, "%lld\n", (long long)v);
    else
        out_printf(o, "%.9g\n", v);
}

void metrics_header(struct metrics_out *o, const char *name, const char *type, const char *help)
{
    out_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void metrics_sample(struct metrics_out *o, const char *name, const char *labels, double v)
{
    if (labels && labels[0])
        out_printf(o, "%s{%s} ", name, labels);
    else
        out_printf(o, "%s ", name);
    out_value(o, v);
}

void metrics_counter(struct metrics_out *o, const char *name, const char *help, uint64_t v)
{
    metrics_header(o, name, "counter", help);
    out_printf(o, "%s %llu\n", name, (unsigned long long)v);
}

void metrics_gauge(struct metrics_out *o, const char *name, const char *help, double v)
{
    metrics_header(o, name, "gauge", help);
    metrics_sample(o, name, NULL, v);
}

void metrics_label(char *out, size_t outlen, const char *name, const char *value)
{
    size_t n = (size_t)snprintf(out, outlen, "%s=\"", name);
    for (const char *p = value; *p && n + 4 < outlen; p++) {
        if (*p == '\\' || *p == '"') {
            out[n++] = '\\';
            out[n++] = *p;
        } else if (*p == '\n') {
            out[n++] = '\\';
            out[n++] = 'n';
        } else {
            out[n++] = *p;
        }
    }
    if (n + 2 <= outlen) {
        out[n++] = '"';
        out[n] = '\0';
    }
}

void metrics_histogram(struct metrics_out *o, const char *name, const char *labels,
                       const struct metrics_hist *h)
{
    const char *sep = labels && labels[0] ? "," : "";
    if (!labels)
        labels = "";
    uint64_t cum = 0;
    for (unsigned i = 0; i <= METRICS_BUCKETS; i++) {
        cum += h->counts[i];
        if (i < METRICS_BUCKETS)
            out_printf(o, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep,
                       metrics_bucket_bounds[i], (unsigned long long)cum);
        else
            out_printf(o, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep,
                       (unsigned long long)cum);
    }
    if (labels[0]) {
        out_printf(o, "%s_sum{%s} %.9g\n", name, labels, h->sum);
        out_printf(o, "%s_count{%s} %llu\n", name, labels, (unsigned long long)h->count);
    } else {
        out_printf(o, "%s_sum %.9g\n", name, h->sum);
        out_printf(o, "%s_count %llu\n", name, (unsigned long long)h->count);
    }
}

/* ---- collectors ------------------------------------------------------------------------- */

#define MAX_COLLECTORS 16
static metrics_collector collectors[MAX_COLLECTORS];
static unsigned ncollectors;

int metrics_add_collector(metrics_collector fn)
{
    for (unsigned i = 0; i < ncollectors; i++)
        if (collectors[i] == fn)
            return 0;
    if (ncollectors == MAX_COLLECTORS)
        return -1;
    collectors[ncollectors++] = fn;
    return 0;
}

/* ---- the process ------------------------------------------------------------------------ */

static double process_start;

static long open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

static long resident_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size, resident;
    if (!f)
        return -1;
    int ok = fscanf(f, "%ld %ld", &size, &resident) == 2;
    fclose(f);
    return ok ? resident * sysconf(_SC_PAGESIZE) : -1;
}

static void render_process(struct metrics_out *o)
{
    if (process_start == 0) {
        /* Boot time plus the process's start in clock ticks since boot. */
        FILE *f = fopen("/proc/self/stat", "r");
        char buf[1024];
        if (f && fgets(buf, sizeof buf, f)) {
            const char *p = strrchr(buf, ')');
            unsigned long long start = 0;
            /* Field 22 (starttime); after ") " come fields 3.. */
            if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d "
                                   "%*d %*d %*d %*d %llu", &start) == 1) {
                struct timespec rt, mono;
                clock_gettime(CLOCK_REALTIME, &rt);
                clock_gettime(CLOCK_BOOTTIME, &mono);
                double boot = (double)rt.tv_sec + rt.tv_nsec / 1e9 -
                              ((double)mono.tv_sec + mono.tv_nsec / 1e9);
                process_start = boot + (double)start / (double)sysconf(_SC_CLK_TCK);
            }
        }
        if (f)
            fclose(f);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    metrics_header(o, "process_cpu_seconds_total", "counter", "User and system CPU time spent");
    metrics_sample(o, "process_cpu_seconds_total", NULL,
                   (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
                   (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
    long rss = resident_bytes();
    if (rss >= 0)
        metrics_gauge(o, "process_resident_memory_bytes", "Resident memory size", (double)rss);
    long fds = open_fds();
    if (fds >= 0)
        metrics_gauge(o, "process_open_fds", "Open file descriptors", (double)fds);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        metrics_gauge(o, "process_max_fds", "Limit of open file descriptors",
                      rl.rlim_cur == RLIM_INFINITY ? -1 : (double)rl.rlim_cur);
    if (process_start > 0)
        metrics_gauge(o, "process_start_time_seconds", "Start time since the Unix epoch",
                      process_start);
}

/* ---- the core's families ---------------------------------------------------------------- */

static void render_core(struct metrics_out *o)
{
    char labels[64];
    metrics_header(o, "confab_build_info", "gauge", "Version of this confab (always 1)");
    metrics_sample(o, "confab_build_info", "version=\"" CONFAB_VERSION "\"", 1);

    static const char *const states[4] = {"http", "ws", "closing", "dead"};
    metrics_header(o, "confab_connections", "gauge",
                   "Connections open, by state (http: requests or handshake; ws: WebSocket open)");
    for (unsigned i = 0; i < 4; i++) {
        snprintf(labels, sizeof labels, "state=\"%s\"", states[i]);
        metrics_sample(o, "confab_connections", labels, (double)metrics.conns[i]);
    }
    metrics_counter(o, "confab_connections_accepted_total", "Connections accepted",
                    metrics.accepted);
    metrics_counter(o, "confab_websocket_upgrades_total", "WebSocket handshakes accepted",
                    metrics.upgrades);

    static const char *const reasons[REFUSED_COUNT] = {
        "bad_request", "method", "version", "origin", "hook", "hook_error", "busy",
    };
    metrics_header(o, "confab_handshakes_refused_total", "counter",
                   "WebSocket handshakes refused, by reason");
    for (unsigned i = 0; i < REFUSED_COUNT; i++) {
        snprintf(labels, sizeof labels, "reason=\"%s\"", reasons[i]);
        metrics_sample(o, "confab_handshakes_refused_total", labels, (double)metrics.refused[i]);
    }
    metrics_header(o, "confab_http_responses_total", "counter",
                   "HTTP responses on the public listener, by status class");
    for (unsigned i = 1; i <= 5; i++) {
        snprintf(labels, sizeof labels, "class=\"%uxx\"", i);
        metrics_sample(o, "confab_http_responses_total", labels,
                       (double)metrics.http_responses[i]);
    }
    metrics_counter(o, "confab_admin_requests_total", "Requests answered on the admin listener",
                    metrics.admin_requests);

    metrics_gauge(o, "confab_rooms", "Rooms (with members or stored history)",
                  (double)hub_room_count());
    metrics_counter(o, "confab_messages_received_total", "WebSocket messages received",
                    metrics.messages_in);
    metrics_counter(o, "confab_message_bytes_received_total",
                    "Payload bytes of the WebSocket messages received", metrics.message_bytes_in);
    metrics_counter(o, "confab_deliveries_total",
                    "Frames queued to peers (a broadcast counts once per recipient)",
                    metrics.deliveries);
    metrics_counter(o, "confab_received_bytes_total", "Bytes read from client sockets",
                    metrics.bytes_in);
    metrics_counter(o, "confab_sent_bytes_total", "Bytes written to client sockets",
                    metrics.bytes_out);
    metrics_counter(o, "confab_websocket_writes_total",
                    "Writes to WebSocket peers (send/sendmsg calls or io_uring sends), each of one "
                    "or more frames",
                    metrics.ws_writes);
    metrics_counter(o, "confab_frames_dropped_total",
                    "Frames not delivered because the peer's send queue was full",
                    metrics.frames_dropped);
    metrics_counter(o, "confab_slow_consumers_closed_total",
                    "Connections closed (1008) because their send queue was full",
                    metrics.slow_consumers);
    metrics_header(o, "confab_websocket_closes_total", "counter",
                   "WebSocket connections ended, by close code");
    for (unsigned i = 0; i < 8; i++) {
        snprintf(labels, sizeof labels, "code=\"%s\"", close_classes[i]);
        metrics_sample(o, "confab_websocket_closes_total", labels, (double)metrics.ws_closes[i]);
    }
    metrics_gauge(o, "confab_request_memory_bytes",
                  "HTTP request buffers held, all connections (bounded by --request-memory)",
                  (double)server_request_bytes());
    metrics_gauge(o, "confab_message_memory_bytes",
                  "WebSocket messages in progress, all connections (bounded by --message-memory)",
                  (double)ws_memory);
    metrics_gauge(o, "confab_history_bytes", "Bytes of room history stored",
                  (double)hub_history_bytes());
    metrics_gauge(o, "confab_attribute_bytes", "Bytes of connection attributes stored",
                  (double)hub_attr_bytes());

    metrics_header(o, "confab_hook_calls_total", "counter",
                   "Calls into the script, by hook (timer: a timer callback; load: a main chunk)");
    for (unsigned i = 0; i < HOOK_KINDS; i++) {
        snprintf(labels, sizeof labels, "hook=\"%s\"", hook_names[i]);
        metrics_sample(o, "confab_hook_calls_total", labels, (double)metrics.hook_calls[i]);
    }
    metrics_header(o, "confab_hook_duration_seconds", "histogram",
                   "Wall time of each call into the script, by hook");
    for (unsigned i = 0; i < HOOK_KINDS; i++) {
        snprintf(labels, sizeof labels, "hook=\"%s\"", hook_names[i]);
        metrics_histogram(o, "confab_hook_duration_seconds", labels, &metrics.hook_time[i]);
    }
    metrics_counter(o, "confab_hook_errors_total", "Script calls that raised an error",
                    metrics.hook_errors);
    metrics_counter(o, "confab_hook_aborts_total", "Script calls stopped at --hook-timeout",
                    metrics.hook_aborts);
    metrics_gauge(o, "confab_lua_memory_bytes", "Memory of the running script's Lua state",
                  (double)script_memory_used());
    metrics_header(o, "confab_script_reloads_total", "counter",
                   "Script reloads (SIGHUP, --watch), by result");
    metrics_sample(o, "confab_script_reloads_total", "result=\"ok\"", (double)metrics.reloads_ok);
    metrics_sample(o, "confab_script_reloads_total", "result=\"failed\"",
                   (double)metrics.reloads_failed);
    metrics_gauge(o, "confab_script_loaded",
                  "1 when the last load of the script succeeded (0: the previous one still runs)",
                  metrics.script_ok);
    metrics_gauge(o, "confab_script_loaded_timestamp_seconds",
                  "When the running script was loaded", metrics.script_loaded_at);
    metrics_header(o, "confab_loop_iteration_seconds", "histogram",
                   "Time the event loop worked per iteration, between two waits");
    metrics_histogram(o, "confab_loop_iteration_seconds", NULL, &metrics.loop_time);
}

/* permessage-deflate: counted in deflate.c. */
static void render_transport(struct metrics_out *o)
{
    metrics_header(o, "confab_deflate_messages_total", "counter",
                   "Outgoing messages compressed (once per window size, not per recipient), by "
                   "result (larger: not smaller than plain, sent plain)");
    metrics_sample(o, "confab_deflate_messages_total", "result=\"smaller\"",
                   (double)metrics.deflate_runs[0]);
    metrics_sample(o, "confab_deflate_messages_total", "result=\"larger\"",
                   (double)metrics.deflate_runs[1]);
    metrics_counter(o, "confab_deflate_input_bytes_total",
                    "Payload bytes of the messages compressed smaller", metrics.deflate_in);
    metrics_counter(o, "confab_deflate_output_bytes_total",
                    "Their compressed bytes", metrics.deflate_out);
    metrics_gauge(o, "confab_deflate_ratio",
                  "Compressed / plain bytes of the messages compressed smaller (0: none yet)",
                  metrics.deflate_in ? (double)metrics.deflate_out / (double)metrics.deflate_in
                                     : 0);
}

int metrics_render(struct metrics_out *o)
{
    render_core(o);
    render_transport(o);
    for (unsigned i = 0; i < ncollectors; i++)
        collectors[i](o);
    render_process(o);
    return o->failed ? -1 : 0;
}
