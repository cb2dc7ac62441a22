/* script: the Lua states (the running one, and a new one while a reload loads), loading and
 * reload, the memory cap and the time limit, and protected dispatch of hook calls. The globals
 * are built by sandbox.c, the confab module by confab_lib.c, timers by script_timer.c. */
#include "script.h"

#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hub.h"
#include "log.h"
#include "script_int.h"

const char *const script_hook_names[] = {"connect", "message", "join", "leave",
                                         "disconnect", "reload", NULL};

struct ev_loop *script_loop;
struct script_config script_limits;
static struct state *cur;

char script_key_hooks, script_key_format;

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

struct state *script_state(lua_State *L)
{
    void *ud;
    lua_getallocf(L, &ud);
    return ud;
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

const char *script_abort_msg(void)
{
    return call.timed_out ? call.abort_msg : NULL;
}

/* Message handler: the error with a traceback. */
static int msgh(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (!msg)
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    luaL_traceback(L, L, msg, 1);
    return 1;
}

int script_pcall(lua_State *L, const char *what, int nargs, int nres)
{
    if (call.depth == 0)
        call_start(what, script_limits.hook_timeout_ms);
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

/* ---- hooks ---------------------------------------------------------------------------- */

int script_dispatch(lua_State *L, enum hook_event e)
{
    int ev = lua_gettop(L);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &script_key_hooks);
    lua_rawgeti(L, -1, e + 1);
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, ev + 2, i);
        lua_getfield(L, -1, "fn");
        lua_remove(L, -2);
        lua_pushvalue(L, ev);
        if (script_pcall(L, script_hook_names[e], 1, 2) < 0) {
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

void script_fire_membership(lua_State *L, enum hook_event e, struct conn *c, const char *room,
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
    if (script_dispatch(L, e) > 0)
        lua_pop(L, 2);
}

/* ---- states ---------------------------------------------------------------------------- */

static void state_free(struct state *s)
{
    if (!s)
        return;
    script_timer_stop_all(s);
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
    s->mem_limit = script_limits.memory;
    s->L = lua_newstate(l_alloc, s);
    if (!s->L) {
        snprintf(err, errlen, "%s: not enough memory", path);
        state_free(s);
        return NULL;
    }
    lua_State *L = s->L;
    lua_gc(L, LUA_GCGEN, 0, 0);
    lua_sethook(L, count_hook, LUA_MASKCOUNT, 1000);

    lua_pushcfunction(L, sandbox_open);
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
    unsigned load_ms = script_limits.hook_timeout_ms * 10 > 1000 ? script_limits.hook_timeout_ms * 10 : 1000;
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
    script_loop = l;
    script_limits = *cfg;
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
        if (script_dispatch(s->L, H_RELOAD) > 0)
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

    int rc = script_dispatch(L, H_CONNECT);
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
    if (script_dispatch(L, H_MESSAGE) > 0)
        lua_pop(L, 2);
}

void script_disconnect(struct conn *c, uint16_t code, const char *reason)
{
    lua_State *L = cur->L;
    size_t n;
    while ((n = hub_conn_room_count(c)) > 0) {
        /* The room may go away with its last member: keep the name on the Lua stack. */
        lua_pushstring(L, hub_conn_room(c, n - 1));
        size_t len;
        const char *name = lua_tolstring(L, -1, &len);
        hub_leave(c, name, len);
        script_fire_membership(L, H_LEAVE, c, lua_tostring(L, -1), "disconnect");
        lua_pop(L, 1);
    }
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, (lua_Integer)c->id);
    lua_setfield(L, -2, "id");
    lua_pushinteger(L, code);
    lua_setfield(L, -2, "code");
    lua_pushstring(L, reason ? reason : "");
    lua_setfield(L, -2, "reason");
    if (script_dispatch(L, H_DISCONNECT) > 0)
        lua_pop(L, 2);
}
