/* redis_room: rooms over Redis (docs/redis-design.md). A post is one EVALSHA of the publish
 * script (next id, XADD to the room's capped stream, PUBLISH), batched per room while a call of
 * that room is in flight. Every node delivers room messages from its subscription only, in id
 * order: a gap, or the subscriber link coming back, makes it read the missing range from the
 * stream (holding newer messages meanwhile). A replay reads a room's stored messages for one
 * connection and holds the room's live messages until the reply is handled, so the connection
 * gets the history before anything newer and nothing twice. */
#ifndef CONFAB_REDIS_ROOM_H
#define CONFAB_REDIS_ROOM_H

#include <stddef.h>
#include <stdint.h>

#define REDIS_ROOM_PENDING_MAX 10000 /* posts waiting, all rooms of a node */
#define REDIS_ROOM_BATCH_MAX 64      /* posts in one call */
#define REDIS_ROOM_HELD_MAX 100000   /* messages held back per room while it is repaired */

struct redis_entry {
    uint64_t id;
    const char *data;
    size_t len;
};

/* The id, or 0 with err ("redis timeout": the outcome is unknown, the message may still be
 * delivered; "redis disconnected", "redis stopped", or Redis's error). */
typedef void redis_post_done(void *ctx, uint64_t id, const char *err);
/* complete: as confab.history's; list NULL and err set when the read failed. */
typedef void redis_replay_done(void *ctx, const struct redis_entry *list, size_t n, int complete,
                               const char *err);

/* Registers the scripts, the subscription and the link watcher (before redis_start). The
 * history limits, each applied to every room's stream: history, messages kept (--history);
 * memory, the sum of their lengths (--history-memory, per room here: Redis keeps no order across
 * rooms); age, seconds an entry is kept, 0 for ever (--history-age). */
void redis_room_init(unsigned history, size_t memory, double age);

/* Posts head .. ID .. tail into the room. Returns 0 (done will be called exactly once, later), or
 * -1 with *err "redis unavailable" or "too many pending" (done is not called). */
int redis_room_post(const char *room, size_t rlen, const char *head, size_t hlen,
                    const char *tail, size_t tlen, redis_post_done *done, void *ctx,
                    const char **err);

/* Reads the room's stored messages after `after` for one connection. Returns 0 (fn is called
 * exactly once, later) or -1 with *err (fn not called). */
int redis_room_replay(const char *room, size_t rlen, uint64_t after, redis_replay_done *fn,
                      void *ctx, const char **err);

/* Publishes a best-effort message (no id, not stored) to the room's members on other nodes. */
void redis_room_ephemeral(const char *room, size_t rlen, const char *data, size_t len,
                          uint64_t except, int binary);

/* A room got its first member here: learn its last id (a read), so that what is published from
 * now on is delivered, and a gap or a reconnect from now on is repaired. */
void redis_room_track(const char *room, size_t rlen);

/* The hub freed a room (no local member, no local history): forget its delivery state. */
void redis_room_forget(const char *room, size_t rlen);

/* The deployment epoch (confab:epoch of shard 0), 0 before it is known. */
int64_t redis_room_epoch(void);

/* Frees everything (after redis_stop). */
void redis_room_shutdown(void);

/* For the unit tests: what the room logic calls instead of redis_eval / redis_up, a message as
 * if it came from the subscription, and a link event. */
#include "redis_link.h"
extern int (*redis_room_eval)(unsigned shard, int script, int nkeys, int argc, const char **argv,
                              const size_t *argvlen, redis_cb *cb, void *ctx);
extern int (*redis_room_up)(unsigned shard);
void redis_room_feed(unsigned shard, const char *buf, size_t len);
void redis_room_link_event(unsigned shard, int event);
/* The safety net the room timer runs twice a second: failed reads made again, held rooms
 * drained (for tests). */
void redis_room_sweep(void);

/* Wire format of the channel (exposed for the unit tests). Returns 0 and the fields, or -1. */
struct redis_wire {
    uint64_t id, except, node;
    unsigned flags;
    const char *room, *data;
    size_t rlen, len;
};
int redis_wire_parse(const char *buf, size_t len, struct redis_wire *w);

#endif
