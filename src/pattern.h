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
 *   - 16 bytes compared by a back-reference %1-%9 or copied into a capture or a gsub result,
 *   - one advance of the start position in find, match, gmatch and gsub.
 * Each step is a small constant amount of work (one test of one byte, or 16 bytes of memcmp or
 * memcpy), and check(L) is called whenever PATTERN_CHECK_STEPS steps have been taken since the
 * last call, before the step that goes over. So between two calls of check there are at most
 * PATTERN_CHECK_STEPS steps plus one indivisible operation: a back-reference compare, a capture
 * copy or a replacement copy (linear in the bytes involved, 16 bytes a step, charged before it
 * runs), or, for find with plain=true or a pattern without magic characters, one linear-time
 * substring search (glibc memmem, two-way) of the subject. bench/pattern.c measures the longest
 * gap between checks on pathological patterns (a few microseconds here).
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
