"""A client that never reads is cut off by --send-queue; the others keep every message."""

import os
import re
from unittest import mock

import procfs
from helpers import ECHO_LUA, OP_BINARY, OP_CLOSE, OP_TEXT, RELAY_LUA, ConfabTest, encode_frame

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



class BigFrames(ConfabTest):
    """Issue 7: the queue bound is for peers that fall behind, not for one big frame; and a
    flood of tiny replies is bounded in memory, not only in payload bytes."""

    def serve(self, *flags):
        # A generous hook time limit: on a loaded machine a descheduled echo must not count.
        with mock.patch.dict(os.environ, procfs.asan_env()):
            return self.start("--hook-timeout", "5000", *flags, script=self.script(ECHO_LUA))

    def test_a_2mb_message_is_echoed_to_a_peer_that_reads(self):
        # --send-queue stays at its 1 MB default: the echo goes into an empty queue.
        srv = self.serve("--max-message", "16M")
        ws = self.raw(srv)
        big = os.urandom(2 * 1024 * 1024)
        ws.send_frame(OP_BINARY, big)
        self.assertEqual(ws.recv_message(timeout=30), (OP_BINARY, big))
        ws.send_text("and after it")
        self.assertEqual(ws.recv_text(), "and after it")
        self.assertIsNone(srv.find_log(r"slow consumer"))

    BURST_LUA = """
local confab = require "confab"
confab.on("message", function(ev)
  if ev.data == "join" then
    confab.join(ev.id, "all")
    return confab.send(ev.id, "joined")
  end
  -- A burst in one hook: a small message, then one as large as --max-message allows.
  confab.broadcast("all", "small")
  confab.broadcast("all", string.rep("b", 200000))
  confab.broadcast("all", "after")
end)
"""

    def test_a_big_message_right_behind_a_small_one_reaches_a_reader(self):
        # The big frame lands behind the small one in every member's queue (same pass): it
        # waits outside the 64 KB limit, as one such frame may. Before, every member got 1008.
        with mock.patch.dict(os.environ, procfs.asan_env()):
            srv = self.start("--send-queue", "64K", "--max-message", "256K",
                             script=self.script(self.BURST_LUA))
        readers = [self.raw(srv) for _ in range(2)]
        for ws in readers:
            ws.send_text("join")
            self.assertEqual(ws.recv_text(), "joined")
        readers[0].send_text("go")
        for ws in readers:
            self.assertEqual(ws.recv_text(timeout=30), "small")
            self.assertEqual(ws.recv_text(timeout=30), "b" * 200000)
            self.assertEqual(ws.recv_text(timeout=30), "after")
        self.assertIsNone(srv.find_log(r"slow consumer"))

    def test_a_peer_that_does_not_read_big_echoes_is_cut_off_1008(self):
        srv = self.serve("--max-message", "16M")
        ws = self.raw(srv, rcvbuf=4096)
        one = encode_frame(OP_BINARY, b"z" * (2 * 1024 * 1024))
        procfs.send_all_nonblocking(ws.sock, one * 8)
        srv.wait_log(r"slow consumer", timeout=30)
        last = None
        while True:  # what it still gets ends with the close
            f = ws.recv_frame(timeout=30)
            if f is None or f.opcode == OP_CLOSE:
                last = f
                break
        self.assertIsNotNone(last, "no close frame before EOF")
        self.assertEqual(last.close_code, 1008, last)

    def test_tiny_replies_to_a_peer_that_never_reads_are_bounded_in_memory(self):
        # 1-byte messages echoed as 3-byte frames: under a 1 MB queue limit counted in payload
        # bytes alone, 350,000 frames (13 MB) were queued before the cut-off.
        srv = self.serve()
        ws = self.raw(srv, rcvbuf=4096)
        before = procfs.status_kb(srv.pid, "VmRSS")
        procfs.send_all_nonblocking(ws.sock, encode_frame(OP_TEXT, "x") * (16 * 1024 * 1024 // 7))
        procfs.await_server_read_all(srv, ws.sock, timeout=30)
        srv.wait_log(r"slow consumer")
        grown = procfs.status_kb(srv.pid, "VmHWM") - before
        self.assertLess(grown, 4096, "server memory grew %d kB for a 1 MB send queue" % grown)
