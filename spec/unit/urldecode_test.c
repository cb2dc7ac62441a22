/* urldecode: percent-decoding cases, and confab.urldecode's Lua results (string, or nil and
 * "bad escape") through a bare Lua state. */
#include <lauxlib.h>
#include <lua.h>

#include "test.h"
#include "urldecode.h"

static const struct {
    const char *in;
    int form;
    const char *out; /* NULL: bad escape */
    size_t outlen;
} cases[] = {
    {"", 0, "", 0},
    {"red", 0, "red", 3},
    {"%E7%BA%A2%E8%89%B2", 0, "\xe7\xba\xa2\xe8\x89\xb2", 6}, /* 红色 */
    {"caf%c3%a9", 0, "caf\xc3\xa9", 5},                       /* lower-case hex */
    {"a%2Fb", 0, "a/b", 3},
    {"%2541", 0, "%41", 3},                                   /* decoded once, not twice */
    {"%00x", 0, "\0x", 2},
    {"a+b", 0, "a+b", 3},
    {"a+b%2B", 1, "a b+", 4},                                 /* form: '+' is a space, %2B '+' */
    {"%", 0, NULL, 0},
    {"%4", 0, NULL, 0},
    {"abc%", 0, NULL, 0},
    {"%zz", 0, NULL, 0},
    {"%%41", 0, NULL, 0},
    {"%4g", 0, NULL, 0},
};

TEST(urldecode_cases)
{
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char out[64];
        long n = url_decode(cases[i].in, strlen(cases[i].in), out, cases[i].form);
        int ok = cases[i].out ? n == (long)cases[i].outlen &&
                                    memcmp(out, cases[i].out, cases[i].outlen) == 0
                              : n == -1;
        if (!ok) {
            printf("    case %zu (%s): got %ld\n", i, cases[i].in, n);
            test_failed_checks++;
        }
    }
}

TEST(urldecode_from_lua)
{
    lua_State *L = luaL_newstate();
    lua_pushcfunction(L, script_urldecode);
    lua_pushliteral(L, "/ws/%E7%BA%A2");
    CHECK(lua_pcall(L, 1, 2, 0) == LUA_OK);
    CHECK(lua_type(L, -2) == LUA_TSTRING && strcmp(lua_tostring(L, -2), "/ws/\xe7\xba\xa2") == 0);
    CHECK(lua_isnil(L, -1));
    lua_settop(L, 0);

    lua_pushcfunction(L, script_urldecode);
    lua_pushliteral(L, "100%");
    CHECK(lua_pcall(L, 1, 2, 0) == LUA_OK);
    CHECK(lua_isnil(L, -2));
    CHECK(lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "bad escape") == 0);
    lua_settop(L, 0);

    lua_pushcfunction(L, script_urldecode);
    lua_pushliteral(L, "a+b");
    lua_pushboolean(L, 1);
    CHECK(lua_pcall(L, 2, 1, 0) == LUA_OK && strcmp(lua_tostring(L, -1), "a b") == 0);
    lua_settop(L, 0);

    lua_pushcfunction(L, script_urldecode); /* a table is not a string: raises */
    lua_newtable(L);
    CHECK(lua_pcall(L, 1, 1, 0) == LUA_ERRRUN);
    lua_close(L);
}
