/* permessage-deflate negotiation (RFC 7692): a table of Sec-WebSocket-Extensions offers and the
 * answer each must get. */
#include <string.h>

#include "deflate_negotiate.h"
#include "test.h"

#define ANSWER "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

struct neg_case {
    const char *what;
    const char *headers[3]; /* one value per Sec-WebSocket-Extensions line */
    int bits;               /* server window bits agreed, 0: declined */
    const char *response;   /* NULL: ANSWER (when accepted) or "" (declined) */
};

static const struct neg_case cases[] = {
    {"no header", {NULL}, 0, NULL},
    {"plain offer", {"permessage-deflate"}, 15, NULL},
    {"Chromium's offer", {"permessage-deflate; client_max_window_bits"}, 15, NULL},
    {"Firefox's offer", {"permessage-deflate"}, 15, NULL},
    {"python websockets' offer", {"permessage-deflate; client_max_window_bits"}, 15, NULL},
    {"server_no_context_takeover", {"permessage-deflate; server_no_context_takeover"}, 15, NULL},
    {"client_no_context_takeover", {"permessage-deflate; client_no_context_takeover"}, 15, NULL},
    {"both takeovers", {"permessage-deflate; client_no_context_takeover; "
                        "server_no_context_takeover"}, 15, NULL},
    {"server_max_window_bits=10", {"permessage-deflate; server_max_window_bits=10"}, 10,
     ANSWER "; server_max_window_bits=10"},
    {"server_max_window_bits=15", {"permessage-deflate; server_max_window_bits=15"}, 15,
     ANSWER "; server_max_window_bits=15"},
    {"server_max_window_bits=9", {"permessage-deflate; server_max_window_bits=9"}, 9,
     ANSWER "; server_max_window_bits=9"},
    {"server_max_window_bits quoted", {"permessage-deflate; server_max_window_bits=\"12\""}, 12,
     ANSWER "; server_max_window_bits=12"},
    {"server_max_window_bits quoted with an escape",
     {"permessage-deflate; server_max_window_bits=\"1\\2\""}, 12,
     ANSWER "; server_max_window_bits=12"},
    {"client_max_window_bits with a value", {"permessage-deflate; client_max_window_bits=10"},
     15, NULL},
    {"client_max_window_bits=8", {"permessage-deflate; client_max_window_bits=8"}, 15, NULL},
    {"every parameter", {"permessage-deflate; server_no_context_takeover; "
                         "client_no_context_takeover; server_max_window_bits=11; "
                         "client_max_window_bits=9"}, 11, ANSWER "; server_max_window_bits=11"},
    {"spaces and tabs around", {" \tpermessage-deflate \t; \tserver_max_window_bits = 13 ,"},
     13, ANSWER "; server_max_window_bits=13"},
    {"names in another case", {"PerMessage-Deflate; Client_Max_Window_Bits"}, 15, NULL},
    /* Declined offers. */
    {"another extension only", {"x-webkit-deflate-frame"}, 0, NULL},
    {"server_max_window_bits=8 (zlib cannot)", {"permessage-deflate; server_max_window_bits=8"},
     0, NULL},
    {"server_max_window_bits without a value", {"permessage-deflate; server_max_window_bits"},
     0, NULL},
    {"server_max_window_bits=16", {"permessage-deflate; server_max_window_bits=16"}, 0, NULL},
    {"server_max_window_bits=7", {"permessage-deflate; server_max_window_bits=7"}, 0, NULL},
    {"server_max_window_bits with a leading zero",
     {"permessage-deflate; server_max_window_bits=010"}, 0, NULL},
    {"server_max_window_bits not a number", {"permessage-deflate; server_max_window_bits=ten"},
     0, NULL},
    {"client_max_window_bits=16", {"permessage-deflate; client_max_window_bits=16"}, 0, NULL},
    {"client_max_window_bits empty quoted", {"permessage-deflate; client_max_window_bits=\"\""},
     0, NULL},
    {"server_no_context_takeover with a value",
     {"permessage-deflate; server_no_context_takeover=1"}, 0, NULL},
    {"client_no_context_takeover with a value",
     {"permessage-deflate; client_no_context_takeover=yes"}, 0, NULL},
    {"duplicate parameter", {"permessage-deflate; client_max_window_bits; "
                             "client_max_window_bits"}, 0, NULL},
    {"duplicate parameter, another case", {"permessage-deflate; server_no_context_takeover; "
                                           "SERVER_NO_CONTEXT_TAKEOVER"}, 0, NULL},
    {"unknown parameter", {"permessage-deflate; mystery"}, 0, NULL},
    {"unterminated quoted value", {"permessage-deflate; server_max_window_bits=\"10"}, 0, NULL},
    {"empty parameter", {"permessage-deflate; ; server_no_context_takeover"}, 0, NULL},
    {"garbage after the token", {"permessage-deflate garbage"}, 0, NULL},
    {"too many parameters", {"permessage-deflate; a; b; c; d; e; f; g; h; i"}, 0, NULL},
    {"only commas", {" , ,, "}, 0, NULL},
    /* Several offers: the first one honoured wins. */
    {"fallback within one header", {"permessage-deflate; server_max_window_bits=8, "
                                    "permessage-deflate; server_max_window_bits=10, "
                                    "permessage-deflate"}, 10,
     ANSWER "; server_max_window_bits=10"},
    {"fallback after a bad offer", {"permessage-deflate; mystery, permessage-deflate"}, 15,
     NULL},
    {"first of two good offers", {"permessage-deflate; server_max_window_bits=12, "
                                  "permessage-deflate"}, 12,
     ANSWER "; server_max_window_bits=12"},
    {"after another extension", {"x-webkit-deflate-frame, permessage-deflate; "
                                 "client_max_window_bits"}, 15, NULL},
    {"a comma inside a quoted value does not split",
     {"permessage-deflate; mystery=\"a,permessage-deflate\", permessage-deflate; "
      "server_max_window_bits=14"}, 14, ANSWER "; server_max_window_bits=14"},
    {"after a malformed element", {"x-y=;;, permessage-deflate"}, 15, NULL},
    {"across header lines", {"x-webkit-deflate-frame", "permessage-deflate; "
                             "server_max_window_bits=8", "permessage-deflate; "
                             "server_max_window_bits=9"}, 9, ANSWER "; server_max_window_bits=9"},
    {"first header line wins", {"permessage-deflate", "permessage-deflate; "
                                "server_max_window_bits=9"}, 15, NULL},
    {"every offer declined", {"permessage-deflate; server_max_window_bits=8",
                              "permessage-deflate; x=1"}, 0, NULL},
};

TEST(deflate_negotiation_table)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct neg_case *t = &cases[i];
        struct http_str values[3];
        size_t n = 0;
        while (n < 3 && t->headers[n]) {
            values[n] = (struct http_str){t->headers[n], strlen(t->headers[n])};
            n++;
        }
        struct deflate_agreement a;
        int accepted = deflate_negotiate(values, n, &a);
        const char *want = t->response ? t->response : t->bits ? ANSWER : "";
        if (accepted != (t->bits != 0) || a.server_bits != t->bits ||
            strcmp(a.response, want) != 0) {
            printf("    case '%s': accepted %d bits %d response \"%s\"; expected bits %d "
                   "response \"%s\"\n", t->what, accepted, a.server_bits, a.response, t->bits,
                   want);
            test_failed_checks++;
        }
        if (!accepted && t->headers[0] && strstr(t->headers[0], "permessage-deflate"))
            CHECK(a.declined != NULL);
    }
}

TEST(deflate_negotiation_reads_every_header_line_of_a_request)
{
    struct http_request req;
    memset(&req, 0, sizeof req);
    static const char *const hv[][2] = {
        {"Sec-WebSocket-Extensions", "permessage-deflate; server_max_window_bits=8"},
        {"Host", "x"},
        {"sec-websocket-extensions", "permessage-deflate; server_max_window_bits=11"},
    };
    for (size_t i = 0; i < 3; i++) {
        req.headers[i].name = (struct http_str){hv[i][0], strlen(hv[i][0])};
        req.headers[i].value = (struct http_str){hv[i][1], strlen(hv[i][1])};
    }
    req.nheaders = 3;
    struct deflate_agreement a;
    CHECK_INT(deflate_negotiate_request(&req, &a), 1);
    CHECK_INT(a.server_bits, 11);
}
