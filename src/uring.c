#include "uring.h"

#include <errno.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"

/* One send of the batch. */
struct uring_send {
    void *arg;
    struct msghdr m; /* sendmsg's header (several buffers); its iovecs are in iovs */
    size_t offered;
    int res;
};

static struct {
    struct io_uring ring;
    int on;
    unsigned n;               /* sends in the batch */
    size_t used;              /* iovs used by them */
    struct uring_send *sends; /* URING_BATCH */
    struct iovec *iovs;       /* URING_IOVS */
} u;

/* Whether a MSG_DONTWAIT send on a full socket completes at once with -EAGAIN. A kernel that
 * would rather wait for room (poll the socket) could hold a submission until the peer reads;
 * then io_uring is not used. */
static int nowait_send_works(char *err, size_t errlen)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) < 0) {
        snprintf(err, errlen, "socketpair: %s", strerror(errno));
        return 0;
    }
    static const char fill[4096];
    while (send(sv[0], fill, sizeof fill, MSG_DONTWAIT | MSG_NOSIGNAL) > 0)
        ;
    int ok = 0;
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u.ring);
    io_uring_prep_send(sqe, sv[0], fill, sizeof fill, MSG_DONTWAIT | MSG_NOSIGNAL);
    struct io_uring_cqe *cqe;
    int rc = io_uring_submit(&u.ring);
    if (rc != 1)
        snprintf(err, errlen, "submit: %s", strerror(rc < 0 ? -rc : EIO));
    else if (io_uring_peek_cqe(&u.ring, &cqe) != 0)
        snprintf(err, errlen, "a send on a full socket waits for room instead of -EAGAIN");
    else if (cqe->res != -EAGAIN)
        snprintf(err, errlen, "a send on a full socket gave %d, not -EAGAIN", cqe->res);
    else
        ok = 1;
    if (rc == 1 && io_uring_peek_cqe(&u.ring, &cqe) == 0)
        io_uring_cqe_seen(&u.ring, cqe);
    close(sv[0]); /* a send still waiting ends with its socket (and the ring, if not kept) */
    close(sv[1]);
    return ok;
}

int uring_init(char *err, size_t errlen)
{
    if (u.on)
        return 0;
    /* One thread submits, and completions need no interrupt of it: the cheapest setup, where
     * the kernel knows these flags (6.0); else the plain one. */
    struct io_uring_params p = {.flags = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN |
                                         IORING_SETUP_SINGLE_ISSUER};
    int rc = io_uring_queue_init_params(URING_BATCH, &u.ring, &p);
    if (rc == -EINVAL) {
        memset(&p, 0, sizeof p);
        rc = io_uring_queue_init_params(URING_BATCH, &u.ring, &p);
    }
    if (rc < 0) {
        snprintf(err, errlen, "io_uring_setup: %s", strerror(-rc));
        return -1;
    }
    struct io_uring_probe *probe = io_uring_get_probe_ring(&u.ring);
    int ops = probe && io_uring_opcode_supported(probe, IORING_OP_SEND) &&
              io_uring_opcode_supported(probe, IORING_OP_SENDMSG);
    io_uring_free_probe(probe);
    if (!ops) {
        snprintf(err, errlen, "no IORING_OP_SEND / SENDMSG");
    } else if (nowait_send_works(err, errlen)) {
        u.sends = calloc(URING_BATCH, sizeof *u.sends);
        u.iovs = calloc(URING_IOVS, sizeof *u.iovs);
        if (u.sends && u.iovs) {
            u.on = 1;
            return 0;
        }
        snprintf(err, errlen, "out of memory");
        free(u.sends);
        free(u.iovs);
        u.sends = NULL;
        u.iovs = NULL;
    }
    io_uring_queue_exit(&u.ring);
    return -1;
}

int uring_on(void)
{
    return u.on;
}

int uring_add(int fd, const struct iovec *iov, int n, void *arg)
{
    if (u.n == URING_BATCH || u.used + (size_t)n > URING_IOVS)
        return -1;
    struct uring_send *s = &u.sends[u.n];
    struct iovec *mine = u.iovs + u.used;
    s->arg = arg;
    s->offered = 0;
    for (int i = 0; i < n; i++) {
        mine[i] = iov[i];
        s->offered += iov[i].iov_len;
    }
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u.ring); /* never NULL: URING_BATCH entries */
    if (n == 1) {
        io_uring_prep_send(sqe, fd, mine[0].iov_base, mine[0].iov_len, MSG_NOSIGNAL | MSG_DONTWAIT);
    } else {
        s->m = (struct msghdr){.msg_iov = mine, .msg_iovlen = (size_t)n};
        io_uring_prep_sendmsg(sqe, fd, &s->m, MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    io_uring_sqe_set_data64(sqe, u.n);
    u.used += (size_t)n;
    u.n++;
    return 0;
}

void uring_submit(uring_done_fn done)
{
    unsigned n = u.n;
    if (!n)
        return;
    int rc;
    do
        rc = io_uring_submit_and_wait(&u.ring, n);
    while (rc == -EINTR);
    if (rc < 0 || (unsigned)rc < n) {
        log_error("io_uring: submitting %u sends: %s; writing with send/sendmsg from now on", n,
                  rc < 0 ? strerror(-rc) : "not all taken");
        io_uring_queue_exit(&u.ring); /* what was taken ends with it */
        u.on = 0;
        for (unsigned i = 0; i < n; i++)
            u.sends[i].res = 0;
    } else {
        /* Each send ran at submission: its completion is there. */
        for (unsigned seen = 0; seen < n; seen++) {
            struct io_uring_cqe *cqe;
            while ((rc = io_uring_wait_cqe(&u.ring, &cqe)) == -EINTR)
                ;
            if (rc < 0)
                break; /* not expected: the rest keep res 0 (nothing taken) */
            u.sends[cqe->user_data].res = cqe->res;
            io_uring_cqe_seen(&u.ring, cqe);
        }
    }
    u.n = 0;
    u.used = 0;
    for (unsigned i = 0; i < n; i++) {
        struct uring_send *s = &u.sends[i];
        done(s->arg, s->res, s->offered);
        s->res = 0;
    }
    if (!u.on) {
        free(u.sends);
        free(u.iovs);
        u.sends = NULL;
        u.iovs = NULL;
    }
}

void uring_free(void)
{
    if (!u.on)
        return;
    io_uring_queue_exit(&u.ring);
    free(u.sends);
    free(u.iovs);
    u.sends = NULL;
    u.iovs = NULL;
    u.on = 0;
    u.n = 0;
    u.used = 0;
}
