/* admin: what the admin listener (--admin-addr) answers. The server reads and parses its requests
 * like any other (same limits and timeouts) and hands each complete request here instead of to
 * the static files or the WebSocket upgrade:
 *   GET /metrics  the Prometheus text format (metrics.h)
 *   GET /healthz  200 "ok": the process is alive and its loop turns
 *   GET /readyz   200 when ready for traffic: listening, the script's last load succeeded, and
 *                 every registered dependency (admin_add_check) is up; else 503. The body lists
 *                 each check, one "name: ok" or "name: WHY" per line.
 * HEAD works too; other methods get 405, other paths 404. */
#ifndef CONFAB_ADMIN_H
#define CONFAB_ADMIN_H

#include <stddef.h>

#include "frame.h"
#include "http.h"

/* A dependency /readyz waits for: returns 1 when up, else 0 with a short reason in why. */
typedef int (*admin_check_fn)(char *why, size_t whylen);

/* Adds a check named name (a static string) to /readyz. At most 8. Returns 0, or -1. */
int admin_add_check(const char *name, admin_check_fn fn);

/* The response to req (NULL on no memory). listening: the public listener accepts. Sets
 * *close_after when the connection must close once the response is written. */
struct frame *admin_respond(const struct http_request *req, int listening, int *close_after);

#endif
