"""The Lua side seen from outside: failing hooks, limits, the connect veto, disconnect codes,
the confab API, and reloading on SIGHUP."""

import re
import signal

from helpers import ConfabTest, handshake

FAILING_LUA = """local confab = require "confab"

local function explode(data)
  error("kaboom: " .. data)
end

confab.on("message", function(ev)
  if ev.data == "join" then
    confab.join(ev.id, "all")
    confab.send(ev.id, "joined")
  elseif ev.data:sub(1, 4) == "boom" then
    explode(ev.data)
  elseif ev.data == "spin" then
    while true do end
  elseif ev.data == "hog" then
    local t = {}
    for i = 1, 1e9 do t[i] = ("x"):rep(1 << 20) .. i end
  else
    confab.broadcast("all", ev.data)
  end
end)
"""

GATE_LUA = """local confab = require "confab"
confab.on("connect", function(ev)
  if ev.query:find("deny=1", 1, true) then
    return false, "no entry for " .. ev.remote:match("^[^:]+")
  end
end)
confab.on("connect", function(ev)
  if ev.headers["x-knock"] == "twice" then return false, "wrong knock" end
end, -1)
confab.on("message", function(ev) confab.send(ev.id, "ok " .. ev.data) end)
"""

EVENTS_LUA = """local confab = require "confab"
local cjson = require "cjson"
local function tell_all(t)
  local s = cjson.encode(t)
  for _, id in ipairs(confab.connections()) do confab.send(id, s) end
end
confab.on("connect", function(ev) confab.set(ev.id, "nick", "n" .. ev.id) end)
confab.on("message", function(ev)
  local cmd, arg = ev.data:match("^(%S+)%s*(.*)$")
  if cmd == "join" then
    confab.send(ev.id, cjson.encode({type = "join", result = confab.join(ev.id, arg)}))
  elseif cmd == "leave" then
    confab.leave(ev.id, arg)
  elseif cmd == "state" then
    confab.send(ev.id, cjson.encode({type = "state", id = ev.id, rooms = confab.rooms(),
      rooms_of = confab.rooms_of(ev.id), members = confab.members(arg),
      nick = confab.get(ev.id, "nick"), info = confab.info(ev.id)}))
  elseif cmd == "history" then
    local n = confab.history_last(arg) + 1
    confab.history_add(arg, n, "entry " .. n)
    local list, complete = confab.history(arg, 0)
    confab.send(ev.id, cjson.encode({type = "history", list = list, complete = complete,
                                     last = confab.history_last(arg)}))
  elseif cmd == "kick" then
    confab.close(tonumber(arg), 4000, "kicked")
  end
end)
confab.on("join", function(ev) tell_all({type = "joined", id = ev.id, room = ev.room}) end)
confab.on("leave", function(ev)
  tell_all({type = "left", id = ev.id, room = ev.room, reason = ev.reason})
end)
confab.on("disconnect", function(ev)
  tell_all({type = "gone", id = ev.id, code = ev.code, nick = confab.get(ev.id, "nick")})
end)
"""

RELOAD_V1 = """local confab = require "confab"
confab.on("connect", function(ev) confab.set(ev.id, "since", "v1") end)
confab.on("message", function(ev) confab.send(ev.id, "v1:" .. ev.data) end)
"""

RELOAD_V2 = """local confab = require "confab"
confab.on("message", function(ev)
  confab.send(ev.id, "v2:" .. ev.data .. ":" .. tostring(confab.get(ev.id, "since")))
end)
confab.on("reload", function()
  for _, id in ipairs(confab.connections()) do confab.send(id, "reloaded") end
end)
"""

RELOAD_BROKEN = """local confab = require "confab"
confab.on("message", function(ev)
  confab.send(ev.id, "v3")
end
"""


class HookErrors(ConfabTest):
    def setUp(self):
        super().setUp()
        self.srv = self.start("--hook-timeout", "200", "--script-memory", "8M",
                              script=self.script(FAILING_LUA))
        self.a, self.b = self.client(self.srv), self.client(self.srv)
        for c in (self.a, self.b):
            c.send("join")
            self.assertEqual(c.recv_raw(), "joined")

    def assertBothStillWork(self, text):
        self.a.send(text)
        self.assertEqual(self.a.recv_raw(), text)
        self.assertEqual(self.b.recv_raw(), text)  # and nothing else came before it

    def test_error_in_a_hook_is_logged_with_traceback(self):
        self.a.send("boom-1")
        self.srv.wait_log(r"kaboom: boom-1")
        log = self.srv.log
        self.assertRegex(log, r"hooks\.lua:4:")          # where error() was called
        self.assertRegex(log, r"(?i)traceback")
        self.assertRegex(log, r"explode|hooks\.lua:12")  # the frame that called it
        self.assertBothStillWork("after the error")
        self.b.send("boom-2")
        self.srv.wait_log(r"kaboom: boom-2")
        self.assertBothStillWork("again")

    def test_endless_loop_is_aborted(self):
        self.a.send("spin")
        # One log line names the hook and says why it was stopped.
        self.srv.wait_log(r"^.*(message.*(time|too long|limit)|(time|too long|limit).*message)",
                          flags=re.I | re.M)
        self.assertBothStillWork("after the loop")

    def test_memory_cap_fails_the_hook_not_the_server(self):
        self.a.send("hog")
        self.srv.wait_log(r"not enough memory")
        self.assertBothStillWork("after the hog")


# Takes every byte of --script-memory it can and keeps it, but for a little room to answer.
HOARD_LUA = """local confab = require "confab"
local hoard, reserve = {}, nil
local function take(size)
  return pcall(function() hoard[#hoard + 1] = ("x"):rep(size) end)
end
confab.on("message", function(ev)
  if ev.data == "fill" then
    while take(1 << 20) do end
    reserve = ("r"):rep(16 * 1024)
    local size = 1 << 19
    while size >= 16 do
      if not take(size) then size = size // 2 end
    end
    reserve = nil   -- 16 KB free once collected: room to answer, not for a 60 KB message
    confab.send(ev.id, "full")
  elseif ev.data == "free" then
    hoard = {}
    collectgarbage()
    confab.send(ev.id, "freed")
  else
    confab.send(ev.id, "got " .. #ev.data)
  end
end)
"""


class MemoryNearTheCap(ConfabTest):
    def test_a_message_that_does_not_fit_fails_its_event_not_the_server(self):
        # The event table used to be built outside the protected call: no memory for the
        # message's string was an unprotected error, and Lua aborted the process.
        srv = self.start("--hook-timeout", "5000", "--script-memory", "4M",
                         script=self.script(HOARD_LUA))
        a, b = self.client(srv), self.client(srv)
        a.send("fill")
        self.assertEqual(a.recv_raw(), "full")
        a.send("x" * 60000)
        srv.wait_log(r"hook message failed: .*not enough memory")
        b.send("free")
        self.assertEqual(b.recv_raw(), "freed")
        a.send("x" * 60000)
        self.assertEqual(a.recv_raw(), "got 60000")


class Connect(ConfabTest):
    def test_connect_hook_refusal_is_403_with_its_reason(self):
        srv = self.start(script=self.script(GATE_LUA))
        r, c, _ = handshake(srv.port, path="/ws?deny=1")
        c.close()
        self.assertEqual(r.status, 403, r)
        self.assertIn(b"no entry for 127.0.0.1", r.body)
        r, c, _ = handshake(srv.port, path="/ws", headers=[("X-Knock", "twice")])
        c.close()
        self.assertEqual(r.status, 403, r)
        self.assertIn(b"wrong knock", r.body)
        ws = self.raw(srv, path="/ws?deny=0")
        ws.send_text("hi")
        self.assertEqual(ws.recv_text(), "ok hi")


class Api(ConfabTest):
    def setUp(self):
        super().setUp()
        self.srv = self.start(script=self.script(EVENTS_LUA))

    def state(self, c, room="r1"):
        c.send("state " + room)
        return c.recv_json("state")

    def test_rooms_membership_attributes_and_disconnect_codes(self):
        a, b = self.client(self.srv), self.client(self.srv)
        ida, idb = self.state(a)["id"], self.state(b)["id"]
        self.assertNotEqual(ida, idb)
        a.send("join r1")
        self.assertIs(a.recv_json("join")["result"], True)
        a.recv_json("joined", room="r1", id=ida)  # the join hook ran
        a.send("join r1")
        self.assertIs(a.recv_json("join")["result"], False)  # already a member
        b.send("join r1")
        b.recv_json("joined", room="r1", id=idb)
        a.recv_json("joined", room="r1", id=idb)
        s = self.state(a)
        self.assertEqual(s["id"], ida)
        self.assertEqual(s["members"], [ida, idb])
        self.assertEqual(s["rooms"], {"r1": 2})
        self.assertEqual(s["rooms_of"], ["r1"])
        self.assertEqual(s["nick"], "n%d" % ida)  # attribute set in the connect hook
        self.assertEqual(s["info"]["path"], "/ws")
        self.assertRegex(s["info"]["remote"], r"^127\.0\.0\.1:\d+$")

        b.send("leave r1")
        ev = a.recv_json("left", id=idb)
        self.assertEqual((ev["room"], ev["reason"]), ("r1", "leave"))
        self.assertEqual(self.state(a)["members"], [ida])

        b.send("join r1")
        a.recv_json("joined", id=idb)
        b.ws.close(status=4321)
        ev = a.recv_json("left", id=idb)
        self.assertEqual(ev["reason"], "disconnect")
        gone = a.recv_json("gone", id=idb)
        self.assertEqual((gone["code"], gone["nick"]), (4321, "n%d" % idb))

        c = self.client(self.srv)
        c.send("state r1")
        idc = c.recv_json("state")["id"]
        self.assertGreater(idc, idb, "ids are never reused")
        c.drop()
        self.assertEqual(a.recv_json("gone", id=idc)["code"], 1006)

        a.send("kick %d" % ida)
        self.assertEqual(a.wait_close()[0], 4000)

    def test_history_ring(self):
        self.srv.stop()
        self.srv = self.start("--history", "2", script=self.script(EVENTS_LUA))
        a = self.client(self.srv)
        for n in (1, 2, 3):
            a.send("history h")
            h = a.recv_json("history")
            self.assertEqual(h["last"], n)
        self.assertEqual(h["list"], ["entry 2", "entry 3"])
        self.assertIs(h["complete"], False)  # entry 1 fell out of the ring


class Reload(ConfabTest):
    def test_sighup_reloads_and_a_broken_script_keeps_the_old_one(self):
        path = self.script(RELOAD_V1, "chat.lua")
        srv = self.start(script=path)
        c = self.client(srv)
        c.send("a")
        self.assertEqual(c.recv_raw(), "v1:a")
        self.write("chat.lua", RELOAD_V2)
        srv.signal(signal.SIGHUP)
        self.assertEqual(c.recv_raw(), "reloaded")  # from the new script's reload hook
        c.send("b")
        self.assertEqual(c.recv_raw(), "v2:b:v1")  # attributes survived the reload
        self.write("chat.lua", RELOAD_BROKEN)
        srv.signal(signal.SIGHUP)
        srv.wait_log(r"chat\.lua:\d+:")
        c.send("c")
        self.assertEqual(c.recv_raw(), "v2:c:v1")

