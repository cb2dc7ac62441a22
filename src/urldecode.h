/* urldecode: percent-decoding (RFC 3986 section 2.1) for scripts, which see request paths and
 * queries as they arrived: confab.urldecode. */
#ifndef CONFAB_URLDECODE_H
#define CONFAB_URLDECODE_H

#include <stddef.h>

struct lua_State;

/* Decodes the len bytes at in into out (room for len bytes: decoding never grows). "%XX" (either
 * case) becomes one byte; with form set, '+' becomes a space (application/x-www-form-urlencoded).
 * Returns the decoded length, or -1 when a '%' is not followed by two hex digits. */
long url_decode(const char *in, size_t len, char *out, int form);

/* confab.urldecode(s [, form]) -> decoded string | nil, "bad escape". The result may be any
 * bytes (check it, e.g. with utf8.len, before using it as text). Raises for a non-string s. */
int script_urldecode(struct lua_State *L);

#endif
