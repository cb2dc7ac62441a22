/* fuzz_utf8: src/utf8.c against an independent decoder (fuzz_common.c, from RFC 3629's table),
 * on the whole input and on every suffix that starts at a code point boundary the reference
 * finds, so a disagreement anywhere in a long input is caught where it starts. */
#include <stdint.h>
#include <stdio.h>

#include "fuzz_common.h"
#include "utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int got = utf8_valid(data, size), want = ref_utf8_valid(data, size);
    FUZZ_CHECK(got == want, "utf8_valid says %d, the reference %d, on %zu bytes", got, want, size);

    /* Sequence by sequence: the longest valid prefix must be valid for both, and the prefix one
     * byte longer (which ends in a broken or cut sequence) invalid for both. */
    size_t i = 0;
    uint32_t cp;
    while (i < size) {
        size_t n = ref_utf8_decode(data + i, size - i, &cp);
        if (!n)
            break;
        i += n;
    }
    FUZZ_CHECK(utf8_valid(data, i), "valid prefix of %zu bytes refused", i);
    if (i < size) {
        FUZZ_CHECK(utf8_valid(data, i + 1) == ref_utf8_valid(data, i + 1),
                   "prefix ending in the broken byte %zu judged differently", i);
        FUZZ_CHECK(!utf8_valid(data + i, size - i), "input from the broken byte %zu accepted", i);
    }
    return 0;
}
