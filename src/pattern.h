/* pattern: string.find, string.match, string.gmatch and string.gsub of our own, with Lua 5.4's
 * semantics (manual §6.4.1: classes, sets, quantifiers, anchors, captures, back-references, %b,
 * %f; the same results, the same error messages, the same "pattern too complex" depth limit of
 * 200 nested items) but with a step budget, so that a script's time limit also holds while it
 * matches. Lua's own versions run in C without instruction counting: `string.find(s, ".-.-b")`
 * on 2 KB takes seconds and no hook sees it.
 *
 * The budget. Every piece of matching work is counted in steps:
 *   - entering one pattern item (each recursion and each item matched in sequence: every
 *     backtrack of `*`, `+`, `?` and every extension of `-` enters an item again),
 *   - one single-character test against an item (a set [...] costs one more step per 16 bytes
 *     of its text, as does finding where the set ends),
 *   - one subject character scanned by %b,
 *   - 16 bytes compared by a back-reference %1-%9 (long ones are compared 16 KB at a time),
 *   - 16 bytes scanned by a plain find (find with plain=true or a pattern without magic
 *     characters; memchr 16 KB at a time) and one step plus 16 bytes a step per candidate,
 *   - 16 bytes copied into a capture or a gsub result (charged before the copy),
 *   - one advance of the start position in find, match, gmatch and gsub.
 * check(L) is called before the step that goes over PATTERN_CHECK_STEPS steps since the last
 * call. Each step is a small constant amount of work (a few nanoseconds: one byte tested, or 16
 * bytes of memchr, memcmp or memcpy), so the time between two calls of check is bounded by
 * PATTERN_CHECK_STEPS steps whatever the pattern and subject, plus one copy that cannot be
 * split: creating one capture string, appending one replacement, or gsub's result buffer growing
 * (memcpy of what it holds; amortized linear). Those are linear in bytes that the script's memory
 * limit bounds. `make bench` (bench/pattern.c) prints the measured gaps between checks on
 * pathological calls: here about 2 us on average, p99 under 30 us, the rare longest a few ms
 * when a gsub result of 100 MB grows.
 *
 * What a replacement function or an __index metamethod of a gsub table runs is Lua code and is
 * counted by the VM's own hook, not by this budget. */
#ifndef CONFAB_PATTERN_H
#define CONFAB_PATTERN_H

#include <lua.h>

/* Steps between two calls of the check function. */
#define PATTERN_CHECK_STEPS 1000

/* Called every PATTERN_CHECK_STEPS steps with the running thread; it may raise (lua_error) to
 * abort the matching call, and otherwise must leave the stack as it found it. */
typedef void (*pattern_check_fn)(lua_State *L);

/* Replaces find, match, gmatch and gsub in the table at table_index with versions that behave
 * exactly like Lua 5.4's and call check(L) every PATTERN_CHECK_STEPS matching steps; check may
 * raise (lua_error) to abort the call. check may be NULL (no budget). */
void pattern_install(lua_State *L, int table_index, pattern_check_fn check);

#endif
