/* http: HTTP/1.1 request heads, parsed by Debian's http-parser (nodejs/http-parser), and the
 * responses the server writes. Parsed strings point into the caller's buffer (no copies). */
#ifndef CONFAB_HTTP_H
#define CONFAB_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "frame.h"

#define HTTP_MAX_HEADERS 64

struct http_str {
    const char *p;
    size_t len;
};

struct http_header {
    struct http_str name, value;
};

struct http_request {
    int method;                  /* enum http_method of http_parser.h (HTTP_GET, ...) */
    unsigned short major, minor; /* HTTP version */
    struct http_str url;         /* request target as sent */
    struct http_str path;        /* path part of url (still percent-encoded) */
    struct http_str query;       /* query part without '?', empty if none */
    struct http_header headers[HTTP_MAX_HEADERS];
    size_t nheaders;
    uint64_t content_length;     /* 0 when absent */
    int chunked;                 /* Transfer-Encoding: chunked */
    int keep_alive;              /* the connection may carry another request */
    size_t head_len;             /* bytes of the request head, blank line included */
};

/* Parses the request head at the start of buf. Returns 1 when a complete head was parsed into
 * req, 0 when more bytes are needed (and buf is still under max_head), or an HTTP error status
 * (400, 431, 505) with *reason set. */
int http_parse_head(const char *buf, size_t len, size_t max_head, struct http_request *req,
                    const char **reason);

/* The first header called name (case-insensitive), or NULL. */
const struct http_str *http_header(const struct http_request *req, const char *name);

/* Number of headers called name. */
size_t http_header_count(const struct http_request *req, const char *name);

/* 1 when some header called name holds token in its comma-separated list (case-insensitive). */
int http_header_has_token(const struct http_request *req, const char *name, const char *token);

/* Case-insensitive comparison of a counted string with a C string. */
int http_str_eq(struct http_str s, const char *cstr);

/* The reason phrase of a status code. */
const char *http_status_text(int status);

/* A complete response: status line, Content-Type (when body_type), Content-Length, extra header
 * lines (each ending in \r\n, may be NULL), Connection: close when close, then the body unless
 * head_only. Returns NULL when out of memory. */
struct frame *http_response(int status, const char *extra_headers, const char *body_type,
                            const void *body, size_t body_len, int head_only, int close);

/* An error response with a plain-text body "STATUS TEXT: reason\n", closing the connection. */
struct frame *http_error(int status, const char *reason, const char *extra_headers);

#endif
