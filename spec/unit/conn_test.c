/* The small helpers of struct conn: the compact peer address and how it is written out (the
 * form getnameinfo's numeric one gave: "ip:port", "[ipv6]:port"). */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "test.h"

TEST(conn_peer_writes_ipv4_ipv6_and_unknown)
{
    char buf[CONN_PEER_TEXT];
    struct conn_peer p;
    struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_port = htons(54321)};
    inet_pton(AF_INET, "127.0.0.2", &a4.sin_addr);
    conn_peer_set(&p, (struct sockaddr *)&a4);
    CHECK_STR(conn_peer_text(&p, buf, sizeof buf), "127.0.0.2:54321");

    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons(8080)};
    inet_pton(AF_INET6, "2001:db8::1", &a6.sin6_addr);
    conn_peer_set(&p, (struct sockaddr *)&a6);
    CHECK_STR(conn_peer_text(&p, buf, sizeof buf), "[2001:db8::1]:8080");

    /* An IPv4 client of a dual-stack socket, as accept gives it. */
    inet_pton(AF_INET6, "::ffff:10.1.2.3", &a6.sin6_addr);
    a6.sin6_port = htons(1);
    conn_peer_set(&p, (struct sockaddr *)&a6);
    CHECK_STR(conn_peer_text(&p, buf, sizeof buf), "[::ffff:10.1.2.3]:1");

    /* The longest IPv6 address and port fit. */
    inet_pton(AF_INET6, "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", &a6.sin6_addr);
    a6.sin6_port = htons(65535);
    conn_peer_set(&p, (struct sockaddr *)&a6);
    CHECK_STR(conn_peer_text(&p, buf, sizeof buf), "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");

    struct sockaddr unknown = {.sa_family = AF_UNIX};
    conn_peer_set(&p, &unknown);
    CHECK_STR(conn_peer_text(&p, buf, sizeof buf), "?:0");
}

TEST(conn_meta_keeps_path_query_and_subprotocol)
{
    struct conn_meta *m = conn_meta_new("/ws/room1", 9, "a=1&b", 5, "chat.v2");
    CHECK(m != NULL);
    CHECK_STR(m->path, "/ws/room1");
    CHECK_INT(m->path_len, 9);
    CHECK_STR(m->query, "a=1&b");
    CHECK_INT(m->query_len, 5);
    CHECK_STR(m->subprotocol, "chat.v2");
    free(m);
}

TEST(conn_peer_back_to_a_sockaddr)
{
    struct conn_peer p;
    struct sockaddr_storage ss;
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons(443)};
    inet_pton(AF_INET6, "2001:db8::7", &a6.sin6_addr);
    conn_peer_set(&p, (struct sockaddr *)&a6);
    struct sockaddr_in6 *b6 = (struct sockaddr_in6 *)conn_peer_sockaddr(&p, &ss);
    CHECK_INT(b6->sin6_family, AF_INET6);
    CHECK_INT(ntohs(b6->sin6_port), 443);
    CHECK(memcmp(&b6->sin6_addr, &a6.sin6_addr, 16) == 0);
    struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_port = htons(9)};
    inet_pton(AF_INET, "10.9.8.7", &a4.sin_addr);
    conn_peer_set(&p, (struct sockaddr *)&a4);
    struct sockaddr_in *b4 = (struct sockaddr_in *)conn_peer_sockaddr(&p, &ss);
    CHECK_INT(b4->sin_family, AF_INET);
    CHECK_INT(ntohs(b4->sin_port), 9);
    CHECK(b4->sin_addr.s_addr == a4.sin_addr.s_addr);
    struct sockaddr none = {.sa_family = AF_UNIX};
    conn_peer_set(&p, &none);
    CHECK_INT(conn_peer_sockaddr(&p, &ss)->sa_family, AF_UNSPEC);
}
