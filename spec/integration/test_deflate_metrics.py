"""/metrics counts permessage-deflate's compression (messages, bytes before and after, the
ratio)."""

import zlib

from helpers import ECHO_LUA, OP_TEXT, ConfabTest, RawWS
from test_admin import admin_port, scrape, value


class DeflateMetrics(ConfabTest):
    def test_deflate_is_counted(self):
        srv = self.start("--admin-addr", "127.0.0.1:0", script=self.script(ECHO_LUA))
        admin = admin_port(srv)
        before, _ = scrape(admin)
        ws = RawWS(srv.port, headers=[("Sec-WebSocket-Extensions", "permessage-deflate")])
        self.addCleanup(ws.close)
        text = "all work and no play " * 50  # 1050 bytes that compress well
        ws.send_text(text)
        f = ws.recv_frame()
        self.assertEqual((f.opcode, f.rsv), (OP_TEXT, 4))  # RSV1: compressed
        plain = zlib.decompressobj(-15).decompress(f.payload + b"\x00\x00\xff\xff")
        self.assertEqual(plain.decode(), text)
        after, _ = scrape(admin)
        d = lambda n, **lb: value(after, n, **lb) - value(before, n, **lb)  # noqa: E731
        self.assertEqual(d("confab_deflate_messages_total", result="smaller"), 1)
        self.assertEqual(d("confab_deflate_input_bytes_total"), len(text))
        self.assertEqual(d("confab_deflate_output_bytes_total"), len(f.payload))
        self.assertLess(value(after, "confab_deflate_ratio"), 0.2)
        self.assertGreater(value(after, "confab_deflate_ratio"), 0)
