/* sandbox: the globals a script sees. A chosen set of standard libraries (linit.c: "copy this
 * file to choose your own set"), cjson and confab through a require that knows only those, text-
 * only load, os reduced to the clock and calendar, a collectgarbage that cannot stop or retune the
 * collector, print to the log, a locked string metatable and globals that are strict once the
 * script has loaded. And what keeps the time limit whole (script_limit.c):
 *   - pcall, xpcall and coroutine.resume/wrap let the limit's abort through, and tell the limit
 *     which coroutine runs;
 *   - xpcall's message handler is skipped once the limit passed (Lua runs it with hooks off);
 *   - setmetatable refuses __gc (finalizers run with hooks off, and while a state closes);
 *   - load reads its chunk in pieces, checking the limit between them;
 *   - table.sort compares through a function call the limit can stop;
 *   - string.rep builds its result in pieces, checking the limit between them;
 *   - find, match, gmatch and gsub are pattern.c's, which check the limit every few thousand
 *     matching steps;
 *   - cjson's depth limits (C recursion) can be lowered but not raised. */
#include <lauxlib.h>
#include <lualib.h>
#include <stdint.h>
#include <string.h>

#include "log.h"
#include "pattern.h"
#include "script_int.h"

/* Registry key of the table of modules require may return. */
static char key_modules;

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

/* load's source: a string handed out in pieces, or the script's reader function (at stack
 * index 1, its last piece kept at index LOAD_SLOT). */
#define LOAD_PIECE 4096
#define LOAD_SLOT 5
struct load_source {
    const char *s; /* NULL: a reader function */
    size_t left;
};

static const char *load_read(lua_State *L, void *ud, size_t *size)
{
    struct load_source *src = ud;
    script_limit_check(L); /* the parser does not run hooks: look between pieces */
    if (src->s) {
        *size = src->left < LOAD_PIECE ? src->left : LOAD_PIECE;
        const char *piece = src->s;
        src->s += *size;
        src->left -= *size;
        return *size ? piece : NULL;
    }
    luaL_checkstack(L, 2, "too many nested functions");
    lua_pushvalue(L, 1);
    lua_call(L, 0, 1);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        *size = 0;
        return NULL;
    }
    if (!lua_isstring(L, -1))
        luaL_error(L, "reader function must return a string");
    lua_replace(L, LOAD_SLOT);
    return lua_tolstring(L, LOAD_SLOT, size);
}

/* load(chunk [, chunkname [, mode [, env]]]): text chunks only; the environment defaults to the
 * script's globals. Otherwise as Lua's own. */
static int l_load(lua_State *L)
{
    size_t len;
    const char *s = lua_tolstring(L, 1, &len);
    const char *mode = luaL_optstring(L, 3, "t");
    int env = !lua_isnone(L, 4) ? 4 : 0; /* an explicit env argument, even nil, is used */
    if (strcmp(mode, "t") != 0)
        return luaL_error(L, "load: only text chunks are allowed (mode 't')");
    struct load_source src = {s, len};
    const char *chunkname;
    if (s) {
        chunkname = luaL_optstring(L, 2, s);
    } else {
        chunkname = luaL_optstring(L, 2, "=(load)");
        luaL_checktype(L, 1, LUA_TFUNCTION);
    }
    lua_settop(L, LOAD_SLOT);
    int status = lua_load(L, load_read, &src, chunkname, "t");
    script_limit_check(L); /* a load the limit cut short is an abort, not a failed load */
    if (status != LUA_OK) {
        luaL_pushfail(L);
        lua_insert(L, -2);
        return 2;
    }
    if (env) {
        lua_pushvalue(L, env);
        if (!lua_setupvalue(L, -2, 1))
            lua_pop(L, 1);
    }
    return 1;
}

/* pcall, xpcall and coroutine.resume catch errors, and so would catch the time limit's abort
 * and let a loop go on: once the limit passed, the abort goes through them. */
static int l_abort_through(lua_State *L)
{
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    const char *abort_msg = script_abort_msg();
    if (abort_msg) {
        lua_pushstring(L, abort_msg);
        return lua_error(L);
    }
    return lua_gettop(L);
}

/* xpcall's message handler: Lua runs it with hooks off when the limit's abort is raised, so
 * once the limit passed it is not called (the abort is the error). */
static int l_handler_guard(lua_State *L)
{
    const char *abort_msg = script_abort_msg();
    if (abort_msg) {
        lua_pushstring(L, abort_msg);
        return 1;
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

static int l_xpcall(lua_State *L)
{
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_pushvalue(L, 2);
    lua_pushcclosure(L, l_handler_guard, 1);
    lua_replace(L, 2);
    return l_abort_through(L);
}

/* Calls the function at index 1 with the rest as arguments while co runs (for the limit's
 * signal), then raises the abort if the limit passed meanwhile. */
static int call_in(lua_State *L, lua_State *co)
{
    lua_State *prev = co ? script_limit_switch(co) : NULL;
    int rc = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
    if (co)
        script_limit_switch(prev);
    const char *abort_msg = script_abort_msg();
    if (abort_msg) {
        lua_pushstring(L, abort_msg);
        return lua_error(L);
    }
    if (rc != LUA_OK)
        return lua_error(L);
    return lua_gettop(L);
}

/* coroutine.resume(co, ...) */
static int l_resume(lua_State *L)
{
    lua_State *co = lua_tothread(L, 1);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    return call_in(L, co);
}

/* The function coroutine.wrap returns: upvalues Lua's own and its coroutine. */
static int l_wrapped(lua_State *L)
{
    lua_State *co = lua_tothread(L, lua_upvalueindex(2));
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    return call_in(L, co);
}

/* coroutine.wrap(f) */
static int l_wrap(lua_State *L)
{
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    if (!lua_getupvalue(L, -1, 1)) /* the coroutine Lua's wrap keeps */
        lua_pushnil(L);
    lua_pushcclosure(L, l_wrapped, 2);
    return 1;
}

/* setmetatable(t, mt): as Lua's, but no __gc. A finalizer runs with hooks off (outside the time
 * limit) and while a state closes on reload (where a timer it started would outlive it). Lua
 * marks an object for finalization only here, so a __gc added to mt later never runs. */
static int l_setmetatable(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");
        luaL_argcheck(L, lua_rawget(L, 2) == LUA_TNIL, 2,
                      "__gc metamethods are not allowed (finalizers run outside the time limit)");
        lua_pop(L, 1);
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

static int l_less_than(lua_State *L)
{
    lua_pushboolean(L, lua_compare(L, 1, 2, LUA_OPLT));
    return 1;
}

/* table.sort(t [, comp]): without comp, compares with a function call (which the limit's
 * signal can stop) instead of inside the C sort. */
static int l_sort(lua_State *L)
{
    if (lua_isnoneornil(L, 2)) {
        lua_settop(L, 1);
        lua_pushcfunction(L, l_less_than);
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 0);
    return 0;
}

/* string.rep(s, n [, sep]): as Lua's, but the result is filled by doubling copies of at most
 * REP_PIECE bytes, with the time limit checked between them (one call may build --script-memory
 * bytes). */
#define REP_PIECE (1 << 20)

static int l_rep(lua_State *L)
{
    size_t l, lsep;
    const char *s = luaL_checklstring(L, 1, &l);
    lua_Integer n = luaL_checkinteger(L, 2);
    const char *sep = luaL_optlstring(L, 3, "", &lsep);
    if (n <= 0 || l + lsep == 0) {
        lua_pushliteral(L, "");
        return 1;
    }
    size_t unit = l + lsep;
    if (unit < l || unit > (size_t)INT32_MAX * 1024 / (size_t)n) /* far above any memory cap */
        return luaL_error(L, "resulting string too large");
    size_t total = (size_t)n * unit - lsep;
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, total);
    memcpy(p, s, l);
    if (total > l)
        memcpy(p + l, sep, lsep);
    /* p[0, filled) repeats s..sep and filled is a whole number of them: copying from the start
     * keeps the pattern. */
    size_t filled = total < unit ? total : unit;
    while (filled < total) {
        size_t c = filled;
        if (c > REP_PIECE)
            c = REP_PIECE / unit > 0 ? REP_PIECE / unit * unit : unit;
        if (c > total - filled)
            c = total - filled;
        memcpy(p + filled, p, c);
        filled += c;
        script_limit_check(L);
    }
    luaL_pushresultsize(&b, total);
    return 1;
}

/* cjson's depth setters recurse in C as deep as they are told: keep them at most the default. */
#define CJSON_DEPTH_MAX 1000

static int l_cjson_depth(lua_State *L)
{
    if (!lua_isnoneornil(L, 1)) {
        lua_Integer d = luaL_checkinteger(L, 1);
        luaL_argcheck(L, d >= 1 && d <= CJSON_DEPTH_MAX, 1,
                      "depth must be 1 to 1000 (the server's limit)");
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

static void cjson_guard(lua_State *L, int t);

/* cjson.new(): a new instance, guarded like the module. */
static int l_cjson_new(lua_State *L)
{
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_call(L, 0, 1);
    luaL_checktype(L, -1, LUA_TTABLE);
    cjson_guard(L, lua_gettop(L));
    return 1;
}

/* Replaces f in table t by a closure of fn over the original (absent: nothing). */
static void wrap_field(lua_State *L, int t, const char *f, lua_CFunction fn)
{
    if (lua_getfield(L, t, f) == LUA_TNIL) {
        lua_pop(L, 1);
        return;
    }
    lua_pushcclosure(L, fn, 1);
    lua_setfield(L, t, f);
}

static void cjson_guard(lua_State *L, int t)
{
    wrap_field(L, t, "encode_max_depth", l_cjson_depth);
    wrap_field(L, t, "decode_max_depth", l_cjson_depth);
    wrap_field(L, t, "new", l_cjson_new);
}

/* Replaces the global name (or lib.name) by a closure of fn over the original. */
static void wrap_global(lua_State *L, const char *lib, const char *name,
                               lua_CFunction fn)
{
    if (lib) {
        lua_getglobal(L, lib);
        lua_getfield(L, -1, name);
    } else {
        lua_getglobal(L, name);
    }
    lua_pushcclosure(L, fn, 1);
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
    if (!script_state(L)->loading) {
        const char *name = lua_tostring(L, 2);
        return luaL_error(L, "assignment to undeclared global '%s' (declare it at load time or "
                             "use a local)", name ? name : "?");
    }
    lua_rawset(L, 1);
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

static void remove_global(lua_State *L, const char *name)
{
    lua_pushnil(L);
    lua_setglobal(L, name);
}

int sandbox_open(lua_State *L)
{
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
        cjson_guard(L, lua_gettop(L));
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

    /* confab itself, also a global. */
    luaL_requiref(L, "confab", luaopen_confab, 1);
    lua_setfield(L, -2, "confab");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &key_modules);

    /* Base library: no file access, text-only load, a tame collectgarbage, print to the log. */
    static const char *const base_drop[] = {"dofile", "loadfile", "require"};
    for (size_t i = 0; i < sizeof base_drop / sizeof *base_drop; i++)
        remove_global(L, base_drop[i]);
    lua_pushcfunction(L, l_require);
    lua_setglobal(L, "require");
    lua_pushcfunction(L, l_load);
    lua_setglobal(L, "load");
    lua_getglobal(L, "collectgarbage");
    lua_pushcclosure(L, l_collectgarbage, 1);
    lua_setglobal(L, "collectgarbage");
    lua_pushcfunction(L, l_print);
    lua_setglobal(L, "print");
    wrap_global(L, NULL, "pcall", l_abort_through);
    wrap_global(L, NULL, "xpcall", l_xpcall);
    wrap_global(L, "coroutine", "resume", l_resume);
    wrap_global(L, "coroutine", "wrap", l_wrap);
    wrap_global(L, NULL, "setmetatable", l_setmetatable);
    wrap_global(L, "table", "sort", l_sort);
    /* The string table is also the string metatable's __index: s:find() gets these too. */
    lua_getglobal(L, LUA_STRLIBNAME);
    lua_pushcfunction(L, l_rep);
    lua_setfield(L, -2, "rep");
    pattern_install(L, lua_gettop(L), script_limit_check);
    lua_pop(L, 1);

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
