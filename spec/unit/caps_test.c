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

static enum caps_verdict admit(const char *text)
{
    struct sockaddr_storage ss = addr(text);
    return caps_admit((struct sockaddr *)&ss);
}

static void release(const char *text)
{
    struct sockaddr_storage ss = addr(text);
    caps_release((struct sockaddr *)&ss);
}

TEST(caps_per_address_ipv4_and_mapped_are_one_address)
{
    caps_init(0, 2);
    CHECK_INT(admit("127.0.0.2"), CAPS_OK);
    CHECK_INT(admit("::ffff:127.0.0.2"), CAPS_OK); /* a dual-stack socket's IPv4 client */
    CHECK_INT(admit("127.0.0.2"), CAPS_PER_IP);
    CHECK_INT(admit("127.0.0.3"), CAPS_OK);
    CHECK_INT(caps_total(), 3);
    CHECK_INT(caps_addresses(), 2);
    release("127.0.0.2");
    CHECK_INT(admit("::ffff:127.0.0.2"), CAPS_OK); /* a slot came back */
    release("127.0.0.2");
    release("::ffff:127.0.0.2");
    release("127.0.0.3");
    CHECK_INT(caps_total(), 0);
    CHECK_INT(caps_addresses(), 0); /* an address with no connection keeps no entry */
    caps_free();
}

TEST(caps_per_address_ipv6_counts_the_64)
{
    caps_init(0, 2);
    CHECK_INT(admit("2001:db8:1:2::1"), CAPS_OK);
    CHECK_INT(admit("2001:db8:1:2:ffff::9"), CAPS_OK); /* same /64 */
    CHECK_INT(admit("2001:db8:1:2:abcd::1"), CAPS_PER_IP);
    CHECK_INT(admit("2001:db8:1:3::1"), CAPS_OK); /* the next /64 */
    CHECK_INT(admit("::1"), CAPS_OK);
    char text[64];
    struct sockaddr_storage ss = addr("2001:db8:1:2:ffff::9");
    caps_addr_text((struct sockaddr *)&ss, text, sizeof text);
    CHECK_STR(text, "2001:db8:1:2::/64");
    ss = addr("::ffff:10.1.2.3");
    caps_addr_text((struct sockaddr *)&ss, text, sizeof text);
    CHECK_STR(text, "10.1.2.3");
    release("2001:db8:1:2:abcd::2"); /* any address of the /64 releases one of its two */
    CHECK_INT(admit("2001:db8:1:2::7"), CAPS_OK);
    release("2001:db8:1:2::1");
    release("2001:db8:1:2::1");
    release("2001:db8:1:3::1");
    release("::1");
    CHECK_INT(caps_total(), 0);
    CHECK_INT(caps_addresses(), 0);
    caps_free();
}

TEST(caps_total_is_checked_first_and_nothing_is_taken_on_refusal)
{
    caps_init(2, 0);
    CHECK_INT(admit("10.0.0.1"), CAPS_OK);
    CHECK_INT(admit("10.0.0.2"), CAPS_OK);
    CHECK_INT(admit("10.0.0.3"), CAPS_TOTAL);
    CHECK_INT(caps_total(), 2);
    CHECK_INT(caps_addresses(), 0); /* no per-address cap: no entry */
    release("10.0.0.1");
    CHECK_INT(admit("10.0.0.3"), CAPS_OK);
    release("10.0.0.2");
    release("10.0.0.3");
    CHECK_INT(caps_total(), 0);
    caps_init(0, 0);
    caps_free();
}

TEST(caps_many_addresses_come_and_go)
{
    caps_init(0, 1);
    char text[64];
    for (int i = 0; i < 3000; i++) {
        snprintf(text, sizeof text, "2001:db8:%x:%x::1", i >> 8, i & 0xff);
        CHECK_INT(admit(text), CAPS_OK);
    }
    CHECK_INT(caps_addresses(), 3000);
    CHECK_INT(admit("2001:db8:b:b::7"), CAPS_PER_IP); /* the /64 of i = 0xb0b */
    CHECK_INT(caps_total(), 3000);                     /* nothing taken by the refusal */
    for (int i = 0; i < 3000; i++) {
        snprintf(text, sizeof text, "2001:db8:%x:%x::1", i >> 8, i & 0xff);
        release(text);
    }
    CHECK_INT(caps_addresses(), 0);
    caps_init(0, 0);
    caps_free();
}
