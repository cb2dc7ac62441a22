#include "test.h"
#include "utf8.h"

TEST(utf8_validation)
{
    static const struct { const char *s; size_t len; int ok; } cases[] = {
        {"", 0, 1},
        {"plain ascii", 11, 1},
        {"\xc3\xa9t\xc3\xa9", 6, 1},             /* été */
        {"\xe4\xbd\xa0\xe5\xa5\xbd", 6, 1},      /* 你好 */
        {"\xf0\x9f\x98\x80", 4, 1},              /* U+1F600 */
        {"\xf4\x8f\xbf\xbf", 4, 1},              /* U+10FFFF */
        {"\x00", 1, 1},                          /* NUL is valid UTF-8 */
        {"\x80", 1, 0},                          /* lone continuation */
        {"\xc3", 1, 0},                          /* truncated */
        {"\xc0\xaf", 2, 0},                      /* overlong '/' */
        {"\xe0\x80\xaf", 3, 0},                  /* overlong, 3 bytes */
        {"\xed\xa0\x80", 3, 0},                  /* surrogate U+D800 */
        {"\xf4\x90\x80\x80", 4, 0},              /* above U+10FFFF */
        {"\xf5\x80\x80\x80", 4, 0},              /* invalid lead byte */
        {"\xff", 1, 0},
        {"ok\xe2\x82", 5, 0},                    /* truncated at the end */
        {"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", 11, 1}, /* κόσμε */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        if (utf8_valid(cases[i].s, cases[i].len) != cases[i].ok) {
            printf("    case %zu: expected %d\n", i, cases[i].ok);
            test_failed_checks++;
        }
    }
}
