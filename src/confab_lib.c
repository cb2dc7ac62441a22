/* confab_lib: the `confab` module a script gets (docs/hooks.md): hook registration, sending,
 * rooms, attributes, history, time, logging and timers, as one luaL_Reg opened by
 * luaopen_confab. Connections are integer ids; the hub is reached through its functions. */
#include <lauxlib.h>
#include <string.h>
#include <time.h>

#include "claims.h"
#include "frame.h"
#include "hub.h"
#include "log.h"
#include "presence.h"
#include "redis_link.h"
#include "redis_room.h"
#include "script_int.h"
#include "server.h"
#include "urldecode.h"
#include "utf8.h"

/* confab.on(name, fn [, priority]) */
static int l_on(lua_State *L)
{
    int e = luaL_checkoption(L, 1, NULL, script_hook_names);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_Integer prio = luaL_optinteger(L, 3, 0);
    /* Later, a hook being dispatched would see its list move under it. */
    if (!script_state(L)->loading)
        return luaL_error(L, "confab.on: hooks can only be registered while the script loads");
    lua_rawgetp(L, LUA_REGISTRYINDEX, &script_key_hooks);
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
    script_state(L)->hooks[e]++;
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
        return conn_is_open(c) ? c : NULL;
    /* A dead connection is still readable until its disconnect has been reported. */
    return c->state != CONN_HTTP ? c : NULL;
}

#define check_conn(L, arg) check_conn_state(L, arg, 1)
#define check_known(L, arg) check_conn_state(L, arg, 0)

/* The id in argument arg when it is another node's connection (mirrored by presence, or with
 * another node's id: this node may not have heard of it yet), else 0. */
static uint64_t check_remote(lua_State *L, int arg)
{
    lua_Integer id = luaL_checkinteger(L, arg);
    if (id <= 0 || !presence_active())
        return 0;
    struct conn *c = hub_find((uint64_t)id);
    if (c)
        return (c->flags & CONN_REMOTE) ? (uint64_t)id : 0;
    return ((uint64_t)id >> 32) != presence_node() ? (uint64_t)id : 0;
}

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
    /* The hub keeps names as C strings too: a NUL would make two rooms look like one. */
    luaL_argcheck(L, memchr(name, '\0', *len) == NULL, arg, "room name must not contain NUL");
    return name;
}

/* ---- sending ------------------------------------------------------------------------- */

/* The data in argument data_arg: a string, valid UTF-8 unless binary. */
static const char *check_data(lua_State *L, int data_arg, int binary, size_t *len)
{
    const char *data = luaL_checklstring(L, data_arg, len);
    if (!binary && !utf8_valid(data, *len))
        luaL_argerror(L, data_arg, "text must be valid UTF-8 (send binary instead)");
    return data;
}

/* confab.send(id, data [, binary]): compressed for c when it negotiated permessage-deflate. */
static int l_send(lua_State *L)
{
    struct conn *c = check_conn(L, 1);
    int binary = lua_toboolean(L, 3);
    size_t len;
    const char *data = check_data(L, 2, binary, &len);
    uint64_t remote = c ? 0 : check_remote(L, 1);
    if (remote) {
        if (presence_send(remote, data, len, binary) < 0) {
            luaL_pushfail(L);
            lua_pushliteral(L, "redis unavailable");
            return 2;
        }
        lua_pushboolean(L, 1);
        return 1;
    }
    if (!c)
        return stale(L);
    struct outmsg m;
    outmsg_init(&m, binary ? FRAME_BINARY : FRAME_TEXT, data, len);
    struct frame *f = outmsg_frame(&m, c);
    int rc = f ? hub_send(c, f) : 0;
    outmsg_release(&m);
    if (!f)
        return luaL_error(L, "not enough memory");
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
    size_t dlen;
    luaL_checkstring(L, 2);
    lua_Integer except_id = luaL_optinteger(L, 3, 0);
    int binary = lua_toboolean(L, 4);
    /* Invalid text raises whether or not anyone would get it. */
    const char *data = check_data(L, 2, binary, &dlen);
    /* With --redis the other nodes' members get it too (best-effort, see docs/hooks.md). */
    if (redis_enabled()) {
        presence_flush(); /* who is where goes out before what the room is told */
        redis_room_ephemeral(name, len, data, dlen, except_id > 0 ? (uint64_t)except_id : 0,
                             binary);
    }
    struct room *r = hub_room(name, len);
    if (!r || hub_room_size(r) == 0) {
        lua_pushinteger(L, 0);
        return 1;
    }
    /* One outgoing message: its plain and compressed frames are built once, when a member
     * needs them, and shared by every member that does. */
    struct outmsg m;
    outmsg_init(&m, binary ? FRAME_BINARY : FRAME_TEXT, data, dlen);
    struct conn *except = except_id > 0 ? hub_find((uint64_t)except_id) : NULL;
    size_t n = hub_broadcast_msg(r, &m, except);
    outmsg_release(&m);
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
    uint64_t remote = c ? 0 : check_remote(L, 1);
    if (remote) {
        if (presence_close(remote, (uint16_t)code, reason) < 0) {
            luaL_pushfail(L);
            lua_pushliteral(L, "redis unavailable");
            return 2;
        }
        lua_pushboolean(L, 1);
        return 1;
    }
    if (!c)
        return stale(L);
    hub_close(c, (uint16_t)code, reason);
    lua_pushboolean(L, 1);
    return 1;
}

/* ---- rooms --------------------------------------------------------------------------- */

/* confab.join(id, room) */
static int l_join(lua_State *L)
{
    struct conn *c = check_conn(L, 1);
    size_t len;
    const char *room = check_room(L, 2, &len);
    if (!c)
        return stale(L);
    int rc = hub_join(c, room, len);
    if (rc == -2) {
        luaL_pushfail(L);
        lua_pushliteral(L, "too many rooms");
        return 2;
    }
    if (rc < 0)
        return luaL_error(L, "not enough memory");
    if (rc == 1 && redis_enabled())
        redis_room_track(room, len);
    if (rc == 1)
        script_fire_membership(L, H_JOIN, c, room, NULL);
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
        script_fire_membership(L, H_LEAVE, c, room, "leave");
    lua_pushboolean(L, rc == 1);
    return 1;
}

/* confab.members(room) */
static int l_members(lua_State *L)
{
    size_t len;
    const char *name = check_room(L, 1, &len);
    struct room *r = hub_room(name, len);
    size_t n = r ? hub_room_size(r) : 0;
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_pushinteger(L, (lua_Integer)hub_room_member(r, i));
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

static void push_room_count(struct room *r, void *arg)
{
    lua_State *L = arg;
    lua_pushinteger(L, (lua_Integer)hub_room_size(r));
    lua_setfield(L, -2, hub_room_name(r));
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
    size_t n = hub_conn_room_count(c);
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_pushstring(L, hub_conn_room(c, i));
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

/* ---- attributes and connections -------------------------------------------------------- */

/* An attribute key: the hub keeps keys as C strings, so a NUL would make "a\0b" the key "a". */
static const char *check_key(lua_State *L, int arg)
{
    size_t len;
    const char *key = luaL_checklstring(L, arg, &len);
    luaL_argcheck(L, memchr(key, '\0', len) == NULL, arg, "key must not contain NUL");
    return key;
}

/* confab.set(id, key, value) */
static int l_set(lua_State *L)
{
    struct conn *c = check_known(L, 1);
    const char *key = check_key(L, 2);
    int t = lua_type(L, 3);
    luaL_argcheck(L, t == LUA_TNIL || t == LUA_TSTRING || t == LUA_TNUMBER || t == LUA_TBOOLEAN,
                  3, "value must be a string, number, boolean or nil");
    if (!c || (c->flags & CONN_REMOTE))
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
    if (rc == -2 || rc == -3) {
        luaL_pushfail(L);
        lua_pushstring(L, rc == -2 ? "attribute memory limit reached" : "too many attributes");
        return 2;
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
    const char *key = check_key(L, 2);
    if (!c)
        return stale(L);
    const struct attr *a = hub_attr_get(c, key);
    if (!a) {
        lua_pushnil(L);
        return 1;
    }
    switch (a->type) {
    case ATTR_STRING: {
        size_t len;
        const char *s = hub_attr_string(a, &len);
        lua_pushlstring(L, s, len);
        break;
    }
    case ATTR_INTEGER: lua_pushinteger(L, a->v.i); break;
    case ATTR_NUMBER: lua_pushnumber(L, a->v.n); break;
    default: lua_pushboolean(L, a->v.b); break;
    }
    return 1;
}

struct open_ids {
    uint64_t *ids;
    size_t n;
};

static void collect_open_id(struct conn *c, void *arg)
{
    struct open_ids *o = arg;
    if (conn_is_open(c) && (c->flags & CONN_OPENED))
        o->ids[o->n++] = c->id; /* room for every connection of the hub */
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* confab.connections(): the open ones, in id order (the order they connected in). */
static int l_connections(lua_State *L)
{
    size_t n = hub_count();
    /* A userdata: counted against the script's memory, and freed by the GC if pushing fails. */
    struct open_ids o = {lua_newuserdatauv(L, n ? n * sizeof *o.ids : 1, 0), 0};
    hub_each(collect_open_id, &o);
    qsort(o.ids, o.n, sizeof *o.ids, cmp_u64);
    lua_createtable(L, (int)o.n, 0);
    for (size_t i = 0; i < o.n; i++) {
        lua_pushinteger(L, (lua_Integer)o.ids[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

/* confab.info(id) */
static int l_info(lua_State *L)
{
    struct conn *c = check_known(L, 1);
    if (!c || (c->flags & CONN_REMOTE))
        return stale(L);
    const struct conn_meta *m = server_conn_meta(c);
    lua_createtable(L, 0, 4);
    if (m) {
        char remote[CONN_PEER_TEXT];
        lua_pushstring(L, conn_peer_text(&c->peer, remote, sizeof remote));
        lua_setfield(L, -2, "remote");
        lua_pushlstring(L, m->path, m->path_len);
        lua_setfield(L, -2, "path");
        lua_pushlstring(L, m->query, m->query_len);
        lua_setfield(L, -2, "query");
        if (*m->subprotocol) {
            lua_pushstring(L, m->subprotocol);
            lua_setfield(L, -2, "subprotocol");
        }
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

/* ---- posting and replay (ids from the core, or from Redis with --redis) ----------------- */

static void post_done(void *ctx, uint64_t id, const char *err)
{
    struct script_cb *cb = ctx;
    lua_State *L = script_cb_begin(cb);
    if (!L)
        return;
    if (id) {
        lua_pushinteger(L, (lua_Integer)id);
        script_cb_finish(cb, L, 1, "post callback");
    } else {
        lua_pushnil(L);
        lua_pushstring(L, err ? err : "failed");
        script_cb_finish(cb, L, 2, "post callback");
    }
}

/* confab.post(room, head, tail [, done]) → true | nil, err */
static int l_post(lua_State *L)
{
    size_t rlen, hlen, tlen;
    const char *room = check_room(L, 1, &rlen);
    const char *head = check_data(L, 2, 0, &hlen);
    const char *tail = check_data(L, 3, 0, &tlen);
    if (!lua_isnoneornil(L, 4))
        luaL_checktype(L, 4, LUA_TFUNCTION);
    lua_settop(L, 4);
    if (redis_enabled()) {
        presence_flush();
        struct script_cb *cb = script_cb_new(L, 4);
        if (!cb)
            return luaL_error(L, "not enough memory");
        const char *err = NULL;
        if (redis_room_post(room, rlen, head, hlen, tail, tlen, post_done, cb, &err) < 0) {
            script_cb_drop(cb);
            luaL_pushfail(L);
            lua_pushstring(L, err);
            return 2;
        }
        lua_pushboolean(L, 1);
        return 1;
    }
    /* Embedded: the next id of the room's history, stored, broadcast, done at once. */
    uint64_t id = hub_history_last(room, rlen) + 1;
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addlstring(&b, head, hlen);
    lua_pushinteger(L, (lua_Integer)id);
    luaL_addvalue(&b);
    luaL_addlstring(&b, tail, tlen);
    luaL_pushresult(&b);
    size_t dlen;
    const char *data = lua_tolstring(L, -1, &dlen);
    if (hub_history_add(room, rlen, id, data, dlen) < 0)
        return luaL_error(L, "not enough memory");
    struct room *r = hub_room(room, rlen);
    if (r && hub_room_size(r) > 0) {
        /* Plain and compressed frames built once each, if a member needs them (outmsg.h). */
        struct outmsg m;
        outmsg_init(&m, FRAME_TEXT, data, dlen);
        hub_broadcast_msg(r, &m, NULL);
        outmsg_release(&m);
    }
    if (!lua_isnil(L, 4)) {
        lua_pushvalue(L, 4);
        lua_pushinteger(L, (lua_Integer)id);
        script_pcall(L, "post callback", 1, 0);
    }
    lua_pushboolean(L, 1);
    return 1;
}

static void replay_done(void *ctx, const struct redis_entry *list, size_t n, int complete,
                        const char *err)
{
    struct script_cb *cb = ctx;
    lua_State *L = script_cb_begin(cb);
    if (!L)
        return;
    if (!list && err) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        script_cb_finish(cb, L, 2, "replay callback");
        return;
    }
    if (!lua_checkstack(L, 4)) {
        lua_pop(L, 1);
        script_cb_drop(cb);
        return;
    }
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_pushlstring(L, list[i].data, list[i].len);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_pushboolean(L, complete);
    script_cb_finish(cb, L, 2, "replay callback");
}

/* confab.replay(room, after, fn) → true | nil, err */
static int l_replay(lua_State *L)
{
    size_t rlen;
    const char *room = check_room(L, 1, &rlen);
    lua_Integer after = luaL_checkinteger(L, 2);
    luaL_argcheck(L, after >= 0, 2, "after must be 0 or an id");
    luaL_checktype(L, 3, LUA_TFUNCTION);
    lua_settop(L, 3);
    if (redis_enabled()) {
        struct script_cb *cb = script_cb_new(L, 3);
        if (!cb)
            return luaL_error(L, "not enough memory");
        const char *err = NULL;
        if (redis_room_replay(room, rlen, (uint64_t)after, replay_done, cb, &err) < 0) {
            script_cb_drop(cb);
            luaL_pushfail(L);
            lua_pushstring(L, err);
            return 2;
        }
        lua_pushboolean(L, 1);
        return 1;
    }
    /* Embedded: at once, from the room's history. */
    lua_pushvalue(L, 3);
    lua_newtable(L);
    int complete = (uint64_t)after <= hub_history_last(room, rlen) &&
                   hub_history_each(room, rlen, (uint64_t)after, push_entry, L);
    if (!complete) {
        lua_pop(L, 1);
        lua_newtable(L);
        hub_history_each(room, rlen, 0, push_entry, L);
    }
    lua_pushboolean(L, complete);
    script_pcall(L, "replay callback", 2, 0);
    lua_pushboolean(L, 1);
    return 1;
}

void script_set_epoch(int64_t epoch)
{
    script_limits.epoch = epoch;
    lua_State *L = script_current();
    if (!L)
        return;
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    if (lua_getfield(L, -1, "confab") == LUA_TTABLE) {
        lua_pushinteger(L, epoch);
        lua_setfield(L, -2, "epoch");
    }
    lua_pop(L, 2);
}

/* ---- claims (cluster-wide unique keys) ------------------------------------------------- */

static const char *check_claim_key(lua_State *L, int arg, size_t *len)
{
    const char *key = luaL_checklstring(L, arg, len);
    luaL_argcheck(L, *len > 0 && *len <= CLAIM_KEY_MAX, arg, "claim key must be 1 to 128 bytes");
    return key;
}

static const char *check_claim_value(lua_State *L, int arg, size_t *len)
{
    const char *value = luaL_checklstring(L, arg, len);
    luaL_argcheck(L, *len <= CLAIM_VALUE_MAX, arg, "claim value must be at most 256 bytes");
    return value;
}

static int same_value(const struct claim *c, const char *value, size_t len)
{
    return c->value_len == len && memcmp(c->value, value, len) == 0;
}

/* confab.claim(key, value, fn [, old]) → true | nil, err. fn(ok, value) gets the outcome:
 * true and value when this node now holds key, false and the holder's value when another does.
 * Granted when key is free, holds value already, or holds old. */
static int l_claim(lua_State *L)
{
    size_t klen, vlen, olen = 0;
    const char *key = check_claim_key(L, 1, &klen);
    const char *value = check_claim_value(L, 2, &vlen);
    luaL_checktype(L, 3, LUA_TFUNCTION);
    const char *old = lua_isnoneornil(L, 4) ? NULL : check_claim_value(L, 4, &olen);
    if (presence_active())
        return presence_claim(L, key, klen, value, vlen, old, olen);
    const struct claim *c = claims_get(key, klen);
    int granted = !c || same_value(c, value, vlen) || (old && same_value(c, old, olen));
    if (granted) {
        int rc = c || claims_count() < CLAIMS_MAX ? claims_put(key, klen, value, vlen,
                                                                presence_node())
                                                  : -2;
        if (rc == -2) {
            luaL_pushfail(L);
            lua_pushliteral(L, "too many claims");
            return 2;
        }
        if (rc < 0)
            return luaL_error(L, "not enough memory");
        c = claims_get(key, klen);
    }
    lua_pushvalue(L, 3);
    lua_pushboolean(L, granted);
    lua_pushlstring(L, c->value, c->value_len);
    script_pcall(L, "claim", 2, 0);
    lua_pushboolean(L, 1);
    return 1;
}

/* confab.release(key [, value]) → whether this node held key (with that value) and let it go */
static int l_release(lua_State *L)
{
    size_t klen, vlen = 0;
    const char *key = check_claim_key(L, 1, &klen);
    const char *value = lua_isnoneornil(L, 2) ? NULL : check_claim_value(L, 2, &vlen);
    const struct claim *c = claims_get(key, klen);
    int mine = c && c->node == presence_node() && (!value || same_value(c, value, vlen));
    if (mine) {
        if (presence_active())
            presence_release(key, klen, c->value, c->value_len);
        claims_del(key, klen);
    }
    lua_pushboolean(L, mine);
    return 1;
}

int confab_push_claim(lua_State *L, const char *key, size_t klen)
{
    const struct claim *c = claims_get(key, klen);
    if (c) {
        lua_pushlstring(L, c->value, c->value_len);
        lua_pushinteger(L, (lua_Integer)c->node);
    } else {
        lua_pushnil(L);
        lua_pushnil(L);
    }
    return 2;
}

/* confab.claimed(key) → value, node | nil; confab.claimed(key, fn) → true: fn(value, node) or
 * fn(nil) with the claim as Redis has it (without --redis: at once). */
static int l_claimed(lua_State *L)
{
    size_t klen;
    const char *key = check_claim_key(L, 1, &klen);
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TFUNCTION);
        lua_settop(L, 2);
        if (presence_active())
            return presence_lookup(L, key, klen);
        confab_push_claim(L, key, klen);
        script_pcall(L, "claimed", 2, 0);
        lua_pushboolean(L, 1);
        return 1;
    }
    if (!claims_get(key, klen)) {
        lua_pushnil(L);
        return 1;
    }
    return confab_push_claim(L, key, klen);
}

/* ---- time and logging ---------------------------------------------------------------- */

/* confab.node() → this node's id (0 without --redis) */
static int l_node(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)presence_node());
    return 1;
}

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
    luaL_checkstring(L, 2); /* the format, named as confab.log's argument */
    int n = lua_gettop(L);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &script_key_format);
    lua_rotate(L, 2, 1);
    lua_call(L, n - 1, 1);
    log_msg((enum log_level)level, "script: %s", lua_tostring(L, -1));
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
    {"post", l_post},
    {"replay", l_replay},
    {"claim", l_claim},
    {"release", l_release},
    {"claimed", l_claimed},
    {"node", l_node},
    {"now", l_now},
    {"log", l_log},
    {"after", script_timer_after},
    {"every", script_timer_every},
    {"urldecode", script_urldecode},
    {NULL, NULL},
};

/* The module table, with confab.epoch; also sets up what its functions keep in the registry
 * (hook lists, the timer metatable, string.format for confab.log: the string library must be
 * open). */
int luaopen_confab(lua_State *L)
{
    /* Hook lists, one per event. */
    lua_createtable(L, H_COUNT, 0);
    for (int i = 0; i < H_COUNT; i++) {
        lua_newtable(L);
        lua_rawseti(L, -2, i + 1);
    }
    lua_rawsetp(L, LUA_REGISTRYINDEX, &script_key_hooks);

    lua_getglobal(L, "string");
    lua_getfield(L, -1, "format");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &script_key_format);
    lua_pop(L, 1);

    script_timer_open(L);

    luaL_newlib(L, confab_funcs);
    lua_pushinteger(L, script_limits.epoch);
    lua_setfield(L, -2, "epoch");
    return 1;
}
