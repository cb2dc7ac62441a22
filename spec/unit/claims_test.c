/* The claims table's bound (claims.h): a mirror may hold up to CLAIMS_TABLE_MAX claims, past it a
 * new key is refused while replacing or deleting a held one still works; confab.claim without
 * --redis refuses a new key at CLAIMS_MAX (script_test.c: script_claims_refuse_past_the_cap). */
#include <stdio.h>
#include <string.h>

#include "claims.h"
#include "test.h"

static size_t key_of(char *buf, size_t i)
{
    return (size_t)snprintf(buf, 32, "k%zu", i);
}

TEST(claims_table_is_bounded_and_a_held_key_still_changes)
{
    char k[32];
    size_t len;
    for (size_t i = 0; i < CLAIMS_TABLE_MAX; i++) {
        len = key_of(k, i);
        if (claims_put(k, len, "v", 1, 1) != 0) {
            CHECK(!"a claim under the bound was refused");
            break;
        }
    }
    CHECK_INT(claims_count(), CLAIMS_TABLE_MAX);
    CHECK_INT(claims_put("new", 3, "v", 1, 1), -2);
    CHECK(claims_get("new", 3) == NULL);
    CHECK_INT(claims_count(), CLAIMS_TABLE_MAX);
    /* A held key takes a new value and node at the bound. */
    len = key_of(k, 7);
    CHECK_INT(claims_put(k, len, "other", 5, 2), 0);
    const struct claim *c = claims_get(k, len);
    CHECK(c && c->node == 2 && strcmp(c->value, "other") == 0);
    /* One let go: a new key fits again. */
    CHECK_INT(claims_del(k, len), 1);
    CHECK_INT(claims_put("new", 3, "v", 1, 1), 0);
    CHECK_INT(claims_count(), CLAIMS_TABLE_MAX);
    claims_clear();
    CHECK_INT(claims_count(), 0);
}
