/* log: escaped, rate-limited lines on stderr (see log.h). */
#include "log.h"

#include <stdarg.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "utf8.h"

enum log_level log_threshold = LOG_INFO;

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
            /* Well-formed, and not a C1 control (U+0080..U+009F, which is C2 80..C2 9F). */
            if (n <= len - i && utf8_valid(s + i, n) && !(ch == 0xc2 && s[i + 1] < 0xa0)) {
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

/* Writes one line: "TIME LEVEL " and the escaped message. One write per line, so lines from a
 * crash handler or a child never interleave. */
static void write_line(enum log_level level, const char *msg, size_t len, int cut)
{
    char line[64 + 4 * LOG_LINE_MAX + 16];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(line + n, sizeof line - n, ".%03ldZ %-5s ", ts.tv_nsec / 1000000,
                          level_names[level]);
    if (len > LOG_LINE_MAX)
        len = LOG_LINE_MAX;
    n += escape(line + n, (const unsigned char *)msg, len);
    if (cut) {
        memcpy(line + n, " [cut]", 6);
        n += 6;
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
