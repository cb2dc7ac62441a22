/* conn: the small helpers that go with struct conn. */
#include "conn.h"

#include <stdlib.h>
#include <string.h>

/* Copies len bytes to *at as a NUL-terminated string, advances *at, returns the copy. */
static const char *put(char **at, const char *s, size_t len)
{
    char *p = *at;
    memcpy(p, s, len);
    p[len] = '\0';
    *at = p + len + 1;
    return p;
}

struct conn_meta *conn_meta_new(const char *remote, const char *path, size_t path_len,
                                const char *query, size_t query_len, const char *subprotocol)
{
    size_t rl = strlen(remote), sl = strlen(subprotocol);
    struct conn_meta *m = malloc(sizeof *m + rl + path_len + query_len + sl + 4);
    if (!m)
        return NULL;
    char *at = m->buf;
    m->remote = put(&at, remote, rl);
    m->path = put(&at, path, path_len);
    m->path_len = path_len;
    m->query = put(&at, query, query_len);
    m->query_len = query_len;
    m->subprotocol = put(&at, subprotocol, sl);
    return m;
}
