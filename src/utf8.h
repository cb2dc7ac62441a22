/* utf8: validation of text the server sends on behalf of a script (RFC 3629: no overlongs,
 * no surrogates, nothing above U+10FFFF). Incoming text is checked by wslay. */
#ifndef CONFAB_UTF8_H
#define CONFAB_UTF8_H

#include <stddef.h>

/* Returns 1 when the len bytes at s are well-formed UTF-8, 0 otherwise. */
int utf8_valid(const void *s, size_t len);

/* The length of the longest well-formed prefix of the len bytes at s: where the first invalid
 * or incomplete sequence starts (len when all of it is valid). */
size_t utf8_valid_prefix(const void *s, size_t len);

#endif
