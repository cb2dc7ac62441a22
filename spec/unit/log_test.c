/* The log: user text cannot forge a line or drive a terminal, and one call site flooding is cut
 * down to a bounded rate with a count of what was left out. */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "test.h"

static double fake_now;
static double fake_clock(void) { return fake_now; }

/* Runs the log into a memory buffer; returns what was written (caller frees). */
static FILE *capture_start(char **buf, size_t *len)
{
    FILE *f = open_memstream(buf, len);
    log_set_output(f, fake_clock);
    log_threshold = LOG_DEBUG;
    return f;
}

static void capture_end(FILE *f)
{
    fclose(f);
    log_set_output(NULL, NULL);
    log_threshold = (enum log_level)(LOG_NOTICE + 1);
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

TEST(log_escapes_user_text)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = capture_start(&buf, &len);
    const char *evil = "bob\n2026-12-01T00:00:00.000Z error forged\r\x1b[31mred\x07 \\ tab\t";
    log_info("conn %d: name %s", 7, evil);
    /* Invalid UTF-8 (a lone continuation byte, an overlong, a truncated sequence, a surrogate)
     * and a C1 control are escaped; well-formed text stays as it is. */
    log_warn("reason %s", "caf\xc3\xa9 \x80 \xc0\xaf \xe2\x82 \xed\xa0\x80 \xc2\x9b \xf0\x9f\x98\x80");
    fflush(f);
    CHECK_INT(count_lines(buf), 2);
    CHECK(strstr(buf, "name bob\\n2026-12-01T00:00:00.000Z error forged\\r\\x1b[31mred\\x07 "
                      "\\\\ tab\\t\n") != NULL);
    CHECK(strstr(buf, "reason caf\xc3\xa9 \\x80 \\xc0\\xaf \\xe2\\x82 \\xed\\xa0\\x80 \\xc2\\x9b "
                      "\xf0\x9f\x98\x80\n") != NULL);
    for (const unsigned char *p = (const unsigned char *)buf; *p; p++)
        CHECK(*p >= 0x20 || *p == '\n');
    capture_end(f);
    free(buf);
}

TEST(log_cuts_long_lines)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = capture_start(&buf, &len);
    char *big = malloc(100000);
    memset(big, '\n', 99999);
    big[99999] = '\0';
    log_error("hook failed: %s", big);
    fflush(f);
    CHECK_INT(count_lines(buf), 1);
    CHECK(len < 2 * LOG_LINE_MAX + 100);
    CHECK(strstr(buf, " [cut]\n") != NULL);
    capture_end(f);
    free(big);
    free(buf);
}

static void hook_failed(int i)
{
    log_error("hook %s failed: %s", "message", i % 2 ? "boom" : "bang");
}

TEST(log_rate_limits_a_flooding_site)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = capture_start(&buf, &len);
    fake_now = 100;
    for (int i = 0; i < 10000; i++)
        hook_failed(i);
    log_info("another site: %d", 1); /* other sites are not affected */
    fflush(f);
    CHECK_INT(count_lines(buf), LOG_BURST + 1);
    /* A second later the site may log again: first the count of what was left out. */
    fake_now = 101;
    hook_failed(0);
    fflush(f);
    CHECK(strstr(buf, "error 9950 similar lines suppressed (\"hook %s failed: %s\")\n") != NULL);
    CHECK_INT(count_lines(buf), LOG_BURST + 3);
    /* Sustained flooding: LOG_RATE lines a second, whatever the rate of calls. */
    for (int s = 0; s < 10; s++) {
        fake_now += 1;
        for (int i = 0; i < 1000; i++)
            hook_failed(i);
    }
    fflush(f);
    int lines = count_lines(buf);
    CHECK(lines > LOG_BURST + 3 + 10 * LOG_RATE / 2);
    CHECK(lines <= LOG_BURST + 3 + LOG_RATE + 10 * (LOG_RATE + 1));
    /* Pending counts come out at exit. */
    log_flush();
    fflush(f);
    CHECK_INT(count_lines(buf), lines + 1);
    CHECK(strstr(buf + len - 70, "similar lines suppressed (\"hook %s failed: %s\")\n") != NULL);
    /* Notices are never held back. */
    for (int i = 0; i < 200; i++)
        log_notice("stopped %d", i);
    fflush(f);
    CHECK_INT(count_lines(buf), lines + 201);
    capture_end(f);
    free(buf);
}
