"""Redis restarted empty, or down for a while, under a cluster of confab nodes (issue 8): a send
is refused with a clear error while it is down, local clients are still served, every client gets
`reset` for the history that was lost, and the cluster recovers by itself."""

import unittest

from cluster import DEATH_WAIT, supports_redis
from test_cluster_redis_faults import RedisFaultTest, say_when_up


@unittest.skipUnless(supports_redis(), "confab has no --redis")
class RedisReset(RedisFaultTest):
    def test_redis_restarted_empty_clients_get_reset_and_the_cluster_recovers(self):
        r, (a, b) = self.cluster(2)
        u0, u1 = self.chat([a, b])
        u0.send_json(type="say", room="lobby", text="old", cid="o")
        u0.recv_json("message", room="lobby", cid="o")
        u1.recv_json("message", room="lobby", text="old")
        for u in (u0, u1):
            u.take_all("history")
        r.restart(keep_data=False)
        # every client learns the history it has is gone (new epoch)
        for u in (u0, u1):
            h = u.recv_json("history", room="lobby", reset=True, timeout=DEATH_WAIT)
            self.assertNotIn("old", [m["text"] for m in h["messages"]])
        mine = say_when_up(u1, "lobby", "new", "n")
        theirs = u0.recv_json("message", room="lobby", text="new", timeout=DEATH_WAIT)
        self.assertEqual(mine["id"], theirs["id"])

    def test_redis_down_a_send_is_refused_clearly_and_local_clients_are_served(self):
        r, (a, b) = self.cluster(2)
        u0, u1 = self.chat([a, b])
        r.stop()
        u0.send_json(type="say", room="lobby", text="into the void", cid="v")
        err = u0.recv_json("error", cid="v", timeout=DEATH_WAIT)
        self.assertEqual(err["code"], "unavailable")
        self.assertTrue(err.get("message"), err)
        u0.say("lobby", "/help")  # answered by the node alone
        self.assertIn("/join", u0.recv_json("info")["text"])
        for u in (u0, u1):
            u.take_all("history")
        r.start()  # empty: a new epoch
        # back without anyone's help: a history reset tells the clients, then sends go through
        u0.recv_json("history", room="lobby", reset=True, timeout=DEATH_WAIT)
        u1.recv_json("history", room="lobby", reset=True, timeout=DEATH_WAIT)
        say_when_up(u0, "lobby", "back", "k")
        self.assertEqual(u1.recv_json("message", room="lobby", timeout=DEATH_WAIT)["text"], "back")
        self.assertEqual(u1.take_all("message", text="into the void"), [])
