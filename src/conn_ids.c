/* conn_ids: the hub's id -> connection table (see conn_ids.h for the layout and its cost). */
#include "conn_ids.h"

#include <stdlib.h>

#include "conn.h"

/* A removed entry: its slot is not free (a probe for a later entry may pass it). */
static char tombstone_mark;
#define TOMBSTONE ((struct conn *)&tombstone_mark)

/* Fibonacci hashing: ids are consecutive, the multiply spreads them over the whole table. */
static uint32_t slot_of(uint64_t id, uint32_t cap)
{
    return (uint32_t)((id * 0x9E3779B97F4A7C15ULL) >> 32) & (cap - 1);
}

static void place(struct conn **slots, uint32_t cap, struct conn *c)
{
    uint32_t i = slot_of(c->id, cap);
    while (slots[i])
        i = (i + 1) & (cap - 1);
    slots[i] = c;
}

/* Rebuilds into a table where count + 1 entries fill at most half, tombstones dropped. */
static int rebuild(struct conn_ids *t)
{
    uint32_t cap = 16;
    while ((uint64_t)(t->count + 1) * 2 > cap)
        cap *= 2;
    struct conn **slots = calloc(cap, sizeof *slots);
    if (!slots)
        return -1;
    for (uint32_t i = 0; i < t->cap; i++)
        if (t->slots[i] && t->slots[i] != TOMBSTONE)
            place(slots, cap, t->slots[i]);
    free(t->slots);
    t->slots = slots;
    t->cap = cap;
    t->used = t->count;
    return 0;
}

int conn_ids_put(struct conn_ids *t, struct conn *c)
{
    if ((uint64_t)(t->used + 1) * 4 > (uint64_t)t->cap * 3 && rebuild(t) < 0)
        return -1;
    uint32_t i = slot_of(c->id, t->cap);
    /* The first tombstone on the way is reused; a free slot ends the chain. */
    while (t->slots[i] && t->slots[i] != TOMBSTONE)
        i = (i + 1) & (t->cap - 1);
    if (!t->slots[i])
        t->used++;
    t->slots[i] = c;
    t->count++;
    return 0;
}

/* The slot holding id, or -1. */
static int64_t find(const struct conn_ids *t, uint64_t id)
{
    if (!t->cap)
        return -1;
    for (uint32_t i = slot_of(id, t->cap);; i = (i + 1) & (t->cap - 1)) {
        struct conn *c = t->slots[i];
        if (!c)
            return -1;
        if (c != TOMBSTONE && c->id == id)
            return i;
    }
}

struct conn *conn_ids_get(const struct conn_ids *t, uint64_t id)
{
    int64_t i = find(t, id);
    return i < 0 ? NULL : t->slots[i];
}

void conn_ids_del(struct conn_ids *t, struct conn *c)
{
    int64_t i = find(t, c->id);
    if (i < 0)
        return;
    t->count--;
    /* Followed by a free slot, no chain passes here: the slot is free again. */
    if (!t->slots[(i + 1) & (t->cap - 1)]) {
        t->slots[i] = NULL;
        t->used--;
    } else {
        t->slots[i] = TOMBSTONE;
    }
}

void conn_ids_each(const struct conn_ids *t, void (*fn)(struct conn *c, void *arg), void *arg)
{
    for (uint32_t i = 0; i < t->cap; i++)
        if (t->slots[i] && t->slots[i] != TOMBSTONE)
            fn(t->slots[i], arg);
}

void conn_ids_free(struct conn_ids *t)
{
    free(t->slots);
    *t = (struct conn_ids){0};
}
