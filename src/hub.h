/* hub: the connections the script can see, rooms, membership indexed both ways, fan-out of shared
 * frames into bounded per-connection queues, per-connection attributes and per-room history. It
 * never touches a socket: the server is told through callbacks when a queue has something to
 * write, when a connection overflows its queue, and when a script asks to close one.
 *
 * Everything a script stores here is bounded: history by a server-wide byte limit (the oldest
 * entries, across all rooms, make room for new ones) and an optional age, attributes by a
 * server-wide byte limit and a count per connection, memberships by a count per connection. A room
 * lives while it has members or stored history; when it is freed, its last id is remembered in a
 * small table indexed by a hash of its name, so ids in a room of the same name keep increasing and
 * a resume from before the room was freed is reported incomplete. */
#ifndef CONFAB_HUB_H
#define CONFAB_HUB_H

#include <stddef.h>
#include <stdint.h>

#include <uthash.h>

#include "conn.h"
#include "frame.h"
#include "outmsg.h"

#define HUB_ROOM_NAME_MAX 64
#define HUB_ROOMS_PER_CONN 1024 /* memberships of one connection */
#define HUB_ATTRS_PER_CONN 256  /* attribute keys of one connection */

struct hub_callbacks {
    void (*queued)(struct conn *c);   /* c's queue went from empty to non-empty (every frame
                                       * queued, after hub_queued_each(1)) */
    void (*overflow)(struct conn *c); /* c's queue would pass the limit: cut it off */
    void (*close)(struct conn *c, uint16_t code, const char *reason); /* script's request */
};

struct room;

struct hist_entry {
    struct hist_entry *next;         /* the room's next newer entry */
    struct hist_entry *older, *newer; /* every room's entries, in the order they were added */
    struct room *room;
    double at; /* when it was added (hub clock, seconds) */
    uint64_t id;
    size_t len;
    char data[]; /* len bytes and a NUL */
};

struct room {
    char *name;
    UT_hash_handle hh;
    struct conn **members;   /* join order; NULL slots are members gone, compacted lazily */
    uint32_t members_len, members_cap; /* slots used (members and holes), allocated */
    uint32_t members_gone;             /* holes among the slots used */
    uint32_t members_remote;           /* members that are other nodes' (CONN_REMOTE) */
    struct hist_entry *hist_first, *hist_tail; /* stored history, oldest first */
    uint32_t hist_len;
    uint32_t pinned;       /* not freed while non-zero (an add in progress) */
    uint64_t hist_last;    /* last id added, kept even when nothing is stored */
    uint64_t hist_dropped; /* highest id no longer stored (0: none) */
};

enum attr_type { ATTR_STRING, ATTR_INTEGER, ATTR_NUMBER, ATTR_BOOLEAN };

struct attr {
    struct attr *next;
    uint8_t type;
    union {
        int64_t i;
        double n;
        int b;
        size_t len; /* ATTR_STRING: value bytes follow the key */
    } v;
    char key[]; /* key, NUL, then for strings the value bytes and a NUL */
};

/* Server-wide bounds on what scripts store in the hub. */
struct hub_limits {
    size_t history_memory; /* bytes of stored history, all rooms together */
    double history_age;    /* seconds an entry is kept; 0: until evicted */
    size_t attr_memory;    /* bytes of attributes, all connections together */
    double (*now)(void);   /* clock in seconds for history ages; NULL: the monotonic clock */
};

/* Called (when set) as a room is freed: with --redis, its delivery state goes too. */
extern void (*hub_room_freed)(const char *name, size_t len);

/* Sets the queue limit (bytes), the history capacity per room and the callbacks. */
void hub_init(size_t queue_limit, unsigned history_cap, const struct hub_callbacks *cb);

/* With on, the queued callback is called for every frame queued, not only for the first of an
 * empty queue: a server that holds output back (--flush-delay) sees each control frame and the
 * queue's growth, which end the hold. Off by default (one call per queue that fills). */
void hub_queued_each(int on);

/* Sets the limits (until then there are none, except the counts per connection). With a loop and
 * a history age, a timer (not keeping the loop alive) drops expired entries even when no room is
 * used; without a loop they are dropped when history is added or read, or by hub_expire. */
void hub_set_limits(struct ev_loop *loop, const struct hub_limits *limits);

/* Drops history entries older than the history age, freeing rooms left empty. */
void hub_expire(void);

/* Bytes the hub accounts for: stored history and attributes (each entry with its overhead). */
size_t hub_history_bytes(void);
size_t hub_attr_bytes(void);

/* Frees every room and its history (connections belong to the server). */
void hub_shutdown(void);

/* Gives c a new id and makes it findable. Returns 0, or -1 on no memory (c has no id). */
int hub_add(struct conn *c);

/* Ids given from now on are base + 1, base + 2, ... (with --redis: the node's id << 32). */
void hub_set_id_base(uint64_t base);

/* Another node's connection, mirrored (presence.c): a conn with that id, CONN_REMOTE, no socket,
 * never sent to. Returns it (also when it exists already), or NULL on no memory. Free it with
 * hub_remove_remote (leaves its rooms, drops its attributes, no hooks). */
struct conn *hub_add_remote(uint64_t id);
void hub_remove_remote(struct conn *c);

/* Called (when set) after a change of a local connection's rooms or attributes, and when it is
 * removed (c->id still set): presence publishes it. */
extern void (*hub_changed)(struct conn *c);

/* Takes c out of every room (no hooks), drops its attributes, queue and id. */
void hub_remove(struct conn *c);

/* The connection with this id, or NULL. */
struct conn *hub_find(uint64_t id);

/* Calls fn for every connection, in no particular order (not id order). fn may remove
 * connections from the hub (hub_remove) but not add any. */
void hub_each(void (*fn)(struct conn *c, void *arg), void *arg);

/* Number of rooms (with members or stored history). */
size_t hub_room_count(void);

/* Number of connections with an id. */
size_t hub_count(void);

/* Adds c to the room, creating it. Returns 1 if joined, 0 if already a member, -1 on no memory,
 * -2 when c is already in HUB_ROOMS_PER_CONN rooms. */
int hub_join(struct conn *c, const char *room, size_t len);

/* Removes c from the room. Returns 1 if it left, 0 if it was not a member. */
int hub_leave(struct conn *c, const char *room, size_t len);

/* The room with this name (members or history), or NULL. */
struct room *hub_room(const char *name, size_t len);

/* For tests: the most rooms in one chain of the rooms hash table. */
size_t hub_rooms_longest_chain(void);

/* Calls fn for every room that has members. */
void hub_each_room(void (*fn)(struct room *r, void *arg), void *arg);

/* Queues f for c (takes its own reference). Returns 0, or -1 when c overflowed (the overflow
 * callback ran and nothing was queued). */
int hub_send(struct conn *c, struct frame *f);

/* Queues f for every member of room except `except` (may be NULL). Returns recipients. */
size_t hub_broadcast(struct room *r, struct frame *f, const struct conn *except);

/* Queues the message for every member of room except `except` (may be NULL), each member getting
 * the form it negotiated (plain or compressed, each built once: outmsg.h). Returns recipients;
 * a member whose form could not be built for want of memory is skipped. */
size_t hub_broadcast_msg(struct room *r, struct outmsg *m, const struct conn *except);

/* Asks the server to close c (script's confab.close). */
void hub_close(struct conn *c, uint16_t code, const char *reason);

/* Attributes: the value of key, or NULL. */
const struct attr *hub_attr_get(const struct conn *c, const char *key);

/* Sets key (replacing). For ATTR_STRING, str/len give the value. Returns 0, -1 on no memory, -2
 * when the attribute memory limit would be passed, -3 when c has HUB_ATTRS_PER_CONN other keys. */
int hub_attr_set(struct conn *c, const char *key, enum attr_type type, int64_t i, double n,
                 const char *str, size_t len);

/* Removes key. */
void hub_attr_del(struct conn *c, const char *key);

/* History: appends data with id to the room's history (creating the room); past the room's
 * capacity its oldest entry goes, past the memory limit the oldest entries of any room go (an
 * entry bigger than the whole limit is not stored). Returns 0, -1 when id is not above the room's
 * last id, -2 on no memory. With history capacity 0 only the id is kept. */
int hub_history_add(const char *room, size_t rlen, uint64_t id, const char *data, size_t len);

/* The free list that the blocks of history entries of len bytes of data come from and go back
 * to, or NULL for entries too large to be kept on one (for tests). */
struct pool;
const struct pool *hub_history_pool(size_t len);

/* The last id added to the room; for a room not kept (never used, or freed), the highest last id
 * of a freed room whose name shares its slot in the hub's table (0 if none). */
uint64_t hub_history_last(const char *room, size_t rlen);

/* Calls fn for each stored entry with id > after, oldest first. Returns 1 when nothing after
 * `after` was lost (complete), 0 when entries after it are no longer stored (evicted, expired, or
 * the room was freed). */
int hub_history_each(const char *room, size_t rlen, uint64_t after,
                     void (*fn)(const struct hist_entry *e, void *arg), void *arg);

/* Reading rooms, memberships and attributes without knowing their layout. */
const char *hub_room_name(const struct room *r);
size_t hub_room_size(const struct room *r);                  /* members */
size_t hub_room_local_size(const struct room *r);            /* members of this node */
uint64_t hub_room_member(const struct room *r, size_t i);    /* id of member i, join order */
size_t hub_conn_room_count(const struct conn *c);
const char *hub_conn_room(const struct conn *c, size_t i);   /* name of c's room i (any order) */
const char *hub_attr_string(const struct attr *a, size_t *len); /* ATTR_STRING's value */

#endif
