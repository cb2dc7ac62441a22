/* outq: a connection's queue of frames waiting to be written, drained by send/sendmsg. The array of
 * entries, with the queue's state in front, exists only while something is queued, so an idle
 * connection holds one NULL pointer.
 *
 * A queue empties after nearly every write and a broadcast refills a thousand of them at once,
 * so the arrays are not freed but given back to a list of spares, the latest first, and the next
 * queue to need one takes the latest if it is large enough (else a new one is made). A
 * queue that grew in the last burst leaves an array of the size the next burst needs, so the
 * steady state of a busy server neither allocates nor regrows arrays. The list keeps arrays of
 * at most OUTQ_SPARE_CAP_MAX entries and OUTQ_SPARE_BYTES of entries in all (their 32-byte
 * headers besides: a fan-out to 1,000 members keeps rings of 512 entries, 4 MB of them, and
 * counting the headers too made that churn); past that they are freed.
 *
 * The queue's bound (outq_admit) is for peers that fall behind, not for big frames: a frame
 * carrying a message as large as the server accepts always goes into an empty queue, and the
 * limit applies to what waits behind the first frame (the one being written, or next) except one
 * more such big frame, each frame counted with OUTQ_FRAME_COST bytes of bookkeeping so that a
 * flood of tiny frames is bounded in memory, not only in payload bytes. So a queue holds at most
 * the limit plus two frames of the largest size. At most one pong waits unsent: a newer one
 * replaces it (RFC 6455 5.5.3). */
#ifndef CONFAB_OUTQ_H
#define CONFAB_OUTQ_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "frame.h"

/* Bytes charged per queued frame besides its length: the frame's allocation (header, malloc
 * overhead) and its slot in the ring, with the ring's doubling slack. */
#define OUTQ_FRAME_COST 64

/* The spare arrays kept: each of at most this many entries, and this many bytes of entries in
 * all. */
#define OUTQ_SPARE_CAP_MAX 1024
#define OUTQ_SPARE_BYTES (4 * 1024 * 1024)

/* A queue's state and entries, in one allocation that exists only while something is queued. */
struct outq_ring {
    uint32_t head;  /* index of the first entry */
    uint32_t count; /* entries queued, at least 1 */
    uint32_t cap;   /* size of items, a power of two */
    uint32_t off;   /* bytes of the first entry already written */
    uint32_t pong;  /* 1 + position (from head) of a pong not yet started, 0 if none */
    uint32_t big;   /* 1 + position (from head) of the big frame outside the limit, or 0 */
    size_t bytes;   /* bytes queued and not yet written */
    struct frame *items[];
};

/* An empty queue is one NULL pointer: 8 bytes in every connection, the rest only while busy. */
struct outq {
    struct outq_ring *r;
};

static inline uint32_t outq_count(const struct outq *q)
{
    return q->r ? q->r->count : 0;
}

static inline size_t outq_bytes(const struct outq *q)
{
    return q->r ? q->r->bytes : 0;
}

/* The frame at position i (0: the first), i < outq_count(q). */
static inline struct frame *outq_at(const struct outq *q, uint32_t i)
{
    return q->r->items[(q->r->head + i) & (q->r->cap - 1)];
}

/* Sets the largest frame an empty queue always takes, even beyond the limit given to
 * outq_admit: one carrying the largest message the server accepts (0 until set). */
void outq_set_frame_max(size_t len);

/* outq_admit's answers besides 0 (refused: the peer fell behind). */
enum { OUTQ_FITS = 1, OUTQ_BIG = 2 };

/* Whether a frame of len bytes may be queued under limit: into an empty queue when len is at
 * most the frame maximum (or the limit); OUTQ_FITS when what waits behind the first entry and
 * the big frame, with it, stays within limit (each frame counted with OUTQ_FRAME_COST);
 * OUTQ_BIG when it does not but is big (more than half the limit, at most the frame maximum)
 * and no other big frame waits: push it, then outq_mark_big. */
int outq_admit(const struct outq *q, size_t len, size_t limit);

/* Marks the last entry as the big frame outside the limit (see outq_admit). */
void outq_mark_big(struct outq *q);

/* Appends a new reference to f. Returns 0, or -1 when out of memory (nothing queued). */
int outq_push(struct outq *q, struct frame *f);

/* Marks the last entry as a pong that a newer pong may replace while it is not started. */
void outq_mark_pong(struct outq *q);

/* Replaces the frame of the pending pong (if one is queued and not started) by a new reference
 * to f. Returns 1 when replaced, 0 when there is no such pong (push f instead). */
int outq_replace_pong(struct outq *q, struct frame *f);

/* The frame queued last (q not empty). */
static inline const struct frame *outq_last(const struct outq *q)
{
    return outq_at(q, q->r->count - 1);
}

/* Fills up to max iovecs with the queued bytes, in order. Returns the number filled. */
int outq_iov(const struct outq *q, struct iovec *iov, int max);

/* Drops n written bytes from the front, releasing the frames fully written. */
void outq_consume(struct outq *q, size_t n);

/* Drops every frame not yet started, keeping a partly written first frame so the peer never
 * sees half a frame. */
void outq_drop_unsent(struct outq *q);

/* Releases everything queued and the entry array. */
void outq_clear(struct outq *q);

/* The spare arrays (for tests and figures). */
struct outq_spare_stats {
    size_t count, bytes;     /* arrays kept now, and their bytes */
    uint64_t gets, hits;     /* arrays asked for, and how many were spares */
};
struct outq_spare_stats outq_spare_stats(void);

/* Frees the spare arrays (in tests: what a test leaves kept is not a leak). */
void outq_spare_drain(void);

#endif
