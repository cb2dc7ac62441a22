/* claims: the table behind confab.claim (see claims.h). A uthash table keyed by the key's
 * bytes; one allocation per claim (struct, key, value). */
#include <stdlib.h>
#include <string.h>

#include "claims.h"
#include "log.h"

static struct claim *table;

static struct claim *find(const char *key, size_t len)
{
    struct claim *e;
    HASH_FIND(hh, table, key, len, e);
    return e;
}

const struct claim *claims_get(const char *key, size_t len)
{
    struct claim *e = find(key, len);
    return e;
}

int claims_put(const char *key, size_t len, const char *value, size_t value_len, uint64_t node)
{
    struct claim *old = find(key, len);
    if (!old && HASH_COUNT(table) >= CLAIMS_TABLE_MAX) {
        static int told;
        if (!told && (told = 1))
            log_warn("claims: table full (%d): a claim not recorded here", CLAIMS_TABLE_MAX);
        return -2;
    }
    struct claim *e = malloc(sizeof *e + len + 1 + value_len + 1);
    if (!e)
        return -1;
    memset(e, 0, sizeof *e);
    memcpy(e->key, key, len);
    e->key[len] = '\0';
    e->value = e->key + len + 1;
    memcpy(e->value, value, value_len);
    e->value[value_len] = '\0';
    e->value_len = value_len;
    e->node = node;
    if (old) {
        HASH_DEL(table, old);
        free(old);
    }
    HASH_ADD(hh, table, key, len, e);
    return 0;
}

void claims_mark(const char *key, size_t len, unsigned mark)
{
    struct claim *e = find(key, len);
    if (e)
        e->mark = mark;
}

int claims_del(const char *key, size_t len)
{
    struct claim *e = find(key, len);
    if (!e)
        return 0;
    HASH_DEL(table, e);
    free(e);
    return 1;
}

void claims_each(void (*fn)(const struct claim *c, void *arg), void *arg)
{
    struct claim *e, *tmp;
    HASH_ITER(hh, table, e, tmp) fn(e, arg);
}

size_t claims_count(void)
{
    return HASH_COUNT(table);
}

void claims_clear(void)
{
    struct claim *e, *tmp;
    HASH_ITER(hh, table, e, tmp) {
        HASH_DEL(table, e);
        free(e);
    }
}
