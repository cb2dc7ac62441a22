/* script: the Lua states (the running one, and a new one while a reload loads), loading and
 * reload, the memory cap, and protected dispatch: every entry into Lua (an event from the core,
 * a timer, the main chunk) is one lua_pcall, inside which the event's table is built too. The
 * globals are built by sandbox.c, the confab module by confab_lib.c, timers by script_timer.c,
 * and the time limit is script_limit.c's. */
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
#include "metrics.h"
#include "pool.h"
#include "script_int.h"

const char *const script_hook_names[] = {"connect", "message", "join", "leave",
                                         "disconnect", "reload", "epoch", "roster", NULL};

struct ev_loop *script_loop;
struct script_config script_limits;
static struct state *cur;

char script_key_hooks, script_key_format;

/* ---- memory cap ---------------------------------------------------------------------- */

/* Lua allocates and frees small blocks all the time (the strings and tables of each event, what
 * cjson builds): those of up to LUA_POOL_MAX bytes come from a pool per 16-byte size class
 * (pool.h) and go back there instead of going through malloc and free for every event. The
 * pools share one budget, SCRIPT_POOLS_BYTES on all the lists together, rather than a share per
 * class: a collection gives back what the heap grew by since the last one (about 300 KB with
 * chat.lua and 1,000 members, mostly in two or three classes), and a share of 128 KB per class
 * freed most of it, only for the heap to malloc it again on its way to the next collection.
 * The cap counts what Lua asked for, as before: a block in a pool is not Lua's. Lua passes a
 * block's size back when it frees or resizes it, so its class is known without a header. */
#define LUA_POOL_MAX 512
static struct pool lua_pools[LUA_POOL_MAX / 16];
static size_t lua_pooled; /* bytes on the lists (by their classes' sizes) */

/* The pool for blocks of n bytes, or NULL for 0 or more than LUA_POOL_MAX. */
static struct pool *lua_pool(size_t n)
{
    if (n == 0 || n > LUA_POOL_MAX)
        return NULL;
    struct pool *p = &lua_pools[(n - 1) / 16];
    if (!p->size) {
        p->size = ((n - 1) / 16 + 1) * 16;
        p->max = (uint32_t)(SCRIPT_POOLS_BYTES / p->size); /* the budget is the bound */
    }
    return p;
}

static void *lua_block_get(struct pool *p)
{
    uint32_t listed = p->n;
    void *b = pool_get(p);
    if (p->n < listed)
        lua_pooled -= p->size;
    return b;
}

static void lua_block_put(struct pool *p, void *b)
{
    if (lua_pooled + p->size > SCRIPT_POOLS_BYTES) {
        free(b);
        return;
    }
    pool_put(p, b);
    lua_pooled += p->size;
}

const struct pool *script_pool(unsigned k)
{
    return k < LUA_POOL_MAX / 16 ? lua_pool((size_t)(k + 1) * 16) : NULL;
}

size_t script_pool_bytes(void)
{
    return lua_pooled;
}

void script_pool_drain(void)
{
    for (size_t k = 0; k < LUA_POOL_MAX / 16; k++)
        pool_drain(&lua_pools[k]);
    lua_pooled = 0;
}

static void *block_resize(void *ptr, size_t old, size_t nsize)
{
    struct pool *po = lua_pool(old), *pn = lua_pool(nsize);
    if (!po && !pn)
        return realloc(ptr, nsize); /* (ptr is NULL when old is 0) */
    if (po == pn)
        return ptr; /* the same class: the block is large enough */
    void *p = pn ? lua_block_get(pn) : malloc(nsize);
    if (!p)
        /* A smaller block could not be had: the larger one serves (and goes to the pool of
         * the smaller size later, which it is large enough for). */
        return nsize < old ? ptr : NULL;
    if (ptr) {
        memcpy(p, ptr, old < nsize ? old : nsize);
        if (po)
            lua_block_put(po, ptr);
        else
            free(ptr);
    }
    return p;
}

static void *l_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct state *s = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        struct pool *po = lua_pool(old);
        if (po)
            lua_block_put(po, ptr);
        else
            free(ptr);
        s->mem_used -= old;
        return NULL;
    }
    if (nsize > old && s->mem_used - old + nsize > s->mem_limit)
        return NULL; /* Lua raises "not enough memory" in the running hook */
    void *p = block_resize(ptr, old, nsize);
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

/* Unprotected errors cannot happen by design (every entry is a lua_pcall); should one happen
 * anyway, say so before Lua aborts the process. */
static int on_panic(lua_State *L)
{
    const char *msg = lua_tostring(L, -1);
    log_error("Lua panic (error outside a protected call), aborting: %s", msg ? msg : "?");
    return 0;
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

/* Logs a failed call: one line per event (the traceback's lines joined with " | "), without
 * asking Lua for memory (the failure may be that there is none). */
static void log_failure(const char *what, const char *msg)
{
    char line[4096];
    size_t n = 0;
    const char *p = msg ? msg : "(no message)";
    for (; *p && n < sizeof line - 8; p++) {
        if (*p == '\n') {
            if (p[1] == '\t')
                p++;
            memcpy(line + n, " | ", 3);
            n += 3;
        } else {
            line[n++] = *p;
        }
    }
    if (*p) {
        memcpy(line + n, "...", 3);
        n += 3;
    }
    line[n] = '\0';
    METRIC_INC(hook_errors);
    log_error("hook %s failed: %s", what, line);
}

int script_pcall(lua_State *L, const char *what, int nargs, int nres)
{
    int base = lua_gettop(L) - nargs;
    lua_pushcfunction(L, msgh);
    lua_insert(L, base);
    script_limit_enter(L, what, script_limits.hook_timeout_ms);
    int rc = lua_pcall(L, nargs, nres, base);
    script_limit_leave();
    lua_remove(L, base);
    if (rc == LUA_OK)
        return 0;
    log_failure(what, lua_tostring(L, -1));
    lua_pop(L, 1);
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
    if (script_state(L)->hooks[e] == 0)
        return;
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
    script_cb_orphan_all(s);
    s->closing = 1;
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
    lua_atpanic(L, on_panic);
    lua_gc(L, LUA_GCGEN, 0, 0);
    script_limit_state(L);

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
    script_limit_enter(L, "script load", load_ms);
    rc = lua_pcall(L, 0, 0, -2);
    script_limit_leave();
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

/* ---- events ---------------------------------------------------------------------------- */

/* One event from the core: what run_event needs to build its table, and what it returns. */
struct event {
    enum hook_event e;
    struct conn *c;
    const struct http_request *req;     /* connect */
    const char *protocol;               /* connect */
    int binary;                         /* message */
    const uint8_t *data;                /* message */
    size_t len;                         /* message */
    const char *room;                   /* leave */
    size_t room_len;                    /* leave */
    uint16_t code;                      /* disconnect */
    const char *reason;                 /* leave, disconnect */
    int result;                         /* script_dispatch's */
    int refused;                        /* connect: a hook returned false */
    char *why;                          /* connect: the hook's reason, why_len bytes */
    size_t why_len;
};

static void push_connect(lua_State *L, const struct event *ev)
{
    const struct http_request *req = ev->req;
    lua_createtable(L, 0, 6);
    lua_pushinteger(L, (lua_Integer)ev->c->id);
    lua_setfield(L, -2, "id");
    lua_pushlstring(L, req->path.p, req->path.len);
    lua_setfield(L, -2, "path");
    lua_pushlstring(L, req->query.p, req->query.len);
    lua_setfield(L, -2, "query");
    char remote[CONN_PEER_TEXT];
    lua_pushstring(L, conn_peer_text(&ev->c->peer, remote, sizeof remote));
    lua_setfield(L, -2, "remote");
    if (ev->protocol && *ev->protocol) {
        lua_pushstring(L, ev->protocol);
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
}

/* Builds the event's table and runs its hooks (a lua_CFunction, run protected: building the
 * table may fail for want of memory like anything else in Lua). */
static int run_protected(lua_State *L)
{
    struct event *ev = lua_touserdata(L, 1);
    switch (ev->e) {
    case H_CONNECT:
        push_connect(L, ev);
        break;
    case H_MESSAGE:
        lua_createtable(L, 0, 3);
        lua_pushinteger(L, (lua_Integer)ev->c->id);
        lua_setfield(L, -2, "id");
        lua_pushlstring(L, (const char *)ev->data, ev->len);
        lua_setfield(L, -2, "data");
        lua_pushboolean(L, ev->binary);
        lua_setfield(L, -2, "binary");
        break;
    case H_LEAVE:
        lua_createtable(L, 0, 3);
        lua_pushinteger(L, (lua_Integer)ev->c->id);
        lua_setfield(L, -2, "id");
        lua_pushlstring(L, ev->room, ev->room_len);
        lua_setfield(L, -2, "room");
        lua_pushstring(L, ev->reason);
        lua_setfield(L, -2, "reason");
        break;
    case H_DISCONNECT:
        lua_createtable(L, 0, 3);
        lua_pushinteger(L, (lua_Integer)ev->c->id);
        lua_setfield(L, -2, "id");
        lua_pushinteger(L, ev->code);
        lua_setfield(L, -2, "code");
        lua_pushstring(L, ev->reason ? ev->reason : "");
        lua_setfield(L, -2, "reason");
        break;
    case H_EPOCH:
        lua_createtable(L, 0, 1);
        lua_pushinteger(L, script_limits.epoch);
        lua_setfield(L, -2, "epoch");
        break;
    case H_ROSTER:
        lua_createtable(L, 0, 2);
        lua_pushlstring(L, ev->room, ev->room_len);
        lua_setfield(L, -2, "room");
        lua_pushboolean(L, ev->code != 0);
        lua_setfield(L, -2, "sync");
        break;
    default:
        lua_newtable(L);
        break;
    }
    ev->result = script_dispatch(L, ev->e);
    if (ev->result > 0 && ev->e == H_CONNECT) {
        ev->refused = lua_isboolean(L, -2) && !lua_toboolean(L, -2);
        const char *why = lua_tostring(L, -1);
        snprintf(ev->why, ev->why_len, "%s", why ? why : "connection refused by the server");
    }
    return 0;
}

/* Runs one event in the current state inside one protected, time-limited call. Returns
 * script_dispatch's result, or -1 when building the event failed (logged). */
static int run_event(struct event *ev)
{
    /* No hook for it: nothing to build, time or call (as if every hook returned nothing): no
     * table, no time limit armed (two timer_settime calls), no Lua call. */
    if (!cur || cur->hooks[ev->e] == 0)
        return 0;
    lua_State *L = cur->L;
    const char *what = script_hook_names[ev->e];
    script_limit_enter(L, what, script_limits.hook_timeout_ms);
    lua_pushcfunction(L, run_protected);
    lua_pushlightuserdata(L, ev);
    int rc = lua_pcall(L, 1, 0, 0);
    script_limit_leave();
    if (rc != LUA_OK) {
        /* A time limit abort was logged by the hook it stopped (it may surface again here when
         * the hook set by the limit's signal fires on the way out). */
        if (!script_abort_msg())
            log_failure(what, lua_tostring(L, -1));
        lua_pop(L, 1);
        return -1;
    }
    return ev->result;
}

/* ---- the interface ------------------------------------------------------------------- */

void script_init(struct ev_loop *l, const struct script_config *cfg)
{
    script_loop = l;
    script_limits = *cfg;
    script_limit_init();
    script_timer_init();
}

lua_State *script_current(void)
{
    return cur ? cur->L : NULL;
}

size_t script_memory_used(void)
{
    return cur ? cur->mem_used : 0;
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
        struct event ev = {.e = H_RELOAD};
        run_event(&ev);
    }
    return 0;
}

void script_epoch_changed(int64_t epoch)
{
    script_set_epoch(epoch);
    if (cur) {
        struct event ev = {.e = H_EPOCH};
        run_event(&ev);
    }
}

void script_roster(const char *room, size_t len, int sync)
{
    struct event ev = {.e = H_ROSTER, .room = room, .room_len = len, .code = sync != 0};
    run_event(&ev);
}

void script_shutdown(void)
{
    state_free(cur);
    cur = NULL;
}

int script_connect(struct conn *c, const struct http_request *req, const char *protocol,
                   char *reason, size_t reason_len)
{
    struct event ev = {.e = H_CONNECT, .c = c, .req = req,
                       .protocol = protocol, .why = reason, .why_len = reason_len};
    int rc = run_event(&ev);
    if (rc < 0) {
        snprintf(reason, reason_len, "the server's connect hook failed");
        return -2;
    }
    return rc > 0 && ev.refused ? -1 : 0;
}

void script_message(struct conn *c, int binary, const uint8_t *data, size_t len)
{
    struct event ev = {.e = H_MESSAGE, .c = c, .binary = binary, .data = data, .len = len};
    run_event(&ev);
}

void script_disconnect(struct conn *c, uint16_t code, const char *reason)
{
    /* One leave per room, the last joined first, each its own call (own time limit). */
    size_t n;
    while ((n = hub_conn_room_count(c)) > 0) {
        char room[HUB_ROOM_NAME_MAX + 1];
        size_t len = strlen(hub_conn_room(c, n - 1));
        if (len > HUB_ROOM_NAME_MAX)
            len = HUB_ROOM_NAME_MAX;
        memcpy(room, hub_conn_room(c, n - 1), len);
        if (hub_leave(c, room, len) != 1)
            break; /* cannot be: it is one of its rooms; hub_remove drops the rest */
        struct event leave = {.e = H_LEAVE, .c = c, .room = room, .room_len = len,
                              .reason = "disconnect"};
        run_event(&leave);
    }
    struct event ev = {.e = H_DISCONNECT, .c = c, .code = code, .reason = reason};
    run_event(&ev);
}
