"""Redis faults under a cluster of confab nodes (issue 8): Redis restarted with its data, and the
subscriber links killed while messages flow. No message a client had acknowledged (its `cid` came
back in the `message`) is lost or duplicated."""

import time
import unittest

from cluster import DEATH_WAIT, ClusterTest, supports_redis
from helpers import WAIT


def say_when_up(client, room, text, cid, timeout=DEATH_WAIT):
    """Sends text with cid until the node takes it (the `message` with the cid), resending after
    each `unavailable` refusal (the node is reconnecting to Redis): what the page's outbox does.
    Returns the message."""
    deadline = time.monotonic() + timeout
    tries = 0
    while True:
        tries += 1
        c = "%s-%d" % (cid, tries)
        client.send_json(type="say", room=room, text=text, cid=c)
        while True:
            m = client.recv_json(None, timeout=max(0.1, deadline - time.monotonic()), cid=c)
            if m["type"] in ("message", "error"):
                break
        if m["type"] == "message":
            return m
        if m["code"] != "unavailable" or time.monotonic() > deadline:
            raise AssertionError("%r refused: %r" % (text, m))
        time.sleep(0.25)  # the page's outbox retries too; under the flood limit (5/s)


def lobby(client, n, timeout=WAIT * 2):
    return [client.recv_json("message", room="lobby", timeout=timeout) for _ in range(n)]


class RedisFaultTest(ClusterTest):
    def chat(self, nodes):
        clients = []
        for i, n in enumerate(nodes):
            c = self.client(n)
            c.hello("u%d" % i)
            clients.append(c)
        clients[0].recv_json("joined", room="lobby", name="u%d" % (len(nodes) - 1))
        return clients


@unittest.skipUnless(supports_redis(), "confab has no --redis")
class RedisFaults(RedisFaultTest):
    def test_redis_restarted_with_its_data_loses_nothing(self):
        r, (a, b) = self.cluster(2)
        u0, u1 = self.chat([a, b])
        for i in range(3):
            u0.send_json(type="say", room="lobby", text="m%d" % i, cid="m%d" % i)
        acked = [u0.recv_json("message", room="lobby", cid="m%d" % i) for i in range(3)]
        lobby(u1, 3)
        for u in (u0, u1):
            u.take_all("history")
        r.restart(keep_data=True)
        after = say_when_up(u1, "lobby", "after", "x")
        self.assertGreater(after["id"], acked[-1]["id"])
        self.assertEqual(u0.recv_json("message", room="lobby", timeout=DEATH_WAIT)["text"], "after")
        late = self.client(b)
        late.send_json(type="hello", name="late")
        late.recv_json("welcome")
        hist = late.recv_json("history", room="lobby")
        self.assertEqual([m["text"] for m in hist["messages"]], ["m0", "m1", "m2", "after"])

    def test_subscriber_links_killed_while_publishing_lose_and_duplicate_nothing(self):
        r, nodes = self.cluster(3)
        senders = []
        for i, n in enumerate(nodes):
            for j in range(2):
                c = self.client(n)
                c.hello("s%d%d" % (i, j))
                senders.append(c)
        listener = self.client(nodes[2])
        listener.hello("listener")
        for c in senders:
            c.recv_json("joined", room="lobby", name="listener")
        per = 9
        killed = 0
        for m in range(per):
            for k, c in enumerate(senders):
                c.send_json(type="say", room="lobby", text="%s-%d" % (c.name, m),
                            cid="c%d-%d" % (k, m))
            if m % 3 == 1:  # while those are in flight
                killed += r.call("CLIENT", "KILL", "TYPE", "pubsub")
        self.assertGreater(killed, 0)
        total = per * len(senders)
        acked = {}
        for k, c in enumerate(senders):
            for m in range(per):
                msg = c.recv_json("message", room="lobby", cid="c%d-%d" % (k, m),
                                  timeout=DEATH_WAIT)
                acked[msg["text"]] = msg["id"]
        self.assertEqual(len(acked), total)
        everything = sorted((i, t) for t, i in acked.items())
        for c in senders + [listener]:
            want = total if c is listener else total - per  # a sender's own were taken above
            got = c.take_all("message", room="lobby")
            while len(got) < want:
                got.append(c.recv_json("message", room="lobby", timeout=DEATH_WAIT))
            got = [(m["id"], m["text"]) for m in got]
            self.assertEqual(got, sorted(got), "%s: in id order" % c.name)
            if c is listener:
                self.assertEqual(got, everything)
            else:
                own = [(acked[t], t) for t in acked if t.startswith(c.name + "-")]
                self.assertEqual(sorted(got + own), everything, c.name)
        for c in senders + [listener]:
            self.assertEqual(c.take_all("message"), [], "nothing twice")
