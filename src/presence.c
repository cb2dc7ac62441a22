/* presence: see presence.h. */
#include <lauxlib.h>

#include "presence.h"

static uint64_t node_id;
static int active;

int presence_active(void)
{
    return active;
}

uint64_t presence_node(void)
{
    return node_id;
}

int presence_claim(lua_State *L, const char *key, size_t klen, const char *value, size_t vlen,
                   const char *old, size_t olen)
{
    (void)key, (void)klen, (void)value, (void)vlen, (void)old, (void)olen;
    return luaL_error(L, "confab.claim: no cluster");
}

void presence_release(const char *key, size_t klen, const char *value, size_t vlen)
{
    (void)key, (void)klen, (void)value, (void)vlen;
}
