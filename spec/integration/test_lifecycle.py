"""The process: command line, --check, broken scripts, SIGTERM."""

import re
import signal
import socket

from helpers import CHAT, ECHO_LUA, ConfabTest, run_confab

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
    def test_sigterm_closes_clients_with_1001_and_exits_0(self):
        srv = self.start(script=self.script(ECHO_LUA))
        clients = [self.client(srv) for _ in range(3)]
        raw = self.raw(srv)
        for i, c in enumerate(clients):  # every connection is fully open
            c.send("ping %d" % i)
            self.assertEqual(c.recv_raw(), "ping %d" % i)
        raw.send_text("raw")
        self.assertEqual(raw.recv_text(), "raw")
        srv.signal(signal.SIGTERM)
        for c in clients:
            code, _ = c.wait_close()
            self.assertEqual(code, 1001)
        f = raw.wait_close()
        self.assertIsNotNone(f, "no close frame")
        self.assertEqual(f.close_code, 1001)
        raw.send_close(1001)
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

