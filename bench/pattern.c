/* bench/pattern.c: our pattern functions (src/pattern.c) against Lua 5.4's own.
 *
 * 1. Speed: each typical call below runs in a Lua loop with string.* and with ours (once with a
 *    check that reads CLOCK_MONOTONIC, as a deadline check would, and once without a check);
 *    prints thread CPU ns per call (fastest of 7 interleaved runs) and the ratio ours/Lua.
 * 2. Gaps: pathological calls run with ours and a check that records the time between calls
 *    (and raises after 200 ms so the cubic ones end); prints the number of checks, the mean and
 *    the longest gap between two checks.
 * Figures only; nothing is judged. Usage: build/pattern_bench [iterations-scale] */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "pattern.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* CPU time of this thread: the gaps between checks without the time other processes on the
 * machine took from us. */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double last_check, first_check, stop_after;
static long check_calls;
static int record_gaps;
#define MAX_GAPS 1000000
static float gaps[MAX_GAPS]; /* microseconds */
static long ngaps;

/* The check: reads the clock as a deadline check would; in the gap section it reads the thread's
 * CPU time, records the gap since the last check and raises after stop_after seconds. */
static void clock_check(lua_State *L)
{
    check_calls++;
    if (!record_gaps) {
        (void)now();
        return;
    }
    double t = cpu_now();
    if (ngaps < MAX_GAPS)
        gaps[ngaps++] = (float)((t - last_check) * 1e6);
    last_check = t;
    if (t - first_check > stop_after)
        luaL_error(L, "time limit");
}

static int by_value(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static void run(lua_State *L, const char *chunk)
{
    if (luaL_dostring(L, chunk) != LUA_OK) {
        fprintf(stderr, "bench chunk failed: %s\n", lua_tostring(L, -1));
        exit(1);
    }
}

/* Seconds for one run of the loop body `f(...)` n times with f = impl[fn]. */
static double timed_once(lua_State *L, const char *impl, const char *setup, const char *call,
                         long n)
{
    char chunk[2048];
    snprintf(chunk, sizeof chunk,
             "local S = %s\n%s\n"
             "for _ = 1, %ld do %s end",
             impl, setup, n, call);
    double t0 = cpu_now();
    run(L, chunk);
    return cpu_now() - t0;
}

/* Thread CPU seconds of each implementation for the same loop: the fastest of seven runs, the
 * three implementations taking turns (the machine is shared; the minimum is the least
 * disturbed). */
static void timed3(lua_State *L, const char *setup, const char *call, long n, double best[3])
{
    static const char *const impls[3] = {"string", "ours", "nocheck"};
    for (int k = 0; k < 3; k++)
        best[k] = 1e30;
    for (int i = 0; i < 7; i++)
        for (int k = 0; k < 3; k++) {
            double t = timed_once(L, impls[k], setup, call, n);
            if (t < best[k])
                best[k] = t;
        }
}

struct speed_case {
    const char *name, *setup, *call;
    long n;
};

static const struct speed_case speed_cases[] = {
    {"trim a 64-byte text", "local s = '   ' .. string.rep('hello ', 10) .. '  '",
     "S.match(s, '^%s*(.-)%s*$')", 200000},
    {"command /name arg", "local s = '/nick alice_the_great'", "S.match(s, '^/(%a+)%s*(.*)$')",
     500000},
    {"plain find in 1 KB", "local s = string.rep('abcdefgh', 128) .. 'needle'",
     "S.find(s, 'needle', 1, true)", 200000},
    {"find a class in 1 KB", "local s = string.rep('abcdefgh', 128) .. '7'",
     "S.find(s, '%d')", 20000},
    {"gmatch words in 1 KB", "local s = string.rep('the quick brown fox ', 50)",
     "for w in S.gmatch(s, '%a+') do end", 5000},
    {"gsub escape <>& in 1 KB",
     "local s = string.rep('a<b>&c ', 140) local t = {['<'] = '&lt;', ['>'] = '&gt;', ['&'] = "
     "'&amp;'}",
     "S.gsub(s, '[<>&]', t)", 5000},
    {"gsub %s+ -> ' ' in 1 KB", "local s = string.rep('a  b\\t\\tc ', 128)",
     "S.gsub(s, '%s+', ' ')", 5000},
    {"backtracking .-.-b on 60 B", "local s = string.rep('a', 60)", "S.find(s, '.-.-b')", 20},
};

struct gap_case {
    const char *name, *chunk;
};

/* Each chunk builds its subject first and calls mark() just before the call under test. */
static const struct gap_case gap_cases[] = {
    {"find(rep('a',2000), '.-.-b')",
     "local s = string.rep('a', 2000) mark() S.find(s, '.-.-b')"},
    {"find(rep('(',1e5), '%b()')", "local s = string.rep('(', 100000) mark() S.find(s, '%b()')"},
    {"find(rep('a',1e5)..'b', '^(.*)%1$')",
     "local s = string.rep('a', 100000) .. 'b' mark() S.find(s, '^(.*)%1$')"},
    {"find(rep('b',1e4), '['..rep('a',5000)..']')",
     "local s, p = string.rep('b', 10000), '[' .. string.rep('a', 5000) .. ']' mark() "
     "S.find(s, p)"},
    {"find(rep('a',1e7), 'ab', 1, true)",
     "local s = string.rep('a', 10000000) mark() S.find(s, 'ab', 1, true)"},
    {"gsub(rep('a',1e5), '', rep('x',1000))",
     "local s, r = string.rep('a', 100000), string.rep('x', 1000) mark() S.gsub(s, '', r)"},
    {"gmatch(rep('a',3e4), 'a-b')",
     "local s = string.rep('a', 30000) mark() for _ in S.gmatch(s, 'a-b') do end"},
};

static double call_start;

/* mark(): the call under test starts now. */
static int mark(lua_State *L)
{
    call_start = first_check = last_check = cpu_now();
    ngaps = 0;
    check_calls = 0;
    return 0;
}

int main(int argc, char **argv)
{
    double scale = argc > 1 ? atof(argv[1]) : 1.0;
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    lua_newtable(L);
    pattern_install(L, -1, clock_check);
    lua_setglobal(L, "ours");
    lua_newtable(L);
    pattern_install(L, -1, NULL);
    lua_setglobal(L, "nocheck");
    lua_register(L, "mark", mark);

    printf("pattern functions, ours vs Lua %s (PATTERN_CHECK_STEPS %d)\n", LUA_RELEASE,
           PATTERN_CHECK_STEPS);
    printf("%-28s %12s %12s %12s %8s %8s\n", "call", "lua ns", "ours ns", "no-check ns",
           "ratio", "checks");
    double log_ratios = 0;
    int ncases = 0;
    for (size_t i = 0; i < sizeof speed_cases / sizeof speed_cases[0]; i++) {
        const struct speed_case *c = &speed_cases[i];
        long n = (long)((double)c->n * scale);
        if (n < 1)
            n = 1;
        double best[3];
        check_calls = 0;
        timed3(L, c->setup, c->call, n, best);
        long calls = check_calls / 7;
        double tl = best[0], to = best[1], tn = best[2];
        printf("%-28s %12.0f %12.0f %12.0f %8.2f %8ld\n", c->name, tl / (double)n * 1e9,
               to / (double)n * 1e9, tn / (double)n * 1e9, to / tl, calls);
        log_ratios += log(to / tl);
        ncases++;
    }
    printf("%-28s %12s %12s %12s %8.2f\n", "(geometric mean of ratios)", "", "", "",
           exp(log_ratios / ncases));

    printf("\npathological calls with ours, stopped by the check after 200 ms of CPU; gaps between\n"
           "checks in thread CPU time\n");
    printf("%-42s %8s %8s %9s %9s %9s %9s\n", "call", "cpu ms", "checks", "mean us", "p99 us",
           "p99.9 us", "max us");
    record_gaps = 1;
    stop_after = 0.2;
    for (size_t i = 0; i < sizeof gap_cases / sizeof gap_cases[0]; i++) {
        const struct gap_case *c = &gap_cases[i];
        char chunk[1024];
        snprintf(chunk, sizeof chunk, "local S = ours\nreturn pcall(function() %s end)",
                 c->chunk);
        run(L, chunk);
        double t = cpu_now() - call_start;
        qsort(gaps, (size_t)ngaps, sizeof gaps[0], by_value);
        double mean = ngaps ? t * 1e6 / (double)ngaps : 0;
        printf("%-42s %8.1f %8ld %9.2f %9.2f %9.2f %9.2f\n", c->name, t * 1e3, check_calls,
               mean, ngaps ? gaps[ngaps * 99 / 100] : 0.0, ngaps ? gaps[ngaps * 999 / 1000] : 0.0,
               ngaps ? gaps[ngaps - 1] : 0.0);
    }
    lua_close(L);
    return 0;
}
