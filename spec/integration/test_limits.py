"""What scripts store in the core is bounded (room history, attributes), and the log stays one
safe line per event with a bounded rate, whatever clients send (issue 7)."""

import re
import signal

from helpers import CHAT, ConfabTest

# Every line of the log: time, level, message (nothing else can start a line).
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (debug|info |warn |error|note ) ")


class HistoryMemory(ConfabTest):
    def login(self, srv, name, **extra):
        c = self.client(srv)
        return c, c.hello(name, **extra)

    def post(self, c, room, n):
        """Joins room and posts n long texts, awaiting each own copy; returns their ids."""
        c.send_json(type="join", room=room)
        c.recv_json("joined", room=room, name=c.name)
        ids = []
        for i in range(n):
            text = ("%s%d " % (room, i)) * 700  # cut to 2000 characters
            c.say(room, text[:2000])
            ids.append(c.recv_json("message", room=room, text=text[:2000])["id"])
        return ids

    def test_oldest_history_goes_first_and_ids_survive_the_room(self):
        # About 14 of these 2 KB messages fit in 32 KB.
        srv = self.start("--history-memory", "32K", script=CHAT)
        alice, welcome = self.login(srv, "alice")
        a_ids = self.post(alice, "a", 5)
        self.assertEqual(a_ids, [1, 2, 3, 4, 5])
        alice.drop()
        bob, _ = self.login(srv, "bob")
        b_ids = self.post(bob, "b", 9)
        carol, _ = self.login(srv, "carol")
        self.post(carol, "c", 9)

        # Room b lost its oldest messages to the limit: a newcomer sees the rest, incomplete.
        dave, _ = self.login(srv, "dave")
        dave.send_json(type="join", room="b")
        h = dave.recv_json("history", room="b")
        kept = [m["id"] for m in h["messages"]]
        self.assertTrue(0 < len(kept) < 9, kept)
        self.assertEqual(kept, b_ids[-len(kept):])
        self.assertIs(h["complete"], False)

        # Room a lost everything and its member left: it is gone, but not its ids. A client that
        # had everything resumes with nothing missed; one that had less is told to reset.
        ann, _ = self.login(srv, "ann", resume={"epoch": welcome["epoch"], "rooms": {"a": 5}})
        h = ann.recv_json("history", room="a")
        self.assertEqual((h["messages"], h["complete"], h["reset"]), ([], True, False))
        ben, _ = self.login(srv, "ben", resume={"epoch": welcome["epoch"], "rooms": {"a": 3}})
        h = ben.recv_json("history", room="a")
        self.assertEqual((h["messages"], h["complete"], h["reset"]), ([], False, True))
        # New messages in a go on from the old ids.
        ann.say("a", "back")
        self.assertEqual(ann.recv_json("message", room="a", text="back")["id"], 6)


ATTR_LUA = """
local confab = require "confab"
confab.on("message", function(ev)
  local ok, err = confab.set(ev.id, "k" .. ev.data, string.rep("x", 600 * 1024))
  confab.send(ev.id, tostring(ok) .. " " .. tostring(err))
end)
"""


class AttributeMemory(ConfabTest):
    def test_set_past_the_limit_fails_and_a_disconnect_gives_it_back(self):
        srv = self.start("--attr-memory", "1M", script=self.script(ATTR_LUA))
        a = self.client(srv)
        a.send("1")
        self.assertEqual(a.recv_raw(), "true nil")
        a.send("2")
        self.assertEqual(a.recv_raw(), "nil attribute memory limit reached")
        b = self.client(srv)
        b.send("1")
        self.assertEqual(b.recv_raw(), "nil attribute memory limit reached")
        a.close()
        a.wait_close()
        # Once a is gone its 600 KB are free again (await it: b retries until it fits).
        for _ in range(200):
            b.send("1")
            if b.recv_raw() == "true nil":
                break
        else:
            self.fail("a's attributes were never released")


COUNTS_LUA = """
local confab = require "confab"
confab.on("message", function(ev)
  for i = 1, 1024 do assert(confab.join(ev.id, "r" .. i)) end
  local _, room_err = confab.join(ev.id, "one more")
  for i = 1, 256 do assert(confab.set(ev.id, "k" .. i, i)) end
  local _, attr_err = confab.set(ev.id, "one more", 1)
  confab.send(ev.id, room_err .. ", " .. attr_err)
end)
"""


class PerConnectionCounts(ConfabTest):
    def test_rooms_and_attribute_keys_per_connection_are_bounded(self):
        srv = self.start(script=self.script(COUNTS_LUA))
        c = self.client(srv)
        c.send("go")
        self.assertEqual(c.recv_raw(), "too many rooms, too many attributes")


FAILING_LUA = """
local confab = require "confab"
confab.on("message", function(ev)
  if ev.data == "sync" then return confab.send(ev.id, "synced") end
  print("got " .. ev.data)
  error("bad input: " .. ev.data)
end)
"""


class LogSafety(ConfabTest):
    def test_user_text_cannot_forge_lines_and_a_flood_is_cut_down(self):
        srv = self.start(script=self.script(FAILING_LUA))
        c = self.client(srv)
        c.send("hi\n2026-01-01T00:00:00.000Z error forged by a client\x1b[2J\x07")
        filler = "x" * 1000
        for i in range(3000):
            c.send("%d %s" % (i, filler))
        c.send("sync")
        self.assertEqual(c.recv_raw(timeout=30), "synced")
        srv.signal(signal.SIGTERM)
        self.assertEqual(srv.wait_exit(), 0)
        lines = srv.lines
        for line in lines:
            self.assertRegex(line, LOG_LINE)
            self.assertNotRegex(line, r"[\x00-\x1f\x7f]")
            self.assertFalse(line.startswith("2026-01-01T00:00:00.000Z"), "a forged line")
        self.assertTrue(any("got hi\\n2026-01-01T00:00:00.000Z error forged by a client\\x1b[2J\\x07"
                            in line for line in lines), "the text is there, escaped")
        # 3000 failing messages, each a print and an error of over 1 KB: 6 MB of log unbounded.
        size = sum(len(line) + 1 for line in lines)
        self.assertLess(size, 400 * 1024)
        self.assertTrue(any(re.search(r"\d+ similar lines suppressed", line) for line in lines))
