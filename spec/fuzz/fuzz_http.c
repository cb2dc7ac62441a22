/* fuzz_http: request heads through http.c (http-parser underneath) and, for each head parsed, the
 * opening handshake of handshake.c under three Origin policies, as the server reads them: the
 * input is a stream of pipelined requests, parsed from the front until one fails or more bytes
 * are needed. Checks, besides the sanitizers:
 *   - the result is "need more", "parsed" or an HTTP error status with a reason;
 *   - every parsed string lies inside the head that was parsed;
 *   - the head parsed is exactly what a shorter read would not have completed (the server parses
 *     again after each read, so a head must not complete early or differently);
 *   - a 101 went to a GET with one Host and one valid key, chose a subprotocol the server offers
 *     and the client asked for, and its response is one well-formed head with no injected lines;
 *   - a 101 with an Origin (unless the policy is "*") names the server's own host (its --addr
 *     host, the address reached, loopback names on loopback) or an origin on the allow list, by
 *     a parse of our own: Host never decides (DNS rebinding);
 *   - an error response is a well-formed head with a plain-text body. */
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <http_parser.h>

#include "frame.h"
#include "fuzz_common.h"
#include "handshake.h"
#include "http.h"

#define MAX_HEAD 8192
#define MAX_PIPELINED 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int inside(struct http_str s, const char *lo, const char *hi)
{
    return s.len == 0 || (s.p >= lo && s.p + s.len <= hi);
}

/* An HTTP response head: status line, header lines ending in CRLF with no bare CR or LF, one
 * blank line, then exactly Content-Length bytes of body. */
static void check_response(const struct frame *f, int status)
{
    FUZZ_CHECK(f != NULL, "no response for status %d", status);
    const char *p = (const char *)f->data, *end = p + f->len;
    FUZZ_CHECK(f->len > 12 && memcmp(p, "HTTP/1.1 ", 9) == 0, "response does not start right");
    FUZZ_CHECK(atoi(p + 9) == status, "response status %.3s, expected %d", p + 9, status);
    const char *blank = memmem(p, f->len, "\r\n\r\n", 4);
    FUZZ_CHECK(blank != NULL, "response head has no end");
    long clen = -1;
    for (const char *q = p; q < blank + 2;) {
        const char *eol = memchr(q, '\n', (size_t)(blank + 2 - q));
        FUZZ_CHECK(eol && eol > q && eol[-1] == '\r', "response line without CRLF");
        FUZZ_CHECK(!memchr(q, '\r', (size_t)(eol - 1 - q)), "bare CR inside a response line");
        if (eol - q > 16 && strncmp(q, "Content-Length: ", 16) == 0)
            clen = atol(q + 16);
        q = eol + 1;
    }
    size_t body = (size_t)(end - (blank + 4));
    if (status != 101)
        FUZZ_CHECK(clen >= 0 && (size_t)clen == body, "Content-Length %ld, body %zu", clen, body);
    else
        FUZZ_CHECK(body == 0, "101 response with a body");
}

/* Is s (len bytes) equal to one of the NULL-terminated names, ignoring case? */
static int one_of(const char *s, size_t len, const char *const *names)
{
    for (; *names; names++)
        if (strlen(*names) == len && strncasecmp(s, *names, len) == 0)
            return 1;
    return 0;
}

/* Would the policy let this Origin through? Only "http[s]://HOST[:PORT]" with HOST one of the
 * server's own, or the whole origin on the list. */
static int origin_allowed(const struct http_str *o, const struct hs_config *cfg)
{
    const char *p = o->p, *end = o->p + o->len;
    if (cfg->allow_origin) {
        const char *list = cfg->allow_origin;
        while (*list) {
            while (*list == ' ' || *list == ',')
                list++;
            size_t n = strcspn(list, ",");
            size_t m = n;
            while (m && list[m - 1] == ' ')
                m--;
            if (m && m == o->len && strncasecmp(list, p, m) == 0)
                return 1;
            list += n;
        }
    }
    if ((size_t)(end - p) > 7 && strncasecmp(p, "http://", 7) == 0)
        p += 7;
    else if ((size_t)(end - p) > 8 && strncasecmp(p, "https://", 8) == 0)
        p += 8;
    else
        return 0;
    const char *host_end;
    if (*p == '[') {
        host_end = memchr(p, ']', (size_t)(end - p));
        if (!host_end)
            return 0;
        host_end++;
    } else {
        host_end = p;
        while (host_end < end && *host_end != ':')
            host_end++;
    }
    if (host_end < end) { /* a port: digits only */
        if (*host_end != ':' || host_end + 1 == end)
            return 0;
        for (const char *d = host_end + 1; d < end; d++)
            if (*d < '0' || *d > '9')
                return 0;
    }
    size_t hlen = (size_t)(host_end - p);
    char bracketed[80];
    snprintf(bracketed, sizeof bracketed, "[%s]", cfg->local_addr ? cfg->local_addr : "");
    const char *own[] = {cfg->listen_host && *cfg->listen_host ? cfg->listen_host : "\n",
                         cfg->local_addr ? cfg->local_addr : "\n", bracketed, NULL};
    static const char *const loopback[] = {"localhost", "127.0.0.1", "[::1]", NULL};
    return one_of(p, hlen, own) || (cfg->local_loopback && one_of(p, hlen, loopback));
}

static void check_handshake(const struct http_request *req)
{
    static const struct hs_config configs[] = {
        {.allow_origin = NULL, .subprotocols = "chat, superchat", .listen_host = "chat.test",
         .local_addr = "192.0.2.10"},
        {.allow_origin = "*", .subprotocols = NULL, .local_addr = "127.0.0.1",
         .local_loopback = 1, .deflate = 1},
        {.allow_origin = "http://friend.test, https://chat.test:8443", .subprotocols = "v2.chat",
         .listen_host = "", .local_addr = "::1", .local_loopback = 1},
    };
    for (size_t i = 0; i < sizeof configs / sizeof *configs; i++) {
        struct hs_result res;
        int rc = handshake_check(req, &configs[i], &res);
        if (rc < 0) {
            FUZZ_CHECK(res.status >= 400 && res.status <= 599 && res.reason && *res.reason,
                       "handshake error status %d", res.status);
            struct frame *f = http_error(res.status, res.reason, res.extra_header);
            check_response(f, res.status);
            frame_unref(f);
            continue;
        }
        FUZZ_CHECK(rc == 0 && res.status == 101, "handshake returned %d, status %d", rc,
                   res.status);
        FUZZ_CHECK(req->method == HTTP_GET, "101 for method %d", req->method);
        FUZZ_CHECK(http_header_count(req, "Host") == 1, "101 without exactly one Host");
        const struct http_str *key = http_header(req, "Sec-WebSocket-Key");
        FUZZ_CHECK(key && key->len == 24 && http_header_count(req, "Sec-WebSocket-Key") == 1,
                   "101 without one 24-byte key");
        FUZZ_CHECK(strlen(res.accept) == 28, "accept key of %zu bytes", strlen(res.accept));
        const struct http_str *origin = http_header(req, "Origin");
        if (origin && !(configs[i].allow_origin && strcmp(configs[i].allow_origin, "*") == 0))
            FUZZ_CHECK(origin_allowed(origin, &configs[i]), "101 for Origin '%.*s' (policy %zu)",
                       (int)origin->len, origin->p, i);
        if (res.protocol[0]) {
            FUZZ_CHECK(configs[i].subprotocols && strstr(configs[i].subprotocols, res.protocol),
                       "subprotocol '%s' was not offered by the server", res.protocol);
            FUZZ_CHECK(http_header_has_token(req, "Sec-WebSocket-Protocol", res.protocol),
                       "subprotocol '%s' was not asked for", res.protocol);
        }
        const struct deflate_agreement *d = &res.deflate;
        if (!configs[i].deflate)
            FUZZ_CHECK(d->server_bits == 0 && !d->response[0], "deflate negotiated while off");
        if (d->server_bits) {
            FUZZ_CHECK(d->server_bits >= 9 && d->server_bits <= 15, "window bits %d",
                       d->server_bits);
            FUZZ_CHECK(strncmp(d->response, "permessage-deflate; ", 20) == 0 &&
                           strlen(d->response) < sizeof d->response - 1,
                       "extension response '%s'", d->response);
            FUZZ_CHECK(http_header(req, "Sec-WebSocket-Extensions") != NULL,
                       "deflate negotiated without an offer");
        } else {
            FUZZ_CHECK(!d->response[0], "extension response '%s' without deflate", d->response);
        }
        struct frame *f = handshake_response(&res);
        check_response(f, 101);
        frame_unref(f);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    size_t len = size;
    for (int n = 0; n < MAX_PIPELINED && len > 0; n++) {
        struct http_request req;
        const char *reason = NULL;
        int rc = http_parse_head(buf, len, MAX_HEAD, &req, &reason);
        if (rc == 0) {
            FUZZ_CHECK(len < MAX_HEAD, "need more after %zu bytes (limit %d)", len, MAX_HEAD);
            break;
        }
        if (rc != 1) {
            FUZZ_CHECK(rc >= 400 && rc <= 599 && reason && *reason, "parse returned %d", rc);
            struct frame *f = http_error(rc, reason, NULL);
            check_response(f, rc);
            frame_unref(f);
            break;
        }
        const char *end = buf + req.head_len;
        FUZZ_CHECK(req.head_len > 0 && req.head_len <= len && req.head_len <= MAX_HEAD,
                   "head of %zu bytes in %zu", req.head_len, len);
        FUZZ_CHECK(req.nheaders <= HTTP_MAX_HEADERS, "%zu headers", req.nheaders);
        FUZZ_CHECK(inside(req.url, buf, end) && inside(req.path, buf, end) &&
                   inside(req.query, buf, end), "request target outside the head");
        FUZZ_CHECK(req.path.len > 0, "empty path");
        for (size_t i = 0; i < req.nheaders; i++)
            FUZZ_CHECK(inside(req.headers[i].name, buf, end) &&
                       inside(req.headers[i].value, buf, end), "header %zu outside the head", i);

        /* One byte less was not a head yet; exactly the head is the same head. */
        struct http_request again;
        const char *r2 = NULL;
        FUZZ_CHECK(http_parse_head(buf, req.head_len - 1, MAX_HEAD, &again, &r2) == 0,
                   "a head of %zu bytes completed a byte early", req.head_len);
        FUZZ_CHECK(http_parse_head(buf, req.head_len, MAX_HEAD, &again, &r2) == 1 &&
                   again.head_len == req.head_len && again.nheaders == req.nheaders &&
                   again.method == req.method, "the head alone parses differently");

        check_handshake(&req);
        struct frame *f = http_response(200, NULL, "text/plain", "ok", 2, req.method == HTTP_HEAD,
                                        !req.keep_alive);
        frame_unref(f);
        /* A request with a body ends the connection: the server never reads bodies. */
        if (req.content_length || req.chunked)
            break;
        buf = end;
        len -= req.head_len;
    }
    return 0;
}
