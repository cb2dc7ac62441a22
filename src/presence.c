/* presence: the cluster side of connections, claims and node liveness (see presence.h and
 * docs/redis-design.md, "Presence"). Everything lives on shard 0 under the hash tag {p}:
 *
 *   confab:{p}:nodes      counter: node ids (INCR)
 *   confab:{p}:alive      sorted set: node -> deadline (ms, Redis clock) of its next heartbeat
 *   confab:{p}:dead:N     tombstone of a node declared dead (a day), so it cannot come back as N
 *   confab:{p}:n:N        hash: connection id -> its state (rooms, attributes) for node N
 *   confab:{p}:claims     hash: key -> "NODE VALUE"
 *   confab:{p}:cl:N       set: the claim keys node N holds
 *   channel confab:p      "c NODE ID STATE" (a connection's state; STATE "" = gone),
 *                         "d DEAD REAPER" (a node declared dead), "k NODE KLEN KEYVALUE" (a claim),
 *                         "u KEY" (released), "s ID BINARY DATA" (a frame for a connection),
 *                         "x ID CODE REASON" (close a connection)
 *
 * Each node keeps a mirror: other nodes' connections as CONN_REMOTE conns in the hub (rooms and
 * attributes), the claims table. Scripts in Redis make each change and its PUBLISH one atomic
 * step; the mirror is read again whole when the subscriber link (re)subscribes. A node's own
 * connections are published at the loop's safe point after they change (one state each). */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "claims.h"
#include "hub.h"
#include "log.h"
#include "presence.h"
#include "presence_state.h"
#include "redis_link.h"
#include "script.h"
#include "script_int.h"

#define CHANNEL "confab:p"
#define K_NODES "confab:{p}:nodes"
#define K_ALIVE "confab:{p}:alive"
#define K_CLAIMS "confab:{p}:claims"

/* ---- scripts --------------------------------------------------------------------------- */

/* PUT: KEYS[1] alive, KEYS[2] n:NODE; ARGV node, id, state ("" = gone). Nothing for a node
 * that is not alive (declared dead: it must not put its connections back). */
static const char PUT_LUA[] =
    "if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end\n"
    "if ARGV[3] == '' then redis.call('HDEL', KEYS[2], ARGV[2])\n"
    "else redis.call('HSET', KEYS[2], ARGV[2], ARGV[3]) end\n"
    "redis.call('PUBLISH', 'confab:p', 'c ' .. ARGV[1] .. ' ' .. ARGV[2] .. ' ' .. ARGV[3])\n"
    "return 1\n";

/* BEAT: KEYS[1] alive, KEYS[2] nodes, KEYS[3] claims; ARGV node, ttl ms. Returns {status, dead
 * nodes this call declared dead...}: status -1 = this node was declared dead (fenced), 1 = it
 * was not known (first beat, or Redis lost its data: put state and claims again), 0 = fine. */
static const char BEAT_LUA[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local me = ARGV[1]\n"
    "local status = 0\n"
    "local mine = redis.call('ZSCORE', KEYS[1], me)\n"
    "if not mine then\n"
    "  if redis.call('EXISTS', 'confab:{p}:dead:' .. me) == 1 then return {-1} end\n"
    "  status = 1\n"
    "  if tonumber(redis.call('GET', KEYS[2]) or '0') < tonumber(me) then\n"
    "    redis.call('SET', KEYS[2], me) end\n"
    "end\n"
    "redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), me)\n"
    "local out = {status}\n"
    "-- A node that was out of touch itself (new, or its own deadline passed: Redis was away)\n"
    "-- declares nobody dead this time: the others get a heartbeat's chance first.\n"
    "if not mine or tonumber(mine) < now then return out end\n"
    "for _, d in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)) do\n"
    "  redis.call('ZREM', KEYS[1], d)\n"
    "  redis.call('SET', 'confab:{p}:dead:' .. d, '1', 'EX', 86400)\n"
    "  for _, k in ipairs(redis.call('SMEMBERS', 'confab:{p}:cl:' .. d)) do\n"
    "    local v = redis.call('HGET', KEYS[3], k)\n"
    "    if v and string.sub(v, 1, #d + 1) == d .. ' ' then\n"
    "      redis.call('HSET', KEYS[3], k, me .. string.sub(v, #d + 1))\n"
    "      redis.call('SADD', 'confab:{p}:cl:' .. me, k)\n"
    "    end\n"
    "  end\n"
    "  redis.call('DEL', 'confab:{p}:cl:' .. d, 'confab:{p}:n:' .. d)\n"
    "  redis.call('PUBLISH', 'confab:p', 'd ' .. d .. ' ' .. me)\n"
    "  out[#out + 1] = tonumber(d)\n"
    "end\n"
    "return out\n";

/* CLAIM: KEYS[1] claims, KEYS[2] alive; ARGV node, key, value [, old]. Returns {1, value} when
 * granted, {0, node, value} when held by another value, {-1} when this node is not alive, {-2}
 * for a new key when CLAIMS_MAX claims are held (every node's mirror can then hold them all). */
#define CLAIMS_MAX_STR_(n) #n
#define CLAIMS_MAX_STR(n) CLAIMS_MAX_STR_(n)
static const char CLAIM_LUA[] =
    "if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then return {-1} end\n"
    "local cur = redis.call('HGET', KEYS[1], ARGV[2])\n"
    "if not cur and redis.call('HLEN', KEYS[1]) >= " CLAIMS_MAX_STR(CLAIMS_MAX) " then\n"
    "  return {-2}\n"
    "end\n"
    "if cur then\n"
    "  local sp = string.find(cur, ' ', 1, true)\n"
    "  local node, val = string.sub(cur, 1, sp - 1), string.sub(cur, sp + 1)\n"
    "  if val ~= ARGV[3] and (ARGV[4] == nil or val ~= ARGV[4]) then return {0, node, val} end\n"
    "  if node ~= ARGV[1] then redis.call('SREM', 'confab:{p}:cl:' .. node, ARGV[2]) end\n"
    "end\n"
    "redis.call('HSET', KEYS[1], ARGV[2], ARGV[1] .. ' ' .. ARGV[3])\n"
    "redis.call('SADD', 'confab:{p}:cl:' .. ARGV[1], ARGV[2])\n"
    "redis.call('PUBLISH', 'confab:p', 'k ' .. ARGV[1] .. ' ' .. #ARGV[2] .. ' ' .. ARGV[2] ..\n"
    "  ARGV[3])\n"
    "return {1, ARGV[3]}\n";

/* SYNC: KEYS[1] alive, KEYS[2] claims; ARGV node. The whole mirror in one step: {live nodes,
 * {id, state, ...} of the other nodes' connections, {key, "NODE VALUE", ...}}. */
static const char SYNC_LUA[] =
    "local nodes = redis.call('ZRANGE', KEYS[1], 0, -1)\n"
    "local conns = {}\n"
    "for _, n in ipairs(nodes) do\n"
    "  if n ~= ARGV[1] then\n"
    "    local h = redis.call('HGETALL', 'confab:{p}:n:' .. n)\n"
    "    for i = 1, #h do conns[#conns + 1] = h[i] end\n"
    "  end\n"
    "end\n"
    "return {nodes, conns, redis.call('HGETALL', KEYS[2])}\n";

/* RELEASE: KEYS[1] claims; ARGV node, key, value. */
static const char RELEASE_LUA[] =
    "if redis.call('HGET', KEYS[1], ARGV[2]) ~= ARGV[1] .. ' ' .. ARGV[3] then return 0 end\n"
    "redis.call('HDEL', KEYS[1], ARGV[2])\n"
    "redis.call('SREM', 'confab:{p}:cl:' .. ARGV[1], ARGV[2])\n"
    "redis.call('PUBLISH', 'confab:p', 'u ' .. ARGV[2])\n"
    "return 1\n";

/* ---- state ----------------------------------------------------------------------------- */

static struct {
    int active;
    uint64_t node;
    struct ev_loop *loop;
    double heartbeat;
    ev_timer beat;
    ev_prepare flush;
    uint64_t *dirty;
    size_t ndirty, capdirty;
    int s_put, s_beat, s_claim, s_release, s_sync;
    int fenced;       /* declared dead: getting a new node id */
    int beat_pending; /* a BEAT is in flight */
    int known;        /* a BEAT of this node id was answered (its first one registers it) */
    unsigned sync_gen;/* the mirror read in progress */
    struct presence_stats stats;
} P;

struct claim_ctx {
    struct script_cb *cb;
    char key[CLAIM_KEY_MAX];
    size_t klen;
    /* While it waits for the link (queued): what to send, and until when. */
    struct claim_ctx *next;
    double deadline;
    char *value, *old;
    size_t vlen, olen;
};

/* Claims made while the link is not up wait for it (at most CLAIMS_WAITING, --redis-timeout). */
#define CLAIMS_WAITING 10000
static struct claim_ctx *waiting, **waiting_tail = &waiting;
static size_t nwaiting;
static double claim_timeout;

int presence_active(void)
{
    return P.active;
}

uint64_t presence_node(void)
{
    return P.node;
}

void presence_get_stats(struct presence_stats *out)
{
    *out = P.stats;
}

static int node_of(uint64_t id)
{
    return (int)(id >> 32);
}

/* ---- calls ----------------------------------------------------------------------------- */

static int eval(int script, int nkeys, int argc, const char **argv, const size_t *lens,
                redis_cb *cb, void *ctx)
{
    return redis_eval(0, script, nkeys, argc, argv, lens, cb, ctx);
}

static void publish(const char *msg, size_t len)
{
    const char *argv[] = {"PUBLISH", CHANNEL, msg};
    size_t lens[] = {7, sizeof CHANNEL - 1, len};
    redis_call(0, 3, argv, lens, NULL, NULL);
}

/* ---- our connections: published at the safe point -------------------------------------- */

static void on_changed(struct conn *c)
{
    if (node_of(c->id) != (int)P.node || P.fenced)
        return;
    for (size_t i = 0; i < P.ndirty; i++)
        if (P.dirty[i] == c->id)
            return;
    if (P.ndirty == P.capdirty) {
        size_t cap = P.capdirty ? P.capdirty * 2 : 64;
        uint64_t *d = realloc(P.dirty, cap * sizeof *d);
        if (!d) {
            log_msg(LOG_ERROR, "presence: out of memory: a connection's state is not published");
            return;
        }
        P.dirty = d;
        P.capdirty = cap;
    }
    P.dirty[P.ndirty++] = c->id;
}

static void put_state(uint64_t id)
{
    char node[24], idbuf[24], key[48];
    snprintf(node, sizeof node, "%" PRIu64, P.node);
    snprintf(idbuf, sizeof idbuf, "%" PRIu64, id);
    snprintf(key, sizeof key, "confab:{p}:n:%" PRIu64, P.node);
    struct conn *c = hub_find(id);
    struct pstate_buf b = {0};
    if (c && !(c->flags & CONN_REMOTE) && presence_state_encode(c, &b) < 0) {
        free(b.p);
        log_msg(LOG_ERROR, "presence: out of memory: a connection's state is not published");
        return;
    }
    const char *argv[] = {K_ALIVE, key, node, idbuf, b.p ? b.p : ""};
    size_t lens[] = {sizeof K_ALIVE - 1, strlen(key), strlen(node), strlen(idbuf), b.len};
    if (eval(P.s_put, 2, 5, argv, lens, NULL, NULL) == 0)
        P.stats.puts++;
    free(b.p);
}

static void on_flush(EV_P_ ev_prepare *w, int revents);

void presence_flush(void)
{
    if (P.active)
        on_flush(P.loop, &P.flush, 0);
}

static void on_flush(EV_P_ ev_prepare *w, int revents)
{
    (void)w, (void)revents;
    if (!P.ndirty || P.fenced)
        return;
    if (!redis_up(0))
        return; /* kept: published once Redis is back (see on_link) */
    for (size_t i = 0; i < P.ndirty; i++)
        put_state(P.dirty[i]);
    P.ndirty = 0;
    redis_flush(0);
}

/* ---- the mirror ------------------------------------------------------------------------ */

/* Applies a state message of another node's connection (state "" or NULL: gone). */
static void apply_state(uint64_t id, const char *state, size_t len)
{
    struct conn *c = hub_find(id);
    if (c && !(c->flags & CONN_REMOTE))
        return; /* ours */
    if (!state || len == 0) {
        if (c)
            hub_remove_remote(c);
        return;
    }
    if (!c)
        c = hub_add_remote(id);
    if (!c || presence_state_apply(c, state, len) < 0)
        log_msg(LOG_WARN, "presence: could not mirror connection %" PRIu64, id);
}

/* ---- roster: the script hears of changes to this node's mirror ------------------------ */

/* Rooms whose mirrored members changed by the message being applied (names copied: a room goes
 * with its last member). The `roster` hooks run once the message is applied: chat.lua sends a
 * fresh member list when one it sent may have crossed the change (docs/hooks.md, "Many nodes"). */
static struct {
    char **names;
    size_t n, cap;
} roster;

static void roster_mark(const struct conn *c)
{
    if (!c || !(c->flags & CONN_REMOTE))
        return;
    size_t n = hub_conn_room_count(c);
    for (size_t i = 0; i < n; i++) {
        const char *room = hub_conn_room(c, i);
        int seen = 0;
        for (size_t j = 0; j < roster.n && !seen; j++)
            seen = strcmp(roster.names[j], room) == 0;
        if (seen)
            continue;
        if (roster.n == roster.cap) {
            size_t cap = roster.cap ? roster.cap * 2 : 8;
            char **names = realloc(roster.names, cap * sizeof *names);
            if (!names)
                return;
            roster.names = names;
            roster.cap = cap;
        }
        char *copy = strdup(room);
        if (copy)
            roster.names[roster.n++] = copy;
    }
}

static void roster_run(void)
{
    char **names = roster.names;
    size_t n = roster.n;
    roster.names = NULL;
    roster.n = roster.cap = 0;
    for (size_t i = 0; i < n; i++) {
        script_roster(names[i], strlen(names[i]), 0);
        free(names[i]);
    }
    free(names);
}

/* After a whole read of the mirror: what the channel said while the subscriber link was down
 * (joined/left frames included) is lost for this node's clients, so every room with members here
 * hears of it. */
static void roster_synced(struct room *r, void *arg)
{
    (void)arg;
    if (hub_room_local_size(r) > 0) {
        const char *name = hub_room_name(r);
        script_roster(name, strlen(name), 1);
    }
}

struct id_list {
    uint64_t *ids;
    size_t n, cap;
};

static void collect_node(struct conn *c, void *arg)
{
    struct id_list *l = arg;
    if (!(c->flags & CONN_REMOTE) || node_of(c->id) != (int)l->cap)
        return;
    uint64_t *ids = realloc(l->ids, (l->n + 1) * sizeof *ids);
    if (!ids)
        return;
    l->ids = ids;
    l->ids[l->n++] = c->id;
}

static int cmp_id(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The mirrored connections of node (ids, ascending). cap is borrowed for the node. */
static struct id_list node_conns(int node)
{
    struct id_list l = {NULL, 0, (size_t)node};
    hub_each(collect_node, &l);
    if (l.n)
        qsort(l.ids, l.n, sizeof *l.ids, cmp_id);
    return l;
}

struct move_arg {
    uint64_t from, to;
};

static void move_claim(const struct claim *c, void *arg)
{
    struct move_arg *m = arg;
    if (c->node == m->from)
        ((struct claim *)c)->node = m->to;
}

/* Node dead was declared dead by reaper: its connections go from the mirror; when we are the
 * reaper, through their leave and disconnect hooks (so the script runs them exactly once in
 * the cluster). Its claims are the reaper's now. Idempotent: the script's reply and the PUBLISH
 * both tell the reaper. */
static void node_dead(int dead, int reaper)
{
    if (dead == (int)P.node)
        return;
    claims_each(move_claim, &(struct move_arg){(uint64_t)dead, (uint64_t)reaper});
    struct id_list l = node_conns(dead);
    if (l.n)
        log_msg(LOG_INFO, "presence: node %d is gone: %zu connections%s", dead, l.n,
                reaper == (int)P.node ? " (their hooks run here)" : "");
    for (size_t i = 0; i < l.n; i++) {
        struct conn *c = hub_find(l.ids[i]);
        if (!c || !(c->flags & CONN_REMOTE))
            continue;
        if (reaper == (int)P.node) {
            script_disconnect(c, 1006, "connection lost");
            P.stats.reaped++;
        }
        c = hub_find(l.ids[i]);
        if (c && (c->flags & CONN_REMOTE)) {
            roster_mark(c); /* in no room any more when its hooks ran here */
            hub_remove_remote(c);
        }
    }
    free(l.ids);
    roster_run();
}

static void drop_remote(struct conn *c, void *arg)
{
    struct id_list *l = arg;
    if (!(c->flags & CONN_REMOTE))
        return;
    uint64_t *ids = realloc(l->ids, (l->n + 1) * sizeof *ids);
    if (!ids)
        return;
    l->ids = ids;
    l->ids[l->n++] = c->id;
}

/* Forgets mirrored connections: of one node (node > 0), or all but those of the nodes listed. */
static void forget_remote(int node, const int *keep, size_t nkeep)
{
    struct id_list l = {0};
    hub_each(drop_remote, &l);
    for (size_t i = 0; i < l.n; i++) {
        int n = node_of(l.ids[i]);
        int kept = 0;
        if (node > 0)
            kept = n != node;
        for (size_t k = 0; k < nkeep; k++)
            kept |= n == keep[k];
        struct conn *c = hub_find(l.ids[i]);
        if (!kept && c)
            hub_remove_remote(c);
    }
    free(l.ids);
}

/* Set when the subscriber link (re)subscribed: the mirror is read again once the command link is
 * up too (the two links come up in either order). */
static int need_sync = 1;

/* While a SYNC is in flight, what the channel changed meanwhile is newer than the reply may be:
 * those connections, claim keys and dead nodes are left as the channel made them. */
static struct {
    int on;
    uint64_t *ids;
    size_t nids;
    char **keys;
    size_t nkeys;
    int *dead;
    size_t ndead;
} touched;

static void touched_clear(void)
{
    for (size_t i = 0; i < touched.nkeys; i++)
        free(touched.keys[i]);
    free(touched.ids);
    free(touched.keys);
    free(touched.dead);
    memset(&touched, 0, sizeof touched);
}

static void touch_id(uint64_t id)
{
    if (!touched.on)
        return;
    uint64_t *ids = realloc(touched.ids, (touched.nids + 1) * sizeof *ids);
    if (ids) {
        touched.ids = ids;
        touched.ids[touched.nids++] = id;
    }
}

static void touch_key(const char *key, size_t len)
{
    if (!touched.on)
        return;
    char **keys = realloc(touched.keys, (touched.nkeys + 1) * sizeof *keys);
    if (!keys)
        return;
    touched.keys = keys;
    char *k = malloc(len + 1);
    if (!k)
        return;
    memcpy(k, key, len);
    k[len] = '\0';
    touched.keys[touched.nkeys++] = k;
}

static void touch_dead(int node)
{
    if (!touched.on)
        return;
    int *d = realloc(touched.dead, (touched.ndead + 1) * sizeof *d);
    if (d) {
        touched.dead = d;
        touched.dead[touched.ndead++] = node;
    }
}

static int was_touched(uint64_t id)
{
    for (size_t i = 0; i < touched.nids; i++)
        if (touched.ids[i] == id)
            return 1;
    for (size_t i = 0; i < touched.ndead; i++)
        if (touched.dead[i] == node_of(id))
            return 1;
    return 0;
}

static int key_touched(const char *key, size_t len)
{
    for (size_t i = 0; i < touched.nkeys; i++)
        if (strlen(touched.keys[i]) == len && memcmp(touched.keys[i], key, len) == 0)
            return 1;
    return 0;
}

struct drop_claims {
    const char **keys;
    size_t n;
};

static void unseen_claim(const struct claim *c, void *arg)
{
    struct drop_claims *d = arg;
    if (c->mark != P.sync_gen && !key_touched(c->key, strlen(c->key))) {
        const char **k = realloc(d->keys, (d->n + 1) * sizeof *k);
        if (k) {
            d->keys = k;
            d->keys[d->n++] = c->key;
        }
    }
}

static void on_sync(void *ctx, const redisReply *r, const char *err)
{
    unsigned gen = (unsigned)(uintptr_t)ctx;
    if (gen != P.sync_gen || P.fenced)
        return;
    if (err || !r || r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[1]->type != REDIS_REPLY_ARRAY || r->element[2]->type != REDIS_REPLY_ARRAY) {
        need_sync = 1; /* again at the next link event or heartbeat */
        touched_clear();
        return;
    }
    /* Connections: every mirrored one not in the reply is gone (its node is, or it left). */
    const redisReply *conns = r->element[1];
    struct id_list l = {0};
    hub_each(drop_remote, &l);
    for (size_t i = 0; i + 1 < conns->elements; i += 2) {
        const redisReply *k = conns->element[i], *v = conns->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        uint64_t id = strtoull(k->str, NULL, 10);
        if (node_of(id) == (int)P.node || was_touched(id))
            continue;
        apply_state(id, v->str, v->len);
        for (size_t j = 0; j < l.n; j++)
            if (l.ids[j] == id)
                l.ids[j] = 0;
    }
    for (size_t j = 0; j < l.n; j++) {
        struct conn *c = l.ids[j] && !was_touched(l.ids[j]) ? hub_find(l.ids[j]) : NULL;
        if (c && (c->flags & CONN_REMOTE))
            hub_remove_remote(c);
    }
    free(l.ids);
    /* Claims: those in the reply (unless the channel changed them since), then away with the
     * rest (unless the channel put them there since). */
    const redisReply *cl = r->element[2];
    for (size_t i = 0; i + 1 < cl->elements; i += 2) {
        const redisReply *k = cl->element[i], *v = cl->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        const char *sp = memchr(v->str, ' ', v->len);
        if (!sp || k->len == 0 || k->len > CLAIM_KEY_MAX || key_touched(k->str, k->len))
            continue;
        uint64_t node = strtoull(v->str, NULL, 10);
        size_t off = (size_t)(sp + 1 - v->str);
        if (claims_put(k->str, k->len, sp + 1, v->len - off, node) == 0)
            claims_mark(k->str, k->len, P.sync_gen);
    }
    struct drop_claims d = {0};
    claims_each(unseen_claim, &d);
    for (size_t i = 0; i < d.n; i++)
        claims_del(d.keys[i], strlen(d.keys[i]));
    free(d.keys);
    touched_clear();
    P.stats.syncs++;
    hub_each_room(roster_synced, NULL);
}

/* Reads the whole mirror again (one script call: anything this node asks Redis afterwards is
 * answered after it). */
static void sync_mirror(void)
{
    if (!redis_up(0) || P.fenced)
        return;
    char node[24];
    snprintf(node, sizeof node, "%" PRIu64, P.node);
    const char *argv[] = {K_ALIVE, K_CLAIMS, node};
    size_t lens[] = {sizeof K_ALIVE - 1, sizeof K_CLAIMS - 1, strlen(node)};
    P.sync_gen++;
    touched_clear();
    if (eval(P.s_sync, 2, 3, argv, lens, on_sync, (void *)(uintptr_t)P.sync_gen) == 0) {
        need_sync = 0;
        touched.on = 1;
    }
}

/* ---- messages on the channel ----------------------------------------------------------- */

/* Reads a decimal number and the space after it. */
static int read_num(const char **p, const char *end, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;
    int digits = 0;
    while (s < end && *s >= '0' && *s <= '9' && digits < 20) {
        v = v * 10 + (uint64_t)(*s++ - '0');
        digits++;
    }
    if (!digits || s >= end || *s != ' ')
        return -1;
    *p = s + 1;
    *out = v;
    return 0;
}

static void deliver_frame(uint64_t id, const char *data, size_t len, int binary)
{
    struct conn *c = hub_find(id);
    if (!c || (c->flags & CONN_REMOTE) || !conn_is_open(c))
        return;
    struct frame *f = frame_ws(binary ? FRAME_BINARY : FRAME_TEXT, data, len);
    if (!f)
        return;
    hub_send(c, f);
    frame_unref(f);
}

static void fenced(void);

static void on_msg(void *ctx, unsigned shard, const char *ch, size_t chlen, const char *data,
                   size_t len)
{
    (void)ctx, (void)ch, (void)chlen;
    if (shard != 0 || len < 2 || P.fenced)
        return;
    const char *p = data + 2, *end = data + len;
    uint64_t a, b;
    switch (data[0]) {
    case 'c': /* c NODE ID STATE */
        if (read_num(&p, end, &a) < 0 || read_num(&p, end, &b) < 0 || a == P.node)
            return;
        if (node_of(b) != (int)a)
            return;
        touch_id(b);
        roster_mark(hub_find(b));
        apply_state(b, p, (size_t)(end - p));
        roster_mark(hub_find(b));
        roster_run();
        break;
    case 'd': /* d DEAD REAPER */
        if (read_num(&p, end, &a) < 0)
            return;
        if (a == P.node) {
            /* We were declared dead while we could not run (SIGSTOP, a stalled VM): this comes
             * before anything the cluster did afterwards (a returning user's hello on another
             * node, its close of our old connection), so we stop acting as that node now, not
             * at our next heartbeat's answer: a message after this one must not run our clients'
             * hooks a second time (B4: a close forwarded here ran the leave hook again and told
             * the room, the returning user included, that the user left). */
            fenced();
            return;
        }
        b = strtoull(p, NULL, 10);
        touch_dead((int)a);
        node_dead((int)a, (int)b);
        break;
    case 'k': /* k NODE KLEN KEYVALUE */
        if (read_num(&p, end, &a) < 0 || read_num(&p, end, &b) < 0 || b == 0 ||
            b > CLAIM_KEY_MAX || b > (uint64_t)(end - p))
            return;
        touch_key(p, b);
        claims_put(p, b, p + b, (size_t)(end - p) - b, a);
        break;
    case 'u': /* u KEY */
        touch_key(p, (size_t)(end - p));
        claims_del(p, (size_t)(end - p));
        break;
    case 's': /* s ID BINARY DATA */
        if (read_num(&p, end, &a) < 0 || read_num(&p, end, &b) < 0)
            return;
        if (node_of(a) == (int)P.node)
            deliver_frame(a, p, (size_t)(end - p), b != 0);
        break;
    case 'x': { /* x ID CODE REASON */
        if (read_num(&p, end, &a) < 0 || read_num(&p, end, &b) < 0 || node_of(a) != (int)P.node)
            return;
        struct conn *c = hub_find(a);
        if (c && !(c->flags & CONN_REMOTE) && conn_is_open(c)) {
            char reason[124];
            size_t n = (size_t)(end - p) < sizeof reason - 1 ? (size_t)(end - p) : sizeof reason - 1;
            memcpy(reason, p, n);
            reason[n] = '\0';
            hub_close(c, (uint16_t)b, reason);
        }
        break;
    }
    default:
        break;
    }
}

/* ---- heartbeat, death, fencing --------------------------------------------------------- */

static void republish_all(struct conn *c, void *arg)
{
    (void)arg;
    if (!(c->flags & CONN_REMOTE) && conn_is_open(c))
        on_changed(c);
}

static void reclaim(const struct claim *c, void *arg);
static void register_again(void);

static void close_silently(struct conn *c, void *arg)
{
    (void)arg;
    if (c->flags & CONN_REMOTE || !conn_is_open(c))
        return;
    /* Its leave and disconnect hooks ran on the node that declared this one dead: none here,
     * and it is in no room from now on (the close handshake may take a while). */
    c->flags &= (uint16_t)~CONN_OPENED;
    size_t n;
    while ((n = hub_conn_room_count(c)) > 0) {
        char room[HUB_ROOM_NAME_MAX + 1];
        snprintf(room, sizeof room, "%s", hub_conn_room(c, n - 1));
        if (hub_leave(c, room, strlen(room)) != 1)
            break;
    }
    hub_close(c, 1001, "this server was cut off from the cluster; reconnect");
}

static void fenced(void)
{
    if (P.fenced)
        return; /* told twice (the channel, then a heartbeat's answer) */
    log_msg(LOG_WARN, "presence: node %" PRIu64 " was declared dead (silent past the heartbeat): "
            "closing its clients, joining again as a new node", P.node);
    P.fenced = 1;
    P.stats.fenced++;
    P.ndirty = 0;
    forget_remote(-1, NULL, 0);
    claims_clear();
    hub_each(close_silently, NULL);
    register_again();
}

static void on_beat(void *ctx, const redisReply *r, const char *err)
{
    P.beat_pending = 0;
    if ((uint64_t)(uintptr_t)ctx != P.node || P.fenced)
        return; /* sent as the node we were before being fenced: the new one beats on its own */
    if (err || !r || r->type != REDIS_REPLY_ARRAY || r->elements < 1) {
        if (r && r->type == REDIS_REPLY_ERROR)
            log_msg(LOG_WARN, "presence: heartbeat: %s", r->str);
        return;
    }
    long long status = r->element[0]->integer;
    if (status == -1) {
        fenced();
        return;
    }
    P.stats.beats++;
    if (status == 1 && P.known) {
        /* Redis lost what it had of us: our connections and claims go back. */
        log_msg(LOG_WARN, "presence: Redis did not know node %" PRIu64 ": publishing its "
                "connections and claims again", P.node);
        hub_each(republish_all, NULL);
        claims_each(reclaim, NULL);
        redis_flush(0);
    }
    P.known = 1;
    for (size_t i = 1; i < r->elements; i++) {
        touch_dead((int)r->element[i]->integer);
        node_dead((int)r->element[i]->integer, (int)P.node);
    }
}

static void beat(void)
{
    if (P.beat_pending || P.fenced || !redis_up(0))
        return;
    char node[24], ttl[24];
    snprintf(node, sizeof node, "%" PRIu64, P.node);
    snprintf(ttl, sizeof ttl, "%lld", (long long)(P.heartbeat * 3000));
    const char *argv[] = {K_ALIVE, K_NODES, K_CLAIMS, node, ttl};
    size_t lens[] = {sizeof K_ALIVE - 1, sizeof K_NODES - 1, sizeof K_CLAIMS - 1, strlen(node),
                     strlen(ttl)};
    if (eval(P.s_beat, 3, 5, argv, lens, on_beat, (void *)(uintptr_t)P.node) == 0)
        P.beat_pending = 1;
}

static void claims_waiting_run(int up);

static void on_beat_timer(EV_P_ ev_timer *w, int revents)
{
    (void)w, (void)revents;
    beat();
    if (need_sync)
        sync_mirror();
    if (nwaiting)
        claims_waiting_run(redis_up(0));
}

static void on_new_id(void *ctx, const redisReply *r, const char *err)
{
    (void)ctx;
    if (err || !r || r->type != REDIS_REPLY_INTEGER || r->integer <= 0 ||
        r->integer >= (1 << 20)) {
        /* Tried again at the next link event or heartbeat. */
        P.fenced = 2;
        return;
    }
    P.node = (uint64_t)r->integer;
    hub_set_id_base(P.node << 32);
    P.fenced = 0;
    P.known = 0;
    log_msg(LOG_INFO, "presence: this node is node %" PRIu64 " now", P.node);
    beat();
    sync_mirror();
    claims_waiting_run(1);
}

static void register_again(void)
{
    const char *argv[] = {"INCR", K_NODES};
    size_t lens[] = {4, sizeof K_NODES - 1};
    if (redis_call(0, 2, argv, lens, on_new_id, NULL) < 0)
        P.fenced = 2; /* retried when the link is up */
}

/* ---- claims ---------------------------------------------------------------------------- */


static void on_claim(void *ctx, const redisReply *r, const char *err)
{
    struct claim_ctx *cc = ctx;
    int ok = -1;
    const char *val = err ? err : "redis error";
    size_t vlen = strlen(val);
    if (!err && r && r->type == REDIS_REPLY_ARRAY && r->elements >= 1) {
        long long st = r->element[0]->integer;
        if (st == 1 && r->elements >= 2) {
            ok = 1;
            val = r->element[1]->str;
            vlen = r->element[1]->len;
            /* The mirror knows at once (the PUBLISH comes too, to every node). */
            claims_put(cc->key, cc->klen, val, vlen, P.node);
        } else if (st == 0 && r->elements >= 3) {
            ok = 0;
            uint64_t node = strtoull(r->element[1]->str, NULL, 10);
            val = r->element[2]->str;
            vlen = r->element[2]->len;
            claims_put(cc->key, cc->klen, val, vlen, node);
        } else if (st == -2) {
            val = "too many claims";
            vlen = strlen(val);
        } else {
            val = "this node is being cut off from the cluster";
            vlen = strlen(val);
        }
    } else if (r && r->type == REDIS_REPLY_ERROR) {
        val = r->str;
        vlen = r->len;
    }
    if (!cc->cb) {
        free(cc);
        return;
    }
    lua_State *L = script_cb_begin(cc->cb);
    if (L) {
        if (ok < 0)
            lua_pushnil(L);
        else
            lua_pushboolean(L, ok);
        lua_pushlstring(L, val, vlen);
        script_cb_finish(cc->cb, L, 2, "claim");
    }
    free(cc);
}

static int send_claim(const char *key, size_t klen, const char *value, size_t vlen,
                      const char *old, size_t olen, struct claim_ctx *cc)
{
    char node[24];
    snprintf(node, sizeof node, "%" PRIu64, P.node);
    const char *argv[] = {K_CLAIMS, K_ALIVE, node, key, value, old};
    size_t lens[] = {sizeof K_CLAIMS - 1, sizeof K_ALIVE - 1, strlen(node), klen, vlen, olen};
    return eval(P.s_claim, 2, old ? 6 : 5, argv, lens, on_claim, cc);
}

static void reclaim(const struct claim *c, void *arg)
{
    (void)arg;
    if (c->node != P.node)
        return;
    struct claim_ctx *cc = calloc(1, sizeof *cc);
    if (!cc)
        return;
    memcpy(cc->key, c->key, strlen(c->key));
    cc->klen = strlen(c->key);
    if (send_claim(c->key, cc->klen, c->value, c->value_len, NULL, 0, cc) < 0)
        free(cc);
}

/* Answers a claim that never reached Redis. */
static void claim_failed(struct claim_ctx *cc, const char *why)
{
    lua_State *L = cc->cb ? script_cb_begin(cc->cb) : NULL;
    if (L) {
        lua_pushnil(L);
        lua_pushstring(L, why);
        script_cb_finish(cc->cb, L, 2, "claim");
    }
    free(cc->value);
    free(cc->old);
    free(cc);
}

/* Sends the waiting claims (link up), or fails those past their deadline. */
static void claims_waiting_run(int up)
{
    double now = ev_now(P.loop);
    struct claim_ctx *list = waiting;
    waiting = NULL;
    waiting_tail = &waiting;
    nwaiting = 0;
    while (list) {
        struct claim_ctx *cc = list;
        list = cc->next;
        cc->next = NULL;
        if (up && !P.fenced &&
            send_claim(cc->key, cc->klen, cc->value, cc->vlen, cc->old, cc->olen, cc) == 0) {
            free(cc->value);
            free(cc->old);
            cc->value = cc->old = NULL;
        } else if (now >= cc->deadline || P.fenced) {
            claim_failed(cc, "redis unavailable");
        } else {
            *waiting_tail = cc;
            waiting_tail = &cc->next;
            nwaiting++;
        }
    }
}

static char *dup_bytes(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

int presence_claim(lua_State *L, const char *key, size_t klen, const char *value, size_t vlen,
                   const char *old, size_t olen)
{
    if (P.fenced == 1 || (!redis_up(0) && nwaiting >= CLAIMS_WAITING)) {
        luaL_pushfail(L);
        lua_pushliteral(L, "redis unavailable");
        return 2;
    }
    struct claim_ctx *cc = calloc(1, sizeof *cc);
    if (!cc)
        return luaL_error(L, "not enough memory");
    memcpy(cc->key, key, klen);
    cc->klen = klen;
    cc->cb = script_cb_new(L, 3);
    if (cc->cb && (!redis_up(0) || P.fenced)) {
        /* Not up yet (starting, or reconnecting): it waits, within the call deadline. */
        cc->value = dup_bytes(value, vlen);
        cc->vlen = vlen;
        cc->old = old ? dup_bytes(old, olen) : NULL;
        cc->olen = olen;
        cc->deadline = ev_now(P.loop) + claim_timeout;
        if (!cc->value || (old && !cc->old)) {
            free(cc->value);
            free(cc->old);
            script_cb_drop(cc->cb);
            free(cc);
            return luaL_error(L, "not enough memory");
        }
        *waiting_tail = cc;
        waiting_tail = &cc->next;
        nwaiting++;
        P.stats.claims++;
        lua_pushboolean(L, 1);
        return 1;
    }
    if (!cc->cb || send_claim(key, klen, value, vlen, old, olen, cc) < 0) {
        script_cb_drop(cc->cb);
        free(cc);
        luaL_pushfail(L);
        lua_pushliteral(L, "redis unavailable");
        return 2;
    }
    P.stats.claims++;
    lua_pushboolean(L, 1);
    return 1;
}

static void on_lookup(void *ctx, const redisReply *r, const char *err)
{
    struct claim_ctx *cc = ctx;
    const char *val = NULL, *sp = NULL;
    uint64_t node = 0;
    if (!err && r && r->type == REDIS_REPLY_STRING && (sp = memchr(r->str, ' ', r->len))) {
        node = strtoull(r->str, NULL, 10);
        val = sp + 1;
        claims_put(cc->key, cc->klen, val, r->len - (size_t)(val - r->str), node);
    } else if (!err && r && r->type == REDIS_REPLY_NIL) {
        claims_del(cc->key, cc->klen);
    } else {
        /* No answer: the mirror's. */
        const struct claim *c = claims_get(cc->key, cc->klen);
        if (c) {
            val = c->value;
            node = c->node;
        }
    }
    lua_State *L = script_cb_begin(cc->cb);
    if (L) {
        if (val) {
            const struct claim *c = claims_get(cc->key, cc->klen);
            lua_pushlstring(L, c ? c->value : val, c ? c->value_len : strlen(val));
            lua_pushinteger(L, (lua_Integer)node);
        } else {
            lua_pushnil(L);
            lua_pushnil(L);
        }
        script_cb_finish(cc->cb, L, 2, "claimed");
    }
    free(cc);
}

int presence_lookup(lua_State *L, const char *key, size_t klen)
{
    struct claim_ctx *cc = calloc(1, sizeof *cc);
    if (!cc)
        return luaL_error(L, "not enough memory");
    memcpy(cc->key, key, klen);
    cc->klen = klen;
    cc->cb = script_cb_new(L, 2);
    const char *argv[] = {"HGET", K_CLAIMS, key};
    size_t lens[] = {4, sizeof K_CLAIMS - 1, klen};
    if (!cc->cb || P.fenced || redis_call(0, 3, argv, lens, on_lookup, cc) < 0) {
        /* Redis cannot be asked: the mirror answers. */
        script_cb_drop(cc->cb);
        free(cc);
        lua_pushvalue(L, 2);
        confab_push_claim(L, key, klen);
        script_pcall(L, "claimed", 2, 0);
    }
    lua_pushboolean(L, 1);
    return 1;
}

void presence_release(const char *key, size_t klen, const char *value, size_t vlen)
{
    char node[24];
    snprintf(node, sizeof node, "%" PRIu64, P.node);
    const char *argv[] = {K_CLAIMS, node, key, value};
    size_t lens[] = {sizeof K_CLAIMS - 1, strlen(node), klen, vlen};
    /* Not sent while Redis is down: the claim stays ours there until then (a known limit).
     * Written now, before the frames that follow it go to the clients: a client told that a
     * user left may ask another node for the name at once (chat.lua releases before "left"). */
    if (eval(P.s_release, 1, 4, argv, lens, NULL, NULL) == 0)
        redis_flush(0);
}

/* ---- frames for other nodes' connections ----------------------------------------------- */

int presence_send(uint64_t id, const char *data, size_t len, int binary)
{
    if (P.fenced || !redis_up(0))
        return -1;
    presence_flush();
    char head[48];
    int n = snprintf(head, sizeof head, "s %" PRIu64 " %d ", id, binary ? 1 : 0);
    char *msg = malloc((size_t)n + len);
    if (!msg)
        return -1;
    memcpy(msg, head, (size_t)n);
    memcpy(msg + n, data, len);
    publish(msg, (size_t)n + len);
    free(msg);
    P.stats.forwarded++;
    return 0;
}

int presence_close(uint64_t id, uint16_t code, const char *reason)
{
    if (P.fenced || !redis_up(0))
        return -1;
    char msg[200];
    int n = snprintf(msg, sizeof msg, "x %" PRIu64 " %u %.123s", id, (unsigned)code, reason);
    publish(msg, (size_t)n);
    return 0;
}

/* ---- link events, start, stop ---------------------------------------------------------- */

static void on_link(void *ctx, unsigned shard, int event)
{
    (void)ctx;
    if (shard != 0)
        return;
    if (event == REDIS_EV_UP) {
        if (P.fenced == 2)
            register_again();
        else
            beat();
        if (need_sync)
            sync_mirror(); /* first: the claims below are answered after it */
        claims_waiting_run(1);
    } else if (event == REDIS_EV_SUBSCRIBED) {
        need_sync = 1;
        if (!P.fenced)
            sync_mirror();
    }
}

/* Blocking, before the loop runs: a node id from Redis (INCR). */
static int first_id(const struct redis_url *u, double timeout, char *err, size_t errlen)
{
    struct timeval tv = {(time_t)timeout, (suseconds_t)((timeout - (time_t)timeout) * 1e6)};
    redisContext *rc = *u->path ? redisConnectUnixWithTimeout(u->path, tv)
                                : redisConnectWithTimeout(u->host, u->port, tv);
    if (!rc || rc->err) {
        snprintf(err, errlen, "cannot reach Redis for a node id: %s", rc ? rc->errstr : "no memory");
        if (rc)
            redisFree(rc);
        return -1;
    }
    redisSetTimeout(rc, tv);
    redisReply *r = NULL;
    if (*u->password) {
        r = redisCommand(rc, "AUTH %s", u->password);
        if (!r || r->type == REDIS_REPLY_ERROR)
            goto fail;
        freeReplyObject(r);
    }
    if (u->db) {
        r = redisCommand(rc, "SELECT %d", u->db);
        if (!r || r->type == REDIS_REPLY_ERROR)
            goto fail;
        freeReplyObject(r);
    }
    r = redisCommand(rc, "INCR %s", K_NODES);
    if (!r || r->type != REDIS_REPLY_INTEGER || r->integer <= 0 || r->integer >= (1 << 20))
        goto fail;
    P.node = (uint64_t)r->integer;
    freeReplyObject(r);
    redisFree(rc);
    return 0;
fail:
    snprintf(err, errlen, "cannot get a node id from Redis: %s",
             r && r->type == REDIS_REPLY_ERROR ? r->str : rc->err ? rc->errstr : "bad reply");
    if (r)
        freeReplyObject(r);
    redisFree(rc);
    return -1;
}

int presence_start(struct ev_loop *loop, const struct redis_url *shard0, double timeout,
                   double heartbeat, char *err, size_t errlen)
{
    if (first_id(shard0, timeout, err, errlen) < 0)
        return -1;
    P.loop = loop;
    P.heartbeat = heartbeat;
    claim_timeout = timeout;
    P.s_put = redis_script(PUT_LUA);
    P.s_beat = redis_script(BEAT_LUA);
    P.s_claim = redis_script(CLAIM_LUA);
    P.s_release = redis_script(RELEASE_LUA);
    P.s_sync = redis_script(SYNC_LUA);
    redis_subscribe(CHANNEL, on_msg, NULL);
    redis_watch(on_link, NULL);
    hub_set_id_base(P.node << 32);
    hub_changed = on_changed;
    ev_timer_init(&P.beat, on_beat_timer, heartbeat, heartbeat);
    ev_timer_start(loop, &P.beat);
    ev_unref(loop);
    ev_prepare_init(&P.flush, on_flush);
    ev_prepare_start(loop, &P.flush);
    ev_unref(loop);
    P.active = 1;
    log_msg(LOG_INFO, "presence: this node is node %" PRIu64 " (heartbeat %.3g s, declared dead "
            "after %.3g s of silence)", P.node, heartbeat, heartbeat * 3);
    return 0;
}

void presence_stop(void)
{
    if (!P.active)
        return;
    /* A clean stop: what changed goes out, then this node's heartbeat deadline is set to 0, so
     * the next node to beat takes over its claims at once (its connections, gone already, left
     * through their own hooks). Written now: the link closes right after. */
    if (!P.fenced && redis_up(0)) {
        on_flush(P.loop, &P.flush, 0);
        char node[24];
        snprintf(node, sizeof node, "%" PRIu64, P.node);
        const char *argv[] = {"ZADD", K_ALIVE, "XX", "0", node};
        size_t lens[] = {4, sizeof K_ALIVE - 1, 2, 1, strlen(node)};
        redis_call(0, 5, argv, lens, NULL, NULL);
        redis_flush(0);
    }
    hub_changed = NULL;
    ev_ref(P.loop);
    ev_timer_stop(P.loop, &P.beat);
    ev_ref(P.loop);
    ev_prepare_stop(P.loop, &P.flush);
    forget_remote(-1, NULL, 0);
    touched_clear();
    while (waiting) {
        struct claim_ctx *cc = waiting;
        waiting = cc->next;
        script_cb_drop(cc->cb);
        free(cc->value);
        free(cc->old);
        free(cc);
    }
    waiting_tail = &waiting;
    nwaiting = 0;
    free(P.dirty);
    P.dirty = NULL;
    P.ndirty = P.capdirty = 0;
    P.active = 0;
}
