"""Connection caps: --max-connections and --max-connections-per-ip (127.0.0.x sources): over a
cap the connection is answered 503 with Retry-After and the reason, logged once per interval."""

import re
import socket

from helpers import ConfabTest, Conn, ECHO_LUA, RawWS, WAIT, run_confab, upgrade_request


def refused(port, source=None):
    """Opens a connection (from source), sends an upgrade and returns the response."""
    c = Conn(port, source=source)
    try:
        c.send(upgrade_request(port)[0])
        return c.read_response()
    finally:
        c.close()


class Caps(ConfabTest):
    def echo(self, ws, text):
        ws.send_text(text)
        self.assertEqual(ws.recv_text(), text)

    def test_global_cap_answers_503_with_retry_after_and_frees_the_slot_on_close(self):
        srv = self.start("--max-connections", "3", "--log-level", "debug",
                         script=self.script(ECHO_LUA))
        held = [self.raw(srv) for _ in range(3)]
        for i, ws in enumerate(held):
            self.echo(ws, "hi %d" % i)
        r = refused(srv.port)
        self.assertEqual(r.status, 503, r)
        self.assertTrue(r.headers.get("retry-after", "").isdigit(), r)
        self.assertIn(b"too many connections", r.body)
        # A static file is refused the same way: the cap counts connections, not upgrades.
        c = self.conn(srv)
        c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(c.read_response().status, 503)
        # The ones admitted are untouched.
        self.echo(held[0], "still here")
        # One leaves: once the server has freed it, a newcomer is admitted.
        held[1].send_close(1000)
        self.assertIsNotNone(held[1].wait_close())
        held[1].close()
        srv.wait_log(r"freed, 2 connections admitted")
        newcomer = self.raw(srv)
        self.echo(newcomer, "in")

    def test_per_ip_cap_counts_each_source_address(self):
        srv = self.start("--max-connections-per-ip", "2", script=self.script(ECHO_LUA))
        a = [self.raw(srv, source="127.0.0.2") for _ in range(2)]
        r = refused(srv.port, source="127.0.0.2")
        self.assertEqual(r.status, 503, r)
        self.assertIn(b"from your address", r.body)
        self.assertTrue(r.headers.get("retry-after", "").isdigit(), r)
        # Other addresses have their own count.
        b = [self.raw(srv, source="127.0.0.3") for _ in range(2)]
        local = self.raw(srv)
        for ws in a + b + [local]:
            self.echo(ws, "ok")
        self.assertEqual(refused(srv.port, source="127.0.0.3").status, 503)

    def test_refusals_are_logged_once_per_interval_not_once_each(self):
        srv = self.start("--max-connections-per-ip", "1", script=self.script(ECHO_LUA))
        first = self.raw(srv, source="127.0.0.4")
        for _ in range(30):  # each gets its answer: every refusal has happened when it arrives
            self.assertEqual(refused(srv.port, source="127.0.0.4").status, 503)
        self.echo(first, "fine")
        # The log is read by a thread that may lag behind the answers: await the line first.
        srv.wait_log(r"refused")
        lines = re.findall(r".*refused.*", srv.log)
        self.assertEqual(len(lines), 1, "\n".join(lines))
        self.assertIn("127.0.0.4", lines[0])
        self.assertIn("--max-connections-per-ip 1", lines[0])

    def test_per_ip_cap_over_ipv6_loopback(self):
        srv = self.start("--max-connections-per-ip", "1", "--addr", "[::1]:0",
                         script=self.script(ECHO_LUA), wait_listening=False)
        port = int(srv.wait_log(r"listening on \[::1\]:(\d+)").group(1))
        socks = []

        def upgrade():
            s = socket.create_connection(("::1", port), timeout=WAIT)
            socks.append(s)
            s.sendall(upgrade_request(port)[0].encode())
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = s.recv(4096)
                if not chunk:
                    break
                head += chunk
            return head.split(b"\r\n")[0]

        try:
            self.assertIn(b" 101 ", upgrade())
            self.assertIn(b" 503 ", upgrade())
            srv.wait_log(r"connection from ::/64 refused with 503")
        finally:
            for s in socks:
                s.close()

    def test_bad_values_are_refused(self):
        for flag, value in (("--max-connections", "-1"), ("--max-connections", "x"),
                            ("--max-connections-per-ip", "1.5")):
            r = run_confab(flag, value)
            self.assertEqual(r.returncode, 2, (flag, value, r.stderr))
            self.assertIn(flag, r.stderr)


class CapsDefaults(ConfabTest):
    def test_no_cap_by_default_many_from_one_address(self):
        srv = self.start(script=self.script(ECHO_LUA))
        conns = [RawWS(srv.port, source="127.0.0.5") for _ in range(40)]
        try:
            for ws in conns:
                ws.send_text("x")
            for ws in conns:
                self.assertEqual(ws.recv_text(), "x")
        finally:
            for ws in conns:
                ws.close()


class CapsMetrics(ConfabTest):
    def test_refusals_and_admitted_connections_show_in_metrics(self):
        from test_admin import admin_port, scrape, value
        srv = self.start("--admin-addr", "127.0.0.1:0", "--max-connections-per-ip", "1",
                         script=self.script(ECHO_LUA))
        port = admin_port(srv)
        a = self.raw(srv, source="127.0.0.6")
        b = self.raw(srv, source="127.0.0.7")
        for _ in range(3):
            self.assertEqual(refused(srv.port, source="127.0.0.6").status, 503)
        samples, _ = scrape(port)  # the admin connection itself is not counted
        self.assertEqual(value(samples, "confab_connections_refused_total",
                               reason="max_connections_per_ip"), 3)
        self.assertEqual(value(samples, "confab_connections_refused_total",
                               reason="max_connections"), 0)
        self.assertEqual(value(samples, "confab_connections_admitted"), 2)
        self.assertEqual(value(samples, "confab_connection_addresses"), 2)
        a.send_text("x")
        self.assertEqual(a.recv_text(), "x")
        b.send_text("y")
        self.assertEqual(b.recv_text(), "y")
