/* redis_observe: the Redis links in /metrics (state and counters per shard) and in /readyz (every
 * shard's command and subscriber links up). Registered when --redis is given. */
#ifndef CONFAB_REDIS_OBSERVE_H
#define CONFAB_REDIS_OBSERVE_H

/* Adds the metrics collector and the readiness check (after redis_init). */
void redis_observe_init(void);

#endif
