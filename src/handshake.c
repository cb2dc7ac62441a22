#include "handshake.h"

#include <http_parser.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/* One context and one fetched SHA-1 for the process: a new context and an implicit fetch per
 * handshake (OpenSSL 3 looks the algorithm up by name each time) cost more than the hash of 60
 * bytes. Only the loop's thread computes keys. */
static EVP_MD_CTX *md;
static EVP_MD *sha1;

void handshake_init(void)
{
    if (!sha1)
        sha1 = EVP_MD_fetch(NULL, "SHA1", NULL);
    if (!md)
        md = EVP_MD_CTX_new();
}

void handshake_accept_key(const char *key, size_t len, char *out)
{
    unsigned char digest[SHA_DIGEST_LENGTH];
    handshake_init();
    EVP_MD_CTX *use = md ? md : EVP_MD_CTX_new(); /* out of memory once: try again now */
    if (!use) {
        out[0] = '\0'; /* no memory at all: the client refuses the 101 */
        return;
    }
    EVP_DigestInit_ex(use, sha1 ? sha1 : EVP_sha1(), NULL);
    EVP_DigestUpdate(use, key, len);
    EVP_DigestUpdate(use, ws_guid, sizeof ws_guid - 1);
    EVP_DigestFinal_ex(use, digest, NULL);
    if (use != md)
        EVP_MD_CTX_free(use);
    EVP_EncodeBlock((unsigned char *)out, digest, SHA_DIGEST_LENGTH);
}

/* RFC 6455 4.2.1: the key is base64 of 16 random bytes, so exactly 24 characters ending in
 * "==" that decode to 16 bytes. */
static int key_valid(const struct http_str *key)
{
    if (key->len != 24 || key->p[22] != '=' || key->p[23] != '=')
        return 0;
    for (size_t i = 0; i < 22; i++) {
        char ch = key->p[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '+' || ch == '/'))
            return 0;
    }
    unsigned char raw[24];
    return EVP_DecodeBlock(raw, (const unsigned char *)key->p, 24) == 18;
}

/* Splits a serialized origin "http[s]://host[:port]" (RFC 6454) into its host (an IPv6
 * literal keeps its brackets) and port (the scheme's default when absent). Returns 0, or -1 when
 * origin is not one ("null", another scheme, a path or user info). */
static int origin_split(const struct http_str *origin, struct http_str *host, long *port)
{
    const char *p = origin->p, *end = origin->p + origin->len;
    if (origin->len > 7 && strncasecmp(p, "http://", 7) == 0) {
        *port = 80;
        p += 7;
    } else if (origin->len > 8 && strncasecmp(p, "https://", 8) == 0) {
        *port = 443;
        p += 8;
    } else {
        return -1;
    }
    const char *h = p;
    if (*p == '[') {
        while (p < end && *p != ']')
            p++;
        if (p == end)
            return -1;
        p++;
    } else {
        while (p < end && *p != ':' && *p != '/' && *p != '@')
            p++;
    }
    *host = (struct http_str){h, (size_t)(p - h)};
    if (host->len == 0)
        return -1;
    if (p < end && *p == ':') {
        long v = 0;
        const char *digits = ++p;
        while (p < end && *p >= '0' && *p <= '9' && v <= 65535)
            v = v * 10 + (*p++ - '0');
        if (p == digits || v > 65535)
            return -1;
        *port = v;
    }
    return p == end ? 0 : -1;
}

/* Is host (as in an origin: IPv6 in brackets) the name or address name? */
static int host_is(const struct http_str *host, const char *name)
{
    if (!name || !name[0])
        return 0;
    size_t n = strlen(name);
    if (strchr(name, ':')) /* an IPv6 address, written without brackets */
        return host->len == n + 2 && host->p[0] == '[' && host->p[n + 1] == ']' &&
               strncasecmp(host->p + 1, name, n) == 0;
    return http_str_eq(*host, name);
}

/* Is origin one of the server's own: a page of this machine, whose host is the address the
 * connection arrived on, the host of --addr, or (arrived on loopback) localhost? Any port: another
 * port of the same host is the same machine (a local proxy, a development server). A name only
 * the Host header vouches for is not enough: a DNS-rebinding page controls both. */
static int origin_is_own(const struct http_str *origin, const struct hs_config *cfg)
{
    struct http_str host;
    long port;
    if (origin_split(origin, &host, &port) < 0)
        return 0;
    if (host_is(&host, cfg->local_addr) || host_is(&host, cfg->listen_host))
        return 1;
    return cfg->local_loopback && (host_is(&host, "localhost") || host_is(&host, "127.0.0.1") ||
                                   host_is(&host, "::1"));
}

/* Is origin one of the comma-separated entries of list (case-insensitive)? */
/* Do two origins name the same scheme, host and port? "https://Chat.Example.com:443/" is
 * "https://chat.example.com", as a browser serializes it; anything not an origin only equals
 * itself (case-insensitive). */
static int origin_equal(const char *a, size_t alen, const struct http_str *b)
{
    struct http_str x = {a, alen}, hx, hy;
    long px, py;
    while (x.len && x.p[x.len - 1] == '/') /* "https://h/" as an operator may write it */
        x.len--;
    if (origin_split(&x, &hx, &px) < 0 || origin_split(b, &hy, &py) < 0)
        return x.len == b->len && x.len && strncasecmp(x.p, b->p, x.len) == 0;
    size_t sx = (size_t)(hx.p - x.p), sy = (size_t)(hy.p - b->p); /* "http://" or "https://" */
    return sx == sy && strncasecmp(x.p, b->p, sx) == 0 && px == py && hx.len == hy.len &&
           strncasecmp(hx.p, hy.p, hx.len) == 0;
}

/* Is origin one of the comma-separated origins of list? */
static int list_has(const char *list, const struct http_str *origin)
{
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *start = p;
        while (*p && *p != ',')
            p++;
        const char *stop = p;
        while (stop > start && stop[-1] == ' ')
            stop--;
        if (stop > start && origin_equal(start, (size_t)(stop - start), origin))
            return 1;
    }
    return 0;
}

static int fail(struct hs_result *res, int status, const char *reason)
{
    res->status = status;
    res->reason = reason;
    return -1;
}

/* The first of the server's subprotocols that the client offered. */
static void choose_protocol(const struct http_request *req, const char *server, char *out,
                            size_t outlen)
{
    out[0] = '\0';
    if (!server)
        return;
    const char *p = server;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *start = p;
        while (*p && *p != ',' && *p != ' ')
            p++;
        size_t len = (size_t)(p - start);
        if (len && len < outlen && len < 64) {
            char tok[64];
            memcpy(tok, start, len);
            tok[len] = '\0';
            if (http_header_has_token(req, "Sec-WebSocket-Protocol", tok)) {
                memcpy(out, tok, len + 1);
                return;
            }
        }
    }
}

int handshake_check(const struct http_request *req, const struct hs_config *cfg,
                    struct hs_result *res)
{
    memset(res, 0, sizeof *res);
    if (req->method != HTTP_GET)
        return fail(res, 405, "a WebSocket upgrade must use GET");
    if (req->major < 1 || (req->major == 1 && req->minor < 1))
        return fail(res, 400, "a WebSocket upgrade needs HTTP/1.1");

    const struct http_str *host = http_header(req, "Host");
    if (!host || host->len == 0 || http_header_count(req, "Host") != 1)
        return fail(res, 400, "exactly one Host header is required");
    if (!http_header_has_token(req, "Upgrade", "websocket"))
        return fail(res, 400, "'Upgrade: websocket' header is missing");
    if (!http_header_has_token(req, "Connection", "upgrade"))
        return fail(res, 400, "'Connection' header does not list 'upgrade'");

    const struct http_str *version = http_header(req, "Sec-WebSocket-Version");
    if (!version)
        return fail(res, 400, "Sec-WebSocket-Version header is missing");
    if (!http_str_eq(*version, "13") || http_header_count(req, "Sec-WebSocket-Version") != 1) {
        res->extra_header = "Sec-WebSocket-Version: 13\r\n";
        return fail(res, 426, "only WebSocket version 13 is supported");
    }

    const struct http_str *key = http_header(req, "Sec-WebSocket-Key");
    if (!key)
        return fail(res, 400, "Sec-WebSocket-Key header is missing");
    if (http_header_count(req, "Sec-WebSocket-Key") != 1 || !key_valid(key))
        return fail(res, 400, "Sec-WebSocket-Key must be base64 of 16 bytes");

    const struct http_str *origin = http_header(req, "Origin");
    if (origin) {
        int ok;
        if (cfg->allow_origin && strcmp(cfg->allow_origin, "*") == 0)
            ok = 1;
        else
            ok = origin_is_own(origin, cfg) ||
                 (cfg->allow_origin && list_has(cfg->allow_origin, origin));
        if (!ok)
            return fail(res, 403, "Origin not allowed (see --allow-origin)");
    }

    choose_protocol(req, cfg->subprotocols, res->protocol, sizeof res->protocol);
    if (cfg->deflate)
        deflate_negotiate_request(req, &res->deflate);
    handshake_accept_key(key->p, key->len, res->accept);
    res->status = 101;
    return 0;
}

struct frame *handshake_response(const struct hs_result *res)
{
    char buf[512];
    const char *ext = res->deflate.response;
    int n = snprintf(buf, sizeof buf,
                     "HTTP/1.1 101 Switching Protocols\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n"
                     "%s%s%s"
                     "%s%s%s"
                     "\r\n",
                     res->accept, res->protocol[0] ? "Sec-WebSocket-Protocol: " : "",
                     res->protocol, res->protocol[0] ? "\r\n" : "",
                     ext[0] ? "Sec-WebSocket-Extensions: " : "", ext, ext[0] ? "\r\n" : "");
    return frame_bytes(buf, (size_t)n);
}
