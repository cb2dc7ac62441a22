/* deflate_negotiate: reading Sec-WebSocket-Extensions offers (RFC 6455 9.1 grammar) and choosing
 * the permessage-deflate configuration (RFC 7692); see deflate_negotiate.h. */
#include "deflate_negotiate.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* An offer has four parameters at most when it is good: more are a duplicate or unknown. */
#define PARAMS_MAX 8

struct param {
    struct http_str name;
    char val[8];  /* the value, unquoted and unescaped (window bits are at most 2 digits) */
    int has_val;
    int val_ok;   /* the value fits val and is a token (RFC 7692 7.1: even when quoted) */
};

struct offer {
    struct http_str name;
    struct param params[PARAMS_MAX];
    int nparams;
    int too_many;
};

static int is_tchar(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static const char *ows(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    return p;
}

static const char *token_end(const char *p, const char *end)
{
    while (p < end && is_tchar(*p))
        p++;
    return p;
}

/* Past a malformed element: to the next comma that is not inside a quoted string. */
static const char *skip_element(const char *p, const char *end)
{
    int quoted = 0;
    for (; p < end; p++) {
        if (quoted) {
            if (*p == '\\' && p + 1 < end)
                p++;
            else if (*p == '"')
                quoted = 0;
        } else if (*p == '"') {
            quoted = 1;
        } else if (*p == ',') {
            break;
        }
    }
    return p;
}

/* Parses one element "token *(OWS ; OWS param [OWS = OWS value])" at p. Returns where it ended
 * (a comma or end); *ok is 0 when it was malformed (skipped). */
static const char *parse_element(const char *p, const char *end, struct offer *o, int *ok)
{
    *ok = 0;
    o->nparams = 0;
    o->too_many = 0;
    const char *t = token_end(p, end);
    if (t == p)
        return skip_element(p, end);
    o->name = (struct http_str){p, (size_t)(t - p)};
    p = ows(t, end);
    while (p < end && *p == ';') {
        p = ows(p + 1, end);
        const char *n = p;
        p = token_end(p, end);
        if (p == n)
            return skip_element(p, end);
        struct param prm = {.name = {n, (size_t)(p - n)}, .val_ok = 1};
        p = ows(p, end);
        if (p < end && *p == '=') {
            p = ows(p + 1, end);
            prm.has_val = 1;
            size_t vl = 0;
            if (p < end && *p == '"') {
                for (p++;;) {
                    if (p >= end)
                        return end; /* unterminated quoted string */
                    char ch = *p++;
                    if (ch == '"')
                        break;
                    if (ch == '\\') {
                        if (p >= end)
                            return end;
                        ch = *p++;
                    }
                    if (!is_tchar(ch) || vl == sizeof prm.val - 1)
                        prm.val_ok = 0;
                    else
                        prm.val[vl++] = ch;
                }
                if (vl == 0)
                    prm.val_ok = 0;
            } else {
                const char *v = p;
                p = token_end(p, end);
                if (p == v)
                    return skip_element(p, end);
                if ((size_t)(p - v) >= sizeof prm.val)
                    prm.val_ok = 0;
                else
                    memcpy(prm.val, v, (size_t)(vl = (size_t)(p - v)));
            }
            prm.val[vl] = '\0';
            p = ows(p, end);
        }
        if (o->nparams == PARAMS_MAX)
            o->too_many = 1;
        else
            o->params[o->nparams++] = prm;
    }
    if (p < end && *p != ',')
        return skip_element(p, end);
    *ok = 1;
    return p;
}

/* A window size: "8" to "15", decimal without leading zeros; -1 otherwise. */
static int window_bits(const struct param *prm)
{
    static const char *const ok[] = {"8", "9", "10", "11", "12", "13", "14", "15"};
    if (!prm->val_ok)
        return -1;
    for (int i = 0; i < 8; i++)
        if (strcmp(prm->val, ok[i]) == 0)
            return 8 + i;
    return -1;
}

enum { SNCT, CNCT, SMWB, CMWB };
static const char *const param_names[] = {"server_no_context_takeover",
                                          "client_no_context_takeover",
                                          "server_max_window_bits", "client_max_window_bits"};

/* Checks a permessage-deflate offer. Returns NULL when it is accepted (*server_bits set: the
 * offered server_max_window_bits, 0 when there was none), else why it is declined. */
static const char *evaluate(const struct offer *o, int *server_bits)
{
    unsigned seen = 0;
    *server_bits = 0;
    if (o->too_many)
        return "too many parameters";
    for (int i = 0; i < o->nparams; i++) {
        const struct param *prm = &o->params[i];
        int k = -1;
        for (int j = 0; j < 4; j++)
            if (http_str_eq(prm->name, param_names[j]))
                k = j;
        if (k < 0)
            return "unknown parameter";
        if (seen & (1u << k))
            return "a parameter is given twice";
        seen |= 1u << k;
        switch (k) {
        case SNCT:
        case CNCT:
            if (prm->has_val)
                return "a no_context_takeover parameter has a value";
            break;
        case SMWB:
            if (!prm->has_val || window_bits(prm) < 0)
                return "server_max_window_bits needs a value from 8 to 15";
            *server_bits = window_bits(prm);
            if (*server_bits == 8)
                return "server_max_window_bits=8 is not supported (zlib's raw deflate has no "
                       "256-byte window)";
            break;
        case CMWB:
            if (prm->has_val && window_bits(prm) < 0)
                return "client_max_window_bits must be from 8 to 15";
            break;
        }
    }
    return NULL;
}

int deflate_negotiate(const struct http_str *values, size_t n, struct deflate_agreement *a)
{
    memset(a, 0, sizeof *a);
    for (size_t i = 0; i < n; i++) {
        const char *p = values[i].p, *end = values[i].p + values[i].len;
        for (;;) {
            while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
                p++;
            if (p >= end)
                break;
            struct offer o;
            int ok;
            p = parse_element(p, end, &o, &ok);
            if (!ok) {
                a->declined = "malformed offer";
                continue;
            }
            if (!http_str_eq(o.name, "permessage-deflate"))
                continue;
            int bits;
            const char *why = evaluate(&o, &bits);
            if (why) {
                a->declined = why;
                continue;
            }
            a->server_bits = bits ? bits : 15;
            int len = snprintf(a->response, sizeof a->response,
                               "permessage-deflate; server_no_context_takeover; "
                               "client_no_context_takeover");
            if (bits)
                snprintf(a->response + len, sizeof a->response - (size_t)len,
                         "; server_max_window_bits=%d", bits);
            a->declined = NULL;
            return 1;
        }
    }
    return 0;
}

int deflate_negotiate_request(const struct http_request *req, struct deflate_agreement *a)
{
    struct http_str values[HTTP_MAX_HEADERS];
    size_t n = 0;
    for (size_t i = 0; i < req->nheaders; i++)
        if (http_str_eq(req->headers[i].name, "Sec-WebSocket-Extensions"))
            values[n++] = req->headers[i].value;
    return deflate_negotiate(values, n, a);
}
