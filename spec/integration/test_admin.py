"""The admin listener (--admin-addr): /metrics in Prometheus' text format, read by Debian's
prometheus_client parser, with counters that move with traffic; /healthz; /readyz that turns 503
when a reload of the script fails; and nothing of it on the public port (nor the public site on
the admin port). The admin port has the public port's limits and timeouts."""

import re
import signal
import socket
import time

from prometheus_client.parser import text_string_to_metric_families

from helpers import (ECHO_LUA, OP_PING, OP_PONG, RELAY_LUA, WAIT, Conn, ConfabTest, get,
                     handshake, run_confab)

# Relays like RELAY_LUA; "boom" raises in the hook; "spin" loops until the time limit.
FAULTY_LUA = RELAY_LUA.replace('confab.on("message", function(ev)', '''confab.on("message", function(ev)
  if ev.data == "boom" then error("boom on purpose") end
  if ev.data == "spin" then while true do end end''')

# RELAY_LUA that logs each disconnect.
GONE_LUA = RELAY_LUA + """
confab.on("disconnect", function(ev) confab.log("info", "gone %d", ev.id) end)
"""

BROKEN_LUA = """local confab = require "confab"
confab.on("message", function(ev)
  local x = = 1
end)
"""


def admin_port(srv):
    m = srv.wait_log(r"admin \(/metrics /healthz /readyz\) on 127\.0\.0\.1:(\d+)")
    return int(m.group(1))


def scrape(port):
    """{(name, frozenset(labels.items())): value} of every sample, and the raw text."""
    r = get(port, "/metrics")
    assert r.status == 200, r
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4"), r.headers
    text = r.body.decode()
    samples = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples, text


def value(samples, name, **labels):
    key = (name, frozenset(labels.items()))
    if key not in samples:
        raise AssertionError("no sample %s%r among %d" % (name, labels, len(samples)))
    return samples[key]


class Metrics(ConfabTest):
    def test_metrics_parse_and_move_with_traffic(self):
        srv = self.start("--admin-addr", "127.0.0.1:0", script=self.script(GONE_LUA))
        port = admin_port(srv)
        before, text = scrape(port)
        families = {f.name: f.type for f in text_string_to_metric_families(text)}
        for name, typ in [("confab_connections", "gauge"), ("confab_rooms", "gauge"),
                          ("confab_messages_received", "counter"),
                          ("confab_deliveries", "counter"),
                          ("confab_received_bytes", "counter"), ("confab_sent_bytes", "counter"),
                          ("confab_frames_dropped", "counter"),
                          ("confab_slow_consumers_closed", "counter"),
                          ("confab_handshakes_refused", "counter"),
                          ("confab_hook_calls", "counter"),
                          ("confab_hook_duration_seconds", "histogram"),
                          ("confab_hook_errors", "counter"), ("confab_hook_aborts", "counter"),
                          ("confab_lua_memory_bytes", "gauge"),
                          ("confab_request_memory_bytes", "gauge"),
                          ("confab_message_memory_bytes", "gauge"),
                          ("confab_script_reloads", "counter"),
                          ("confab_loop_iteration_seconds", "histogram"),
                          ("process_cpu_seconds", "counter")]:
            self.assertEqual(families.get(name), typ, name)
        self.assertEqual(value(before, "confab_connections", state="ws"), 0)
        self.assertGreater(value(before, "confab_lua_memory_bytes"), 0)

        clients = [self.client(srv) for _ in range(3)]
        for c in clients:
            c.send("join")
            self.assertEqual(c.recv_raw(), "joined")
        n = 5
        for i in range(n):
            clients[0].send("hello %d" % i)
        for c in clients:
            for i in range(n):
                self.assertEqual(c.recv_raw(), "hello %d" % i)

        after, _ = scrape(port)
        d = lambda name, **lb: value(after, name, **lb) - value(before, name, **lb)  # noqa: E731
        self.assertEqual(value(after, "confab_connections", state="ws"), 3)
        self.assertEqual(value(after, "confab_rooms"), 1)
        self.assertEqual(d("confab_messages_received_total"), 3 + n)  # 3 joins, n messages
        self.assertEqual(d("confab_message_bytes_received_total"),
                         3 * len("join") + sum(len("hello %d" % i) for i in range(n)))
        # 3 "joined" replies and each message to all 3 members.
        self.assertEqual(d("confab_deliveries_total"), 3 + 3 * n)
        self.assertEqual(d("confab_websocket_upgrades_total"), 3)
        self.assertEqual(d("confab_hook_calls_total", hook="message"), 3 + n)
        self.assertEqual(d("confab_hook_duration_seconds_count", hook="message"), 3 + n)
        # The script has no connect hook: upgrades cost no Lua call (nor a time limit armed).
        self.assertEqual(d("confab_hook_calls_total", hook="connect"), 0)
        self.assertGreater(d("confab_received_bytes_total"), 3 * 150)  # handshakes and frames
        self.assertGreater(d("confab_sent_bytes_total"), 3 * 129)  # 101s and frames
        self.assertGreater(d("confab_loop_iteration_seconds_count"), 0)
        self.assertGreaterEqual(d("confab_connections_accepted_total"), 3)

        for c in clients:
            c.close()
        srv.wait_log(r"(gone \d+[\s\S]*){3}")  # the disconnect hooks ran: closes are counted
        end, _ = scrape(port)
        self.assertEqual(value(end, "confab_connections", state="ws"), 0)
        self.assertEqual(value(end, "confab_websocket_closes_total", code="1000")
                         - value(before, "confab_websocket_closes_total", code="1000"), 3)
        self.assertEqual(value(end, "confab_rooms"), 0)

    def test_refusals_errors_and_aborts_are_counted(self):
        srv = self.start("--admin-addr", "127.0.0.1:0", "--hook-timeout", "30",
                         script=self.script(FAULTY_LUA))
        port = admin_port(srv)
        before, _ = scrape(port)
        r, c, _ = handshake(srv.port, headers=[("Sec-WebSocket-Version", "8")])
        c.close()
        self.assertEqual(r.status, 426)
        r, c, _ = handshake(srv.port, headers=[("Origin", "http://evil.example")])
        c.close()
        self.assertEqual(r.status, 403)
        r, c, _ = handshake(srv.port, drop=["Sec-WebSocket-Key"])
        c.close()
        self.assertEqual(r.status, 400)
        cl = self.client(srv)
        cl.send("boom")
        srv.wait_log(r"boom on purpose")
        cl.send("spin")
        srv.wait_log(r"exceeded its time limit")
        cl.send("join")  # still served
        self.assertEqual(cl.recv_raw(), "joined")
        after, _ = scrape(port)
        d = lambda name, **lb: value(after, name, **lb) - value(before, name, **lb)  # noqa: E731
        self.assertEqual(d("confab_handshakes_refused_total", reason="version"), 1)
        self.assertEqual(d("confab_handshakes_refused_total", reason="origin"), 1)
        self.assertEqual(d("confab_handshakes_refused_total", reason="bad_request"), 1)
        self.assertEqual(d("confab_hook_errors_total"), 2)
        self.assertEqual(d("confab_hook_aborts_total"), 1)
        self.assertGreaterEqual(d("confab_http_responses_total", **{"class": "4xx"}), 3)

    def test_control_frames_are_not_deliveries(self):
        srv = self.start("--admin-addr", "127.0.0.1:0", script=self.script(ECHO_LUA))
        port = admin_port(srv)
        ws = self.raw(srv)
        ws.send_text("one")
        self.assertEqual(ws.recv_text(), "one")
        before, _ = scrape(port)
        for i in range(3):
            ws.send_frame(OP_PING, b"p%d" % i)
            f = ws.recv_frame()
            self.assertEqual((f.opcode, f.payload), (OP_PONG, b"p%d" % i))
        ws.send_text("two")
        self.assertEqual(ws.recv_text(), "two")
        after, _ = scrape(port)
        self.assertEqual(value(after, "confab_deliveries_total")
                         - value(before, "confab_deliveries_total"), 1)

    def test_slow_consumer_is_counted(self):
        srv = self.start("--admin-addr", "127.0.0.1:0", "--send-queue", "64K",
                         script=self.script(RELAY_LUA))
        port = admin_port(srv)
        slow = self.raw(srv, rcvbuf=4096)
        slow.send_text("join")
        self.assertEqual(slow.recv_text(), "joined")
        fast = self.raw(srv)
        fast.send_text("join")
        self.assertEqual(fast.recv_text(), "joined")
        text = "x" * 8000
        sent = 0
        # Towards a peer that reads nothing, until the server cuts it off (bounded: 32 MB).
        while sent < 4000 and not srv.find_log(r"slow consumer closed"):
            for _ in range(4):
                fast.send_text(text)
            for _ in range(4):
                self.assertEqual(fast.recv_text(), text)
            sent += 4
        srv.wait_log(r"slow consumer closed")
        m, _ = scrape(port)
        self.assertEqual(value(m, "confab_slow_consumers_closed_total"), 1)
        self.assertGreaterEqual(value(m, "confab_frames_dropped_total"), 1)


class Readiness(ConfabTest):
    def test_healthz_and_readyz(self):
        srv = self.start("--admin-addr", "127.0.0.1:0", script=self.script(ECHO_LUA))
        port = admin_port(srv)
        r = get(port, "/healthz")
        self.assertEqual((r.status, r.body), (200, b"ok\n"))
        r = get(port, "/readyz")
        self.assertEqual(r.status, 200, r)
        self.assertIn(b"script: ok", r.body)
        self.assertIn(b"listening: ok", r.body)
        r = get(port, "/readyz", method="HEAD")
        self.assertEqual((r.status, r.body), (200, b""))

    def test_readyz_flips_when_a_reload_fails_and_back(self):
        path = self.script(ECHO_LUA)
        srv = self.start("--admin-addr", "127.0.0.1:0", script=path)
        port = admin_port(srv)
        self.assertEqual(get(port, "/readyz").status, 200)
        with open(path, "w") as f:
            f.write(BROKEN_LUA)
        srv.signal(signal.SIGHUP)
        srv.wait_log(r"reload failed")
        r = get(port, "/readyz")
        self.assertEqual(r.status, 503, r)
        self.assertIn(b"script: the last load failed", r.body)
        self.assertEqual(get(port, "/healthz").status, 200)  # alive all the same
        c = self.client(srv)  # the previous script still serves
        c.send("still here")
        self.assertEqual(c.recv_raw(), "still here")
        m, _ = scrape(port)
        self.assertEqual(value(m, "confab_script_reloads_total", result="failed"), 1)
        self.assertEqual(value(m, "confab_script_loaded"), 0)
        with open(path, "w") as f:
            f.write(ECHO_LUA)
        srv.signal(signal.SIGHUP)
        srv.wait_log(r"reloaded \(SIGHUP\)")
        self.assertEqual(get(port, "/readyz").status, 200)
        m, _ = scrape(port)
        self.assertEqual(value(m, "confab_script_reloads_total", result="ok"), 1)
        self.assertEqual(value(m, "confab_script_loaded"), 1)


class Separation(ConfabTest):
    def test_admin_paths_are_not_on_the_public_port(self):
        srv = self.start("--admin-addr", "127.0.0.1:0", script=self.script(ECHO_LUA))
        admin_port(srv)
        for path in ("/metrics", "/healthz", "/readyz"):
            r = get(srv.port, path)
            self.assertEqual(r.status, 404, (path, r))
            self.assertNotIn(b"confab_", r.body)

    def test_public_site_is_not_on_the_admin_port(self):
        srv = self.start("--admin-addr", "127.0.0.1:0", script=self.script(ECHO_LUA))
        port = admin_port(srv)
        self.assertEqual(get(srv.port, "/index.html").status, 200)
        self.assertEqual(get(port, "/index.html").status, 404)
        self.assertEqual(get(port, "/").status, 404)
        r, c, _ = handshake(port)
        c.close()
        self.assertEqual(r.status, 404, r)  # no WebSocket on the admin port
        self.assertEqual(get(port, "/metrics", method="POST").status, 405)

    def test_no_admin_listener_by_default(self):
        srv = self.start(script=self.script(ECHO_LUA))
        self.assertIsNone(srv.find_log(r"admin"))

    def test_port_without_host_binds_loopback_only(self):
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
        probe.close()
        srv = self.start("--admin-addr", str(free), script=self.script(ECHO_LUA))
        self.assertEqual(admin_port(srv), free)
        srv = self.start("--admin-addr", ":0", script=self.script(ECHO_LUA))
        admin_port(srv)  # "127.0.0.1:N"

    def test_admin_on_the_public_port_is_refused(self):
        r = run_confab("--addr", "127.0.0.1:18080", "--admin-addr", "18080")
        self.assertEqual(r.returncode, 2, r)
        self.assertIn("--admin-addr", r.stderr)
        r = run_confab("--admin-addr", "nonsense:port")
        self.assertEqual(r.returncode, 2, r)


class Hardening(ConfabTest):
    def test_admin_has_the_request_limits(self):
        srv = self.start("--admin-addr", "127.0.0.1:0", "--max-request", "1K",
                         script=self.script(ECHO_LUA))
        port = admin_port(srv)
        r = get(port, "/metrics", extra="X-Pad: %s\r\n" % ("a" * 2000))
        self.assertEqual(r.status, 431, r)

    def test_admin_has_the_request_timeout(self):
        srv = self.start("--admin-addr", "127.0.0.1:0", "--handshake-timeout", "0.5",
                         script=self.script(ECHO_LUA))
        port = admin_port(srv)
        c = Conn(port)
        self.addCleanup(c.close)
        c.send("GET /metrics HTTP/1.1\r\n")  # and never the rest
        started = time.monotonic()
        c.wait_eof(WAIT)
        self.assertLess(time.monotonic() - started, WAIT)

    def test_keep_alive_and_pipelining_on_admin(self):
        srv = self.start("--admin-addr", "127.0.0.1:0", script=self.script(ECHO_LUA))
        port = admin_port(srv)
        c = Conn(port)
        self.addCleanup(c.close)
        req = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        c.send(req * 3)
        for _ in range(3):
            r = c.read_response()
            self.assertEqual((r.status, r.body), (200, b"ok\n"))


class RedisReadiness(ConfabTest):
    """With --redis, /readyz waits for every shard's links and /metrics shows them."""

    def test_readyz_follows_the_redis_links(self):
        from redis_server import RedisServer
        redis = RedisServer(self.tmp)
        self.addCleanup(redis.stop)
        srv = self.start("--redis", redis.url, "--admin-addr", "127.0.0.1:0",
                         script=self.script(ECHO_LUA))
        port = admin_port(srv)
        srv.wait_log(r"redis .*: connected")
        srv.wait_log(r"redis .*: subscribed")
        r = get(port, "/readyz")
        self.assertEqual(r.status, 200, r)
        self.assertIn(b"redis: ok", r.body)
        m, _ = scrape(port)
        self.assertEqual(value(m, "confab_redis_link_up", shard="0"), 1)
        self.assertEqual(value(m, "confab_redis_subscriber_up", shard="0"), 1)
        self.assertGreaterEqual(value(m, "confab_redis_connects_total", shard="0"), 1)

        redis.stop()
        srv.wait_log(r"redis .*: (command|subscriber) link lost")
        r = get(port, "/readyz")
        self.assertEqual(r.status, 503, r)
        self.assertIn(b"redis: shard 0:", r.body)
        self.assertEqual(get(port, "/healthz").status, 200)

        redis.restart(keep_data=False)
        n = len(re.findall(r"redis .*: subscribed", srv.log))
        srv.wait_log(r"(redis .*: subscribed[\s\S]*){%d}" % (n + 1), timeout=3 * WAIT)
        srv.wait_log(r"(redis .*: connected[\s\S]*){2}", timeout=3 * WAIT)
        self.assertEqual(get(port, "/readyz").status, 200)
