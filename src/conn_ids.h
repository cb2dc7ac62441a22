/* conn_ids: the table id -> connection of the hub, open addressing on the ids themselves.
 *
 * A uthash handle in struct conn cost 56 bytes per connection plus the buckets; this table costs
 * one pointer per slot, at most 3/4 of the slots used (8-16 bytes per connection) and nothing in
 * struct conn: the key is the connection's own id (c->id), read through the slot's pointer.
 * Linear probing from a Fibonacci hash of the id; a removed entry leaves a tombstone (the probe
 * chains through it) until the next rebuild, which happens when entries and tombstones fill
 * 3/4 of the slots, at a size where the entries fill at most half. */
#ifndef CONFAB_CONN_IDS_H
#define CONFAB_CONN_IDS_H

#include <stddef.h>
#include <stdint.h>

struct conn;

struct conn_ids {
    struct conn **slots; /* cap entries: NULL (free), a tombstone, or a connection */
    uint32_t cap;        /* a power of two, 0 before the first insert */
    uint32_t count;      /* connections in the table */
    uint32_t used;       /* connections and tombstones */
};

/* Adds c under c->id (nonzero, not in the table yet). Returns 0, or -1 on no memory (the table
 * is unchanged). */
int conn_ids_put(struct conn_ids *t, struct conn *c);

/* The connection with id, or NULL. */
struct conn *conn_ids_get(const struct conn_ids *t, uint64_t id);

/* Removes c (which is in the table). Never moves another entry: safe inside conn_ids_each. */
void conn_ids_del(struct conn_ids *t, struct conn *c);

/* Calls fn for each connection, in no particular order. fn may remove any connection
 * (conn_ids_del) but must not add one. */
void conn_ids_each(const struct conn_ids *t, void (*fn)(struct conn *c, void *arg), void *arg);

/* Frees the slots (the connections are not the table's). */
void conn_ids_free(struct conn_ids *t);

#endif
