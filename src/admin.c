/* admin: /metrics, /healthz and /readyz (see admin.h). */
#include "admin.h"

#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

#define MAX_CHECKS 8

static struct {
    const char *name;
    admin_check_fn fn;
} checks[MAX_CHECKS];
static unsigned nchecks;

int admin_add_check(const char *name, admin_check_fn fn)
{
    if (nchecks == MAX_CHECKS)
        return -1;
    checks[nchecks].name = name;
    checks[nchecks].fn = fn;
    nchecks++;
    return 0;
}

static int path_is(const struct http_request *req, const char *p)
{
    size_t n = strlen(p);
    return req->path.len == n && memcmp(req->path.p, p, n) == 0;
}

static struct frame *text(const struct http_request *req, int status, const char *ctype,
                          const char *body, size_t len)
{
    const char *extra = req->keep_alive && req->minor == 0
                            ? "Cache-Control: no-store\r\nConnection: keep-alive\r\n"
                            : "Cache-Control: no-store\r\n";
    return http_response(status, extra, ctype, body, len, req->method == HTTP_HEAD,
                         !req->keep_alive);
}

static struct frame *readyz(const struct http_request *req, int listening)
{
    char body[2048];
    size_t n = 0;
    int ready = 1;
#define LINE(...)                                                                   \
    do {                                                                            \
        int m_ = snprintf(body + n, sizeof body - n, __VA_ARGS__);                  \
        if (m_ > 0)                                                                 \
            n = (size_t)m_ < sizeof body - n ? n + (size_t)m_ : sizeof body - 1;    \
    } while (0)
    LINE("listening: %s\n", listening ? "ok" : "not accepting connections");
    ready &= listening;
    LINE("script: %s\n", metrics.script_ok ? "ok" : "the last load failed (see the log)");
    ready &= metrics.script_ok;
    for (unsigned i = 0; i < nchecks; i++) {
        char why[160] = "down";
        int up = checks[i].fn(why, sizeof why);
        LINE("%s: %s\n", checks[i].name, up ? "ok" : why);
        ready &= up;
    }
#undef LINE
    return text(req, ready ? 200 : 503, "text/plain; charset=utf-8", body, n);
}

struct frame *admin_respond(const struct http_request *req, int listening, int *close_after)
{
    METRIC_INC(admin_requests);
    *close_after = 1; /* errors (http_error) close; answers keep the connection if asked */
    if (req->method != HTTP_GET && req->method != HTTP_HEAD)
        return http_error(405, "only GET and HEAD are served here", "Allow: GET, HEAD\r\n");
    if (path_is(req, "/metrics") || path_is(req, "/healthz") || path_is(req, "/readyz"))
        *close_after = !req->keep_alive;
    if (path_is(req, "/metrics")) {
        struct metrics_out o = {0};
        if (metrics_render(&o) < 0) {
            free(o.buf);
            return http_error(503, "out of memory", NULL);
        }
        struct frame *f = text(req, 200, "text/plain; version=0.0.4; charset=utf-8", o.buf, o.len);
        free(o.buf);
        return f;
    }
    if (path_is(req, "/healthz"))
        return text(req, 200, "text/plain; charset=utf-8", "ok\n", 3);
    if (path_is(req, "/readyz"))
        return readyz(req, listening);
    return http_error(404, "the admin listener serves /metrics, /healthz and /readyz", NULL);
}
