/* presence: the cluster side of what scripts see (docs/hooks.md, "Many nodes"): this node's id,
 * cluster-wide claims, and (with --redis) the other nodes' connections mirrored into the hub.
 * Without --redis it is inactive: node 0, and the script API answers from this node's tables. */
#ifndef CONFAB_PRESENCE_H
#define CONFAB_PRESENCE_H

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

/* With presence active: tells the cluster that this node lets key (held with value) go. */
void presence_release(const char *key, size_t klen, const char *value, size_t vlen);

#endif
