/* log: one line per event worth knowing, on stderr, filtered by level.
 *
 * Every line is safe to read and to parse by line: the message (which may carry text from clients
 * and scripts: names, reasons, paths, headers, print output) is escaped in one place, here, so it
 * can never start a line of its own or drive a terminal: backslash, control characters and bytes
 * that are not well-formed UTF-8 (and the C1 controls U+0080..U+009F, the line and paragraph
 * separators U+2028/U+2029 and the bidirectional controls U+202A..U+202E, U+2066..U+2069 that
 * could make a viewer show a line other than it is) become \\, \n, \r, \t or \xNN. Lines
 * are also rate-limited per call site (format string): at most LOG_BURST lines at once and
 * LOG_RATE per second after that; the rest are counted and reported as one line "N similar lines
 * suppressed" when that site may log again, at the next line logged after that, or at
 * log_flush. */
#ifndef CONFAB_LOG_H
#define CONFAB_LOG_H

#include <stdint.h>
#include <stdio.h>

/* LOG_NOTICE is printed at every threshold: the few lines a user always needs (where the
 * server listens, that it stopped). It cannot be chosen with --log-level, and is never
 * rate-limited. */
enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_NOTICE };

#define LOG_BURST 50 /* lines one call site may write at once... */
#define LOG_RATE 10  /* ...and per second after that */
#define LOG_LINE_MAX 2048 /* bytes of a message before escaping; longer ones are cut */

/* Messages below this level are dropped. Default LOG_INFO. */
extern enum log_level log_threshold;

/* --log-format: "TIME LEVEL [conn=ID |fd=FD ]message" (text, the default) or one JSON object per
 * line: {"ts":"TIME","level":"LEVEL"[,"conn":ID|,"fd":FD],"msg":"message"[,"cut":true]}. In both
 * the message is escaped as above first (so a JSON "msg" reads exactly as the text line does);
 * JSON then escapes '"' and '\\' as JSON requires, so every line is valid JSON and one object. */
enum log_format { LOG_TEXT, LOG_JSON };
extern enum log_format log_format;

/* The connection being handled: its id (0 before its WebSocket upgrade) and its socket (-1:
 * none). Lines logged meanwhile carry conn=ID (or fd=FD before the upgrade). The server sets it
 * around each connection's events; log_ctx_set returns the previous one to put back. */
struct log_ctx {
    uint64_t conn;
    int fd;
};
extern struct log_ctx log_ctx;

static inline struct log_ctx log_ctx_set(uint64_t conn, int fd)
{
    struct log_ctx prev = log_ctx;
    log_ctx.conn = conn;
    log_ctx.fd = fd;
    return prev;
}

/* Writes "TIME LEVEL message\n" to stderr when level >= log_threshold. */
void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Reports every pending count of suppressed lines now (before exiting). */
void log_flush(void);

/* For tests: where lines go (NULL: stderr) and the clock of the rate limit in seconds (NULL: the
 * monotonic clock). Both also forget the rate limit's state. */
void log_set_output(FILE *out, double (*now)(void));

/* Parses "debug", "info", "warn" or "error". Returns 0, or -1 for an unknown name. */
int log_parse_level(const char *name, enum log_level *out);

/* Parses "text" or "json". Returns 0, or -1. */
int log_parse_format(const char *name, enum log_format *out);

/* The name of a level, as log_parse_level accepts it. */
const char *log_level_name(enum log_level level);

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_NOTICE, __VA_ARGS__)

#endif
