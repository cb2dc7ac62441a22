/* sandbox: the globals a script sees. A chosen set of standard libraries (linit.c: "copy this
 * file to choose your own set"), cjson and confab through a require that knows only those, text-
 * only load, os reduced to the clock and calendar, a collectgarbage that cannot stop or retune the
 * collector, print to the log, pcall/xpcall/coroutine.resume that let the time limit's abort
 * through, a locked string metatable and globals that are strict once the script has loaded. */
#include <lauxlib.h>
#include <lualib.h>
#include <string.h>

#include "log.h"
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
    const char *abort_msg = script_abort_msg();
    if (abort_msg) {
        lua_pushstring(L, abort_msg);
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
