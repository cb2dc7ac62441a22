/* The hub's id -> connection table: insert, find, delete, growth, tombstones (a deleted entry in
 * the middle of a probe chain must not hide what lies behind it), and iteration that deletes. */
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "conn_ids.h"
#include "test.h"

static struct conn *mk(uint64_t id)
{
    struct conn *c = calloc(1, sizeof *c);
    c->id = id;
    return c;
}

TEST(conn_ids_insert_find_delete)
{
    struct conn_ids t = {0};
    CHECK(conn_ids_get(&t, 1) == NULL); /* empty: no slots at all */
    struct conn *a = mk(1), *b = mk(2), *c = mk(1000000007);
    CHECK_INT(conn_ids_put(&t, a), 0);
    CHECK_INT(conn_ids_put(&t, b), 0);
    CHECK_INT(conn_ids_put(&t, c), 0);
    CHECK_INT(t.count, 3);
    CHECK(conn_ids_get(&t, 1) == a);
    CHECK(conn_ids_get(&t, 2) == b);
    CHECK(conn_ids_get(&t, 1000000007) == c);
    CHECK(conn_ids_get(&t, 3) == NULL);
    conn_ids_del(&t, b);
    CHECK_INT(t.count, 2);
    CHECK(conn_ids_get(&t, 2) == NULL);
    CHECK(conn_ids_get(&t, 1) == a);
    conn_ids_del(&t, b); /* not there any more: nothing happens */
    CHECK_INT(t.count, 2);
    conn_ids_free(&t);
    free(a);
    free(b);
    free(c);
}

TEST(conn_ids_grow_keeps_every_entry_and_load_under_three_quarters)
{
    enum { N = 20000 };
    struct conn_ids t = {0};
    struct conn **cs = calloc(N, sizeof *cs);
    for (uint64_t i = 0; i < N; i++) {
        cs[i] = mk(i + 1);
        CHECK_INT(conn_ids_put(&t, cs[i]), 0);
        CHECK((uint64_t)t.used * 4 <= (uint64_t)t.cap * 3);
    }
    CHECK_INT(t.count, N);
    CHECK_INT(t.cap, 32768); /* 20,000 entries: the smallest power of two past 4/3 of them */
    for (uint64_t i = 0; i < N; i++)
        CHECK(conn_ids_get(&t, i + 1) == cs[i]);
    CHECK(conn_ids_get(&t, N + 1) == NULL);
    for (int i = 0; i < N; i++) {
        conn_ids_del(&t, cs[i]);
        free(cs[i]);
    }
    CHECK_INT(t.count, 0);
    conn_ids_free(&t);
    free(cs);
}

/* Ids that all probe from the same slot: found by walking the chain. */
static uint64_t same_slot_ids(uint64_t *out, int n, uint32_t cap)
{
    uint64_t want = (((uint64_t)1 * 0x9E3779B97F4A7C15ULL) >> 32) & (cap - 1);
    int k = 0;
    for (uint64_t id = 1; k < n; id++)
        if (((((id * 0x9E3779B97F4A7C15ULL) >> 32)) & (cap - 1)) == want)
            out[k++] = id;
    return want;
}

TEST(conn_ids_tombstones_keep_chains_whole)
{
    struct conn_ids t = {0};
    uint64_t ids[5];
    same_slot_ids(ids, 5, 16); /* the first table has 16 slots; 5 entries stay below 3/4 */
    struct conn *cs[5];
    for (int i = 0; i < 5; i++) {
        cs[i] = mk(ids[i]);
        CHECK_INT(conn_ids_put(&t, cs[i]), 0);
    }
    CHECK_INT(t.cap, 16);
    /* Deleting the head and a middle entry of the chain: the ones behind are still found. */
    conn_ids_del(&t, cs[0]);
    conn_ids_del(&t, cs[2]);
    CHECK(conn_ids_get(&t, ids[1]) == cs[1]);
    CHECK(conn_ids_get(&t, ids[3]) == cs[3]);
    CHECK(conn_ids_get(&t, ids[4]) == cs[4]);
    CHECK(conn_ids_get(&t, ids[0]) == NULL);
    CHECK(conn_ids_get(&t, ids[2]) == NULL);
    CHECK_INT(t.used, 5); /* two tombstones */
    /* The chain's last entry is followed by a free slot: its slot is freed, not a tombstone. */
    conn_ids_del(&t, cs[4]);
    CHECK_INT(t.used, 4);
    /* A new entry takes the first tombstone on its way. */
    CHECK_INT(conn_ids_put(&t, cs[0]), 0);
    CHECK_INT(t.used, 4);
    CHECK(conn_ids_get(&t, ids[0]) == cs[0]);
    CHECK(conn_ids_get(&t, ids[3]) == cs[3]);
    conn_ids_free(&t);
    for (int i = 0; i < 5; i++)
        free(cs[i]);
}

TEST(conn_ids_churn_stays_bounded)
{
    enum { N = 1000 };
    struct conn_ids t = {0};
    struct conn *cs[N];
    for (int i = 0; i < N; i++) {
        cs[i] = mk((uint64_t)i + 1);
        conn_ids_put(&t, cs[i]);
    }
    uint32_t big = t.cap;
    for (int i = 0; i < N - 2; i++)
        conn_ids_del(&t, cs[i]);
    /* Churn: each put is a new id; tombstones never take the table past 3/4 (a rebuild drops
     * them, at a size for the entries left) and it never grows for them. */
    uint64_t next = N + 1;
    struct conn *extra = mk(0);
    for (int i = 0; i < 3 * N; i++) {
        extra->id = next++;
        CHECK_INT(conn_ids_put(&t, extra), 0);
        conn_ids_del(&t, extra);
        CHECK((uint64_t)t.used * 4 <= (uint64_t)t.cap * 3);
    }
    CHECK(t.cap <= big);
    CHECK(conn_ids_get(&t, N - 1) == cs[N - 2]);
    CHECK(conn_ids_get(&t, N) == cs[N - 1]);
    CHECK_INT(t.count, 2);
    conn_ids_free(&t);
    free(extra);
    for (int i = 0; i < N; i++)
        free(cs[i]);
}

struct each_ctx {
    struct conn_ids *t;
    int seen;
    uint64_t sum;
};

static void delete_every_other(struct conn *c, void *arg)
{
    struct each_ctx *x = arg;
    x->seen++;
    x->sum += c->id;
    if (c->id % 2)
        conn_ids_del(x->t, c);
}

TEST(conn_ids_each_visits_all_once_while_deleting)
{
    enum { N = 500 };
    struct conn_ids t = {0};
    struct conn *cs[N];
    uint64_t sum = 0;
    for (int i = 0; i < N; i++) {
        cs[i] = mk((uint64_t)i + 1);
        conn_ids_put(&t, cs[i]);
        sum += (uint64_t)i + 1;
    }
    struct each_ctx x = {&t, 0, 0};
    conn_ids_each(&t, delete_every_other, &x);
    CHECK_INT(x.seen, N);
    CHECK(x.sum == sum);
    CHECK_INT(t.count, N / 2);
    for (int i = 0; i < N; i++)
        CHECK(conn_ids_get(&t, (uint64_t)i + 1) == ((i + 1) % 2 ? NULL : cs[i]));
    conn_ids_free(&t);
    for (int i = 0; i < N; i++)
        free(cs[i]);
}
