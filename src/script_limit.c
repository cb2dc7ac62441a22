/* script_limit: the time limit of a call into Lua. The outermost call (a hook, a timer, the
 * main chunk) may use --hook-timeout of CPU time; nested calls (a join hook fired by confab.join
 * inside a message hook) share its budget. The clock is the process's CPU time: a hook is not
 * charged for waiting for a CPU on a loaded machine, and a hook cannot wait for anything else
 * (the sandbox has no I/O), so on an idle machine CPU time is wall time.
 *
 * A POSIX timer on that clock, armed when the outermost call starts, raises SIGRTMIN when the
 * budget is spent; its handler sets a hook on every call, return, line and instruction of the
 * running thread (lua_sethook may be called from a signal handler; lua.c stops a script on
 * Ctrl-C the same way). So a C function that does much work per VM instruction is stopped when it
 * returns, and the C loops that check (script_limit_check: pattern matching, load, string.rep)
 * stop within their step. Between signals, a count hook every 1000 instructions only reads a
 * flag. Without the timer (timer_create failed) the count hook reads the monotonic clock.
 *
 * Once the limit passed, the hook raises the abort at every tick, and pcall, xpcall and
 * coroutine.resume (sandbox.c) raise it again, so a script cannot catch it and go on. */
#include <errno.h>
#include <lauxlib.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "metrics.h"
#include "script_int.h"

#define COUNT_EVERY 1000
#define MASK_ALL (LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT)

static struct {
    int depth;
    struct timespec deadline;        /* monotonic, used only without the timer */
    const char *what;
    unsigned limit_ms;
    int timed_out;
    char abort_msg[256]; /* "file:line: what exceeded its time limit ...", once timed out */
    lua_State *main;                 /* main thread of the state running the call */
    lua_State *volatile running;     /* the thread running now (main or a coroutine) */
    volatile sig_atomic_t expired;   /* the timer's signal came */
    struct timespec started;         /* monotonic, for the hook time metrics */
    enum metrics_hook kind;
} call;

static timer_t timer;
static int have_timer;

static int deadline_passed(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > call.deadline.tv_sec ||
           (now.tv_sec == call.deadline.tv_sec && now.tv_nsec >= call.deadline.tv_nsec);
}

/* Whether the running call passed its deadline; the first time, the abort message is made
 * (with file:line when ar is given). */
static int limit_reached(lua_State *L, lua_Debug *ar)
{
    if (call.timed_out)
        return 1;
    if (call.depth == 0 || (!call.expired && (have_timer || !deadline_passed())))
        return 0;
    call.timed_out = 1;
    if (ar && lua_getinfo(L, "Sl", ar) && ar->currentline > 0)
        snprintf(call.abort_msg, sizeof call.abort_msg,
                 "%s:%d: %s exceeded its time limit of %u ms and was aborted", ar->short_src,
                 ar->currentline, call.what, call.limit_ms);
    else
        snprintf(call.abort_msg, sizeof call.abort_msg,
                 "%s exceeded its time limit of %u ms and was aborted", call.what,
                 call.limit_ms);
    return 1;
}

/* The hook: every COUNT_EVERY instructions, or at every event once the timer's signal set it
 * so. Raises the abort once the deadline passed; otherwise puts back the cheap setting. */
static void limit_hook(lua_State *L, lua_Debug *ar)
{
    if (limit_reached(L, ar)) {
        lua_pushstring(L, call.abort_msg);
        lua_error(L);
    }
    if (lua_gethookmask(L) != LUA_MASKCOUNT) {
        lua_sethook(L, limit_hook, LUA_MASKCOUNT, COUNT_EVERY);
        if (call.expired) /* the signal came in between: keep its setting */
            lua_sethook(L, limit_hook, MASK_ALL, 1);
    }
}

static void on_signal(int sig)
{
    call.expired = 1;
    lua_State *L = call.running;
    if (L) {
        lua_sethook(L, limit_hook, MASK_ALL, 1);
        if (call.main && call.main != L)
            lua_sethook(call.main, limit_hook, MASK_ALL, 1);
    }
}

void script_limit_init(void)
{
    if (have_timer)
        return;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    struct sigevent sev;
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_SIGNAL;
    sev.sigev_signo = SIGRTMIN;
    if (sigaction(SIGRTMIN, &sa, NULL) < 0 || timer_create(CLOCK_PROCESS_CPUTIME_ID, &sev, &timer) < 0) {
        log_warn("no timer for the script time limit (%s): only the instruction count checks it",
                 strerror(errno));
        return;
    }
    have_timer = 1;
}

void script_limit_state(lua_State *L)
{
    lua_sethook(L, limit_hook, LUA_MASKCOUNT, COUNT_EVERY);
}

void script_limit_enter(lua_State *L, const char *what, unsigned ms)
{
    if (call.depth++ > 0)
        return;
    clock_gettime(CLOCK_MONOTONIC, &call.deadline);
    call.started = call.deadline;
    call.kind = metrics_hook_kind(what);
    call.deadline.tv_sec += ms / 1000;
    call.deadline.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (call.deadline.tv_nsec >= 1000000000L) {
        call.deadline.tv_sec++;
        call.deadline.tv_nsec -= 1000000000L;
    }
    call.what = what;
    call.limit_ms = ms;
    call.timed_out = 0;
    call.main = L;
    call.running = L;
    call.expired = 0;
    if (have_timer) {
        struct itimerspec its = {.it_value = {ms / 1000, (long)(ms % 1000) * 1000000L}};
        timer_settime(timer, 0, &its, NULL); /* relative: ms of CPU time from now */
    }
}

void script_limit_leave(void)
{
    if (--call.depth > 0)
        return;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    metrics.hook_calls[call.kind]++;
    metrics_observe(&metrics.hook_time[call.kind], (double)(now.tv_sec - call.started.tv_sec) +
                                                       (now.tv_nsec - call.started.tv_nsec) / 1e9);
    if (call.timed_out)
        METRIC_INC(hook_aborts);
    if (have_timer) {
        struct itimerspec off = {{0, 0}, {0, 0}};
        timer_settime(timer, 0, &off, NULL); /* a signal already on its way finds running NULL */
    }
    call.running = NULL;
    call.main = NULL;
}

lua_State *script_limit_switch(lua_State *co)
{
    lua_State *prev = call.running;
    if (prev)
        call.running = co;
    if (co && call.expired)
        lua_sethook(co, limit_hook, MASK_ALL, 1);
    return prev;
}

const char *script_abort_msg(void)
{
    return limit_reached(NULL, NULL) ? call.abort_msg : NULL;
}

void script_limit_check(lua_State *L)
{
    if (limit_reached(L, NULL)) {
        lua_pushstring(L, call.abort_msg);
        lua_error(L);
    }
}

