/* outmsg: a message on its way out (confab.send, confab.broadcast) and the frames that may carry
 * it: the plain frame, and the permessage-deflate frame for each window size the recipients
 * negotiated (deflate.h). Each is built at most once, and only when a recipient needs it: a
 * broadcast to a room without deflate never compresses, one to a room where everybody has it
 * never builds the plain frame, and however many members share a form, it is built once and
 * every queue holds a reference to it. */
#ifndef CONFAB_OUTMSG_H
#define CONFAB_OUTMSG_H

#include <stddef.h>

#include "conn.h"
#include "frame.h"

struct outmsg {
    int opcode;         /* FRAME_TEXT or FRAME_BINARY */
    const void *data;
    size_t len;
    struct frame *plain;
    struct frame *deflated[7]; /* by server window bits - 9 */
    unsigned tried;            /* bit (bits - 9): compression tried (NULL: plain serves) */
};

void outmsg_init(struct outmsg *m, int opcode, const void *data, size_t len);

/* The frame for c (borrowed: valid until outmsg_release), NULL when out of memory. */
struct frame *outmsg_frame(struct outmsg *m, const struct conn *c);

/* Drops the message's references to its frames. */
void outmsg_release(struct outmsg *m);

#endif
