"""The process: command line, --check, broken scripts, SIGTERM."""

import os
import re
import resource
import select
import signal
import socket
import time

from helpers import CHAT, ECHO_LUA, WAIT, ConfabTest, get, proc_cpu_seconds, run_confab

BAD_LUA = """local confab = require "confab"

confab.on("message", function(ev)
  local x = = 1
end)
"""

RAISES_LUA = """local confab = require "confab"
local t = nil
return t.field
"""


class CommandLine(ConfabTest):
    def test_help_and_version_exit_0(self):
        r = run_confab("--help")
        self.assertEqual(r.returncode, 0, r)
        self.assertIn("--addr", r.stdout + r.stderr)
        self.assertIn("--send-queue", r.stdout + r.stderr)
        r = run_confab("--version")
        self.assertEqual(r.returncode, 0, r)
        self.assertRegex(r.stdout + r.stderr, r"confab \d+\.\d+")

    def test_unknown_flag_exits_2_with_a_reason(self):
        r = run_confab("--bogus-flag", "1")
        self.assertEqual(r.returncode, 2, r)
        self.assertIn("--bogus-flag", r.stderr)
        self.assertLessEqual(len(r.stderr.strip().splitlines()), 2, "a short reason: %r" % r.stderr)

    def test_bad_values_exit_2_with_a_reason(self):
        cases = [("--max-message", "lots"), ("--ping-interval", "-1"), ("--log-level", "loud"),
                 ("--addr", "nonsense"), ("--history", "many"), ("--send-queue", "12x")]
        for flag, value in cases:
            with self.subTest(flag=flag):
                r = run_confab("--addr", "127.0.0.1:0", flag, value)
                self.assertEqual(r.returncode, 2, r)
                self.assertIn(flag, r.stderr)
        r = run_confab("--addr", "127.0.0.1:0", "--script")
        self.assertEqual(r.returncode, 2, r)
        self.assertIn("--script", r.stderr)

    def test_check_good_and_bad_scripts(self):
        good = self.script(ECHO_LUA, "good.lua")
        bad = self.script(BAD_LUA, "bad.lua")
        for path in (good, CHAT):
            r = run_confab("--check", path)
            self.assertEqual(r.returncode, 0, r)
        r = run_confab("--check", bad)
        self.assertEqual(r.returncode, 2, r)
        self.assertRegex(r.stderr, r"bad\.lua:4:")

    def test_script_with_syntax_error_exits_2(self):
        bad = self.script(BAD_LUA, "bad.lua")
        srv = self.start(script=bad, wait_listening=False)
        self.assertEqual(srv.wait_exit(), 2, srv.log)
        self.assertRegex(srv.log, r"bad\.lua:4:")
        self.assertNotRegex(srv.log, r"listening on")

    def test_script_raising_at_load_exits_2(self):
        bad = self.script(RAISES_LUA, "raises.lua")
        srv = self.start(script=bad, wait_listening=False)
        self.assertEqual(srv.wait_exit(), 2, srv.log)
        self.assertRegex(srv.log, r"raises\.lua:3:")

    def test_missing_script_exits_2(self):
        srv = self.start(script=self.tmp + "/absent.lua", wait_listening=False)
        self.assertEqual(srv.wait_exit(), 2, srv.log)
        self.assertIn("absent.lua", srv.log)

    def test_port_in_use_fails(self):
        first = self.start(script=self.script(ECHO_LUA))
        second = self.start("--addr", "127.0.0.1:%d" % first.port, script=self.script(ECHO_LUA),
                        wait_listening=False)
        # argv has two --addr; the last one wins as with any flag given twice.
        rc = second.wait_exit()
        self.assertNotEqual(rc, 0, second.log)
        self.assertTrue(second.log.strip(), "a reason on stderr")


class Signals(ConfabTest):
    def test_sigint_closes_clients_with_1001_and_exits_0(self):
        srv = self.start(script=self.script(ECHO_LUA))
        c = self.client(srv)
        c.send("ping")
        self.assertEqual(c.recv_raw(), "ping")
        srv.signal(signal.SIGINT)
        code, _ = c.wait_close()
        self.assertEqual(code, 1001)
        self.assertEqual(srv.wait_exit(5), 0, srv.log_tail())

    def test_sigterm_closes_clients_with_1012_and_exits_0(self):
        # SIGTERM drains (test_drain.py): with the default --drain-time 0, everyone at once.
        # (Raw clients: Debian's websocket-client refuses 1012 as an invalid close code.)
        srv = self.start(script=self.script(ECHO_LUA))
        clients = [self.raw(srv) for _ in range(4)]
        for i, c in enumerate(clients):  # every connection is fully open
            c.send_text("ping %d" % i)
            self.assertEqual(c.recv_text(), "ping %d" % i)
        srv.signal(signal.SIGTERM)
        for c in clients:
            f = c.wait_close()
            self.assertIsNotNone(f, "no close frame")
            self.assertEqual(f.close_code, 1012)
            c.send_close(1012)
        self.assertEqual(srv.wait_exit(5), 0, srv.log_tail())

    def test_sigterm_with_a_silent_peer_still_exits(self):
        # A peer that never answers the close frame must not hold the shutdown forever.
        srv = self.start(script=self.script(ECHO_LUA))
        raw = self.raw(srv)
        raw.send_text("x")
        self.assertEqual(raw.recv_text(), "x")
        half_open = self.conn(srv)
        half_open.send("GET / HTTP/1.1\r\n")  # an HTTP request in progress
        srv.signal(signal.SIGTERM)
        self.assertEqual(srv.wait_exit(10), 0, srv.log_tail())
        with self.assertRaises(OSError):
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=1)
            s.close()

    def test_listening_line_names_the_port(self):
        srv = self.start(script=self.script(ECHO_LUA))
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", srv.log)
        self.assertEqual(int(m.group(1)), srv.port)
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=2)
        s.close()



# Every connection remembers the next one; a disconnect closes the next, so closes cascade
# through the safe point one round at a time.
CHAIN_LUA = """
local confab = require "confab"
local ids = {}
confab.on("connect", function(ev) ids[#ids + 1] = ev.id end)
confab.on("disconnect", function(ev)
  for i, id in ipairs(ids) do
    if id == ev.id and ids[i + 1] then confab.close(ids[i + 1], 4000, "chain") end
  end
end)
"""


class Accept(ConfabTest):
    def test_out_of_descriptors_pauses_accept_without_spinning_or_flooding_the_log(self):
        def low_fd_limit():
            resource.setrlimit(resource.RLIMIT_NOFILE, (32, 32))
        srv = self.start("--handshake-timeout", "60", script=self.script(ECHO_LUA),
                         preexec_fn=low_fd_limit)
        held = [self.conn(srv) for _ in range(40)]  # more than the server can take
        srv.wait_log(r"cannot accept connections|connection refused")
        cpu0 = proc_cpu_seconds(srv.pid)
        select.select([], [], [], 1.0)  # the measuring window, not a wait for an event
        cpu = proc_cpu_seconds(srv.pid) - cpu0
        self.assertLess(cpu, 0.25, "the server used %.2f s of CPU in 1 s while out of fds" % cpu)
        lines = len(re.findall(r"cannot accept connections|connection refused", srv.log))
        self.assertLessEqual(lines, 2, "%d log lines about refusals in a second" % lines)
        for c in held:  # give the descriptors back: the server accepts again
            c.close()
        self.assertEqual(get(srv.port, "/").status, 200)
        srv.wait_log(r"accepting connections again")


    def test_a_file_asked_for_while_out_of_descriptors_is_503_not_404(self):
        def low_fd_limit():
            resource.setrlimit(resource.RLIMIT_NOFILE, (32, 32))
        srv = self.start("--handshake-timeout", "60", script=self.script(ECHO_LUA),
                         preexec_fn=low_fd_limit)
        # Each sends the start of its request at once: the listener hands a connection over
        # once its first bytes are in (TCP_DEFER_ACCEPT), so the first ones are accepted, in
        # order (silent ones would be handed over a second later, in no set order).
        held = []
        for _ in range(40):
            held.append(self.conn(srv))
            held[-1].send("GET /index.html HTTP/1.1\r\n")
        srv.wait_log(r"cannot accept connections")
        held[0].send("Host: x\r\n\r\n")
        r = held[0].read_response()
        self.assertEqual(r.status, 503, r)
        self.assertIn(b"descriptors", r.body, r)


class StuckWriters(ConfabTest):
    def test_sigterm_with_peers_that_read_nothing_exits_within_the_grace(self):
        # An HTTP peer mid-way through a large file (past its request time: finishing the
        # response) and a WebSocket peer with a full queue: neither reads; SIGTERM still ends
        # the server once the grace period is over.
        web = os.path.join(self.tmp, "web")
        os.makedirs(web)
        with open(os.path.join(web, "big.bin"), "wb") as f:
            f.write(b"x" * (8 << 20))
        srv = self.start("--handshake-timeout", "1", script=self.script(ECHO_LUA), web=web)
        http_peer = self.conn(srv, rcvbuf=4096)
        http_peer.send("GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        ws = self.raw(srv, rcvbuf=4096)
        for _ in range(100):
            ws.send_text("y" * 4000)
        srv.wait_log(r"no more requests after 1\.0 s; finishing the response")
        srv.signal(signal.SIGTERM)
        self.assertEqual(srv.wait_exit(10), 0, srv.log_tail())
        self.assertTrue(srv.find_log(r"still open after the grace period|stopped"))


class SafePoint(ConfabTest):
    def test_work_left_after_the_round_limit_runs_without_waiting_for_io(self):
        # 40 closes in a chain need 40 rounds of the safe point (it does 8 per loop pass): the
        # rest must follow at once, not at the next socket event or timer (the closing timer,
        # 3 s, would be the next here: 4 of them would pass before the last close).
        srv = self.start(script=self.script(CHAIN_LUA))
        conns = [self.raw(srv) for _ in range(40)]
        conns[0].send_close(1000)
        deadline = time.monotonic() + WAIT
        for c in conns[1:]:
            f = c.wait_close(timeout=max(0.01, deadline - time.monotonic()))
            self.assertIsNotNone(f, "no close frame")
            self.assertEqual(f.close_code, 4000)
