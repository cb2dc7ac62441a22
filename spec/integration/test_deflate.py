"""permessage-deflate (RFC 7692) against the real server: the negotiation as a client sees it,
compressed messages in both directions (whole and fragmented), a deflate bomb (1009), corrupt
data (1007), misplaced RSV1 (1002), a room mixing compressing and plain members, --deflate off
and --deflate-min. Raw sockets with Python's zlib, and Python's websockets client (which speaks
permessage-deflate with parameters)."""

import asyncio
import json
import zlib

import websockets
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

from helpers import (ECHO_LUA, OP_BINARY, OP_CONT, OP_PING, OP_TEXT, RELAY_LUA, WAIT,
                     ConfabTest, handshake)

ANSWER = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
CHAT_JSON = json.dumps({"type": "message", "room": "lobby", "from": "alice", "id": 1234,
                        "text": "hello everybody, hello again, is anybody there? hello!"})


def deflate(data, wbits=15):
    """data compressed as a permessage-deflate sender does (the final 00 00 ff ff removed)."""
    z = zlib.compressobj(9, zlib.DEFLATED, -wbits)
    out = z.compress(data) + z.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def inflate(payload, wbits=15):
    return zlib.decompressobj(-wbits).decompress(payload + b"\x00\x00\xff\xff")


class Deflate(ConfabTest):
    def echo(self, *flags):
        return self.start(*flags, script=self.script(ECHO_LUA))

    def deflate_ws(self, srv, offer="permessage-deflate; client_max_window_bits"):
        ws = self.raw(srv, headers=[("Sec-WebSocket-Extensions", offer)])
        return ws

    def assertClosedWith(self, ws, code):
        f = ws.wait_close()
        self.assertIsNotNone(f, "connection ended without a close frame (want %d)" % code)
        self.assertEqual(f.close_code, code, f)
        ws.send_close(code)
        ws.wait_eof()

    def test_negotiation_as_clients_see_it(self):
        srv = self.echo()
        cases = [
            ([], None),
            (["permessage-deflate"], ANSWER),
            (["permessage-deflate; client_max_window_bits"], ANSWER),  # Chromium's offer
            (["permessage-deflate; client_max_window_bits=10"], ANSWER),
            (["permessage-deflate; server_no_context_takeover; client_no_context_takeover"],
             ANSWER),
            (["permessage-deflate; server_max_window_bits=10"],
             ANSWER + "; server_max_window_bits=10"),
            (["permessage-deflate; server_max_window_bits=8"], None),  # zlib cannot: declined
            (["permessage-deflate; server_max_window_bits=8, permessage-deflate"], ANSWER),
            (["permessage-deflate; server_max_window_bits=16"], None),
            (["permessage-deflate; server_max_window_bits"], None),
            (["permessage-deflate; client_no_context_takeover; client_no_context_takeover"],
             None),
            (["permessage-deflate; frobnicate"], None),
            (["permessage-deflate; frobnicate, permessage-deflate; server_max_window_bits=12"],
             ANSWER + "; server_max_window_bits=12"),
            (["x-webkit-deflate-frame", "permessage-deflate; server_max_window_bits=\"9\""],
             ANSWER + "; server_max_window_bits=9"),
            (["permessage-deflate; server_max_window_bits=\"1"], None),
        ]
        for offers, want in cases:
            with self.subTest(offers=offers):
                resp, c, _ = handshake(srv.port, headers=[("Sec-WebSocket-Extensions", o)
                                                          for o in offers])
                c.close()
                self.assertEqual(resp.status, 101, resp)  # a declined offer never fails it
                self.assertEqual(resp.headers.get("sec-websocket-extensions"), want)

    def test_compressed_echo_whole_and_fragmented(self):
        srv = self.echo("--max-message", "200000")
        ws = self.deflate_ws(srv)
        self.assertEqual(ws.response.headers["sec-websocket-extensions"], ANSWER)
        ws.send_frame(OP_TEXT, deflate(CHAT_JSON.encode()), rsv=4)
        f = ws.recv_frame()
        self.assertEqual((f.opcode, f.rsv, f.fin), (OP_TEXT, 4, True))
        self.assertLess(len(f.payload), len(CHAT_JSON))
        self.assertEqual(inflate(f.payload).decode(), CHAT_JSON)

        # Fragmented: RSV1 on the first frame only, a ping in the middle.
        text = ("".join("line %d of a long log, repeated a lot; " % i for i in range(3000))
                ).encode()
        z = deflate(text)
        third = len(z) // 3
        ws.send_frame(OP_BINARY, z[:third], rsv=4, fin=False)
        ws.send_frame(OP_PING, b"mid")
        ws.send_frame(OP_CONT, z[third:2 * third], fin=False)
        ws.send_frame(OP_CONT, z[2 * third:], fin=True)
        pong = ws.recv_frame()
        self.assertEqual(pong.payload, b"mid")
        f = ws.recv_frame()
        self.assertEqual((f.opcode, f.rsv), (OP_BINARY, 4))
        self.assertEqual(inflate(f.payload), text)

        # A plain message on the same connection is fine too.
        ws.send_text("plain")
        f = ws.recv_frame()
        self.assertEqual((f.rsv, f.payload), (0, b"plain"))  # under --deflate-min: plain

    def test_websockets_client_with_parameters(self):
        srv = self.echo("--max-message", "300000")

        async def run(**params):
            factory = ClientPerMessageDeflateFactory(**params)
            async with websockets.connect("ws://127.0.0.1:%d/ws" % srv.port,
                                          extensions=[factory], compression=None,
                                          open_timeout=WAIT, close_timeout=1,
                                          max_size=None) as ws:
                header = ws.response_headers.get("Sec-WebSocket-Extensions")
                for msg in (CHAT_JSON, "x" * 250000, bytes(range(256)) * 100, "é" * 1000):
                    await ws.send(msg)
                    self.assertEqual(await asyncio.wait_for(ws.recv(), WAIT), msg)
                await ws.send(iter(["part one, ", "part two, ", "part three"]))
                self.assertEqual(await asyncio.wait_for(ws.recv(), WAIT),
                                 "part one, part two, part three")
                return header

        self.assertEqual(asyncio.run(run(client_max_window_bits=True)), ANSWER)
        self.assertEqual(asyncio.run(run(server_max_window_bits=10, client_max_window_bits=9)),
                         ANSWER + "; server_max_window_bits=10")
        self.assertEqual(asyncio.run(run(server_no_context_takeover=True,
                                         client_no_context_takeover=True)), ANSWER)

    def test_deflate_bomb_is_1009_and_others_go_on(self):
        srv = self.echo("--max-message", "65536")
        other = self.deflate_ws(srv)
        ws = self.deflate_ws(srv)
        bomb = deflate(bytes(16 << 20))  # 16 MB of zeros in about 16 KB
        self.assertLess(len(bomb), 20000)
        ws.send_frame(OP_BINARY, bomb, rsv=4)
        self.assertClosedWith(ws, 1009)
        # Exactly the limit inflated passes.
        ok = self.deflate_ws(srv)
        ok.send_frame(OP_BINARY, deflate(bytes(65536)), rsv=4)
        f = ok.recv_frame()
        self.assertEqual(inflate(f.payload), bytes(65536))
        other.send_frame(OP_TEXT, deflate(CHAT_JSON.encode()), rsv=4)
        self.assertEqual(inflate(other.recv_frame().payload).decode(), CHAT_JSON)

    def test_corrupt_data_is_1007(self):
        srv = self.echo()
        ws = self.deflate_ws(srv)
        ws.send_frame(OP_TEXT, b"\xff\xff\xff\xff\x00", rsv=4)
        f = ws.wait_close()
        self.assertEqual(f.close_code, 1007)
        self.assertIn(b"compressed", f.payload)
        # Inflates fine, but to invalid UTF-8 in a text message.
        ws = self.deflate_ws(srv)
        ws.send_frame(OP_TEXT, deflate(b"ok \xc0\xaf"), rsv=4)
        self.assertClosedWith(ws, 1007)

    def test_misplaced_rsv1_is_1002(self):
        srv = self.echo()
        z = deflate(CHAT_JSON.encode())
        ws = self.deflate_ws(srv)
        ws.send_frame(OP_PING, b"x", rsv=4)
        self.assertClosedWith(ws, 1002)
        ws = self.deflate_ws(srv)
        ws.send_frame(OP_TEXT, z[:10], rsv=4, fin=False)
        ws.send_frame(OP_CONT, z[10:], rsv=4)
        self.assertClosedWith(ws, 1002)
        ws = self.raw(srv)  # not negotiated
        ws.send_frame(OP_TEXT, z, rsv=4)
        self.assertClosedWith(ws, 1002)

    def test_deflate_off(self):
        srv = self.echo("--deflate", "off")
        ws = self.deflate_ws(srv)
        self.assertNotIn("sec-websocket-extensions", ws.response.headers)
        ws.send_text(CHAT_JSON)
        f = ws.recv_frame()
        self.assertEqual((f.rsv, f.payload.decode()), (0, CHAT_JSON))
        ws.send_frame(OP_TEXT, deflate(CHAT_JSON.encode()), rsv=4)
        self.assertClosedWith(ws, 1002)

    def test_deflate_min(self):
        srv = self.echo("--deflate-min", "1000")
        ws = self.deflate_ws(srv)
        small, large = "a" * 999, "b" * 1000
        ws.send_text(small)
        f = ws.recv_frame()
        self.assertEqual((f.rsv, f.payload.decode()), (0, small))
        ws.send_text(large)
        f = ws.recv_frame()
        self.assertEqual(f.rsv, 4)
        self.assertEqual(inflate(f.payload).decode(), large)

    def test_room_of_compressing_and_plain_members(self):
        srv = self.start(script=self.script(RELAY_LUA))
        members = {
            "deflate": self.deflate_ws(srv),
            "deflate2": self.deflate_ws(srv, "permessage-deflate"),
            "window10": self.deflate_ws(srv, "permessage-deflate; server_max_window_bits=10"),
            "plain": self.raw(srv),
            "plain2": self.raw(srv, headers=[("Sec-WebSocket-Extensions",
                                              "x-webkit-deflate-frame")]),
        }
        for ws in members.values():
            ws.send_text("join")
            f = ws.recv_frame()
            self.assertEqual(f.payload, b"joined")
        lib_plain = self.client(srv)  # websocket-client: offers nothing
        lib_plain.send("join")
        self.assertEqual(lib_plain.recv_raw(), "joined")

        async def with_websockets():
            async with websockets.connect("ws://127.0.0.1:%d/ws" % srv.port,
                                          open_timeout=WAIT, close_timeout=1) as ws:
                self.assertEqual(ws.response_headers["Sec-WebSocket-Extensions"], ANSWER)
                await ws.send("join")
                self.assertEqual(await asyncio.wait_for(ws.recv(), WAIT), "joined")
                members["deflate"].send_frame(OP_TEXT, deflate(CHAT_JSON.encode()), rsv=4)
                return await asyncio.wait_for(ws.recv(), WAIT)

        self.assertEqual(asyncio.run(with_websockets()), CHAT_JSON)
        frames = {name: ws.recv_frame() for name, ws in members.items()}
        for name, f in frames.items():
            with self.subTest(member=name):
                compressed = not name.startswith("plain")
                self.assertEqual(f.rsv, 4 if compressed else 0)
                text = inflate(f.payload, 10 if name == "window10" else 15) if compressed \
                    else f.payload
                self.assertEqual(text.decode(), CHAT_JSON)
        # One compressed frame serves every member of the same window: the same bytes.
        self.assertEqual(frames["deflate"].payload, frames["deflate2"].payload)
        self.assertEqual(frames["plain"].payload, frames["plain2"].payload)
        self.assertEqual(lib_plain.recv_raw(), CHAT_JSON)

    def test_chat_lua_posts_compressed(self):
        # chat.lua broadcasts with confab.post: a deflate member gets the line compressed, a
        # plain member plain, both the same JSON.
        srv = self.start()
        a, b = self.deflate_ws(srv), self.raw(srv)

        def next_json(ws, wbits=15):
            f = ws.recv_frame()
            self.assertIsNotNone(f)
            return f.rsv, json.loads(inflate(f.payload, wbits) if f.rsv else f.payload)

        def until_type(ws, kind):
            while True:
                rsv, msg = next_json(ws)
                if msg.get("type") == kind:
                    return rsv, msg

        for ws, name in ((a, "zed"), (b, "yan")):
            ws.send_text(json.dumps({"type": "hello", "name": name}))
            until_type(ws, "welcome")
        text = "a line long enough to be worth compressing, " * 4
        a.send_frame(OP_TEXT, deflate(json.dumps({"type": "say", "room": "lobby",
                                                  "text": text}).encode()), rsv=4)
        rsv_a, got_a = until_type(a, "message")
        rsv_b, got_b = until_type(b, "message")
        self.assertEqual((rsv_a, rsv_b), (4, 0))
        self.assertEqual(got_a["text"], text)
        self.assertEqual(got_a, got_b)
