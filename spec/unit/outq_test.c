/* The outbound queue alone: the bound (a big frame into an empty queue, the limit on what waits
 * behind, bookkeeping counted per frame) and the one pending pong. */
#include <stdlib.h>
#include <string.h>

#include "outq.h"
#include "test.h"

TEST(outq_empty_queue_takes_a_frame_as_large_as_a_message)
{
    outq_set_frame_max(16 << 20);
    const size_t limit = 1 << 20;
    struct outq q = {0};
    /* A 2 MB frame under a 1 MB limit goes into an empty queue; beyond the largest message,
     * never. */
    CHECK_INT(outq_admit(&q, 2 << 20, limit), OUTQ_FITS);
    CHECK_INT(outq_admit(&q, (16 << 20) + 1, limit), 0);
    struct frame *big = frame_new(2 << 20), *big2 = frame_new(2 << 20), *small = frame_new(100);
    CHECK_INT(outq_push(&q, big), 0);
    /* Behind the first frame: small ones count against the limit; one more big frame may wait
     * outside it, a second may not. */
    CHECK_INT(outq_admit(&q, 100, limit), OUTQ_FITS);
    CHECK_INT(outq_admit(&q, 2 << 20, limit), OUTQ_BIG);
    CHECK_INT(outq_push(&q, big2), 0);
    outq_mark_big(&q);
    CHECK_INT(outq_admit(&q, 2 << 20, limit), 0);
    CHECK_INT(outq_admit(&q, limit - OUTQ_FRAME_COST, limit), OUTQ_FITS);
    /* A small frame that does not fit is refused, big slot free or not: the peer is behind. */
    struct outq full = {0};
    struct frame *half = frame_new(limit / 2);
    outq_push(&full, small);
    outq_push(&full, half);
    outq_push(&full, half);
    CHECK_INT(outq_admit(&full, 100, limit), 0);
    CHECK_INT(outq_admit(&full, limit / 2 + 1, limit), OUTQ_BIG);
    outq_clear(&full);
    frame_unref(half);
    CHECK_INT(outq_admit(&q, limit - OUTQ_FRAME_COST + 1, limit), 0);
    CHECK_INT(outq_push(&q, small), 0);
    /* Partly written or not, the first frame is not counted. */
    outq_consume(&q, 1000);
    CHECK_INT(outq_admit(&q, limit - 2 * OUTQ_FRAME_COST - 100, limit), OUTQ_FITS);
    CHECK_INT(outq_admit(&q, limit - 2 * OUTQ_FRAME_COST - 99, limit), 0);
    /* Once the first is written, the big one is first: the slot for another is free. */
    outq_consume(&q, (2 << 20) - 1000);
    CHECK_INT(outq_admit(&q, 2 << 20, limit), OUTQ_BIG);
    outq_clear(&q);

    /* A small frame, then a big one in the same pass (a chat burst): both go in, and more
     * small ones behind them. */
    CHECK_INT(outq_push(&q, small), 0);
    CHECK_INT(outq_admit(&q, 2 << 20, limit), OUTQ_BIG);
    CHECK_INT(outq_push(&q, big), 0);
    outq_mark_big(&q);
    CHECK_INT(outq_admit(&q, 100, limit), OUTQ_FITS);
    outq_drop_unsent(&q); /* nothing started: all dropped, the mark with them */
    CHECK(outq_count(&q) == 0 && q.r == NULL);
    outq_clear(&q);
    CHECK(big->refs == 1 && big2->refs == 1 && small->refs == 1);
    frame_unref(big);
    frame_unref(big2);
    frame_unref(small);
    outq_set_frame_max(0);
}

TEST(outq_tiny_frames_are_counted_with_their_bookkeeping)
{
    /* 3-byte frames under a 64 KB limit: without the per-frame cost 21,845 would be taken
     * (about 1 MB of allocations); with it, at most 65536 / 67 behind the first. */
    struct outq q = {0};
    struct frame *f = frame_bytes("\x81\x01x", 3);
    int n = 0;
    while (outq_admit(&q, f->len, 65536) && n < 100000) {
        CHECK_INT(outq_push(&q, f), 0);
        n++;
    }
    CHECK_INT(n, 1 + 65536 / (3 + OUTQ_FRAME_COST));
    outq_clear(&q);
    CHECK_INT(f->refs, 1);
    frame_unref(f);
}

TEST(outq_one_pong_waits)
{
    struct outq q = {0};
    struct frame *data = frame_bytes("data", 4), *p1 = frame_bytes("pong1", 5),
                 *p2 = frame_bytes("pong-2", 6), *p3 = frame_bytes("p3", 2);
    CHECK_INT(outq_replace_pong(&q, p1), 0); /* none queued yet */
    outq_push(&q, data);
    outq_push(&q, p1);
    outq_mark_pong(&q);
    outq_push(&q, data);
    /* A newer pong takes the older one's place (and bytes), the queue keeps its order. */
    CHECK_INT(outq_replace_pong(&q, p2), 1);
    CHECK_INT(outq_count(&q), 3);
    CHECK(outq_at(&q, 1) == p2);
    CHECK_INT(outq_bytes(&q), 14);
    CHECK_INT(p1->refs, 1);
    /* Once written, there is no pong to replace; once it is the first entry and partly
     * written, neither. */
    outq_consume(&q, 4 + 3);
    CHECK_INT(outq_replace_pong(&q, p3), 0);
    outq_consume(&q, 3 + 1); /* the pong, and one byte of the data behind it */
    CHECK_INT(outq_replace_pong(&q, p3), 0);
    outq_push(&q, p3);
    outq_mark_pong(&q);
    outq_drop_unsent(&q); /* keeps the partly written first frame, drops the pong */
    CHECK_INT(outq_count(&q), 1);
    CHECK_INT(outq_replace_pong(&q, p1), 0);
    outq_clear(&q);
    CHECK(data->refs == 1 && p1->refs == 1 && p2->refs == 1 && p3->refs == 1);
    frame_unref(data);
    frame_unref(p1);
    frame_unref(p2);
    frame_unref(p3);
}
