#include "utf8.h"

#include <stdint.h>

size_t utf8_valid_prefix(const void *s, size_t len)
{
    const uint8_t *start = s, *p = start, *end = p + len;
    while (p < end) {
        uint8_t c = *p;
        if (c < 0x80) {
            p++;
            continue;
        }
        size_t need;
        uint8_t lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
        if (c >= 0xC2 && c <= 0xDF)
            need = 1;
        else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0)
                lo = 0xA0; /* overlong */
            else if (c == 0xED)
                hi = 0x9F; /* surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0)
                lo = 0x90; /* overlong */
            else if (c == 0xF4)
                hi = 0x8F; /* above U+10FFFF */
        } else
            return (size_t)(p - start);
        if ((size_t)(end - p) <= need)
            return (size_t)(p - start);
        if (p[1] < lo || p[1] > hi)
            return (size_t)(p - start);
        for (size_t i = 2; i <= need; i++)
            if ((p[i] & 0xC0) != 0x80)
                return (size_t)(p - start);
        p += need + 1;
    }
    return len;
}

int utf8_valid(const void *s, size_t len)
{
    return utf8_valid_prefix(s, len) == len;
}
