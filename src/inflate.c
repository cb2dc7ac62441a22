/* inflate: bounded decompression of incoming permessage-deflate messages (inflate.h). */
#include "inflate.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

struct inflater {
    z_stream z;
};

struct inflater *inflater_new(void)
{
    struct inflater *z = calloc(1, sizeof *z);
    if (!z)
        return NULL;
    if (inflateInit2(&z->z, -15) != Z_OK) {
        free(z);
        return NULL;
    }
    return z;
}

void inflater_reset(struct inflater *z)
{
    inflateReset(&z->z);
}

void inflater_free(struct inflater *z)
{
    if (z) {
        inflateEnd(&z->z);
        free(z);
    }
}

/* Inflates what z->z holds as input until it is all taken and all output given. */
static int run(struct inflater *z, const struct inflate_sink *sink)
{
    z_stream *s = &z->z;
    for (;;) {
        uint8_t *at, probe;
        size_t n;
        if (sink->room(sink->user, &at, &n) < 0)
            return INFLATE_REFUSED;
        /* At the limit: one byte more of output would be one byte too many. */
        int at_limit = n == 0;
        if (at_limit) {
            at = &probe;
            n = 1;
        }
        if (n > UINT32_MAX)
            n = UINT32_MAX;
        s->next_out = at;
        s->avail_out = (uInt)n;
        int rc = inflate(s, Z_NO_FLUSH);
        size_t made = n - s->avail_out;
        if (made && at_limit)
            return INFLATE_TOO_BIG;
        if (made)
            sink->wrote(sink->user, made);
        switch (rc) {
        case Z_OK:
            break;
        case Z_STREAM_END:
            /* A final block (BFINAL) ended the deflate stream: what follows (the trailer we
             * appended) starts a new one. */
            inflateReset(s);
            break;
        case Z_BUF_ERROR: /* no progress possible: input used up (output room was given) */
            if (s->avail_in == 0)
                return INFLATE_OK;
            break;
        case Z_MEM_ERROR:
            return INFLATE_NO_MEMORY;
        default: /* Z_DATA_ERROR, Z_NEED_DICT, Z_STREAM_ERROR */
            return INFLATE_BAD_DATA;
        }
        if (s->avail_in == 0 && s->avail_out > 0)
            return INFLATE_OK;
    }
}

int inflater_feed(struct inflater *z, const uint8_t *in, size_t len, int last,
                  const struct inflate_sink *sink)
{
    static const uint8_t tail[4] = {0x00, 0x00, 0xff, 0xff};
    while (len) {
        size_t take = len > UINT32_MAX ? UINT32_MAX : len;
        z->z.next_in = (Bytef *)(uintptr_t)in;
        z->z.avail_in = (uInt)take;
        int rc = run(z, sink);
        if (rc)
            return rc;
        in += take;
        len -= take;
    }
    if (!last)
        return INFLATE_OK;
    z->z.next_in = (Bytef *)(uintptr_t)tail;
    z->z.avail_in = sizeof tail;
    return run(z, sink);
}
