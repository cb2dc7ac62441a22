/* confab: flags, signals, the loop. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

#include "claims.h"
#include "config.h"
#include "hub.h"
#include "log.h"
#include "presence.h"
#include "redis_link.h"
#include "redis_observe.h"
#include "redis_room.h"
#include "redis_url.h"
#include "metrics.h"
#include "script.h"
#include "server.h"
#include "tls.h"
#include "watch.h"
#include "webroot.h"

/* Seconds the shutdown waits for peers to answer the close 1001. */
#define SHUTDOWN_GRACE 3.0
/* Seconds after the stop signal when the process ends whatever is still running (disconnect
 * hooks of many connections, each within its time limit, could add up past the grace). */
#define SHUTDOWN_LAST_RESORT 4

static struct config cfg;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void reload(const char *why)
{
    char err[1024];
    if (script_load(cfg.script_path, err, sizeof err) == 0) {
        METRIC_INC(reloads_ok);
        metrics.script_ok = 1;
        metrics.script_loaded_at = (double)now_ms() / 1000;
        log_info("script %s reloaded (%s)", cfg.script_path, why);
    } else {
        METRIC_INC(reloads_failed);
        metrics.script_ok = 0;
        log_error("reload failed, the previous script stays: %s", err);
    }
}

/* What on_last_resort writes (only write(2) is safe there): made when the alarm is armed. */
static char last_words[256] = "confab: still not stopped after the grace period: exiting now\n";

static void on_last_resort(int sig)
{
    ssize_t n = write(2, last_words, strlen(last_words));
    (void)n;
    _exit(1);
}

static void arm_last_resort(unsigned seconds)
{
    if (log_format == LOG_JSON) {
        /* A log line like the others, stamped with the time the alarm will come. */
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        time_t at = ts.tv_sec + SHUTDOWN_LAST_RESORT;
        gmtime_r(&at, &tm);
        char when[32];
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(last_words, sizeof last_words,
                 "{\"ts\":\"%s.%03ldZ\",\"level\":\"error\",\"msg\":\"still not stopped after the "
                 "grace period: exiting now\"}\n", when, ts.tv_nsec / 1000000);
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_last_resort;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    alarm(seconds);
}

static void on_stop_signal(EV_P_ ev_signal *w, int revents)
{
    static int count;
    if (++count > 1) {
        log_warn("second signal: exiting now");
        ev_break(EV_A_ EVBREAK_ALL);
        return;
    }
    if (w->signum == SIGTERM) {
        log_info("SIGTERM: draining over %.1f s", cfg.drain_time);
        arm_last_resort(SHUTDOWN_LAST_RESORT + (unsigned)ceil(cfg.drain_time));
        server_drain(cfg.drain_time, SHUTDOWN_GRACE);
        return;
    }
    log_info("signal %d: stopping", w->signum);
    arm_last_resort(SHUTDOWN_LAST_RESORT);
    server_shutdown(SHUTDOWN_GRACE);
}

static void on_hup(EV_P_ ev_signal *w, int revents)
{
    reload("SIGHUP");
    char err[1024];
    if (tls_enabled()) {
        if (tls_reload(err, sizeof err) == 0)
            log_info("TLS certificate and key reloaded (SIGHUP)");
        else
            log_error("TLS reload failed, the previous certificate stays: %s", err);
    }
}

static void on_script_changed(void)
{
    reload("file changed");
}

/* Each connection is a descriptor: take every one the hard limit allows. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* --pid-file: the process id and a newline, written before the "listening" line so whoever reads
 * that line finds the file. Returns 0, or -1 with a reason in err. */
static int pid_file_write(const char *path, char *err, size_t errlen)
{
    char line[32];
    int n = snprintf(line, sizeof line, "%ld\n", (long)getpid());
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || write(fd, line, (size_t)n) != n) {
        snprintf(err, errlen, "cannot write pid file '%s': %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

/* Removes the pid file, if one was written. */
static void pid_file_remove(void)
{
    if (cfg.pid_file)
        unlink(cfg.pid_file);
}


/* A reason to exit 2 after the flags were read: "confab: reason" on stderr as always, or with
 * --log-format json a log line like every other one. */
static void fatal(const char *reason)
{
    if (log_format == LOG_JSON)
        log_error("%s", reason);
    else
        fprintf(stderr, "confab: %s\n", reason);
}

int main(int argc, char **argv)
{
    char err[1024];
    config_defaults(&cfg);
    int rc = config_parse(&cfg, argc, argv, err, sizeof err);
    if (rc > 0)
        return 0;
    if (rc < 0) {
        fprintf(stderr, "confab: %s\n", err);
        return 2;
    }
    config_resolve_paths(&cfg);
    log_threshold = (enum log_level)cfg.log_level;
    log_format = (enum log_format)cfg.log_format;
    signal(SIGPIPE, SIG_IGN);

    struct ev_loop *loop = ev_default_loop(EVFLAG_AUTO);
    struct script_config scfg = {cfg.hook_timeout_ms, cfg.script_memory, now_ms()};
    script_init(loop, &scfg);
    /* Before the script loads: what its main chunk stores in the hub is bounded too. */
    hub_set_limits(loop, &(struct hub_limits){cfg.history_memory, cfg.history_age, cfg.attr_memory,
                                              NULL});

    if (cfg.redis_count && !cfg.check_path) {
        struct redis_url urls[16];
        for (unsigned i = 0; i < cfg.redis_count; i++)
            redis_url_parse(cfg.redis[i], &urls[i], err, sizeof err); /* validated by config */
        redis_init(loop, urls, cfg.redis_count, cfg.redis_timeout);
        redis_room_init(cfg.history, cfg.history_memory, cfg.history_age);
        hub_room_freed = redis_room_forget;
        redis_observe_init();
        if (presence_start(loop, &urls[0], cfg.redis_timeout, cfg.node_heartbeat, err,
                           sizeof err) < 0) {
            fprintf(stderr, "confab: %s\n", err);
            return 1;
        }
    }

    if (cfg.check_path) {
        if (script_check(cfg.check_path, err, sizeof err) < 0) {
            fatal(err);
            return 2;
        }
        printf("%s: ok\n", cfg.check_path);
        return 0;
    }

    raise_fd_limit();
    if (webroot_init(cfg.web_dir, err, sizeof err) < 0) {
        fatal(err);
        return 2;
    }
    if (script_load(cfg.script_path, err, sizeof err) < 0) {
        fatal(err);
        return 2;
    }
    metrics.script_ok = 1;
    metrics.script_loaded_at = (double)now_ms() / 1000;
    log_info("confab %s: script %s loaded, web %s%s", CONFAB_VERSION, cfg.script_path, cfg.web_dir,
             cfg.script_page ? " (the script's own page)" : "");
    /* Signals are watched before the "listening" line: whoever reads it may signal at once. */
    ev_signal sigint, sigterm, sighup;
    ev_signal_init(&sigint, on_stop_signal, SIGINT);
    ev_signal_init(&sigterm, on_stop_signal, SIGTERM);
    ev_signal_init(&sighup, on_hup, SIGHUP);
    ev_signal_start(loop, &sigint);
    ev_signal_start(loop, &sigterm);
    ev_signal_start(loop, &sighup);
    if (cfg.pid_file && pid_file_write(cfg.pid_file, err, sizeof err) < 0) {
        fatal(err);
        return 2;
    }
    if (server_start(loop, &cfg, err, sizeof err) < 0) {
        fatal(err);
        pid_file_remove();
        return 2;
    }

    if (cfg.watch && watch_start(loop, cfg.script_path, on_script_changed, err, sizeof err) < 0) {
        fatal(err);
        pid_file_remove();
        return 2;
    }

    if (cfg.redis_count)
        redis_start();

    metrics_loop_start(loop);
    ev_run(loop, 0);
    metrics_loop_stop();

    if (cfg.redis_count) {
        presence_stop();
        redis_stop();
        redis_room_shutdown();
    }

    watch_stop();
    server_free();
    script_shutdown();
    hub_shutdown();
    claims_clear();
    webroot_free();
    free(cfg.script_page);
    pid_file_remove();
    log_flush();
    log_notice("stopped");
    return 0;
}
