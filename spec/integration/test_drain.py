"""Drain and takeover: SIGTERM stops accepting and sends close 1012 (service restart) spread
over --drain-time; with --reuse-port a second process on the same port takes the connections
the first one no longer accepts, and the drained clients reconnect to it."""

import select
import signal
import struct

from helpers import OP_CLOSE, ConfabTest, Conn, RawWS, WAIT, get, upgrade_request

# Answers every message with this process's tag, so a client knows which one it reached.
TAGGED_LUA = """
local confab = require "confab"
confab.on("message", function(ev) confab.send(ev.id, "%s:" .. ev.data) end)
"""


class Drain(ConfabTest):
    def test_sigterm_sends_1012_spread_over_the_drain_time(self):
        srv = self.start("--drain-time", "4", script=self.script(TAGGED_LUA % "a"))
        clients = [self.raw(srv) for _ in range(8)]
        for c in clients:
            c.send_text("hi")
            self.assertEqual(c.recv_text(), "a:hi")
        srv.signal(signal.SIGTERM)
        # The first close arrives at once...
        ready, _, _ = select.select([c.sock for c in clients], [], [], WAIT)
        self.assertTrue(ready, "no close within %.0f s of SIGTERM" % WAIT)
        first = next(c for c in clients if c.sock in ready)
        f = first.wait_close()
        self.assertEqual(f.close_code, 1012, f)
        self.assertIn(b"restart", f.payload)
        # ...while the last ones, due 3-3.5 s later, are still served meanwhile.
        still_open, codes = 0, {}
        for c in clients:
            if c is first:
                continue
            c.send_text("there?")
            m = c.recv_message()
            if m and m[1] == b"a:there?":
                still_open += 1
            elif m and m[0] == OP_CLOSE:  # its turn came meanwhile
                codes[c] = struct.unpack("!H", m[1][:2])[0]
        self.assertGreaterEqual(still_open, 2, "every client closed at once")
        # Every one gets its 1012; the server exits once they have all answered.
        for c in clients:
            if c is not first and c not in codes:
                f = c.wait_close(timeout=WAIT + 4)
                self.assertIsNotNone(f, "no close frame")
                codes[c] = f.close_code
            c.send_close(1012)
            c.close()  # done: the server need not wait for our end
        self.assertEqual(set(codes.values()), {1012})
        self.assertEqual(srv.wait_exit(WAIT), 0, srv.log_tail())
        self.assertTrue(srv.find_log(r"draining: close 1012 to 8 connections over 4\.0 s"))

    def test_drain_stops_accepting_at_once(self):
        srv = self.start("--drain-time", "5", script=self.script(TAGGED_LUA % "a"))
        c = self.raw(srv)
        c.send_text("x")
        self.assertEqual(c.recv_text(), "a:x")
        srv.signal(signal.SIGTERM)
        srv.wait_log(r"draining: close 1012")
        with self.assertRaises(ConnectionRefusedError):
            Conn(srv.port)
        f = c.wait_close(timeout=WAIT + 5)
        self.assertEqual(f.close_code, 1012)
        c.send_close(1012)
        c.close()  # done: the server need not wait for our end
        self.assertEqual(srv.wait_exit(WAIT), 0)

    def test_a_peer_that_never_answers_cannot_hold_the_exit_past_drain_and_grace(self):
        srv = self.start("--drain-time", "1", script=self.script(TAGGED_LUA % "a"))
        c = self.raw(srv)
        c.send_text("x")
        self.assertEqual(c.recv_text(), "a:x")
        srv.signal(signal.SIGTERM)
        self.assertEqual(c.wait_close(timeout=WAIT).close_code, 1012)
        # It never answers the close: the closing time (3 s) ends it, the server exits 0.
        self.assertEqual(srv.wait_exit(WAIT + 4), 0, srv.log_tail())

    def test_a_stuck_script_cannot_stop_the_exit(self):
        # A disconnect hook that spins until its time limit, for each of many peers: the last
        # resort alarm still ends the process (status 1) soon after drain time + grace.
        hog = self.script("""
local confab = require "confab"
confab.on("message", function(ev) confab.send(ev.id, ev.data) end)
confab.on("disconnect", function(ev) local t = os.clock() while os.clock() - t < 1 do end end)
""")
        srv = self.start("--drain-time", "1", "--hook-timeout", "3000", script=hog)
        clients = [self.raw(srv) for _ in range(10)]
        for c in clients:
            c.send_text("x")
            self.assertEqual(c.recv_text(), "x")
        srv.signal(signal.SIGTERM)
        srv.check_exit = False
        rc = srv.wait_exit(WAIT + 10)
        self.assertIn(rc, (0, 1), srv.log_tail())
        self.assertTrue(srv.find_log(r"still not stopped|grace period"), srv.log_tail())


class Takeover(ConfabTest):
    def test_a_second_process_takes_the_port_and_the_drained_clients(self):
        # A's settings come from a --config file: "reuse-port" alone, like "watch".
        conf = self.write("a.conf", "reuse-port\ndrain-time 1\n")
        a = self.start("--config", conf, script=self.script(TAGGED_LUA % "a", "a.lua"))
        b = self.start("--reuse-port", "--addr", "127.0.0.1:%d" % a.port,
                       script=self.script(TAGGED_LUA % "b", "b.lua"))
        self.assertEqual(b.port, a.port)
        # Clients of A (connections land on either process while both listen: keep A's).
        on_a = []
        while len(on_a) < 5:
            c = RawWS(a.port)
            c.send_text("who")
            if c.recv_text() == "a:who":
                on_a.append(c)
                self.addCleanup(c.close)
            else:
                c.close()
        a.signal(signal.SIGTERM)
        a.wait_log(r"draining: close 1012")
        # From now on every new connection reaches B: nothing refused.
        for _ in range(20):
            c = RawWS(a.port)
            c.send_text("new")
            self.assertEqual(c.recv_text(), "b:new")
            c.close()
        # The drained clients get 1012, reconnect at once and land on B.
        for c in on_a:
            f = c.wait_close(timeout=WAIT + 1)
            self.assertEqual(f.close_code, 1012, f)
            c.send_close(1012)
            c.close()  # done: the server need not wait for our end
            again = self.raw(a.port)
            again.send_text("back")
            self.assertEqual(again.recv_text(), "b:back")
        self.assertEqual(a.wait_exit(WAIT), 0, a.log_tail())
        self.assertEqual(get(b.port, "/").status, 200)

    def test_without_reuse_port_the_second_process_cannot_listen(self):
        a = self.start(script=self.script(TAGGED_LUA % "a"))
        b = self.start("--addr", "127.0.0.1:%d" % a.port, wait_listening=False,
                       check_exit=False)
        self.assertEqual(b.wait_exit(), 2)
        self.assertIn("cannot listen", b.log)

    def test_connections_waiting_at_drain_start_get_503_not_a_reset(self):
        # Connections the kernel completed while the server was held (SIGSTOP), their upgrade
        # requests sent, when the drain starts: whether the server takes them from the backlog
        # before or after it handles the signal, each gets 503 with Retry-After, none a reset.
        srv = self.start("--drain-time", "1", script=self.script(TAGGED_LUA % "a"))
        srv.signal(signal.SIGSTOP)
        try:
            waiting = [Conn(srv.port) for _ in range(5)]
            for c in waiting:
                c.send(upgrade_request(srv.port)[0])
            srv.signal(signal.SIGTERM)
        finally:
            srv.signal(signal.SIGCONT)
        for c in waiting:
            r = c.read_response()
            self.assertEqual(r.status, 503, r)
            self.assertEqual(r.headers.get("retry-after"), "1")
            c.close()
        self.assertEqual(srv.wait_exit(WAIT), 0)
