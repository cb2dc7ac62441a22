/* redis_observe: Redis link state for /metrics and /readyz (see redis_observe.h). */
#include "redis_observe.h"

#include <stdio.h>

#include "admin.h"
#include "metrics.h"
#include "redis_link.h"

/* One family with a sample per shard; field is read from each shard's stats by get. */
static void per_shard(struct metrics_out *o, const char *name, const char *type, const char *help,
                      double (*get)(const struct redis_link_stats *))
{
    metrics_header(o, name, type, help);
    for (unsigned i = 0; i < redis_shards(); i++) {
        struct redis_link_stats st;
        redis_link_stats(i, &st);
        char labels[32];
        snprintf(labels, sizeof labels, "shard=\"%u\"", i);
        metrics_sample(o, name, labels, get(&st));
    }
}

#define GETTER(field)                                                       \
    static double get_##field(const struct redis_link_stats *s)             \
    {                                                                       \
        return (double)s->field;                                            \
    }
GETTER(up)
GETTER(sub_up)
GETTER(connects)
GETTER(sub_connects)
GETTER(calls)
GETTER(timeouts)
GETTER(errors)
GETTER(refused)
GETTER(noscript)
GETTER(repairs)
GETTER(repaired_messages)
GETTER(posts)
GETTER(post_calls)

static void collect(struct metrics_out *o)
{
    metrics_gauge(o, "confab_redis_shards", "Redis servers rooms are spread over (--redis)",
                  redis_shards());
    per_shard(o, "confab_redis_link_up", "gauge", "1 when the command link is ready", get_up);
    per_shard(o, "confab_redis_subscriber_up", "gauge", "1 when the subscriber link is subscribed",
              get_sub_up);
    per_shard(o, "confab_redis_connects_total", "counter",
              "Successful (re)connects of the command link", get_connects);
    per_shard(o, "confab_redis_subscriber_connects_total", "counter",
              "Successful (re)connects of the subscriber link", get_sub_connects);
    per_shard(o, "confab_redis_calls_total", "counter", "Commands sent", get_calls);
    per_shard(o, "confab_redis_timeouts_total", "counter",
              "Commands past --redis-timeout (the link is then reconnected)", get_timeouts);
    per_shard(o, "confab_redis_errors_total", "counter", "Error replies", get_errors);
    per_shard(o, "confab_redis_refused_total", "counter",
              "Commands refused: shard down or too many waiting", get_refused);
    per_shard(o, "confab_redis_noscript_total", "counter",
              "EVALSHA answered NOSCRIPT (sent again as EVAL)", get_noscript);
    per_shard(o, "confab_redis_repairs_total", "counter",
              "Gaps in a room's ordered delivery repaired from the stream", get_repairs);
    per_shard(o, "confab_redis_repaired_messages_total", "counter",
              "Messages delivered by those repairs", get_repaired_messages);
    per_shard(o, "confab_redis_posts_total", "counter", "Room messages posted (confab.post)",
              get_posts);
    per_shard(o, "confab_redis_post_calls_total", "counter",
              "Publish script calls carrying them (a room's queued posts go in one)",
              get_post_calls);
}

static int ready(char *why, size_t len)
{
    for (unsigned i = 0; i < redis_shards(); i++) {
        struct redis_link_stats st;
        redis_link_stats(i, &st);
        if (!st.up || !st.sub_up) {
            snprintf(why, len, "shard %u: %s down", i, !st.up ? "command link" : "subscriber link");
            return 0;
        }
    }
    return 1;
}

void redis_observe_init(void)
{
    metrics_add_collector(collect);
    admin_add_check("redis", ready);
}
