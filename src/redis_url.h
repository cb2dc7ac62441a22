/* redis_url: parses a --redis URL: redis://[:PASSWORD@]HOST[:PORT][/DB] or
 * unix:/PATH[?db=N][&password=P]. Pure (no I/O), so it is unit-tested on its own. */
#ifndef CONFAB_REDIS_URL_H
#define CONFAB_REDIS_URL_H

#include <stddef.h>

struct redis_url {
    char host[256];     /* TCP host (brackets of an IPv6 literal removed); "" for unix */
    int port;           /* TCP port (6379 by default) */
    char path[108];     /* unix socket path; "" for TCP */
    char password[256]; /* "" for none */
    int db;             /* SELECT db (0 by default) */
};

/* Fills u from s. Returns 0, or -1 with a short reason in err. */
int redis_url_parse(const char *s, struct redis_url *u, char *err, size_t errlen);

#endif
