#include <arpa/inet.h>
#include <netinet/in.h>

#include "caps.h"
#include "test.h"

static struct sockaddr_storage addr(const char *text)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    if (strchr(text, ':')) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        inet_pton(AF_INET6, text, &a->sin6_addr);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        inet_pton(AF_INET, text, &a->sin_addr);
    }
    return ss;
}

static enum caps_verdict admit(const char *text, struct caps_addr **e)
{
    struct sockaddr_storage ss = addr(text);
    return caps_admit((struct sockaddr *)&ss, e);
}

TEST(caps_per_address_ipv4_and_mapped_are_one_address)
{
    caps_init(0, 2);
    struct caps_addr *a, *b, *c;
    CHECK_INT(admit("127.0.0.2", &a), CAPS_OK);
    CHECK_INT(admit("::ffff:127.0.0.2", &b), CAPS_OK); /* a dual-stack socket's IPv4 client */
    CHECK_INT(admit("127.0.0.2", &c), CAPS_PER_IP);
    CHECK_INT(admit("127.0.0.3", &c), CAPS_OK);
    CHECK_INT(caps_total(), 3);
    CHECK_INT(caps_addresses(), 2);
    caps_release(a);
    CHECK_INT(admit("127.0.0.2", &a), CAPS_OK); /* a slot came back */
    caps_release(a);
    caps_release(b);
    caps_release(c);
    CHECK_INT(caps_total(), 0);
    CHECK_INT(caps_addresses(), 0); /* an address with no connection keeps no entry */
    caps_free();
}

TEST(caps_per_address_ipv6_counts_the_64)
{
    caps_init(0, 2);
    struct caps_addr *e[4];
    CHECK_INT(admit("2001:db8:1:2::1", &e[0]), CAPS_OK);
    CHECK_INT(admit("2001:db8:1:2:ffff::9", &e[1]), CAPS_OK);   /* same /64 */
    CHECK_INT(admit("2001:db8:1:2:abcd::1", &e[2]), CAPS_PER_IP);
    CHECK_INT(admit("2001:db8:1:3::1", &e[2]), CAPS_OK);        /* the next /64 */
    CHECK_INT(admit("::1", &e[3]), CAPS_OK);
    char text[64];
    struct sockaddr_storage ss = addr("2001:db8:1:2:ffff::9");
    caps_addr_text((struct sockaddr *)&ss, text, sizeof text);
    CHECK_STR(text, "2001:db8:1:2::/64");
    ss = addr("::ffff:10.1.2.3");
    caps_addr_text((struct sockaddr *)&ss, text, sizeof text);
    CHECK_STR(text, "10.1.2.3");
    for (int i = 0; i < 4; i++)
        caps_release(e[i]);
    CHECK_INT(caps_addresses(), 0);
    caps_free();
}

TEST(caps_total_is_checked_first_and_nothing_is_taken_on_refusal)
{
    caps_init(2, 0);
    struct caps_addr *a, *b, *c;
    CHECK_INT(admit("10.0.0.1", &a), CAPS_OK);
    CHECK(a == NULL); /* no per-address cap: no entry */
    CHECK_INT(admit("10.0.0.2", &b), CAPS_OK);
    CHECK_INT(admit("10.0.0.3", &c), CAPS_TOTAL);
    CHECK_INT(caps_total(), 2);
    caps_release(a);
    CHECK_INT(admit("10.0.0.3", &c), CAPS_OK);
    caps_release(b);
    caps_release(c);
    CHECK_INT(caps_total(), 0);
    caps_init(0, 0);
    caps_free();
}

TEST(caps_many_addresses_come_and_go)
{
    caps_init(0, 1);
    static struct caps_addr *e[3000];
    char text[64];
    for (int i = 0; i < 3000; i++) {
        snprintf(text, sizeof text, "2001:db8:%x:%x::1", i >> 8, i & 0xff);
        CHECK_INT(admit(text, &e[i]), CAPS_OK);
    }
    CHECK_INT(caps_addresses(), 3000);
    struct caps_addr *x;
    CHECK_INT(admit("2001:db8:b:b::7", &x), CAPS_PER_IP); /* the /64 of i = 0xb0b */
    CHECK(x == NULL);
    for (int i = 0; i < 3000; i++)
        caps_release(e[i]);
    CHECK_INT(caps_addresses(), 0);
    caps_init(0, 0);
    caps_free();
}

/* A connection released by its address (the server keeps no entry pointer per connection). */
TEST(caps_release_by_address)
{
    caps_init(0, 1);
    struct caps_addr *a, *b;
    CHECK_INT(admit("192.0.2.7", &a), CAPS_OK);
    CHECK_INT(admit("2001:db8:5:6::1", &b), CAPS_OK);
    CHECK_INT(caps_addresses(), 2);
    struct sockaddr_storage ss = {0};
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    s4->sin_family = AF_INET;
    inet_pton(AF_INET, "192.0.2.7", &s4->sin_addr);
    caps_release_addr((struct sockaddr *)&ss);
    CHECK_INT(caps_total(), 1);
    CHECK_INT(caps_addresses(), 1);
    CHECK_INT(admit("192.0.2.7", &a), CAPS_OK); /* its slot came back */
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    memset(&ss, 0, sizeof ss);
    s6->sin6_family = AF_INET6;
    inet_pton(AF_INET6, "2001:db8:5:6:ffff::2", &s6->sin6_addr); /* another of the same /64 */
    caps_release_addr((struct sockaddr *)&ss);
    caps_release(a);
    CHECK_INT(caps_total(), 0);
    CHECK_INT(caps_addresses(), 0);
    caps_free();
}
