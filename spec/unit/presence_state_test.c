/* presence_state: a connection's rooms and attributes, encoded by its node and applied to another
 * node's mirror of it (a CONN_REMOTE conn in the hub); and claims, the table behind it. */
#include <stdlib.h>
#include <string.h>

#include "claims.h"
#include "hub.h"
#include "presence_state.h"
#include "test.h"

static void t_queued(struct conn *c) {}
static void t_overflow(struct conn *c) {}
static void t_close(struct conn *c, uint16_t code, const char *reason) {}
static const struct hub_callbacks cb = {t_queued, t_overflow, t_close};

static int has_room(const struct conn *c, const char *room)
{
    for (size_t i = 0; i < hub_conn_room_count(c); i++)
        if (strcmp(hub_conn_room(c, i), room) == 0)
            return 1;
    return 0;
}

TEST(presence_state_round_trip_to_a_mirror)
{
    hub_init(1 << 20, 10, &cb);
    struct conn *a = test_conn_open();
    CHECK_INT(hub_join(a, "lobby", 5), 1);
    CHECK_INT(hub_join(a, "dev", 3), 1);
    CHECK_INT(hub_attr_set(a, "name", ATTR_STRING, 0, 0, "al\0ice", 6), 0);
    CHECK_INT(hub_attr_set(a, "uid", ATTR_INTEGER, -42, 0, NULL, 0), 0);
    CHECK_INT(hub_attr_set(a, "score", ATTR_NUMBER, 0, 0.1, NULL, 0), 0);
    CHECK_INT(hub_attr_set(a, "away", ATTR_BOOLEAN, 1, 0, NULL, 0), 0);
    struct pstate_buf b = {0};
    CHECK_INT(presence_state_encode(a, &b), 0);

    uint64_t rid = (7ull << 32) | 1;
    struct conn *m = hub_add_remote(rid);
    CHECK(m && (m->flags & CONN_REMOTE) && hub_find(rid) == m);
    CHECK(hub_add_remote(rid) == m);
    CHECK_INT(hub_join(m, "old", 3), 1);
    CHECK_INT(hub_attr_set(m, "gone", ATTR_STRING, 0, 0, "x", 1), 0);
    CHECK_INT(presence_state_apply(m, b.p, b.len), 0);
    CHECK_INT(hub_conn_room_count(m), 2);
    CHECK(has_room(m, "lobby") && has_room(m, "dev") && !has_room(m, "old"));
    CHECK(hub_attr_get(m, "gone") == NULL);
    size_t len = 0;
    const struct attr *name = hub_attr_get(m, "name");
    CHECK(name && name->type == ATTR_STRING);
    const char *s = name ? hub_attr_string(name, &len) : NULL;
    CHECK(s && len == 6 && memcmp(s, "al\0ice", 6) == 0);
    const struct attr *uid = hub_attr_get(m, "uid");
    CHECK(uid && uid->type == ATTR_INTEGER && uid->v.i == -42);
    const struct attr *score = hub_attr_get(m, "score");
    CHECK(score && score->type == ATTR_NUMBER && score->v.n == 0.1);
    const struct attr *away = hub_attr_get(m, "away");
    CHECK(away && away->type == ATTR_BOOLEAN && away->v.b == 1);

    /* The room lists both; a broadcast reaches only the local one. */
    struct room *lobby = hub_room("lobby", 5);
    CHECK(lobby && hub_room_size(lobby) == 2 && hub_room_local_size(lobby) == 1);
    struct frame *f = frame_ws(FRAME_TEXT, "hi", 2);
    CHECK_INT(hub_broadcast(lobby, f, NULL), 1);
    CHECK_INT(outq_count(&m->out), 0);
    frame_unref(f);

    /* Left everything: the mirror follows; removed: gone from the hub. */
    CHECK_INT(presence_state_apply(m, "S", 1), 0);
    CHECK_INT(hub_conn_room_count(m), 0);
    CHECK(hub_attr_get(m, "name") == NULL);
    hub_remove_remote(m);
    CHECK(hub_find(rid) == NULL);
    CHECK_INT(hub_room_size(lobby), 1);
    CHECK_INT(hub_room_local_size(lobby), 1);
    free(b.p);
    test_conn_close(a);
    hub_shutdown();
}

TEST(presence_state_refuses_malformed_states)
{
    hub_init(1 << 20, 10, &cb);
    struct conn *m = hub_add_remote(5ull << 32 | 9);
    static const char *const bad[] = {"", "X", "SR", "SR5:lob", "SR0:", "SR99999999999:x",
                                      "SA3:keys", "SA3:keyz1:x", "SA3:keyi99:1", "SR3:a\0b"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CHECK_INT(presence_state_apply(m, bad[i], i == 9 ? 8 : strlen(bad[i])), -1);
    CHECK_INT(presence_state_apply(m, "SR3:abcA1:ks1:v", 15), 0);
    CHECK(has_room(m, "abc"));
    hub_remove_remote(m);
    hub_shutdown();
}

TEST(claims_table)
{
    CHECK(claims_get("k", 1) == NULL);
    CHECK_INT(claims_put("k", 1, "v1", 2, 3), 0);
    const struct claim *c = claims_get("k", 1);
    CHECK(c && c->node == 3 && c->value_len == 2 && strcmp(c->value, "v1") == 0);
    CHECK_INT(claims_put("k", 1, "", 0, 4), 0);
    c = claims_get("k", 1);
    CHECK(c && c->node == 4 && c->value_len == 0);
    CHECK_INT(claims_count(), 1);
    CHECK_INT(claims_del("k", 1), 1);
    CHECK_INT(claims_del("k", 1), 0);
    CHECK_INT(claims_put("a", 1, "x", 1, 0), 0);
    CHECK_INT(claims_put("b", 1, "y", 1, 0), 0);
    claims_clear();
    CHECK_INT(claims_count(), 0);
}
