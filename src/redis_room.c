/* redis_room: see redis_room.h and docs/redis-design.md. Two tables, both by room name: the
 * outgoing posts of a room (its batch in flight and the posts queued behind it), and the delivery
 * state of a room with local members (last id delivered, reads in flight, messages held). */
#include "redis_room.h"

#include <ev.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uthash.h>

#include "frame.h"
#include "hub.h"
#include "log.h"
#include "redis_link.h"
#include "script.h"

#define CHANNEL "confab:m"

/* The history limits, applied in Redis by both scripts below. An entry's stream id is "ID-T":
 * the room's id, and Redis's time (ms) when it was added, so its age is read off its id (ids stay
 * ours: a client resumes by them). The meta hash's 'm' is the sum of the stored entries' lengths:
 * exact when 'x' is 1, else an upper bound (what count trims removed is not subtracted).
 * trim(len, bytes, exact, cap, mem, cut, extra) drops the oldest entries while there are more
 * than cap, their lengths sum to more than mem, or they were added before cut (ms; 0: no age),
 * and stores the sum. len and bytes: the stream's entries and their sum now; extra: entries to
 * read beyond those the count drops (a guess of how many the bytes or the age drop).
 * While the bound is under mem and there is no age, the bytes cannot be what trims: the count
 * alone trims (XTRIM MAXLEN, nothing read), as a stream capped by count costs. Past mem, or with
 * an age, the sum is counted once (every entry read) and kept exact: each entry is read once more
 * as it goes (one XRANGE, one XTRIM MINID). Back under half of mem, the bound takes over again,
 * so a room that is not near its byte limit pays one full count per mem/2 bytes posted. */
#define TRIM_LUA \
    "local function trim(len, bytes, exact, cap, mem, cut, extra)\n" \
    "  if not exact and cut == 0 and bytes <= mem then\n" \
    "    if len > cap then redis.call('XTRIM', KEYS[2], 'MAXLEN', cap) end\n" \
    "    redis.call('HSET', KEYS[1], 'm', bytes, 'x', 0)\n" \
    "    return\n" \
    "  end\n" \
    "  if not exact then\n" \
    "    bytes = 0\n" \
    "    for _, e in ipairs(redis.call('XRANGE', KEYS[2], '-', '+')) do bytes = bytes + #e[2][2] end\n" \
    "  end\n" \
    "  local from, gone = '-', nil\n" \
    "  while len > 0 and (len > cap or bytes > mem or cut > 0) do\n" \
    "    local es = redis.call('XRANGE', KEYS[2], from, '+', 'COUNT', math.max(len - cap, 0) + extra)\n" \
    "    local stop = #es == 0\n" \
    "    for _, e in ipairs(es) do\n" \
    "      local t = tonumber(string.match(e[1], '-(%d+)$'))\n" \
    "      if len <= cap and bytes <= mem and (cut == 0 or t >= cut) then stop = true; break end\n" \
    "      len = len - 1\n" \
    "      bytes = bytes - #e[2][2]\n" \
    "      gone = e[1]\n" \
    "    end\n" \
    "    if stop then break end\n" \
    "    from = '(' .. gone\n" \
    "  end\n" \
    "  if gone then\n" \
    "    local ms = tonumber(string.match(gone, '^(%d+)'))\n" \
    "    redis.call('XTRIM', KEYS[2], 'MINID', string.format('%.0f', ms + 1) .. '-0')\n" \
    "  end\n" \
    "  if len == 0 then bytes = 0 end\n" \
    "  local x = 1\n" \
    "  if cut == 0 and bytes * 2 <= mem then x = 0 end\n" \
    "  redis.call('HSET', KEYS[1], 'm', bytes, 'x', x)\n" \
    "end\n" \
    "local function stored(len)\n" \
    "  if len == 0 then return 0, true end\n" \
    "  local v = redis.call('HMGET', KEYS[1], 'm', 'x')\n" \
    "  return tonumber(v[1] or '0'), v[2] == '1'\n" \
    "end\n" \
    "local t = redis.call('TIME')\n" \
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"

/* KEYS: meta, stream. ARGV: cap, mem, age (ms, 0: none), room, then HEAD, TAIL, EXCEPT, FLAGS
 * per message. With an age the stream expires that long after its last post (an idle room's
 * history goes too). */
static const char publish_lua[] = TRIM_LUA
    "local n = redis.call('HGET', KEYS[1], 'n')\n"
    "if not n then\n"
    "  local ms = tostring(now)\n"
    "  redis.call('HSET', KEYS[1], 'e', ms, 'n', ms .. '0', 'b', ms .. '0')\n"
    "end\n"
    "local cap, mem, age = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "local len = redis.call('XLEN', KEYS[2])\n"
    "local bytes, exact = stored(len)\n"
    "local room = ARGV[4]\n"
    "local ids = {}\n"
    "local added = 0\n"
    "for i = 5, #ARGV, 4 do\n"
    "  local id = redis.call('HINCRBY', KEYS[1], 'n', 1)\n"
    "  local sid = string.format('%.0f', id)\n"
    "  local data = ARGV[i] .. sid .. ARGV[i + 1]\n"
    "  redis.call('XADD', KEYS[2], sid .. '-' .. now, 'd', data)\n"
    "  redis.call('PUBLISH', '" CHANNEL "', sid .. ' ' .. ARGV[i + 2] .. ' ' .. ARGV[i + 3] ..\n"
    "             ' 0 ' .. #room .. ' ' .. room .. data)\n"
    "  ids[#ids + 1] = id\n"
    "  added = added + 1\n"
    "  len = len + 1\n"
    "  bytes = bytes + #data\n"
    "end\n"
    "local cut = 0\n"
    "if age > 0 then cut = now - age end\n"
    "trim(len, bytes, exact, cap, mem, cut, added + 1)\n"
    "if age > 0 then redis.call('PEXPIRE', KEYS[2], age) end\n"
    "return ids\n";

/* KEYS: meta, stream. ARGV: after, age (ms, 0: none) [, "sync"]. Expired entries are dropped
 * first (the age holds between posts). Returns {last, complete, id, data, id, data...}: with
 * complete 1 the entries after `after`, else every stored entry; with "sync" only {last, 1}. */
static const char read_lua[] = TRIM_LUA
    "local last = redis.call('HGET', KEYS[1], 'n') or '0'\n"
    "local lastn = tonumber(last)\n"
    "if ARGV[3] then return {last, 1} end\n"
    "local age = tonumber(ARGV[2])\n"
    "if age > 0 then\n"
    "  local len = redis.call('XLEN', KEYS[2])\n"
    "  if len > 0 then\n"
    "    local bytes, exact = stored(len)\n"
    "    trim(len, bytes, exact, len, math.huge, now - age, 8)\n"
    "  end\n"
    "end\n"
    "local after = tonumber(ARGV[1])\n"
    "local from = ARGV[1]\n"
    "if after == 0 then\n"
    "  from = redis.call('HGET', KEYS[1], 'b') or '0'\n"
    "  after = tonumber(from)\n"
    "end\n"
    "local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)\n"
    "local f = lastn + 1\n"
    "if #first > 0 then f = tonumber(string.match(first[1][1], '^(%d+)')) end\n"
    "local complete = 1\n"
    "local entries\n"
    "if after > lastn or after < f - 1 then\n"
    "  complete = 0\n"
    "  entries = redis.call('XRANGE', KEYS[2], '-', '+')\n"
    "else\n"
    "  entries = redis.call('XRANGE', KEYS[2], string.format('%.0f', after + 1) .. '-0', '+')\n"
    "end\n"
    "local out = {last, complete}\n"
    "for _, e in ipairs(entries) do\n"
    "  out[#out + 1] = string.match(e[1], '^(%d+)')\n"
    "  out[#out + 1] = e[2][2]\n"
    "end\n"
    "return out\n";

/* KEYS: confab:epoch. The deployment's epoch: set once (Redis TIME, ms), then read. */
static const char epoch_lua[] =
    "local t = redis.call('TIME')\n"
    "redis.call('SET', KEYS[1], tostring(t[1]) .. string.sub(string.format('%06d', t[2]), 1, 3), 'NX')\n"
    "return redis.call('GET', KEYS[1])\n";

/* ---- state ------------------------------------------------------------------------------ */

struct post {
    struct post *next;
    char *head, *tail;
    size_t hlen, tlen;
    redis_post_done *done;
    void *ctx;
};

struct outbox {
    char *name;
    size_t rlen;
    UT_hash_handle hh;
    struct post *queue, *queue_tail; /* waiting for the batch in flight */
    unsigned queued;
    int in_flight;
};

struct held {
    struct held *next;
    uint64_t id, except;
    unsigned flags;
    size_t len;
    char data[];
};

struct droom {
    char *name;
    size_t rlen;
    UT_hash_handle hh;
    uint64_t last;  /* last id delivered here */
    int known;      /* last is meaningful */
    unsigned reads; /* reads in flight: live messages are held meanwhile */
    int repairing;  /* one of them is a repair */
    int repair_again; /* a repair was asked for while one was in flight, or failed: read again */
    int resync;     /* the read that makes `last` known failed: the sweep reads again */
    int fresh;      /* `last` came from that read and nothing was delivered since: a message at or
                     * below it may still come live (published after the join, before the read
                     * ran: pub/sub and replies come on different links), and is the members'.
                     * Any delivery clears it: a repair may have delivered past `last` what then
                     * comes live (a duplicate), and an older one would come out of order */
    int empty;      /* its start read found no message in Redis (last 0) and the subscription has
                     * stayed up since: the room's first message will come live, so the first one
                     * held starts it (ids start at Redis's clock, not at 1: a "gap" from 0 is
                     * none, and its repair, past a tiny history limit, could find them dropped).
                     * Cleared by any delivery and by a link event */
    struct held *held; /* sorted by id */
    unsigned nheld;
};

/* One read in flight: a repair (fn NULL) or a connection's replay. */
struct read {
    struct droom *room;
    char *name;
    size_t rlen;
    uint64_t after;
    int sync; /* only the last id: where a room new here starts */
    redis_replay_done *fn;
    void *ctx;
};

/* One batch in flight. */
struct batch {
    struct outbox *box;
    struct post *posts;
    unsigned n;
};

static struct {
    int publish, read, epoch;
    char cap[16], mem[24], age[24]; /* the limits, as the scripts take them */
    struct outbox *boxes;
    struct droom *rooms;
    unsigned pending;
    uint64_t node;
    int64_t epoch_ms;
    int64_t shard_epoch[REDIS_MAX_SHARDS];
    ev_timer sweep;
} RR;

static void keys_of(const char *room, size_t rlen, char *meta, char *stream, size_t *mlen,
                    size_t *slen)
{
    /* Room names are at most 64 bytes: the buffers hold 80. */
    *mlen = (size_t)sprintf(meta, "confab:{%.*s}:n", (int)rlen, room);
    *slen = (size_t)sprintf(stream, "confab:{%.*s}:s", (int)rlen, room);
}

/* What the room logic calls the link through (the unit tests answer in its place). */
int (*redis_room_eval)(unsigned shard, int script, int nkeys, int argc, const char **argv,
                       const size_t *argvlen, redis_cb *cb, void *ctx) = redis_eval;
int (*redis_room_up)(unsigned shard) = redis_up;

/* ---- delivery -------------------------------------------------------------------------- */

static void deliver(const char *room, size_t rlen, uint64_t except, unsigned flags,
                    const char *data, size_t len)
{
    struct room *r = hub_room(room, rlen);
    if (!r || hub_room_local_size(r) == 0)
        return;
    /* Plain and compressed (permessage-deflate) frames, each built once if a member needs it. */
    struct outmsg m;
    outmsg_init(&m, (flags & 1) ? FRAME_BINARY : FRAME_TEXT, data, len);
    struct conn *ex = except ? hub_find(except) : NULL;
    hub_broadcast_msg(r, &m, ex);
    outmsg_release(&m);
}

static struct droom *droom_find(const char *room, size_t rlen)
{
    struct droom *d;
    HASH_FIND(hh, RR.rooms, room, rlen, d);
    return d;
}

static struct droom *droom_get(const char *room, size_t rlen)
{
    struct droom *d = droom_find(room, rlen);
    if (d)
        return d;
    d = calloc(1, sizeof *d);
    if (!d || !(d->name = malloc(rlen + 1))) {
        free(d);
        return NULL;
    }
    memcpy(d->name, room, rlen);
    d->name[rlen] = '\0';
    d->rlen = rlen;
    HASH_ADD_KEYPTR(hh, RR.rooms, d->name, d->rlen, d);
    return d;
}

static void droom_free(struct droom *d)
{
    HASH_DEL(RR.rooms, d);
    while (d->held) {
        struct held *h = d->held;
        d->held = h->next;
        free(h);
    }
    free(d->name);
    free(d);
}

/* Frees the state of a room nobody here is in, unless a read still needs it. */
static void droom_maybe_free(struct droom *d)
{
    struct room *r = hub_room(d->name, d->rlen);
    if (d->reads == 0 && (!r || hub_room_local_size(r) == 0))
        droom_free(d);
}

static void hold(struct droom *d, uint64_t id, uint64_t except, unsigned flags, const char *data,
                 size_t len)
{
    if (d->known && id <= d->last)
        return;
    if (d->nheld >= REDIS_ROOM_HELD_MAX) {
        log_warn("redis: room %s: too many messages held during a repair; newest dropped", d->name);
        return;
    }
    struct held **p = &d->held;
    while (*p && (*p)->id < id)
        p = &(*p)->next;
    if (*p && (*p)->id == id)
        return;
    struct held *h = malloc(sizeof *h + len);
    if (!h)
        return;
    h->id = id;
    h->except = except;
    h->flags = flags;
    h->len = len;
    memcpy(h->data, data, len);
    h->next = *p;
    *p = h;
    d->nheld++;
}

static void repair(struct droom *d);

/* Delivers the held messages that follow the last id; a gap left starts a repair. */
static void drain(struct droom *d)
{
    if (!d->known && d->resync)
        return; /* where the room starts here is not known yet: hold until the read again */
    while (d->held && d->reads == 0) {
        struct held *h = d->held;
        if (d->known && h->id <= d->last) {
            d->held = h->next;
            d->nheld--;
            free(h);
            continue;
        }
        if (d->known && d->empty && d->last == 0)
            d->last = h->id - 1; /* see struct droom */
        if (d->known && h->id != d->last + 1) {
            repair(d);
            return;
        }
        d->held = h->next;
        d->nheld--;
        d->last = h->id;
        d->known = 1;
        d->fresh = d->empty = 0; /* see struct droom: something was delivered since the read */
        deliver(d->name, d->rlen, h->except, h->flags, h->data, h->len);
        free(h);
    }
}

/* Delivers, in order, the held messages up to id that follow the last one delivered: a read's
 * answer does so before each entry of its list (see read_done). Not while another read is in
 * flight: a replay's history must reach its connection before what is held (drain() then). */
static void deliver_held_upto(struct droom *d, uint64_t id)
{
    while (d->held && d->held->id <= id && d->reads == 0) {
        struct held *h = d->held;
        d->held = h->next;
        d->nheld--;
        if (h->id > d->last) {
            d->last = h->id;
            d->fresh = d->empty = 0;
            deliver(d->name, d->rlen, h->except, h->flags, h->data, h->len);
        }
        free(h);
    }
}

/* ---- reads (repairs and replays) ------------------------------------------------------- */

static void read_done(void *ctx, const redisReply *r, const char *err);

static int read_start(struct droom *d, const char *room, size_t rlen, uint64_t after,
                      redis_replay_done *fn, void *ctx, int sync)
{
    struct read *rd = calloc(1, sizeof *rd);
    if (!rd || !(rd->name = malloc(rlen + 1))) {
        free(rd);
        return -1;
    }
    memcpy(rd->name, room, rlen);
    rd->rlen = rlen;
    rd->room = d;
    rd->after = after;
    rd->fn = fn;
    rd->ctx = ctx;
    rd->sync = sync;
    char meta[96], stream[96], a[24];
    size_t mlen, slen;
    keys_of(room, rlen, meta, stream, &mlen, &slen);
    int alen = snprintf(a, sizeof a, "%llu", (unsigned long long)after);
    const char *argv[] = {meta, stream, a, RR.age, "sync"};
    size_t lens[] = {mlen, slen, (size_t)alen, strlen(RR.age), 4};
    if (redis_room_eval(redis_shard_of(room, rlen), RR.read, 2, sync ? 5 : 4, argv, lens, read_done,
                        rd) < 0) {
        free(rd->name);
        free(rd);
        return -1;
    }
    if (d)
        d->reads++;
    return 0;
}

static void repair(struct droom *d)
{
    if (d->repairing) {
        /* The read in flight may have run before what is missing now (the subscriber link
         * dropped again meanwhile): read once more when it is answered. */
        d->repair_again = 1;
        return;
    }
    if (!d->known) {
        d->repair_again = 1; /* after the read that makes it known */
        return;
    }
    if (read_start(d, d->name, d->rlen, d->last, NULL, NULL, 0) == 0) {
        d->repairing = 1;
        redis_stats_of(redis_shard_of(d->name, d->rlen))->repairs++;
    } else {
        d->repair_again = 1; /* the shard is down or busy: the sweep tries again */
    }
}

static uint64_t reply_u64(const redisReply *e)
{
    if (e->type == REDIS_REPLY_INTEGER)
        return e->integer > 0 ? (uint64_t)e->integer : 0;
    if (e->type == REDIS_REPLY_STRING)
        return strtoull(e->str, NULL, 10);
    return 0;
}

static void read_done(void *ctx, const redisReply *r, const char *err)
{
    struct read *rd = ctx;
    struct droom *d = rd->room;
    char why[200];
    if (!err && (r->type != REDIS_REPLY_ARRAY || r->elements < 2 || r->elements % 2)) {
        snprintf(why, sizeof why, "%s", r->type == REDIS_REPLY_ERROR ? r->str : "bad reply");
        err = why;
    }
    if (d) {
        d->reads--;
        if (!rd->fn)
            d->repairing = 0;
    }
    if (err) {
        log_warn("redis: reading room %.*s: %s", (int)rd->rlen, rd->name, err);
        if (rd->fn)
            rd->fn(rd->ctx, NULL, 0, 0, err);
        /* A failed read is never the end of it: what it would have delivered may be all that is
         * missing (the tail of a burst, with nothing after it to show the gap). */
        if (d && rd->sync && !d->known)
            d->resync = 1;
        else if (d && !rd->fn)
            d->repair_again = 1;
    } else {
        uint64_t last = reply_u64(r->element[0]);
        int complete = reply_u64(r->element[1]) == 1;
        size_t n = (r->elements - 2) / 2;
        log_debug("redis: room %.*s read after %llu: last %llu, %zu entries, delivered up to %llu",
                  (int)rd->rlen, rd->name, (unsigned long long)rd->after, (unsigned long long)last,
                  n, d ? (unsigned long long)d->last : 0ULL);
        struct redis_entry *list = n ? calloc(n, sizeof *list) : NULL;
        size_t got = 0;
        for (size_t i = 0; i < n && (list || n == 0); i++) {
            const redisReply *id = r->element[2 + 2 * i], *data = r->element[3 + 2 * i];
            if (data->type != REDIS_REPLY_STRING)
                continue;
            list[got].id = reply_u64(id);
            list[got].data = data->str;
            list[got].len = data->len;
            got++;
        }
        if (d && d->known && last < d->last) {
            /* Redis went back (restarted from an older snapshot): trust it from here on. */
            log_warn("redis: room %s: last id went back from %llu to %llu", d->name,
                     (unsigned long long)d->last, (unsigned long long)last);
            d->last = last;
        }
        /* The connection's history: what was delivered here already (or, for a room not yet
         * delivered here, everything); then the rest goes to the whole room live. */
        if (rd->fn) {
            if (d)
                d->fresh = 0; /* the list covers up to what is delivered here */
            size_t upto = got;
            if (d && d->known)
                for (upto = 0; upto < got && list[upto].id <= d->last; upto++)
                    ;
            rd->fn(rd->ctx, list, upto, complete, NULL);
        }
        int live_from_held = 0;
        if (d) {
            if (!d->known) {
                d->known = 1;
                d->last = rd->fn || rd->sync ? last : (got ? list[0].id - 1 : last);
                /* A room new here, read only for where it starts: what came live since the join
                 * (held meanwhile) is the members' too, though Redis stored it before the read
                 * ran; a replay's list covers it otherwise. */
                if (rd->sync && d->held && d->held->id <= last) {
                    d->last = d->held->id - 1;
                    live_from_held = 1;
                } else if (rd->sync) {
                    d->fresh = 1;
                    d->empty = last == 0 && got == 0;
                }
            }
            unsigned long repaired = 0;
            for (size_t i = 0; i < got; i++) {
                /* What came live meanwhile goes first, and as it came (with its sender's
                 * exclusion): the list may lack it, trimmed from the stream before the read ran
                 * (a small --history-memory under a burst). */
                deliver_held_upto(d, list[i].id);
                if (list[i].id <= d->last)
                    continue;
                deliver(d->name, d->rlen, 0, 0, list[i].data, list[i].len);
                d->last = list[i].id;
                d->fresh = d->empty = 0; /* a repair's answer can come before the live copies of what it
                               * delivered (another link): those are duplicates now */
                repaired++;
            }
            if (!rd->fn && repaired)
                redis_stats_of(redis_shard_of(d->name, d->rlen))->repaired_messages += repaired;
            if (!complete && !rd->fn)
                log_warn("redis: room %s: messages after %llu no longer stored: skipped", d->name,
                         (unsigned long long)rd->after);
            /* What came live up to the room's last id, past the list's end (or with no list:
             * nothing stored, a history smaller than a message), goes out before the jump. */
            deliver_held_upto(d, last);
            if (d->last < last && !live_from_held)
                d->last = last;
        }
        free(list);
    }
    if (d) {
        drain(d);
        /* After a failure the sweep reads again (not at once: the link may still be down). */
        if (!err && d->repair_again && !d->repairing && d->known && d->reads == 0) {
            d->repair_again = 0;
            repair(d);
        }
        droom_maybe_free(d);
    }
    free(rd->name);
    free(rd);
}

/* ---- the subscription ------------------------------------------------------------------ */

static int parse_u64(const char **p, const char *end, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;
    if (s >= end || *s < '0' || *s > '9')
        return -1;
    while (s < end && *s >= '0' && *s <= '9') {
        if (v > (UINT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*s++ - '0');
    }
    if (s >= end || *s != ' ')
        return -1;
    *p = s + 1;
    *out = v;
    return 0;
}

int redis_wire_parse(const char *buf, size_t len, struct redis_wire *w)
{
    const char *p = buf, *end = buf + len;
    uint64_t flags, rlen;
    if (parse_u64(&p, end, &w->id) || parse_u64(&p, end, &w->except) ||
        parse_u64(&p, end, &flags) || parse_u64(&p, end, &w->node) ||
        parse_u64(&p, end, &rlen) || rlen == 0 || rlen > HUB_ROOM_NAME_MAX ||
        rlen > (uint64_t)(end - p))
        return -1;
    w->flags = (unsigned)flags;
    w->room = p;
    w->rlen = (size_t)rlen;
    w->data = p + rlen;
    w->len = (size_t)(end - w->data);
    return 0;
}

static void on_message(void *ctx, unsigned shard, const char *ch, size_t chlen, const char *buf,
                       size_t len)
{
    struct redis_wire w;
    if (redis_wire_parse(buf, len, &w) < 0) {
        log_warn("redis: malformed message on %s ignored", CHANNEL);
        return;
    }
    if (w.id == 0) { /* ephemeral: other nodes' confab.broadcast */
        if (w.node != RR.node)
            deliver(w.room, w.rlen, w.except, w.flags, w.data, w.len);
        return;
    }
    struct droom *d = droom_find(w.room, w.rlen);
    if (!d) {
        struct room *r = hub_room(w.room, w.rlen);
        if (!r || hub_room_local_size(r) == 0)
            return; /* nobody here: nothing to deliver or track */
        d = droom_get(w.room, w.rlen);
        if (!d)
            return;
        d->known = 1; /* its members joined before this message was delivered */
        d->last = w.id - 1;
    }
    if (d->fresh && d->reads == 0) {
        d->fresh = 0;
        if (w.id <= d->last) { /* see struct droom: the first live message since the read */
            d->last = w.id;
            deliver(w.room, w.rlen, w.except, w.flags, w.data, w.len);
            return;
        }
    }
    if (d->reads || (d->known && w.id > d->last + 1) || !d->known) {
        hold(d, w.id, w.except, w.flags, w.data, w.len);
        if (d->reads == 0)
            drain(d); /* starts the repair */
        return;
    }
    if (w.id <= d->last)
        return;
    d->last = w.id;
    deliver(w.room, w.rlen, w.except, w.flags, w.data, w.len);
    if (d->held)
        drain(d);
}

/* Each shard keeps its own epoch; the deployment's is the latest of them, so it changes when
 * any shard loses its data (its new epoch is later than every other). */
static void epoch_done(void *ctx, const redisReply *r, const char *err)
{
    unsigned shard = (unsigned)(uintptr_t)ctx;
    if (err || r->type != REDIS_REPLY_STRING || shard >= REDIS_MAX_SHARDS)
        return;
    int64_t e = strtoll(r->str, NULL, 10);
    int64_t before = RR.shard_epoch[shard];
    RR.shard_epoch[shard] = e;
    int64_t all = 0;
    for (unsigned i = 0; i < REDIS_MAX_SHARDS; i++)
        if (RR.shard_epoch[i] > all)
            all = RR.shard_epoch[i];
    if (before && before != e)
        log_warn("redis: shard %u's epoch changed (%lld -> %lld): that Redis lost its data",
                 shard, (long long)before, (long long)e);
    if (all == RR.epoch_ms)
        return;
    int64_t old = RR.epoch_ms;
    RR.epoch_ms = all;
    if (old)
        script_epoch_changed(all);
    else
        script_set_epoch(all);
}

static void on_link_event(void *ctx, unsigned shard, int event)
{
    if (event == REDIS_EV_UP) {
        const char *argv[] = {"confab:epoch"};
        size_t lens[] = {12};
        redis_room_eval(shard, RR.epoch, 1, 1, argv, lens, epoch_done, (void *)(uintptr_t)shard);
    }
    if (event != REDIS_EV_UP && event != REDIS_EV_SUBSCRIBED)
        return;
    /* Messages may have been missed while a link was down: read every room of the shard. */
    struct droom *d, *tmp;
    HASH_ITER(hh, RR.rooms, d, tmp) {
        if (redis_shard_of(d->name, d->rlen) == shard) {
            d->empty = 0; /* its first message may have gone with the link */
            repair(d);
        }
    }
}

/* ---- posting --------------------------------------------------------------------------- */

static void batch_send(struct outbox *box);

static void post_free(struct post *p)
{
    free(p->head);
    free(p->tail);
    free(p);
}

static void batch_done(void *ctx, const redisReply *r, const char *err)
{
    struct batch *b = ctx;
    char why[200];
    if (!err && (r->type != REDIS_REPLY_ARRAY || r->elements != b->n)) {
        snprintf(why, sizeof why, "%s", r->type == REDIS_REPLY_ERROR ? r->str : "bad reply");
        err = why;
        log_warn("redis: post into %s failed: %s", b->box->name, err);
    }
    size_t i = 0;
    for (struct post *p = b->posts; p; i++) {
        struct post *next = p->next;
        RR.pending--;
        if (p->done)
            p->done(p->ctx, err ? 0 : reply_u64(r->element[i]), err);
        post_free(p);
        p = next;
    }
    struct outbox *box = b->box;
    free(b);
    box->in_flight = 0;
    batch_send(box);
}

static void box_free_if_idle(struct outbox *box)
{
    if (!box->in_flight && !box->queue) {
        HASH_DEL(RR.boxes, box);
        free(box->name);
        free(box);
    }
}

/* Sends the queued posts of the room as one call (up to REDIS_ROOM_BATCH_MAX). */
static void batch_send(struct outbox *box)
{
    if (box->in_flight || !box->queue) {
        box_free_if_idle(box);
        return;
    }
    unsigned n = 0;
    struct post *p = box->queue, *last = NULL;
    while (p && n < REDIS_ROOM_BATCH_MAX) {
        last = p;
        p = p->next;
        n++;
    }
    int argc = 6 + 4 * (int)n;
    const char **argv = calloc((size_t)argc, sizeof *argv);
    size_t *lens = calloc((size_t)argc, sizeof *lens);
    struct batch *b = calloc(1, sizeof *b);
    char meta[96], stream[96];
    size_t mlen, slen;
    keys_of(box->name, box->rlen, meta, stream, &mlen, &slen);
    char flags0[] = "0";
    int rc = -1;
    if (argv && lens && b) {
        argv[0] = meta, lens[0] = mlen;
        argv[1] = stream, lens[1] = slen;
        argv[2] = RR.cap, lens[2] = strlen(RR.cap);
        argv[3] = RR.mem, lens[3] = strlen(RR.mem);
        argv[4] = RR.age, lens[4] = strlen(RR.age);
        argv[5] = box->name, lens[5] = box->rlen;
        int i = 6;
        for (struct post *q = box->queue; q != p; q = q->next) {
            argv[i] = q->head, lens[i++] = q->hlen;
            argv[i] = q->tail, lens[i++] = q->tlen;
            argv[i] = flags0, lens[i++] = 1; /* except */
            argv[i] = flags0, lens[i++] = 1; /* flags */
        }
        b->box = box;
        b->posts = box->queue;
        b->n = n;
        rc = redis_room_eval(redis_shard_of(box->name, box->rlen), RR.publish, 2, argc, argv,
                             lens, batch_done, b);
    }
    free(argv);
    free(lens);
    /* Cut the batch off the queue either way. */
    struct post *batch = box->queue;
    box->queue = p;
    if (!p)
        box->queue_tail = NULL;
    last->next = NULL;
    box->queued -= n;
    if (rc == 0) {
        box->in_flight = 1;
        struct redis_link_stats *st = redis_stats_of(redis_shard_of(box->name, box->rlen));
        st->posts += n;
        st->post_calls++;
        return;
    }
    free(b);
    /* The shard went down meanwhile: these posts fail (later ones are refused at once). */
    for (struct post *q = batch; q;) {
        struct post *next = q->next;
        RR.pending--;
        if (q->done)
            q->done(q->ctx, 0, "redis unavailable");
        post_free(q);
        q = next;
    }
    batch_send(box);
}

int redis_room_post(const char *room, size_t rlen, const char *head, size_t hlen,
                    const char *tail, size_t tlen, redis_post_done *done, void *ctx,
                    const char **err)
{
    if (!redis_room_up(redis_shard_of(room, rlen))) {
        *err = "redis unavailable";
        return -1;
    }
    if (RR.pending >= REDIS_ROOM_PENDING_MAX) {
        *err = "too many pending";
        return -1;
    }
    struct outbox *box;
    HASH_FIND(hh, RR.boxes, room, rlen, box);
    if (!box) {
        box = calloc(1, sizeof *box);
        if (!box || !(box->name = malloc(rlen + 1))) {
            free(box);
            *err = "not enough memory";
            return -1;
        }
        memcpy(box->name, room, rlen);
        box->name[rlen] = '\0';
        box->rlen = rlen;
        HASH_ADD_KEYPTR(hh, RR.boxes, box->name, box->rlen, box);
    }
    struct post *p = calloc(1, sizeof *p);
    if (!p || !(p->head = malloc(hlen + 1)) || !(p->tail = malloc(tlen + 1))) {
        if (p)
            free(p->head);
        free(p);
        box_free_if_idle(box);
        *err = "not enough memory";
        return -1;
    }
    memcpy(p->head, head, hlen);
    memcpy(p->tail, tail, tlen);
    p->hlen = hlen;
    p->tlen = tlen;
    p->done = done;
    p->ctx = ctx;
    if (box->queue_tail)
        box->queue_tail->next = p;
    else
        box->queue = p;
    box->queue_tail = p;
    box->queued++;
    RR.pending++;
    /* Sent now unless a batch of this room is in flight: then it joins the next batch. The
     * callback runs later in any case (redis_eval never calls it at once). */
    batch_send(box);
    return 0;
}

int redis_room_replay(const char *room, size_t rlen, uint64_t after, redis_replay_done *fn,
                      void *ctx, const char **err)
{
    if (!redis_room_up(redis_shard_of(room, rlen))) {
        *err = "redis unavailable";
        return -1;
    }
    struct droom *d = droom_get(room, rlen);
    if (!d || read_start(d, room, rlen, after, fn, ctx, 0) < 0) {
        if (d)
            droom_maybe_free(d);
        *err = "redis unavailable";
        return -1;
    }
    return 0;
}

void redis_room_ephemeral(const char *room, size_t rlen, const char *data, size_t len,
                          uint64_t except, int binary)
{
    unsigned shard = redis_shard_of(room, rlen);
    if (!redis_up(shard))
        return;
    char head[100];
    int hn = snprintf(head, sizeof head, "0 %llu %d %llu %zu ", (unsigned long long)except,
                      binary ? 1 : 0, (unsigned long long)RR.node, rlen);
    char *msg = malloc((size_t)hn + rlen + len);
    if (!msg)
        return;
    memcpy(msg, head, (size_t)hn);
    memcpy(msg + hn, room, rlen);
    memcpy(msg + hn + rlen, data, len);
    const char *argv[] = {"PUBLISH", CHANNEL, msg};
    size_t lens[] = {7, sizeof CHANNEL - 1, (size_t)hn + rlen + len};
    redis_call(shard, 3, argv, lens, NULL, NULL);
    free(msg);
}

void redis_room_track(const char *room, size_t rlen)
{
    if (droom_find(room, rlen) || !redis_room_up(redis_shard_of(room, rlen)))
        return;
    struct droom *d = droom_get(room, rlen);
    if (d && read_start(d, room, rlen, 0, NULL, NULL, 1) < 0)
        droom_free(d);
}

void redis_room_forget(const char *room, size_t rlen)
{
    struct droom *d = droom_find(room, rlen);
    if (d && d->reads == 0)
        droom_free(d);
}

void redis_room_feed(unsigned shard, const char *buf, size_t len)
{
    on_message(NULL, shard, CHANNEL, sizeof CHANNEL - 1, buf, len);
}

void redis_room_link_event(unsigned shard, int event)
{
    on_link_event(NULL, shard, event);
}

int64_t redis_room_epoch(void)
{
    return RR.epoch_ms;
}

/* A safety net, twice a second, for rooms with no read in flight: a read that failed or could
 * not be started is made again, and a room still holding messages (nothing came after the gap
 * to start its repair) is drained. */
void redis_room_sweep(void)
{
    struct droom *d, *tmp;
    HASH_ITER(hh, RR.rooms, d, tmp) {
        if (d->reads)
            continue;
        if (!d->known && d->resync) {
            d->resync = 0;
            if (read_start(d, d->name, d->rlen, 0, NULL, NULL, 1) < 0)
                d->resync = 1;
        } else if (d->known && d->repair_again) {
            d->repair_again = 0;
            repair(d);
        } else if (d->held) {
            drain(d);
        }
    }
}

static void on_sweep(EV_P_ ev_timer *w, int revents)
{
    redis_room_sweep();
}

void redis_room_init(unsigned history, size_t memory, double age)
{
    ev_timer_init(&RR.sweep, on_sweep, 0.5, 0.5);
    ev_timer_start(EV_DEFAULT, &RR.sweep);
    ev_unref(EV_DEFAULT); /* it does not keep the loop running */
    snprintf(RR.cap, sizeof RR.cap, "%u", history);
    snprintf(RR.mem, sizeof RR.mem, "%zu", memory);
    snprintf(RR.age, sizeof RR.age, "%.0f", age > 0 && age * 1000 < 1 ? 1 : age * 1000);
    RR.publish = redis_script(publish_lua);
    RR.read = redis_script(read_lua);
    RR.epoch = redis_script(epoch_lua);
    if (RAND_bytes((unsigned char *)&RR.node, sizeof RR.node) != 1 || RR.node == 0)
        RR.node = ((uint64_t)getpid() << 32) | (uint64_t)time(NULL);
    redis_subscribe(CHANNEL, on_message, NULL);
    redis_watch(on_link_event, NULL);
}

void redis_room_shutdown(void)
{
    if (ev_is_active(&RR.sweep)) {
        ev_ref(EV_DEFAULT);
        ev_timer_stop(EV_DEFAULT, &RR.sweep);
    }
    struct droom *d, *dt;
    HASH_ITER(hh, RR.rooms, d, dt) droom_free(d);
    struct outbox *b, *bt;
    HASH_ITER(hh, RR.boxes, b, bt) {
        while (b->queue) {
            struct post *p = b->queue;
            b->queue = p->next;
            post_free(p);
        }
        HASH_DEL(RR.boxes, b);
        free(b->name);
        free(b);
    }
    RR.pending = 0;
}
