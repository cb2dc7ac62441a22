/* fuzz_common: shared checks of the harnesses (see fuzz_common.h). */
#include "fuzz_common.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "conn.h"
#include "frame.h"

void fuzz_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("invariant broken: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

size_t ref_utf8_decode(const uint8_t *s, size_t len, uint32_t *cp)
{
    /* Table 1 of RFC 3629: the lead byte's high bits give the length, the continuation bytes
     * are 10xxxxxx, and the value must need exactly that many bytes. */
    static const uint32_t min_for_len[5] = {0, 0, 0x80, 0x800, 0x10000};
    size_t n;
    uint32_t v;
    if (s[0] < 0x80)
        n = 1, v = s[0];
    else if ((s[0] & 0xE0) == 0xC0)
        n = 2, v = s[0] & 0x1F;
    else if ((s[0] & 0xF0) == 0xE0)
        n = 3, v = s[0] & 0x0F;
    else if ((s[0] & 0xF8) == 0xF0)
        n = 4, v = s[0] & 0x07;
    else
        return 0;
    if (n > len)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        v = v << 6 | (s[i] & 0x3F);
    }
    if (n > 1 && v < min_for_len[n])
        return 0; /* overlong */
    if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return n;
}

int ref_utf8_valid(const uint8_t *s, size_t len)
{
    uint32_t cp;
    for (size_t i = 0; i < len;) {
        size_t n = ref_utf8_decode(s + i, len - i, &cp);
        if (!n)
            return 0;
        i += n;
    }
    return 1;
}

/* Close codes a server may put on the wire (RFC 6455 7.4: not 1004-1006, 1015, nor below 1000
 * or in 1016-2999 which are unassigned). */
static int sendable_close_code(unsigned code)
{
    if (code >= 3000 && code <= 4999)
        return 1;
    return code >= 1000 && code <= 1014 && code != 1004 && code != 1005 && code != 1006;
}

int fuzz_check_server_frame(const struct frame *f, const uint8_t **payload, size_t *len)
{
    const uint8_t *d = f->data;
    FUZZ_CHECK(f->len >= 2, "frame of %u bytes", f->len);
    FUZZ_CHECK(f->refs >= 1, "frame with no reference queued");
    int fin = d[0] >> 7, rsv = (d[0] >> 4) & 7, opcode = d[0] & 0xF;
    FUZZ_CHECK(fin && !rsv, "frame header byte 0x%02x", d[0]);
    FUZZ_CHECK(!(d[1] & 0x80), "server frame is masked");
    uint64_t plen = d[1] & 0x7F;
    size_t hdr = 2;
    if (plen == 126) {
        FUZZ_CHECK(f->len >= 4, "short 16-bit length");
        plen = (uint64_t)d[2] << 8 | d[3];
        hdr = 4;
        FUZZ_CHECK(plen >= 126, "non-minimal 16-bit length %llu", (unsigned long long)plen);
    } else if (plen == 127) {
        FUZZ_CHECK(f->len >= 10, "short 64-bit length");
        plen = 0;
        for (int i = 0; i < 8; i++)
            plen = plen << 8 | d[2 + i];
        hdr = 10;
        FUZZ_CHECK(plen > 0xFFFF, "non-minimal 64-bit length");
    }
    FUZZ_CHECK(hdr + plen == f->len, "frame length %llu + header %zu != %u bytes",
               (unsigned long long)plen, hdr, f->len);
    const uint8_t *p = d + hdr;
    switch (opcode) {
    case 0x1:
        FUZZ_CHECK(ref_utf8_valid(p, plen), "text frame of %llu bytes is not UTF-8",
                   (unsigned long long)plen);
        break;
    case 0x2:
        break;
    case 0x8:
        FUZZ_CHECK(plen <= 125, "close frame of %llu bytes", (unsigned long long)plen);
        FUZZ_CHECK(plen != 1, "close frame with half a code");
        if (plen >= 2) {
            unsigned code = (unsigned)p[0] << 8 | p[1];
            FUZZ_CHECK(sendable_close_code(code), "close code %u may not be sent", code);
            FUZZ_CHECK(ref_utf8_valid(p + 2, plen - 2), "close reason (%llu bytes) is not UTF-8",
                       (unsigned long long)plen - 2);
        }
        break;
    case 0x9:
    case 0xA:
        FUZZ_CHECK(plen <= 125, "control frame of %llu bytes", (unsigned long long)plen);
        break;
    default:
        fuzz_fail("frame with opcode 0x%x", opcode);
    }
    *payload = p;
    *len = (size_t)plen;
    return opcode;
}

size_t fuzz_check_queue(const struct conn *c, int *last_opcode)
{
    const struct outq *q = &c->out;
    size_t bytes = 0;
    *last_opcode = 0;
    for (uint32_t i = 0; i < outq_count(q); i++) {
        const struct frame *f = outq_at(q, i);
        FUZZ_CHECK(*last_opcode != 0x8, "a frame follows a close frame");
        const uint8_t *p;
        size_t len;
        *last_opcode = fuzz_check_server_frame(f, &p, &len);
        bytes += f->len;
    }
    size_t off = q->r ? q->r->off : 0;
    FUZZ_CHECK(bytes - off == outq_bytes(q), "queue says %zu bytes, frames hold %zu",
               outq_bytes(q), bytes - off);
    return outq_count(q);
}
