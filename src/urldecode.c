#include "urldecode.h"

#include <lauxlib.h>
#include <lua.h>

static int hexdigit(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

long url_decode(const char *in, size_t len, char *out, int form)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '%') {
            if (len - i < 3)
                return -1;
            int hi = hexdigit((unsigned char)in[i + 1]);
            int lo = hexdigit((unsigned char)in[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            out[n++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[n++] = (form && c == '+') ? ' ' : (char)c;
        }
    }
    return (long)n;
}

int script_urldecode(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    int form = lua_toboolean(L, 2);
    luaL_Buffer b;
    char *out = luaL_buffinitsize(L, &b, len);
    long n = url_decode(s, len, out, form);
    if (n < 0) {
        luaL_pushresultsize(&b, 0);
        lua_pushnil(L);
        lua_pushliteral(L, "bad escape");
        return 2;
    }
    luaL_pushresultsize(&b, (size_t)n);
    return 1;
}
