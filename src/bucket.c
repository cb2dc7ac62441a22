#include "bucket.h"

void bucket_init(struct bucket *b, double rate, double burst, double now)
{
    b->rate = rate;
    b->burst = burst;
    b->tokens = burst;
    b->at = now;
}

double bucket_level(struct bucket *b, double now)
{
    if (now > b->at) {
        b->tokens += (now - b->at) * b->rate;
        if (b->tokens > b->burst)
            b->tokens = b->burst;
        b->at = now;
    }
    return b->tokens;
}

void bucket_take(struct bucket *b, double n)
{
    b->tokens -= n;
}

double bucket_wait(struct bucket *b, double want, double now)
{
    if (want > b->burst)
        want = b->burst;
    double level = bucket_level(b, now);
    if (level >= want || b->rate <= 0)
        return 0;
    return (want - level) / b->rate;
}
