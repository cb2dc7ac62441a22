"""Presence faults on two and three nodes of scripts/chat.lua on one private redis-server (issue 8),
real clients on different nodes: a node SIGKILLed (its members leave everywhere once, names free),
a node SIGSTOPped past its heartbeat and continued (fenced: no acknowledged message lost or
doubled, its clients closed with 1001, nobody told that they left themselves, everyone else told
once), a node restarted (SIGTERM, started again), two nodes racing for one name, direct messages
and /who, /rooms across nodes.

Every wait is for an event (a frame, a log line); the bounds are generous for a loaded machine.
"Once" is checked after a barrier: a message sent into the room after the event, received by the
watcher: whatever the nodes said about the event was said before it (one order per room)."""

import json
import signal
import time
import unittest

from cluster import ClusterClient, ClusterTest, supports_redis

HEARTBEAT = "0.2"   # declared dead after 3 silent heartbeats: 0.6 s
DEATH_WAIT = 20.0   # bound for a dead node's members to leave (5 s leave grace of keyed users
                    # included) on a loaded machine
KEYS = {name: (name * 20)[:20] for name in ("alice", "bob", "carol", "dan", "erin")}


def who(c, room="lobby"):
    """The room's members as c's node lists them (/who answers with an info line)."""
    c.take_all("info")
    c.say(room, "/who")
    text = c.recv_json("info")["text"]
    names = text.split(": ", 1)[1]
    return sorted(names.split(", ")) if names else []


_barriers = [0]


def barrier(sender, watchers, room="lobby"):
    """sender says a fresh line into room; every watcher receives it (and keeps the rest of what
    came before it in its inbox). Returns the message's id."""
    _barriers[0] += 1
    text = "barrier %d" % _barriers[0]
    sender.send_json(type="say", room=room, text=text, cid="b%d" % _barriers[0])
    got = sender.recv_json("message", room=room, text=text, timeout=DEATH_WAIT)
    for w in watchers:
        if w is not sender:
            w.recv_json("message", room=room, text=text, timeout=DEATH_WAIT)
    return got["id"]


class Recorder(ClusterClient):
    """A client that also keeps every JSON frame it received, in order (`seen`)."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.seen = []

    def _recv(self, deadline):
        raw = super()._recv(deadline)
        if isinstance(raw, str):
            try:
                self.seen.append(json.loads(raw))
            except ValueError:
                pass
        return raw

    def lines(self, room="lobby"):
        """(id, text) of every message of room it got, live or in a history, in arrival order."""
        out = []
        for m in self.seen:
            if m.get("type") == "history" and m.get("room") == room:
                out += [(x["id"], x["text"]) for x in m["messages"]]
            elif m.get("type") == "message" and m.get("room") == room:
                out.append((m["id"], m["text"]))
        return out


def settle(senders, watchers):
    """A barrier from each sender (one client of each node) to every watcher, then the watchers'
    joined/left/members so far dropped: an event a node published before its barrier is in the
    inbox by then (a late `joined` of someone who was in the room before the watcher came)."""
    for s in senders:
        barrier(s, watchers)
    for w in watchers:
        for t in ("joined", "left", "members"):
            w.take_all(t)


@unittest.skipUnless(supports_redis(), "confab has no --redis")
class ClusterPresence(ClusterTest):
    def client(self, srv_or_port, path="/ws", **options):
        c = Recorder(getattr(srv_or_port, "port", srv_or_port), path, **options)
        self.addCleanup(c.close)
        return c

    def nodes(self, n, heartbeat=HEARTBEAT):
        r = self.redis()
        out = []
        for _ in range(n):
            srv = self.node(r, "--node-heartbeat", heartbeat)
            srv.wait_log(r"presence: this node is node \d+")
            srv.wait_log(r"redis .*: subscribed")
            out.append(srv)
        return r, out

    def user(self, srv, name, keyed=False, **extra):
        c = self.client(srv)
        if keyed:
            extra["key"] = KEYS[name]
        c.welcome = c.hello(name, **extra)
        return c

    def assert_no_left(self, clients, name):
        for c in clients:
            self.assertEqual(c.take_all("left", name=name), [], "a second left of %s" % name)

    def test_a_killed_nodes_members_leave_everywhere_once_and_their_names_are_free(self):
        _, (a, b, c) = self.nodes(3)
        alice = self.user(a, "alice")
        bob = self.user(b, "bob")
        carol = self.user(c, "carol", keyed=True)
        dan = self.user(c, "dan")
        alice.recv_json("joined", room="lobby", name="bob")
        for w in (alice, bob):
            w.recv_json("joined", room="lobby", name="carol")
            w.recv_json("joined", room="lobby", name="dan")
        settle((alice, bob, dan), (alice, bob))
        t0 = time.monotonic()
        self.kill_node(c)
        for w in (alice, bob):
            w.recv_json("left", room="lobby", name="dan", timeout=DEATH_WAIT)
            w.recv_json("left", room="lobby", name="carol", timeout=DEATH_WAIT)
        self.assertLess(time.monotonic() - t0, DEATH_WAIT)
        barrier(alice, (alice, bob))
        self.assert_no_left((alice, bob), "carol")
        self.assert_no_left((alice, bob), "dan")
        self.assertEqual(who(alice), ["alice", "bob"])
        self.assertEqual(who(bob), ["alice", "bob"])
        # the names are free on every node (each taken on the node whose client heard the left)
        dan2 = self.user(b, "dan")
        carol2 = self.user(a, "carol")
        for w in (alice, bob):
            w.recv_json("joined", room="lobby", name="dan")
            w.recv_json("joined", room="lobby", name="carol")
        barrier(bob, (alice, bob, dan2, carol2))
        self.assertEqual(who(alice), ["alice", "bob", "carol", "dan"])
        self.assertEqual(who(dan2), ["alice", "bob", "carol", "dan"])
        self.assert_no_left((alice, bob), "carol")
        self.assert_no_left((alice, bob), "dan")
        self.assertEqual(alice.take_all("joined") + bob.take_all("joined"), [])

    def reaper(self, watchers, timeout=DEATH_WAIT):
        """The node among watchers that declared the dead node dead (it ran the hooks): every
        live node logs the death, the reaper says so."""
        for srv in watchers:
            srv.wait_log(r"presence: node \d+ is gone", timeout=timeout)
        hit = [srv for srv in watchers if srv.find_log(r"is gone: .*their hooks run here")]
        self.assertEqual(len(hit), 1, "one reaper")
        return hit[0], [srv for srv in watchers if srv is not hit[0]][0]

    def test_a_stopped_node_loses_no_acknowledged_message_and_its_users_come_back_once(self):
        _, (a, b, c) = self.nodes(3)
        alice = self.user(a, "alice")
        carol = self.user(c, "carol")
        alice.recv_json("joined", room="lobby", name="carol")
        bob = self.user(b, "bob", keyed=True)
        dan = self.user(b, "dan")
        for x in (alice, carol):
            x.recv_json("joined", room="lobby", name="bob")
            x.recv_json("joined", room="lobby", name="dan")
        epoch = alice.welcome["epoch"]
        settle((alice, bob, carol), (alice, carol, bob, dan))
        # acknowledged to the stopped node's clients before the stop
        bob.send_json(type="say", room="lobby", text="bob before", cid="bb")
        bob.recv_json("message", room="lobby", cid="bb")
        dan.send_json(type="say", room="lobby", text="dan before", cid="db")
        dan.recv_json("message", room="lobby", cid="db")
        bob.recv_json("message", room="lobby", text="dan before")
        dan.recv_json("message", room="lobby", text="bob before")
        last = bob.lines()[-1][0]
        b.signal(signal.SIGSTOP)
        try:
            # sent by the other nodes' clients while b is stopped, and by b's into the void
            alice.send_json(type="say", room="lobby", text="during 1", cid="d1")
            alice.recv_json("message", room="lobby", cid="d1")
            bob.send_json(type="say", room="lobby", text="bob during", cid="bd")
            carol.send_json(type="say", room="lobby", text="during 2", cid="d2")
            carol.recv_json("message", room="lobby", cid="d2")
            for x in (alice, carol):
                x.recv_json("left", room="lobby", name="dan", timeout=DEATH_WAIT)
            # bob is keyed: he stays listed for his leave grace, kept by the node that declared
            # b dead. His page fails over to that node while b hangs: a quiet return.
            reaper, other = self.reaper((a, c))
            bob2 = self.client(reaper)
            bob2.send_json(type="hello", name="bob", key=KEYS["bob"],
                           resume={"epoch": epoch, "rooms": {"lobby": last}})
            bob2.recv_json("welcome")
            hist = bob2.recv_json("history", room="lobby")
            self.assertEqual([m["text"] for m in hist["messages"]], ["during 1", "during 2"])
        finally:
            b.signal(signal.SIGCONT)
        # b finds itself declared dead: its clients are closed with a close frame, their hooks
        # not run again (they ran on the reaper), and it goes on as a new node
        self.assertEqual(bob.wait_close(timeout=DEATH_WAIT)[0], 1001)
        self.assertEqual(dan.wait_close(timeout=DEATH_WAIT)[0], 1001)
        b.wait_log(r"presence: node \d+ was declared dead", timeout=DEATH_WAIT)
        b.wait_log(r"presence: this node is node \d+ now", timeout=DEATH_WAIT)
        # what bob sent into the hung node: delivered once if it was acknowledged; unacknowledged,
        # at most once, with its cid (the page finds it in what it resumes and does not resend)
        acked = [m for m in bob.seen if m.get("cid") == "bd" and m.get("type") == "message"]
        # dan comes back, resuming, on the node that was stopped
        dan2 = self.client(b)
        dan2.send_json(type="hello", name="dan", resume={"epoch": epoch, "rooms": {"lobby": last}})
        dan2.recv_json("welcome", timeout=DEATH_WAIT)
        for x in (alice, carol, bob2):
            x.recv_json("joined", room="lobby", name="dan", timeout=DEATH_WAIT)
        # sent after: they reach everyone once
        alice.send_json(type="say", room="lobby", text="after 1", cid="a1")
        alice.recv_json("message", room="lobby", cid="a1")
        carol.send_json(type="say", room="lobby", text="after 2", cid="a2")
        carol.recv_json("message", room="lobby", cid="a2")
        end = barrier(alice, (alice, carol, bob2, dan2))
        self.assertEqual(bob2.take_all("left", name="bob"), [], "bob was told that he left")
        self.assert_no_left((alice, carol, dan2), "bob")
        self.assert_no_left((alice, carol, bob2), "dan")
        for x in (alice, carol):
            self.assertEqual(x.take_all("joined"), [], "joined twice, or bob's quiet return")
        # one sequence for every client, without a gap or a repeat
        seq = {n: [x for x in cl.lines() if x[0] <= end]
               for n, cl in (("alice", alice), ("carol", carol), ("bob2", bob2), ("dan2", dan2))}
        for n, s in seq.items():
            ids = [i for i, _ in s]
            self.assertEqual(ids, sorted(set(ids)), "%s saw a line twice or out of order: %s"
                             % (n, s))
        texts = [t for _, t in seq["alice"]]
        for t in ("bob before", "dan before", "during 1", "during 2", "after 1", "after 2"):
            self.assertEqual(texts.count(t), 1, "alice: %r in %s" % (t, texts))
        self.assertLessEqual(texts.count("bob during"), 1, texts)
        if acked:
            self.assertEqual(texts.count("bob during"), 1, texts)
        if "bob during" in texts:
            self.assertEqual([m.get("cid") for m in bob2.seen if m.get("text") == "bob during"],
                             ["bd"])
        self.assertEqual(seq["carol"], seq["alice"])
        after_last = [x for x in seq["alice"] if x[0] > last]
        self.assertEqual(seq["bob2"], after_last)
        self.assertEqual(seq["dan2"], after_last)
        for x in (alice, carol, bob2, dan2):
            self.assertEqual(who(x), ["alice", "bob", "carol", "dan"])

    def test_two_nodes_claiming_one_name_at_once_exactly_one_wins(self):
        _, (a, b) = self.nodes(2)
        watch = self.user(a, "watch")
        for i in range(8):
            name = "racer%d" % i
            ca, cb = self.client(a), self.client(b)
            # both hellos are on their way before either answer
            ca.send_json(type="hello", name=name)
            cb.send_json(type="hello", name=name.upper() if i % 2 else name)
            got = []
            for cl in (ca, cb):
                m = cl.recv_json(None, timeout=DEATH_WAIT)
                while m["type"] not in ("welcome", "error"):
                    m = cl.recv_json(None, timeout=DEATH_WAIT)
                got.append(m)
            kinds = sorted(m["type"] for m in got)
            self.assertEqual(kinds, ["error", "welcome"], got)
            err = [m for m in got if m["type"] == "error"][0]
            self.assertEqual(err["code"], "name_taken")
            winner = [m for m in got if m["type"] == "welcome"][0]["name"]
            watch.recv_json("joined", room="lobby", name=winner)
        barrier(watch, (watch,))
        names = who(watch)
        self.assertEqual(len(names), 9, names)
        self.assertEqual(sorted(n.lower() for n in names),
                         sorted(["watch"] + ["racer%d" % i for i in range(8)]))
        self.assertEqual(watch.take_all("joined"), [])

    def test_direct_messages_reach_their_target_on_any_node_once(self):
        _, (a, b, c) = self.nodes(3)
        alice = self.user(a, "alice", keyed=True)
        bob = self.user(b, "bob", keyed=True)
        carol = self.user(c, "carol")
        for x in (alice, bob):
            x.recv_json("joined", room="lobby", name="carol")
        sends = [(alice, "bob", bob), (bob, "carol", carol), (carol, "alice", alice),
                 (alice, "carol", carol)]
        for n, (src, to, dst) in enumerate(sends):
            src.send_json(type="dm", to=to, text="dm %d" % n, cid="m%d" % n)
            ack = src.recv_json("dm", cid="m%d" % n)
            got = dst.recv_json("dm", text="dm %d" % n)
            self.assertEqual((got["from"], got["to"]), (src.name, to))
            self.assertEqual(ack["id"], got["id"])
        barrier(alice, (alice, bob, carol))
        for x in (alice, bob, carol):
            self.assertEqual(x.take_all("dm"), [], "a direct message twice")
        alice.send_json(type="dm", to="nobody", text="x", cid="n")
        self.assertEqual(alice.recv_json("error", cid="n")["code"], "no_such_user")

    def test_who_and_rooms_count_every_node(self):
        _, (a, b, c) = self.nodes(3)
        alice = self.user(a, "alice")
        bob = self.user(b, "bob")
        carol = self.user(c, "carol")
        for x in (alice, bob):
            x.recv_json("joined", room="lobby", name="carol")
        alice.recv_json("joined", room="lobby", name="bob")
        bob.send_json(type="join", room="dev")
        bob.recv_json("joined", room="dev", name="bob")
        carol.send_json(type="join", room="dev")
        bob.recv_json("joined", room="dev", name="carol")
        carol.recv_json("joined", room="dev", name="carol")
        carol.say("lobby", "in dev now")  # alice hears of carol's join (state before message)
        alice.recv_json("message", room="lobby", text="in dev now")
        for x in (alice, bob, carol):
            self.assertEqual(who(x), ["alice", "bob", "carol"])
        self.assertEqual(who(bob, "dev"), ["bob", "carol"])
        self.assertEqual(who(carol, "dev"), ["bob", "carol"])
        for x in (alice, bob, carol):
            x.send_json(type="rooms")
            rooms = {r["name"]: r["members"] for r in x.recv_json("rooms")["rooms"]}
            self.assertEqual(rooms, {"lobby": 3, "dev": 2})
        carol.send_json(type="leave", room="dev")
        bob.recv_json("left", room="dev", name="carol")
        carol.say("lobby", "left dev")
        alice.recv_json("message", room="lobby", text="left dev")
        self.assertEqual(who(bob, "dev"), ["bob"])
        alice.send_json(type="rooms")
        rooms = {r["name"]: r["members"] for r in alice.recv_json("rooms")["rooms"]}
        self.assertEqual(rooms, {"lobby": 3, "dev": 1})

    def test_joins_and_leaves_missed_while_a_nodes_subscription_was_down_reach_its_lists(self):
        # the stop (milliseconds) stays far below 3 heartbeats: nobody is declared dead
        r, (a, b) = self.nodes(2, heartbeat="2")
        wendy = self.user(a, "wendy")
        bob = self.user(b, "bob")
        wendy.recv_json("joined", room="lobby", name="bob")
        settle((wendy, bob), (wendy, bob))
        a.signal(signal.SIGSTOP)
        try:
            # a's subscriber link is cut while a cannot reconnect: it misses what follows
            self.assertGreaterEqual(r.call("CLIENT", "KILL", "TYPE", "pubsub"), 1)
            carol = self.user(b, "carol")
            bob.send_json(type="leave", room="lobby")
            bob.recv_json("left", room="lobby", name="bob")
        finally:
            a.signal(signal.SIGCONT)
        # the joined/left are lost for wendy; a reads the mirror again and sends the list
        deadline = time.monotonic() + DEATH_WAIT
        while True:
            got = wendy.recv_json("members", room="lobby",
                                  timeout=max(0.01, deadline - time.monotonic()))
            if sorted(got["members"]) == ["carol", "wendy"]:
                break
        self.assertEqual(who(wendy), ["carol", "wendy"])

    def test_a_restarted_nodes_users_leave_once_and_come_back(self):
        r, (a, b) = self.nodes(2)
        alice = self.user(a, "alice")
        bob = self.user(b, "bob", keyed=True)
        dan = self.user(b, "dan")
        alice.recv_json("joined", room="lobby", name="bob")
        alice.recv_json("joined", room="lobby", name="dan")
        settle((alice, dan), (alice,))
        b.signal(signal.SIGTERM)
        for x in (bob, dan):  # 1012 (service restart), which websocket-client refuses to parse
            code, why = x.wait_close()
            self.assertTrue(code == 1012 or "websocket-client refuses" in why, (code, why))
        self.assertEqual(b.wait_exit(), 0)
        alice.recv_json("left", room="lobby", name="dan", timeout=DEATH_WAIT)
        alice.recv_json("left", room="lobby", name="bob", timeout=DEATH_WAIT)
        b2 = self.restart_node(b)
        b2.wait_log(r"redis .*: subscribed")
        self.user(b2, "bob", keyed=True)
        dan2 = self.user(b2, "dan")
        alice.recv_json("joined", room="lobby", name="bob", timeout=DEATH_WAIT)
        alice.recv_json("joined", room="lobby", name="dan", timeout=DEATH_WAIT)
        barrier(dan2, (alice, dan2))
        self.assert_no_left((alice,), "bob")
        self.assert_no_left((alice,), "dan")
        self.assertEqual(alice.take_all("joined"), [])
        self.assertEqual(who(alice), ["alice", "bob", "dan"])
        self.assertEqual(who(dan2), ["alice", "bob", "dan"])


if __name__ == "__main__":
    unittest.main()
