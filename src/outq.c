#include "outq.h"
#include "pool.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

static size_t frame_max;

/* Arrays given back by queues that emptied, the latest first (outq.h). A spare array holds the
 * next one's address in its first word and its own capacity in the second. */
static struct {
    struct frame **head;
    size_t bytes;
    struct outq_spare_stats st;
} spare;

struct spare_head {
    struct frame **next;
    uint32_t cap;
};

/* An array of at least need entries (a power of two, at least 4): the latest one given back if
 * it is large enough, else a new one. Its capacity goes to *cap. */
static struct frame **ring_get(uint32_t need, uint32_t *cap)
{
    struct frame **a = spare.head;
    spare.st.gets++;
    if (a) {
        struct spare_head h;
        memcpy(&h, a, sizeof h);
        if (h.cap >= need) {
            POOL_UNPOISON(a, (size_t)h.cap * sizeof *a);
            spare.head = h.next;
            spare.bytes -= (size_t)h.cap * sizeof *a;
            spare.st.count--;
            spare.st.hits++;
            *cap = h.cap;
            return a;
        }
    }
    a = malloc((size_t)need * sizeof *a);
    *cap = need;
    return a;
}

static void ring_put(struct frame **a, uint32_t cap)
{
    if (!a)
        return;
    size_t size = (size_t)cap * sizeof *a;
    if (cap > OUTQ_SPARE_CAP_MAX || spare.bytes + size > OUTQ_SPARE_BYTES) {
        free(a);
        return;
    }
    struct spare_head h = {spare.head, cap};
    memcpy(a, &h, sizeof h);
    /* The link stays readable: LeakSanitizer follows it to the arrays behind. */
    POOL_POISON((char *)a + sizeof h, size - sizeof h);
    spare.head = a;
    spare.bytes += size;
    spare.st.count++;
}

struct outq_spare_stats outq_spare_stats(void)
{
    struct outq_spare_stats st = spare.st;
    st.bytes = spare.bytes;
    return st;
}

void outq_spare_drain(void)
{
    while (spare.head) {
        struct frame **a = spare.head;
        struct spare_head h;
        memcpy(&h, a, sizeof h);
        spare.head = h.next;
        free(a);
    }
    spare.bytes = 0;
    spare.st.count = 0;
}

void outq_set_frame_max(size_t len)
{
    frame_max = len;
}

/* The frame at position i (0: the first). */
static struct frame *entry(const struct outq *q, uint32_t i)
{
    return q->items[(q->head + i) & (q->cap - 1)];
}

int outq_admit(const struct outq *q, size_t len, size_t limit)
{
    int big_enough = len <= frame_max;
    if (q->count == 0)
        return big_enough || len + OUTQ_FRAME_COST <= limit ? OUTQ_FITS : 0;
    /* What waits behind the first entry (the one being written, or next) and the big frame. */
    size_t counted = q->bytes - (entry(q, 0)->len - q->off) +
                     (size_t)(q->count - 1) * OUTQ_FRAME_COST;
    int big_waits = q->big > 1;
    if (big_waits)
        counted -= entry(q, q->big - 1)->len + OUTQ_FRAME_COST;
    if (counted + len + OUTQ_FRAME_COST <= limit)
        return OUTQ_FITS;
    /* Only a frame that is big next to the limit may wait outside it: a small one that does
     * not fit means the peer fell behind. */
    return !big_waits && big_enough && len > limit / 2 ? OUTQ_BIG : 0;
}

void outq_mark_big(struct outq *q)
{
    q->big = q->count;
}

int outq_push(struct outq *q, struct frame *f)
{
    if (q->count == q->cap) {
        uint32_t ncap;
        struct frame **n = ring_get(q->cap ? q->cap * 2 : 4, &ncap);
        if (!n)
            return -1;
        for (uint32_t i = 0; i < q->count; i++)
            n[i] = q->items[(q->head + i) & (q->cap - 1)];
        ring_put(q->items, q->cap);
        q->items = n;
        q->head = 0;
        q->cap = ncap;
    }
    q->items[(q->head + q->count) & (q->cap - 1)] = frame_ref(f);
    q->count++;
    q->bytes += f->len;
    return 0;
}

void outq_mark_pong(struct outq *q)
{
    q->pong = q->count;
}

int outq_replace_pong(struct outq *q, struct frame *f)
{
    if (q->pong == 0 || (q->pong == 1 && q->off > 0))
        return 0; /* none, or already on the wire */
    struct frame **slot = &q->items[(q->head + q->pong - 1) & (q->cap - 1)];
    q->bytes = q->bytes - (*slot)->len + f->len;
    frame_unref(*slot);
    *slot = frame_ref(f);
    return 1;
}

int outq_iov(const struct outq *q, struct iovec *iov, int max)
{
    int n = 0;
    for (uint32_t i = 0; i < q->count && n < max; i++) {
        struct frame *f = q->items[(q->head + i) & (q->cap - 1)];
        uint32_t skip = i == 0 ? q->off : 0;
        iov[n].iov_base = f->data + skip;
        iov[n].iov_len = f->len - skip;
        n++;
    }
    return n;
}

void outq_consume(struct outq *q, size_t n)
{
    assert(n <= q->bytes);
    q->bytes -= n;
    while (n > 0) {
        struct frame *f = q->items[q->head];
        size_t left = f->len - q->off;
        if (n < left) {
            q->off += (uint32_t)n;
            return;
        }
        n -= left;
        q->off = 0;
        q->head = (q->head + 1) & (q->cap - 1);
        q->count--;
        if (q->pong)
            q->pong--; /* 1 → 0: the pong itself went out */
        if (q->big)
            q->big--;
        frame_unref(f);
    }
    /* Zero-length frames (never built today) would linger; the array goes once empty. */
    if (q->count == 0) {
        ring_put(q->items, q->cap);
        q->items = NULL;
        q->head = q->cap = 0;
    }
}

void outq_drop_unsent(struct outq *q)
{
    uint32_t keep = q->off > 0 ? 1 : 0;
    for (uint32_t i = keep; i < q->count; i++) {
        struct frame *f = q->items[(q->head + i) & (q->cap - 1)];
        q->bytes -= f->len;
        frame_unref(f);
    }
    q->count = keep;
    if (q->pong > keep)
        q->pong = 0;
    if (q->big > keep)
        q->big = 0;
    if (keep == 0) {
        ring_put(q->items, q->cap);
        q->items = NULL;
        q->head = q->cap = 0;
        q->bytes = 0;
    }
}

void outq_clear(struct outq *q)
{
    for (uint32_t i = 0; i < q->count; i++)
        frame_unref(q->items[(q->head + i) & (q->cap - 1)]);
    ring_put(q->items, q->cap);
    *q = (struct outq){0};
}
