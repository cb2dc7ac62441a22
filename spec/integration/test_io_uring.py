"""--io-uring on|off: a loop pass's WebSocket writes go in one io_uring submission (where the
kernel allows it: the log says which), or each through send/sendmsg. Both deliver everything in
order: to many members at once, to a reader whose socket fills (the write takes part of the
output, then waits for the socket), and with one write per member per pass."""

import time

from helpers import (OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, RELAY_LUA, WAIT, ConfabTest, encode_frame,
                     run_confab)
from test_admin import admin_port, scrape, value


class IoUring(ConfabTest):
    def start_relay(self, mode, *flags):
        srv = self.start("--io-uring", mode, "--admin-addr", "127.0.0.1:0", *flags,
                         script=self.script(RELAY_LUA))
        m = srv.wait_log(r"writes: (io_uring|send/sendmsg)(.*)")
        if mode == "off":
            self.assertEqual(m.group(1), "send/sendmsg", m.group(0))
        elif m.group(1) == "send/sendmsg":
            # This kernel does not allow it: the reason is logged, and the rest holds as well.
            self.assertRegex(m.group(2), r"io_uring not used: .+")
        return srv

    def joined(self, srv, **kw):
        ws = self.raw(srv, **kw)
        ws.send_text("join")
        self.assertEqual(ws.recv_text(), "joined")
        return ws

    def check_modes(self, body):
        for mode in ("on", "off"):
            with self.subTest(io_uring=mode):
                body(mode)

    def test_many_members_get_everything_in_order(self):
        def body(mode):
            srv = self.start_relay(mode)
            members = [self.joined(srv) for _ in range(20)]
            texts = ["t%d" % i for i in range(300)]
            sender = self.raw(srv)
            sender.send(b"".join(encode_frame(OP_TEXT, t) for t in texts))
            for ws in members:
                self.assertEqual([ws.recv_text() for _ in texts], texts)
        self.check_modes(body)

    def test_a_reader_whose_socket_fills_gets_everything(self):
        def body(mode):
            srv = self.start_relay(mode, "--send-queue", "16M", "--max-message", "1M")
            slow = self.joined(srv, rcvbuf=4096)
            sender = self.raw(srv)
            texts = ["%04d" % i + "y" * 65532 for i in range(128)]  # 8 MB: past any socket buffer
            for t in texts:
                sender.send_text(t)
            # Once the sender's last message is taken, the reader's socket is full and the rest
            # waits in its queue; reading it all brings every message, in order.
            port = admin_port(srv)
            deadline = time.monotonic() + WAIT
            while value(scrape(port)[0], "confab_messages_received_total") < len(texts) + 1:
                self.assertLess(time.monotonic(), deadline)
            for t in texts:
                self.assertEqual(slow.recv_text(timeout=2 * WAIT), t)
            slow.send_frame(OP_PING, b"end")
            f = slow.recv_frame()
            self.assertEqual((f.opcode, f.payload), (OP_PONG, b"end"))
            slow.send_close(1000)
            self.assertEqual(slow.recv_frame().opcode, OP_CLOSE)
        self.check_modes(body)

    def test_bad_value(self):
        r = run_confab("--io-uring", "maybe")
        self.assertEqual(r.returncode, 2, r)
        self.assertIn("--io-uring", r.stderr)
