/* outmsg: the frames of one outgoing message, each built once and only if needed (outmsg.h). */
#include "outmsg.h"

#include <string.h>

#include "deflate.h"

void outmsg_init(struct outmsg *m, int opcode, const void *data, size_t len)
{
    memset(m, 0, sizeof *m);
    m->opcode = opcode;
    m->data = data;
    m->len = len;
}

static struct frame *plain(struct outmsg *m)
{
    if (!m->plain)
        m->plain = frame_ws(m->opcode, m->data, m->len);
    return m->plain;
}

struct frame *outmsg_frame(struct outmsg *m, const struct conn *c)
{
    int bits = c->deflate_bits;
    if (bits < 9 || bits > 15)
        return plain(m);
    unsigned bit = 1u << (bits - 9);
    if (!(m->tried & bit)) {
        m->tried |= bit;
        m->deflated[bits - 9] = deflate_frame(m->opcode, m->data, m->len, bits);
    }
    return m->deflated[bits - 9] ? m->deflated[bits - 9] : plain(m);
}

void outmsg_release(struct outmsg *m)
{
    frame_unref(m->plain);
    for (int i = 0; i < 7; i++)
        frame_unref(m->deflated[i]);
    memset(m, 0, sizeof *m);
}
