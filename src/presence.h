/* presence: the cluster side of what scripts see (docs/hooks.md, "Many nodes"): this node's id,
 * cluster-wide claims, and (with --redis) the other nodes' connections mirrored into the hub.
 * Without --redis it is inactive: node 0, and the script API answers from this node's tables. */
#ifndef CONFAB_PRESENCE_H
#define CONFAB_PRESENCE_H

#include <ev.h>
#include <lua.h>
#include <stddef.h>
#include <stdint.h>

/* Whether this node is one of a cluster (--redis given and presence started). */
int presence_active(void);

/* This node's id: 0 without --redis. */
uint64_t presence_node(void);

/* With presence active: confab.claim's work (arguments checked; fn at index 3). Returns what
 * confab.claim returns. */
int presence_claim(lua_State *L, const char *key, size_t klen, const char *value, size_t vlen,
                   const char *old, size_t olen);

/* With presence active: confab.claimed(key, fn) (fn at index 2): asks Redis, updates the mirror,
 * calls fn. Returns what confab.claimed returns. */
int presence_lookup(lua_State *L, const char *key, size_t klen);

/* With presence active: tells the cluster that this node lets key (held with value) go. */
void presence_release(const char *key, size_t klen, const char *value, size_t vlen);

/* With presence active: forwards a frame / a close to another node's connection. 0, or -1 when
 * Redis cannot take it. */
int presence_send(uint64_t id, const char *data, size_t len, int binary);
int presence_close(uint64_t id, uint16_t code, const char *reason);

struct redis_url;

/* With --redis (after redis_init, before redis_start): gets this node's id from Redis (blocking,
 * within timeout seconds: the loop does not run yet), registers the presence scripts and the
 * channel, starts the heartbeat (every `heartbeat` seconds; a node silent for 3 heartbeats is
 * declared dead by the next node to beat). Returns 0, or -1 with a reason in err. */
int presence_start(struct ev_loop *loop, const struct redis_url *shard0, double timeout,
                   double heartbeat, char *err, size_t errlen);

/* Publishes the connections of this node that changed since the last time (also done at the
 * loop's safe point): called before a broadcast or post, so that other nodes learn of a join
 * before they hear the room told of it. No-op without presence. */
void presence_flush(void);

/* Stops the heartbeat and forgets the mirror. */
void presence_stop(void);

/* Counters since start (for logs, metrics and tests). */
struct presence_stats {
    unsigned long beats, puts, syncs, claims, forwarded, reaped, fenced;
};
void presence_get_stats(struct presence_stats *out);

#endif
