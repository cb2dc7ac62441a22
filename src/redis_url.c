#include "redis_url.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(char *err, size_t errlen, const char *why)
{
    snprintf(err, errlen, "%s", why);
    return -1;
}

/* A decimal integer in [lo, hi] made of exactly the len bytes at s. */
static int parse_int(const char *s, size_t len, long lo, long hi, int *out)
{
    if (len == 0 || len > 9)
        return -1;
    long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

static int copy(char *dst, size_t cap, const char *s, size_t len)
{
    if (len >= cap || memchr(s, '\0', len))
        return -1;
    memcpy(dst, s, len);
    dst[len] = '\0';
    return 0;
}

/* unix:/PATH[?db=N][&password=P] (parameters in any order, each at most once). */
static int parse_unix(const char *s, struct redis_url *u, char *err, size_t errlen)
{
    const char *q = strchr(s, '?');
    size_t plen = q ? (size_t)(q - s) : strlen(s);
    if (plen == 0 || s[0] != '/')
        return fail(err, errlen, "unix socket path must be absolute (unix:/path)");
    if (copy(u->path, sizeof u->path, s, plen) < 0)
        return fail(err, errlen, "unix socket path too long");
    int seen_db = 0, seen_pw = 0;
    while (q) {
        const char *p = q + 1;
        q = strchr(p, '&');
        size_t len = q ? (size_t)(q - p) : strlen(p);
        if (len > 3 && strncmp(p, "db=", 3) == 0 && !seen_db) {
            if (parse_int(p + 3, len - 3, 0, 1000000, &u->db) < 0)
                return fail(err, errlen, "db must be a number");
            seen_db = 1;
        } else if (len >= 9 && strncmp(p, "password=", 9) == 0 && !seen_pw) {
            if (copy(u->password, sizeof u->password, p + 9, len - 9) < 0)
                return fail(err, errlen, "password too long");
            seen_pw = 1;
        } else {
            return fail(err, errlen, "unknown or repeated parameter (db=N, password=P)");
        }
    }
    return 0;
}

int redis_url_parse(const char *s, struct redis_url *u, char *err, size_t errlen)
{
    memset(u, 0, sizeof *u);
    u->port = 6379;
    if (strncmp(s, "unix:", 5) == 0)
        return parse_unix(s + 5, u, err, errlen);
    if (strncmp(s, "redis://", 8) != 0)
        return fail(err, errlen, "must start with redis:// or unix:");
    const char *p = s + 8;
    const char *end = p + strcspn(p, "/?#");
    if (*end == '?' || *end == '#')
        return fail(err, errlen, "query and fragment are not supported (use /DB)");
    /* userinfo: [USER]:PASSWORD@ (a user name is not supported: AUTH with a password only) */
    const char *at = memchr(p, '@', (size_t)(end - p));
    if (at) {
        const char *last_at = at;
        for (const char *x = at + 1; x < end; x++)
            if (*x == '@')
                last_at = x;
        at = last_at;
        if (*p != ':')
            return fail(err, errlen, "user names are not supported (redis://:PASSWORD@HOST)");
        if (copy(u->password, sizeof u->password, p + 1, (size_t)(at - p - 1)) < 0)
            return fail(err, errlen, "password too long");
        p = at + 1;
    }
    const char *hend;
    const char *port = NULL;
    if (*p == '[') {
        hend = memchr(p, ']', (size_t)(end - p));
        if (!hend)
            return fail(err, errlen, "unclosed [ in host");
        if (copy(u->host, sizeof u->host, p + 1, (size_t)(hend - p - 1)) < 0 || !u->host[0])
            return fail(err, errlen, "bad IPv6 host");
        if (hend + 1 < end) {
            if (hend[1] != ':')
                return fail(err, errlen, "junk after ]");
            port = hend + 2;
        }
    } else {
        const char *colon = memchr(p, ':', (size_t)(end - p));
        hend = colon ? colon : end;
        if (copy(u->host, sizeof u->host, p, (size_t)(hend - p)) < 0)
            return fail(err, errlen, "host too long");
        if (colon)
            port = colon + 1;
    }
    if (!u->host[0])
        return fail(err, errlen, "missing host");
    if (port && parse_int(port, (size_t)(end - port), 1, 65535, &u->port) < 0)
        return fail(err, errlen, "port must be 1 to 65535");
    if (*end == '/' && end[1] && parse_int(end + 1, strlen(end + 1), 0, 1000000, &u->db) < 0)
        return fail(err, errlen, "database must be a number (redis://HOST:PORT/DB)");
    return 0;
}
