"""--flush-delay MS: a WebSocket's output is held up to MS so that several messages go out in one
write. Messages still all arrive, in order; a ping's pong, a close and a queue past 16 KB are not
held. The writes are counted by the server (/metrics: confab_websocket_writes_total), so the
coalescing is asserted as a count, not a time.

The long delays (10 s) make "not held" visible without timing anything closely: what is held
would arrive after 10 s, what is not within the tests' usual bound of 5 s (WAIT)."""

import time

from helpers import (OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, WAIT, ConfabTest, encode_frame,
                     run_confab)
from test_admin import admin_port, scrape, value

# "join" joins room "all" (answered "joined"); "kick" closes every other member with 4000;
# anything else is broadcast to "all", the sender included.
ROOM_LUA = """
local confab = require "confab"
confab.on("message", function(ev)
  if ev.data == "join" then
    confab.join(ev.id, "all")
    confab.send(ev.id, "joined")
  elseif ev.data == "kick" then
    for _, id in ipairs(confab.members("all")) do
      if id ~= ev.id then confab.close(id, 4000, "kicked") end
    end
  else
    confab.broadcast("all", ev.data, nil, ev.binary)
  end
end)
"""

LONG = 10000  # ms: longer than any bound the tests wait (WAIT)


def counter(port, name):
    samples, _ = scrape(port)
    return value(samples, name)


class FlushDelay(ConfabTest):
    def start_room(self, delay, *flags):
        srv = self.start("--admin-addr", "127.0.0.1:0", "--flush-delay", str(delay), *flags,
                         script=self.script(ROOM_LUA))
        return srv, admin_port(srv)

    def member(self, srv):
        """A raw client in room "all". Its "joined" may be held: a ping's pong is not, and it
        brings out whatever was held before it."""
        ws = self.raw(srv)
        ws.send_text("join")
        ws.send_frame(OP_PING, b"sync")
        self.assertEqual(self.frames_until_pong(ws, b"sync"), [(OP_TEXT, b"joined")])
        return ws

    def frames_until_pong(self, ws, payload, timeout=WAIT):
        """The frames (opcode, payload) received before the pong with payload."""
        got = []
        deadline = time.monotonic() + timeout
        while True:
            f = ws.recv_frame(max(0.0, deadline - time.monotonic()))
            self.assertIsNotNone(f, "connection ended before the pong; got %r" % got)
            if f.opcode == OP_PONG and f.payload == payload:
                return got
            got.append((f.opcode, f.payload))

    def send_one_per_pass(self, port, ws, texts):
        """Sends each text once the server has taken the one before (its message counter moved),
        so that each is read in a loop pass of its own: nothing batches them but the delay."""
        n = counter(port, "confab_messages_received_total")
        for t in texts:
            ws.send_text(t)
            n += 1
            deadline = time.monotonic() + WAIT
            while counter(port, "confab_messages_received_total") < n:
                self.assertLess(time.monotonic(), deadline, "message %r not taken" % t)

    def writes_for(self, delay):
        """Ten messages from a to the room of a and b, each in a pass of its own, then a ping
        from b: the messages each member got in order, and the server's writes meanwhile."""
        srv, port = self.start_room(delay)
        a, b = self.member(srv), self.member(srv)
        texts = ["m%d" % i for i in range(10)]
        before = counter(port, "confab_websocket_writes_total")
        self.send_one_per_pass(port, a, texts)
        b.send_frame(OP_PING, b"done")
        got_b = self.frames_until_pong(b, b"done")
        got_a = [a.recv_frame() for _ in texts]
        writes = counter(port, "confab_websocket_writes_total") - before
        want = [(OP_TEXT, t.encode()) for t in texts]
        self.assertEqual(got_b, want)
        self.assertEqual([(f.opcode, f.payload) for f in got_a], want)
        return writes

    def test_without_delay_each_message_is_a_write_per_member(self):
        # The reference: 10 messages x 2 members, and the pong.
        self.assertEqual(self.writes_for(0), 21)

    def test_with_delay_messages_arrive_in_order_in_few_writes(self):
        # One write per member (b's carries the pong too), two if the 10 s delay ran out
        # while the ten messages were sent.
        writes = self.writes_for(LONG)
        self.assertGreaterEqual(writes, 2)
        self.assertLessEqual(writes, 4)

    def test_held_output_goes_out_when_the_delay_ends(self):
        # Nothing but the timer brings these out: no ping, no close, a small queue.
        srv, port = self.start_room(200)
        a, b = self.member(srv), self.member(srv)
        texts = ["n%d" % i for i in range(50)]
        for t in texts:  # one at a time from a, and a burst from b
            a.send_text(t)
        b.send(b"".join(encode_frame(OP_TEXT, "b" + t) for t in texts))
        for ws in (a, b):
            got = [ws.recv_text() for _ in range(100)]
            self.assertEqual([g for g in got if g[0] == "n"], texts)
            self.assertEqual([g for g in got if g[0] == "b"], ["b" + t for t in texts])

    def test_close_from_the_peer_is_answered_at_once(self):
        srv, port = self.start_room(LONG)
        a, b = self.member(srv), self.member(srv)
        self.send_one_per_pass(port, a, ["before the close"])
        started = time.monotonic()
        b.send_close(1000)
        f = b.recv_frame()
        self.assertEqual((f.opcode, f.payload), (OP_TEXT, b"before the close"))
        f = b.recv_frame()
        self.assertEqual((f.opcode, f.close_code), (OP_CLOSE, 1000))
        self.assertIsNone(b.recv_frame())  # and the server ends the connection
        self.assertLess(time.monotonic() - started, LONG / 1000.0 / 2)

    def test_close_by_the_script_is_not_held(self):
        srv, port = self.start_room(LONG)
        a, b = self.member(srv), self.member(srv)
        self.send_one_per_pass(port, a, ["first", "kick"])
        f = b.recv_frame()
        self.assertEqual((f.opcode, f.payload), (OP_TEXT, b"first"))
        f = b.recv_frame()
        self.assertEqual((f.opcode, f.close_code, f.payload[2:]), (OP_CLOSE, 4000, b"kicked"))

    def test_a_queue_past_16k_is_not_held(self):
        srv, port = self.start_room(LONG)
        a, b = self.member(srv), self.member(srv)
        self.send_one_per_pass(port, a, ["small"])
        big = "x" * 20000
        a.send_text(big)
        self.assertEqual(b.recv_text(), "small")
        self.assertEqual(b.recv_text(), big)
        self.assertEqual(a.recv_text(), "small")
        self.assertEqual(a.recv_text(), big)

    def test_flag_values(self):
        for bad in ("-1", "10001", "soon", "1.5", ""):
            with self.subTest(value=bad):
                r = run_confab("--flush-delay", bad, "--check", self.script(ROOM_LUA))
                self.assertEqual(r.returncode, 2, r)
                self.assertIn("--flush-delay", r.stderr)
        for good in ("0", "1", "10000"):
            with self.subTest(value=good):
                r = run_confab("--flush-delay", good, "--check", self.script(ROOM_LUA))
                self.assertEqual(r.returncode, 0, r)
