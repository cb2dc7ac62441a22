"""The script runtime seen from outside: hot reload under load (SIGHUP and --watch), failed
reloads, timers on the real server, the load-time limits, and a sample of the sandbox."""

import asyncio
import os
import re
import resource
import signal
import time
import unittest

import websockets  # Debian python3-websockets (asyncio), for the many-client test

from helpers import EXAMPLES, WAIT, WEB, ConfabTest, run_confab


def wait_lines(srv, pattern, count, timeout=WAIT):
    """Awaits at least count log lines matching pattern; returns the matching lines."""
    rx = re.compile(pattern, re.I)
    deadline = time.monotonic() + timeout
    with srv.cond:
        while True:
            hits = [line for line in srv.lines if rx.search(line)]
            if len(hits) >= count:
                return hits
            left = deadline - time.monotonic()
            if srv.eof or left <= 0:
                raise AssertionError("%d of %d log lines matching %r within %.1fs (server %s);"
                                     " log:\n%s" % (len(hits), count, pattern, timeout,
                                                    srv.state(), srv.log_tail()))
            srv.cond.wait(left)


def count_lines(srv, pattern):
    rx = re.compile(pattern, re.I)
    with srv.cond:
        return sum(1 for line in srv.lines if rx.search(line))


# ---------------------------------------------------------------------------------------------
# 1. Reload under load

# Versions differ only by TAG. Each client connects with ?c=N; the connect hook stores N as the
# attribute "client" (kept in C) and the cache client_of (kept in Lua: the reload hook rebuilds it
# from confab.connections() and confab.get). A message "m|SEQ" (or the last one, "f|SEQ") is
# answered to its sender as "R|tag|gen|client|seq|n" and broadcast to the sender's group room as
# "B|tag|gen|client|seq"; n counts the connection's messages in the attribute "n" (kept in C), and
# gen counts the reloads in the history of room "gen" (kept in C).
LOAD_LUA = """local confab = require "confab"
local TAG = "%s"
local client_of = {}

confab.on("connect", function(ev)
  local c = tonumber(ev.query:match("c=(%%d+)"))
  confab.set(ev.id, "client", c)
  confab.set(ev.id, "n", 0)
  client_of[ev.id] = c
end)

confab.on("message", function(ev)
  local c = client_of[ev.id]
  if ev.data == "hi" then
    confab.join(ev.id, "g" .. (c %% %d))
    confab.send(ev.id, "ready|" .. TAG)
    return
  end
  local kind, seq = ev.data:match("^([mf])|(%%d+)$")
  local n = confab.get(ev.id, "n") + 1
  confab.set(ev.id, "n", n)
  local gen = confab.history_last("gen")
  confab.send(ev.id, table.concat({"R", TAG, gen, tostring(c), seq, n, kind}, "|"))
  confab.broadcast(confab.rooms_of(ev.id)[1],
                   table.concat({"B", TAG, gen, tostring(c), seq, kind}, "|"), ev.id)
end)

confab.on("reload", function()
  confab.history_add("gen", confab.history_last("gen") + 1, TAG)
  for _, id in ipairs(confab.connections()) do client_of[id] = confab.get(id, "client") end
end)
"""

N_CLIENTS = 200
GROUPS = 50         # rooms of N_CLIENTS / GROUPS = 4 members
MIN_MESSAGES = 25   # each client sends at least this many, and goes on until the last reload
PACE = 0.02         # seconds between two messages of one client
RELOADS = ["v2", "v1", "v2", "v1", "v2"]  # gen k (k >= 1) runs RELOADS[k-1]; gen 0 runs v1
PER_GEN = 600       # replies a generation must have answered before the next reload


class Peer:
    """One of the many clients: what it sent and what it received."""

    def __init__(self, cid):
        self.cid = cid
        self.ws = None
        self.sent = 0
        self.replies = []   # (tag, gen, client, seq, n, kind) of our own messages
        self.relayed = {}   # client -> [(tag, gen, seq, kind)] broadcast by a group mate
        self.closed = None
        self.done = None    # future: our final reply and every mate's final broadcast arrived
        self.mates = set()


class ReloadUnderLoad(ConfabTest):
    def test_reloads_under_load_lose_nothing_and_drop_nobody(self):
        path = self.write("load.lua", LOAD_LUA % ("v1", GROUPS))
        srv = self.start(script=path)
        started = time.monotonic()
        peers = asyncio.run(asyncio.wait_for(self._run(srv, path), 60))
        elapsed = time.monotonic() - started

        tags = ["v1"] + RELOADS
        last_gen = len(RELOADS)
        # Each reload was logged as a success; nothing failed.
        self.assertEqual(count_lines(srv, r"reloaded \(SIGHUP\)"), len(RELOADS), srv.log_tail())
        self.assertIsNone(srv.find_log(r"reload failed|hook \w+ failed"), srv.log_tail())

        answered = {}  # (client, seq) -> (tag, gen), as the sender saw it
        for p in peers:
            self.assertIsNone(p.closed, "client %d was closed: %r" % (p.cid, p.closed))
            self.assertGreaterEqual(p.sent, MIN_MESSAGES)
            # Every message answered once, in order, by whole versions.
            self.assertEqual([r[3] for r in p.replies], list(range(1, p.sent + 1)),
                             "replies of client %d" % p.cid)
            gens = [r[1] for r in p.replies]
            self.assertEqual(gens, sorted(gens), "client %d saw generations go back" % p.cid)
            for tag, gen, client, seq, n, kind in p.replies:
                self.assertEqual(tag, tags[gen], "client %d seq %d: %s in gen %d"
                                 % (p.cid, seq, tag, gen))
                self.assertEqual(client, p.cid, "the cache of %s lost client %d" % (tag, p.cid))
                self.assertEqual(n, seq, "the attribute n of client %d" % p.cid)
                self.assertEqual(kind, "f" if seq == p.sent else "m")
                answered[(p.cid, seq)] = (tag, gen)
            # The last message went out after the last reload was logged.
            self.assertEqual(p.replies[-1][:2], (tags[last_gen], last_gen))
        by_cid = {p.cid: p for p in peers}
        for p in peers:
            self.assertEqual(set(p.relayed), p.mates, "client %d" % p.cid)
            for mate, got in p.relayed.items():
                self.assertEqual([g[2] for g in got], list(range(1, by_cid[mate].sent + 1)),
                                 "broadcasts of client %d seen by %d" % (mate, p.cid))
                for tag, gen, seq, kind in got:
                    # The reply and the broadcast of one message come from the same version.
                    self.assertEqual((tag, gen), answered[(mate, seq)],
                                     "message %d of client %d" % (seq, mate))
        # Replies name only generations that existed, and each of them (the driver made every
        # generation answer PER_GEN messages while the load went on).
        seen = {r[1] for p in peers for r in p.replies}
        self.assertEqual(seen, set(range(last_gen + 1)))
        total = sum(p.sent for p in peers)
        print("\n  reload under load: %d clients, %d messages, %d replies + %d broadcasts,"
              " %d reloads, %.1fs" % (len(peers), total, total, total * (N_CLIENTS // GROUPS - 1),
                                      len(RELOADS), elapsed), end=" ", flush=True)

    async def _run(self, srv, path):
        loop = asyncio.get_running_loop()
        peers = [Peer(i) for i in range(N_CLIENTS)]
        for p in peers:
            p.mates = {q.cid for q in peers if q.cid % GROUPS == p.cid % GROUPS} - {p.cid}
            p.done = loop.create_future()
        by_gen = {}               # replies received per generation
        gen_goal = [None, None]   # (gen, future) the reload driver awaits
        reloads_done = asyncio.Event()
        closing = [False]         # set once the test closes the connections itself

        async def connect(p):
            p.ws = await websockets.connect("ws://127.0.0.1:%d/ws?c=%d" % (srv.port, p.cid),
                                            compression=None, ping_interval=None, max_queue=None,
                                            open_timeout=WAIT, close_timeout=1)
            await p.ws.send("hi")
            self.assertEqual(await asyncio.wait_for(p.ws.recv(), WAIT), "ready|v1")

        def check_done(p):
            finished = p.replies and p.replies[-1][5] == "f" and all(
                p.relayed.get(m) and p.relayed[m][-1][3] == "f" for m in p.mates)
            if finished and not p.done.done():
                p.done.set_result(True)

        def fail(p, why):
            if not p.done.done():
                p.done.set_exception(AssertionError("client %d: %s" % (p.cid, why)))

        def handle(p, msg):
            f = msg.split("|")
            if f[0] == "R" and len(f) == 7:
                tag, gen, client, seq, n, kind = f[1], int(f[2]), f[3], int(f[4]), int(f[5]), f[6]
                if client != str(p.cid):
                    return fail(p, "%s answered for client %s: %r" % (tag, client, msg))
                p.replies.append((tag, gen, p.cid, seq, n, kind))
                by_gen[gen] = by_gen.get(gen, 0) + 1
                goal, fut = gen_goal
                if goal == gen and by_gen[gen] >= PER_GEN and not fut.done():
                    fut.set_result(True)
            elif f[0] == "B" and len(f) == 6:
                if not f[3].isdigit() or int(f[3]) not in p.mates:
                    return fail(p, "broadcast from a stranger: %r" % msg)
                p.relayed.setdefault(int(f[3]), []).append((f[1], int(f[2]), int(f[4]), f[5]))
            else:
                return fail(p, "unexpected message %r" % msg)
            check_done(p)

        async def receive(p):
            try:
                async for msg in p.ws:
                    try:
                        handle(p, msg)
                    except (ValueError, IndexError):
                        fail(p, "malformed message %r" % msg)
            except websockets.ConnectionClosed:
                pass
            if not closing[0]:
                p.closed = (p.ws.close_code, p.ws.close_reason)
                fail(p, "closed by the server: %r" % (p.closed,))

        async def send(p):
            # Steadily, until the last reload was logged; then one final message.
            while p.sent < MIN_MESSAGES or not reloads_done.is_set():
                p.sent += 1
                await p.ws.send("m|%d" % p.sent)
                await asyncio.sleep(PACE)
            p.sent += 1
            await p.ws.send("f|%d" % p.sent)

        async def drive_reloads():
            for k, version in enumerate(RELOADS):
                gen_goal[:] = [k, loop.create_future()]
                if by_gen.get(k, 0) < PER_GEN:
                    try:
                        await asyncio.wait_for(gen_goal[1], 20)
                    except asyncio.TimeoutError:
                        raise AssertionError("generation %d answered %d messages, not %d"
                                             % (k, by_gen.get(k, 0), PER_GEN))
                with open(path, "w") as f:
                    f.write(LOAD_LUA % (version, GROUPS))
                srv.signal(signal.SIGHUP)
                await loop.run_in_executor(None, wait_lines, srv, r"reloaded \(SIGHUP\)", k + 1)
            reloads_done.set()

        await asyncio.gather(*(connect(p) for p in peers))
        receivers = [asyncio.create_task(receive(p)) for p in peers]
        try:
            await asyncio.gather(drive_reloads(), *(send(p) for p in peers))
            await asyncio.wait([p.done for p in peers], timeout=10,
                               return_when=asyncio.FIRST_EXCEPTION)
            for p in peers:
                if p.done.done():
                    p.done.result()  # raises the failure
            late = [p.cid for p in peers if not p.done.done()]
            if late:
                raise AssertionError("clients %s still miss replies" % late[:20])
        finally:
            for p in peers:  # a failure was raised once; the others need not be reported
                if p.done.done() and not p.done.cancelled():
                    p.done.exception()
            closing[0] = True
            await asyncio.gather(*(p.ws.close() for p in peers if p.ws),
                                 return_exceptions=True)
            await asyncio.gather(*receivers, return_exceptions=True)
        return peers


# ---------------------------------------------------------------------------------------------
# 2. Failed reloads keep the old script, its state and its timers

# Ticks "T1 n" to every connection each 10 ms from a timer started at load; answers "v1 DATA".
TICKING_V1 = """local confab = require "confab"
local n = 0
confab.every(0.01, function()
  n = n + 1
  for _, id in ipairs(confab.connections()) do confab.send(id, "T1 " .. n) end
end)
confab.on("message", function(ev) confab.send(ev.id, "v1 " .. ev.data) end)
"""

# The same with T2/v2, and a reload hook that tells every connection.
TICKING_V2 = """local confab = require "confab"
local n = 0
confab.every(0.01, function()
  n = n + 1
  for _, id in ipairs(confab.connections()) do confab.send(id, "T2 " .. n) end
end)
confab.on("message", function(ev) confab.send(ev.id, "v2 " .. ev.data) end)
confab.on("reload", function()
  for _, id in ipairs(confab.connections()) do confab.send(id, "reloaded v2") end
end)
"""

# Registers a timer and hooks, then fails at run time on line 9: none of it may take effect.
FAILS_LATE = """local confab = require "confab"
confab.every(0.005, function()
  for _, id in ipairs(confab.connections()) do confab.send(id, "T3 tick") end
end)
confab.on("message", function(ev) confab.send(ev.id, "v3 " .. ev.data) end)
confab.on("reload", function()
  for _, id in ipairs(confab.connections()) do confab.send(id, "reloaded v3") end
end)
local settings = nil
return settings.port
"""

SYNTAX_ERROR = """local confab = require "confab"

confab.on("message", function(ev)
  confab.send(ev.id, "v3 " .. ev.data))
end)
"""

SPINS_AT_LOAD = """local confab = require "confab"
confab.on("message", function(ev) confab.send(ev.id, "v3 " .. ev.data) end)
local n = 0
while true do n = n + 1 end
"""

EATS_MEMORY = """local confab = require "confab"
confab.on("message", function(ev) confab.send(ev.id, "v3 " .. ev.data) end)
local t = {}
for i = 1, 1e8 do t[i] = ("x"):rep(1 << 20) .. i end  -- big pieces: the cap, not the clock
"""


class TickReader:
    """Reads a Client whose connection also receives ticks "Tk n": ticks are checked to count
    up without a gap per series, and kept apart from the other messages."""

    def __init__(self, test, client):
        self.test, self.c = test, client
        self.last = {}  # series ("T1") -> last tick number

    def next(self, timeout=WAIT):
        """The next message; a tick is returned as (series, n)."""
        m = self.c.recv_raw(timeout)
        hit = re.fullmatch(r"(T\d) (\d+)", m)
        if not hit:
            return m
        series, n = hit.group(1), int(hit.group(2))
        if series in self.last:
            self.test.assertEqual(n, self.last[series] + 1, "%s ticks skipped or repeated"
                                  % series)
        self.last[series] = n
        return series, n

    def reply(self, timeout=WAIT):
        """The next message that is not a tick of the series seen so far."""
        while True:
            m = self.next(timeout)
            if not isinstance(m, tuple):
                return m

    def ticks(self, series, count, timeout=WAIT):
        """Awaits count more ticks of series; fails on anything else."""
        for _ in range(count):
            m = self.next(timeout)
            self.test.assertEqual(m[0] if isinstance(m, tuple) else m, series)


class FailedReload(ConfabTest):
    def setUp(self):
        super().setUp()
        self.path = self.script(TICKING_V1)
        self.srv = self.start("--hook-timeout", "20", "--script-memory", "8M", script=self.path)
        self.t = TickReader(self, self.client(self.srv))
        self.t.ticks("T1", 3)

    def reload_fails(self, text, pattern):
        """Writes text as the script, sends SIGHUP, awaits the failure in the log; returns it."""
        before = count_lines(self.srv, r"reload failed")
        self.write("hooks.lua", text)
        self.srv.signal(signal.SIGHUP)
        # Up to 1 s of CPU time spinning at load: longer on a loaded machine.
        line = wait_lines(self.srv, r"reload failed", before + 1, timeout=6 * WAIT)[-1]
        self.assertRegex(line, pattern)
        return line

    def assertOldScriptServes(self):
        # The old timer goes on counting (no restart, no gap), the old hook answers, and nothing
        # of the failed script (its timer, hooks or reload hook) ever shows.
        self.t.ticks("T1", 10)
        self.t.c.send("ping")
        self.assertEqual(self.t.reply(), "v1 ping")
        self.t.ticks("T1", 5)
        self.assertEqual(count_lines(self.srv, r"reloaded"), 0)

    def test_syntax_error_names_file_and_line(self):
        self.reload_fails(SYNTAX_ERROR, r"hooks\.lua:4: .*near '\)'")
        self.assertOldScriptServes()

    def test_runtime_error_while_loading_names_file_and_line_and_cancels_its_timers(self):
        self.reload_fails(FAILS_LATE, r"hooks\.lua:10: attempt to index a nil value")
        self.assertOldScriptServes()

    def test_endless_loop_while_loading_is_aborted(self):
        started = time.monotonic()
        self.reload_fails(SPINS_AT_LOAD, r"load.*time limit")
        self.assertGreaterEqual(time.monotonic() - started, 0.9, "loading gets at least 1 s")
        self.assertOldScriptServes()

    def test_endless_loop_while_loading_names_file_and_line(self):
        self.reload_fails(SPINS_AT_LOAD, r"hooks\.lua:4: .*time limit")

    def test_memory_bomb_while_loading_is_refused(self):
        self.reload_fails(EATS_MEMORY, r"not enough memory")
        self.assertOldScriptServes()

    def test_missing_file_then_a_good_one(self):
        os.remove(self.path)
        self.srv.signal(signal.SIGHUP)
        line = wait_lines(self.srv, r"reload failed", 1)[-1]
        self.assertIn("hooks.lua", line)
        self.assertOldScriptServes()
        # A good script after the failures replaces the old one and its timer.
        self.write("hooks.lua", TICKING_V2)
        self.srv.signal(signal.SIGHUP)
        self.assertEqual(self.t.reply(), "reloaded v2")
        wait_lines(self.srv, r"reloaded \(SIGHUP\)", 1)
        self.t.ticks("T2", 10)  # and no T1 among them
        self.t.c.send("ping")
        self.assertEqual(self.t.reply(), "v2 ping")


# ---------------------------------------------------------------------------------------------
# 3. --watch

def watched(tag, padding=0):
    """A script answering "TAG DATA", whose reload hook says "TAG loaded" to everyone. padding
    makes versions of different sizes."""
    return """local confab = require "confab"
-- %s
confab.on("message", function(ev) confab.send(ev.id, "%s " .. ev.data) end)
confab.on("reload", function()
  for _, id in ipairs(confab.connections()) do confab.send(id, "%s loaded") end
end)
""" % ("." * padding, tag, tag)


class Watch(ConfabTest):
    def setUp(self):
        super().setUp()
        self.path = self.script(watched("w1"))
        self.srv = self.start("--watch", script=self.path)
        self.c = self.client(self.srv)
        self.assertEqual(self.echo("a"), "w1 a")

    def echo(self, text):
        self.c.send(text)
        return self.c.recv_raw()

    def replace(self, text):
        """Writes a temporary file beside the script and renames it over it, as editors do."""
        self.before = count_lines(self.srv, r"reloaded \(file changed\)")
        tmp = self.path + ".tmp~"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.path)

    def rewrite(self, text):
        self.before = count_lines(self.srv, r"reloaded \(file changed\)")
        with open(self.path, "w") as f:
            f.write(text)

    def await_loaded(self, tag):
        # An in-place rewrite may be seen half-done (truncated) first: what counts is the new
        # version announcing itself; stray announcements of the same version are allowed.
        self.assertEqual(self.c.recv_raw(), "%s loaded" % tag)
        wait_lines(self.srv, r"reloaded \(file changed\)", self.before + 1)
        self.c.send("b")
        while True:
            m = self.c.recv_raw()
            if m != "%s loaded" % tag:
                break
        self.assertEqual(m, "%s b" % tag)

    def test_rename_over_and_in_place_rewrites_reload(self):
        self.replace(watched("w2", 1))
        self.await_loaded("w2")
        self.rewrite(watched("w3", 2))
        self.await_loaded("w3")
        self.replace(watched("w4", 3))  # the watch follows the file after a rename over it
        self.await_loaded("w4")
        self.rewrite(watched("w5", 4))
        self.await_loaded("w5")

    def test_broken_rewrite_keeps_the_old_script(self):
        self.replace(SYNTAX_ERROR)
        line = wait_lines(self.srv, r"reload failed", 1)[-1]
        self.assertRegex(line, r"hooks\.lua:4:")
        self.assertEqual(self.echo("c"), "w1 c")
        self.replace(watched("w2", 1))  # and a fixed file is picked up after the failure
        self.await_loaded("w2")

    def test_deleted_then_recreated(self):
        os.remove(self.path)
        self.assertEqual(self.echo("c"), "w1 c")
        self.replace(watched("w2", 1))
        self.await_loaded("w2")

    def test_same_size_rewrite_in_the_same_second(self):
        self.rewrite(watched("w2"))
        self.await_loaded("w2")
        self.rewrite(watched("w3"))  # same size as w2, usually within the same second
        self.await_loaded("w3")


# ---------------------------------------------------------------------------------------------
# 4. Timers on the real server

TIMERS_LUA = """local confab = require "confab"
local tickers = {}
confab.on("message", function(ev)
  local id = ev.id
  local cmd, arg = ev.data:match("^(%S+)%s*(.*)$")
  if cmd == "every" then
    local n = 0
    tickers[id] = confab.every(tonumber(arg), function()
      n = n + 1
      confab.send(id, "T1 " .. n)
    end)
    confab.send(id, "started")
  elseif cmd == "cancel" then
    local first, second = tickers[id]:cancel(), tickers[id]:cancel()
    confab.send(id, "cancelled " .. tostring(first) .. " " .. tostring(second))
    confab.after(0.1, function() confab.send(id, "later") end)
  elseif cmd == "after" then
    local t0 = confab.now()
    confab.after(tonumber(arg), function() confab.send(id, "after " .. (confab.now() - t0)) end)
    confab.after(tonumber(arg) * 4, function() confab.send(id, "guard") end)
  elseif cmd == "spin" then
    confab.after(0, function() while true do end end)
    confab.send(id, "spinning")
  elseif cmd == "spin-pcall" then
    confab.after(0, function()
      while true do pcall(function() while true do end end) end
    end)
    confab.send(id, "spinning")
  else
    confab.send(id, "echo " .. ev.data)
  end
end)
"""


class Timers(ConfabTest):
    def setUp(self):
        super().setUp()
        self.srv = self.start("--hook-timeout", "50", script=self.script(TIMERS_LUA))

    def test_every_ticks_and_cancel_stops_it(self):
        t = TickReader(self, self.client(self.srv))
        t.c.send("every 0.01")
        self.assertEqual(t.reply(), "started")
        t.ticks("T1", 5)
        t.c.send("cancel")
        # Ticks already sent may come before the answer; none after it, while the 0.1 s timer
        # set by cancel runs (ten intervals of the cancelled one).
        self.assertEqual(t.reply(), "cancelled true false")
        self.assertEqual(t.c.recv_raw(), "later")

    def test_after_fires_once_no_earlier_than_asked(self):
        c = self.client(self.srv)
        c.send("after 0.05")
        m = re.fullmatch(r"after (\d+)", c.recv_raw())
        self.assertIsNotNone(m)
        self.assertGreaterEqual(int(m.group(1)), 45)
        self.assertEqual(c.recv_raw(), "guard")  # and nothing from the first timer again

    def test_endless_loop_in_a_timer_is_aborted_and_clients_go_on(self):
        a = TickReader(self, self.client(self.srv))
        b = self.client(self.srv)
        a.c.send("every 0.01")
        self.assertEqual(a.reply(), "started")
        for n, cmd in enumerate(("spin", "spin-pcall"), 1):
            b.send(cmd)
            self.assertEqual(b.recv_raw(), "spinning")
            lines = wait_lines(self.srv, r"timer.*time limit", n)
            self.assertRegex(lines[-1], r"hook timer failed")
            # The other timer still ticks, both clients are answered.
            a.ticks("T1", 3)
            b.send("still")
            self.assertEqual(b.recv_raw(), "echo still")
            a.c.send("there")
            self.assertEqual(a.reply(), "echo there")
        self.assertEqual(count_lines(self.srv, r"time limit"), 2)  # each aborted once


class TimersAndReload(ConfabTest):
    def test_reload_cancels_the_old_timers(self):
        path = self.script(TICKING_V1, "ticking.lua")
        srv = self.start(script=path)
        t = TickReader(self, self.client(srv))
        t.ticks("T1", 3)
        self.write("ticking.lua", TICKING_V2)
        srv.signal(signal.SIGHUP)
        # Old ticks may precede the new script's greeting; none may follow it.
        self.assertEqual(t.reply(), "reloaded v2")
        wait_lines(srv, r"reloaded \(SIGHUP\)", 1)
        for n in range(1, 21):
            self.assertEqual(t.c.recv_raw(), "T2 %d" % n)


# ---------------------------------------------------------------------------------------------
# 5. Limits of the load at start-up

def children_cpu():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


class LoadLimits(ConfabTest):
    def run_script(self, text, *flags):
        """Runs confab to its end; returns the result and the CPU time it used (the time limit
        is CPU time: on a loaded machine the wall time is longer)."""
        path = self.script(text, "start.lua")
        before = children_cpu()
        r = run_confab("--addr", "127.0.0.1:0", "--web", WEB, "--script", path, *flags,
                       timeout=6 * WAIT)
        return r, children_cpu() - before

    def assertOneLineFailure(self, r, pattern):
        self.assertEqual(r.returncode, 2, r)
        lines = r.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, "one line: %r" % r.stderr)
        self.assertRegex(lines[0], pattern)
        self.assertNotIn("listening", r.stderr)

    def test_endless_loop_at_load_exits_2(self):
        r, took = self.run_script(SPINS_AT_LOAD, "--hook-timeout", "20")
        self.assertOneLineFailure(r, r"(?i)time limit")
        self.assertGreaterEqual(took, 0.95, "loading gets at least 1 s")
        self.assertLess(took, 1.5)

    def test_load_limit_is_ten_hook_timeouts(self):
        r, took = self.run_script(SPINS_AT_LOAD, "--hook-timeout", "150")
        self.assertOneLineFailure(r, r"(?i)time limit")
        self.assertGreaterEqual(took, 1.45)
        self.assertLess(took, 2)

    def test_memory_bomb_at_load_exits_2(self):
        r, _ = self.run_script(EATS_MEMORY, "--script-memory", "8M")
        self.assertOneLineFailure(r, r"(?i)memory")

    def test_check_applies_the_same_limits(self):
        path = self.script(EATS_MEMORY, "start.lua")
        r = run_confab("--script-memory", "8M", "--check", path)
        self.assertOneLineFailure(r, r"(?i)memory")
        path = self.script(SPINS_AT_LOAD, "start.lua")
        r = run_confab("--hook-timeout", "20", "--check", path, timeout=6 * WAIT)
        self.assertOneLineFailure(r, r"(?i)time limit")


    def test_check_with_a_looping_finalizer_exits_2(self):
        # A __gc runs with hooks off: one that loops hung --check (and reload, and exit) for good.
        path = self.script("""local t = setmetatable({}, {__gc = function() while true do end end})
""", "start.lua")
        r = run_confab("--check", path)
        self.assertOneLineFailure(r, r"start\.lua:1: .*__gc")


# ---------------------------------------------------------------------------------------------
# 6. What a hostile script cannot do to the server

HOSTILE_LUA = """local confab = require "confab"
local function spin() while true do end end
local function busy(s) local t0 = os.clock() while os.clock() - t0 < s do end end
confab.on("message", function(ev)
  if ev.data == "xpcall" then
    confab.send(ev.id, "spinning")
    xpcall(spin, spin)             -- the handler runs with hooks off once the abort is raised
    confab.send(ev.id, "escaped")
  elseif ev.data == "find" then
    confab.send(ev.id, "finding")
    local s = ("a"):rep(2048)
    s:find(".-.-b")                -- about 16 s in Lua's own string.find
    confab.send(ev.id, "found")
  elseif ev.data == "storm" then
    -- 200 timers of 40 ms each every millisecond: 8 s of timer work per pass of the loop.
    local told = false
    for i = 1, 200 do
      confab.every(0.001, function()
        if not told then told = true confab.send(ev.id, "stormed") end
        busy(0.04)
      end)
    end
    confab.send(ev.id, "storming")
  else
    confab.send(ev.id, "echo " .. ev.data)
  end
end)
"""

SLOW_GOODBYES_LUA = """local confab = require "confab"
confab.on("message", function(ev) confab.send(ev.id, "echo " .. ev.data) end)
confab.on("disconnect", function()
  local t0 = os.clock() while os.clock() - t0 < 1.9 do end    -- just inside --hook-timeout
end)
"""


class Hostile(ConfabTest):
    def test_xpcall_handler_cannot_escape_the_time_limit(self):
        srv = self.start("--hook-timeout", "50", script=self.script(HOSTILE_LUA))
        a, b = self.client(srv), self.client(srv)
        a.send("xpcall")
        self.assertEqual(a.recv_raw(), "spinning")
        wait_lines(srv, r"hook message failed: .*time limit", 1)
        b.send("after")
        self.assertEqual(b.recv_raw(), "echo after")
        a.send("again")
        self.assertEqual(a.recv_raw(), "echo again")  # never "escaped"

    def test_a_pathological_pattern_is_stopped_by_the_time_limit(self):
        srv = self.start("--hook-timeout", "50", script=self.script(HOSTILE_LUA))
        a, b = self.client(srv), self.client(srv)
        a.send("find")
        self.assertEqual(a.recv_raw(), "finding")
        wait_lines(srv, r"hook message failed: .*time limit", 1)
        b.send("after")
        self.assertEqual(b.recv_raw(), "echo after")
        a.send("again")
        self.assertEqual(a.recv_raw(), "echo again")  # never "found"

    def test_namefirst_example_survives_a_hostile_name(self):
        # namefirst.lua trims with match("^%s*(.-)%s*$"): quadratic on this text, 30 s in Lua's
        # own string.match for every client of the server.
        srv = self.start(script=os.path.join(EXAMPLES, "namefirst.lua"))
        a, b = self.client(srv), self.client(srv)
        a.send("a" + " " * 65000 + "b")
        wait_lines(srv, r"hook message failed: .*time limit", 1)
        b.send("bob")
        b.send("hello")
        self.assertEqual(b.recv_raw(), "bob: hello")

    def test_a_timer_storm_does_not_starve_the_clients(self):
        srv = self.start("--hook-timeout", "50", script=self.script(HOSTILE_LUA))
        a, b = self.client(srv), self.client(srv)
        a.send("storm")
        self.assertEqual(a.recv_raw(), "storming")
        self.assertEqual(a.recv_raw(), "stormed")  # the timers run
        for n in range(5):
            b.send("ping %d" % n)
            self.assertEqual(b.recv_raw(), "echo ping %d" % n)

    def test_sigterm_ends_the_server_within_its_grace_whatever_the_hooks_take(self):
        # Six disconnect hooks of 1.9 s each (all within --hook-timeout) would take 11 s.
        srv = self.start("--hook-timeout", "2000", script=self.script(SLOW_GOODBYES_LUA),
                         check_exit=False)
        clients = [self.client(srv) for _ in range(6)]
        for n, c in enumerate(clients):
            c.send("hi %d" % n)
            self.assertEqual(c.recv_raw(), "echo hi %d" % n)
        srv.signal(signal.SIGTERM)
        rc = srv.wait_exit(2 * WAIT)
        self.assertEqual(rc, 1)
        self.assertRegex(srv.log, r"still not stopped after the grace period")


# ---------------------------------------------------------------------------------------------
# 7. The sandbox through the real binary (the full list is in spec/unit/script_test.c)

SANDBOX_LUA = """local confab = require "confab"
local MARK = "@MARK@"
local probes = {
  ["io.open"] = function() return io.open(MARK, "w") end,
  ["os.execute"] = function() return os.execute("touch " .. MARK) end,
  ["os.getenv"] = function() return os.getenv("HOME") end,
  ["require debug"] = function() return require "debug" end,
  ["require io"] = function() return require "io" end,
  ["package.loadlib"] = function() return package.loadlib("libc.so.6", "system") end,
  ["dofile"] = function() return dofile(MARK) end,
  ["load binary"] = function()
    local f, err = load(string.dump(function() return 1 end), "x", "b")
    return f or error(err)
  end,
  ["collectgarbage stop"] = function() return collectgarbage("stop") end,
  ["new global"] = function() sneaky = 1 end,
}
confab.on("message", function(ev)
  local raw = ev.data:match("^raw (.*)$")
  if raw then                       -- unprotected: the hook itself fails
    probes[raw]()
    confab.send(ev.id, "raw survived " .. raw)
  elseif probes[ev.data] then
    local ok, err = pcall(probes[ev.data])
    confab.send(ev.id, ev.data .. " => " .. (ok and "ok " or "error ") .. tostring(err))
  else
    confab.send(ev.id, "echo " .. ev.data)
  end
end)
"""

# Each probe and what its error must say.
PROBES = {
    "io.open": r"'io'", "os.execute": r"'execute'", "os.getenv": r"'getenv'",
    "require debug": r"'debug' is not available", "require io": r"'io' is not available",
    "package.loadlib": r"'package'", "dofile": r"'dofile'", "load binary": r"text chunks",
    "collectgarbage stop": r"invalid option 'stop'", "new global": r"undeclared global 'sneaky'",
}


class Sandbox(ConfabTest):
    def test_escapes_fail_in_the_hook_and_everything_goes_on(self):
        mark = os.path.join(self.tmp, "escaped")
        srv = self.start(script=self.script(SANDBOX_LUA.replace("@MARK@", mark)))
        a, b = self.client(srv), self.client(srv)
        for probe, why in PROBES.items():
            a.send(probe)
            self.assertRegex(a.recv_raw(), r"^%s => error .*%s" % (re.escape(probe), why))
        for n, probe in enumerate(("io.open", "os.execute", "require debug"), 1):
            a.send("raw " + probe)
            wait_lines(srv, r"hook message failed", n)
            b.send("after " + probe)
            self.assertEqual(b.recv_raw(), "echo after " + probe)
            a.send("again")
            self.assertEqual(a.recv_raw(), "echo again")  # not "raw survived"
        self.assertFalse(os.path.exists(mark), "a probe created %s" % mark)
        # The unprotected attempts were logged with what failed.
        log = srv.log
        for why in ("'io'", "'execute'", "'debug' is not available"):
            self.assertRegex(log, r"hook message failed: .*%s" % why)
