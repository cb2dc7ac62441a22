/* deflate: what the server sends compressed (permessage-deflate, RFC 7692 7.2.1). The server never
 * takes its context over (it always answers server_no_context_takeover), so a message's
 * compressed form depends only on the message and the window size: one compression serves every
 * recipient with that window. The zlib streams are the server's, one per window size asked for
 * (15 unless a client offered server_max_window_bits), reset for each message: no connection
 * holds a compressor. */
#ifndef CONFAB_DEFLATE_H
#define CONFAB_DEFLATE_H

#include <stddef.h>

#include "frame.h"

/* Messages shorter than this go uncompressed (--deflate-min; default DEFLATE_MIN_DEFAULT). */
void deflate_set_min(size_t bytes);
#define DEFLATE_MIN_DEFAULT 64

/* A frame (RSV1 set) carrying the message compressed with a 2^bits window (9..15), or NULL when
 * it goes plain: shorter than --deflate-min, not made smaller by compression, or out of memory
 * (plain is always allowed, RFC 7692 6). */
struct frame *deflate_frame(int opcode, const void *data, size_t len, int bits);

/* Frees the server's compressors and scratch buffer. */
void deflate_shutdown(void);

/* Messages compressed since start (tests check that a broadcast compresses once). */
extern size_t deflate_runs;

#endif
