#include "http.h"

#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct parse_state {
    struct http_request *req;
    int status;
    const char *reason;
    int done;
    int last_was_value; /* header callbacks alternate: name, value, name, ... */
};

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct parse_state *st = p->data;
    struct http_str *u = &st->req->url;
    if (u->p && u->p + u->len == at)
        u->len += len;
    else if (!u->p)
        *u = (struct http_str){at, len};
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct parse_state *st = p->data;
    struct http_request *req = st->req;
    if (!st->last_was_value && req->nheaders > 0) {
        /* continuation of the same name */
        req->headers[req->nheaders - 1].name.len += len;
        return 0;
    }
    if (len && (at[0] == ' ' || at[0] == '\t')) {
        /* RFC 9112 2.2: whitespace before a field name (as after the request line) is invalid;
         * http-parser would keep it as part of the name. */
        st->status = 400;
        st->reason = "a header line starts with whitespace";
        return -1;
    }
    if (req->nheaders == HTTP_MAX_HEADERS) {
        st->status = 431;
        st->reason = "too many header fields";
        return -1;
    }
    req->headers[req->nheaders++] = (struct http_header){{at, len}, {at + len, 0}};
    st->last_was_value = 0;
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct parse_state *st = p->data;
    if (st->req->nheaders == 0) {
        /* Whitespace at the start of the first header line: a continuation of nothing. */
        st->status = 400;
        st->reason = "a header line starts with whitespace";
        return -1;
    }
    struct http_header *h = &st->req->headers[st->req->nheaders - 1];
    if (st->last_was_value && h->value.p + h->value.len != at) {
        /* Obsolete line folding (RFC 7230 3.2.4): a server may reject it with 400. */
        st->status = 400;
        st->reason = "folded header lines are not accepted";
        return -1;
    }
    if (!st->last_was_value)
        h->value = (struct http_str){at, 0};
    h->value.len += len;
    st->last_was_value = 1;
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    struct parse_state *st = p->data;
    st->done = 1;
    /* Stop here: the body, if any, is the server's business. Returning 1 tells the parser to
     * expect no body; the pause makes http_parser_execute return right away. */
    http_parser_pause(p, 1);
    return 1;
}

/* s without optional whitespace at either end. */
static struct http_str trim(struct http_str s)
{
    while (s.len && (s.p[0] == ' ' || s.p[0] == '\t')) {
        s.p++;
        s.len--;
    }
    while (s.len && (s.p[s.len - 1] == ' ' || s.p[s.len - 1] == '\t'))
        s.len--;
    return s;
}

/* Where the head ends ("\r\n\r\n", or "\n\n" which http-parser also accepts), or 0. */
static size_t head_end(const char *buf, size_t len)
{
    for (size_t i = 1; i < len; i++) {
        if (buf[i] != '\n')
            continue;
        if (buf[i - 1] == '\n')
            return i + 1;
        if (i >= 3 && buf[i - 1] == '\r' && buf[i - 2] == '\n' && buf[i - 3] == '\r')
            return i + 1;
    }
    return 0;
}

int http_parse_head(const char *buf, size_t len, size_t max_head, struct http_request *req,
                    const char **reason)
{
    size_t end = head_end(buf, len < max_head ? len : max_head);
    if (!end) {
        if (len >= max_head) {
            *reason = "request header fields too large";
            return 431;
        }
        return 0;
    }

    static http_parser_settings settings;
    settings.on_url = on_url;
    settings.on_header_field = on_header_field;
    settings.on_header_value = on_header_value;
    settings.on_headers_complete = on_headers_complete;

    memset(req, 0, sizeof *req);
    struct parse_state st = {.req = req, .last_was_value = 1};
    http_parser parser;
    http_parser_init(&parser, HTTP_REQUEST);
    parser.data = &st;
    http_parser_execute(&parser, &settings, buf, end);
    enum http_errno err = HTTP_PARSER_ERRNO(&parser);

    if (st.status) {
        *reason = st.reason;
        return st.status;
    }
    if (!st.done || (err != HPE_OK && err != HPE_PAUSED)) {
        *reason = err != HPE_OK ? http_errno_description(err) : "malformed request head";
        return 400;
    }
    req->method = parser.method;
    req->major = parser.http_major;
    req->minor = parser.http_minor;
    req->head_len = end;
    req->keep_alive = http_should_keep_alive(&parser);
    req->chunked = (parser.flags & F_CHUNKED) != 0;
    req->content_length = (parser.flags & F_CONTENTLENGTH) ? parser.content_length : 0;
    if (req->major != 1) {
        *reason = "only HTTP/1.x is served";
        return 505;
    }
    /* RFC 9112 6.1: the only transfer coding understood is a single "chunked" (http-parser
     * would take "chunked, gzip" or "xchunked" as no body at all: the next request would be
     * read from the body). */
    size_t te = http_header_count(req, "Transfer-Encoding");
    if (te > 1 || (te == 1 && !http_str_eq(trim(*http_header(req, "Transfer-Encoding")),
                                          "chunked"))) {
        *reason = "unsupported Transfer-Encoding (only one 'chunked' is understood)";
        return 400;
    }
    if (te && (parser.flags & F_CONTENTLENGTH)) {
        *reason = "both Transfer-Encoding and Content-Length";
        return 400;
    }
    /* RFC 9112 3.2: more than one Host is an error. */
    if (http_header_count(req, "Host") > 1) {
        *reason = "more than one Host header";
        return 400;
    }

    struct http_parser_url u;
    http_parser_url_init(&u);
    if (http_parser_parse_url(req->url.p, req->url.len, 0, &u) != 0 ||
        !(u.field_set & (1 << UF_PATH))) {
        *reason = "bad request target";
        return 400;
    }
    req->path = (struct http_str){req->url.p + u.field_data[UF_PATH].off, u.field_data[UF_PATH].len};
    if (u.field_set & (1 << UF_QUERY))
        req->query = (struct http_str){req->url.p + u.field_data[UF_QUERY].off,
                                       u.field_data[UF_QUERY].len};
    else
        req->query = (struct http_str){req->url.p, 0};
    return 1;
}

int http_str_eq(struct http_str s, const char *cstr)
{
    return strlen(cstr) == s.len && strncasecmp(s.p, cstr, s.len) == 0;
}

const struct http_str *http_header(const struct http_request *req, const char *name)
{
    for (size_t i = 0; i < req->nheaders; i++)
        if (http_str_eq(req->headers[i].name, name))
            return &req->headers[i].value;
    return NULL;
}

size_t http_header_count(const struct http_request *req, const char *name)
{
    size_t n = 0;
    for (size_t i = 0; i < req->nheaders; i++)
        n += http_str_eq(req->headers[i].name, name);
    return n;
}

int http_header_has_token(const struct http_request *req, const char *name, const char *token)
{
    size_t tlen = strlen(token);
    for (size_t i = 0; i < req->nheaders; i++) {
        if (!http_str_eq(req->headers[i].name, name))
            continue;
        const char *p = req->headers[i].value.p, *end = p + req->headers[i].value.len;
        while (p < end) {
            while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
                p++;
            const char *start = p;
            while (p < end && *p != ',')
                p++;
            const char *stop = p;
            while (stop > start && (stop[-1] == ' ' || stop[-1] == '\t'))
                stop--;
            if ((size_t)(stop - start) == tlen && strncasecmp(start, token, tlen) == 0)
                return 1;
        }
    }
    return 0;
}

const char *http_status_text(int status)
{
    switch (status) {
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 426: return "Upgrade Required";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

struct frame *http_response(int status, const char *extra_headers, const char *body_type,
                            const void *body, size_t body_len, int head_only, int close)
{
    char head[1024];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\n"
                     "Server: confab\r\n"
                     "%s%s%s"
                     "Content-Length: %zu\r\n"
                     "%s"
                     "%s\r\n",
                     status, http_status_text(status),
                     body_type ? "Content-Type: " : "", body_type ? body_type : "",
                     body_type ? "\r\n" : "", body_len, extra_headers ? extra_headers : "",
                     close ? "Connection: close\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof head)
        return NULL;
    size_t blen = head_only ? 0 : body_len;
    struct frame *f = frame_new((size_t)n + blen);
    if (f) {
        memcpy(f->data, head, (size_t)n);
        if (blen)
            memcpy(f->data + n, body, blen);
    }
    return f;
}

struct frame *http_error(int status, const char *reason, const char *extra_headers)
{
    char body[512];
    int n = snprintf(body, sizeof body, "%d %s: %s\n", status, http_status_text(status), reason);
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof body)
        n = sizeof body - 1;
    return http_response(status, extra_headers, "text/plain; charset=utf-8", body, (size_t)n, 0, 1);
}
