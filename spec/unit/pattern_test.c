/* Our pattern functions (src/pattern.c) against Lua 5.4's own: a differential test on generated
 * subjects and patterns (well-formed and malformed, every function and argument form), the step
 * budget (a check that raises aborts the call; the number of checks grows with the work for
 * every kind of pathological pattern), and hand-written cases for each feature. */
#include <ctype.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pattern.h"
#include "test.h"

/* ---- the check functions the tests install ---- */

static long checks;      /* calls of the check since the test reset it */
static long raise_after; /* raise on this call (0: never) */

static void counting_check(lua_State *L)
{
    checks++;
    if (raise_after && checks >= raise_after)
        luaL_error(L, "step budget spent");
}

/* A state with the standard library as `string` and ours as the globals `ours` (budget counted
 * by counting_check) and `unbudgeted` (check NULL). */
static lua_State *new_state(void)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    lua_newtable(L);
    pattern_install(L, -1, counting_check);
    lua_setglobal(L, "ours");
    lua_newtable(L);
    pattern_install(L, lua_gettop(L), NULL);
    lua_setglobal(L, "unbudgeted");
    return L;
}

/* Runs a chunk; returns its first result as a string (or "ERROR: message"), valid until the
 * next call. */
static const char *eval(lua_State *L, const char *chunk)
{
    static char out[4096];
    lua_settop(L, 0);
    if (luaL_loadstring(L, chunk) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK)
        snprintf(out, sizeof out, "ERROR: %s", lua_tostring(L, -1));
    else
        snprintf(out, sizeof out, "%s", luaL_tolstring(L, -1, NULL));
    lua_settop(L, 0);
    return out;
}

/* ---- the differential harness ---- */

/* run(impl, kind, args) calls impl[kind] with args (args.n of them) and describes everything
 * observable: each result with its type, the error message, what a replacement function was
 * given, and for gmatch every value of the iteration. Both implementations are called from the
 * same Lua code, so that argument errors name the function the same way. */
static const char harness[] =
    "local log\n"
    "local function describe(r)\n"
    "  local out = {tostring(r.n)}\n"
    "  for i = 1, r.n do out[#out + 1] = type(r[i]) .. ':' .. tostring(r[i]) end\n"
    "  return table.concat(out, ',')\n"
    "end\n"
    "local repl_table = {a = 'A', b = false, ab = 12, ['()'] = 'P', [1] = 'one', [2] = true,\n"
    "  [3] = 'three', x = {}, [''] = 'E', aa = 'AA'}\n"
    "local function repl_fn(...)\n"
    "  local r = table.pack(...)\n"
    "  log[#log + 1] = describe(r)\n"
    "  local k = #tostring(r[1]) % 7\n"
    "  if k == 0 then return nil elseif k == 1 then return false\n"
    "  elseif k == 2 then return '<' .. tostring(r[1]) .. '>' elseif k == 3 then return 7.5\n"
    "  elseif k == 4 then return tostring(r[1]):upper() elseif k == 5 then return ''\n"
    "  else return r.n > 2 and {} or '#' end\n"
    "end\n"
    "local repl_meta = setmetatable({b = 'B'}, {__index = function(_, k)\n"
    "  log[#log + 1] = 'index ' .. type(k) .. ':' .. tostring(k)\n"
    "  if type(k) == 'number' then return k * 2 end\n"
    "  if #k > 2 then error('long key ' .. k) end\n"
    "  return #k == 1 and k .. k or nil\n"
    "end})\n"
    "local function run(impl, kind, args)\n"
    "  log = {}\n"
    "  if args.repl == 'table' then args[3] = repl_table elseif args.repl == 'function' then\n"
    "    args[3] = repl_fn elseif args.repl == 'meta' then args[3] = repl_meta end\n"
    "  local f = impl[kind]\n"
    "  local ok, res = pcall(function()\n"
    "    if kind == 'gmatch' then\n"
    "      local it = f(table.unpack(args, 1, args.n))\n"
    "      local out = {}\n"
    "      for _ = 1, 40 do\n"
    "        local r = table.pack(it())\n"
    "        out[#out + 1] = describe(r)\n"
    "        if r.n == 0 then break end\n"
    "      end\n"
    "      return table.concat(out, ';')\n"
    "    end\n"
    "    local r = table.pack(f(table.unpack(args, 1, args.n)))\n"
    "    return describe(r)\n"
    "  end)\n"
    "  return (ok and 'ok ' or 'error ') .. tostring(res) .. ' | ' .. table.concat(log, ';')\n"
    "end\n"
    "return run\n";

/* splitmix64: a fixed seed makes every run generate the same cases. */
static uint64_t rng_state;
static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static int below(int n) { return (int)(rnd() % (uint64_t)n); }
static int chance(int percent) { return below(100) < percent; }

/* What the generator makes: subject length, pattern items, repeated items (these bound the
 * backtracking of both implementations), and how often it uses any byte, builds the pattern
 * from the subject, or builds a deep pattern near the nesting and capture limits. */
struct gen_config {
    int max_subject, max_items, max_repeats;
    int wide_percent, from_subject_percent, deep_percent;
};
static const struct gen_config *gen;

struct buf {
    char b[1024];
    size_t n;
};
static void put(struct buf *b, const char *s, size_t n)
{
    if (b->n + n < sizeof b->b) {
        memcpy(b->b + b->n, s, n);
        b->n += n;
    }
}
static void putc_(struct buf *b, char c) { put(b, &c, 1); }
static void puts_(struct buf *b, const char *s) { put(b, s, strlen(s)); }

/* Subject characters: a small alphabet so that patterns match often, plus the characters that
 * are special in patterns, a NUL, a space, a newline and a byte above 127. */
static const char subject_chars[] = "aaabbbcab()[]%-.^$x1 \n\xe9";
static char subject_char(void)
{
    if (chance(3))
        return '\0';
    if (gen->wide_percent && chance(gen->wide_percent))
        return (char)below(256);
    return subject_chars[below((int)sizeof subject_chars - 1)];
}

static void gen_subject(struct buf *b, int max_len)
{
    int len = below(max_len + 1);
    for (int i = 0; i < len; i++)
        putc_(b, subject_char());
}

static const char class_letters[] = "acdglpsuwxACDGLPSUWXqz";

static void gen_set(struct buf *b)
{
    putc_(b, '[');
    if (chance(25))
        putc_(b, '^');
    if (chance(10))
        putc_(b, ']');
    int members = below(4);
    for (int i = 0; i < members; i++) {
        int k = below(10);
        if (k < 3) {
            putc_(b, '%');
            putc_(b, class_letters[below((int)sizeof class_letters - 1)]);
        } else if (k < 5) {
            char lo = subject_char();
            putc_(b, lo);
            putc_(b, '-');
            putc_(b, chance(80) ? (char)(lo + below(3)) : subject_char());
        } else if (k < 6) {
            putc_(b, '%');
            putc_(b, "]%-^["[below(5)]);
        } else
            putc_(b, subject_char());
    }
    if (chance(95))
        putc_(b, ']');
    else if (chance(50))
        putc_(b, '%');
}

/* One single-character item: a character, '.', a class, an escape or a set. */
static void gen_single(struct buf *b)
{
    int k = below(12);
    if (k < 4)
        putc_(b, subject_char());
    else if (k < 6)
        putc_(b, '.');
    else if (k < 8) {
        putc_(b, '%');
        putc_(b, class_letters[below((int)sizeof class_letters - 1)]);
    } else if (k < 9) {
        putc_(b, '%');
        putc_(b, "%.()[]-^$*+?"[below(12)]);
    } else
        gen_set(b);
}

/* A pattern of up to max_items items, at most gen->max_repeats of them repeated, so that the
 * backtracking of both implementations stays short. */
static void gen_pattern(struct buf *b, int max_items)
{
    int repeats = 0, open = 0;
    if (chance(20))
        putc_(b, '^');
    int items = below(max_items + 1);
    for (int i = 0; i < items; i++) {
        int k = below(100);
        if (k < 55) {
            gen_single(b);
            if (repeats < gen->max_repeats && chance(40)) {
                putc_(b, "*+-?"[below(4)]);
                repeats++;
            }
        } else if (k < 65) {
            putc_(b, '(');
            if (chance(25))
                putc_(b, ')');
            else
                open++;
        } else if (k < 73) {
            if (open || chance(10)) {
                putc_(b, ')');
                if (open)
                    open--;
            }
        } else if (k < 79) {
            putc_(b, '%');
            putc_(b, (char)('0' + below(4)));
        } else if (k < 84) {
            puts_(b, "%b");
            if (chance(90))
                putc_(b, "()ab"[below(4)]);
            if (chance(90))
                putc_(b, ")(ba"[below(4)]);
        } else if (k < 89) {
            puts_(b, "%f");
            if (chance(90))
                gen_set(b);
            else
                putc_(b, subject_char());
        } else if (k < 92)
            putc_(b, '$');
        else if (k < 95)
            putc_(b, "*+-?^"[below(5)]);
        else
            putc_(b, '%'); /* maybe at the end: malformed */
    }
    while (open && chance(80)) {
        putc_(b, ')');
        open--;
    }
    if (chance(15))
        putc_(b, '$');
}

/* A pattern made from a piece of the subject: each byte kept, escaped, replaced by '.', by a
 * class that contains it or by a set, some repeated, some captured, so that it often matches. */
static void gen_pattern_from(struct buf *b, const struct buf *subject)
{
    if (chance(15))
        putc_(b, '^');
    if (subject->n == 0) {
        gen_pattern(b, 2);
        return;
    }
    size_t from = (size_t)below((int)subject->n), len = (size_t)below(6) + 1;
    int repeats = 0, open = 0;
    for (size_t i = from; i < subject->n && i < from + len; i++) {
        unsigned char c = (unsigned char)subject->b[i];
        if (chance(15)) {
            putc_(b, '(');
            open++;
        }
        int k = below(10);
        if (k < 4 && !strchr("^$*+?.([%-])", c))
            putc_(b, (char)c);
        else if (k < 5)
            putc_(b, '.');
        else if (k < 7) {
            static const char classes[] = "acdglpsuwx";
            char cl = '%';
            for (int tries = 0; tries < 10; tries++) {
                char try = classes[below(10)];
                if ((try == 'a' && isalpha(c)) || (try == 'c' && iscntrl(c)) ||
                    (try == 'd' && isdigit(c)) || (try == 'g' && isgraph(c)) ||
                    (try == 'l' && islower(c)) || (try == 'p' && ispunct(c)) ||
                    (try == 's' && isspace(c)) || (try == 'u' && isupper(c)) ||
                    (try == 'w' && isalnum(c)) || (try == 'x' && isxdigit(c))) {
                    cl = try;
                    break;
                }
            }
            putc_(b, '%');
            putc_(b, cl == '%' && c == 0 ? 'z' : (cl == '%' ? (char)c : cl));
        } else if (k < 8) {
            putc_(b, '%');
            putc_(b, (char)c);
        } else {
            putc_(b, '[');
            putc_(b, (char)c);
            if (chance(50)) {
                putc_(b, '-');
                putc_(b, (char)(c + below(4)));
            }
            putc_(b, ']');
        }
        if (repeats < gen->max_repeats && chance(30)) {
            putc_(b, "*+-?"[below(4)]);
            repeats++;
        }
        if (open && chance(30)) {
            putc_(b, ')');
            open--;
        }
    }
    while (open-- > 0)
        putc_(b, ')');
    if (chance(20)) {
        putc_(b, '%');
        putc_(b, (char)('1' + below(2)));
    }
    if (chance(15))
        putc_(b, '$');
}

/* A long pattern near the limits: 100-260 items of one kind (optional items and captures nest
 * a level each; captures stop at 32). */
static void gen_deep(struct buf *b)
{
    static const char *const units[] = {"a?", "(a)", "a-", "()", "%a?", "[ab]?", "(a?)"};
    const char *unit = units[below(7)];
    int n = 100 + below(161);
    for (int i = 0; i < n; i++)
        puts_(b, unit);
}

static void gen_template(struct buf *b)
{
    int parts = below(4);
    for (int i = 0; i < parts; i++) {
        int k = below(10);
        if (k < 4)
            putc_(b, "xy-"[below(3)]);
        else if (k < 8) {
            putc_(b, '%');
            putc_(b, (char)('0' + below(4)));
        } else if (k < 9)
            puts_(b, "%%");
        else {
            putc_(b, '%');
            if (chance(50))
                putc_(b, "a%"[below(2)]);
        }
    }
}

/* Pushes an init (or max n) argument: mostly small integers, sometimes a float, a numeric
 * string, a huge value or something that is not a number. */
static void push_number_arg(lua_State *L, int small)
{
    int k = below(100);
    if (k < 75)
        lua_pushinteger(L, below(2 * small + 1) - small);
    else if (k < 80)
        lua_pushinteger(L, k < 78 ? LUA_MAXINTEGER : LUA_MININTEGER);
    else if (k < 85)
        lua_pushnumber(L, 2.0);
    else if (k < 88)
        lua_pushnumber(L, 1.5);
    else if (k < 92)
        lua_pushstring(L, "2");
    else if (k < 95)
        lua_pushstring(L, "x");
    else
        lua_pushnil(L);
}

/* Pushes a new args table for one generated call of kind. */
static void push_args(lua_State *L, const char *kind)
{
    struct buf s = {.n = 0}, p = {.n = 0};
    int max_subject = gen->max_subject;
    if (gen->deep_percent && chance(gen->deep_percent)) {
        gen_deep(&p);
        int len = below(300);
        for (int i = 0; i < len; i++)
            putc_(&s, chance(90) ? 'a' : 'b');
    } else {
        gen_subject(&s, max_subject);
        if (chance(gen->from_subject_percent))
            gen_pattern_from(&p, &s);
        else
            gen_pattern(&p, gen->max_items);
    }
    lua_newtable(L);
    int n = 2;
    if (chance(2))
        lua_pushinteger(L, below(1000));
    else if (chance(1))
        lua_pushnil(L);
    else
        lua_pushlstring(L, s.b, s.n);
    lua_rawseti(L, -2, 1);
    if (chance(1))
        lua_pushboolean(L, 1);
    else
        lua_pushlstring(L, p.b, p.n);
    lua_rawseti(L, -2, 2);
    if (strcmp(kind, "gsub") == 0) {
        int k = below(100);
        if (k < 40) {
            struct buf t = {.n = 0};
            gen_template(&t);
            lua_pushlstring(L, t.b, t.n);
        } else if (k < 50) {
            lua_pushliteral(L, "meta");
            lua_setfield(L, -2, "repl");
            lua_pushboolean(L, 0); /* replaced by a table with an __index function in run */
        } else if (k < 60) {
            lua_pushliteral(L, "table");
            lua_setfield(L, -2, "repl");
            lua_pushboolean(L, 0); /* replaced by the table in run */
        } else if (k < 85) {
            lua_pushliteral(L, "function");
            lua_setfield(L, -2, "repl");
            lua_pushboolean(L, 0);
        } else if (k < 92)
            lua_pushinteger(L, 42);
        else if (k < 96)
            lua_pushboolean(L, 1);
        else
            lua_pushnil(L);
        lua_rawseti(L, -2, 3);
        n = 3;
        if (chance(40)) {
            push_number_arg(L, 3);
            lua_rawseti(L, -2, 4);
            n = 4;
        }
    } else if (chance(60)) {
        push_number_arg(L, max_subject + 3);
        lua_rawseti(L, -2, 3);
        n = 3;
        if (strcmp(kind, "find") == 0 && chance(40)) {
            lua_pushboolean(L, chance(60));
            lua_rawseti(L, -2, 4);
            n = 4;
        }
    }
    lua_pushinteger(L, n);
    lua_setfield(L, -2, "n");
}

/* Prints a description with the bytes that would not show. */
static void print_escaped(const char *label, const char *s, size_t n)
{
    printf("      %s: \"", label);
    for (size_t i = 0; i < n && i < 300; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 32 && c < 127 && c != '\\')
            putchar(c);
        else
            printf("\\x%02x", c);
    }
    printf("\"\n");
}

/* The errors Lua raised in the generated cases, counted by message (what the generator
 * covers; printed with the test). */
static const char *const error_kinds[] = {
    "malformed pattern (ends with '%')",
    "malformed pattern (missing ']')",
    "malformed pattern (missing arguments to '%b')",
    "missing '[' after '%f' in pattern",
    "invalid capture index",
    "invalid pattern capture",
    "unfinished capture",
    "too many captures",
    "pattern too complex",
    "invalid use of '%' in replacement string",
    "invalid replacement value",
    "bad argument",
};
#define NKINDS (sizeof error_kinds / sizeof error_kinds[0])

struct diff_stats {
    long cases, errors, mismatches, matched;
    long by_kind[NKINDS + 1]; /* the last: any other message */
};

static void count_error(struct diff_stats *st, const char *result)
{
    for (size_t k = 0; k < NKINDS; k++)
        if (strstr(result, error_kinds[k])) {
            st->by_kind[k]++;
            return;
        }
    st->by_kind[NKINDS]++;
}

static void print_stats(const struct diff_stats *st)
{
    printf("    %ld cases, %ld matched, %ld errors, %ld differ; errors by message:\n", st->cases,
           st->matched, st->errors, st->mismatches);
    for (size_t k = 0; k <= NKINDS; k++)
        printf("      %6ld %s\n", st->by_kind[k], k < NKINDS ? error_kinds[k] : "(other)");
}

/* Generates count calls (the four kinds in turn) and compares ours with Lua's. The environment
 * variable PATTERN_DIFF_SCALE multiplies count, and PATTERN_DIFF_SEED changes the seed, for
 * longer runs by hand (`PATTERN_DIFF_SCALE=100 build/unit_tests`). */
static void differential(uint64_t seed, int count, const struct gen_config *config,
                         struct diff_stats *st)
{
    gen = config;
    const char *scale = getenv("PATTERN_DIFF_SCALE"), *seed_env = getenv("PATTERN_DIFF_SEED");
    if (scale && atof(scale) > 0)
        count = (int)(count * atof(scale));
    if (seed_env)
        seed ^= strtoull(seed_env, NULL, 0) * 0x9E3779B97F4A7C15ull;
    static const char *const kinds[] = {"find", "match", "gmatch", "gsub"};
    lua_State *L = new_state();
    CHECK(luaL_loadstring(L, harness) == LUA_OK && lua_pcall(L, 0, 1, 0) == LUA_OK);
    int run = lua_gettop(L);
    rng_state = seed;
    raise_after = 0;
    for (int i = 0; i < count; i++) {
        const char *kind = kinds[i % 4];
        push_args(L, kind);
        int args = lua_gettop(L);
        size_t la, lb;
        lua_pushvalue(L, run);
        lua_getglobal(L, "string");
        lua_pushstring(L, kind);
        lua_pushvalue(L, args);
        lua_call(L, 3, 1);
        const char *theirs = lua_tolstring(L, -1, &la);
        lua_pushvalue(L, run);
        lua_getglobal(L, "ours");
        lua_pushstring(L, kind);
        lua_pushvalue(L, args);
        lua_call(L, 3, 1);
        const char *mine = lua_tolstring(L, -1, &lb);
        st->cases++;
        if (strncmp(theirs, "error", 5) == 0) {
            st->errors++;
            count_error(st, theirs);
        }
        else if (strncmp(theirs, "ok 0,", 5) != 0 && strncmp(theirs, "ok 1,nil", 8) != 0)
            st->matched++;
        if (la != lb || memcmp(theirs, mine, la) != 0) {
            if (st->mismatches++ < 10) {
                size_t n;
                printf("    %s differs (case %d):\n", kind, i);
                lua_rawgeti(L, args, 1);
                const char *s = lua_tolstring(L, -1, &n);
                print_escaped("subject", s ? s : "(not a string)", s ? n : 14);
                lua_rawgeti(L, args, 2);
                s = lua_tolstring(L, -1, &n);
                print_escaped("pattern", s ? s : "(not a string)", s ? n : 14);
                lua_pop(L, 2);
                for (int a = 3; a <= 4; a++) {
                    lua_rawgeti(L, args, a);
                    printf("      arg %d: %s\n", a, luaL_tolstring(L, -1, NULL));
                    lua_pop(L, 2);
                }
                print_escaped("lua ", theirs, la);
                print_escaped("ours", mine, lb);
            }
        }
        lua_settop(L, run);
    }
    lua_close(L);
}

TEST(pattern_differential_short)
{
    static const struct gen_config config = {12, 6, 3, 0, 0, 0};
    struct diff_stats st = {0};
    differential(0x5eed0001, 40000, &config, &st);
    print_stats(&st);
    CHECK_INT(st.mismatches, 0);
    /* The generator must exercise both outcomes and the errors, or it tests little. */
    CHECK(st.matched > st.cases / 5);
    CHECK(st.errors > st.cases / 50);
}

/* Longer subjects of any byte, patterns made from the subject (so that they match often, with
 * captures and back-references), and deep patterns at the nesting and capture limits. */
TEST(pattern_differential_long)
{
    static const struct gen_config config = {200, 5, 2, 10, 60, 5};
    struct diff_stats st = {0};
    differential(0x5eed0002, 20000, &config, &st);
    print_stats(&st);
    CHECK_INT(st.mismatches, 0);
    CHECK(st.matched > st.cases / 4);
    CHECK(st.errors > st.cases / 100);
}

/* ---- the budget ---- */

/* Check calls made by one chunk run with ours (no raising). */
static long checks_for(lua_State *L, const char *chunk)
{
    checks = 0;
    raise_after = 0;
    const char *r = eval(L, chunk);
    CHECK(strncmp(r, "ERROR", 5) != 0);
    return checks;
}

TEST(pattern_budget_aborts_the_issue_pattern)
{
    lua_State *L = new_state();
    checks = 0;
    raise_after = 50;
    CHECK_STR(eval(L, "return ours.find(string.rep('a', 2000), '.-.-b')"),
              "ERROR: [string \"return ours.find(string.rep('a', 2000), '.-.-...\"]:1: "
              "step budget spent");
    CHECK_INT(checks, 50);
    /* Every function stops the same way. */
    static const char *const calls[] = {
        "return ours.match(string.rep('a', 2000), '.-.-b')",
        "for _ in ours.gmatch(string.rep('a', 2000), '.-.-b') do end",
        "return ours.gsub(string.rep('a', 2000), '.-.-b', 'x')",
        "return ours.gsub(string.rep('a', 2000), '.-.-b', function() end)",
    };
    for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++) {
        checks = 0;
        raise_after = 3;
        CHECK(strstr(eval(L, calls[i]), "]:1: step budget spent") != NULL);
        CHECK_INT(checks, 3);
    }
    /* A check that does not raise changes nothing: ours with a check, without one and Lua's
     * agree on a search that takes many checks. */
    raise_after = 0;
    CHECK_STR(eval(L, "local s = string.rep('a', 300) .. 'b'\n"
                      "local a = table.concat({ours.find(s, '.-.-b')}, ' ')\n"
                      "local b = table.concat({unbudgeted.find(s, '.-.-b')}, ' ')\n"
                      "local c = table.concat({string.find(s, '.-.-b')}, ' ')\n"
                      "return a == b and b == c and a or (a .. '/' .. b .. '/' .. c)"),
              "1 301");
    lua_close(L);
}

/* The number of checks for a problem of size n and 2n: it must grow at least by factor (the
 * work grows faster than that), so no kind of step escapes the count. %s in the format is a
 * number. */
static void check_growth(lua_State *L, const char *fmt, int n, double factor)
{
    char a[512], b[512];
    snprintf(a, sizeof a, fmt, n);
    snprintf(b, sizeof b, fmt, 2 * n);
    long ca = checks_for(L, a), cb = checks_for(L, b);
    if (!(ca > 0 && (double)cb >= factor * (double)ca))
        printf("    %s: %ld checks at n=%d, %ld at 2n (expected at least %.1fx)\n", fmt, ca, n,
               cb, factor);
    CHECK(ca > 0 && (double)cb >= factor * (double)ca);
}

TEST(pattern_budget_grows_with_the_work)
{
    lua_State *L = new_state();
    /* Nested lazy repetitions: cubic. */
    check_growth(L, "return ours.find(string.rep('a', %d), '.-.-b')", 150, 6.0);
    /* Greedy and lazy repetitions, each start position: quadratic. */
    check_growth(L, "return ours.find(string.rep('a', %d), 'a*b')", 2000, 3.0);
    check_growth(L, "return ours.find(string.rep('a', %d), 'a-b')", 2000, 3.0);
    check_growth(L, "return ours.find(string.rep('a', %d), 'a?a?a?b')", 20000, 1.8);
    /* %b scans to the end of the subject from every '(': quadratic. */
    check_growth(L, "return ours.find(string.rep('(', %d), '%%b()')", 2000, 3.0);
    /* A back-reference compares longer and longer captures: quadratic in bytes compared. */
    check_growth(L, "return ours.find(string.rep('a', %d) .. 'b', '^(.*)%%1$')", 8000, 3.0);
    /* A long set costs per test and per look for its end. */
    check_growth(L, "return ours.find(string.rep('b', 500), '[' .. string.rep('a', %d) .. ']')",
                 2000, 1.8);
    check_growth(L,
                 "return ours.find(string.rep('b', 500), '%%f[' .. string.rep('a', %d) .. ']')",
                 2000, 1.8);
    /* gmatch and gsub advance over the subject and copy what they return. */
    check_growth(L, "local n = 0 for _ in ours.gmatch(string.rep('a', %d), 'a-b') do end",
                 2000, 3.0);
    check_growth(L, "return ours.gsub(string.rep('a', %d), 'x', 'y')", 50000, 1.8);
    check_growth(L, "return ours.gsub(string.rep('a', 200), 'a', string.rep('x', %d))", 2000,
                 1.8);
    check_growth(L, "return ours.gsub(string.rep('ab', 20000), '(a)', '%%1%%1', %d)", 5000, 1.8);
    /* A plain find scans the subject. */
    check_growth(L, "return ours.find(string.rep('a', %d), 'ab', 1, true)", 100000, 1.8);
    lua_close(L);
}

/* ---- hand-written cases: the expected value is checked against Lua's and ours ---- */

struct hand_case {
    const char *expr; /* a Lua expression using S (the string table under test) */
    const char *want; /* its results joined by ' ' (or "ERROR: message") */
};

static const struct hand_case hand_cases[] = {
    /* plain characters, find positions, init */
    {"S.find('hello world', 'o w')", "5 7"},
    {"S.find('hello', 'l')", "3 3"},
    {"S.find('hello', 'l', 4)", "4 4"},
    {"S.find('hello', 'l', -1)", "nil"},
    {"S.find('hello', 'l', -2)", "4 4"},
    {"S.find('hello', 'h', -100)", "1 1"},
    {"S.find('hello', '', 6)", "6 5"},
    {"S.find('hello', '', 7)", "nil"},
    {"S.find('hello', '', 0)", "1 0"},
    {"S.find('a.b', '.', 1, true)", "2 2"},
    {"S.find('a+b', '+', 1, true)", "2 2"},
    {"S.find('a\\0b', '\\0')", "2 2"},
    {"S.find('a\\0b', '%z')", "2 2"},
    {"S.find('a\\0b', '%Z+')", "1 1"},
    /* classes and their complements */
    {"S.match('  x1_y', '%a+')", "x"},
    {"S.match('x\\1y', '%c')", "\1"},
    {"S.match('ab123c', '%d+')", "123"},
    {"S.match(' \\t!', '%g')", "!"},
    {"S.match('ABcdE', '%l+')", "cd"},
    {"S.match('ab,.;c', '%p+')", ",.;"},
    {"S.match('a \\t\\n b', '%s+')", " \t\n "},
    {"S.match('abCDe', '%u+')", "CD"},
    {"S.match('--ab1_', '%w+')", "ab1"},
    {"S.match('xyzBEEFg', '%x+')", "BEEF"},
    {"S.match('abc123', '%A+')", "123"},
    {"S.match('123abc', '%D+')", "abc"},
    {"S.match('aaa bbb', '%S+$')", "bbb"},
    {"S.match('a.b', '%.')", "."},
    {"S.match('50%', '%d+%%')", "50%"},
    /* sets */
    {"S.match('hello', '[aeiou]+')", "e"},
    {"S.match('hello', '[^aeiou]+')", "h"},
    {"S.match('x-y', '[a-]+')", "-"},
    {"S.match('abc-', '[%a-]+')", "abc-"},
    {"S.match('a]b', '[]]')", "]"},
    {"S.match('a]b', '[^]]+')", "a"},
    {"S.match('2019-05', '[0-9]+')", "2019"},
    {"S.match('ab^', '[%^b]+')", "b^"},
    {"S.match('a%b', '[%%]')", "%"},
    /* quantifiers */
    {"S.match('aaab', 'a*')", "aaa"},
    {"S.match('baaa', 'a*')", ""},
    {"S.match('baaa', 'a+')", "aaa"},
    {"S.match('<a><b>', '<.->')", "<a>"},
    {"S.match('<a><b>', '<.*>')", "<a><b>"},
    {"S.match('color colour', 'colou?r', 2)", "colour"},
    {"S.find('abc', 'b?c')", "2 3"},
    /* anchors */
    {"S.find('abc', '^b')", "nil"},
    {"S.find('abc', '^a')", "1 1"},
    {"S.find('abc', '^b', 2)", "2 2"},
    {"S.find('abc', 'c$')", "3 3"},
    {"S.find('a$c', '$c')", "2 3"},
    {"S.find('abc', 'b$')", "nil"},
    {"S.match('a^b', 'a^b')", "a^b"},
    /* captures */
    {"S.match('key = value', '(%w+)%s*=%s*(%w+)')", "key value"},
    {"S.find('key = value', '(%w+)%s*=%s*(%w+)')", "1 11 key value"},
    {"S.match('hello', '()ll()')", "3 5"},
    {"S.match('hello', '(h(el)l)')", "hell el"},
    {"S.match('abc', '()')", "1"},
    /* back-references */
    {"S.match('say \"hi\" now', '([\"\\'])(.-)%1')", "\" hi"},
    {"S.match('abab', '(ab)%1')", "ab"},
    {"S.find('xyzzy', '(.)%1')", "3 4 z"},
    {"S.match('aa', '()%1')", "nil"},
    /* %b and %f */
    {"S.match('f(a(b)c) d', '%b()')", "(a(b)c)"},
    {"S.match('f(a(b c', '%b()')", "nil"},
    {"S.match('[[x]]', '%b[]')", "[[x]]"},
    {"S.gsub('THE (quick) fox', '%f[%a]%a+', 'W')", "W (W) W 3"},
    {"S.find('THE (quick) fox', '%f[%a]%a+%f[%A]', 5)", "6 10"},
    {"S.match('abc', '%f[%z]')", ""},
    {"S.find('abc', '%f[%z]')", "4 3"},
    /* gmatch */
    {"(function() local t = {} for k, v in S.gmatch('a=1, b=2', '(%w+)=(%w+)') do"
     " t[#t + 1] = k .. v end return table.concat(t, ',') end)()",
     "a1,b2"},
    {"(function() local t = {} for w in S.gmatch('one two', '%a+', 4) do"
     " t[#t + 1] = w end return table.concat(t, ',') end)()",
     "two"},
    {"(function() local t = {} for w in S.gmatch('abc', '%a*') do"
     " t[#t + 1] = '[' .. w .. ']' end return table.concat(t) end)()",
     "[abc]"},
    {"(function() local t = {} for w in S.gmatch('^a^', '^') do"
     " t[#t + 1] = w end return #t end)()",
     "2"},
    {"(function() local t = {} for p in S.gmatch('ab', '()') do"
     " t[#t + 1] = p end return table.concat(t, ',') end)()",
     "1,2,3"},
    /* gsub: string, %0-%9, %%, table, function, max n, empty matches */
    {"S.gsub('hello world', 'o', '0')", "hell0 w0rld 2"},
    {"S.gsub('hello world', '(o)', '[%1%1]', 1)", "hell[oo] world 1"},
    {"S.gsub('abc', '%w', '%0%0')", "aabbcc 3"},
    {"S.gsub('abc', '', '-')", "-a-b-c- 4"},
    {"S.gsub('abc', '%w*', '-')", "- 1"},
    {"S.gsub('a,b,,c', ',*', ';')", ";a;b;c; 4"},
    {"S.gsub('abc', 'b', '%%')", "a%c 1"},
    {"S.gsub('$name is $age', '%$(%w+)', {name = 'Ann', age = 7})", "Ann is 7 2"},
    {"S.gsub('$x $y', '%$(%w+)', {x = false})", "$x $y 2"},
    {"S.gsub('abc', '%w', function(c) return c:upper() .. '.' end)", "A.B.C. 3"},
    {"S.gsub('abc', '%w', function(c) if c == 'b' then return nil end return 1 end)",
     "1b1 3"},
    {"S.gsub('hello', '()l', '%1')", "he34o 2"},
    {"S.gsub('abc', '^a', 'x')", "xbc 1"},
    {"S.gsub('aaa', '^a', 'x')", "xaa 1"},
    {"S.gsub('abc', 'x*', '-', 2)", "-a-bc 2"},
    {"S.gsub('abc', '.', 'x', -1)", "abc 0"},
    {"S.gsub(123, '2', 4)", "143 1"},
    /* errors, word for word */
    {"S.find('a', '%')", "ERROR: malformed pattern (ends with '%')"},
    {"S.find('a', '[a')", "ERROR: malformed pattern (missing ']')"},
    {"S.find('a', '[a%')", "ERROR: malformed pattern (missing ']')"},
    {"S.find('a', '%1')", "ERROR: invalid capture index %1"},
    {"S.find('a', '(a%1)')", "ERROR: invalid capture index %1"},
    {"S.match('a', 'a)')", "ERROR: invalid pattern capture"},
    {"S.find('a)', 'a)')", "1 2"},
    {"S.find('a', '(a')", "ERROR: unfinished capture"},
    {"S.find('a', '%b')", "ERROR: malformed pattern (missing arguments to '%b')"},
    {"S.find('a', '%fa')", "ERROR: missing '[' after '%f' in pattern"},
    {"S.find('a', string.rep('(', 33))", "ERROR: too many captures"},
    {"S.find(string.rep('a', 300), string.rep('a?', 300))", "ERROR: pattern too complex"},
    {"S.find(string.rep('a', 150), string.rep('a?', 300))", "1 150"},
    {"S.find(string.rep('a', 199), string.rep('a?', 199))", "1 199"},
    {"S.find(string.rep('a', 200), string.rep('a?', 200))", "ERROR: pattern too complex"},
    {"S.match(string.rep('a', 300), string.rep('(a)', 16) .. string.rep('a?', 167))",
     "a a a a a a a a a a a a a a a a"},
    {"S.match(string.rep('a', 300), string.rep('(a)', 16) .. string.rep('a?', 168))",
     "ERROR: pattern too complex"},
    {"S.gsub('abc', 'b', '%2')", "ERROR: invalid capture index %2"},
    {"S.gsub('abc', 'b', '%x')", "ERROR: invalid use of '%' in replacement string"},
    {"S.gsub('abc', 'b', 'x%')", "ERROR: invalid use of '%' in replacement string"},
    {"S.gsub('abc', 'b', {b = {}})", "ERROR: invalid replacement value (a table)"},
    {"S.gsub('abc', 'b', function() return true end)",
     "ERROR: invalid replacement value (a boolean)"},
    {"S.gsub('abc', '(b', 'x')", "axc 1"},
    {"S.gsub('abc', '(b', '%1')", "ERROR: unfinished capture"},
    {"S.find('a', 'b', 1.5)", "ERROR: bad argument #3 to 'find' (number has no integer "
                              "representation)"},
    {"S.gsub('a', 'b')", "ERROR: bad argument #3 to 'gsub' (string/function/table expected, "
                         "got no value)"},
    {"S.match(nil, 'b')", "ERROR: bad argument #1 to 'match' (string expected, got nil)"},
    {"S.gmatch('a', {})", "ERROR: bad argument #2 to 'gmatch' (string expected, got table)"},
};

/* Runs expr with S bound to impl and joins the results as the hand cases write them. */
static const char *hand_eval(lua_State *L, const char *impl, const char *expr)
{
    char chunk[2048];
    snprintf(chunk, sizeof chunk,
             "local S = %s\n"
             "local r = table.pack(%s)\n"
             "for i = 1, r.n do r[i] = tostring(r[i]) end\n"
             "return table.concat(r, ' ', 1, r.n)",
             impl, expr);
    const char *r = eval(L, chunk);
    /* Errors carry the chunk's position when raised by Lua code; the cases compare messages. */
    const char *pos = strstr(r, "]:");
    static char out[4096];
    if (strncmp(r, "ERROR: [string", 14) == 0 && pos && strchr(pos + 2, ':'))
        snprintf(out, sizeof out, "ERROR: %s", strchr(pos + 2, ':') + 2);
    else
        snprintf(out, sizeof out, "%s", r);
    return out;
}

TEST(pattern_hand_cases)
{
    lua_State *L = new_state();
    raise_after = 0;
    /* `S.find(...)` names the function 'find' in argument errors, whichever table S is. */
    for (size_t i = 0; i < sizeof hand_cases / sizeof hand_cases[0]; i++) {
        const struct hand_case *c = &hand_cases[i];
        const char *theirs = hand_eval(L, "string", c->expr);
        if (strcmp(theirs, c->want) != 0)
            printf("    (the case itself is wrong: Lua says \"%s\")\n", theirs);
        CHECK_STR(theirs, c->want);
        CHECK_STR(hand_eval(L, "ours", c->expr), c->want);
        CHECK_STR(hand_eval(L, "unbudgeted", c->expr), c->want);
    }
    lua_close(L);
}

/* set_raise(n) from Lua: count checks from 0 and raise on the n-th (0: never). */
static int set_raise(lua_State *L)
{
    checks = 0;
    raise_after = (long)luaL_checkinteger(L, 1);
    return 0;
}

/* A check that raises leaves nothing half-done: the same gmatch iterator, called again after an
 * aborted call, goes on as Lua's does; the same gsub call runs again to the same result. */
TEST(pattern_abort_then_go_on)
{
    lua_State *L = new_state();
    lua_register(L, "set_raise", set_raise);
    CHECK_STR(eval(L, "local s = string.rep('ab', 3000) .. 'x' .. string.rep('a', 300) .. 'x'\n"
                      "local theirs = {}\n"
                      "for w in string.gmatch(s, '(a-)x') do theirs[#theirs + 1] = #w end\n"
                      "local it, mine, aborted = ours.gmatch(s, '(a-)x'), {}, 0\n"
                      "set_raise(2)\n"
                      "while true do\n"
                      "  local ok, w = pcall(it)\n"
                      "  if not ok then aborted = aborted + 1 set_raise(0)\n"
                      "  elseif w then mine[#mine + 1] = #w\n"
                      "  else break end\n"
                      "end\n"
                      "theirs, mine = table.concat(theirs, ','), table.concat(mine, ',')\n"
                      "return theirs .. (theirs == mine and ' same ' or ' differ ') .. aborted"),
              "0,300 same 1");
    CHECK_STR(eval(L, "local s = string.rep('a', 200)\n"
                      "set_raise(5)\n"
                      "local ok = pcall(ours.gsub, s, '.-.-b', function() return '.' end)\n"
                      "set_raise(0)\n"
                      "local a, n = ours.gsub(s, '.-.-b', function() return '.' end)\n"
                      "local b, m = string.gsub(s, '.-.-b', function() return '.' end)\n"
                      "return tostring(ok) .. ' ' .. tostring(a == b and n == m)"),
              "false true");
    raise_after = 0;
    lua_close(L);
}

/* gmatch keeps its subject alive and works from another thread than the one that made it. */
TEST(pattern_gmatch_iterator_lifetime)
{
    lua_State *L = new_state();
    CHECK_STR(eval(L, "local it = ours.gmatch(string.rep('ab', 3) .. 'x', '(a)(b)')\n"
                      "collectgarbage()\n"
                      "local co = coroutine.wrap(function() return it() end)\n"
                      "local a, b = co()\n"
                      "local c, d = it()\n"
                      "return a .. b .. c .. d .. select('#', it()) .. select('#', it())"),
              "abab20");
    lua_close(L);
}
