/* presence_state: a connection's state as published to the other nodes (its rooms and
 * attributes) and applied to their mirror of it. Format: "S", then per room "R<len>:<name>",
 * per attribute "A<klen>:<key><t><vlen>:<value>" with t one of s (string), i (integer),
 * n (number, %.17g), b (boolean, 0/1). Pure: unit-tested on its own. */
#ifndef CONFAB_PRESENCE_STATE_H
#define CONFAB_PRESENCE_STATE_H

#include <stddef.h>

#include "conn.h"

struct pstate_buf {
    char *p;
    size_t len, cap;
};

/* Appends c's state to b (malloc'd; free b->p). Returns 0, or -1 on no memory. */
int presence_state_encode(const struct conn *c, struct pstate_buf *b);

/* Makes c's rooms and attributes those of the state (no hooks: c is another node's). Returns 0,
 * or -1 when the state is malformed or memory ran out (c is then partly updated). */
int presence_state_apply(struct conn *c, const char *s, size_t len);

#endif
