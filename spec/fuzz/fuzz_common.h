/* fuzz_common: what several harnesses share: an independent UTF-8 decoder (written from RFC 3629
 * table 1, not from src/utf8.c), a checker for frames the server queues, and a loud failure that
 * libFuzzer reports as a crash with the input saved. */
#ifndef CONFAB_FUZZ_COMMON_H
#define CONFAB_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

struct conn;
struct frame;

/* Prints "invariant broken: ..." and aborts: libFuzzer saves the input as a crash. */
void fuzz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#define FUZZ_CHECK(cond, ...)          \
    do {                               \
        if (!(cond))                   \
            fuzz_fail(__VA_ARGS__);    \
    } while (0)

/* Decodes one code point from s (len > 0). Returns the bytes it used, or 0 when s does not start
 * with a well-formed UTF-8 sequence (RFC 3629: shortest form, no surrogates, at most U+10FFFF). */
size_t ref_utf8_decode(const uint8_t *s, size_t len, uint32_t *cp);

/* 1 when all len bytes decode, by ref_utf8_decode. */
int ref_utf8_valid(const uint8_t *s, size_t len);

/* A frame as a server sends it: FIN, no RSV bits, unmasked, a known opcode, a length field that
 * accounts for exactly the bytes of f, control payloads within 125 bytes, text payloads valid
 * UTF-8 and close frames carrying a code a server may send and a valid UTF-8 reason.
 * Aborts (fuzz_fail) otherwise. Returns the opcode; *payload and *len locate the payload. */
int fuzz_check_server_frame(const struct frame *f, const uint8_t **payload, size_t *len);

/* Checks every frame queued for c with fuzz_check_server_frame, and that nothing follows a close
 * frame. Returns the number of frames; *last_opcode is the last one's opcode (0 when none). */
size_t fuzz_check_queue(const struct conn *c, int *last_opcode);

#endif
