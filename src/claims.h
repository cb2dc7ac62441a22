/* claims: this node's view of the cluster-wide claims of unique keys (confab.claim). Each claim
 * is a key, a value (bytes) and the node holding it. Without --redis this table is the truth and
 * node is 0; with --redis it is a mirror that the presence layer keeps from Redis, where claims
 * are decided. Bounded: keys of CLAIM_KEY_MAX and values of CLAIM_VALUE_MAX bytes at most, and
 * CLAIMS_MAX claims where they are decided (confab.claim refuses a new key beyond: here without
 * --redis, in Redis's claim script with it). The table itself takes up to CLAIMS_TABLE_MAX: a
 * mirror may briefly hold more than Redis does (a claim answered on the command link before the
 * release of another comes on the subscriber link), and a mirror missing a claim Redis has would
 * answer wrongly for it (this node could not even release its own). About 500 bytes a claim at
 * most (struct, hash handle, longest key and value): under 100 MB for the whole table. */
#ifndef CONFAB_CLAIMS_H
#define CONFAB_CLAIMS_H

#include <stddef.h>
#include <stdint.h>
#include <uthash.h>

#define CLAIM_KEY_MAX 128
#define CLAIM_VALUE_MAX 256
#define CLAIMS_MAX 100000
#define CLAIMS_TABLE_MAX (2 * CLAIMS_MAX)

struct claim {
    UT_hash_handle hh;
    unsigned mark; /* the mirror read that last confirmed it (presence.c), 0 if none */
    uint64_t node;
    size_t value_len;
    char *value; /* value_len bytes and a NUL, after the key */
    char key[];  /* NUL-terminated */
};

/* The claim of key, or NULL. */
const struct claim *claims_get(const char *key, size_t len);

/* Records that node holds key with value (replacing what was there). Returns 0, -1 on no
 * memory, -2 for a new key when CLAIMS_TABLE_MAX claims exist already (logged once: the table
 * then misses claims; with --redis it cannot happen while every node keeps CLAIMS_MAX). Whoever
 * decides checks CLAIMS_MAX first. */
int claims_put(const char *key, size_t len, const char *value, size_t value_len, uint64_t node);

/* Sets the mark of key's claim, if any. */
void claims_mark(const char *key, size_t len, unsigned mark);

/* Forgets key. Returns 1 if it was there. */
int claims_del(const char *key, size_t len);

/* Calls fn for every claim (fn may delete the claim it is given). */
void claims_each(void (*fn)(const struct claim *c, void *arg), void *arg);

/* Number of claims; frees them all. */
size_t claims_count(void);
void claims_clear(void);

#endif
