#include "static.h"

#include <errno.h>
#include <http_parser.h>
#include <sys/stat.h>
#include <unistd.h>

#include "webroot.h"

static struct frame *fail(struct static_error *err, int status, const char *reason,
                          const char *extra)
{
    *err = (struct static_error){status, reason, extra};
    return NULL;
}

struct frame *static_open(const struct http_request *req, struct static_body *body,
                          struct static_error *err)
{
    *body = (struct static_body){-1, 0};
    int head = req->method == HTTP_HEAD;
    if (req->method != HTTP_GET && !head)
        return fail(err, 405, "only GET and HEAD are served here", "Allow: GET, HEAD\r\n");
    const char *ctype;
    int fd = webroot_open(req->path.p, req->path.len, &ctype);
    if (fd < 0)
        return fail(err, -fd,
                    fd == -400   ? "malformed path"
                    : fd == -503 ? "server busy: out of file descriptors, try again"
                                 : "no such file",
                    fd == -503 ? "Retry-After: 1\r\n" : NULL);
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return fail(err, 404, "no such file", NULL);
    }
    /* An HTTP/1.0 client keeps the connection only when the response says so. */
    const char *extra = req->keep_alive && req->minor == 0
                            ? "Cache-Control: no-cache\r\nConnection: keep-alive\r\n"
                            : "Cache-Control: no-cache\r\n";
    struct frame *f = http_response(200, extra, ctype, NULL, (size_t)st.st_size, 1,
                                    !req->keep_alive);
    if (!f) {
        close(fd);
        return fail(err, 503, "out of memory", NULL);
    }
    if (head || st.st_size == 0)
        close(fd);
    else
        *body = (struct static_body){fd, (uint64_t)st.st_size};
    return f;
}

struct frame *static_next(struct static_body *body)
{
    if (body->fd < 0)
        return NULL;
    size_t want = body->left < STATIC_CHUNK ? (size_t)body->left : STATIC_CHUNK;
    struct frame *f = frame_new(want);
    size_t got = 0;
    while (f && got < want) {
        ssize_t r = read(body->fd, f->data + got, want - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    if (!f || got < want) {
        /* Shrunk since it was opened (or unreadable): the length announced cannot be kept. */
        if (f)
            frame_unref(f);
        static_close(body);
        return NULL;
    }
    body->left -= want;
    if (body->left == 0)
        static_close(body);
    return f;
}

void static_close(struct static_body *body)
{
    if (body->fd >= 0)
        close(body->fd);
    *body = (struct static_body){-1, 0};
}
