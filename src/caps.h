/* caps: the connection caps, --max-connections (all connections together) and
 * --max-connections-per-ip (connections from one address). Every accepted connection is
 * admitted or refused here, and released when it is freed. Per address means: an IPv4 address
 * (an IPv4 client of a dual-stack socket, ::ffff:a.b.c.d, is that IPv4 address), or the /64 an
 * IPv6 address belongs to: one host is normally given a whole /64 and can use any address in
 * it, so counting full IPv6 addresses would cap nothing. Counts live in a hash of address →
 * count, keyed with a secret drawn at start, holding only addresses with connections. */
#ifndef CONFAB_CAPS_H
#define CONFAB_CAPS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

enum caps_verdict {
    CAPS_OK,
    CAPS_TOTAL,  /* --max-connections reached */
    CAPS_PER_IP, /* --max-connections-per-ip reached for that address */
    CAPS_NOMEM,  /* no memory for the address's entry */
};

/* Sets the caps; 0 means none. Call before any caps_admit. */
void caps_init(size_t max_total, size_t max_per_ip);

/* Admits a connection from sa (its count is taken) or says why not (nothing taken). */
enum caps_verdict caps_admit(const struct sockaddr *sa);

/* Gives back what caps_admit took for a connection from sa: the connection keeps no entry of
 * its own, the server keeps the peer's address anyway. */
void caps_release(const struct sockaddr *sa);

/* The address key of sa as text ("a.b.c.d" or "x:x:x:x::/64"), for log lines. */
void caps_addr_text(const struct sockaddr *sa, char *out, size_t len);

/* Connections admitted and not released; distinct addresses counted (for tests, metrics). */
size_t caps_total(void);
size_t caps_addresses(void);

/* Frees every entry (at exit). */
void caps_free(void);

#endif
