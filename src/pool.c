#include "pool.h"

#include <stdlib.h>
#include <string.h>

void *pool_get(struct pool *p)
{
    p->gets++;
    void *b = p->head;
    if (!b)
        return malloc(p->size);
    POOL_UNPOISON(b, p->size);
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
    POOL_POISON((char *)block + sizeof p->head, p->size - sizeof p->head);
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
