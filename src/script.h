/* script: the Lua 5.4 state that holds the chat's behaviour. It is sandboxed (a chosen set of
 * libraries, no bytecode, no new globals after load), bounded (time per hook call, memory of the
 * state), reloadable (SIGHUP, --watch) and every call into it is protected. Lua sees connections
 * as integer ids; the `confab` module it gets is documented in docs/hooks.md. */
#ifndef CONFAB_SCRIPT_H
#define CONFAB_SCRIPT_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>

#include "conn.h"
#include "http.h"

struct script_config {
    unsigned hook_timeout_ms;
    size_t memory;
    int64_t epoch; /* identifies this server run (start time, ms) */
};

/* Remembers the loop (for timers) and the limits. */
void script_init(struct ev_loop *loop, const struct script_config *cfg);

/* Loads path into a fresh state. On success it replaces the running script (whose timers are
 * cancelled), fires `reload` in the new one when it replaced another, and returns 0. On failure
 * the running script stays and err holds "file:line: message"; returns -1. */
int script_load(const char *path, char *err, size_t errlen);

/* Loads path in a throw-away state without serving: syntax, load-time and hook registration
 * errors. Returns 0, or -1 with err set. */
int script_check(const char *path, char *err, size_t errlen);

/* Runs the connect hooks for c (which has an id). Returns 0 to accept; -1 to refuse, with the
 * reason in reason (status 403), or -2 when a hook failed (status 500). */
int script_connect(struct conn *c, const struct http_request *req,
                   const char *protocol, char *reason, size_t reason_len);

/* Runs the message hooks. */
void script_message(struct conn *c, int binary, const uint8_t *data, size_t len);

/* c is going away: leaves every room (one `leave` hook each, reason "disconnect"), then runs the
 * disconnect hooks with code and reason. */
void script_disconnect(struct conn *c, uint16_t code, const char *reason);

/* Cancels the timers and closes the state. */
void script_shutdown(void);

/* Changes confab.epoch (the running script's and every later one's): with --redis, the
 * deployment's epoch kept in Redis. */
void script_set_epoch(int64_t epoch);

/* The epoch changed while serving (Redis lost its data): sets it, then runs the `epoch` hooks. */
void script_epoch_changed(int64_t epoch);

/* With --redis: this node's mirror of another node's members of room changed (a join, a leave,
 * an attribute, a node's death; sync: the mirror was read again whole). Runs the `roster` hooks. */
void script_roster(const char *room, size_t len, int sync);

/* Bytes of memory the running script's Lua state uses (0 before the first load). */
size_t script_memory_used(void);

struct pool;
/* The pool of Lua's blocks of (k + 1) * 16 bytes (for tests), NULL past the last. */
const struct pool *script_pool(unsigned k);

/* Bytes on the pools' lists, all classes together: at most SCRIPT_POOLS_BYTES. */
#define SCRIPT_POOLS_BYTES (4 * 1024 * 1024)
size_t script_pool_bytes(void);

/* Frees the blocks kept for reuse (in tests: what a test leaves kept is not a leak). */
void script_pool_drain(void);

/* The path of the running script, NULL before the first load. */
const char *script_path(void);

#endif
