/* redis_link's RESP encoding and redis_room's channel wire format (what the publish script and
 * confab.broadcast write, what every node parses). */
#include <stdlib.h>

#include "redis_link.h"
#include "redis_room.h"
#include "test.h"

TEST(redis_format_is_resp_and_binary_safe)
{
    const char *argv[] = {"SET", "k\r\n", "a\0b"};
    size_t lens[] = {3, 3, 3};
    size_t len;
    char *cmd = redis_format(3, argv, lens, &len);
    static const char want[] = "*3\r\n$3\r\nSET\r\n$3\r\nk\r\n\r\n$3\r\na\0b\r\n";
    CHECK(cmd && len == sizeof want - 1 && memcmp(cmd, want, len) == 0);
    free(cmd);
    const char *none[] = {""};
    size_t zero[] = {0};
    cmd = redis_format(1, none, zero, &len);
    CHECK(cmd && len == 10 && memcmp(cmd, "*1\r\n$0\r\n\r\n", 10) == 0);
    free(cmd);
}

TEST(redis_wire_parses_posts_and_ephemerals)
{
    struct redis_wire w;
    static const char post[] = "17961001950001 0 0 0 5 lobby{\"m\":1} x";
    CHECK(redis_wire_parse(post, sizeof post - 1, &w) == 0);
    CHECK(w.id == 17961001950001ULL && w.except == 0 && w.flags == 0 && w.node == 0);
    CHECK(w.rlen == 5 && memcmp(w.room, "lobby", 5) == 0);
    CHECK(w.len == 9 && memcmp(w.data, "{\"m\":1} x", 9) == 0);
    /* The room is counted, not delimited: spaces and digits in it are fine; data may be empty. */
    static const char eph[] = "0 42 1 99 3 a 1";
    CHECK(redis_wire_parse(eph, sizeof eph - 1, &w) == 0);
    CHECK(w.id == 0 && w.except == 42 && w.flags == 1 && w.node == 99 && w.rlen == 3 &&
          memcmp(w.room, "a 1", 3) == 0 && w.len == 0);
}

TEST(redis_wire_refuses_malformed)
{
    static const char *const bad[] = {
        "", "1", "1 0 0 0", "1 0 0 0 5 abc",     /* room shorter than its length */
        "x 0 0 0 1 r", "1 0 0 0 0 ",             /* empty room */
        "1 0 0 0 65 " "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", /* > 64 */
        "99999999999999999999999 0 0 0 1 r",     /* overflows 64 bits */
        "1  0 0 0 1 r", "-1 0 0 0 1 r",
    };
    struct redis_wire w;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = redis_wire_parse(bad[i], strlen(bad[i]), &w);
        if (rc != -1)
            printf("    accepted: '%s'\n", bad[i]);
        CHECK(rc == -1);
    }
}
