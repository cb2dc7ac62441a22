/* redis_url: the --redis URL forms and their refusals. */
#include "redis_url.h"
#include "test.h"

TEST(redis_url_tcp_forms)
{
    struct redis_url u;
    char err[128];
    CHECK(redis_url_parse("redis://127.0.0.1", &u, err, sizeof err) == 0);
    CHECK(strcmp(u.host, "127.0.0.1") == 0 && u.port == 6379 && u.db == 0 && !u.password[0]);
    CHECK(redis_url_parse("redis://localhost:7000/3", &u, err, sizeof err) == 0);
    CHECK(strcmp(u.host, "localhost") == 0 && u.port == 7000 && u.db == 3 && !u.path[0]);
    CHECK(redis_url_parse("redis://:s3cr@t@h:1/", &u, err, sizeof err) == 0);
    CHECK(strcmp(u.password, "s3cr@t") == 0 && strcmp(u.host, "h") == 0 && u.port == 1 &&
          u.db == 0);
    CHECK(redis_url_parse("redis://[::1]:6380/2", &u, err, sizeof err) == 0);
    CHECK(strcmp(u.host, "::1") == 0 && u.port == 6380 && u.db == 2);
}

TEST(redis_url_unix_forms)
{
    struct redis_url u;
    char err[128];
    CHECK(redis_url_parse("unix:/tmp/r.sock", &u, err, sizeof err) == 0);
    CHECK(strcmp(u.path, "/tmp/r.sock") == 0 && !u.host[0] && u.db == 0);
    CHECK(redis_url_parse("unix:/tmp/r.sock?db=5&password=pw", &u, err, sizeof err) == 0);
    CHECK(strcmp(u.path, "/tmp/r.sock") == 0 && u.db == 5 && strcmp(u.password, "pw") == 0);
}

TEST(redis_url_refusals)
{
    static const char *const bad[] = {
        "", "localhost:6379", "http://h", "redis://", "redis://:6379", "redis://h:0",
        "redis://h:65536", "redis://h:12x", "redis://h/db", "redis://h?x=1", "redis://user:pw@h",
        "redis://[::1", "redis://[]:1", "unix:", "unix:rel/path", "unix:/p?db=x", "unix:/p?foo=1",
        "unix:/p?db=1&db=2", "redis://h:1/-1",
    };
    struct redis_url u;
    char err[128];
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err[0] = '\0';
        int rc = redis_url_parse(bad[i], &u, err, sizeof err);
        if (rc != -1 || !err[0])
            printf("    accepted or no reason: '%s'\n", bad[i]);
        CHECK(rc == -1 && err[0]);
    }
}
