#include "script.h"

#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "frame.h"
#include "hub.h"
#include "log.h"
#include "utf8.h"

enum hook_event { H_CONNECT, H_MESSAGE, H_JOIN, H_LEAVE, H_DISCONNECT, H_RELOAD, H_COUNT };
static const char *const hook_names[] = {"connect", "message", "join", "leave",
                                         "disconnect", "reload", NULL};

struct lua_timer;

/* One Lua state and what belongs to it. A reload builds a new one beside the running one. */
struct state {
    lua_State *L;
    size_t mem_used, mem_limit;
    int loading;              /* the main chunk is running: globals may be declared */
    struct lua_timer *timers; /* active timers */
    char *path;
};

struct lua_timer {
    ev_timer w;
    struct state *s;
    struct lua_timer *prev, *next;
    int ref;    /* registry reference to the timer's userdata while active, else LUA_NOREF */
    int repeat;
};

static struct ev_loop *loop;
static struct script_config limits;
static struct state *cur;

/* The running call into Lua: nested calls (a join hook fired by confab.join inside a message
 * hook) share the outermost call's deadline. */
static struct {
    int depth;
    struct timespec deadline;
    const char *what;
    unsigned limit_ms;
    int timed_out;
    char abort_msg[256]; /* "file:line: what exceeded its time limit ...", once timed out */
} call;

/* Registry keys (their addresses are unique). */
static char key_hooks, key_modules, key_format;

/* ---- memory cap ---------------------------------------------------------------------- */

static void *l_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct state *s = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        s->mem_used -= old;
        return NULL;
    }
    if (nsize > old && s->mem_used - old + nsize > s->mem_limit)
        return NULL; /* Lua raises "not enough memory" in the running hook */
    void *p = realloc(ptr, nsize);
    if (p)
        s->mem_used = s->mem_used - old + nsize;
    return p;
}

/* ---- time limit ---------------------------------------------------------------------- */

static int deadline_passed(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > call.deadline.tv_sec ||
           (now.tv_sec == call.deadline.tv_sec && now.tv_nsec >= call.deadline.tv_nsec);
}

/* Runs every 1000 VM instructions. Once the deadline passed it raises at every tick, so a
 * script's own pcall cannot swallow the abort and loop on. */
static void count_hook(lua_State *L, lua_Debug *ar)
{
    if (call.depth == 0)
        return;
    if (!call.timed_out) {
        if (!deadline_passed())
            return;
        call.timed_out = 1;
        lua_getinfo(L, "Sl", ar);
        snprintf(call.abort_msg, sizeof call.abort_msg,
                 "%s:%d: %s exceeded its time limit of %u ms and was aborted", ar->short_src,
                 ar->currentline, call.what, call.limit_ms);
    }
    lua_pushstring(L, call.abort_msg);
    lua_error(L);
}

/* Starts the outermost call's clock: it may run for ms milliseconds. */
static void call_start(const char *what, unsigned ms)
{
    clock_gettime(CLOCK_MONOTONIC, &call.deadline);
    call.deadline.tv_sec += ms / 1000;
    call.deadline.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (call.deadline.tv_nsec >= 1000000000L) {
        call.deadline.tv_sec++;
        call.deadline.tv_nsec -= 1000000000L;
    }
    call.what = what;
    call.limit_ms = ms;
    call.timed_out = 0;
}

static int msgh(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (!msg)
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* Calls the function below nargs arguments on the stack, protected and time-bounded, leaving
 * nres results. Returns 0, or -1 after logging the error with its traceback. */
static int pcall_guarded(lua_State *L, const char *what, int nargs, int nres)
{
    if (call.depth == 0)
        call_start(what, limits.hook_timeout_ms);
    int base = lua_gettop(L) - nargs;
    lua_pushcfunction(L, msgh);
    lua_insert(L, base);
    call.depth++;
    int rc = lua_pcall(L, nargs, nres, base);
    call.depth--;
    lua_remove(L, base);
    if (rc == LUA_OK)
        return 0;
    /* One line per event: the traceback's lines are joined. */
    const char *msg = lua_tostring(L, -1);
    luaL_gsub(L, msg ? msg : "(no message)", "\n\t", " | ");
    luaL_gsub(L, lua_tostring(L, -1), "\n", " | ");
    log_error("hook %s failed: %s", what, lua_tostring(L, -1));
    lua_pop(L, 3);
    return -1;
}

/* ---- hooks --------------------------------------------------------------------------- */

/* Runs event's handlers with the table on top of the stack (popped). Returns 1 leaving two
 * values (a handler's first non-nil result and the one after it), 0 when no handler returned
 * a value, -1 when one failed (the event is dropped there). */
static int dispatch(lua_State *L, enum hook_event e)
{
    int ev = lua_gettop(L);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &key_hooks);
    lua_rawgeti(L, -1, e + 1);
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, ev + 2, i);
        lua_getfield(L, -1, "fn");
        lua_remove(L, -2);
        lua_pushvalue(L, ev);
        if (pcall_guarded(L, hook_names[e], 1, 2) < 0) {
            lua_settop(L, ev - 1);
            return -1;
        }
        if (!lua_isnil(L, -2)) {
            lua_copy(L, -2, ev);
            lua_copy(L, -1, ev + 1);
            lua_settop(L, ev + 1);
            return 1;
        }
        lua_pop(L, 2);
    }
    lua_settop(L, ev - 1);
    return 0;
}

/* confab.on(name, fn [, priority]) */
static int l_on(lua_State *L)
{
    int e = luaL_checkoption(L, 1, NULL, hook_names);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_Integer prio = luaL_optinteger(L, 3, 0);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &key_hooks);
    lua_rawgeti(L, -1, e + 1);
    int list = lua_gettop(L);
    lua_Integer n = (lua_Integer)lua_rawlen(L, list);
    /* Keep the list sorted by descending priority, ties in registration order. */
    lua_Integer at = n + 1;
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, list, i);
        lua_getfield(L, -1, "prio");
        lua_Integer p = lua_tointeger(L, -1);
        lua_pop(L, 2);
        if (prio > p) {
            at = i;
            break;
        }
    }
    for (lua_Integer i = n; i >= at; i--) {
        lua_rawgeti(L, list, i);
        lua_rawseti(L, list, i + 1);
    }
    lua_createtable(L, 0, 2);
    lua_pushvalue(L, 2);
    lua_setfield(L, -2, "fn");
    lua_pushinteger(L, prio);
    lua_setfield(L, -2, "prio");
    lua_rawseti(L, list, at);
    return 0;
}

/* ---- arguments ----------------------------------------------------------------------- */

/* The connection with the id in argument arg, or NULL when it is gone. Sending and joining need
 * an open WebSocket; reading and setting attributes also work while it closes (in the
 * disconnect hook). */
static struct conn *check_conn_state(lua_State *L, int arg, int need_open)
{
    lua_Integer id = luaL_checkinteger(L, arg);
    struct conn *c = id > 0 ? hub_find((uint64_t)id) : NULL;
    if (!c)
        return NULL;
    if (need_open)
        return c->state == CONN_WS && !(c->flags & CONN_CLOSE_SENT) ? c : NULL;
    /* A dead connection is still readable until its disconnect has been reported. */
    return c->state != CONN_HTTP ? c : NULL;
}

#define check_conn(L, arg) check_conn_state(L, arg, 1)
#define check_known(L, arg) check_conn_state(L, arg, 0)

static int stale(lua_State *L)
{
    luaL_pushfail(L);
    lua_pushliteral(L, "no such connection");
    return 2;
}

static const char *check_room(lua_State *L, int arg, size_t *len)
{
    const char *name = luaL_checklstring(L, arg, len);
    luaL_argcheck(L, *len > 0 && *len <= HUB_ROOM_NAME_MAX, arg,
                  "room name must be 1 to 64 bytes");
    return name;
}

/* ---- sending ------------------------------------------------------------------------- */

static struct frame *check_frame(lua_State *L, int data_arg, int binary)
{
    size_t len;
    const char *data = luaL_checklstring(L, data_arg, &len);
    if (!binary && !utf8_valid(data, len))
        luaL_argerror(L, data_arg, "text must be valid UTF-8 (send binary instead)");
    struct frame *f = frame_ws(binary ? FRAME_BINARY : FRAME_TEXT, data, len);
    if (!f)
        luaL_error(L, "not enough memory");
    return f;
}

/* confab.send(id, data [, binary]) */
static int l_send(lua_State *L)
{
    struct conn *c = check_conn(L, 1);
    int binary = lua_toboolean(L, 3);
    struct frame *f = check_frame(L, 2, binary);
    if (!c) {
        frame_unref(f);
        return stale(L);
    }
    int rc = hub_send(c, f);
    frame_unref(f);
    if (rc < 0) {
        luaL_pushfail(L);
        lua_pushliteral(L, "connection is closing");
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* confab.broadcast(room, data [, except_id [, binary]]) */
static int l_broadcast(lua_State *L)
{
    size_t len;
    const char *name = check_room(L, 1, &len);
    luaL_checkstring(L, 2);
    lua_Integer except_id = luaL_optinteger(L, 3, 0);
    int binary = lua_toboolean(L, 4);
    struct room *r = hub_room(name, len);
    if (!r || r->members_len == 0) {
        lua_pushinteger(L, 0);
        return 1;
    }
    struct frame *f = check_frame(L, 2, binary);
    struct conn *except = except_id > 0 ? hub_find((uint64_t)except_id) : NULL;
    size_t n = hub_broadcast(r, f, except);
    frame_unref(f);
    lua_pushinteger(L, (lua_Integer)n);
    return 1;
}

/* confab.close(id [, code [, reason]]) */
static int l_close(lua_State *L)
{
    struct conn *c = check_conn(L, 1);
    lua_Integer code = luaL_optinteger(L, 2, 1000);
    const char *reason = luaL_optstring(L, 3, "");
    luaL_argcheck(L, (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
                     (code >= 3000 && code <= 4999), 2, "not a close code a server may send");
    if (!c)
        return stale(L);
    hub_close(c, (uint16_t)code, reason);
    lua_pushboolean(L, 1);
    return 1;
}

/* ---- rooms --------------------------------------------------------------------------- */

static void fire_membership(lua_State *L, enum hook_event e, struct conn *c, const char *room,
                            const char *reason)
{
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, (lua_Integer)c->id);
    lua_setfield(L, -2, "id");
    lua_pushstring(L, room);
    lua_setfield(L, -2, "room");
    if (reason) {
        lua_pushstring(L, reason);
        lua_setfield(L, -2, "reason");
    }
    if (dispatch(L, e) > 0)
        lua_pop(L, 2);
}

/* confab.join(id, room) */
static int l_join(lua_State *L)
{
    struct conn *c = check_conn(L, 1);
    size_t len;
    const char *room = check_room(L, 2, &len);
    if (!c)
        return stale(L);
    int rc = hub_join(c, room, len);
    if (rc < 0)
        return luaL_error(L, "not enough memory");
    if (rc == 1)
        fire_membership(L, H_JOIN, c, room, NULL);
    lua_pushboolean(L, rc == 1);
    return 1;
}

/* confab.leave(id, room) */
static int l_leave(lua_State *L)
{
    struct conn *c = check_conn(L, 1);
    size_t len;
    const char *room = check_room(L, 2, &len);
    if (!c)
        return stale(L);
    int rc = hub_leave(c, room, len);
    if (rc == 1)
        fire_membership(L, H_LEAVE, c, room, "leave");
    lua_pushboolean(L, rc == 1);
    return 1;
}

/* confab.members(room) */
static int l_members(lua_State *L)
{
    size_t len;
    const char *name = check_room(L, 1, &len);
    struct room *r = hub_room(name, len);
    uint32_t n = r ? r->members_len : 0;
    lua_createtable(L, (int)n, 0);
    for (uint32_t i = 0; i < n; i++) {
        lua_pushinteger(L, (lua_Integer)r->members[i]->conn->id);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

static void push_room_count(struct room *r, void *arg)
{
    lua_State *L = arg;
    lua_pushinteger(L, r->members_len);
    lua_setfield(L, -2, r->name);
}

/* confab.rooms() */
static int l_rooms(lua_State *L)
{
    lua_newtable(L);
    hub_each_room(push_room_count, L);
    return 1;
}

/* confab.rooms_of(id) */
static int l_rooms_of(lua_State *L)
{
    struct conn *c = check_known(L, 1);
    if (!c)
        return stale(L);
    lua_createtable(L, c->rooms_len, 0);
    for (uint16_t i = 0; i < c->rooms_len; i++) {
        lua_pushstring(L, c->rooms[i]->room->name);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* ---- attributes and connections -------------------------------------------------------- */

/* confab.set(id, key, value) */
static int l_set(lua_State *L)
{
    struct conn *c = check_known(L, 1);
    const char *key = luaL_checkstring(L, 2);
    int t = lua_type(L, 3);
    luaL_argcheck(L, t == LUA_TNIL || t == LUA_TSTRING || t == LUA_TNUMBER || t == LUA_TBOOLEAN,
                  3, "value must be a string, number, boolean or nil");
    if (!c)
        return stale(L);
    int rc = 0;
    size_t len;
    const char *s;
    switch (t) {
    case LUA_TNIL:
        hub_attr_del(c, key);
        break;
    case LUA_TSTRING:
        s = lua_tolstring(L, 3, &len);
        rc = hub_attr_set(c, key, ATTR_STRING, 0, 0, s, len);
        break;
    case LUA_TNUMBER:
        if (lua_isinteger(L, 3))
            rc = hub_attr_set(c, key, ATTR_INTEGER, lua_tointeger(L, 3), 0, NULL, 0);
        else
            rc = hub_attr_set(c, key, ATTR_NUMBER, 0, lua_tonumber(L, 3), NULL, 0);
        break;
    case LUA_TBOOLEAN:
        rc = hub_attr_set(c, key, ATTR_BOOLEAN, lua_toboolean(L, 3), 0, NULL, 0);
        break;
    }
    if (rc < 0)
        return luaL_error(L, "not enough memory");
    lua_pushboolean(L, 1);
    return 1;
}

/* confab.get(id, key) */
static int l_get(lua_State *L)
{
    struct conn *c = check_known(L, 1);
    const char *key = luaL_checkstring(L, 2);
    if (!c)
        return stale(L);
    const struct attr *a = hub_attr_get(c, key);
    if (!a) {
        lua_pushnil(L);
        return 1;
    }
    switch (a->type) {
    case ATTR_STRING: lua_pushlstring(L, a->key + strlen(a->key) + 1, a->v.len); break;
    case ATTR_INTEGER: lua_pushinteger(L, a->v.i); break;
    case ATTR_NUMBER: lua_pushnumber(L, a->v.n); break;
    default: lua_pushboolean(L, a->v.b); break;
    }
    return 1;
}

static void push_open_id(struct conn *c, void *arg)
{
    lua_State *L = arg;
    if (c->state == CONN_WS && (c->flags & CONN_OPENED)) {
        lua_pushinteger(L, (lua_Integer)c->id);
        lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
    }
}

/* confab.connections() */
static int l_connections(lua_State *L)
{
    lua_createtable(L, (int)hub_count(), 0);
    hub_each(push_open_id, L);
    /* uthash iterates in insertion order, which is id order. */
    return 1;
}

/* confab.info(id) */
static int l_info(lua_State *L)
{
    struct conn *c = check_known(L, 1);
    if (!c)
        return stale(L);
    static const char *const fields[] = {"remote", "path", "query", "subprotocol"};
    lua_createtable(L, 0, 4);
    const char *p = c->meta;
    for (int i = 0; i < 4 && p; i++) {
        if (*p || i < 3) {
            lua_pushstring(L, p);
            lua_setfield(L, -2, fields[i]);
        }
        p += strlen(p) + 1;
    }
    return 1;
}

/* ---- history ------------------------------------------------------------------------- */

/* confab.history_add(room, id, data) */
static int l_history_add(lua_State *L)
{
    size_t rlen, len;
    const char *room = check_room(L, 1, &rlen);
    lua_Integer id = luaL_checkinteger(L, 2);
    const char *data = luaL_checklstring(L, 3, &len);
    luaL_argcheck(L, id > 0, 2, "id must be positive");
    int rc = hub_history_add(room, rlen, (uint64_t)id, data, len);
    if (rc == -1)
        return luaL_error(L, "history id %I is not above the room's last id %I", id,
                          (lua_Integer)hub_history_last(room, rlen));
    if (rc < 0)
        return luaL_error(L, "not enough memory");
    lua_pushboolean(L, 1);
    return 1;
}

/* confab.history_last(room) */
static int l_history_last(lua_State *L)
{
    size_t rlen;
    const char *room = check_room(L, 1, &rlen);
    lua_pushinteger(L, (lua_Integer)hub_history_last(room, rlen));
    return 1;
}

static void push_entry(const struct hist_entry *e, void *arg)
{
    lua_State *L = arg;
    lua_pushlstring(L, e->data, e->len);
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
}

/* confab.history(room [, after_id]) → list, complete */
static int l_history(lua_State *L)
{
    size_t rlen;
    const char *room = check_room(L, 1, &rlen);
    lua_Integer after = luaL_optinteger(L, 2, 0);
    lua_newtable(L);
    int complete = hub_history_each(room, rlen, after > 0 ? (uint64_t)after : 0, push_entry, L);
    lua_pushboolean(L, complete);
    return 2;
}

/* ---- time and logging ---------------------------------------------------------------- */

static int l_now(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    lua_pushinteger(L, (lua_Integer)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
    return 1;
}

/* confab.log(level, fmt, ...) */
static int l_log(lua_State *L)
{
    static const char *const levels[] = {"debug", "info", "warn", "error", NULL};
    int level = luaL_checkoption(L, 1, NULL, levels);
    int n = lua_gettop(L);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &key_format);
    lua_rotate(L, 2, 1);
    lua_call(L, n - 1, 1);
    log_msg((enum log_level)level, "script: %s", lua_tostring(L, -1));
    return 0;
}

/* print(...) logs at info, so a script's debugging output lands with the server's. */
static int l_print(lua_State *L)
{
    luaL_Buffer b;
    int n = lua_gettop(L);
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        if (i > 1)
            luaL_addchar(&b, '\t');
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    log_info("script: %s", lua_tostring(L, -1));
    return 0;
}

/* ---- timers -------------------------------------------------------------------------- */

static void timer_stop(struct lua_timer *t)
{
    if (t->ref == LUA_NOREF)
        return;
    ev_timer_stop(loop, &t->w);
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

static void on_timer(EV_P_ ev_timer *w, int revents)
{
    struct lua_timer *t = (struct lua_timer *)w;
    lua_State *L = t->s->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->ref);
    lua_getiuservalue(L, -1, 1);
    lua_remove(L, -2);
    if (!t->repeat)
        timer_stop(t);
    pcall_guarded(L, "timer", 0, 0);
}

static int new_timer(lua_State *L, int repeat)
{
    lua_Number secs = luaL_checknumber(L, 1);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    luaL_argcheck(L, secs >= 0 && secs < 1e8, 1, "seconds out of range");
    luaL_argcheck(L, !repeat || secs >= 0.001, 1, "interval must be at least 0.001");
    struct lua_timer *t = lua_newuserdatauv(L, sizeof *t, 1);
    memset(t, 0, sizeof *t);
    lua_pushvalue(L, 2);
    lua_setiuservalue(L, -2, 1);
    luaL_setmetatable(L, "confab.timer");
    lua_getallocf(L, (void **)&t->s);
    ev_timer_init(&t->w, on_timer, secs, repeat ? secs : 0);
    t->repeat = repeat;
    lua_pushvalue(L, -1);
    t->ref = luaL_ref(L, LUA_REGISTRYINDEX); /* anchored while active */
    t->next = t->s->timers;
    if (t->next)
        t->next->prev = t;
    t->s->timers = t;
    ev_timer_start(loop, &t->w);
    return 1;
}

static int l_after(lua_State *L) { return new_timer(L, 0); }
static int l_every(lua_State *L) { return new_timer(L, 1); }

static int l_timer_cancel(lua_State *L)
{
    struct lua_timer *t = luaL_checkudata(L, 1, "confab.timer");
    int was_active = t->ref != LUA_NOREF;
    timer_stop(t);
    lua_pushboolean(L, was_active);
    return 1;
}

/* ---- the sandbox --------------------------------------------------------------------- */

/* require: only the modules the sandbox lists. */
static int l_require(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &key_modules);
    if (lua_getfield(L, -1, name) == LUA_TNIL)
        return luaL_error(L, "module '%s' is not available (allowed: confab, cjson, cjson.safe)",
                          name);
    return 1;
}

/* load: text chunks only; the environment defaults to the script's globals. */
static int l_load(lua_State *L)
{
    int n = lua_gettop(L);
    int t = lua_type(L, 1);
    luaL_argcheck(L, t == LUA_TSTRING || t == LUA_TFUNCTION, 1, "string or function expected");
    const char *mode = luaL_optstring(L, 3, "t");
    if (strcmp(mode, "t") != 0)
        return luaL_error(L, "load: only text chunks are allowed (mode 't')");
    lua_settop(L, n < 4 ? 3 : 4); /* keep an explicit env argument, even nil */
    lua_pushliteral(L, "t");
    lua_replace(L, 3);
    lua_pushvalue(L, lua_upvalueindex(1)); /* the original load */
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

/* pcall, xpcall and coroutine.resume catch errors, and so would catch the time limit's abort
 * and let a loop go on: once the limit passed, the abort goes through them. */
static int l_abort_through(lua_State *L)
{
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    if (call.timed_out) {
        lua_pushstring(L, call.abort_msg);
        return lua_error(L);
    }
    return lua_gettop(L);
}

static void wrap_abort_through(lua_State *L, const char *lib, const char *name)
{
    if (lib) {
        lua_getglobal(L, lib);
        lua_getfield(L, -1, name);
    } else {
        lua_getglobal(L, name);
    }
    lua_pushcclosure(L, l_abort_through, 1);
    if (lib) {
        lua_setfield(L, -2, name);
        lua_pop(L, 1);
    } else {
        lua_setglobal(L, name);
    }
}

/* collectgarbage: measuring and collecting are fine; stopping or retuning the collector is not. */
static int l_collectgarbage(lua_State *L)
{
    static const char *const allowed[] = {"collect", "count", "step", "isrunning", NULL};
    luaL_checkoption(L, 1, "collect", allowed);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

/* A new global may be declared while the script loads; afterwards assigning one is a typo. */
static int l_strict_newindex(lua_State *L)
{
    struct state *s;
    lua_getallocf(L, (void **)&s);
    if (!s->loading) {
        const char *name = lua_tostring(L, 2);
        return luaL_error(L, "assignment to undeclared global '%s' (declare it at load time or "
                             "use a local)", name ? name : "?");
    }
    lua_rawset(L, 1);
    return 0;
}

static const luaL_Reg confab_funcs[] = {
    {"on", l_on},
    {"send", l_send},
    {"broadcast", l_broadcast},
    {"close", l_close},
    {"join", l_join},
    {"leave", l_leave},
    {"members", l_members},
    {"rooms", l_rooms},
    {"rooms_of", l_rooms_of},
    {"set", l_set},
    {"get", l_get},
    {"connections", l_connections},
    {"info", l_info},
    {"history_add", l_history_add},
    {"history_last", l_history_last},
    {"history", l_history},
    {"now", l_now},
    {"log", l_log},
    {"after", l_after},
    {"every", l_every},
    {NULL, NULL},
};

static void remove_global(lua_State *L, const char *name)
{
    lua_pushnil(L);
    lua_setglobal(L, name);
}

/* Builds the sandboxed globals. Runs protected (lua_pcall of this function). */
static int setup_state(lua_State *L)
{
    /* The chosen libraries (linit.c: "copy this file to choose your own set"). */
    static const luaL_Reg libs[] = {
        {LUA_GNAME, luaopen_base},       {LUA_STRLIBNAME, luaopen_string},
        {LUA_TABLIBNAME, luaopen_table}, {LUA_MATHLIBNAME, luaopen_math},
        {LUA_UTF8LIBNAME, luaopen_utf8}, {LUA_COLIBNAME, luaopen_coroutine},
        {NULL, NULL},
    };
    for (const luaL_Reg *lib = libs; lib->func; lib++) {
        luaL_requiref(L, lib->name, lib->func, 1);
        lua_pop(L, 1);
    }

    /* Modules from the system: load them with the real package library, then drop it. */
    lua_newtable(L);
    luaL_requiref(L, LUA_LOADLIBNAME, luaopen_package, 1);
    lua_pop(L, 1);
    static const char *const system_modules[] = {"cjson", "cjson.safe"};
    for (size_t i = 0; i < 2; i++) {
        lua_getglobal(L, "require");
        lua_pushstring(L, system_modules[i]);
        lua_call(L, 1, 1);
        lua_setfield(L, -2, system_modules[i]);
    }
    remove_global(L, LUA_LOADLIBNAME);

    /* os: only the clock and the calendar. */
    luaL_requiref(L, LUA_OSLIBNAME, luaopen_os, 0);
    lua_createtable(L, 0, 3);
    static const char *const os_keep[] = {"time", "clock", "date", "difftime"};
    for (size_t i = 0; i < sizeof os_keep / sizeof *os_keep; i++) {
        lua_getfield(L, -2, os_keep[i]);
        lua_setfield(L, -2, os_keep[i]);
    }
    lua_setglobal(L, LUA_OSLIBNAME);
    lua_pop(L, 1);

    /* confab itself. */
    luaL_newlib(L, confab_funcs);
    lua_pushinteger(L, limits.epoch);
    lua_setfield(L, -2, "epoch");
    lua_pushvalue(L, -1);
    lua_setglobal(L, "confab");
    lua_setfield(L, -2, "confab");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &key_modules);

    luaL_newmetatable(L, "confab.timer");
    lua_newtable(L);
    lua_pushcfunction(L, l_timer_cancel);
    lua_setfield(L, -2, "cancel");
    lua_setfield(L, -2, "__index");
    lua_pushliteral(L, "confab.timer");
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 1);

    /* Hook lists, one per event. */
    lua_createtable(L, H_COUNT, 0);
    for (int i = 0; i < H_COUNT; i++) {
        lua_newtable(L);
        lua_rawseti(L, -2, i + 1);
    }
    lua_rawsetp(L, LUA_REGISTRYINDEX, &key_hooks);

    lua_getglobal(L, "string");
    lua_getfield(L, -1, "format");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &key_format);
    lua_pop(L, 1);

    /* Base library: no file access, text-only load, a tame collectgarbage, print to the log. */
    static const char *const base_drop[] = {"dofile", "loadfile", "require"};
    for (size_t i = 0; i < sizeof base_drop / sizeof *base_drop; i++)
        remove_global(L, base_drop[i]);
    lua_pushcfunction(L, l_require);
    lua_setglobal(L, "require");
    lua_getglobal(L, "load");
    lua_pushcclosure(L, l_load, 1);
    lua_setglobal(L, "load");
    lua_getglobal(L, "collectgarbage");
    lua_pushcclosure(L, l_collectgarbage, 1);
    lua_setglobal(L, "collectgarbage");
    lua_pushcfunction(L, l_print);
    lua_setglobal(L, "print");
    wrap_abort_through(L, NULL, "pcall");
    wrap_abort_through(L, NULL, "xpcall");
    wrap_abort_through(L, "coroutine", "resume");

    /* Strings share one metatable; the script may use it but not change it. */
    lua_pushliteral(L, "");
    lua_getmetatable(L, -1);
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 2);

    /* Globals: strict after load, and the metatable is locked. */
    lua_pushglobaltable(L);
    lua_createtable(L, 0, 2);
    lua_pushcfunction(L, l_strict_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushliteral(L, "the global table is protected");
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
    lua_pop(L, 1);
    return 0;
}

static void state_free(struct state *s)
{
    if (!s)
        return;
    while (s->timers)
        timer_stop(s->timers);
    if (s->L)
        lua_close(s->L);
    free(s->path);
    free(s);
}

/* A new state with path loaded and run. Returns NULL with err set on failure. */
static struct state *state_new(const char *path, char *err, size_t errlen)
{
    struct state *s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(path))) {
        free(s);
        snprintf(err, errlen, "%s: not enough memory", path);
        return NULL;
    }
    s->mem_limit = limits.memory;
    s->L = lua_newstate(l_alloc, s);
    if (!s->L) {
        snprintf(err, errlen, "%s: not enough memory", path);
        state_free(s);
        return NULL;
    }
    lua_State *L = s->L;
    lua_gc(L, LUA_GCGEN, 0, 0);
    lua_sethook(L, count_hook, LUA_MASKCOUNT, 1000);

    lua_pushcfunction(L, setup_state);
    if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
        snprintf(err, errlen, "%s: cannot set up Lua: %s", path, lua_tostring(L, -1));
        state_free(s);
        return NULL;
    }

    /* Text only: a precompiled chunk could break the VM's safety. */
    int rc = luaL_loadfilex(L, path, "t");
    if (rc != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        if (rc == LUA_ERRFILE)
            snprintf(err, errlen, "%s: cannot read script (%s)", path, strerror(errno));
        else
            snprintf(err, errlen, "%s", msg ? msg : "cannot load script");
        state_free(s);
        return NULL;
    }
    s->loading = 1;
    lua_pushcfunction(L, msgh);
    lua_insert(L, -2);
    /* Loading may do more work than one hook: ten times the limit, at least a second. */
    unsigned load_ms = limits.hook_timeout_ms * 10 > 1000 ? limits.hook_timeout_ms * 10 : 1000;
    call_start("script load", load_ms);
    call.depth++;
    rc = lua_pcall(L, 0, 0, -2);
    call.depth--;
    s->loading = 0;
    if (rc != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        /* The first line names file and line; the traceback follows. */
        const char *nl = msg ? strchr(msg, '\n') : NULL;
        snprintf(err, errlen, "%.*s", nl ? (int)(nl - msg) : (int)strlen(msg ? msg : ""),
                 msg ? msg : "error while loading");
        state_free(s);
        return NULL;
    }
    lua_pop(L, 1);
    return s;
}

/* ---- the interface ------------------------------------------------------------------- */

void script_init(struct ev_loop *l, const struct script_config *cfg)
{
    loop = l;
    limits = *cfg;
}

const char *script_path(void)
{
    return cur ? cur->path : NULL;
}

int script_check(const char *path, char *err, size_t errlen)
{
    struct state *s = state_new(path, err, errlen);
    if (!s)
        return -1;
    state_free(s);
    return 0;
}

int script_load(const char *path, char *err, size_t errlen)
{
    struct state *s = state_new(path, err, errlen);
    if (!s)
        return -1;
    struct state *old = cur;
    cur = s;
    state_free(old);
    if (old) {
        lua_newtable(s->L);
        if (dispatch(s->L, H_RELOAD) > 0)
            lua_pop(s->L, 2);
    }
    return 0;
}

void script_shutdown(void)
{
    state_free(cur);
    cur = NULL;
}

int script_connect(struct conn *c, const struct http_request *req, const char *remote,
                   const char *protocol, char *reason, size_t reason_len)
{
    lua_State *L = cur->L;
    lua_createtable(L, 0, 6);
    lua_pushinteger(L, (lua_Integer)c->id);
    lua_setfield(L, -2, "id");
    lua_pushlstring(L, req->path.p, req->path.len);
    lua_setfield(L, -2, "path");
    lua_pushlstring(L, req->query.p, req->query.len);
    lua_setfield(L, -2, "query");
    lua_pushstring(L, remote);
    lua_setfield(L, -2, "remote");
    if (protocol && *protocol) {
        lua_pushstring(L, protocol);
        lua_setfield(L, -2, "subprotocol");
    }
    lua_createtable(L, 0, (int)req->nheaders);
    for (size_t i = 0; i < req->nheaders; i++) {
        const struct http_header *h = &req->headers[i];
        char name[128];
        size_t n = h->name.len < sizeof name ? h->name.len : sizeof name - 1;
        for (size_t j = 0; j < n; j++)
            name[j] = (char)((h->name.p[j] >= 'A' && h->name.p[j] <= 'Z') ? h->name.p[j] + 32
                                                                             : h->name.p[j]);
        name[n] = '\0';
        /* Repeated headers are joined with ", " (RFC 9110 5.3). */
        if (lua_getfield(L, -1, name) == LUA_TSTRING) {
            lua_pushliteral(L, ", ");
            lua_pushlstring(L, h->value.p, h->value.len);
            lua_concat(L, 3);
        } else {
            lua_pop(L, 1);
            lua_pushlstring(L, h->value.p, h->value.len);
        }
        lua_setfield(L, -2, name);
    }
    lua_setfield(L, -2, "headers");

    int rc = dispatch(L, H_CONNECT);
    if (rc < 0) {
        snprintf(reason, reason_len, "the server's connect hook failed");
        return -2;
    }
    if (rc > 0) {
        int refused = lua_isboolean(L, -2) && !lua_toboolean(L, -2);
        const char *why = lua_tostring(L, -1);
        snprintf(reason, reason_len, "%s", why ? why : "connection refused by the server");
        lua_pop(L, 2);
        if (refused)
            return -1;
    }
    return 0;
}

void script_message(struct conn *c, int binary, const uint8_t *data, size_t len)
{
    lua_State *L = cur->L;
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, (lua_Integer)c->id);
    lua_setfield(L, -2, "id");
    lua_pushlstring(L, (const char *)data, len);
    lua_setfield(L, -2, "data");
    lua_pushboolean(L, binary);
    lua_setfield(L, -2, "binary");
    if (dispatch(L, H_MESSAGE) > 0)
        lua_pop(L, 2);
}

void script_disconnect(struct conn *c, uint16_t code, const char *reason)
{
    lua_State *L = cur->L;
    while (c->rooms_len) {
        struct room *r = c->rooms[c->rooms_len - 1]->room;
        /* The room may go away with its last member: keep the name on the Lua stack. */
        lua_pushstring(L, r->name);
        hub_leave(c, r->name, strlen(r->name));
        fire_membership(L, H_LEAVE, c, lua_tostring(L, -1), "disconnect");
        lua_pop(L, 1);
    }
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, (lua_Integer)c->id);
    lua_setfield(L, -2, "id");
    lua_pushinteger(L, code);
    lua_setfield(L, -2, "code");
    lua_pushstring(L, reason ? reason : "");
    lua_setfield(L, -2, "reason");
    if (dispatch(L, H_DISCONNECT) > 0)
        lua_pop(L, 2);
}
