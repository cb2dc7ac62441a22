/* log: one line per event worth knowing, on stderr, filtered by level. */
#ifndef CONFAB_LOG_H
#define CONFAB_LOG_H

/* LOG_NOTICE is printed at every threshold: the few lines a user always needs (where the
 * server listens, that it stopped). It cannot be chosen with --log-level. */
enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_NOTICE };

/* Messages below this level are dropped. Default LOG_INFO. */
extern enum log_level log_threshold;

/* Writes "TIME LEVEL message\n" to stderr when level >= log_threshold. */
void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Parses "debug", "info", "warn" or "error". Returns 0, or -1 for an unknown name. */
int log_parse_level(const char *name, enum log_level *out);

/* The name of a level, as log_parse_level accepts it. */
const char *log_level_name(enum log_level level);

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_NOTICE, __VA_ARGS__)

#endif
