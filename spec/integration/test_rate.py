"""Per-connection inbound limits (--rate-msgs, --rate-bytes): a peer over its budget is paused
(its socket is not read, TCP pushes back), never closed; its messages all arrive, late and in
order, and everyone else goes on as before."""

import signal
import socket

from helpers import (ConfabTest, ECHO_LUA, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, WAIT,
                     encode_frame, proc_status, run_confab)


def frames(ws, n, timeout):
    """The next n frames (opcode, payload) of a RawWS, in order."""
    out = []
    for _ in range(n):
        f = ws.recv_frame(timeout=timeout)
        if f is None:
            raise AssertionError("connection ended after %d frames: %r" % (len(out), out[-3:]))
        out.append((f.opcode, f.payload))
    return out


class RateMsgs(ConfabTest):
    def test_a_flooder_is_paused_not_closed_and_all_its_messages_arrive_in_order(self):
        srv = self.start("--rate-msgs", "50:10", "--log-level", "debug",
                         script=self.script(ECHO_LUA))
        flooder = self.raw(srv)
        other = self.raw(srv)
        n = 200  # at 50/s after a burst of 10: about 4 s to get through
        flooder.send(b"".join(encode_frame(OP_TEXT, "m%d" % i) for i in range(n)) +
                     encode_frame(OP_PING, b"after"))
        self.assertEqual(flooder.recv_text(), "m0")
        srv.wait_log(r"over its inbound rate: paused")
        # Meanwhile another client's round trips go on, while the flooder still waits.
        for i in range(5):
            other.send_text("rt %d" % i)
            self.assertEqual(other.recv_text(), "rt %d" % i)
        # Everything the flooder sent arrives, in order, and the ping it sent after its
        # messages is answered in its turn, after them. It was never closed.
        got = frames(flooder, n, timeout=WAIT + n / 50)
        self.assertEqual(got[: n - 1], [(OP_TEXT, b"m%d" % i) for i in range(1, n)])
        self.assertEqual(got[n - 1], (OP_PONG, b"after"))
        flooder.send_text("still open")
        self.assertEqual(flooder.recv_text(), "still open")

    def test_a_paused_peer_is_still_closed_promptly_by_a_drain(self):
        srv = self.start("--rate-msgs", "10:1", script=self.script(ECHO_LUA))
        flooder = self.raw(srv)
        flooder.send(b"".join(encode_frame(OP_TEXT, "x%d" % i) for i in range(1000)))
        self.assertEqual(flooder.recv_text(), "x0")
        srv.signal(signal.SIGTERM)  # 1000 messages at 10/s would take 100 s
        f = flooder.wait_close(timeout=WAIT)
        self.assertEqual(f.close_code, 1012, f)
        flooder.send_close(1012)
        flooder.close()  # done: the server need not wait for our end
        self.assertEqual(srv.wait_exit(WAIT), 0, srv.log_tail())

    def test_bad_values_are_refused(self):
        for flag, value in (("--rate-msgs", "-1"), ("--rate-msgs", "10:0.5"),
                            ("--rate-msgs", "x"), ("--rate-bytes", "0:1K"),
                            ("--rate-bytes", "1K:"), ("--rate-bytes", "1.5K")):
            r = run_confab(flag, value)
            self.assertEqual(r.returncode, 2, (flag, value, r.stderr))
            self.assertIn(flag, r.stderr)


class RateBytes(ConfabTest):
    def test_bytes_over_budget_pause_the_peer_and_all_arrive(self):
        srv = self.start("--rate-bytes", "16K:8K", "--log-level", "debug",
                         script=self.script(ECHO_LUA))
        flooder = self.raw(srv)
        other = self.raw(srv)
        n, size = 8, 4000  # 32 KB at 16 KB/s after 8 KB: about 1.5 s
        msgs = [("%d:" % i + "b" * size)[:size] for i in range(n)]
        flooder.send(b"".join(encode_frame(OP_TEXT, m) for m in msgs))
        self.assertEqual(flooder.recv_text(), msgs[0])
        srv.wait_log(r"over its inbound rate: paused")
        other.send_text("rt")
        self.assertEqual(other.recv_text(), "rt")
        for m in msgs[1:]:
            self.assertEqual(flooder.recv_text(timeout=WAIT + 2), m)

    def test_tcp_pushes_back_on_a_peer_over_its_byte_rate(self):
        # The server stops reading: the flooder's own socket fills and its sends block, and the
        # server does not buffer what it has not read.
        srv = self.start("--rate-bytes", "64K", script=self.script(ECHO_LUA))
        flooder = self.raw(srv, rcvbuf=1 << 16)
        flooder.send_text("warm")
        self.assertEqual(flooder.recv_text(), "warm")
        rss0 = proc_status(srv.pid, "VmRSS")
        frame = encode_frame(OP_TEXT, "z" * 60000)
        flooder.sock.setblocking(False)
        sent = 0
        try:
            while sent < 256 << 20:
                sent += flooder.sock.send(frame)
        except BlockingIOError:
            pass
        flooder.sock.setblocking(True)
        self.assertLess(sent, 64 << 20, "the server read %d bytes from a peer limited to "
                                         "64 KB/s" % sent)
        grown = proc_status(srv.pid, "VmRSS") - rss0
        self.assertLess(grown, 8 * 1024, "server RSS grew %d kB" % grown)
        other = self.raw(srv)
        other.send_text("fine")
        self.assertEqual(other.recv_text(), "fine")


class FeedBudget(ConfabTest):
    def test_a_ping_right_after_a_feeds_last_message_is_answered(self):
        # A feed takes at most 256 messages; a ping just after the 256th used to be gathered
        # but not kept as held input, so it waited for bytes that never came (no pong).
        srv = self.start(script=self.script(ECHO_LUA))
        ws = self.raw(srv)
        n = 256
        ws.send(b"".join(encode_frame(OP_TEXT, "k%d" % i) for i in range(n)) +
                encode_frame(OP_PING, b"p"))
        got = frames(ws, n + 1, timeout=WAIT)
        self.assertEqual(got[:n], [(OP_TEXT, b"k%d" % i) for i in range(n)])
        self.assertEqual(got[n], (OP_PONG, b"p"))


class RateMetrics(ConfabTest):
    def test_pauses_show_in_metrics(self):
        from test_admin import admin_port, scrape, value
        srv = self.start("--admin-addr", "127.0.0.1:0", "--rate-msgs", "5:1",
                         script=self.script(ECHO_LUA))
        port = admin_port(srv)
        samples, _ = scrape(port)
        self.assertEqual(value(samples, "confab_rate_pauses_total"), 0)
        flooder = self.raw(srv)
        flooder.send(b"".join(encode_frame(OP_TEXT, "f%d" % i) for i in range(50)))
        self.assertEqual(flooder.recv_text(), "f0")
        self.assertEqual(flooder.recv_text(), "f1")  # after its first pause (5/s, burst 1)
        samples, _ = scrape(port)
        self.assertGreaterEqual(value(samples, "confab_rate_pauses_total"), 1)
        self.assertEqual(value(samples, "confab_rate_paused"), 1)  # 48 more to go at 5/s
