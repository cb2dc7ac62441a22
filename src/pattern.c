/* pattern: Lua 5.4's pattern matching (find, match, gmatch, gsub) with a step budget; see
 * pattern.h for the contract and what a step is.
 *
 * The matcher is the backtracking algorithm the Lua manual describes, item by item: a single
 * character class with an optional `*`, `+`, `-` or `?`, a capture, a back-reference, %b or %f.
 * Where Lua's behaviour depends on how the search is done (the order alternatives are tried,
 * which items nest a level of recursion and so count toward the depth limit of 200, which
 * malformed pattern is reported when a search never reaches it) this one does the same, so that
 * results and errors agree; spec/unit/pattern_test.c compares both on generated cases.
 *
 * Lua strings always have a '\0' after their last byte (lua.h), and the matcher relies on it the
 * way the manual's semantics do: at the end of the subject %f sees '\0', and a pattern item read
 * at the end of the pattern sees '\0', which is no suffix and no special character. */
#include "pattern.h"

#include <ctype.h>
#include <lauxlib.h>
#include <stddef.h>
#include <string.h>

#define MAX_CAPTURES 32 /* LUA_MAXCAPTURES */
#define MAX_DEPTH 200   /* nested items before "pattern too complex" (Lua's MAXCCALLS) */
#define CAP_OPEN (-1)   /* capture length while the capture is still open */
#define CAP_POSITION (-2)
#define SCAN_BYTES 16 /* bytes compared, scanned or copied that make one step */
#define CHUNK_BYTES (PATTERN_CHECK_STEPS * SCAN_BYTES) /* long compares and searches go by this */

/* The upvalue the four functions share. */
struct pattern_config {
    pattern_check_fn check;
};

struct matcher {
    const char *src, *src_end; /* the subject */
    const char *pat, *pat_end; /* the pattern, without a leading '^' anchor */
    lua_State *L;
    pattern_check_fn check;
    int budget; /* steps left before check is called */
    int depth;  /* nested items left before "pattern too complex" */
    int ncap;   /* captures opened so far */
    struct {
        const char *at;
        ptrdiff_t len; /* or CAP_OPEN, CAP_POSITION */
    } cap[MAX_CAPTURES];
};

static const char *match_here(struct matcher *m, const char *s, const char *p);

/* ---- the budget ---- */

static void budget_spent(struct matcher *m)
{
    m->budget = PATTERN_CHECK_STEPS;
    if (m->check)
        m->check(m->L);
}

/* Counts n steps; calls check first when they go over the budget. */
static inline void charge(struct matcher *m, size_t n)
{
    if (n >= (size_t)m->budget)
        budget_spent(m);
    else
        m->budget -= (int)n;
}

static void matcher_init(struct matcher *m, lua_State *L, pattern_check_fn check, const char *s,
                         size_t ls, const char *p, size_t lp)
{
    m->src = s;
    m->src_end = s + ls;
    m->pat = p;
    m->pat_end = p + lp;
    m->L = L;
    m->check = check;
    m->budget = PATTERN_CHECK_STEPS;
}

/* Forgets the captures of a previous attempt. */
static void matcher_restart(struct matcher *m)
{
    m->ncap = 0;
    m->depth = MAX_DEPTH;
}

/* ---- single characters ---- */

/* Whether c is in the class of %x where x is cl (%a, %D, ...; any other x stands for itself). */
static int class_has(int c, int cl)
{
    int in;
    switch (tolower(cl)) {
    case 'a': in = isalpha(c); break;
    case 'c': in = iscntrl(c); break;
    case 'd': in = isdigit(c); break;
    case 'g': in = isgraph(c); break;
    case 'l': in = islower(c); break;
    case 'p': in = ispunct(c); break;
    case 's': in = isspace(c); break;
    case 'u': in = isupper(c); break;
    case 'w': in = isalnum(c); break;
    case 'x': in = isxdigit(c); break;
    case 'z': in = c == 0; break; /* deprecated in the manual, still accepted by Lua 5.4 */
    default: return cl == c;
    }
    return isupper(cl) ? !in : in != 0;
}

/* Whether c is in the set whose '[' is at p and whose closing ']' is at close. The first member
 * may be ']' itself; "x-y" is a range unless the '-' is last; "%x" is a class or an escape. */
static int set_has(int c, const char *p, const char *close)
{
    int member = 1;
    p++;
    if (*p == '^') {
        member = 0;
        p++;
    }
    while (p < close) {
        if (*p == '%') {
            if (class_has(c, (unsigned char)p[1]))
                return member;
            p += 2;
        } else if (p[1] == '-' && p + 2 < close) {
            if ((unsigned char)p[0] <= c && c <= (unsigned char)p[2])
                return member;
            p += 3;
        } else {
            if ((unsigned char)*p == c)
                return member;
            p++;
        }
    }
    return !member;
}

/* The end of the single-character item at p (where its suffix would be). Raises on a pattern
 * that ends with '%' or a set without its ']'. */
static const char *item_end(struct matcher *m, const char *p)
{
    if (*p == '%') {
        if (p + 1 == m->pat_end)
            luaL_error(m->L, "malformed pattern (ends with '%%')");
        return p + 2;
    }
    if (*p != '[')
        return p + 1;
    const char *q = p + 1;
    if (*q == '^')
        q++;
    do { /* the first member is taken before looking for ']', so "[]]" is a set of ']' */
        if (q == m->pat_end)
            luaL_error(m->L, "malformed pattern (missing ']')");
        q += (*q == '%' && q + 1 < m->pat_end) ? 2 : 1;
    } while (*q != ']');
    charge(m, (size_t)(q - p) / SCAN_BYTES);
    return q + 1;
}

/* Whether the subject character at s matches the item p..ep (false at the end of the subject). */
static inline int single(struct matcher *m, const char *s, const char *p, const char *ep)
{
    charge(m, 1);
    if (s >= m->src_end)
        return 0;
    int c = (unsigned char)*s;
    switch (*p) {
    case '.':
        return 1;
    case '%':
        return class_has(c, (unsigned char)p[1]);
    case '[':
        charge(m, (size_t)(ep - p) / SCAN_BYTES);
        return set_has(c, p, ep - 1);
    default:
        return (unsigned char)*p == c;
    }
}

/* ---- items that are not single characters ---- */

/* %bxy at p (pointing at x): the end of a balanced x...y run starting at s, or NULL. */
static const char *balanced(struct matcher *m, const char *s, const char *p)
{
    if (p >= m->pat_end - 1)
        luaL_error(m->L, "malformed pattern (missing arguments to '%%b')");
    if (s >= m->src_end || *s != p[0])
        return NULL;
    char open = p[0], close = p[1];
    int level = 1;
    while (++s < m->src_end) {
        charge(m, 1);
        if (*s == close) {
            if (--level == 0)
                return s + 1;
        } else if (*s == open)
            level++;
    }
    return NULL;
}

/* A back-reference %digit at s: the end of the repeated text, or NULL. */
static const char *backref(struct matcher *m, const char *s, int digit)
{
    int i = digit - '1';
    if (i < 0 || i >= m->ncap || m->cap[i].len == CAP_OPEN)
        luaL_error(m->L, "invalid capture index %%%d", i + 1);
    if (m->cap[i].len == CAP_POSITION) /* a position is no text: never matches */
        return NULL;
    size_t len = (size_t)m->cap[i].len;
    if ((size_t)(m->src_end - s) < len)
        return NULL;
    /* Compared a chunk at a time so that a long capture does not delay the check. */
    const char *a = m->cap[i].at, *b = s;
    size_t left = len;
    while (left > CHUNK_BYTES) {
        charge(m, CHUNK_BYTES / SCAN_BYTES);
        if (memcmp(a, b, CHUNK_BYTES) != 0)
            return NULL;
        a += CHUNK_BYTES;
        b += CHUNK_BYTES;
        left -= CHUNK_BYTES;
    }
    charge(m, left / SCAN_BYTES);
    return memcmp(a, b, left) == 0 ? s + len : NULL;
}

/* '(' (or "()" with what == CAP_POSITION): opens a capture at s and matches the rest at p. */
static const char *open_capture(struct matcher *m, const char *s, const char *p, ptrdiff_t what)
{
    if (m->ncap >= MAX_CAPTURES)
        luaL_error(m->L, "too many captures");
    m->cap[m->ncap].at = s;
    m->cap[m->ncap].len = what;
    m->ncap++;
    const char *end = match_here(m, s, p);
    if (!end)
        m->ncap--;
    return end;
}

/* ')': closes the innermost open capture at s and matches the rest at p. */
static const char *close_capture(struct matcher *m, const char *s, const char *p)
{
    int i = m->ncap - 1;
    while (i >= 0 && m->cap[i].len != CAP_OPEN)
        i--;
    if (i < 0)
        luaL_error(m->L, "invalid pattern capture");
    m->cap[i].len = s - m->cap[i].at;
    const char *end = match_here(m, s, p);
    if (!end)
        m->cap[i].len = CAP_OPEN;
    return end;
}

/* Item p..ep followed by '*' (or '+' after its first match): as many repetitions as match at s,
 * then fewer until the rest of the pattern matches. */
static const char *greedy(struct matcher *m, const char *s, const char *p, const char *ep)
{
    ptrdiff_t n = 0;
    while (single(m, s + n, p, ep))
        n++;
    for (; n >= 0; n--) {
        const char *end = match_here(m, s + n, ep + 1);
        if (end)
            return end;
    }
    return NULL;
}

/* Item p..ep followed by '-': as few repetitions as let the rest of the pattern match. */
static const char *lazy(struct matcher *m, const char *s, const char *p, const char *ep)
{
    for (;;) {
        const char *end = match_here(m, s, ep + 1);
        if (end)
            return end;
        if (!single(m, s, p, ep))
            return NULL;
        s++;
    }
}

/* ---- the matcher ---- */

/* Matches the pattern from p on against the subject from s on: the end of the match or NULL.
 * Items that can only go one way continue in the loop; alternatives recurse, and each
 * recursion counts toward the depth limit. */
static const char *match_here(struct matcher *m, const char *s, const char *p)
{
    if (m->depth-- == 0)
        luaL_error(m->L, "pattern too complex");
    while (p != m->pat_end) {
        charge(m, 1);
        if (*p == '(') {
            if (p[1] == ')')
                s = open_capture(m, s, p + 2, CAP_POSITION);
            else
                s = open_capture(m, s, p + 1, CAP_OPEN);
            break;
        }
        if (*p == ')') {
            s = close_capture(m, s, p + 1);
            break;
        }
        if (*p == '$' && p + 1 == m->pat_end) {
            if (s != m->src_end)
                s = NULL;
            break;
        }
        if (*p == '%' && p[1] == 'b') {
            s = balanced(m, s, p + 2);
            if (!s)
                break;
            p += 4;
            continue;
        }
        if (*p == '%' && p[1] == 'f') {
            p += 2;
            if (*p != '[')
                luaL_error(m->L, "missing '[' after '%%f' in pattern");
            const char *ep = item_end(m, p);
            int before = s == m->src ? '\0' : (unsigned char)s[-1];
            charge(m, (size_t)(ep - p) / SCAN_BYTES);
            if (set_has(before, p, ep - 1) || !set_has((unsigned char)*s, p, ep - 1)) {
                s = NULL;
                break;
            }
            p = ep;
            continue;
        }
        if (*p == '%' && isdigit((unsigned char)p[1])) {
            s = backref(m, s, (unsigned char)p[1]);
            if (!s)
                break;
            p += 2;
            continue;
        }
        /* A single-character item with an optional suffix. */
        const char *ep = item_end(m, p);
        char suffix = *ep;
        if (!single(m, s, p, ep)) {
            if (suffix == '*' || suffix == '?' || suffix == '-') {
                p = ep + 1; /* zero repetitions are fine */
                continue;
            }
            s = NULL;
            break;
        }
        if (suffix == '?') {
            const char *end = match_here(m, s + 1, ep + 1);
            if (end) {
                s = end;
                break;
            }
            p = ep + 1;
            continue;
        }
        if (suffix == '*' || suffix == '+') {
            s = greedy(m, suffix == '+' ? s + 1 : s, p, ep);
            break;
        }
        if (suffix == '-') {
            s = lazy(m, s, p, ep);
            break;
        }
        s++;
        p = ep;
    }
    m->depth++;
    return s;
}

/* ---- captures as values ---- */

/* Capture i of a match s..e (capture 0 is the whole match when there are none): its text as
 * *at and the length, or, for a position capture, pushes the position and returns
 * CAP_POSITION. */
static ptrdiff_t capture_get(struct matcher *m, int i, const char *s, const char *e,
                             const char **at)
{
    if (i >= m->ncap) {
        if (i != 0)
            luaL_error(m->L, "invalid capture index %%%d", i + 1);
        *at = s;
        return e - s;
    }
    ptrdiff_t len = m->cap[i].len;
    *at = m->cap[i].at;
    if (len == CAP_OPEN)
        luaL_error(m->L, "unfinished capture");
    if (len == CAP_POSITION)
        lua_pushinteger(m->L, (m->cap[i].at - m->src) + 1);
    return len;
}

static void capture_push(struct matcher *m, int i, const char *s, const char *e)
{
    const char *at;
    ptrdiff_t len = capture_get(m, i, s, e, &at);
    if (len != CAP_POSITION) {
        charge(m, (size_t)len / SCAN_BYTES);
        lua_pushlstring(m->L, at, (size_t)len);
    }
}

/* Pushes every capture (the whole match s..e if there are none and s is not NULL). */
static int captures_push(struct matcher *m, const char *s, const char *e)
{
    int n = (m->ncap == 0 && s) ? 1 : m->ncap;
    luaL_checkstack(m->L, n, "too many captures");
    for (int i = 0; i < n; i++)
        capture_push(m, i, s, e);
    return n;
}

/* ---- find and match ---- */

static pattern_check_fn config_check(lua_State *L)
{
    return ((struct pattern_config *)lua_touserdata(L, lua_upvalueindex(1)))->check;
}

/* A 1-based, possibly negative init argument as a 0-based offset (may be past the end). */
static size_t start_offset(lua_Integer pos, size_t len)
{
    if (pos > 0)
        return (size_t)pos - 1;
    if (pos == 0 || pos < -(lua_Integer)len)
        return 0;
    return len - (size_t)(-pos);
}

/* The first occurrence of p (lp bytes) in s (ls bytes), or NULL: memchr for the first byte,
 * then memcmp for the rest. Each memchr is limited to CHUNK_BYTES and charged for what it
 * scanned, each candidate for the bytes it may compare. */
static const char *plain_find(struct matcher *m, const char *s, size_t ls, const char *p,
                              size_t lp)
{
    if (lp == 0)
        return s;
    if (lp > ls)
        return NULL;
    size_t first = 0, starts = ls - lp + 1; /* candidate starts left: first .. starts-1 */
    while (first < starts) {
        size_t window = starts - first < CHUNK_BYTES ? starts - first : CHUNK_BYTES;
        const char *hit = memchr(s + first, p[0], window);
        if (!hit) {
            charge(m, window / SCAN_BYTES + 1);
            first += window;
            continue;
        }
        charge(m, (size_t)(hit - (s + first)) / SCAN_BYTES + 1 + lp / SCAN_BYTES);
        if (memcmp(hit + 1, p + 1, lp - 1) == 0)
            return hit;
        first = (size_t)(hit - s) + 1;
    }
    return NULL;
}

/* Whether the pattern has a character that makes it more than a plain string. */
static int has_magic(const char *p, size_t lp)
{
    static const char magic[] = "^$*+?.([%-";
    for (size_t i = 0; i < lp; i++)
        if (memchr(magic, p[i], sizeof magic - 1))
            return 1;
    return 0;
}

static int find_or_match(lua_State *L, int find)
{
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = start_offset(luaL_optinteger(L, 3, 1), ls);
    if (init > ls) {
        luaL_pushfail(L);
        return 1;
    }
    struct matcher m;
    if (find && (lua_toboolean(L, 4) || !has_magic(p, lp))) {
        matcher_init(&m, L, config_check(L), s, ls, p, lp);
        const char *at = plain_find(&m, s + init, ls - init, p, lp);
        if (at) {
            lua_pushinteger(L, (at - s) + 1);
            lua_pushinteger(L, (lua_Integer)((at - s) + lp));
            return 2;
        }
        luaL_pushfail(L);
        return 1;
    }
    int anchored = *p == '^';
    if (anchored) {
        p++;
        lp--;
    }
    matcher_init(&m, L, config_check(L), s, ls, p, lp);
    for (const char *at = s + init;; at++) {
        matcher_restart(&m);
        const char *e = match_here(&m, at, p);
        if (e) {
            if (!find)
                return captures_push(&m, at, e);
            lua_pushinteger(L, (at - s) + 1);
            lua_pushinteger(L, e - s);
            return captures_push(&m, NULL, NULL) + 2;
        }
        if (anchored || at >= m.src_end)
            break;
    }
    luaL_pushfail(L);
    return 1;
}

static int pattern_find(lua_State *L)
{
    return find_or_match(L, 1);
}

static int pattern_match(lua_State *L)
{
    return find_or_match(L, 0);
}

/* ---- gmatch ---- */

struct gmatch_state {
    struct matcher m;
    size_t next;             /* offset where the next search starts (may be past the end) */
    const char *last_end;    /* end of the last match: an empty match there is skipped */
};

/* The iterator; upvalues: subject, pattern (kept alive), state. */
static int gmatch_next(lua_State *L)
{
    struct gmatch_state *g = lua_touserdata(L, lua_upvalueindex(3));
    struct matcher *m = &g->m;
    m->L = L;
    for (const char *at = m->src + g->next; at <= m->src_end; at++) {
        matcher_restart(m);
        const char *e = match_here(m, at, m->pat);
        if (e && e != g->last_end) {
            g->next = (size_t)(e - m->src);
            g->last_end = e;
            return captures_push(m, at, e);
        }
    }
    return 0;
}

/* A '^' in a gmatch pattern is an ordinary character: an anchor would stop the iteration. */
static int pattern_gmatch(lua_State *L)
{
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = start_offset(luaL_optinteger(L, 3, 1), ls);
    pattern_check_fn check = config_check(L);
    lua_settop(L, 2);
    struct gmatch_state *g = lua_newuserdatauv(L, sizeof *g, 0);
    matcher_init(&g->m, L, check, s, ls, p, lp);
    g->next = init > ls ? ls + 1 : init;
    g->last_end = NULL;
    lua_pushcclosure(L, gmatch_next, 3);
    return 1;
}

/* ---- gsub ---- */

/* Appends the replacement string (argument 3) for the match s..e: %0-%9 and %% expanded. */
static void add_template(struct matcher *m, luaL_Buffer *b, const char *s, const char *e)
{
    size_t len;
    const char *t = lua_tolstring(m->L, 3, &len);
    const char *end = t + len;
    charge(m, len / SCAN_BYTES);
    const char *esc;
    while ((esc = memchr(t, '%', (size_t)(end - t))) != NULL) {
        luaL_addlstring(b, t, (size_t)(esc - t));
        char d = esc[1]; /* '\0' when the '%' is last */
        if (d == '%')
            luaL_addchar(b, '%');
        else if (isdigit((unsigned char)d)) { /* %0 is the whole match, %1-%9 captures */
            const char *at = s;
            ptrdiff_t n = d == '0' ? e - s : capture_get(m, d - '1', s, e, &at);
            if (n == CAP_POSITION)
                luaL_addvalue(b);
            else {
                charge(m, (size_t)n / SCAN_BYTES);
                luaL_addlstring(b, at, (size_t)n);
            }
        } else
            luaL_error(m->L, "invalid use of '%c' in replacement string", '%');
        t = esc + 2;
    }
    luaL_addlstring(b, t, (size_t)(end - t));
}

/* Appends the replacement for the match s..e given by argument 3 of type rtype; returns whether
 * it changed anything (a false or nil from a table or function keeps the match). */
static int add_replacement(struct matcher *m, luaL_Buffer *b, const char *s, const char *e,
                           int rtype)
{
    lua_State *L = m->L;
    if (rtype == LUA_TFUNCTION) {
        lua_pushvalue(L, 3);
        int n = captures_push(m, s, e);
        lua_call(L, n, 1);
    } else if (rtype == LUA_TTABLE) {
        capture_push(m, 0, s, e);
        lua_gettable(L, 3);
    } else {
        add_template(m, b, s, e);
        return 1;
    }
    if (!lua_toboolean(L, -1)) {
        lua_pop(L, 1);
        charge(m, (size_t)(e - s) / SCAN_BYTES);
        luaL_addlstring(b, s, (size_t)(e - s));
        return 0;
    }
    if (!lua_isstring(L, -1))
        return luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
    luaL_addvalue(b);
    return 1;
}

static int pattern_gsub(lua_State *L)
{
    size_t ls, lp;
    const char *src = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    int rtype = lua_type(L, 3);
    lua_Integer max_n = luaL_optinteger(L, 4, (lua_Integer)ls + 1);
    luaL_argexpected(L, rtype == LUA_TNUMBER || rtype == LUA_TSTRING ||
                            rtype == LUA_TFUNCTION || rtype == LUA_TTABLE,
                     3, "string/function/table");
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    int anchored = *p == '^';
    if (anchored) {
        p++;
        lp--;
    }
    struct matcher m;
    matcher_init(&m, L, config_check(L), src, ls, p, lp);
    const char *at = src, *last_end = NULL;
    lua_Integer n = 0;
    int changed = 0;
    while (n < max_n) {
        matcher_restart(&m);
        const char *e = match_here(&m, at, p);
        if (e && e != last_end) { /* an empty match right after the last match is skipped */
            n++;
            changed |= add_replacement(&m, &b, at, e, rtype);
            at = last_end = e;
        } else if (at < m.src_end)
            luaL_addchar(&b, *at++);
        else
            break;
        if (anchored)
            break;
    }
    if (changed) {
        luaL_addlstring(&b, at, (size_t)(m.src_end - at));
        luaL_pushresult(&b);
    } else
        lua_pushvalue(L, 1);
    lua_pushinteger(L, n);
    return 2;
}

void pattern_install(lua_State *L, int table_index, pattern_check_fn check)
{
    static const luaL_Reg fns[] = {{"find", pattern_find},
                                   {"match", pattern_match},
                                   {"gmatch", pattern_gmatch},
                                   {"gsub", pattern_gsub},
                                   {NULL, NULL}};
    table_index = lua_absindex(L, table_index);
    lua_pushvalue(L, table_index);
    struct pattern_config *config = lua_newuserdatauv(L, sizeof *config, 0);
    config->check = check;
    luaL_setfuncs(L, fns, 1);
    lua_pop(L, 1);
}
