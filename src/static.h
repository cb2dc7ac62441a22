/* static: GET and HEAD of the files under --web. A response is its head (status line and
 * headers, Content-Length the file's size) and a body read from the open file in chunks as the
 * connection's output drains, so a file of any size costs a connection one chunk of memory. */
#ifndef CONFAB_STATIC_H
#define CONFAB_STATIC_H

#include <stdint.h>

#include "frame.h"
#include "http.h"

/* Largest chunk of a body read at once. */
#define STATIC_CHUNK (64 * 1024)

/* The part of a response still to send: fd is -1 when there is none. */
struct static_body {
    int fd;
    uint64_t left;
};

/* Why a request got no file: the HTTP status, a reason and an extra header line (or NULL). */
struct static_error {
    int status;
    const char *reason;
    const char *extra;
};

/* Answers a GET or HEAD of the file req names. Returns the response head and sets *body to the
 * bytes that must follow it (none for HEAD or an empty file); or NULL with *err set (405 for other
 * methods, 400 for a malformed path, 404 for no such regular file, 503 when out of memory). */
struct frame *static_open(const struct http_request *req, struct static_body *body,
                          struct static_error *err);

/* The next chunk of body (at most STATIC_CHUNK bytes); the file is closed after the last one.
 * NULL when the file no longer has the bytes announced or memory ran out: the response cannot be
 * completed (the body is closed). */
struct frame *static_next(struct static_body *body);

/* Gives up on the rest of body. */
void static_close(struct static_body *body);

#endif
