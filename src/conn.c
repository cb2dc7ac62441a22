/* conn: the small helpers that go with struct conn. */
#include "conn.h"

#include <arpa/inet.h>
#include <stdio.h>
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

struct conn_meta *conn_meta_new(const char *path, size_t path_len, const char *query,
                                size_t query_len, const char *subprotocol)
{
    size_t sl = strlen(subprotocol);
    struct conn_meta *m = malloc(sizeof *m + path_len + query_len + sl + 3);
    if (!m)
        return NULL;
    char *at = m->buf;
    m->path = put(&at, path, path_len);
    m->path_len = path_len;
    m->query = put(&at, query, query_len);
    m->query_len = query_len;
    m->subprotocol = put(&at, subprotocol, sl);
    return m;
}

void conn_peer_set(struct conn_peer *p, const struct sockaddr *sa)
{
    memset(p, 0, sizeof *p);
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        p->family = AF_INET;
        p->port = ntohs(a->sin_port);
        memcpy(p->addr, &a->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        p->family = AF_INET6;
        p->port = ntohs(a->sin6_port);
        memcpy(p->addr, &a->sin6_addr, 16);
    }
}

struct sockaddr *conn_peer_sockaddr(const struct conn_peer *p, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    if (p->family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;
        a->sin_family = AF_INET;
        a->sin_port = htons(p->port);
        memcpy(&a->sin_addr, p->addr, 4);
    } else if (p->family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons(p->port);
        memcpy(&a->sin6_addr, p->addr, 16);
    }
    return (struct sockaddr *)ss;
}

const char *conn_peer_text(const struct conn_peer *p, char *out, size_t len)
{
    char host[INET6_ADDRSTRLEN] = "?";
    int v6 = p->family == AF_INET6;
    if (p->family == AF_INET || v6)
        inet_ntop(p->family, p->addr, host, sizeof host);
    snprintf(out, len, v6 ? "[%s]:%u" : "%s:%u", host, (unsigned)p->port);
    return out;
}
