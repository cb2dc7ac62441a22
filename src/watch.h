/* watch: calls back when a file has been rewritten (closed after writing) or replaced (renamed
 * over, or created), as editors and deploy tools do. It watches the file's directory with inotify,
 * so a rewrite is seen whatever its size or timing, and never while the file is half written;
 * events within 50 ms are coalesced into one call. */
#ifndef CONFAB_WATCH_H
#define CONFAB_WATCH_H

#include <ev.h>
#include <stddef.h>

/* Starts watching path. Returns 0, or -1 with a reason in err. */
int watch_start(struct ev_loop *loop, const char *path, void (*changed)(void), char *err,
                size_t errlen);

/* Stops watching. */
void watch_stop(void);

#endif
