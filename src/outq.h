/* outq: a connection's queue of frames waiting to be written, drained by writev. The array of
 * entries exists only while something is queued, so an idle connection holds none. */
#ifndef CONFAB_OUTQ_H
#define CONFAB_OUTQ_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "frame.h"

struct outq {
    struct frame **items; /* ring of frame references; NULL while empty */
    uint32_t head;        /* index of the first entry */
    uint32_t count;       /* entries queued */
    uint32_t cap;         /* size of items, a power of two */
    uint32_t off;         /* bytes of the first entry already written */
    size_t bytes;         /* bytes queued and not yet written */
};

/* Appends a new reference to f. Returns 0, or -1 when out of memory (nothing queued). */
int outq_push(struct outq *q, struct frame *f);

/* Fills up to max iovecs with the queued bytes, in order. Returns the number filled. */
int outq_iov(const struct outq *q, struct iovec *iov, int max);

/* Drops n written bytes from the front, releasing the frames fully written. */
void outq_consume(struct outq *q, size_t n);

/* Drops every frame not yet started, keeping a partly written first frame so the peer never
 * sees half a frame. */
void outq_drop_unsent(struct outq *q);

/* Releases everything queued and the entry array. */
void outq_clear(struct outq *q);

#endif
