/* deflate: compressing outgoing messages, once per message and window size (deflate.h). */
#include "deflate.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "metrics.h"

size_t deflate_runs;
static size_t min_len = DEFLATE_MIN_DEFAULT;

/* One raw deflate stream per window size, index bits - 9, made when first needed. */
static z_stream streams[7];
static uint8_t ready[7];
/* Where a message is compressed before its frame is built; given back when it grew big. */
static uint8_t *scratch;
static size_t scratch_cap;
#define SCRATCH_KEEP (64 * 1024)

/* zlib level 6 (its default); memLevel 8 (its default: a 32K-entry hash, cleared by every
 * reset). */
#define LEVEL 6
#define MEM_LEVEL 8

void deflate_set_min(size_t bytes)
{
    min_len = bytes;
}

static z_stream *stream_for(int bits)
{
    z_stream *z = &streams[bits - 9];
    if (ready[bits - 9]) {
        deflateReset(z);
        return z;
    }
    memset(z, 0, sizeof *z);
    if (deflateInit2(z, LEVEL, Z_DEFLATED, -bits, MEM_LEVEL, Z_DEFAULT_STRATEGY) != Z_OK)
        return NULL;
    ready[bits - 9] = 1;
    return z;
}

struct frame *deflate_frame(int opcode, const void *data, size_t len, int bits)
{
    if (len < min_len || len == 0 || bits < 9 || bits > 15 || len > UINT32_MAX / 2)
        return NULL;
    /* Room for the message itself and the flush marker: a compressed form that does not fit
     * is no smaller than the plain one. */
    size_t room = len + 5;
    if (room > scratch_cap) {
        uint8_t *p = realloc(scratch, room);
        if (!p)
            return NULL;
        scratch = p;
        scratch_cap = room;
    }
    z_stream *z = stream_for(bits);
    if (!z)
        return NULL;
    deflate_runs++;
    z->next_in = (Bytef *)(uintptr_t)data;
    z->avail_in = (uInt)len;
    z->next_out = scratch;
    z->avail_out = (uInt)room;
    int rc = deflate(z, Z_SYNC_FLUSH);
    size_t out = room - z->avail_out;
    struct frame *f = NULL;
    /* Complete only when all input went in and output room was left (zlib's rule); the sync
     * flush ends with 00 00 ff ff, which RFC 7692 7.2.1 has the sender remove. */
    if (rc == Z_OK && z->avail_in == 0 && z->avail_out > 0 && out >= 4 && out - 4 < len &&
        memcmp(scratch + out - 4, "\0\0\xff\xff", 4) == 0)
        f = frame_ws_compressed(opcode, scratch, out - 4);
    if (f) {
        metrics.deflate_runs[0]++;
        metrics.deflate_in += len;
        metrics.deflate_out += out - 4;
    } else {
        metrics.deflate_runs[1]++;
    }
    if (scratch_cap > SCRATCH_KEEP) {
        free(scratch);
        scratch = NULL;
        scratch_cap = 0;
    }
    return f;
}

void deflate_shutdown(void)
{
    for (int i = 0; i < 7; i++) {
        if (ready[i])
            deflateEnd(&streams[i]);
        ready[i] = 0;
    }
    free(scratch);
    scratch = NULL;
    scratch_cap = 0;
}
