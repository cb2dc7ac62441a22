/* redis_link: connections to the Redis servers given with --redis, driven on libev with hiredis'
 * reply parser only (redisReader). Per shard: a command link (pipelined calls, each with a
 * deadline; registered Lua scripts loaded on every connect and called with EVALSHA, with EVAL
 * after a NOSCRIPT) and a subscriber link (channels subscribed again after every reconnect, a
 * PING every second so a hung or dropped link is noticed). Both reconnect with backoff. Nothing
 * blocks the loop. See docs/redis-design.md. */
#ifndef CONFAB_REDIS_LINK_H
#define CONFAB_REDIS_LINK_H

#include <ev.h>
#include <hiredis/hiredis.h>
#include <stddef.h>

#include "redis_url.h"

#define REDIS_MAX_SHARDS 16
#define REDIS_QUEUE_MAX 10000 /* calls waiting for a reply, per shard */

/* The callback of a call runs exactly once: with the reply (maybe an error reply) and err NULL,
 * or with r NULL and err "redis timeout", "redis disconnected" or "redis stopped". */
typedef void redis_cb(void *ctx, const redisReply *r, const char *err);
typedef void redis_msg_fn(void *ctx, unsigned shard, const char *channel, size_t chlen,
                          const char *data, size_t len);
typedef void redis_event_fn(void *ctx, unsigned shard, int event);

enum { REDIS_EV_UP = 1, REDIS_EV_DOWN, REDIS_EV_SUBSCRIBED };

struct redis_link_stats {
    int up, sub_up;                    /* command link ready; subscriber link subscribed */
    unsigned long connects, sub_connects; /* successful (re)connects of each link */
    unsigned long calls, timeouts, errors, refused, noscript;
    unsigned long repairs, repaired_messages; /* counted by redis_room */
    unsigned long posts, post_calls; /* redis_room: messages posted, publish script calls */
};

/* Sets up the shards (no I/O yet). timeout: seconds, every call's deadline. */
void redis_init(struct ev_loop *loop, const struct redis_url *urls, unsigned n, double timeout);
/* Starts connecting (after scripts and subscriptions are registered). */
void redis_start(void);
/* Closes everything; pending callbacks get "redis stopped". */
void redis_stop(void);

int redis_enabled(void);
unsigned redis_shards(void);
unsigned redis_shard_of(const char *name, size_t len);
int redis_up(unsigned shard);
/* Writes what the shard's command link has queued now, as far as the socket takes it (the rest
 * goes when it is writable), instead of at the loop's next pass: presence uses it so that a
 * connection's state reaches Redis before the frames that follow it reach the clients. */
void redis_flush(unsigned shard);

/* Queues one command. Returns 0, or -1 when the shard is not up or its queue is full (the
 * callback is not called). cb may be NULL. */
int redis_call(unsigned shard, int argc, const char **argv, const size_t *argvlen, redis_cb *cb,
               void *ctx);

/* Registers a Lua script (before redis_start); returns its handle. */
int redis_script(const char *source);
/* EVALSHA script with nkeys keys among argv (after the key count). Like redis_call. */
int redis_eval(unsigned shard, int script, int nkeys, int argc, const char **argv,
               const size_t *argvlen, redis_cb *cb, void *ctx);

/* Before redis_start: fn gets every message published on channel (on each shard). */
int redis_subscribe(const char *channel, redis_msg_fn *fn, void *ctx);
/* Link events of every shard (REDIS_EV_*). */
int redis_watch(redis_event_fn *fn, void *ctx);

void redis_link_stats(unsigned shard, struct redis_link_stats *out);
/* For redis_room: its counters live with the link's. */
struct redis_link_stats *redis_stats_of(unsigned shard);

/* Pure helpers, unit-tested: RESP encoding of one command into a malloc'd buffer. */
char *redis_format(int argc, const char **argv, const size_t *argvlen, size_t *outlen);

#endif
