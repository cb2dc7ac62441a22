/* bucket: a token bucket, the per-connection inbound rate limits (--rate-msgs, --rate-bytes).
 * It holds up to `burst` tokens and gains `rate` a second; a peer spends one per message or
 * byte read. The level may go below zero (a message counted when it ends, after its budget was
 * given out): the debt is paid back by waiting longer. Times are seconds (ev_now). */
#ifndef CONFAB_BUCKET_H
#define CONFAB_BUCKET_H

struct bucket {
    double rate;   /* tokens gained per second; 0: no limit */
    double burst;  /* most tokens held */
    double tokens; /* level at `at` */
    double at;     /* when tokens was last brought up to date */
};

/* A full bucket at time now. */
void bucket_init(struct bucket *b, double rate, double burst, double now);

/* The level at time now (refilled for the time since the last call, up to burst). */
double bucket_level(struct bucket *b, double now);

/* Spends n tokens (the level may go below zero). */
void bucket_take(struct bucket *b, double n);

/* Seconds from now until the level reaches want (0 when it is there; want is capped at burst). */
double bucket_wait(struct bucket *b, double want, double now);

#endif
