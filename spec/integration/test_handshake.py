"""The WebSocket opening handshake (RFC 6455 section 4): accepted forms and each refusal."""

import asyncio
import base64
import json
import os
import re

import websockets

from helpers import PROBE_LUA, ConfabTest, handshake, ws_accept, ws_key


class Handshake(ConfabTest):
    def serve(self, *flags):
        return self.start(*flags, script=self.script(PROBE_LUA))

    def refused(self, srv, status, body_pattern, **kw):
        r, c, _ = handshake(srv.port, **kw)
        c.close()
        self.assertEqual(r.status, status, r)
        self.assertRegex(r.body.decode("utf-8", "replace"), re.compile(body_pattern, re.I),
                         "the body should give a reason: %r" % r)
        self.assertNotIn("sec-websocket-accept", r.headers)
        return r

    def accepted(self, srv, **kw):
        r, c, key = handshake(srv.port, **kw)
        c.close()
        self.assertEqual(r.status, 101, r)
        self.assertEqual(r.headers.get("sec-websocket-accept"), ws_accept(key), r)
        return r

    def test_accept_key_and_echo(self):
        srv = self.serve()
        ws = self.raw(srv)  # RawWS checks 101 and Sec-WebSocket-Accept
        self.assertEqual(ws.response.headers.get("upgrade", "").lower(), "websocket")
        self.assertIn("upgrade", ws.response.headers.get("connection", "").lower())
        hello = json.loads(ws.recv_text())
        self.assertEqual(hello["type"], "connect")
        ws.send_text("are you there?")
        self.assertEqual(ws.recv_text(), "are you there?")

    def test_known_accept_value_from_rfc(self):
        srv = self.serve()
        key = "dGhlIHNhbXBsZSBub25jZQ=="
        r, c, _ = handshake(srv.port, key=key)
        c.close()
        self.assertEqual(r.status, 101, r)
        self.assertEqual(r.headers.get("sec-websocket-accept"), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")

    def test_header_names_and_values_are_case_insensitive(self):
        srv = self.serve()
        key = ws_key()
        self.accepted(srv, key=key, drop=("Upgrade", "Connection", "Sec-WebSocket-Key",
                                          "Sec-WebSocket-Version"),
                      headers=[("UPGRADE", "WebSocket"), ("connection", "keep-alive, Upgrade"),
                               ("sec-websocket-key", key), ("SEC-WEBSOCKET-VERSION", "13")])
        for token_list in ("Upgrade, keep-alive", "keep-alive,upgrade", "UPGRADE"):
            self.accepted(srv, headers=[("Connection", token_list)])

    def test_missing_upgrade_is_400(self):
        srv = self.serve()
        self.refused(srv, 400, "upgrade", drop=("Upgrade",))
        self.refused(srv, 400, "upgrade", headers=[("Upgrade", "h2c")])

    def test_connection_without_upgrade_token_is_400(self):
        srv = self.serve()
        self.refused(srv, 400, "connection", drop=("Connection",))
        self.refused(srv, 400, "connection", headers=[("Connection", "keep-alive")])
        self.refused(srv, 400, "connection", headers=[("Connection", "Upgraded, close")])

    def test_bad_key_is_400(self):
        srv = self.serve()
        self.refused(srv, 400, "key", drop=("Sec-WebSocket-Key",))
        self.refused(srv, 400, "key", headers=[("Sec-WebSocket-Key", "!!!!not*base64!!!!!!!==")])
        self.refused(srv, 400, "key",
                     headers=[("Sec-WebSocket-Key", base64.b64encode(os.urandom(15)).decode())])
        self.refused(srv, 400, "key",
                     headers=[("Sec-WebSocket-Key", base64.b64encode(os.urandom(20)).decode())])

    def test_http_1_0_is_400(self):
        srv = self.serve()
        self.refused(srv, 400, r"1\.1|version|http", version="HTTP/1.0")

    def test_post_is_405(self):
        srv = self.serve()
        r, c, _ = handshake(srv.port, method="POST")
        c.close()
        self.assertEqual(r.status, 405, r)

    def test_version_8_is_426_with_supported_version(self):
        srv = self.serve()
        r = self.refused(srv, 426, "version", headers=[("Sec-WebSocket-Version", "8")])
        self.assertEqual(r.headers.get("sec-websocket-version", "").replace(" ", ""), "13", r)

    def test_missing_version_is_refused(self):
        srv = self.serve()
        r, c, _ = handshake(srv.port, drop=("Sec-WebSocket-Version",))
        c.close()
        self.assertIn(r.status, (400, 426), r)

    def test_origin_must_be_the_servers_own_by_default(self):
        srv = self.serve()
        self.accepted(srv, headers=[("Origin", "http://127.0.0.1:%d" % srv.port)])
        # Arrived on loopback: the loopback names are the server's too.
        self.accepted(srv, headers=[("Origin", "http://localhost:%d" % srv.port)])
        self.accepted(srv, headers=[("Origin", "http://[::1]:%d" % srv.port)])
        self.refused(srv, 403, "origin", headers=[("Origin", "http://evil.example")])
        self.refused(srv, 403, "origin", headers=[("Origin", "null")])

    def test_dns_rebinding_origin_matching_host_is_refused(self):
        # A page on evil.example whose name now resolves to 127.0.0.1 controls both headers.
        srv = self.serve()
        evil = "evil.example:%d" % srv.port
        self.refused(srv, 403, "origin", headers=[("Host", evil), ("Origin", "http://" + evil)])
        # A client that is not a browser sends no Origin: still served.
        self.accepted(srv, headers=[("Host", evil)])

    def test_origin_on_another_port_of_this_machine_is_accepted(self):
        # A local proxy or development server on another port is the same machine.
        srv = self.serve()
        other = 1 if srv.port != 1 else 2
        self.accepted(srv, headers=[("Origin", "http://127.0.0.1:%d" % other)])
        self.refused(srv, 403, "origin", headers=[("Origin", "http://127.0.0.2:%d" % srv.port)])

    def test_allow_origin_list(self):
        srv = self.serve("--allow-origin", "http://a.example,http://evil.example")
        self.accepted(srv, headers=[("Origin", "http://evil.example")])
        self.accepted(srv, headers=[("Origin", "http://a.example")])
        self.accepted(srv, headers=[("Origin", "http://127.0.0.1:%d" % srv.port)])
        self.refused(srv, 403, "origin", headers=[("Origin", "http://other.example")])

    def test_allow_any_origin(self):
        srv = self.serve("--allow-origin", "*")
        self.accepted(srv, headers=[("Origin", "http://evil.example")])
        self.accepted(srv, headers=[("Origin", "https://anything.test:8443")])

    def test_subprotocol_negotiation(self):
        srv = self.serve("--subprotocol", "chat,superchat")

        def negotiate(offer):
            headers = [("Sec-WebSocket-Protocol", offer)] if offer is not None else []
            ws = self.raw(srv, headers=headers)
            seen = json.loads(ws.recv_text())["subprotocol"]  # what the connect hook saw
            ws.close()
            return ws.response.headers.get("sec-websocket-protocol"), seen

        self.assertEqual(negotiate("superchat"), ("superchat", "superchat"))
        self.assertEqual(negotiate("foo, chat"), ("chat", "chat"))
        self.assertEqual(negotiate("superchat, chat"), ("chat", "chat"))  # server's preference
        self.assertEqual(negotiate("foo"), (None, None))
        self.assertEqual(negotiate(None), (None, None))

    def test_no_subprotocol_configured(self):
        srv = self.serve()
        ws = self.raw(srv, headers=[("Sec-WebSocket-Protocol", "chat")])
        self.assertNotIn("sec-websocket-protocol", ws.response.headers)

    def test_sub_path_and_query_reach_the_connect_hook(self):
        srv = self.serve()
        ws = self.raw(srv, path="/ws/room1?x=1&y=2")
        info = json.loads(ws.recv_text())
        self.assertEqual((info["path"], info["query"]), ("/ws/room1", "x=1&y=2"))
        self.assertRegex(info["remote"], r"^127\.0\.0\.1:\d+$")

    def test_websockets_library_client(self):
        srv = self.serve("--subprotocol", "chat,superchat")

        async def talk():
            uri = "ws://127.0.0.1:%d/ws" % srv.port
            async with websockets.connect(uri, subprotocols=["superchat"]) as ws:
                first = json.loads(await asyncio.wait_for(ws.recv(), 5))
                await ws.send("ünïcode ✓")
                echo = await asyncio.wait_for(ws.recv(), 5)
                await ws.send(b"\x00\x01\xff")
                echo_bin = await asyncio.wait_for(ws.recv(), 5)
                return ws.subprotocol, first["subprotocol"], echo, echo_bin

        self.assertEqual(asyncio.run(talk()),
                         ("superchat", "superchat", "ünïcode ✓", b"\x00\x01\xff"))



class OriginOnEveryInterface(ConfabTest):
    def test_ipv4_client_of_a_dual_stack_socket_has_its_own_origins(self):
        # ":0" listens on [::] for both families: an IPv4 client arrives on ::ffff:127.0.0.1,
        # which is still 127.0.0.1 and loopback for the Origin rules.
        srv = self.start("--addr", ":0", script=self.script(PROBE_LUA), wait_listening=False)
        srv.port = int(srv.wait_log(r"listening on \[::\]:(\d+)").group(1))
        for origin, status in (("http://127.0.0.1:%d" % srv.port, 101),
                               ("http://localhost:%d" % srv.port, 101),
                               ("http://evil.example:%d" % srv.port, 403)):
            r, c, _ = handshake(srv.port, headers=[("Origin", origin)])
            c.close()
            self.assertEqual(r.status, status, (origin, r))


CLOSE_THEN_REFUSE_LUA = """
local confab = require "confab"
confab.on("connect", function(ev) confab.close(ev.id, 4000, "bye"); return false, "nope" end)
"""


class ConnectRefusal(ConfabTest):
    def test_a_hook_that_closes_then_refuses_gets_403_and_no_bug_report(self):
        srv = self.start(script=self.script(CLOSE_THEN_REFUSE_LUA))
        r, c, _ = handshake(srv.port)
        self.assertEqual(r.status, 403, r)
        self.assertIn(b"nope", r.body)
        self.assertEqual(c.wait_eof(), b"")  # nothing after the response: no close frame
        c.close()
        srv.wait_log(r"refused by the connect hook: nope")
        self.assertIsNone(srv.find_log(r"\bbug\b"), srv.log_tail())
