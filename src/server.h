/* server: the listening socket and every connection's life: accept, HTTP requests (static files
 * and the upgrade), WebSocket input, output flushing, timeouts, the close handshake and the one
 * place where connections are torn down. */
#ifndef CONFAB_SERVER_H
#define CONFAB_SERVER_H

#include <ev.h>
#include <stddef.h>

#include "config.h"

/* Binds and listens on cfg's address and prepares the watchers. Logs the address it listens on
 * ("listening on HOST:PORT"). Returns 0, or -1 with a reason in err. */
int server_start(struct ev_loop *loop, const struct config *cfg, char *err, size_t errlen);

/* Stops accepting, sends close 1001 to every WebSocket peer and closes HTTP connections; the
 * loop is broken once every connection is gone or after grace seconds. */
void server_shutdown(double grace);

/* 1 while the public listener accepts connections (not shutting down, not out of descriptors). */
int server_listening(void);

/* Bytes of request buffers held now, all connections together (--request-memory). */
size_t server_request_bytes(void);

/* SIGTERM: stops accepting (the listener is closed: with --reuse-port another process takes
 * the new connections), then sends close 1012 (service restart) to the open WebSockets spread
 * evenly over drain_time seconds, so that they do not all come back in the same second; HTTP
 * connections finish the response going out. The loop is broken once every connection is gone
 * or drain_time + grace seconds after the start. */
void server_drain(double drain_time, double grace);

/* Frees what is left (after the loop ended). */
void server_free(void);

struct conn;
struct conn_meta;
/* What c's upgrade said (path, query, subprotocol), or NULL before its upgrade. */
const struct conn_meta *server_conn_meta(const struct conn *c);

#endif
