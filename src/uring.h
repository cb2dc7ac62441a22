/* uring: a batch of socket sends made with one system call (io_uring), where the kernel has it.
 *
 * The server writes what a pass of its loop queued for many connections at once: with send and
 * sendmsg that is a system call per connection, with io_uring one io_uring_enter for up to
 * URING_BATCH of them. The sends are MSG_DONTWAIT on non-blocking sockets: the kernel runs each
 * at submission and a full socket answers -EAGAIN at once (checked by uring_init on a full
 * socketpair), so every result is there when uring_submit returns and the caller handles it as
 * it handles send's. Without io_uring (an old kernel, io_uring_disabled, a seccomp filter, or a
 * kernel that would wait for room instead of answering -EAGAIN) uring_init says why and the
 * caller writes with send and sendmsg as before. */
#ifndef CONFAB_URING_H
#define CONFAB_URING_H

#include <stddef.h>
#include <sys/uio.h>

#define URING_BATCH 1024       /* sends per submission */
#define URING_IOVS (16 * 1024) /* buffers of all the sends of one submission */

/* Sets the ring up. Returns 0, or -1 with the reason in err (nothing is kept). */
int uring_init(char *err, size_t errlen);

/* Whether uring_init succeeded (and uring_free has not run). */
int uring_on(void);

/* Adds a send of iov[0..n) (1 <= n <= IOV_MAX) on fd to the batch, as send (n == 1) or sendmsg
 * with MSG_NOSIGNAL | MSG_DONTWAIT; arg comes back with its result. The iovecs are copied, the
 * bytes they point to must stay until uring_submit returns. Returns 0, or -1 when the batch is
 * full (submit it first). */
int uring_add(int fd, const struct iovec *iov, int n, void *arg);

/* The result of one send: the bytes taken (fewer than offered: the socket filled), or -errno
 * (-EAGAIN: full). */
typedef void (*uring_done_fn)(void *arg, int res, size_t offered);

/* Submits the batch with one system call and calls done for each send, in the order added.
 * Should submission fail (not expected once uring_init succeeded), io_uring is switched off
 * (logged) and each send is reported as taking nothing (res 0): the caller waits for the socket
 * and writes with send/sendmsg. */
void uring_submit(uring_done_fn done);

/* Releases the ring. */
void uring_free(void);

#endif
