/* webroot: maps a request path to a file under the --web directory, refusing every way out of it
 * ("..", its percent-encoded forms, NUL, symlinks that lead outside). */
#ifndef CONFAB_WEBROOT_H
#define CONFAB_WEBROOT_H

#include <stddef.h>

/* Resolves root once (realpath). Returns 0, or -1 with a reason in err. */
int webroot_init(const char *root, char *err, size_t errlen);

/* Frees what webroot_init kept. */
void webroot_free(void);

/* Resolves a percent-encoded request path to an open regular file. Returns the file descriptor
 * (and its content type in *ctype), or a negative HTTP status: -400 for a malformed path, -404
 * for a missing file or one outside the root, -503 when out of file descriptors. */
int webroot_open(const char *path, size_t len, const char **ctype);

/* The Content-Type for a file name, by extension. */
const char *webroot_content_type(const char *name);

#endif
