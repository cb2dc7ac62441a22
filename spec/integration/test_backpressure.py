"""A client that never reads is cut off by --send-queue; the others keep every message."""

import re

from helpers import RELAY_LUA, ConfabTest, OP_CLOSE

MSG = 16 * 1024   # bytes per message
CHUNK = 8         # messages sent before the fast readers catch up
LIMIT = 1000      # bound: 16 MB, far beyond what the kernel buffers for the slow reader


class SlowReader(ConfabTest):
    def test_slow_reader_is_cut_off_and_fast_readers_get_everything(self):
        srv = self.start("--send-queue", "256K", "--max-message", "1M",
                         script=self.script(RELAY_LUA))
        fast = [self.raw(srv) for _ in range(2)]
        slow = self.raw(srv, rcvbuf=4096)
        for ws in fast + [slow]:
            ws.send_text("join")
            self.assertEqual(ws.recv_text(), "joined")
        sender = self.raw(srv)  # not in the room: it only talks

        sent, got = 0, [0, 0]

        def pump():
            nonlocal sent
            texts = ["%06d" % (sent + j) + "x" * (MSG - 6) for j in range(CHUNK)]
            for t in texts:
                sender.send_text(t)
            sent += CHUNK
            for k, ws in enumerate(fast):
                for t in texts:
                    self.assertEqual(ws.recv_text(), t)
                    got[k] += 1

        while sent < LIMIT and not srv.find_log(r"slow"):
            pump()
        self.assertTrue(srv.find_log(r"slow consumer|slow"),
                        "no slow-consumer log after %d messages" % sent)
        pump()  # traffic goes on for the others after the cut
        self.assertEqual(got, [sent, sent])

        # The slow reader: whatever it still gets ends with the close (1008) or just EOF.
        last = None
        while True:
            f = slow.recv_frame(timeout=10)
            if f is None or f.opcode == OP_CLOSE:
                last = f
                break
        if last is not None:
            self.assertEqual(last.close_code, 1008, last)
            try:
                slow.send_close(1008)
            except OSError:
                pass
        slow.wait_eof()
        self.assertTrue(re.search(r"slow", srv.log, re.I))

