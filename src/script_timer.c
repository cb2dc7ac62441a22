/* script_timer: confab.after and confab.every. A timer is a full userdata holding a libev timer
 * and, as its user value, the function to call. While active it is anchored in the registry and
 * linked into its state's list, so a reload or shutdown can stop every timer of a state before
 * the state is closed; a closing state cannot start new ones.
 *
 * Timer work per pass of the loop is bounded: once timer callbacks of one pass have run for
 * --hook-timeout in total, the timers still due wait for the next pass, after the loop has
 * served the network. So timers, however many, never starve the clients. */
#include <lauxlib.h>
#include <string.h>
#include <time.h>

#include "script_int.h"

struct lua_timer {
    ev_timer w;
    struct state *s;
    struct lua_timer *prev, *next;
    int ref;    /* registry reference to the timer's userdata while active, else LUA_NOREF */
    int repeat;
};

#define TIMER_META "confab.timer"

/* Stops t and drops its anchor (no-op when it is not active). */
static void timer_stop(struct lua_timer *t)
{
    if (t->ref == LUA_NOREF)
        return;
    ev_timer_stop(script_loop, &t->w);
    luaL_unref(t->s->L, LUA_REGISTRYINDEX, t->ref);
    t->ref = LUA_NOREF;
    if (t->prev)
        t->prev->next = t->next;
    else
        t->s->timers = t->next;
    if (t->next)
        t->next->prev = t->prev;
    t->prev = t->next = NULL;
}

void script_timer_stop_all(struct state *s)
{
    while (s->timers)
        timer_stop(s->timers);
}

/* The pass of the loop: when its first timer callback started (0: none yet this pass). */
static ev_prepare pass_watcher;
static double pass_started;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void on_pass(EV_P_ ev_prepare *w, int revents)
{
    pass_started = 0;
}

void script_timer_init(void)
{
    if (ev_is_active(&pass_watcher))
        return;
    ev_prepare_init(&pass_watcher, on_pass);
    ev_prepare_start(script_loop, &pass_watcher);
    ev_unref(script_loop); /* it does not keep the loop running */
}

/* Whether this pass's timer budget is spent (starting the pass's clock on its first timer). */
static int pass_budget_spent(void)
{
    double now = now_ms();
    if (pass_started == 0) {
        pass_started = now;
        return 0;
    }
    return now - pass_started >= script_limits.hook_timeout_ms;
}

static void on_timer(EV_P_ ev_timer *w, int revents)
{
    struct lua_timer *t = (struct lua_timer *)w;
    if (pass_budget_spent()) {
        /* Due again at once: it runs in the next pass, after the network's events. */
        ev_timer_stop(EV_A_ w);
        ev_timer_set(w, 0, t->repeat ? w->repeat : 0);
        ev_timer_start(EV_A_ w);
        return;
    }
    lua_State *L = t->s->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->ref);
    lua_getiuservalue(L, -1, 1);
    lua_remove(L, -2);
    if (!t->repeat)
        timer_stop(t);
    script_pcall(L, "timer", 0, 0);
}

/* confab.after(secs, fn) / confab.every(secs, fn) → timer */
static int new_timer(lua_State *L, int repeat)
{
    lua_Number secs = luaL_checknumber(L, 1);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    luaL_argcheck(L, secs >= 0 && secs < 1e8, 1, "seconds out of range");
    luaL_argcheck(L, !repeat || secs >= 0.001, 1, "interval must be at least 0.001");
    struct state *s = script_state(L);
    if (s->closing)
        return luaL_error(L, "no timers can be started while the script is being closed");
    struct lua_timer *t = lua_newuserdatauv(L, sizeof *t, 1);
    memset(t, 0, sizeof *t);
    lua_pushvalue(L, 2);
    lua_setiuservalue(L, -2, 1);
    luaL_setmetatable(L, TIMER_META);
    t->s = s;
    ev_timer_init(&t->w, on_timer, secs, repeat ? secs : 0);
    t->repeat = repeat;
    lua_pushvalue(L, -1);
    t->ref = luaL_ref(L, LUA_REGISTRYINDEX); /* anchored while active */
    t->next = t->s->timers;
    if (t->next)
        t->next->prev = t;
    t->s->timers = t;
    ev_timer_start(script_loop, &t->w);
    return 1;
}

int script_timer_after(lua_State *L) { return new_timer(L, 0); }
int script_timer_every(lua_State *L) { return new_timer(L, 1); }

/* timer:cancel() → whether it was still active */
static int l_timer_cancel(lua_State *L)
{
    struct lua_timer *t = luaL_checkudata(L, 1, TIMER_META);
    int was_active = t->ref != LUA_NOREF;
    timer_stop(t);
    lua_pushboolean(L, was_active);
    return 1;
}

void script_timer_open(lua_State *L)
{
    luaL_newmetatable(L, TIMER_META);
    lua_newtable(L);
    lua_pushcfunction(L, l_timer_cancel);
    lua_setfield(L, -2, "cancel");
    lua_setfield(L, -2, "__index");
    lua_pushliteral(L, TIMER_META);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 1);
}
