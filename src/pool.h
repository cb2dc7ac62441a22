/* pool: a bounded free list of heap blocks of one size. What the steady state allocates and
 * frees over and over (a queue's ring each time it fills and drains, a broadcast's frame, the
 * Lua state's small strings and tables) is taken from the list and put back on it instead of
 * going through malloc and free each time. The list never holds more than `max` blocks: a block
 * put back on a full list is freed, so what a burst allocated goes back to the heap once the
 * list is full, and an idle server holds at most max * size bytes per pool.
 *
 * A block on the list holds the link to the next one in its first bytes; nothing else is read
 * from it. Under AddressSanitizer a listed block is poisoned but for that link, so a use after
 * pool_put is reported as a use after free would be (LeakSanitizer still follows the links). */
#ifndef CONFAB_POOL_H
#define CONFAB_POOL_H

#include <stddef.h>
#include <stdint.h>

struct pool {
    void *head;     /* first free block, or NULL */
    uint32_t n;     /* blocks on the list */
    uint32_t max;   /* at most this many are kept */
    size_t size;    /* bytes of each block, at least sizeof(void *) */
    uint64_t gets, hits; /* blocks handed out, and how many came from the list */
};

/* Marks a block's bytes unusable (or usable again) for AddressSanitizer while it is kept; nothing
 * in other builds. The pools and outq's spare queue arrays use them. */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define POOL_POISON(b, n) ASAN_POISON_MEMORY_REGION((b), (n))
#define POOL_UNPOISON(b, n) ASAN_UNPOISON_MEMORY_REGION((b), (n))
#else
#define POOL_POISON(b, n) ((void)(b), (void)(n))
#define POOL_UNPOISON(b, n) ((void)(b), (void)(n))
#endif

#define POOL_INIT(bytes, most) {NULL, 0, (most), (bytes), 0, 0}

/* A block of p->size bytes (contents undefined): one from the list, else a new one. NULL when
 * out of memory. */
void *pool_get(struct pool *p);

/* Gives back a block of p->size bytes (or larger) that came from pool_get or malloc: kept on the
 * list unless it holds max already, else freed. NULL is ignored. */
void pool_put(struct pool *p, void *block);

/* Frees every listed block. */
void pool_drain(struct pool *p);

#endif
