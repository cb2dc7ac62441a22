/* hub: the connections the script can see, rooms, membership indexed both ways, fan-out of shared
 * frames into bounded per-connection queues, per-connection attributes and per-room history. It
 * never touches a socket: the server is told through callbacks when a queue has something to
 * write, when a connection overflows its queue, and when a script asks to close one. */
#ifndef CONFAB_HUB_H
#define CONFAB_HUB_H

#include <stddef.h>
#include <stdint.h>

#include "conn.h"
#include "frame.h"

#define HUB_ROOM_NAME_MAX 64

struct hub_callbacks {
    void (*queued)(struct conn *c);   /* c's queue went from empty to non-empty */
    void (*overflow)(struct conn *c); /* c's queue would pass the limit: cut it off */
    void (*close)(struct conn *c, uint16_t code, const char *reason); /* script's request */
};

struct room;

struct member {
    struct room *room;
    struct conn *conn;
    uint32_t room_idx; /* position in room->members */
    uint32_t conn_idx; /* position in conn->rooms */
};

struct hist_entry {
    uint64_t id;
    size_t len;
    char *data;
};

struct room {
    char *name;
    UT_hash_handle hh;
    struct member **members;
    uint32_t members_len, members_cap;
    struct hist_entry *hist; /* ring of hub history capacity, NULL until the first message */
    uint32_t hist_head, hist_len;
    uint64_t hist_last;    /* last id added, kept even when the ring is empty */
    uint64_t hist_dropped; /* highest id that left the ring (0: none) */
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

/* Sets the queue limit (bytes), the history capacity per room and the callbacks. */
void hub_init(size_t queue_limit, unsigned history_cap, const struct hub_callbacks *cb);

/* Frees every room and its history (connections belong to the server). */
void hub_shutdown(void);

/* Gives c a new id and makes it findable. */
void hub_add(struct conn *c);

/* Takes c out of every room (no hooks), drops its attributes, queue and id. */
void hub_remove(struct conn *c);

/* The connection with this id, or NULL. */
struct conn *hub_find(uint64_t id);

/* Calls fn for every connection, in no particular order. */
void hub_each(void (*fn)(struct conn *c, void *arg), void *arg);

/* Number of connections with an id. */
size_t hub_count(void);

/* Adds c to the room, creating it. Returns 1 if joined, 0 if already a member, -1 on no memory. */
int hub_join(struct conn *c, const char *room, size_t len);

/* Removes c from the room. Returns 1 if it left, 0 if it was not a member. */
int hub_leave(struct conn *c, const char *room, size_t len);

/* The room with this name (members or history), or NULL. */
struct room *hub_room(const char *name, size_t len);

/* Calls fn for every room that has members. */
void hub_each_room(void (*fn)(struct room *r, void *arg), void *arg);

/* Queues f for c (takes its own reference). Returns 0, or -1 when c overflowed (the overflow
 * callback ran and nothing was queued). */
int hub_send(struct conn *c, struct frame *f);

/* Queues f for every member of room except `except` (may be NULL). Returns recipients. */
size_t hub_broadcast(struct room *r, struct frame *f, const struct conn *except);

/* Asks the server to close c (script's confab.close). */
void hub_close(struct conn *c, uint16_t code, const char *reason);

/* Attributes: the value of key, or NULL. */
const struct attr *hub_attr_get(const struct conn *c, const char *key);

/* Sets key (replacing). For ATTR_STRING, str/len give the value. Returns 0 or -1 (no memory). */
int hub_attr_set(struct conn *c, const char *key, enum attr_type type, int64_t i, double n,
                 const char *str, size_t len);

/* Removes key. */
void hub_attr_del(struct conn *c, const char *key);

/* History: appends data with id to the room's ring (creating the room). Returns 0, -1 when id is
 * not above the room's last id, -2 on no memory. With history capacity 0 only the id is kept. */
int hub_history_add(const char *room, size_t rlen, uint64_t id, const char *data, size_t len);

/* The last id added to the room, 0 if none. */
uint64_t hub_history_last(const char *room, size_t rlen);

/* Calls fn for each stored entry with id > after, oldest first. Returns 1 when nothing after
 * `after` was lost (complete), 0 when entries after it already left the ring. */
int hub_history_each(const char *room, size_t rlen, uint64_t after,
                     void (*fn)(const struct hist_entry *e, void *arg), void *arg);

/* Reading rooms, memberships and attributes without knowing their layout. */
const char *hub_room_name(const struct room *r);
size_t hub_room_size(const struct room *r);                  /* members */
uint64_t hub_room_member(const struct room *r, size_t i);    /* id of member i, join order */
size_t hub_conn_room_count(const struct conn *c);
const char *hub_conn_room(const struct conn *c, size_t i);   /* name of c's room i (any order) */
const char *hub_attr_string(const struct attr *a, size_t *len); /* ATTR_STRING's value */

#endif
