/* The opening handshake: a table of requests, good and bad, and the status each must get. */
#include <stdlib.h>
#include <string.h>

#include "handshake.h"
#include "http.h"
#include "test.h"

#define GOOD_KEY "dGhlIHNhbXBsZSBub25jZQ=="

struct hs_case {
    const char *what;
    const char *request;
    const char *allow_origin;
    int status;
};

#define WS_HEAD "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" \
    "Sec-WebSocket-Key: " GOOD_KEY "\r\nSec-WebSocket-Version: 13\r\n"

static const struct hs_case cases[] = {
    {"RFC 6455 example", "GET /ws HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n"
     "Connection: Upgrade\r\nSec-WebSocket-Key: " GOOD_KEY "\r\nSec-WebSocket-Version: 13\r\n\r\n",
     NULL, 101},
    {"case-insensitive names and values", "GET /ws HTTP/1.1\r\nHOST: h\r\nUPGRADE: WebSocket\r\n"
     "connection: keep-alive, UPGRADE\r\nsec-websocket-key: " GOOD_KEY "\r\n"
     "SEC-WEBSOCKET-VERSION: 13\r\n\r\n", NULL, 101},
    {"Connection token list with spaces", "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
     "Connection: keep-alive ,  Upgrade \r\nSec-WebSocket-Key: " GOOD_KEY "\r\n"
     "Sec-WebSocket-Version: 13\r\n\r\n", NULL, 101},
    {"Connection token in a second header line", "GET /ws HTTP/1.1\r\nHost: h\r\n"
     "Upgrade: websocket\r\nConnection: keep-alive\r\nConnection: upgrade\r\n"
     "Sec-WebSocket-Key: " GOOD_KEY "\r\nSec-WebSocket-Version: 13\r\n\r\n", NULL, 101},
    {"Origin of the address it arrived on", WS_HEAD "Host: 192.0.2.10:8080\r\n"
     "Origin: http://192.0.2.10:8080\r\n\r\n", NULL, 101},
    {"https Origin of that address", WS_HEAD "Host: x\r\nOrigin: https://192.0.2.10:8080\r\n\r\n",
     NULL, 101},
    {"Origin of the --addr host", WS_HEAD "Host: x\r\nOrigin: http://Chat.Test:8080\r\n\r\n",
     NULL, 101},
    {"DNS rebinding: Origin matches Host, not the server", WS_HEAD "Host: evil.test:8080\r\n"
     "Origin: http://evil.test:8080\r\n\r\n", NULL, 403},
    {"Origin on another port of that address", WS_HEAD "Host: x\r\n"
     "Origin: http://192.0.2.10:8081\r\n\r\n", NULL, 101},
    {"Origin with the default port", WS_HEAD "Host: x\r\nOrigin: http://192.0.2.10\r\n\r\n",
     NULL, 101},
    {"Origin with a bad port", WS_HEAD "Host: x\r\nOrigin: http://192.0.2.10:99999\r\n\r\n",
     NULL, 403},
    {"Origin of another address", WS_HEAD "Host: x\r\nOrigin: http://192.0.2.11:8080\r\n\r\n",
     NULL, 403},
    {"localhost not on loopback", WS_HEAD "Host: x\r\nOrigin: http://localhost:8080\r\n\r\n",
     NULL, 403},
    {"user info in Origin", WS_HEAD "Host: x\r\nOrigin: http://a@192.0.2.10:8080\r\n\r\n",
     NULL, 403},
    {"path in Origin", WS_HEAD "Host: x\r\nOrigin: http://192.0.2.10:8080/x\r\n\r\n", NULL, 403},
    {"Origin null", WS_HEAD "Host: x\r\nOrigin: null\r\n\r\n", NULL, 403},
    {"Origin with another scheme", WS_HEAD "Host: x\r\nOrigin: ftp://192.0.2.10:8080\r\n\r\n",
     NULL, 403},
    {"foreign Origin", "GET /ws HTTP/1.1\r\nHost: chat.test\r\nUpgrade: websocket\r\n"
     "Connection: Upgrade\r\nSec-WebSocket-Key: " GOOD_KEY "\r\nSec-WebSocket-Version: 13\r\n"
     "Origin: http://evil.test\r\n\r\n", NULL, 403},
    {"foreign Origin allowed by list", "GET /ws HTTP/1.1\r\nHost: chat.test\r\n"
     "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " GOOD_KEY "\r\n"
     "Sec-WebSocket-Version: 13\r\nOrigin: http://friend.test\r\n\r\n",
     "http://other.test, http://friend.test", 101},
    {"listed Origin written with its default port and a slash", WS_HEAD "Host: x\r\n"
     "Origin: https://chat.example.com\r\n\r\n", "https://Chat.Example.com:443/", 101},
    {"listed Origin, other scheme", WS_HEAD "Host: x\r\nOrigin: http://chat.example.com\r\n\r\n",
     "https://chat.example.com", 403},
    {"listed Origin, other port", WS_HEAD "Host: x\r\n"
     "Origin: https://chat.example.com:8443\r\n\r\n", "https://chat.example.com", 403},
    {"listed Origin is not a prefix", WS_HEAD "Host: x\r\n"
     "Origin: https://chat.example.com.evil.test\r\n\r\n", "https://chat.example.com", 403},
    {"any Origin with *", "GET /ws HTTP/1.1\r\nHost: chat.test\r\nUpgrade: websocket\r\n"
     "Connection: Upgrade\r\nSec-WebSocket-Key: " GOOD_KEY "\r\nSec-WebSocket-Version: 13\r\n"
     "Origin: http://evil.test\r\n\r\n", "*", 101},
    {"POST", "POST /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Key: " GOOD_KEY "\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\n\r\n",
     NULL, 405},
    {"HTTP/1.0", "GET /ws HTTP/1.0\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Key: " GOOD_KEY "\r\nSec-WebSocket-Version: 13\r\n\r\n", NULL, 400},
    {"no Host", "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Key: " GOOD_KEY "\r\nSec-WebSocket-Version: 13\r\n\r\n", NULL, 400},
    {"no Upgrade", "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Key: " GOOD_KEY "\r\nSec-WebSocket-Version: 13\r\n\r\n", NULL, 400},
    {"Upgrade to something else", "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: h2c\r\n"
     "Connection: Upgrade\r\nSec-WebSocket-Key: " GOOD_KEY "\r\nSec-WebSocket-Version: 13\r\n\r\n",
     NULL, 400},
    {"Connection without upgrade", "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
     "Connection: keep-alive\r\nSec-WebSocket-Key: " GOOD_KEY "\r\nSec-WebSocket-Version: 13\r\n\r\n",
     NULL, 400},
    {"Connection: upgraded is not upgrade", "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
     "Connection: upgraded\r\nSec-WebSocket-Key: " GOOD_KEY "\r\nSec-WebSocket-Version: 13\r\n\r\n",
     NULL, 400},
    {"version 8", "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Key: " GOOD_KEY "\r\nSec-WebSocket-Version: 8\r\n\r\n", NULL, 426},
    {"no version", "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Key: " GOOD_KEY "\r\n\r\n", NULL, 400},
    {"no key", "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Version: 13\r\n\r\n", NULL, 400},
    {"key not base64", "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Key: !!!!!!!!!!!!!!!!!!!!!!==\r\nSec-WebSocket-Version: 13\r\n\r\n", NULL, 400},
    {"key of 15 bytes", "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=\r\nSec-WebSocket-Version: 13\r\n\r\n", NULL, 400},
    {"key of 18 bytes", "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZXh4\r\nSec-WebSocket-Version: 13\r\n\r\n", NULL, 400},
    {"two keys", "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Key: " GOOD_KEY "\r\nSec-WebSocket-Key: " GOOD_KEY "\r\n"
     "Sec-WebSocket-Version: 13\r\n\r\n", NULL, 400},
};

/* The same rules for a connection that arrived on loopback (127.0.0.1 port 8080). */
static const struct hs_case loopback_cases[] = {
    {"localhost on loopback", WS_HEAD "Host: x\r\nOrigin: http://localhost:8080\r\n\r\n",
     NULL, 101},
    {"[::1] on loopback", WS_HEAD "Host: x\r\nOrigin: http://[::1]:8080\r\n\r\n", NULL, 101},
    {"127.0.0.1 on loopback", WS_HEAD "Host: x\r\nOrigin: http://127.0.0.1:8080\r\n\r\n",
     NULL, 101},
    {"rebinding on loopback", WS_HEAD "Host: evil.test:8080\r\n"
     "Origin: http://evil.test:8080\r\n\r\n", NULL, 403},
};

/* Checks c's request as if it arrived on 192.0.2.10 port 8080 (127.0.0.1 with loopback), the
 * server listening on "chat.test". Returns the status. */
static int run_case_on(const struct hs_case *c, struct hs_result *res, const char *protocols,
                       int loopback)
{
    struct http_request req;
    const char *reason = NULL;
    int rc = http_parse_head(c->request, strlen(c->request), 8192, &req, &reason);
    if (rc != 1) {
        printf("    %s: request did not parse (%d %s)\n", c->what, rc, reason ? reason : "");
        return -1;
    }
    struct hs_config cfg = {.allow_origin = c->allow_origin, .subprotocols = protocols,
                            .listen_host = "chat.test",
                            .local_addr = loopback ? "127.0.0.1" : "192.0.2.10",
                            .local_loopback = loopback};
    handshake_check(&req, &cfg, res);
    return res->status;
}

static int run_case(const struct hs_case *c, struct hs_result *res, const char *protocols)
{
    return run_case_on(c, res, protocols, 0);
}

TEST(handshake_table)
{
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct hs_result res;
        int status = run_case(&cases[i], &res, NULL);
        if (status != cases[i].status) {
            printf("    case '%s': status %d, expected %d\n", cases[i].what, status,
                   cases[i].status);
            test_failed_checks++;
        }
        if (status >= 400)
            CHECK(res.reason && res.reason[0]);
    }
    for (size_t i = 0; i < sizeof loopback_cases / sizeof *loopback_cases; i++) {
        struct hs_result res;
        int status = run_case_on(&loopback_cases[i], &res, NULL, 1);
        if (status != loopback_cases[i].status) {
            printf("    case '%s': status %d, expected %d\n", loopback_cases[i].what, status,
                   loopback_cases[i].status);
            test_failed_checks++;
        }
    }
}

TEST(handshake_accept_key_rfc_example)
{
    char out[32];
    handshake_accept_key(GOOD_KEY, strlen(GOOD_KEY), out);
    CHECK_STR(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(handshake_426_names_the_version)
{
    struct hs_result res;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        if (cases[i].status == 426) {
            run_case(&cases[i], &res, NULL);
            CHECK(res.extra_header && strstr(res.extra_header, "Sec-WebSocket-Version: 13"));
        }
}

TEST(handshake_subprotocol_server_preference)
{
    struct hs_case c = {"protocols", "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
                        "Connection: Upgrade\r\nSec-WebSocket-Key: " GOOD_KEY "\r\n"
                        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat, superchat\r\n\r\n",
                        NULL, 101};
    struct hs_result res;
    CHECK_INT(run_case(&c, &res, "superchat,chat"), 101);
    CHECK_STR(res.protocol, "superchat");
    CHECK_INT(run_case(&c, &res, "mqtt"), 101);
    CHECK_STR(res.protocol, "");
    CHECK_INT(run_case(&c, &res, NULL), 101);
    CHECK_STR(res.protocol, "");
    struct frame *f = NULL;
    run_case(&c, &res, "chat");
    f = handshake_response(&res);
    CHECK(f && memmem(f->data, f->len, "Sec-WebSocket-Protocol: chat\r\n", 30));
    CHECK(f && memmem(f->data, f->len, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n", 51));
    frame_unref(f);
}

TEST(http_head_limits)
{
    struct http_request req;
    const char *reason;
    const char *partial = "GET / HTTP/1.1\r\nHost: h\r\n";
    CHECK_INT(http_parse_head(partial, strlen(partial), 8192, &req, &reason), 0);

    char big[600];
    memset(big, 'a', sizeof big);
    memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
    CHECK_INT(http_parse_head(big, sizeof big, 512, &req, &reason), 431);

    const char *garbage = "HELLO\r\n\r\n";
    CHECK_INT(http_parse_head(garbage, strlen(garbage), 8192, &req, &reason), 400);

    const char *two = "GET /a?x=1 HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n";
    CHECK_INT(http_parse_head(two, strlen(two), 8192, &req, &reason), 1);
    CHECK_INT(req.path.len, 2);
    CHECK(memcmp(req.path.p, "/a", 2) == 0);
    CHECK(req.query.len == 3 && memcmp(req.query.p, "x=1", 3) == 0);
    CHECK_INT(req.head_len, strlen("GET /a?x=1 HTTP/1.1\r\nHost: h\r\n\r\n"));
    CHECK(req.keep_alive);

    const char *body = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999\r\n\r\n";
    CHECK_INT(http_parse_head(body, strlen(body), 8192, &req, &reason), 1);
    CHECK_INT(req.content_length, 99999999);
}

/* Transfer codings, Host and header-line shapes: each bad head gets 400 with a reason. */
TEST(http_head_framing)
{
    static const struct { const char *head; int status; } framing[] = {
        {"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 1},
        {"GET / HTTP/1.1\r\nTransfer-Encoding:  Chunked \r\n\r\n", 1},
        {"GET / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
         400},
        {"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\n X: starts with a space\r\n\r\n", 400},
        {"GET http://elsewhere.test/a.js?q HTTP/1.1\r\n\r\n", 1}, /* absolute-form */
    };
    for (size_t i = 0; i < sizeof framing / sizeof *framing; i++) {
        struct http_request req;
        const char *reason = NULL;
        int rc = http_parse_head(framing[i].head, strlen(framing[i].head), 8192, &req, &reason);
        if (rc != framing[i].status) {
            printf("    case %zu: %d, expected %d\n", i, rc, framing[i].status);
            test_failed_checks++;
        }
        if (rc > 1)
            CHECK(reason && reason[0]);
    }
    struct http_request req;
    const char *reason;
    const char *abs = "GET http://elsewhere.test/a.js?q HTTP/1.1\r\n\r\n";
    CHECK_INT(http_parse_head(abs, strlen(abs), 8192, &req, &reason), 1);
    CHECK(req.path.len == 5 && memcmp(req.path.p, "/a.js", 5) == 0);
}
