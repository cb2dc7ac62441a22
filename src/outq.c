#include "outq.h"
#include "pool.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

static size_t frame_max;

/* Arrays given back by queues that emptied, the latest first (outq.h). A spare keeps its
 * capacity in its header and the next spare's address in its first entry. */
static struct {
    struct outq_ring *head;
    size_t entries; /* their entries, bounded by OUTQ_SPARE_BYTES */
    struct outq_spare_stats st;
} spare;

static size_t ring_size(uint32_t cap)
{
    return sizeof(struct outq_ring) + (size_t)cap * sizeof(struct frame *);
}

static struct outq_ring *spare_next(const struct outq_ring *r)
{
    struct outq_ring *next;
    memcpy(&next, r->items, sizeof next);
    return next;
}

/* An empty ring of at least need entries (a power of two, at least 4): the latest one given
 * back if it is large enough, else a new one. */
static struct outq_ring *ring_get(uint32_t need)
{
    struct outq_ring *r = spare.head;
    spare.st.gets++;
    if (r && r->cap >= need) {
        POOL_UNPOISON(r->items, (size_t)r->cap * sizeof *r->items);
        spare.head = spare_next(r);
        spare.entries -= r->cap;
        spare.st.count--;
        spare.st.hits++;
    } else {
        r = malloc(ring_size(need));
        if (!r)
            return NULL;
        r->cap = need;
    }
    r->head = r->count = r->off = r->pong = r->big = 0;
    r->bytes = 0;
    return r;
}

static void ring_put(struct outq_ring *r)
{
    if (!r)
        return;
    if (r->cap > OUTQ_SPARE_CAP_MAX ||
        (spare.entries + r->cap) * sizeof *r->items > OUTQ_SPARE_BYTES) {
        free(r);
        return;
    }
    memcpy(r->items, &spare.head, sizeof spare.head);
    /* The header and the link stay readable: LeakSanitizer follows it to the rings behind. */
    POOL_POISON(r->items + 1, (size_t)(r->cap - 1) * sizeof *r->items);
    spare.head = r;
    spare.entries += r->cap;
    spare.st.count++;
}

struct outq_spare_stats outq_spare_stats(void)
{
    struct outq_spare_stats st = spare.st;
    st.bytes = spare.entries * sizeof(struct frame *) + st.count * sizeof(struct outq_ring);
    return st;
}

void outq_spare_drain(void)
{
    while (spare.head) {
        struct outq_ring *r = spare.head;
        spare.head = spare_next(r);
        free(r);
    }
    spare.entries = 0;
    spare.st.count = 0;
}

void outq_set_frame_max(size_t len)
{
    frame_max = len;
}

/* The queue is empty: its ring goes back. */
static void ring_release(struct outq *q)
{
    ring_put(q->r);
    q->r = NULL;
}

int outq_admit(const struct outq *q, size_t len, size_t limit)
{
    int big_enough = len <= frame_max;
    const struct outq_ring *r = q->r;
    if (!r)
        return big_enough || len + OUTQ_FRAME_COST <= limit ? OUTQ_FITS : 0;
    /* What waits behind the first entry (the one being written, or next) and the big frame. */
    size_t counted = r->bytes - (outq_at(q, 0)->len - r->off) +
                     (size_t)(r->count - 1) * OUTQ_FRAME_COST;
    int big_waits = r->big > 1;
    if (big_waits)
        counted -= outq_at(q, r->big - 1)->len + OUTQ_FRAME_COST;
    if (counted + len + OUTQ_FRAME_COST <= limit)
        return OUTQ_FITS;
    /* Only a frame that is big next to the limit may wait outside it: a small one that does
     * not fit means the peer fell behind. */
    return !big_waits && big_enough && len > limit / 2 ? OUTQ_BIG : 0;
}

void outq_mark_big(struct outq *q)
{
    q->r->big = q->r->count;
}

int outq_push(struct outq *q, struct frame *f)
{
    struct outq_ring *r = q->r;
    if (!r || r->count == r->cap) {
        struct outq_ring *n = ring_get(r ? r->cap * 2 : 4);
        if (!n)
            return -1;
        if (r) {
            for (uint32_t i = 0; i < r->count; i++)
                n->items[i] = outq_at(q, i);
            n->count = r->count;
            n->off = r->off;
            n->pong = r->pong;
            n->big = r->big;
            n->bytes = r->bytes;
            ring_put(r);
        }
        q->r = r = n;
    }
    r->items[(r->head + r->count) & (r->cap - 1)] = frame_ref(f);
    r->count++;
    r->bytes += f->len;
    return 0;
}

void outq_mark_pong(struct outq *q)
{
    q->r->pong = q->r->count;
}

int outq_replace_pong(struct outq *q, struct frame *f)
{
    struct outq_ring *r = q->r;
    if (!r || r->pong == 0 || (r->pong == 1 && r->off > 0))
        return 0; /* none, or already on the wire */
    struct frame **slot = &r->items[(r->head + r->pong - 1) & (r->cap - 1)];
    r->bytes = r->bytes - (*slot)->len + f->len;
    frame_unref(*slot);
    *slot = frame_ref(f);
    return 1;
}

int outq_iov(const struct outq *q, struct iovec *iov, int max)
{
    int n = 0;
    uint32_t count = outq_count(q);
    for (uint32_t i = 0; i < count && n < max; i++) {
        struct frame *f = outq_at(q, i);
        uint32_t skip = i == 0 ? q->r->off : 0;
        iov[n].iov_base = f->data + skip;
        iov[n].iov_len = f->len - skip;
        n++;
    }
    return n;
}

void outq_consume(struct outq *q, size_t n)
{
    struct outq_ring *r = q->r;
    if (!r)
        return;
    assert(n <= r->bytes);
    r->bytes -= n;
    while (n > 0) {
        struct frame *f = r->items[r->head];
        size_t left = f->len - r->off;
        if (n < left) {
            r->off += (uint32_t)n;
            return;
        }
        n -= left;
        r->off = 0;
        r->head = (r->head + 1) & (r->cap - 1);
        r->count--;
        if (r->pong)
            r->pong--; /* 1 → 0: the pong itself went out */
        if (r->big)
            r->big--;
        frame_unref(f);
    }
    /* Zero-length frames (never built today) would linger; the ring goes once empty. */
    if (r->count == 0)
        ring_release(q);
}

void outq_drop_unsent(struct outq *q)
{
    struct outq_ring *r = q->r;
    if (!r)
        return;
    uint32_t keep = r->off > 0 ? 1 : 0;
    for (uint32_t i = keep; i < r->count; i++) {
        struct frame *f = outq_at(q, i);
        r->bytes -= f->len;
        frame_unref(f);
    }
    r->count = keep;
    if (r->pong > keep)
        r->pong = 0;
    if (r->big > keep)
        r->big = 0;
    if (keep == 0)
        ring_release(q);
}

void outq_clear(struct outq *q)
{
    uint32_t count = outq_count(q);
    for (uint32_t i = 0; i < count; i++)
        frame_unref(outq_at(q, i));
    ring_release(q);
}
