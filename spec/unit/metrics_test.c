/* metrics: histogram buckets, label escaping, and a render whose families a collector extends. */
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "test.h"

TEST(metrics_histogram_buckets_are_cumulative)
{
    struct metrics_hist h = {0};
    metrics_observe(&h, 0.000001); /* first bucket */
    metrics_observe(&h, 0.001);    /* le 0.001 exactly */
    metrics_observe(&h, 5.0);      /* +Inf only */
    struct metrics_out o = {0};
    metrics_histogram(&o, "t_seconds", "hook=\"x\"", &h);
    CHECK(!o.failed);
    CHECK(strstr(o.buf, "t_seconds_bucket{hook=\"x\",le=\"1e-05\"} 1\n") != NULL);
    CHECK(strstr(o.buf, "t_seconds_bucket{hook=\"x\",le=\"0.0005\"} 1\n") != NULL);
    CHECK(strstr(o.buf, "t_seconds_bucket{hook=\"x\",le=\"0.001\"} 2\n") != NULL);
    CHECK(strstr(o.buf, "t_seconds_bucket{hook=\"x\",le=\"1\"} 2\n") != NULL);
    CHECK(strstr(o.buf, "t_seconds_bucket{hook=\"x\",le=\"+Inf\"} 3\n") != NULL);
    CHECK(strstr(o.buf, "t_seconds_count{hook=\"x\"} 3\n") != NULL);
    free(o.buf);
}

TEST(metrics_label_values_are_escaped)
{
    char out[64];
    metrics_label(out, sizeof out, "peer", "a\"b\\c\nd");
    CHECK(strcmp(out, "peer=\"a\\\"b\\\\c\\nd\"") == 0);
    metrics_label(out, 12, "k", "0123456789abcdef"); /* cut, still closed */
    CHECK(out[strlen(out) - 1] == '"');
}

static void extra_collect(struct metrics_out *o)
{
    metrics_counter(o, "confab_test_extra_total", "A teammate's counter", 42);
}

TEST(metrics_render_has_core_families_and_collectors)
{
    CHECK(metrics_add_collector(extra_collect) == 0);
    CHECK(metrics_add_collector(extra_collect) == 0); /* once only */
    uint64_t before = metrics.messages_in;
    METRIC_INC(messages_in);
    struct metrics_out o = {0};
    CHECK(metrics_render(&o) == 0);
    char want[96];
    snprintf(want, sizeof want, "\nconfab_messages_received_total %llu\n",
             (unsigned long long)(before + 1));
    CHECK(strstr(o.buf, want) != NULL);
    CHECK(strstr(o.buf, "# TYPE confab_hook_duration_seconds histogram\n") != NULL);
    const char *x = strstr(o.buf, "confab_test_extra_total 42\n");
    CHECK(x != NULL);
    CHECK(x && strstr(x + 1, "confab_test_extra_total 42\n") == NULL);
    CHECK(o.len == strlen(o.buf));
    free(o.buf);
}

TEST(metrics_hook_kinds)
{
    CHECK(metrics_hook_kind("message") == HOOK_MESSAGE);
    CHECK(metrics_hook_kind("timer") == HOOK_TIMER);
    CHECK(metrics_hook_kind("script load") == HOOK_LOAD);
    CHECK(metrics_hook_kind("whatever") == HOOK_OTHER);
}
