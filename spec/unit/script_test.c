/* The script runtime without sockets: sandbox escapes, limits, reload and timers. Each test
 * loads a script from a temporary file, drives it with script_message on a fake connection and
 * reads back what it sent. Every escape attempt ever considered stays here as a regression. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "claims.h"
#include "hub.h"
#include "metrics.h"
#include "script.h"
#include "test.h"

static void s_queued(struct conn *c) {}
static void s_overflow(struct conn *c) {}
static void s_close(struct conn *c, uint16_t code, const char *reason) {}
static const struct hub_callbacks hub_cb = {s_queued, s_overflow, s_close};

static char path[64];
static struct ev_loop *loop;

/* Writes src to a temporary file and loads it. Returns script_load's result. */
static int load(const char *src, char *err, size_t errlen)
{
    if (!path[0]) {
        strcpy(path, "/tmp/confab-script-XXXXXX.lua");
        int fd = mkstemps(path, 4);
        close(fd);
    }
    FILE *f = fopen(path, "w");
    fputs(src, f);
    fclose(f);
    return script_load(path, err, errlen);
}


/* Sends text to the script and returns the payload of the last frame it queued for c (or "").
 * Server frames under 126 bytes have a 2-byte header. */
static const char *ask(struct conn *c, const char *text)
{
    static char reply[4096];
    outq_clear(&c->out);
    script_message(c, 0, (const uint8_t *)text, strlen(text));
    reply[0] = '\0';
    if (outq_count(&c->out)) {
        struct frame *f = outq_at(&c->out, outq_count(&c->out) - 1);
        size_t hdr = (f->data[1] & 0x7f) == 126 ? 4 : 2;
        size_t n = f->len - hdr < sizeof reply - 1 ? f->len - hdr : sizeof reply - 1;
        memcpy(reply, f->data + hdr, n);
        reply[n] = '\0';
    }
    return reply;
}

static void setup(void)
{
    loop = ev_default_loop(0);
    struct script_config cfg = {.hook_timeout_ms = 100, .memory = 8 * 1024 * 1024, .epoch = 42};
    script_init(loop, &cfg);
    hub_init(1 << 20, 10, &hub_cb);
}

/* A script whose message hook runs the text it receives as a chunk and sends back either
 * "ok <result>" or "err <message>". */
static const char *const evaluator =
    "local confab = require 'confab'\n"
    "confab.on('message', function(ev)\n"
    "  local fn, cerr = load(ev.data, 'probe', 't', _ENV)\n"
    "  if not fn then confab.send(ev.id, 'err ' .. cerr) return end\n"
    "  local ok, res = pcall(fn)\n"
    "  confab.send(ev.id, (ok and 'ok ' or 'err ') .. tostring(res))\n"
    "end)\n";

static int starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

TEST(script_sandbox_escapes)
{
    setup();
    char err[512];
    CHECK_INT(load(evaluator, err, sizeof err), 0);
    struct conn *c = test_conn_open();

    static const struct { const char *probe, *expect; } cases[] = {
        /* Libraries that reach the system are not there. */
        {"return io", "ok nil"},
        {"return debug", "ok nil"},
        {"return package", "ok nil"},
        {"return dofile", "ok nil"},
        {"return loadfile", "ok nil"},
        {"return os.execute", "ok nil"},
        {"return os.exit", "ok nil"},
        {"return os.getenv", "ok nil"},
        {"return os.remove", "ok nil"},
        {"return type(os.time())", "ok number"},
        {"return require('io')", "err"},
        {"return require('debug')", "err"},
        {"return require('os')", "err"},
        {"return type(require('cjson').encode)", "ok function"},
        {"return require('confab') == confab", "ok true"},
        /* Bytecode is refused, however it is offered. */
        {"return load(string.dump(function() return 1 end))", "ok nil"},
        {"return select(2, load(string.dump(function() return 1 end)))", "ok attempt to load a binary chunk (mode is 't')"},
        {"return load('return 1', 'x', 'b')", "err"},
        {"return load('return 1', 'x', 'bt')", "err"},
        {"local s = string.dump(function() end); local i = 0; "
         "return load(function() i = i + 1; return i == 1 and s or nil end)", "ok nil"},
        /* Globals: assigning a new one after load is an error, rawset is deliberate. */
        {"newglobal = 1", "err"},
        {"local ok, e = pcall(function() typo = 2 end); return e:match('undeclared global') ~= nil",
         "ok true"},
        {"return setmetatable(_G, nil)", "err"},
        {"return getmetatable(_G)", "ok the global table is protected"},
        /* The shared string metatable cannot be reached to break other code. */
        {"return getmetatable('')", "ok false"},
        {"getmetatable('').__index = {}", "err"},
        {"return ('x'):upper()", "ok X"},
        /* The collector cannot be stopped or retuned. */
        {"collectgarbage('stop')", "err"},
        {"collectgarbage('generational')", "err"},
        {"return type(collectgarbage('count'))", "ok number"},
        {"return collectgarbage('isrunning')", "ok true"},
        /* Yielding across a hook fails in that hook only. */
        {"coroutine.yield(1)", "err attempt to yield from outside a coroutine"},
        {"local co = coroutine.wrap(function() confab.join(1, 'x') end); return 1", "ok 1"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *got = ask(c, cases[i].probe);
        if (!starts_with(got, cases[i].expect)) {
            printf("    probe '%s': got '%s', expected '%s'\n", cases[i].probe, got,
                   cases[i].expect);
            test_failed_checks++;
        }
    }
    /* After all that, the script still serves. */
    CHECK_STR(ask(c, "return 40 + 2"), "ok 42");
    test_conn_close(c);
}

TEST(script_limits_time_and_memory)
{
    setup();
    char err[512];
    CHECK_INT(load(evaluator, err, sizeof err), 0);
    struct conn *c = test_conn_open();
    /* An endless loop is aborted, even one that catches errors to carry on: the abort goes
     * through pcall, xpcall and coroutine.resume (the evaluator's own pcall included), so
     * the whole hook ends and sends nothing. */
    CHECK_STR(ask(c, "while true do end"), "");
    CHECK_STR(ask(c, "while true do pcall(function() while true do end end) end"), "");
    CHECK_STR(ask(c, "while true do xpcall(function() while true do end end, print) end"), "");
    CHECK_STR(ask(c, "while true do coroutine.resume(coroutine.create(function() "
                     "while true do end end)) end"), "");
    CHECK_STR(ask(c, "return pcall(error, 'caught')"), "ok false");
    CHECK_STR(ask(c, "return 1"), "ok 1");
    const char *got;
    /* A memory bomb fails its own hook. Its time limit is made long so that the cap, not the
     * clock, stops it on every build (sanitizers, valgrind). */
    struct script_config slow = {.hook_timeout_ms = 60000, .memory = 8 * 1024 * 1024, .epoch = 42};
    script_init(loop, &slow);
    /* Big pieces: the cap is reached long before the time limit, on every build. */
    got = ask(c, "local t = {} for i = 1, 1e9 do t[i] = ('x'):rep(1 << 20) .. i end");
    CHECK(starts_with(got, "err not enough memory"));
    got = ask(c, "return #string.rep('x', 1 << 30)");
    CHECK(starts_with(got, "err not enough memory"));
    CHECK_STR(ask(c, "return 2"), "ok 2");
    test_conn_close(c);
}

TEST(script_load_errors_keep_the_running_script)
{
    setup();
    char err[512];
    CHECK_INT(load(evaluator, err, sizeof err), 0);
    struct conn *c = test_conn_open();

    CHECK_INT(load("local confab = require 'confab'\nconfab.on('message', function(ev)\n"
                   "  confab.send(ev.id, 'broken'\nend)\n", err, sizeof err), -1);
    CHECK(strstr(err, path) && strstr(err, ":4:"));
    CHECK_STR(ask(c, "return 'still'"), "ok still");

    CHECK_INT(load("local x = 1\nerror('init failed')\n", err, sizeof err), -1);
    CHECK(strstr(err, ":2: init failed") != NULL);

    CHECK_INT(load("while true do end\n", err, sizeof err), -1);
    CHECK(strstr(err, "time limit") != NULL);

    CHECK_INT(load("require('confab').on('mesage', function() end)\n", err, sizeof err), -1);
    CHECK(strstr(err, ":1:") && strstr(err, "mesage"));

    CHECK_INT(load("\x1bLua", err, sizeof err), -1);
    CHECK_STR(ask(c, "return 'still'"), "ok still");

    /* --check reports the same without replacing anything. */
    CHECK_INT(script_check(path, err, sizeof err), -1);
    test_conn_close(c);
}

TEST(script_reload_keeps_c_state_and_fires_reload)
{
    setup();
    char err[512];
    CHECK_INT(load("local confab = require 'confab'\n"
                   "confab.on('message', function(ev) confab.set(ev.id, 'name', ev.data)\n"
                   "  confab.join(ev.id, 'lobby') confab.send(ev.id, 'v1') end)\n",
                   err, sizeof err), 0);
    struct conn *c = test_conn_open();
    CHECK_STR(ask(c, "alice"), "v1");
    CHECK_INT(load("local confab = require 'confab'\n"
                   "local names = {}\n"
                   "confab.on('reload', function()\n"
                   "  for _, id in ipairs(confab.connections()) do names[id] = confab.get(id, 'name') end\n"
                   "end)\n"
                   "confab.on('message', function(ev)\n"
                   "  confab.send(ev.id, 'v2 ' .. tostring(names[ev.id]) .. ' ' ..\n"
                   "    table.concat(confab.rooms_of(ev.id), ','))\n"
                   "end)\n",
                   err, sizeof err), 0);
    CHECK_STR(ask(c, "hi"), "v2 alice lobby");
    test_conn_close(c);
}

TEST(script_timers)
{
    setup();
    char err[512];
    CHECK_INT(load("local confab = require 'confab'\n"
                   "local ticks, h = 0\n"
                   "confab.on('message', function(ev)\n"
                   "  if ev.data == 'start' then\n"
                   "    h = confab.every(0.001, function() ticks = ticks + 1\n"
                   "      if ticks == 3 then h:cancel() end end)\n"
                   "    confab.after(0, function() confab.send(ev.id, 'fired') end)\n"
                   "    confab.after(0, function() while true do end end)\n"
                   "  elseif ev.data == 'count' then confab.send(ev.id, tostring(ticks))\n"
                   "  elseif ev.data == 'later' then confab.after(0.001, function()\n"
                   "    confab.send(ev.id, 'old timer') end)\n"
                   "  end\n"
                   "end)\n", err, sizeof err), 0);
    struct conn *c = test_conn_open();
    ask(c, "start");
    /* Run the loop until the repeating timer cancelled itself (bounded). */
    for (int i = 0; i < 200 && strcmp(ask(c, "count"), "3") != 0; i++)
        ev_run(loop, EVRUN_ONCE);
    CHECK_STR(ask(c, "count"), "3");
    for (int i = 0; i < 20; i++)
        ev_run(loop, EVRUN_NOWAIT);
    CHECK_STR(ask(c, "count"), "3");

    /* A replaced script's timers never fire: the old one (due in 1 ms) would come before the new
     * script's own timer (due in 5 ms), which the loop is run until. */
    ask(c, "later");
    CHECK_INT(load("local confab = require 'confab'\n"
                   "confab.on('message', function(ev)\n"
                   "  confab.after(0.005, function() confab.send(ev.id, 'new timer') end)\n"
                   "end)\n", err, sizeof err), 0);
    ask(c, "arm");
    for (int i = 0; i < 200 && outq_count(&c->out) == 0; i++)
        ev_run(loop, EVRUN_ONCE);
    CHECK_INT(outq_count(&c->out), 1);
    if (outq_count(&c->out) == 1) {
        struct frame *f = outq_at(&c->out, 0);
        CHECK(f->len == 11 && memcmp(f->data + 2, "new timer", 9) == 0);
    }
    test_conn_close(c);
    script_shutdown();
    unlink(path);
}

/* ---- issue 7: the sandbox as a boundary ------------------------------------------------ */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Settings a script could use to crash or escape the server are out of its reach. */
TEST(script_sandbox_keeps_limits_out_of_reach)
{
    setup();
    char err[512];
    CHECK_INT(load(evaluator, err, sizeof err), 0);
    struct conn *c = test_conn_open();
    static const struct { const char *probe, *expect; } cases[] = {
        /* cjson's depth limits (C recursion) can be lowered, not raised. */
        {"return (pcall(require('cjson').encode_max_depth, 100000))", "ok false"},
        {"return (pcall(require('cjson').decode_max_depth, 100000))", "ok false"},
        {"return (pcall(require('cjson.safe').decode_max_depth, 100000))", "ok false"},
        {"return (pcall(require('cjson').new().decode_max_depth, 100000))", "ok false"},
        {"return (pcall(require('cjson.safe').new().encode_max_depth, 100000))", "ok false"},
        {"local j = require('cjson'); j.decode_max_depth(10); "
         "local ok = pcall(j.decode, ('['):rep(11) .. (']'):rep(11)); "
         "j.decode_max_depth(1000); return ok", "ok false"},
        {"return require('cjson').decode_max_depth()", "ok 1000"},
        {"return #require('cjson').decode(('['):rep(900) .. (']'):rep(900))", "ok 1"},
        /* Finalizers would run with the time limit off, and while a state closes. */
        {"return (pcall(setmetatable, {}, {__gc = function() end}))", "ok false"},
        {"return (pcall(setmetatable, {}, {__gc = true}))", "ok false"},
        {"return getmetatable(setmetatable({}, {__index = {a = 1}})).__index.a", "ok 1"},
        /* Strings' methods are the sandbox's string table (where the pattern functions are). */
        {"return ('x').find == string.find and ('x').gsub == string.gsub", "ok true"},
        {"return (pcall(string.rep, 'x', math.maxinteger))", "ok false"},
        {"return (pcall(string.rep, 'xy', 1 << 62, ','))", "ok false"},
        /* A room name with NUL could be joined twice and never left. */
        {"return (pcall(confab.join, 1, 'a\\0b'))", "ok false"},
        {"return select(2, pcall(confab.join, 1, 'a\\0b')):match('NUL') ~= nil", "ok true"},
        {"return (pcall(confab.broadcast, 'a\\0', 'x'))", "ok false"},
        {"return (pcall(confab.history_add, '\\0', 1, 'x'))", "ok false"},
        /* So could an attribute key: 'a\0b' and 'a\0c' were both 'a'. */
        {"return (pcall(confab.set, confab.connections()[1], 'a\\0b', 1))", "ok false"},
        {"return (pcall(confab.get, confab.connections()[1], 'a\\0c'))", "ok false"},
        {"local id = confab.connections()[1] return confab.set(id, 'a', 7) and confab.get(id, 'a')",
         "ok 7"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *got = ask(c, cases[i].probe);
        if (!starts_with(got, cases[i].expect)) {
            printf("    probe '%s': got '%s', expected '%s'\n", cases[i].probe, got,
                   cases[i].expect);
            test_failed_checks++;
        }
    }
    test_conn_close(c);
}

/* string.rep is built in pieces (to check the time limit between them): same results as Lua's
 * definition, n copies of s separated by sep, across the piece size (1 MiB) too. */
TEST(script_string_rep_is_luas)
{
    setup();
    struct script_config cfg = {.hook_timeout_ms = 10000, .memory = 64 * 1024 * 1024};
    script_init(loop, &cfg);
    char err[512];
    CHECK_INT(load(evaluator, err, sizeof err), 0);
    struct conn *c = test_conn_open();
    CHECK_STR(ask(c, "local function ref(s, n, sep) if n <= 0 then return '' elseif n == 1 then return s end "
         "  local h = ref(s, n // 2, sep) local r = h .. sep .. h "
         "  if n % 2 == 1 then r = r .. sep .. s end return r end "
         "for _, str in ipairs{'', 'a', 'ab', 'xyz'} do "
         "  for _, sep in ipairs{'', ',', '--'} do "
         "    for _, n in ipairs{-1, 0, 1, 2, 3, 7, 1000, 262145, 300001} do "
         "      if str:rep(n, sep) ~= ref(str, n, sep) then return str .. sep .. n end "
         "      if sep == '' and str:rep(n) ~= ref(str, n, '') then return str .. n end "
         "      collectgarbage() "
         "    end "
         "  end "
         "end return 'same'"), "ok same");
    test_conn_close(c);
    script_shutdown();
}

/* A __gc that starts a timer while the old state closes on reload (a timer inside freed
 * memory), or that loops (finalizers run with hooks off): refused when the script loads. */
TEST(script_finalizers_are_refused_at_load)
{
    setup();
    char err[512];
    CHECK_INT(load("local confab = require 'confab'\n"
                   "keep = setmetatable({}, {__gc = function() confab.after(0, print) end})\n",
                   err, sizeof err), -1);
    CHECK(strstr(err, ":2:") && strstr(err, "__gc"));
    CHECK_INT(load("local mt = {__gc = true}\nlocal t = setmetatable({}, mt)\n"
                   "mt.__gc = function() while true do end end\n", err, sizeof err), -1);
    CHECK(strstr(err, "__gc") != NULL);
    script_shutdown();
}

/* confab.on while hooks dispatch used to shift the list under the loop: one handler ran
 * twice and the next never. Registration is for load time only. */
TEST(script_on_during_dispatch_is_refused)
{
    setup();
    char err[512];
    CHECK_INT(load("local confab = require 'confab'\n"
                   "local runs, said = 0, 'none'\n"
                   "confab.on('message', function(ev)\n"
                   "  runs = runs + 1\n"
                   "  local ok, e = pcall(confab.on, 'message', function() end, 5)\n"
                   "  said = ok and 'registered' or e\n"
                   "end, 1)\n"
                   "confab.on('message', function(ev)\n"
                   "  confab.send(ev.id, runs .. ' ' .. said) runs = 0\n"
                   "end)\n", err, sizeof err), 0);
    struct conn *c = test_conn_open();
    const char *got = ask(c, "x");
    CHECK(starts_with(got, "1 ") && strstr(got, "while the script loads"));
    if (!starts_with(got, "1 "))
        printf("    got '%s'\n", got);
    CHECK(starts_with(ask(c, "y"), "1 "));
    test_conn_close(c);
}

/* The time limit holds whatever the hook runs: a message handler (it runs with hooks off
 * once the abort is raised), and C functions that do much work per VM instruction. The bound
 * checked is generous (limit + 3 s of wall time: the limit is CPU time, and a loaded machine
 * stretches it); before the fixes these took 6 to 107 s. docs/hooks.md gives the overshoot. */
TEST(script_time_limit_holds_for_handlers_and_c_functions)
{
    setup();
    struct script_config cfg = {.hook_timeout_ms = 100, .memory = 256 * 1024 * 1024, .epoch = 42};
    script_init(loop, &cfg);
    char err[512];
    CHECK_INT(load(evaluator, err, sizeof err), 0);
    struct conn *c = test_conn_open();
    static const char *const hogs[] = {
        "xpcall(function() while true do end end, function() while true do end end)",
        "xpcall(error, function() while true do end end)",
        "local co = coroutine.wrap(function() xpcall(function() while true do end end, "
        "function() while true do end end) end) co()",
        "local rep = string.rep while true do rep('x', 30000000) end",
        "local co = coroutine.wrap(function() local rep = string.rep "
        "while true do rep('x', 30000000) end end) co()",
        "local src = ('x = 1 '):rep(200000) while true do load(src) end",
        "local t = {} for i = 1, 300000 do t[i] = tostring(i) end "
        "while true do table.sort(t) end",
        /* Pattern functions (pattern.c's, with a step budget), called both ways. */
        "local s = ('a'):rep(2048) while true do s:find('.-.-b') end",
        "local s = 'a' .. (' '):rep(65000) .. 'b' string.match(s, '^%s*(.-)%s*$')",
        "local s = ('a'):rep(65536) s:gsub('(.-)x', '')",
        "for w in (('a'):rep(65536)):gmatch('.-b') do end",
    };
    for (size_t i = 0; i < sizeof hogs / sizeof *hogs; i++) {
        double t0 = now_ms();
        const char *got = ask(c, hogs[i]);
        double took = now_ms() - t0;
        if (got[0] != '\0' || took > 100 + 3000) {
            printf("    '%s': got '%s' after %.0f ms\n", hogs[i], got, took);
            test_failed_checks++;
        }
    }
    CHECK_STR(ask(c, "return 'alive'"), "ok alive");
    test_conn_close(c);
    script_shutdown();
}

/* Without --redis confab.claim decides here: a new key past CLAIMS_MAX is refused at once with
 * "too many claims" (fn not called), a held key is still granted, and a release makes room. */
TEST(script_claims_refuse_past_the_cap)
{
    setup();
    char err[512];
    CHECK_INT(load(evaluator, err, sizeof err), 0);
    struct conn *c = test_conn_open();
    char k[32];
    for (size_t i = 0; i < CLAIMS_MAX - 1; i++) {
        int n = snprintf(k, sizeof k, "k%zu", i);
        claims_put(k, (size_t)n, "v", 1, 0);
    }
    CHECK_STR(ask(c, "local got; local ok = confab.claim('last', 'v', function(g) got = g end)\n"
                     "return tostring(ok) .. ' ' .. tostring(got)"),
              "ok true true");
    CHECK_INT(claims_count(), CLAIMS_MAX);
    CHECK_STR(ask(c, "local called; local ok, e = confab.claim('one more', 'v',\n"
                     "  function() called = true end)\n"
                     "return tostring(ok) .. ' ' .. tostring(e) .. ' ' .. tostring(called)"),
              "ok nil too many claims nil");
    CHECK(claims_get("one more", 8) == NULL);
    CHECK_STR(ask(c, "local got; confab.claim('k5', 'w', function(g) got = g end, 'v')\n"
                     "return tostring(got) .. ' ' .. confab.claimed('k5')"),
              "ok true w");
    CHECK_STR(ask(c, "return tostring(confab.release('k5'))"), "ok true");
    CHECK_STR(ask(c, "local got; confab.claim('one more', 'v', function(g) got = g end)\n"
                     "return tostring(got)"),
              "ok true");
    CHECK_INT(claims_count(), CLAIMS_MAX);
    claims_clear();
    test_conn_close(c);
    script_shutdown();
}

/* An event the script has no hook for enters no Lua at all (no call counted); one it has a hook
 * for still does. (Joins and leaves inside a hook are nested calls, never counted: the
 * disconnect, an outermost call, shows it.) */
TEST(script_event_without_a_hook_calls_nothing)
{
    setup();
    char err[256];
    CHECK_INT(load("local confab = require 'confab'\n"
                   "confab.on('message', function(ev) confab.join(ev.id, 'r')\n"
                   "  confab.send(ev.id, 'got ' .. ev.data) end)\n",
                   err, sizeof err),
              0);
    struct conn *c = test_conn_open();
    uint64_t before[HOOK_KINDS];
    memcpy(before, metrics.hook_calls, sizeof before);
    CHECK_STR(ask(c, "hi"), "got hi");
    script_disconnect(c, 1000, "bye"); /* leaves r, then disconnects: neither has a hook */
    CHECK_INT(metrics.hook_calls[HOOK_MESSAGE] - before[HOOK_MESSAGE], 1);
    CHECK_INT(metrics.hook_calls[HOOK_LEAVE] - before[HOOK_LEAVE], 0);
    CHECK_INT(metrics.hook_calls[HOOK_DISCONNECT] - before[HOOK_DISCONNECT], 0);
    /* With leave and disconnect hooks, each is called. */
    CHECK_INT(load("local confab = require 'confab'\n"
                   "confab.on('leave', function(ev) end)\n"
                   "confab.on('disconnect', function(ev) end)\n"
                   "confab.on('message', function(ev) confab.join(ev.id, ev.data) end)\n",
                   err, sizeof err),
              0);
    ask(c, "x");
    script_disconnect(c, 1000, "bye");
    CHECK_INT(metrics.hook_calls[HOOK_LEAVE] - before[HOOK_LEAVE], 1);
    CHECK_INT(metrics.hook_calls[HOOK_DISCONNECT] - before[HOOK_DISCONNECT], 1);
    /* A script with no message hook: a message enters no Lua. */
    CHECK_INT(load("local confab = require 'confab'\n"
                   "confab.on('disconnect', function(ev) end)\n",
                   err, sizeof err),
              0);
    uint64_t messages = metrics.hook_calls[HOOK_MESSAGE];
    script_message(c, 0, (const uint8_t *)"hi", 2);
    CHECK_INT(metrics.hook_calls[HOOK_MESSAGE] - messages, 0);
    test_conn_close(c);
    script_shutdown();
}
