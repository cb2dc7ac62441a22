"""WebSocket framing against an echo script: limits, UTF-8, protocol errors, fragmentation,
ping/pong and keep-alive, the close handshake. Frames are made by hand on a raw socket."""

import time

from helpers import (ECHO_LUA, OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT,
                     ConfabTest, close_payload, encode_frame)


class Frames(ConfabTest):
    def serve(self, *flags):
        return self.start(*flags, script=self.script(ECHO_LUA))

    def assertClosedWith(self, ws, code):
        f = ws.wait_close()
        self.assertIsNotNone(f, "connection ended without a close frame (want %d)" % code)
        self.assertEqual(f.close_code, code, f)
        ws.send_close(code)  # answer, then the server must end the TCP connection
        ws.wait_eof()

    def test_text_and_binary_echo(self):
        srv = self.serve("--max-message", "200000")
        ws = self.raw(srv)
        ws.send_text("héllo")
        self.assertEqual(ws.recv_message(), (OP_TEXT, "héllo".encode()))
        ws.send_frame(OP_BINARY, b"\x00\xff\x10")
        self.assertEqual(ws.recv_message(), (OP_BINARY, b"\x00\xff\x10"))
        big = bytes(range(256)) * 400  # 102400 bytes: 64-bit length on the way in
        ws.send_frame(OP_BINARY, big)
        self.assertEqual(ws.recv_message(), (OP_BINARY, big))
        mid = "x" * 300  # 16-bit length
        ws.send_text(mid)
        self.assertEqual(ws.recv_text(), mid)

    def test_message_over_max_message_is_1009(self):
        srv = self.serve("--max-message", "1024")
        ws = self.raw(srv)
        ws.send_text("a" * 1024)
        self.assertEqual(ws.recv_text(), "a" * 1024)
        ws.send_text("b" * 1025)
        self.assertClosedWith(ws, 1009)

    def test_fragmented_message_over_max_message_is_1009(self):
        srv = self.serve("--max-message", "1024")
        ws = self.raw(srv)
        ws.send_frame(OP_TEXT, "a" * 600, fin=False)
        ws.send_frame(OP_CONT, "b" * 600, fin=True)
        self.assertClosedWith(ws, 1009)

    def test_announced_huge_length_is_1009(self):
        # The header and one payload byte: the server must refuse by the announced length,
        # without waiting for (or buffering) the terabyte.
        srv = self.serve("--max-message", "1024")
        ws = self.raw(srv)
        ws.send(encode_frame(OP_BINARY, b"", length=1 << 40)[:14] + b"x")
        self.assertClosedWith(ws, 1009)

    def test_invalid_utf8_text_is_1007(self):
        srv = self.serve()
        for bad in (b"\xff\xfe", b"ok \xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"abc\xe2\x82"):
            with self.subTest(bad=bad):
                ws = self.raw(srv)
                ws.send_frame(OP_TEXT, bad)
                self.assertClosedWith(ws, 1007)

    def test_invalid_utf8_across_fragments_is_1007(self):
        srv = self.serve()
        ws = self.raw(srv)
        ws.send_frame(OP_TEXT, b"abc\xe2", fin=False)
        ws.send_frame(OP_CONT, b"\x28\xa1", fin=True)
        self.assertClosedWith(ws, 1007)

    def test_unmasked_frame_is_1002(self):
        srv = self.serve()
        ws = self.raw(srv)
        ws.send_frame(OP_TEXT, "not masked", mask=False)
        self.assertClosedWith(ws, 1002)

    def test_other_protocol_errors_are_1002(self):
        srv = self.serve()
        cases = {
            "reserved bit": [encode_frame(OP_TEXT, "x", rsv=4)],
            "unknown opcode": [encode_frame(3, "x")],
            "fragmented ping": [encode_frame(OP_PING, "x", fin=False)],
            "ping over 125 bytes": [encode_frame(OP_PING, "p" * 126)],
            "continuation first": [encode_frame(OP_CONT, "x")],
            "new message inside a fragmented one": [encode_frame(OP_TEXT, "a", fin=False),
                                                    encode_frame(OP_TEXT, "b")],
            "one-byte close payload": [encode_frame(OP_CLOSE, b"\x03")],
        }
        for name, frames in cases.items():
            with self.subTest(case=name):
                ws = self.raw(srv)
                ws.send(b"".join(frames))
                self.assertClosedWith(ws, 1002)
        ws = self.raw(srv)  # the server is still fine
        ws.send_text("still here")
        self.assertEqual(ws.recv_text(), "still here")

    def test_fragments_are_reassembled_around_a_ping(self):
        srv = self.serve()
        ws = self.raw(srv)
        ws.send_frame(OP_TEXT, "Hel", fin=False)
        ws.send_frame(OP_CONT, b"lo, w\xc3", fin=False)  # a character split across fragments
        ws.send_frame(OP_PING, "mid")
        ws.send_frame(OP_CONT, b"\xa9rld", fin=True)
        pong, text = None, b""
        while pong is None or not text.endswith(b"rld"):
            f = ws.recv_frame()
            self.assertIsNotNone(f, "closed early")
            if f.opcode == OP_PONG:
                pong = f.payload
            elif f.opcode in (OP_TEXT, OP_CONT):
                text += f.payload
            else:
                self.fail("unexpected %r" % f)
        self.assertEqual((pong, text.decode()), (b"mid", "Hello, wérld"))

    def test_ping_is_answered_with_pong(self):
        srv = self.serve()
        ws = self.raw(srv)
        ws.send_frame(OP_PING, b"abc\x00")
        f = ws.recv_frame()
        self.assertEqual((f.opcode, f.payload), (OP_PONG, b"abc\x00"))
        ws.send_frame(OP_PING)
        f = ws.recv_frame()
        self.assertEqual((f.opcode, f.payload), (OP_PONG, b""))

    def test_close_handshake_from_client(self):
        srv = self.serve()
        ws = self.raw(srv)
        ws.send_frame(OP_CLOSE, close_payload(1000, b"bye"))
        f = ws.wait_close()
        self.assertIsNotNone(f)
        self.assertEqual(f.close_code, 1000)
        ws.wait_eof()

    def test_server_pings_and_a_pong_keeps_the_peer(self):
        srv = self.serve("--ping-interval", "0.5", "--pong-timeout", "1.5")
        ws = self.raw(srv, auto_pong=True)  # recv_message answers pings
        t0 = time.monotonic()
        ws.send_text("first")
        self.assertEqual(ws.recv_text(), "first")
        # Answer pings until 5 came: ~2.5 s, well past the 1.5 s pong timeout.
        pings = 0
        while pings < 5:
            f = ws.recv_frame(timeout=3)
            self.assertIsNotNone(f, "connection ended although the peer answers pings")
            self.assertEqual(f.opcode, OP_PING, f)
            pings += 1
            ws.send_frame(OP_PONG, f.payload)
        self.assertGreater(time.monotonic() - t0, 1.5)
        ws.send_text("still open")
        self.assertEqual(ws.recv_message(timeout=3), (OP_TEXT, b"still open"))

    def test_idle_peer_that_never_answers_is_closed(self):
        srv = self.serve("--ping-interval", "0.5", "--pong-timeout", "1.5")
        ws = self.raw(srv)
        t0 = time.monotonic()
        pings = 0
        while True:
            f = ws.recv_frame(timeout=6)
            if f is None or f.opcode == OP_CLOSE:
                break
            self.assertEqual(f.opcode, OP_PING, f)
            pings += 1
        elapsed = time.monotonic() - t0
        self.assertGreaterEqual(pings, 1, "no ping before the close")
        self.assertGreater(elapsed, 1.0)
        self.assertLess(elapsed, 5.0)

