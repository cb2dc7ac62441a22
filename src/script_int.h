/* script_int: what the parts of the script runtime share, private to them. script.c owns the
 * states, loading, reload and protected dispatch; script_limit.c the time limit; sandbox.c builds
 * the globals a script sees; confab_lib.c is the `confab` module; script_timer.c its timers. */
#ifndef CONFAB_SCRIPT_INT_H
#define CONFAB_SCRIPT_INT_H

#include <ev.h>
#include <lua.h>
#include <stddef.h>

#include "script.h"

enum hook_event { H_CONNECT, H_MESSAGE, H_JOIN, H_LEAVE, H_DISCONNECT, H_RELOAD, H_EPOCH, H_ROSTER,
                  H_COUNT };

/* "connect", "message", ... in enum order, NULL-terminated (for luaL_checkoption). */
extern const char *const script_hook_names[];

struct lua_timer;

/* One Lua state and what belongs to it. A reload builds a new one beside the running one. The
 * state is the allocator's userdata: script_state(L) finds it from any coroutine. */
struct state {
    lua_State *L;
    size_t mem_used, mem_limit;
    int loading;              /* the main chunk is running: globals and hooks may be declared */
    int closing;              /* lua_close is running: nothing new may be started */
    unsigned hooks[H_COUNT];  /* hooks registered per event: an event nobody hooks costs no call */
    struct lua_timer *timers; /* active timers */
    struct script_cb *cbs;    /* callbacks waiting for a completion (script_callback.c) */
    char *path;
};

/* The loop (for timers) and the limits given to script_init. */
extern struct ev_loop *script_loop;
extern struct script_config script_limits;

/* Registry keys (their addresses are unique): the hook lists (a table of H_COUNT lists of
 * {fn=, prio=}), and the original string.format (for confab.log). */
extern char script_key_hooks, script_key_format;

/* The state L belongs to. */
struct state *script_state(lua_State *L);

/* script_limit.c: the time limit (see there). init once; state: installs the hook in a new
 * state; enter/leave bracket every call into Lua (the outermost one, given what it is and its
 * limit in ms, sets the deadline); switch tells which thread runs now (coroutine resume and
 * back), returning the previous one. */
void script_limit_init(void);
void script_limit_state(lua_State *L);
void script_limit_enter(lua_State *L, const char *what, unsigned ms);
void script_limit_leave(void);
lua_State *script_limit_switch(lua_State *co);

/* The running call passed its time limit: the message to raise again (see sandbox.c's
 * abort-through wrappers), else NULL. */
const char *script_abort_msg(void);

/* Raises the abort when the running call passed its time limit (for C code that loops: the
 * pattern functions, load's reader). */
void script_limit_check(lua_State *L);

/* Calls the function below nargs arguments on the stack, protected and time-bounded, leaving
 * nres results. Returns 0, or -1 after logging the error with its traceback. */
int script_pcall(lua_State *L, const char *what, int nargs, int nres);

/* Runs event's handlers with the event table on top of the stack (popped). Returns 1 leaving
 * two values (a handler's first non-nil result and the one after it), 0 when no handler
 * returned a value, -1 when one failed (the event is dropped there). */
int script_dispatch(lua_State *L, enum hook_event e);

/* Fires join or leave for c and room (reason may be NULL), results dropped. */
void script_fire_membership(lua_State *L, enum hook_event e, struct conn *c, const char *room,
                            const char *reason);

/* sandbox.c: builds the sandboxed globals (libraries, require, load, print, strict globals).
 * A lua_CFunction: run it with lua_pcall. */
int sandbox_open(lua_State *L);

/* confab_lib.c: the `confab` module table (luaL_requiref-style opener). */
int luaopen_confab(lua_State *L);
/* Pushes this node's table's claim of key as value, node (nil, nil when free): 2 values. */
int confab_push_claim(lua_State *L, const char *key, size_t klen);

/* script_timer.c: init once (the per-pass budget's watcher); confab.after and confab.every;
 * the timer metatable; stopping a state's timers before it closes. */
void script_timer_init(void);
int script_timer_after(lua_State *L);
int script_timer_every(lua_State *L);
void script_timer_open(lua_State *L);
void script_timer_stop_all(struct state *s);

/* script_callback.c: a Lua function kept for a completion that comes later (confab.post's done,
 * confab.replay's fn). new anchors the function at idx (nil: no function) in L's state; a closing
 * state orphans its callbacks (they are then freed without running). begin pushes the function
 * and returns the state's L, or NULL when there is nothing to call (the callback is freed then);
 * after begin, push the arguments and call script_cb_finish (runs it protected, frees it). */
struct script_cb;
struct script_cb *script_cb_new(lua_State *L, int idx);
lua_State *script_cb_begin(struct script_cb *cb);
void script_cb_finish(struct script_cb *cb, lua_State *L, int nargs, const char *what);
void script_cb_drop(struct script_cb *cb);
void script_cb_orphan_all(struct state *s);
/* The running script's state (NULL before the first load). */
lua_State *script_current(void);

#endif
