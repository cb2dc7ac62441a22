/* tls: the TLS side of the server with OpenSSL: the one context every TLS connection is made
 * from (--tls-cert, --tls-key; reloaded on SIGHUP), and a connection's non-blocking reads and
 * writes, the handshake driven by its first reads.
 *
 * Settings: TLS 1.2 and 1.3 only, ECDHE with AES-GCM or ChaCha20-Poly1305 for 1.2 (1.3's own
 * suites), no renegotiation, no compression, ALPN http/1.1 (a client offering only other
 * protocols is refused, RFC 7301 3.2), no server-side session cache (TLS 1.3 tickets resume
 * without one).
 *
 * Memory: SSL_MODE_RELEASE_BUFFERS, so a connection with nothing to read or write keeps no
 * record buffers. Writes: the caller's queue (an iovec array) is copied into one shared record
 * buffer of TLS_RECORD_MAX bytes and written with one SSL_write, so queued frames become one
 * record, not one each. SSL_MODE_ENABLE_PARTIAL_WRITE makes every SSL_write report exactly what
 * went out (a peer may ask for records smaller than 16 KB); when the socket is full, the record
 * OpenSSL has already sealed stays its business and the bytes it was made of are copied into a
 * small buffer of the connection, taken off the caller's queue, and the retry passes that copy
 * (SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER: same bytes, another address). So the caller's queue only
 * ever holds bytes not yet given to OpenSSL: dropping unsent frames stays safe. */
#ifndef CONFAB_TLS_H
#define CONFAB_TLS_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

/* Largest plaintext of one TLS record: what one SSL_write takes at most. */
#define TLS_RECORD_MAX 16384

/* What a connection holds while its handshake is in progress (OpenSSL 3.0: the connection
 * object, a record buffer, the handshake message buffer and transcript; 45-48 KB measured with
 * a ClientHello half sent or whole), charged against --request-memory until it completes. */
#define TLS_HANDSHAKE_MEMORY (48 * 1024)

struct tls_conn;

/* Loads the certificate (PEM, the chain after it) and the private key into the context new
 * connections are made from. Returns 0, or -1 with a reason in err. */
int tls_init(const char *cert_file, const char *key_file, char *err, size_t errlen);

/* Reads the same files again into a new context for connections accepted from now on; the
 * connections already open keep theirs. Returns 0, or -1 with a reason in err (the old context
 * stays). */
int tls_reload(char *err, size_t errlen);

/* Whether tls_init succeeded (and tls_free was not called since). */
int tls_enabled(void);

/* Frees the context (connections still open keep a reference to theirs). */
void tls_free(void);

/* The SHA-256 fingerprint of the certificate in use, as hex (for the log), or "". */
const char *tls_fingerprint(void);

/* A server-side TLS connection on fd (non-blocking), or NULL when out of memory. */
struct tls_conn *tls_conn_new(int fd);

void tls_conn_free(struct tls_conn *t);

/* For tests: a server-side connection over bio (an in-memory BIO pair end; it is the
 * connection's from now on), or NULL when out of memory. */
struct bio_st;
struct tls_conn *tls_conn_new_bio(struct bio_st *bio);

/* Reads up to len bytes of plaintext, going on with the handshake first while it is not done.
 * Returns the bytes read (fewer than len only when nothing more is there now), 0 when nothing
 * is there now, or -1 when the connection ended: the peer closed it, or an error
 * (tls_error says which). */
ssize_t tls_read(struct tls_conn *t, void *buf, size_t len);

/* Writes the bytes of iov[0..n), in records of at most TLS_RECORD_MAX. Returns the bytes taken
 * (fewer than offered, possibly 0, when the socket is full), or -1 on an error (tls_error).
 * Bytes taken may still wait inside (tls_output_pending): n = 0 just pushes those on. After
 * any call, tls_write_blocked says whether it stopped for the socket. */
ssize_t tls_writev(struct tls_conn *t, const struct iovec *iov, int n);

/* Whether bytes taken by tls_writev are still waiting for the socket. */
int tls_output_pending(const struct tls_conn *t);

/* Whether the last tls_writev stopped before taking and sending everything (wait for the
 * socket as tls_write_wants_read says, then call tls_writev again). */
int tls_write_blocked(const struct tls_conn *t);

/* What the blocked operation waits for: 1 when the last tls_read needs the socket writable
 * (a handshake message or a session ticket to send first), resp. 1 when the last tls_writev
 * needs it readable (a handshake in progress); 0 for the usual direction. */
int tls_read_wants_write(const struct tls_conn *t);
int tls_write_wants_read(const struct tls_conn *t);

/* Plaintext OpenSSL has decrypted and not handed out (a read stopped by a full buffer in the
 * middle of a record): the socket will not say it is readable for it. (Without read-ahead,
 * OpenSSL takes from the socket no more than the record it is reading: what else it holds is an
 * incomplete record, which needs more from the socket anyway.) */
int tls_has_buffered_input(const struct tls_conn *t);

/* Whether the handshake completed. */
int tls_handshake_done(const struct tls_conn *t);

/* Bytes received from the peer so far (0: not even the start of a ClientHello). */
unsigned long tls_bytes_received(const struct tls_conn *t);

/* Sends close_notify, if the socket takes it now (it is not waited for). */
void tls_close_notify(struct tls_conn *t);

/* Why the last call on any connection failed, for the log ("connection closed by the peer" for
 * a close): valid until the next call; whether t failed during the handshake. */
const char *tls_error(const struct tls_conn *t);
int tls_failed_in_handshake(const struct tls_conn *t);

/* The negotiated protocol version ("TLSv1.3"), for the log. */
const char *tls_version(const struct tls_conn *t);

#endif
