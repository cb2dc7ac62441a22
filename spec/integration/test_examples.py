"""The seed example scripts of scripts/examples/, one short scenario each."""

import json
import os

from helpers import EXAMPLES, ConfabTest, handshake


def example(name):
    return os.path.join(EXAMPLES, name)


class Examples(ConfabTest):
    def test_gorilla_broadcasts_trimmed_lines_to_everyone(self):
        srv = self.start("--max-message", "512", script=example("gorilla.lua"))
        a, b = self.client(srv), self.client(srv)
        a.send("  hello\nworld  ")
        self.assertEqual(a.recv_raw(), "hello world")  # the sender included
        self.assertEqual(b.recv_raw(), "hello world")
        b.send("x" * 513)
        self.assertEqual(b.wait_close()[0], 1009)  # the Go example's maxMessageSize
        a.send("still here")
        self.assertEqual(a.recv_raw(), "still here")

    def test_namefirst_prefixes_lines_with_the_first_message(self):
        srv = self.start("--max-message", "512", script=example("namefirst.lua"))
        a, b = self.client(srv), self.client(srv)
        a.send("alice")
        b.send("bob")
        b.send("yo")
        # Both are in the room from connect, so a broadcast name would have come first.
        self.assertEqual(a.recv_raw(), "bob: yo")
        self.assertEqual(b.recv_raw(), "bob: yo")
        a.send(" hi\nthere ")
        self.assertEqual(b.recv_raw(), "alice: hi there")
        self.assertEqual(a.recv_raw(), "alice: hi there")

    def test_jsonlogin_login_chat_and_logout(self):
        srv = self.start(script=example("jsonlogin.lua"))
        a = self.client(srv)
        first = a.recv_json("handshake")
        self.assertEqual(first["user_list"], [])
        a.send_json(type="login", content="alice")
        m = a.recv_json("login")
        self.assertEqual((m["content"], m["user_list"]), ("alice", ["alice"]))

        b = self.client(srv)
        b.recv_json("handshake")
        b.send_json(type="user", content="too early")
        self.assertEqual(b.recv_json("system")["content"], "login first")
        b.send_json(type="login", content="bob")
        for c in (a, b):
            m = c.recv_json("login", content="bob")
            self.assertEqual(m["user_list"], ["alice", "bob"])

        a.send_json(type="user", content="hey bob")
        m = b.recv_json("user")
        self.assertEqual((m["from"], m["content"]), ("alice", "hey bob"))
        self.assertRegex(m["ip"], r"^127\.0\.0\.1")
        a.send("not json")
        self.assertIn("bad message", a.recv_json("system")["content"])

        b.close()
        m = a.recv_json("logout")
        self.assertEqual((m["content"], m["user_list"]), ("bob", ["alice"]))

    def test_add_sums_and_refuses_bad_input(self):
        srv = self.start("--ws-path", "/add", script=example("add.lua"))
        c = self.client(srv, path="/add")
        for req, want in (({"A": 3, "B": 9}, 12), ({"a": 2, "b": -7}, -5), ({"A": 5}, 5),
                          ({"A": 4503599627370496, "B": 4503599627370496}, 9007199254740992)):
            c.send(json.dumps(req))
            self.assertEqual(json.loads(c.recv_raw()), {"Sum": want}, req)
        for bad in ("nope", "[1, 2]", '{"A": "three", "B": 1}', '{"A": 1.5}'):
            c.send(bad)
            self.assertIn("error", json.loads(c.recv_raw()), bad)
        c.send('{"A": 1, "B": 1}')
        self.assertEqual(json.loads(c.recv_raw()), {"Sum": 2})

    def test_pathrooms_keeps_rooms_apart(self):
        srv = self.start(script=example("pathrooms.lua"))
        red1, red2 = self.client(srv, "/ws/red"), self.client(srv, "/ws/red")
        blue = self.client(srv, "/ws/blue")
        lobby = self.client(srv, "/ws")
        red1.send("for red")
        self.assertEqual(red1.recv_raw(), "for red")
        self.assertEqual(red2.recv_raw(), "for red")
        blue.send("for blue")
        self.assertEqual(blue.recv_raw(), "for blue")  # not "for red" first
        lobby.send("for lobby")
        self.assertEqual(lobby.recv_raw(), "for lobby")
        r, conn, _ = handshake(srv.port, path="/ws/no!such")
        conn.close()
        self.assertEqual(r.status, 403, r)
        self.assertIn(b"no such room", r.body)

    def test_pathrooms_decodes_a_percent_encoded_room(self):
        # What a browser sends for new WebSocket("ws://host/ws/红色"): confab.urldecode at work.
        srv = self.start(script=example("pathrooms.lua"))
        red1 = self.client(srv, "/ws/%E7%BA%A2%E8%89%B2")
        red2 = self.client(srv, "/ws/%e7%ba%a2%e8%89%b2")
        other = self.client(srv, "/ws/%E7%BA%A2")  # 红, another room
        red1.send("你好")
        self.assertEqual(red2.recv_raw(), "你好")
        other.send("only 红")
        self.assertEqual(other.recv_raw(), "only 红")
        self.assertEqual(red1.recv_raw(), "你好")  # its own echo, and nothing from 红
        for bad in ("/ws/%E7%BA", "/ws/%zz", "/ws/a%2Fb"):
            r, conn, _ = handshake(srv.port, path=bad)
            conn.close()
            self.assertEqual(r.status, 403, (bad, r))

