/* log: escaped, rate-limited lines on stderr (see log.h). */
#include "log.h"

#include <stdarg.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "utf8.h"

enum log_level log_threshold = LOG_INFO;
enum log_format log_format = LOG_TEXT;
struct log_ctx log_ctx = {0, -1};

static const char *const level_names[] = {"debug", "info", "warn", "error", "note"};

/* One call site's token bucket. Sites are few (one per log call in the source), so a small table
 * searched in order is enough; sites beyond it share the last slot. */
#define SITES 64

struct site {
    const char *fmt;
    enum log_level level;
    double tokens, at;
    unsigned long suppressed;
};

static struct {
    FILE *out;
    double (*now)(void);
    struct site sites[SITES];
    unsigned nsites;
    unsigned long pending; /* sites with suppressed lines not yet reported */
} lg;

const char *log_level_name(enum log_level level)
{
    return level_names[level];
}

int log_parse_level(const char *name, enum log_level *out)
{
    for (unsigned i = 0; i < LOG_NOTICE; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return -1;
}

int log_parse_format(const char *name, enum log_format *out)
{
    if (strcmp(name, "text") == 0)
        *out = LOG_TEXT;
    else if (strcmp(name, "json") == 0)
        *out = LOG_JSON;
    else
        return -1;
    return 0;
}

void log_set_output(FILE *out, double (*now)(void))
{
    lg.out = out;
    lg.now = now;
    lg.nsites = 0;
    lg.pending = 0;
}

static double now_monotonic(void)
{
    if (lg.now)
        return lg.now();
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Appends s[0..len) to out (room for 4 bytes per input byte) escaped; returns the bytes written. */
static size_t escape(char *out, const unsigned char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    char *o = out;
    for (size_t i = 0; i < len;) {
        unsigned char ch = s[i];
        if (ch >= 0x20 && ch < 0x7f && ch != '\\') {
            *o++ = (char)ch;
            i++;
            continue;
        }
        if (ch >= 0xc2 && ch <= 0xf4) {
            size_t n = ch < 0xe0 ? 2 : ch < 0xf0 ? 3 : 4;
            /* Well-formed, and not a C1 control (U+0080..U+009F, which is C2 80..C2 9F), nor
             * U+2028..U+202E (E2 80 A8..AE) nor U+2066..U+2069 (E2 81 A6..A9). */
            if (n <= len - i && utf8_valid(s + i, n) && !(ch == 0xc2 && s[i + 1] < 0xa0) &&
                !(ch == 0xe2 && s[i + 1] == 0x80 && s[i + 2] >= 0xa8 && s[i + 2] <= 0xae) &&
                !(ch == 0xe2 && s[i + 1] == 0x81 && s[i + 2] >= 0xa6 && s[i + 2] <= 0xa9)) {
                memcpy(o, s + i, n);
                o += n;
                i += n;
                continue;
            }
        }
        *o++ = '\\';
        switch (ch) {
        case '\\': *o++ = '\\'; break;
        case '\n': *o++ = 'n'; break;
        case '\r': *o++ = 'r'; break;
        case '\t': *o++ = 't'; break;
        default:
            *o++ = 'x';
            *o++ = hex[ch >> 4];
            *o++ = hex[ch & 15];
        }
        i++;
    }
    return (size_t)(o - out);
}

/* The escaped message s[0..len) as the inside of a JSON string: escape()'s output is printable
 * ASCII and well-formed UTF-8 only, so '"' and '\\' are all JSON still needs escaped. out has
 * room for 2 bytes per input byte. */
static size_t json_string(char *out, const char *s, size_t len)
{
    char *o = out;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '"' || s[i] == '\\')
            *o++ = '\\';
        *o++ = s[i];
    }
    return (size_t)(o - out);
}

/* Writes one line (see log_format). One write per line, so lines from a crash handler or a child
 * never interleave. */
static void write_line(enum log_level level, const char *msg, size_t len, int cut)
{
    char esc[4 * LOG_LINE_MAX];
    char line[128 + 2 * sizeof esc + 32];
    char when[40];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t w = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + w, sizeof when - w, ".%03ldZ", ts.tv_nsec / 1000000);
    if (len > LOG_LINE_MAX)
        len = LOG_LINE_MAX;
    size_t elen = escape(esc, (const unsigned char *)msg, len);
    size_t n;
    if (log_format == LOG_JSON) {
        n = (size_t)snprintf(line, sizeof line, "{\"ts\":\"%s\",\"level\":\"%s\",", when,
                             level_names[level]);
        if (log_ctx.conn)
            n += (size_t)snprintf(line + n, sizeof line - n, "\"conn\":%llu,",
                                  (unsigned long long)log_ctx.conn);
        else if (log_ctx.fd >= 0)
            n += (size_t)snprintf(line + n, sizeof line - n, "\"fd\":%d,", log_ctx.fd);
        memcpy(line + n, "\"msg\":\"", 7);
        n += 7;
        n += json_string(line + n, esc, elen);
        line[n++] = '"';
        if (cut) {
            memcpy(line + n, ",\"cut\":true", 11);
            n += 11;
        }
        line[n++] = '}';
    } else {
        n = (size_t)snprintf(line, sizeof line, "%s %-5s ", when, level_names[level]);
        if (log_ctx.conn)
            n += (size_t)snprintf(line + n, sizeof line - n, "conn=%llu ",
                                  (unsigned long long)log_ctx.conn);
        else if (log_ctx.fd >= 0)
            n += (size_t)snprintf(line + n, sizeof line - n, "fd=%d ", log_ctx.fd);
        memcpy(line + n, esc, elen);
        n += elen;
        if (cut) {
            memcpy(line + n, " [cut]", 6);
            n += 6;
        }
    }
    line[n++] = '\n';
    fwrite(line, 1, n, lg.out ? lg.out : stderr);
}

static void report_suppressed(struct site *s)
{
    char msg[160];
    int n = snprintf(msg, sizeof msg, "%lu similar lines suppressed (\"%.100s\")", s->suppressed,
                     s->fmt);
    if (n >= (int)sizeof msg)
        n = (int)sizeof msg - 1;
    s->suppressed = 0;
    lg.pending--;
    write_line(s->level, msg, (size_t)n, 0);
}

static void refill(struct site *s, double now)
{
    if (now > s->at) {
        s->tokens += (now - s->at) * LOG_RATE;
        if (s->tokens > LOG_BURST)
            s->tokens = LOG_BURST;
    }
    s->at = now;
}

static struct site *site_of(const char *fmt, enum log_level level, double now)
{
    for (unsigned i = 0; i < lg.nsites; i++)
        if (lg.sites[i].fmt == fmt && lg.sites[i].level == level)
            return &lg.sites[i];
    if (lg.nsites == SITES)
        return &lg.sites[SITES - 1];
    struct site *s = &lg.sites[lg.nsites++];
    *s = (struct site){fmt, level, LOG_BURST, now, 0};
    return s;
}

void log_flush(void)
{
    for (unsigned i = 0; i < lg.nsites && lg.pending; i++)
        if (lg.sites[i].suppressed)
            report_suppressed(&lg.sites[i]);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    if (level < log_threshold)
        return;

    if (level != LOG_NOTICE) {
        double now = now_monotonic();
        /* Counts of other sites that may log again are reported first. */
        for (unsigned i = 0; i < lg.nsites && lg.pending; i++) {
            struct site *o = &lg.sites[i];
            if (o->suppressed && o->fmt != fmt) {
                refill(o, now);
                if (o->tokens >= 1)
                    report_suppressed(o);
            }
        }
        struct site *s = site_of(fmt, level, now);
        refill(s, now);
        if (s->tokens < 1) {
            if (s->suppressed++ == 0)
                lg.pending++;
            return;
        }
        s->tokens -= 1;
        if (s->suppressed)
            report_suppressed(s);
    }

    char msg[LOG_LINE_MAX + 1];
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    write_line(level, msg, (size_t)m < LOG_LINE_MAX ? (size_t)m : LOG_LINE_MAX, m > LOG_LINE_MAX);
}
