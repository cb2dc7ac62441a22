/* presence_state: see presence_state.h. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hub.h"
#include "presence_state.h"

static int put(struct pstate_buf *b, const void *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q)
            return -1;
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

/* <len>:<bytes> */
static int put_field(struct pstate_buf *b, const char *s, size_t n)
{
    char head[24];
    int h = snprintf(head, sizeof head, "%zu:", n);
    return put(b, head, (size_t)h) < 0 || put(b, s, n) < 0 ? -1 : 0;
}

int presence_state_encode(const struct conn *c, struct pstate_buf *b)
{
    if (put(b, "S", 1) < 0)
        return -1;
    size_t n = hub_conn_room_count(c);
    for (size_t i = 0; i < n; i++) {
        const char *room = hub_conn_room(c, i);
        if (put(b, "R", 1) < 0 || put_field(b, room, strlen(room)) < 0)
            return -1;
    }
    for (const struct attr *a = c->attrs; a; a = a->next) {
        char val[40];
        const char *v = val;
        size_t vlen;
        char t;
        switch (a->type) {
        case ATTR_STRING:
            t = 's';
            v = hub_attr_string(a, &vlen);
            break;
        case ATTR_INTEGER:
            t = 'i';
            vlen = (size_t)snprintf(val, sizeof val, "%" PRId64, a->v.i);
            break;
        case ATTR_NUMBER:
            t = 'n';
            vlen = (size_t)snprintf(val, sizeof val, "%.17g", a->v.n);
            break;
        default:
            t = 'b';
            vlen = (size_t)snprintf(val, sizeof val, "%d", a->v.b ? 1 : 0);
            break;
        }
        if (put(b, "A", 1) < 0 || put_field(b, a->key, strlen(a->key)) < 0 || put(b, &t, 1) < 0 ||
            put_field(b, v, vlen) < 0)
            return -1;
    }
    return 0;
}

/* Reads <len>:, leaving *p at the bytes; returns the length or -1. */
static long get_len(const char **p, const char *end)
{
    const char *s = *p;
    size_t n = 0;
    int digits = 0;
    while (s < end && *s >= '0' && *s <= '9' && digits < 9) {
        n = n * 10 + (size_t)(*s++ - '0');
        digits++;
    }
    if (!digits || s >= end || *s != ':' || n > (size_t)(end - s - 1))
        return -1;
    *p = s + 1;
    return (long)n;
}

struct parsed_room {
    const char *name;
    size_t len;
};

int presence_state_apply(struct conn *c, const char *s, size_t len)
{
    const char *p = s, *end = s + len;
    if (p >= end || *p++ != 'S')
        return -1;
    /* Rooms first: collected, so that those c has but the state does not can be left. */
    struct parsed_room rooms[HUB_ROOMS_PER_CONN];
    size_t nrooms = 0;
    const char *attrs = NULL;
    while (p < end && *p == 'R') {
        p++;
        long n = get_len(&p, end);
        if (n <= 0 || n > HUB_ROOM_NAME_MAX || nrooms == HUB_ROOMS_PER_CONN ||
            memchr(p, '\0', (size_t)n))
            return -1;
        rooms[nrooms++] = (struct parsed_room){p, (size_t)n};
        p += n;
    }
    attrs = p;
    for (size_t i = hub_conn_room_count(c); i-- > 0;) {
        const char *have = hub_conn_room(c, i);
        size_t hl = strlen(have);
        int keep = 0;
        for (size_t j = 0; j < nrooms && !keep; j++)
            keep = rooms[j].len == hl && memcmp(rooms[j].name, have, hl) == 0;
        if (!keep) {
            char name[HUB_ROOM_NAME_MAX + 1];
            memcpy(name, have, hl + 1);
            hub_leave(c, name, hl);
        }
    }
    int rc = 0;
    for (size_t j = 0; j < nrooms; j++)
        if (hub_join(c, rooms[j].name, rooms[j].len) < 0)
            rc = -1;
    /* Attributes: all replaced. */
    while (c->attrs) {
        char key[256];
        const char *k = c->attrs->key;
        size_t kl = strlen(k);
        if (kl >= sizeof key) {
            hub_attr_del(c, k);
            continue;
        }
        memcpy(key, k, kl + 1);
        hub_attr_del(c, key);
    }
    p = attrs;
    while (p < end) {
        if (*p++ != 'A')
            return -1;
        long kl = get_len(&p, end);
        if (kl <= 0 || kl > 4096 || memchr(p, '\0', (size_t)kl))
            return -1;
        char key[4097];
        memcpy(key, p, (size_t)kl);
        key[kl] = '\0';
        p += kl;
        if (p >= end)
            return -1;
        char t = *p++;
        long vl = get_len(&p, end);
        if (vl < 0)
            return -1;
        char num[64];
        if (t != 's') {
            if (vl >= (long)sizeof num)
                return -1;
            memcpy(num, p, (size_t)vl);
            num[vl] = '\0';
        }
        int r;
        switch (t) {
        case 's': r = hub_attr_set(c, key, ATTR_STRING, 0, 0, p, (size_t)vl); break;
        case 'i': r = hub_attr_set(c, key, ATTR_INTEGER, strtoll(num, NULL, 10), 0, NULL, 0); break;
        case 'n': r = hub_attr_set(c, key, ATTR_NUMBER, 0, strtod(num, NULL), NULL, 0); break;
        case 'b': r = hub_attr_set(c, key, ATTR_BOOLEAN, num[0] == '1', 0, NULL, 0); break;
        default: return -1;
        }
        if (r < 0)
            rc = -1;
        p += vl;
    }
    return rc;
}
