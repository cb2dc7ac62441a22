"""Rooms over Redis (--redis): confab.post and confab.replay through a real redis-server on a
private port, with two or three nodes. The C link layer's faults: Redis stopped and started
again empty (refusal with a clear error, reconnect, new epoch), the subscriber links killed while
publishing (repair from the stream: nothing lost, nothing twice), the script cache flushed
(NOSCRIPT: EVAL again). Presence, names and chat.lua across nodes are tested elsewhere."""

import json
import os
import signal
import threading
import time

from helpers import WAIT, Client, ConfabTest, run_confab
from redis_server import RedisServer

# A room protocol over post/replay, answering in JSON:
#   {"join": ROOM [, "after": N]}    -> joins, {"joined": ROOM}; with after, then replays (in the
#                                       same hook, as a resume does: history, then live)
#   {"post": ROOM, "text": T, "cid"} -> confab.post; {"done": cid, "id": ID} or
#                                       {"refused": cid, "err": E} / {"failed": cid, "err": E}
#   {"replay": ROOM, "after": N}     -> {"history": ROOM, "list": [...], "complete": B}
#   {"epoch": true}                  -> {"epoch": confab.epoch}
#   {"hooks": true}                  -> {"hooks": number of message hooks run on this node}
#   {"claim": KEY}                   -> confab.claim(KEY, "v"); {"claim": KEY, "ok": B, "v": V}
#                                       (fn's answer) or {"claim_refused": KEY, "err": E}
# Room messages are {"m": ID, "room": ROOM, "text": T}.
ROOMS_LUA = r"""
local confab = require "confab"
local cjson = require "cjson"
local hooks = 0
local function reply(id, t) confab.send(id, cjson.encode(t)) end
confab.on("message", function(ev)
  hooks = hooks + 1
  local m = cjson.decode(ev.data)
  if m.join then
    confab.join(ev.id, m.join)
    reply(ev.id, { joined = m.join })
    if m.after then m.replay = m.join else return end
  end
  if m.post then
    local head = '{"m":'
    local tail = ',"room":' .. cjson.encode(m.post) .. ',"text":' .. cjson.encode(m.text) .. '}'
    local ok, err = confab.post(m.post, head, tail, function(mid, e)
      if mid then reply(ev.id, { done = m.cid, id = mid })
      else reply(ev.id, { failed = m.cid, err = e }) end
    end)
    if not ok then reply(ev.id, { refused = m.cid, err = err }) end
  elseif m.replay then
    local ok, err = confab.replay(m.replay, m.after, function(list, complete)
      if not list then return reply(ev.id, { replay_failed = m.replay, err = complete }) end
      local out = {}
      for i, s in ipairs(list) do out[i] = cjson.decode(s) end
      confab.send(ev.id, cjson.encode({ history = m.replay, complete = complete }):sub(1, -2)
        .. ',"list":' .. (#out > 0 and cjson.encode(out) or "[]") .. "}")
    end)
    if not ok then reply(ev.id, { replay_refused = m.replay, err = err }) end
  elseif m.epoch then
    reply(ev.id, { epoch = confab.epoch })
  elseif m.hooks then
    reply(ev.id, { hooks = hooks })
  elseif m.claim then
    local ok, err = confab.claim(m.claim, "v", function(got, v)
      reply(ev.id, { claim = m.claim, ok = got == nil and cjson.null or got, v = v })
    end)
    if not ok then reply(ev.id, { claim_refused = m.claim, err = err }) end
  end
end)
"""


class Peer(Client):
    """A client of ROOMS_LUA: received messages land in the inbox (recv_json matches fields)."""

    def cmd(self, **fields):
        self.send_json(fields)

    def join(self, room):
        self.cmd(join=room)
        self.recv_json(joined=room)

    def recv_json(self, type=None, timeout=WAIT, **fields):
        # ROOMS_LUA has no "type": match on fields, and on a key merely being present for None.
        for i, msg in enumerate(self.inbox):
            if all((k in msg) if v is None else msg.get(k) == v for k, v in fields.items()):
                return self.inbox.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no %r within %.1fs; inbox: %s"
                                     % (fields, timeout, json.dumps(self.inbox)[-1500:]))
            raw = self.recv_raw(left)
            msg = json.loads(raw)
            if all((k in msg) if v is None else msg.get(k) == v for k, v in fields.items()):
                return msg
            self.inbox.append(msg)

    def messages(self, room, n, timeout=WAIT):
        """The next n room messages of room, in the order they arrived."""
        got = []
        deadline = time.monotonic() + timeout
        while len(got) < n:
            got.append(self.recv_json(timeout=max(0.01, deadline - time.monotonic()),
                                      m=None, room=room))
        return got


class RedisRooms(ConfabTest):
    def setUp(self):
        super().setUp()
        self.redis = RedisServer(self.tmp)
        self.addCleanup(self.redis.stop)
        self.hooks = self.script(ROOMS_LUA, "rooms.lua")

    def node(self, *flags):
        srv = self.start("--redis", self.redis.url, *flags, script=self.hooks)
        srv.wait_log(r"redis .*: connected")
        srv.wait_log(r"redis .*: subscribed")
        return srv

    def peer(self, srv):
        p = Peer(srv.port, origin="http://127.0.0.1:%d" % srv.port)
        self.addCleanup(p.close)
        return p

    def test_two_nodes_one_order_ids_from_redis_history_in_redis(self):
        a_srv, b_srv = self.node(), self.node()
        a, b = self.peer(a_srv), self.peer(b_srv)
        a.join("r")
        b.join("r")
        for i in range(10):
            (a if i % 2 else b).cmd(post="r", text="t%d" % i, cid=i)
        seq_a = a.messages("r", 10)
        seq_b = b.messages("r", 10)
        self.assertEqual(seq_a, seq_b)  # one order on both nodes
        ids = [m["m"] for m in seq_a]
        self.assertEqual(ids, list(range(ids[0], ids[0] + 10)))  # consecutive, from Redis
        # Every post was acknowledged with the id it got, on the node it was sent from.
        done = {}
        for p in (a, b):
            for _ in range(5):
                d = p.recv_json(done=None)
                done[d["done"]] = d["id"]
        self.assertEqual(sorted(done.values()), ids)
        self.assertEqual({m["text"]: m["m"] for m in seq_a},
                         {"t%d" % c: i for c, i in done.items()})
        # The stream holds them, and the counter is the last id.
        self.assertEqual(self.redis.call("XLEN", "confab:{r}:s"), 10)
        self.assertEqual(int(self.redis.call("HGET", "confab:{r}:n", "n")), ids[-1])
        # Nothing else arrived (no duplicates).
        self.assertEqual([m for m in a.inbox + b.inbox if "m" in m], [])
        # The hook ran once per client message, on the node where it was sent.
        a.cmd(hooks=True)
        b.cmd(hooks=True)
        self.assertEqual(a.recv_json(hooks=None)["hooks"], 1 + 5 + 1)
        self.assertEqual(b.recv_json(hooks=None)["hooks"], 1 + 5 + 1)

    def test_replay_on_another_node_exactly_the_missed_or_everything(self):
        a_srv, b_srv = self.node("--history", "5"), self.node("--history", "5")
        a = self.peer(a_srv)
        a.join("r")
        for i in range(3):
            a.cmd(post="r", text="x%d" % i, cid=i)
        got = a.messages("r", 3)
        ids = [m["m"] for m in got]
        b = self.peer(b_srv)
        b.cmd(replay="r", after=ids[0])
        h = b.recv_json(history="r")
        self.assertTrue(h["complete"])
        self.assertEqual(h["list"], got[1:])
        b.cmd(replay="r", after=0)
        h = b.recv_json(history="r")
        self.assertTrue(h["complete"])
        self.assertEqual(h["list"], got)
        # Past the 5 kept: a resume from before them is incomplete and gets all that is kept.
        for i in range(3, 8):
            a.cmd(post="r", text="x%d" % i, cid=i)
        got += a.messages("r", 5)
        b.cmd(replay="r", after=ids[0])
        h = b.recv_json(history="r")
        self.assertFalse(h["complete"])
        self.assertEqual(h["list"], got[-5:])
        # An id that is not of this history (from another epoch, or the future): incomplete.
        b.cmd(replay="r", after=got[-1]["m"] + 1000)
        h = b.recv_json(history="r")
        self.assertFalse(h["complete"])
        self.assertEqual(h["list"], got[-5:])
        b.cmd(replay="r", after=got[-1]["m"])
        h = b.recv_json(history="r")
        self.assertTrue(h["complete"])
        self.assertEqual(h["list"], [])

    def stored(self, room):
        """The room's stream as (id, time in ms, data)."""
        return [(int(i.split("-")[0]), int(i.split("-")[1]), f[1])
                for i, f in self.redis.call("XRANGE", "confab:{%s}:s" % room, "-", "+")]

    def redis_ms(self):
        sec, usec = self.redis.call("TIME")
        return int(sec) * 1000 + int(usec) // 1000

    def post_all(self, p, room, texts):
        for i, t in enumerate(texts):
            p.cmd(post=room, text=t, cid=i)
        done = [p.recv_json(done=i)["id"] for i in range(len(texts))]
        p.messages(room, len(texts))
        return done

    def test_history_memory_bounds_the_bytes_of_each_rooms_stream(self):
        # About 240 bytes a message: 4 fit in 1000 bytes. Per room: r2 keeps its own.
        a_srv, b_srv = (self.node("--history-memory", "1000"),
                        self.node("--history-memory", "1000"))
        a, b = self.peer(a_srv), self.peer(b_srv)
        a.join("r")
        a.join("r2")
        ids = self.post_all(a, "r", ["%d" % i + "x" * 200 for i in range(10)])
        self.post_all(a, "r2", ["y" * 200])
        kept = self.stored("r")
        size = sum(len(d.encode()) for _, _, d in kept)
        self.assertEqual(int(self.redis.call("HGET", "confab:{r}:n", "m")), size)
        self.assertLessEqual(size, 1000)
        self.assertEqual([i for i, _, _ in kept], ids[-len(kept):])
        dropped = ids[-len(kept) - 1]
        self.assertGreater(size + 240, 1000, "the newest that fit are kept: %d bytes" % size)
        self.assertEqual(len(self.stored("r2")), 1)
        # A resume from before what is kept is incomplete and gets what is kept; from the last
        # dropped one it is complete.
        b.cmd(replay="r", after=ids[0])
        h = b.recv_json(history="r")
        self.assertEqual((h["complete"], [m["m"] for m in h["list"]]),
                         (False, [i for i, _, _ in kept]))
        b.cmd(replay="r", after=dropped)
        h = b.recv_json(history="r")
        self.assertEqual((h["complete"], [m["m"] for m in h["list"]]),
                         (True, [i for i, _, _ in kept]))
        # A message longer than the whole limit is not stored (its id is used).
        big = self.post_all(a, "r", ["z" * 1200])
        self.assertEqual(self.stored("r"), [])
        self.assertEqual(self.redis.call("HGET", "confab:{r}:n", "m"), "0")
        b.cmd(replay="r", after=big[0] - 1)
        h = b.recv_json(history="r")
        self.assertEqual((h["complete"], h["list"]), (False, []))
        b.cmd(replay="r", after=big[0])
        self.assertEqual(b.recv_json(history="r")["complete"], True)

    def test_history_count_trims_without_reading_entries_far_below_the_memory_limit(self):
        # --history 5, 10,000 bytes: the count trims; the sum is an upper bound (x 0) until it
        # passes the limit, then counted once and kept exact (x 1) near it.
        srv = self.node("--history", "5", "--history-memory", "10000")
        p = self.peer(srv)
        p.join("r")
        self.post_all(p, "r", ["a" * 100 for _ in range(12)])
        kept = self.stored("r")
        self.assertEqual(len(kept), 5)
        size = sum(len(d.encode()) for _, _, d in kept)
        m, x = self.redis.call("HMGET", "confab:{r}:n", "m", "x")
        self.assertEqual(x, "0")
        self.assertGreater(int(m), size)  # what the count dropped is still in the bound
        self.assertLessEqual(int(m), 10000)
        self.post_all(p, "r", ["b" * 1900 for _ in range(5)])  # 5 x ~1940 bytes: near the limit
        kept = self.stored("r")
        size = sum(len(d.encode()) for _, _, d in kept)
        self.assertLessEqual(size, 10000)
        self.assertEqual(self.redis.call("HMGET", "confab:{r}:n", "m", "x"), [str(size), "1"])

    def test_history_age_drops_old_entries_at_posts_and_reads(self):
        age = 1000  # ms
        a_srv, b_srv = self.node("--history-age", "1"), self.node("--history-age", "1")
        a, b = self.peer(a_srv), self.peer(b_srv)
        a.join("r")
        ids = self.post_all(a, "r", ["old0", "old1"])
        stored = self.stored("r")
        self.assertEqual([i for i, _, _ in stored], ids)
        # The stream expires that long after its last post (an idle room's history goes too).
        self.assertTrue(0 < self.redis.call("PTTL", "confab:{r}:s") <= age)
        # Wait for the age to pass on Redis's clock (what the scripts go by).
        deadline = time.monotonic() + WAIT
        while self.redis_ms() < stored[-1][1] + age:
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.05)
        # Read before any post: expired entries are not returned (the read drops them).
        b.cmd(replay="r", after=ids[0])
        h = b.recv_json(history="r")
        self.assertEqual((h["complete"], h["list"]), (False, []))
        self.assertEqual(self.stored("r"), [])
        new = self.post_all(a, "r", ["new"])
        stored = self.stored("r")
        self.assertEqual([i for i, _, _ in stored], new)
        new_at = stored[0][1]
        # A resume from the last expired one gets the new one, complete; from before, incomplete.
        # (Unless the new one expired meanwhile on a stalled machine: then the list is empty.)
        for after, complete in ((ids[-1], True), (ids[0], False)):
            b.cmd(replay="r", after=after)
            h = b.recv_json(history="r")
            if h["list"] == []:
                self.assertGreaterEqual(self.redis_ms(), new_at + age, "dropped before its age")
                self.assertFalse(h["complete"])
                continue
            self.assertEqual((h["complete"], [m["m"] for m in h["list"]]), (complete, new))

    def test_claims_past_the_cap_are_refused_by_redis(self):
        # Every node's mirror holds what Redis holds: Redis refuses a new key past 100,000.
        srv = self.node()
        p = self.peer(srv)
        fields = []
        for i in range(100000 - 1):
            fields += ["x%d" % i, "0 w"]
        self.redis.call("HSET", "confab:{p}:claims", *fields)
        p.cmd(claim="last")
        self.assertEqual(p.recv_json(claim="last")["ok"], True)
        p.cmd(claim="more")
        self.assertEqual(p.recv_json(claim="more"), {"claim": "more", "ok": None,
                                                      "v": "too many claims"})
        self.assertEqual(self.redis.call("HLEN", "confab:{p}:claims"), 100000)
        self.assertIsNone(self.redis.call("HGET", "confab:{p}:claims", "more"))
        p.cmd(claim="x5")  # held by another node: refused as taken, not as too many
        self.assertEqual(p.recv_json(claim="x5")["ok"], False)

    def test_three_nodes_publishing_at_once_see_one_sequence(self):
        nodes = [self.node() for _ in range(3)]
        peers = [self.peer(n) for n in nodes]
        for p in peers:
            p.join("busy")
        per = 40

        def blast(p, k):
            for i in range(per):
                p.cmd(post="busy", text="%d-%d" % (k, i), cid=i)

        threads = [threading.Thread(target=blast, args=(p, k)) for k, p in enumerate(peers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seqs = [p.messages("busy", 3 * per) for p in peers]
        self.assertEqual(seqs[0], seqs[1])
        self.assertEqual(seqs[0], seqs[2])
        ids = [m["m"] for m in seqs[0]]
        self.assertEqual(ids, list(range(ids[0], ids[0] + 3 * per)))
        # Each sender's own messages keep the order it sent them in.
        for k in range(3):
            mine = [int(m["text"].split("-")[1]) for m in seqs[0] if m["text"].startswith("%d-" % k)]
            self.assertEqual(mine, list(range(per)))

    def test_a_joiner_gets_history_then_live_nothing_twice(self):
        a_srv, b_srv = self.node(), self.node()
        a = self.peer(a_srv)
        a.join("r")
        stop = threading.Event()
        sent = []

        def blast():
            i = 0
            while not stop.is_set() and i < 300:
                a.cmd(post="r", text="n%d" % i, cid=i)
                sent.append(i)
                i += 1
                if i % 20 == 0:
                    time.sleep(0.005)

        t = threading.Thread(target=blast)
        t.start()
        # Two clients join node b while messages flow: each replays from the start.
        bs = []
        for _ in range(2):
            b = self.peer(b_srv)
            b.cmd(join="r", after=0)
            b.recv_json(joined="r")
            bs.append(b)
        t.join()
        total = len(sent)
        all_a = a.messages("r", total, timeout=3 * WAIT)
        for b in bs:
            h = b.recv_json(history="r")
            self.assertTrue(h["complete"])
            live = b.messages("r", total - len(h["list"]), timeout=3 * WAIT)
            # History first, then live: together exactly what a saw, in the same order.
            self.assertEqual(h["list"] + live, all_a)

    def test_redis_down_refuses_posts_then_recovers_with_a_new_epoch(self):
        srv = self.node("--redis-timeout", "1")
        a = self.peer(srv)
        a.join("r")
        a.cmd(epoch=True)
        epoch1 = a.recv_json(epoch=None)["epoch"]
        self.assertGreater(epoch1, 0)
        a.cmd(post="r", text="before", cid=1)
        before = a.recv_json(m=None)["m"]
        self.redis.stop()
        srv.wait_log(r"command link lost")
        a.cmd(post="r", text="while down", cid=2)
        r = a.recv_json(refused=2)
        self.assertEqual(r["err"], "redis unavailable")
        a.cmd(replay="r", after=0)
        self.assertEqual(a.recv_json(replay_refused="r")["err"], "redis unavailable")
        # The node still serves its clients.
        a.cmd(hooks=True)
        a.recv_json(hooks=None)
        # Redis comes back empty: reconnect, scripts loaded again, a new epoch, ids above the old.
        time.sleep(1.1)  # TIME in seconds moves on, so the new epoch differs (ms) for sure
        self.redis.restart(keep_data=False)
        srv.wait_log(r"(?s)command link lost.*connected \(shard 0\)")
        deadline = time.monotonic() + 3 * WAIT
        k = 0
        while True:  # until the node has reconnected: each attempt is refused or done
            k += 1
            a.cmd(post="r", text="after", cid="after%d" % k)
            msg = self._await_either(a, "after%d" % k)
            if "done" in msg:
                break
            self.assertEqual(msg.get("err"), "redis unavailable")
            self.assertLess(time.monotonic(), deadline, "posts still refused")
            time.sleep(0.05)
        after = a.recv_json(m=None, text="after")["m"]
        self.assertGreater(after, before)
        a.cmd(epoch=True)
        self.assertNotEqual(a.recv_json(epoch=None)["epoch"], epoch1)
        self.assertTrue(srv.find_log(r"epoch changed"))

    def test_a_hung_redis_is_noticed_within_the_timeout_and_posts_are_refused(self):
        a_srv, b_srv = self.node("--redis-timeout", "0.5"), self.node("--redis-timeout", "0.5")
        a, b = self.peer(a_srv), self.peer(b_srv)
        a.join("r")
        b.join("r")
        a.cmd(post="r", text="before", cid=1)
        b.recv_json(m=None, text="before")
        os.kill(self.redis.pid, signal.SIGSTOP)
        self.addCleanup(self._cont)
        # Idle links are pinged every second: both notice without anything being sent.
        a_srv.wait_log(r"command link lost: no reply within --redis-timeout")
        a_srv.wait_log(r"subscriber link lost: no reply within --redis-timeout")
        a.cmd(post="r", text="while hung", cid=2)
        self.assertEqual(a.recv_json(refused=2)["err"], "redis unavailable")
        self._cont()
        k = 0
        deadline = time.monotonic() + 3 * WAIT
        while True:
            k += 1
            a.cmd(post="r", text="after", cid="after%d" % k)
            if "done" in self._await_either(a, "after%d" % k):
                break
            self.assertLess(time.monotonic(), deadline, "posts still refused")
            time.sleep(0.05)
        self.assertEqual(b.recv_json(m=None)["text"], "after")  # nothing in between, nothing lost

    def _cont(self):
        if self.redis.running():
            os.kill(self.redis.pid, signal.SIGCONT)

    def _await_either(self, p, cid):
        """The done/refused/failed answer for cid."""
        deadline = time.monotonic() + WAIT
        while True:
            for i, msg in enumerate(p.inbox):
                if cid in (msg.get("done"), msg.get("refused"), msg.get("failed")):
                    return p.inbox.pop(i)
            left = deadline - time.monotonic()
            self.assertGreater(left, 0, "no answer for %r" % cid)
            p.inbox.append(json.loads(p.recv_raw(left)))

    def test_killed_subscriber_links_lose_nothing(self):
        # The stream keeps more than the test sends: a repair finds every missed message.
        a_srv, b_srv = self.node("--history", "1000"), self.node("--history", "1000")
        a, b = self.peer(a_srv), self.peer(b_srv)
        a.join("r")
        b.join("r")
        n = 200
        kills = []

        def blast():
            for i in range(n):
                a.cmd(post="r", text="k%d" % i, cid=i)
                if i % 40 == 20:
                    kills.append(self.redis.call("CLIENT", "KILL", "TYPE", "pubsub"))
                    time.sleep(0.03)  # spreads the kills over the run (no outcome waits on it)

        t = threading.Thread(target=blast)
        t.start()
        t.join()
        self.assertTrue(any(k > 0 for k in kills))
        seq_a = a.messages("r", n, timeout=3 * WAIT)
        seq_b = b.messages("r", n, timeout=3 * WAIT)
        self.assertEqual(seq_a, seq_b)
        self.assertEqual(sorted(int(m["text"][1:]) for m in seq_a), list(range(n)))
        ids = [m["m"] for m in seq_a]
        self.assertEqual(ids, list(range(ids[0], ids[0] + n)))
        a_srv.wait_log(r"subscriber link lost")
        # Nothing more arrives later (no duplicates): one more message is the next one.
        a.cmd(post="r", text="last", cid="last")
        self.assertEqual(b.recv_json(m=None)["text"], "last")
        self.assertEqual(a.recv_json(m=None)["text"], "last")

    def test_killed_command_links_while_publishing_and_joining_nothing_twice(self):
        a_srv, b_srv = self.node("--history", "1000"), self.node("--history", "1000")
        a, b = self.peer(a_srv), self.peer(b_srv)
        a.join("r")
        b.join("r")
        n = 150
        acked, joiners = [], []

        def blast():
            for i in range(n):
                a.cmd(post="r", text="c%d" % i, cid=i)
                if i % 30 == 10:
                    self.redis.call("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
                    j = self.peer(b_srv)  # joins while the links come back
                    j.cmd(join="r", after=0)
                    joiners.append(j)
                    time.sleep(0.02)

        t = threading.Thread(target=blast)
        t.start()
        t.join()
        # Which posts were accepted and acknowledged (refused or failed ones may be missing; a
        # timed-out one may still arrive): every acknowledged one arrives once, in one order.
        answers = {}
        kept = []
        while len(answers) < n:
            m = json.loads(a.recv_raw(3 * WAIT))
            for key in ("done", "refused", "failed"):
                if key in m:
                    answers[m[key]] = key
            if "m" in m:
                kept.append(m)
        a.inbox = kept + a.inbox
        acked = {"c%d" % c for c, k in answers.items() if k == "done"}
        k = 0
        while True:  # the links may still be coming back
            k += 1
            a.cmd(post="r", text="end", cid="end%d" % k)
            if "done" in self._await_either(a, "end%d" % k):
                break
            self.assertLess(k, 200)
            time.sleep(0.05)
        seq_a, seq_b = [], []
        for p, seq in ((a, seq_a), (b, seq_b)):
            while not seq or seq[-1]["text"] != "end":
                seq.append(p.recv_json(m=None, timeout=3 * WAIT))
        self.assertEqual(seq_a, seq_b)
        texts = [m["text"] for m in seq_a]
        self.assertEqual(len(texts), len(set(texts)))  # nothing twice
        self.assertLessEqual(acked, set(texts))         # nothing acknowledged lost
        self.assertEqual([m["m"] for m in seq_a], sorted(m["m"] for m in seq_a))
        # Each joiner: its history (or an error, while the link was down), then live: no id twice.
        for j in joiners:
            j.recv_json(joined="r")
            seen = []
            while "end" not in [x.get("text") for x in seen]:
                m = j.recv_json(timeout=3 * WAIT)
                if "history" in m:
                    seen.extend(m["list"])
                elif "m" in m:
                    seen.append(m)
            ids = [x["m"] for x in seen]
            self.assertEqual(len(ids), len(set(ids)), "a joiner got a message twice")
            self.assertEqual(ids, sorted(ids))

    def test_script_cache_flushed_noscript_is_answered_by_eval(self):
        srv = self.node()
        a = self.peer(srv)
        a.join("r")
        a.cmd(post="r", text="one", cid=1)
        a.recv_json(done=1)
        self.redis.call("SCRIPT", "FLUSH")
        a.cmd(post="r", text="two", cid=2)
        a.recv_json(done=2)
        # a gets both live once; a's replay holds what was delivered here when it was answered
        # (the rest comes live), so "two" may or may not be in it yet.
        self.assertEqual([m["text"] for m in a.messages("r", 2)], ["one", "two"])
        a.cmd(replay="r", after=0)
        self.assertIn([m["text"] for m in a.recv_json(history="r")["list"]],
                      (["one"], ["one", "two"]))
        b = self.peer(self.node())
        b.cmd(replay="r", after=0)  # a node where nobody is in r: everything stored
        self.assertEqual([m["text"] for m in b.recv_json(history="r")["list"]], ["one", "two"])

    def test_bad_redis_urls_are_refused_with_a_reason(self):
        for url, why in (("localhost:6379", "must start with redis:// or unix:"),
                         ("redis://h:99999", "port must be 1 to 65535"),
                         ("unix:relative", "must be absolute")):
            p = run_confab("--redis", url)
            self.assertEqual(p.returncode, 2)
            self.assertIn("bad --redis URL '%s'" % url, p.stderr)
            self.assertIn(why, p.stderr)


class RedisChat(ConfabTest):
    """scripts/chat.lua on two nodes: room messages and resume go through Redis."""

    def setUp(self):
        super().setUp()
        self.redis = RedisServer(self.tmp)
        self.addCleanup(self.redis.stop)

    def node(self):
        srv = self.start("--redis", self.redis.url)
        srv.wait_log(r"redis .*: connected")
        srv.wait_log(r"redis .*: subscribed")
        return srv

    def user(self, srv, name, **extra):
        c = self.client(srv, origin="http://127.0.0.1:%d" % srv.port)
        c.hello(name, **extra)
        c.recv_json("history", room="lobby")  # from Redis: what comes later arrives live
        return c

    def test_messages_cross_nodes_and_a_resume_on_the_other_node_gets_exactly_the_missed(self):
        a_srv, b_srv = self.node(), self.node()
        alice, bob = self.user(a_srv, "alice"), self.user(b_srv, "bob")
        alice.say("lobby", "one")
        m1 = bob.recv_json("message", text="one")
        self.assertEqual(alice.recv_json("message", text="one")["id"], m1["id"])
        bob.close()
        alice.say("lobby", "two")
        alice.say("lobby", "three")
        alice.recv_json("message", text="three")
        # bob comes back on alice's node with his epoch and last id: exactly two and three.
        bob2 = self.client(a_srv, origin="http://127.0.0.1:%d" % a_srv.port)
        bob2.send_json(type="hello", name="bob2")
        epoch = bob2.recv_json("welcome")["epoch"]
        self.assertGreater(epoch, 0)
        bob2.close()
        bob3 = self.client(a_srv, origin="http://127.0.0.1:%d" % a_srv.port)
        bob3.send_json(type="hello", name="bob3",
                       resume={"epoch": epoch, "rooms": {"lobby": m1["id"]}})
        h = bob3.recv_json("history", room="lobby")
        self.assertEqual((h["complete"], h["reset"]), (True, False))
        self.assertEqual([m["text"] for m in h["messages"]], ["two", "three"])
        self.assertEqual([m["id"] for m in h["messages"]], [m1["id"] + 1, m1["id"] + 2])

    def test_redis_restarted_empty_members_get_reset_and_posts_work_again(self):
        a_srv, b_srv = self.node(), self.node()
        alice, bob = self.user(a_srv, "alice"), self.user(b_srv, "bob")
        alice.say("lobby", "old")
        old = bob.recv_json("message", text="old")["id"]
        self.redis.restart(keep_data=False)
        for c in (alice, bob):
            h = c.recv_json("history", room="lobby", timeout=3 * WAIT)
            self.assertTrue(h["reset"])
            self.assertEqual(h["messages"], [])
        deadline = time.monotonic() + 3 * WAIT
        while True:  # the nodes reconnect on their own; until then a say is refused
            bob.say("lobby", "new")
            msg = bob.recv_json(timeout=WAIT)
            while msg.get("type") not in ("message", "error"):
                msg = bob.recv_json(timeout=WAIT)
            if msg["type"] == "message":
                break
            self.assertEqual(msg["code"], "unavailable")
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.05)
        self.assertGreater(msg["id"], old)
        self.assertEqual(alice.recv_json("message", text="new")["id"], msg["id"])
