/* script_callback: Lua functions waiting for an asynchronous completion (see script_int.h).
 * Each is anchored in its state's registry and linked into the state's list, so a reload or
 * shutdown orphans it before the state closes: a completion after that frees it silently. */
#include <lauxlib.h>
#include <stdlib.h>

#include "script_int.h"

struct script_cb {
    struct state *s; /* NULL once orphaned */
    struct script_cb *prev, *next;
    int ref;         /* registry reference to the function, LUA_NOREF for none */
};

static void unlink_cb(struct script_cb *cb)
{
    if (!cb->s)
        return;
    if (cb->prev)
        cb->prev->next = cb->next;
    else
        cb->s->cbs = cb->next;
    if (cb->next)
        cb->next->prev = cb->prev;
    cb->prev = cb->next = NULL;
}

struct script_cb *script_cb_new(lua_State *L, int idx)
{
    struct script_cb *cb = calloc(1, sizeof *cb);
    if (!cb)
        return NULL;
    cb->s = script_state(L);
    cb->ref = LUA_NOREF;
    if (!lua_isnoneornil(L, idx)) {
        lua_pushvalue(L, idx);
        cb->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    cb->next = cb->s->cbs;
    if (cb->next)
        cb->next->prev = cb;
    cb->s->cbs = cb;
    return cb;
}

void script_cb_drop(struct script_cb *cb)
{
    if (!cb)
        return;
    if (cb->s && cb->ref != LUA_NOREF)
        luaL_unref(cb->s->L, LUA_REGISTRYINDEX, cb->ref);
    unlink_cb(cb);
    free(cb);
}

lua_State *script_cb_begin(struct script_cb *cb)
{
    if (!cb->s || cb->s->closing || cb->ref == LUA_NOREF) {
        script_cb_drop(cb);
        return NULL;
    }
    lua_State *L = cb->s->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, cb->ref);
    return L;
}

void script_cb_finish(struct script_cb *cb, lua_State *L, int nargs, const char *what)
{
    script_cb_drop(cb);
    script_pcall(L, what, nargs, 0);
}

void script_cb_orphan_all(struct state *s)
{
    while (s->cbs) {
        struct script_cb *cb = s->cbs;
        s->cbs = cb->next;
        cb->prev = cb->next = NULL;
        cb->s = NULL; /* its registry entry goes with the state */
        cb->ref = LUA_NOREF;
    }
}
