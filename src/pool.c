#include "pool.h"

#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define POISON(b, n) ASAN_POISON_MEMORY_REGION((b), (n))
#define UNPOISON(b, n) ASAN_UNPOISON_MEMORY_REGION((b), (n))
#else
#define POISON(b, n) ((void)(b), (void)(n))
#define UNPOISON(b, n) ((void)(b), (void)(n))
#endif

void *pool_get(struct pool *p)
{
    p->gets++;
    void *b = p->head;
    if (!b)
        return malloc(p->size);
    UNPOISON(b, p->size);
    void *next;
    memcpy(&next, b, sizeof next);
    p->head = next;
    p->n--;
    p->hits++;
    return b;
}

void pool_put(struct pool *p, void *block)
{
    if (!block)
        return;
    if (p->n >= p->max) {
        free(block);
        return;
    }
    memcpy(block, &p->head, sizeof p->head);
    /* The link stays readable: LeakSanitizer follows it to the blocks behind. */
    POISON((char *)block + sizeof p->head, p->size - sizeof p->head);
    p->head = block;
    p->n++;
}

void pool_drain(struct pool *p)
{
    while (p->head) {
        void *b = p->head;
        memcpy(&p->head, b, sizeof p->head);
        free(b);
    }
    p->n = 0;
}
