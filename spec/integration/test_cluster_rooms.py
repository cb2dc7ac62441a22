"""Rooms on two and three confab nodes sharing one Redis (issue 8), scripts/chat.lua unchanged,
real clients on different nodes: one message reaches every node once with one id, one total order
per room when three nodes publish at once, resume on another node (exactly the missed messages),
and `reset` past the --history window."""

import threading
import unittest

from cluster import ClusterTest, supports_redis, wait_until
from helpers import WAIT

KEY_A = "alicekey0123456789abcdef"


def messages(client, room, n, timeout=WAIT * 2):
    """The next n `message`s of room received by client, in arrival order."""
    return [client.recv_json("message", room=room, timeout=timeout) for _ in range(n)]


@unittest.skipUnless(supports_redis(), "confab has no --redis")
class TwoNodes(ClusterTest):
    def test_a_message_reaches_the_room_on_every_node_once_with_one_id(self):
        _, (a, b) = self.cluster(2)
        alice = self.client(a)
        alice.hello("alice")
        bob = self.client(b)
        bob.hello("bob")
        alice.recv_json("joined", room="lobby", name="bob")
        alice.send_json(type="say", room="lobby", text="hello from A", cid="c1")
        mine = alice.recv_json("message", room="lobby", cid="c1")
        theirs = bob.recv_json("message", room="lobby", text="hello from A")
        self.assertEqual(mine["id"], theirs["id"])
        self.assertEqual(theirs["from"], "alice")
        # once: the next message bob sees in lobby is the next one, not a second copy
        bob.say("lobby", "reply from B")
        nxt = alice.recv_json("message", room="lobby")
        self.assertEqual(nxt["text"], "reply from B")
        self.assertGreater(nxt["id"], mine["id"])
        self.assertEqual(bob.recv_json("message", room="lobby")["text"], "reply from B")
        self.assertEqual(alice.take_all("message") + bob.take_all("message"), [])

    def test_resume_on_the_other_node_gets_exactly_the_missed_messages(self):
        _, (a, b) = self.cluster(2)
        alice = self.client(a)
        w = alice.hello("alice", key=KEY_A)
        bob = self.client(b)
        bob.hello("bob")
        bob.say("lobby", "seen 1")
        bob.recv_json("message", room="lobby", text="seen 1")
        last = alice.recv_json("message", room="lobby", text="seen 1")["id"]
        alice.drop()
        for i in range(3):
            bob.say("lobby", "missed %d" % i)
        sent = messages(bob, "lobby", 3)
        back = self.client(b)  # the other node
        back.hello("alice", key=KEY_A,
                   resume={"epoch": w["epoch"], "rooms": {"lobby": last}})
        hist = back.recv_json("history", room="lobby")
        self.assertEqual((hist["complete"], hist["reset"]), (True, False))
        self.assertEqual([(m["id"], m["text"]) for m in hist["messages"]],
                         [(m["id"], m["text"]) for m in sent])
        bob.say("lobby", "after")
        self.assertEqual(back.recv_json("message", room="lobby")["text"], "after")

    def test_resume_past_the_history_window_is_a_reset(self):
        _, (a, b) = self.cluster(2, "--history", 5)
        alice = self.client(a)
        w = alice.hello("alice", key=KEY_A)
        bob = self.client(b)
        bob.hello("bob")
        bob.say("lobby", "seen")
        bob.recv_json("message", room="lobby", text="seen")
        last = alice.recv_json("message", room="lobby", text="seen")["id"]
        alice.drop()
        for i in range(8):
            bob.say("lobby", "m%d" % i)
        sent = messages(bob, "lobby", 8)
        back = self.client(b)
        back.hello("alice", key=KEY_A, resume={"epoch": w["epoch"], "rooms": {"lobby": last}})
        hist = back.recv_json("history", room="lobby")
        self.assertEqual((hist["complete"], hist["reset"]), (False, True))
        self.assertEqual([m["text"] for m in hist["messages"]], [m["text"] for m in sent[-5:]])

    def test_resume_past_the_history_age_gets_only_what_is_younger_with_reset(self):
        r, (a, b) = self.cluster(2, "--history-age", 1)
        alice = self.client(a)
        w = alice.hello("alice", key=KEY_A)
        bob = self.client(b)
        bob.hello("bob")
        bob.say("lobby", "seen")
        bob.recv_json("message", room="lobby", text="seen")
        last = alice.recv_json("message", room="lobby", text="seen")["id"]
        alice.drop()
        bob.say("lobby", "old")
        bob.recv_json("message", room="lobby", text="old")

        def redis_ms():
            sec, usec = r.call("TIME")
            return int(sec) * 1000 + int(usec) // 1000

        def stored_at():
            return [int(i.split("-")[1]) for i, _ in r.call("XRANGE", "confab:{lobby}:s", "-", "+")]

        # The age passes on Redis's clock (what the scripts go by), then a new line comes.
        old_at = stored_at()[-1]
        wait_until(lambda: redis_ms() >= old_at + 1000, what="the age past the old line")
        bob.say("lobby", "new")
        bob.recv_json("message", room="lobby", text="new")
        new_at = stored_at()[-1]
        back = self.client(b)
        back.hello("alice", key=KEY_A, resume={"epoch": w["epoch"], "rooms": {"lobby": last}})
        hist = back.recv_json("history", room="lobby")
        self.assertEqual((hist["complete"], hist["reset"]), (False, True))
        got = [m["text"] for m in hist["messages"]]
        if got != ["new"]:  # only if "new" outlived the age on a stalled machine
            self.assertEqual(got, [])
            self.assertGreaterEqual(redis_ms(), new_at + 1000, "dropped before its age")

    def test_nodes_on_a_unix_socket_url(self):
        r, (a, b) = self.cluster(2, unix=True)
        self.assertTrue(r.url.startswith("unix:"))
        alice = self.client(a)
        alice.hello("alice")
        bob = self.client(b)
        bob.hello("bob")
        bob.send_json(type="say", room="lobby", text="over the socket", cid="u")
        mine = bob.recv_json("message", room="lobby", cid="u")
        self.assertEqual(alice.recv_json("message", room="lobby", text="over the socket")["id"],
                         mine["id"])


@unittest.skipUnless(supports_redis(), "confab has no --redis")
class ThreeNodes(ClusterTest):
    def test_three_nodes_publishing_at_once_give_every_client_the_same_sequence(self):
        _, nodes = self.cluster(3)
        # two senders and one listener per node; each sender stays within the flood burst (10)
        senders, listeners = [], []
        for i, n in enumerate(nodes):
            for j in range(2):
                c = self.client(n)
                c.hello("s%d%d" % (i, j))
                senders.append(c)
            c = self.client(n)
            c.hello("l%d" % i)
            listeners.append(c)
        everyone = senders + listeners
        for c in everyone[:-1]:  # everyone has seen the last join: every member is everywhere
            c.recv_json("joined", room="lobby", name="l2")
        per = 8
        total = per * len(senders)
        go = threading.Barrier(len(senders))

        def burst(c, k):
            go.wait(WAIT)
            for m in range(per):
                c.send_json(type="say", room="lobby", text="%s-%d" % (c.name, m),
                            cid="c%d-%d" % (k, m))

        threads = [threading.Thread(target=burst, args=(c, k)) for k, c in enumerate(senders)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT)
        seqs = []
        for c in everyone:
            got = messages(c, "lobby", total, timeout=WAIT * 3)
            seqs.append([(m["id"], m["text"]) for m in got])
        first = seqs[0]
        ids = [i for i, _ in first]
        self.assertEqual(ids, sorted(set(ids)), "ids increase, none twice")
        self.assertEqual(sorted(t for _, t in first),
                         sorted("%s-%d" % (c.name, m) for c in senders for m in range(per)))
        for s in seqs[1:]:
            self.assertEqual(s, first)
        # per sender, its own lines in the order sent
        for c in senders:
            mine = [t for _, t in first if t.startswith(c.name + "-")]
            self.assertEqual(mine, ["%s-%d" % (c.name, m) for m in range(per)])
        for c in everyone:
            self.assertEqual(c.take_all("message"), [], "nothing twice")
            self.assertEqual(c.take_all("error"), [])
