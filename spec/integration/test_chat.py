"""The chat of scripts/chat.lua over the protocol in README.md."""

import json
import time

from helpers import CHAT, OP_TEXT, ConfabTest, encode_frame


class ChatTest(ConfabTest):
    def serve(self, *flags):
        return self.start(*flags, script=CHAT)

    def login(self, srv, name):
        c = self.client(srv)
        c.hello(name)
        return c

    def say_and_see(self, c, room, text):
        """Posts and awaits the sender's own copy (so the message is stored); returns it."""
        c.say(room, text)
        return c.recv_json("message", room=room, text=text)


class Chat(ChatTest):
    def test_two_clients_chat(self):
        srv = self.serve()
        alice = self.login(srv, "alice")
        bob = self.login(srv, "bob")
        welcome_ts = time.time() * 1000
        alice.say("lobby", "hi bob")
        m = bob.recv_json("message", room="lobby", text="hi bob")
        self.assertEqual((m["from"], m["kind"]), ("alice", "say"))
        self.assertIsInstance(m["id"], int)
        self.assertLess(abs(m["ts"] - welcome_ts), 60000, "ts is server time in ms")
        own = alice.recv_json("message", room="lobby", text="hi bob")
        self.assertEqual(own["id"], m["id"])
        bob.send_json(type="me", room="lobby", text="waves")
        m2 = alice.recv_json("message", room="lobby", text="waves")
        self.assertEqual((m2["from"], m2["kind"]), ("bob", "me"))
        self.assertGreater(m2["id"], m["id"])

    def test_welcome_carries_name_and_epoch(self):
        srv = self.serve()
        c = self.client(srv)
        c.send_json(type="hello", name="Zoë")
        w = c.recv_json("welcome")
        self.assertEqual(w["name"], "Zoë")
        self.assertIsInstance(w["epoch"], int)
        self.assertGreater(w["epoch"], 1_500_000_000_000)  # a start time in ms
        c.recv_json("history", room="lobby")
        c.recv_json("members", room="lobby", members=["Zoë"])

    def test_rooms_are_kept_apart(self):
        srv = self.serve()
        alice = self.login(srv, "alice")
        bob = self.login(srv, "bob")
        carol = self.login(srv, "carol")
        alice.send_json(type="join", room="dev")
        alice.recv_json("joined", room="dev", name="alice")
        carol.send_json(type="join", room="dev")
        carol.recv_json("joined", room="dev", name="carol")
        alice.recv_json("joined", room="dev", name="carol")
        alice.say("dev", "secret plans")
        m = carol.recv_json("message", room="dev", text="secret plans")
        self.assertEqual(m["from"], "alice")
        alice.say("lobby", "sentinel")  # after it, bob has seen everything alice caused
        bob.recv_json("message", room="lobby", text="sentinel")
        leaked = [x for x in bob.inbox if x.get("room") == "dev"]
        self.assertEqual(leaked, [], "bob is not in dev")

    def test_room_ids_increase_per_room(self):
        srv = self.serve()
        alice = self.login(srv, "alice")
        alice.send_json(type="join", room="dev")
        alice.recv_json("joined", room="dev", name="alice")
        a1 = self.say_and_see(alice, "lobby", "one")["id"]
        d1 = self.say_and_see(alice, "dev", "uno")["id"]
        a2 = self.say_and_see(alice, "lobby", "two")["id"]
        d2 = self.say_and_see(alice, "dev", "dos")["id"]
        self.assertGreater(a2, a1)
        self.assertGreater(d2, d1)

    def test_names_are_unique_case_insensitively(self):
        srv = self.serve()
        self.login(srv, "Alice")
        other = self.client(srv)
        for taken in ("alice", "ALICE", "aLiCe"):
            other.send_json(type="hello", name=taken)
            self.assertEqual(other.recv_json("error")["code"], "name_taken", taken)
        other.hello("bob")
        self.assertEqual(other.name, "bob")
        other.send_json(type="nick", name="ALICE")
        self.assertEqual(other.recv_json("error")["code"], "name_taken")

    def test_bad_names_are_refused(self):
        srv = self.serve()
        c = self.client(srv)
        for bad in ("", "has space", "x" * 25, "semi;colon", "tab\tname", "<b>"):
            c.send_json(type="hello", name=bad)
            self.assertEqual(c.recv_json("error")["code"], "bad_name", repr(bad))
        c.hello("y" * 24)
        self.assertEqual(c.name, "y" * 24)
        d = self.client(srv)
        d.hello("Ünï_cøde-9")
        self.assertEqual(d.name, "Ünï_cøde-9")

    def test_presence_updates(self):
        srv = self.serve()
        alice = self.login(srv, "alice")
        alice.recv_json("members", room="lobby", members=["alice"])
        bob = self.login(srv, "bob")
        alice.recv_json("joined", room="lobby", name="bob")
        alice.recv_json("members", room="lobby", members=["alice", "bob"])
        bob.recv_json("members", room="lobby", members=["alice", "bob"])

        bob.send_json(type="nick", name="bobby")
        r = alice.recv_json("renamed", room="lobby")
        self.assertEqual((r["from"], r["to"]), ("bob", "bobby"))
        alice.recv_json("members", room="lobby", members=["alice", "bobby"])

        bob.send_json(type="leave", room="lobby")
        alice.recv_json("left", room="lobby", name="bobby")
        bob.recv_json("left", room="lobby", name="bobby")
        alice.recv_json("members", room="lobby", members=["alice"])

        bob.send_json(type="join", room="lobby")
        alice.recv_json("joined", room="lobby", name="bobby")
        bob.close()
        alice.recv_json("left", room="lobby", name="bobby")
        alice.recv_json("members", room="lobby", members=["alice"])

    def test_who_and_rooms(self):
        srv = self.serve()
        alice = self.login(srv, "alice")
        bob = self.login(srv, "bob")
        bob.send_json(type="join", room="dev")
        bob.recv_json("joined", room="dev", name="bob")
        alice.inbox.clear()
        alice.send_json(type="who", room="lobby")
        alice.recv_json("members", room="lobby", members=["alice", "bob"])
        alice.send_json(type="rooms")
        rooms = alice.recv_json("rooms")["rooms"]
        self.assertEqual(sorted((r["name"], r["members"]) for r in rooms),
                         [("dev", 1), ("lobby", 2)])

    def test_typing_reaches_the_room(self):
        srv = self.serve()
        alice = self.login(srv, "alice")
        bob = self.login(srv, "bob")
        alice.send_json(type="typing", room="lobby")
        bob.recv_json("typing", room="lobby", name="alice")

    def test_history_on_join(self):
        srv = self.serve()
        alice = self.login(srv, "alice")
        sent = [self.say_and_see(alice, "lobby", "h%d" % i) for i in range(3)]
        bob = self.client(srv)
        bob.send_json(type="hello", name="bob")
        bob.recv_json("welcome")
        h = bob.recv_json("history", room="lobby")
        self.assertEqual([m["text"] for m in h["messages"]], ["h0", "h1", "h2"])
        self.assertEqual([m["id"] for m in h["messages"]], [m["id"] for m in sent])
        self.assertTrue(all(m["from"] == "alice" for m in h["messages"]))
        self.assertIs(h["complete"], True)
        bob.send_json(type="join", room="fresh")
        h2 = bob.recv_json("history", room="fresh")
        self.assertEqual(h2["messages"], [])

    def test_history_keeps_only_the_last_n(self):
        srv = self.serve("--history", "3")
        alice = self.login(srv, "alice")
        for i in range(5):
            self.say_and_see(alice, "lobby", "m%d" % i)
        bob = self.client(srv)
        bob.send_json(type="hello", name="bob")
        h = bob.recv_json("history", room="lobby")
        self.assertEqual([m["text"] for m in h["messages"]], ["m2", "m3", "m4"])

    def test_resume_delivers_exactly_the_missed_messages(self):
        srv = self.serve()
        alice = self.login(srv, "alice")
        bob = self.client(srv)
        welcome = bob.hello("bob")
        before = self.say_and_see(alice, "lobby", "before")
        self.assertEqual(bob.recv_json("message", room="lobby", text="before")["id"], before["id"])
        bob.drop()
        alice.recv_json("left", room="lobby", name="bob")
        missed = [self.say_and_see(alice, "lobby", "missed %d" % i) for i in range(3)]

        bob2 = self.client(srv)
        bob2.send_json(type="hello", name="bob",
                       resume={"epoch": welcome["epoch"], "rooms": {"lobby": before["id"]}})
        bob2.recv_json("welcome", name="bob")
        h = bob2.recv_json("history", room="lobby")
        self.assertEqual([(m["id"], m["text"]) for m in h["messages"]],
                         [(m["id"], m["text"]) for m in missed])
        self.assertIs(h["complete"], True)
        self.assertIs(h["reset"], False, "the client keeps what it has")
        alice.recv_json("joined", room="lobby", name="bob")
        alice.say("lobby", "welcome back")
        bob2.recv_json("message", room="lobby", text="welcome back")

    def test_resume_after_a_gap_says_incomplete(self):
        srv = self.serve("--history", "3")
        alice = self.login(srv, "alice")
        bob = self.client(srv)
        welcome = bob.hello("bob")
        before = self.say_and_see(alice, "lobby", "before")
        bob.recv_json("message", room="lobby", text="before")
        bob.drop()
        alice.recv_json("left", room="lobby", name="bob")
        missed = [self.say_and_see(alice, "lobby", "missed %d" % i) for i in range(5)]

        bob2 = self.client(srv)
        bob2.send_json(type="hello", name="bob",
                       resume={"epoch": welcome["epoch"], "rooms": {"lobby": before["id"]}})
        bob2.recv_json("welcome", name="bob")
        h = bob2.recv_json("history", room="lobby")
        self.assertIs(h["complete"], False)
        self.assertEqual([m["text"] for m in h["messages"]], [m["text"] for m in missed[-3:]])

    def test_resume_from_another_server_run_replaces_everything(self):
        srv = self.serve()
        alice = self.login(srv, "alice")
        sent = [self.say_and_see(alice, "lobby", "m%d" % i)["text"] for i in range(2)]
        bob = self.client(srv)
        bob.send_json(type="hello", name="bob", resume={"epoch": 12345, "rooms": {"lobby": 1}})
        bob.recv_json("welcome", name="bob")
        h = bob.recv_json("history", room="lobby")
        self.assertIs(h["reset"], True, "ids of another run are meaningless")
        self.assertEqual([m["text"] for m in h["messages"]], sent)

    def test_resume_when_up_to_date_sends_nothing_missed(self):
        srv = self.serve()
        alice = self.login(srv, "alice")
        bob = self.client(srv)
        welcome = bob.hello("bob")
        last = self.say_and_see(alice, "lobby", "only")["id"]
        bob.recv_json("message", room="lobby", text="only")
        bob.drop()
        alice.recv_json("left", room="lobby", name="bob")
        bob2 = self.client(srv)
        bob2.send_json(type="hello", name="bob",
                       resume={"epoch": welcome["epoch"], "rooms": {"lobby": last}})
        h = bob2.recv_json("history", room="lobby")
        self.assertEqual((h["messages"], h["complete"]), ([], True))

    def test_direct_messages_reach_only_their_target(self):
        srv = self.serve()
        alice = self.login(srv, "alice")
        bob = self.login(srv, "bob")
        carol = self.login(srv, "carol")
        alice.send_json(type="dm", to="bob", text="psst")
        got = bob.recv_json("dm", text="psst")
        self.assertEqual((got["from"], got["to"]), ("alice", "bob"))
        mine = alice.recv_json("dm", text="psst")
        self.assertEqual((mine["from"], mine["to"]), ("alice", "bob"))
        alice.say("lobby", "sentinel")
        carol.recv_json("message", room="lobby", text="sentinel")
        self.assertEqual([m for m in carol.inbox if m.get("type") == "dm"], [])
        self.assertEqual([m for m in bob.inbox if m.get("text") == "psst"], [],
                         "bob got the dm once")
        alice.send_json(type="dm", to="nobody", text="hello?")
        self.assertEqual(alice.recv_json("error")["code"], "no_such_user")

    def test_commands(self):
        srv = self.serve()
        alice = self.login(srv, "alice")
        bob = self.login(srv, "bob")
        alice.say("lobby", "/me dances")
        m = bob.recv_json("message", room="lobby", text="dances")
        self.assertEqual((m["kind"], m["from"]), ("me", "alice"))
        alice.say("lobby", "/msg bob quiet word")
        self.assertEqual(bob.recv_json("dm", text="quiet word")["from"], "alice")
        alice.say("lobby", "/join dev")
        alice.recv_json("joined", room="dev", name="alice")
        alice.say("lobby", "/nick alicia")
        r = bob.recv_json("renamed", room="lobby")
        self.assertEqual((r["from"], r["to"]), ("alice", "alicia"))
        alice.say("lobby", "/help")
        self.assertTrue(alice.recv_json("info")["text"])
        alice.say("lobby", "/rooms")
        self.assertIn("dev", [r["name"] for r in alice.recv_json("rooms")["rooms"]])
        alice.say("dev", "/leave")
        alice.recv_json("left", room="dev", name="alicia")
        alice.say("lobby", "/frobnicate now")
        err = alice.recv_json("error")
        self.assertEqual(err["code"], "unknown_command")
        self.assertIn("/join", err["message"], "the answer carries the help line")

    def test_flood_control(self):
        srv = self.serve()
        alice = self.login(srv, "alice")
        bob = self.login(srv, "bob")
        carol = self.login(srv, "carol")
        # 15 messages in one write: they arrive together, so only the burst of 10 may pass.
        burst = b"".join(encode_frame(OP_TEXT, json.dumps(
            {"type": "say", "room": "lobby", "text": "flood %d" % i})) for i in range(15))
        alice.ws.sock.sendall(burst)
        accepted = errors = 0
        while accepted + errors < 15:
            m = alice.recv_json(None)
            if m.get("type") == "message" and m.get("from") == "alice":
                accepted += 1
            elif m.get("type") == "error":
                self.assertEqual(m["code"], "flood", m)
                errors += 1
        carol.say("lobby", "sentinel")
        seen = []
        while True:
            m = bob.recv_json("message", room="lobby")
            if m["text"] == "sentinel":
                break
            seen.append(m["text"])
        self.assertEqual(accepted, 10, "the burst allowance is 10")
        self.assertEqual(errors, 5)
        self.assertEqual(seen, ["flood %d" % i for i in range(10)])
        # Tokens come back at 5/s: after half a second at least one message passes again.
        time.sleep(0.5)
        alice.say("lobby", "later")
        bob.recv_json("message", room="lobby", text="later")


class BadInput(ChatTest):
    """Each bad input gets an error with its code, and the connection stays usable."""

    CASES = [
        ("malformed JSON", "{not json", {"bad_json"}),
        ("truncated JSON", '{"type": "say", "room": "lobby"', {"bad_json"}),
        ("JSON array", "[1, 2, 3]", {"bad_json", "bad_type"}),
        ("JSON string", '"say"', {"bad_json", "bad_type"}),
        ("unknown type", {"type": "dance"}, {"bad_type"}),
        ("missing type", {"room": "lobby", "text": "x"}, {"bad_type", "bad_field"}),
        ("numeric type", {"type": 5}, {"bad_type", "bad_field"}),
        ("missing text", {"type": "say", "room": "lobby"}, {"bad_field"}),
        ("numeric text", {"type": "say", "room": "lobby", "text": 5}, {"bad_field"}),
        ("table room", {"type": "say", "room": ["lobby"], "text": "x"}, {"bad_field", "bad_room"}),
        ("missing room", {"type": "join"}, {"bad_field"}),
        ("dm without text", {"type": "dm", "to": "alice"}, {"bad_field"}),
        ("text too long", {"type": "say", "room": "lobby", "text": "x" * 2001}, {"too_long"}),
        ("empty text", {"type": "say", "room": "lobby", "text": ""}, {"bad_text", "bad_field"}),
        ("bell", {"type": "say", "room": "lobby", "text": "ding\x07"}, {"bad_text"}),
        ("nul", {"type": "say", "room": "lobby", "text": "a\x00b"}, {"bad_text"}),
        ("escape", {"type": "say", "room": "lobby", "text": "\x1b[31mred"}, {"bad_text"}),
        ("carriage return", {"type": "say", "room": "lobby", "text": "a\rb"}, {"bad_text"}),
        ("bad room name", {"type": "join", "room": "has space"}, {"bad_room"}),
        ("long room name", {"type": "join", "room": "r" * 33}, {"bad_room"}),
        ("room not joined", {"type": "say", "room": "elsewhere", "text": "x"}, {"not_in_room"}),
        ("leave not joined", {"type": "leave", "room": "elsewhere"}, {"not_in_room"}),
        ("bad nick", {"type": "nick", "name": "no spaces"}, {"bad_name"}),
        ("dm to nobody", {"type": "dm", "to": "ghost", "text": "x"}, {"no_such_user"}),
    ]

    def test_each_bad_input_is_answered_and_the_connection_stays(self):
        srv = self.serve()
        for i, (label, payload, codes) in enumerate(self.CASES):
            with self.subTest(case=label):
                # A fresh user per case keeps the flood allowance out of the way.
                c = self.login(srv, "user%d" % i)
                c.send(payload if isinstance(payload, str) else json.dumps(payload))
                err = c.recv_json("error")
                self.assertIn(err["code"], codes, err)
                self.assertIsInstance(err.get("message"), str)
                self.say_and_see(c, "lobby", "still fine %d" % i)
                c.close()

    def test_messages_before_hello_are_refused(self):
        srv = self.serve()
        c = self.client(srv)
        c.send_json(type="say", room="lobby", text="too early")
        self.assertEqual(c.recv_json("error")["code"], "no_name")
        c.send_json(type="join", room="dev")
        self.assertEqual(c.recv_json("error")["code"], "no_name")
        c.hello("late")
        self.say_and_see(c, "lobby", "now ok")

    def test_allowed_text_limits(self):
        srv = self.serve()
        c = self.login(srv, "alice")
        self.say_and_see(c, "lobby", "x" * 2000)
        self.say_and_see(c, "lobby", "é" * 2000)  # characters, not bytes
        self.say_and_see(c, "lobby", "line one\n\tline two")
        c.send_json(type="join", room="r" * 32)
        c.recv_json("joined", room="r" * 32, name="alice")

