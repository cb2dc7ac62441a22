"""Presence over Redis (--redis): nodes of chat.lua on one private redis-server. Member lists,
unique names and direct messages across nodes; a node killed (its members leave everywhere once,
its names are free again); a node stopped past its heartbeat and continued (fenced: its clients
are closed with 1001 without a second "left", it comes back as a new node). A script that prints
what the API sees checks confab.node(), ids and the mirror of another node's connections.
(Rooms over Redis: test_redis_rooms.py; the full chat across nodes: the cluster suites.)"""

import os
import signal
import time

from helpers import REPO, WAIT, ConfabTest
from redis_server import RedisServer

HEARTBEAT = "0.2"   # declared dead after 3 heartbeats: 0.6 s
DEATH_WAIT = 15.0   # a bound for a loaded machine; the figure is in the README

# {"who": ROOM} -> {"members": [ids], "names": [get(id, "name")], "rooms": confab.rooms(),
#                   "node": confab.node(), "me": ev.id}
# {"name": N}   -> sets the attribute "name" and joins "r"
# {"send": ID, "text": T} -> confab.send(ID, T) on whichever node ID is
PROBE_LUA = r"""
local confab = require "confab"
local cjson = require "cjson"
confab.on("message", function(ev)
  local m = cjson.decode(ev.data)
  if m.name then
    confab.set(ev.id, "name", m.name)
    confab.join(ev.id, "r")
    confab.send(ev.id, cjson.encode{ ok = true, me = ev.id, node = confab.node() })
  elseif m.who then
    local ids = confab.members(m.who)
    local names = {}
    for i, id in ipairs(ids) do names[i] = confab.get(id, "name") or "?" end
    confab.send(ev.id, cjson.encode{ members = ids, names = names, rooms = confab.rooms(),
                                     node = confab.node(), me = ev.id })
  elseif m.send then
    confab.send(ev.id, cjson.encode{ sent = (confab.send(m.send, m.text)) })
  end
end)
"""


def members(c, room="lobby"):
    """The room's members as c's node lists them now (/who answers with an info line; a members
    frame could be one a join sent earlier, still on its way)."""
    c.take_all("info")
    c.say(room, "/who")
    text = c.recv_json("info")["text"]
    head, names = text.split(": ", 1)
    return sorted(names.split(", ")) if names else []


class Presence(ConfabTest):
    def setUp(self):
        super().setUp()
        self.redis = RedisServer(self.tmp)
        self.addCleanup(self.redis.stop)

    def node(self, *flags, **kw):
        srv = self.start("--redis", self.redis.url, "--node-heartbeat", HEARTBEAT, *flags, **kw)
        srv.wait_log(r"presence: this node is node \d+")
        srv.wait_log(r"redis .*: subscribed")
        return srv

    def user(self, srv, name, **extra):
        c = self.client(srv)
        c.hello(name, **extra)
        return c

    def test_the_api_sees_every_nodes_connections_with_ids_that_carry_the_node(self):
        probe = self.script(PROBE_LUA, "probe.lua")
        a, b = self.node(script=probe), self.node(script=probe)
        ca, cb = self.client(a), self.client(b)
        ca.send_json(name="ann")
        got_a = ca.recv_json(None, ok=True)
        cb.send_json(name="bo")
        got_b = cb.recv_json(None, ok=True)
        self.assertNotEqual(got_a["node"], got_b["node"])
        self.assertEqual(got_a["me"] >> 32, got_a["node"])
        self.assertEqual(got_b["me"] >> 32, got_b["node"])
        deadline = time.monotonic() + WAIT
        while True:  # the mirror follows within milliseconds
            ca.send_json(who="r")
            seen = ca.recv_json(None, me=got_a["me"])
            if len(seen["members"]) == 2 or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        self.assertEqual(sorted(seen["members"]), sorted([got_a["me"], got_b["me"]]))
        self.assertEqual(sorted(seen["names"]), ["ann", "bo"])
        self.assertEqual(seen["rooms"], {"r": 2})
        ca.send_json(send=got_b["me"], text="across")
        self.assertTrue(ca.recv_json(None, sent=True))
        self.assertEqual(cb.recv_raw(), "across")

    def test_members_names_and_direct_messages_across_nodes(self):
        a, b = self.node(), self.node()
        alice = self.user(a, "alice", key="k" * 20)
        bob = self.user(b, "bob")
        alice.recv_json("joined", room="lobby", name="bob")
        self.assertEqual(members(alice), ["alice", "bob"])
        self.assertEqual(members(bob), ["alice", "bob"])
        bob.send_json(type="rooms")
        self.assertIn({"name": "lobby", "members": 2}, bob.recv_json("rooms")["rooms"])
        taker = self.client(b)
        taker.send_json(type="hello", name="ALICE")
        self.assertEqual(taker.recv_json("error")["code"], "name_taken")
        bob.send_json(type="nick", name="alice")
        self.assertEqual(bob.recv_json("error")["code"], "name_taken")
        bob.send_json(type="dm", to="alice", text="psst", cid="d1")
        got = alice.recv_json("dm", text="psst")
        self.assertEqual((got["from"], got["to"]), ("bob", "alice"))
        self.assertEqual(bob.recv_json("dm", cid="d1")["text"], "psst")
        # a rename frees the old name everywhere, before anyone hears of it
        bob.send_json(type="nick", name="robert")
        alice.recv_json("renamed", room="lobby", to="robert")
        taker.send_json(type="hello", name="bob")
        taker.recv_json("welcome")

    def test_a_killed_nodes_members_leave_everywhere_once_and_free_their_names(self):
        a, b, c = self.node(), self.node(), self.node()
        alice = self.user(a, "alice")
        bob = self.user(b, "bob")
        self.user(c, "carol")
        bob.recv_json("joined", room="lobby", name="carol")
        alice.recv_json("joined", room="lobby", name="carol")
        c.check_exit = False
        c.signal(signal.SIGKILL)
        for watcher in (alice, bob):
            watcher.recv_json("left", room="lobby", name="carol", timeout=DEATH_WAIT)
        self.assertEqual(members(alice), ["alice", "bob"])
        self.assertEqual(members(bob), ["alice", "bob"])
        self.assertEqual(alice.take_all("left") + bob.take_all("left"), [])
        again = self.user(a, "carol")  # the claim went with the dead node's reaper, who let it go
        bob.recv_json("joined", room="lobby", name="carol")
        self.assertEqual(members(bob), ["alice", "bob", "carol"])
        self.assertEqual(bob.take_all("left"), [])
        self.assertIsNotNone(again)

    def test_a_stopped_node_is_fenced_its_clients_closed_without_a_second_left(self):
        a, b = self.node(), self.node()
        alice = self.user(a, "alice")
        bob = self.user(b, "bob")
        alice.recv_json("joined", room="lobby", name="bob")
        b.signal(signal.SIGSTOP)
        try:
            alice.recv_json("left", room="lobby", name="bob", timeout=DEATH_WAIT)
        finally:
            b.signal(signal.SIGCONT)
        b.wait_log(r"presence: node \d+ was declared dead", timeout=DEATH_WAIT)
        self.assertEqual(bob.wait_close(timeout=DEATH_WAIT)[0], 1001)
        b.wait_log(r"presence: this node is node \d+ now", timeout=DEATH_WAIT)
        # back under a new node id: bob comes back on it, with his name, and everyone agrees
        bob2 = self.user(b, "bob")
        alice.recv_json("joined", room="lobby", name="bob")
        self.assertEqual(members(alice), ["alice", "bob"])
        self.assertEqual(members(bob2), ["alice", "bob"])
        self.assertEqual(alice.take_all("left"), [])

    def test_a_new_node_sees_those_already_there(self):
        a = self.node()
        alice = self.user(a, "alice")
        b = self.node()
        bob = self.user(b, "bob")
        self.assertEqual(sorted(bob.recv_json("members", room="lobby")["members"]),
                         ["alice", "bob"])
        alice.recv_json("joined", room="lobby", name="bob")

    def test_a_conversation_follows_its_users_to_any_node(self):
        a, b = self.node(), self.node()
        alice = self.user(a, "alice", key="a" * 20)
        bob = self.user(b, "bob", key="b" * 20)
        alice.send_json(type="dm", to="bob", text="one")
        bob.recv_json("dm", text="one")
        bob.send_json(type="dm", to="alice", text="two")
        alice.recv_json("dm", text="two")
        bob.close()
        alice.recv_json("left", room="lobby", name="bob", timeout=DEATH_WAIT)  # after the grace
        alice.send_json(type="dm", to="bob", text="three", cid="t")
        self.assertEqual(alice.recv_json("dm", cid="t")["text"], "three")
        self.assertIn("offline", alice.recv_json("info")["text"])
        back = self.client(a)  # on alice's node this time
        back.hello("bob", key="b" * 20)
        h = back.recv_json("dm_history")
        self.assertEqual(h["with"], "alice")
        self.assertEqual([m["text"] for m in h["messages"]], ["one", "two", "three"])

    def test_the_seed_jsonlogin_lists_users_of_every_node_unchanged(self):
        script = os.path.join(REPO, "scripts", "examples", "jsonlogin.lua")
        a, b = self.node(script=script), self.node(script=script)
        ann, bo = self.client(a), self.client(b)
        ann.recv_json("handshake")
        bo.recv_json("handshake")
        ann.send_json(type="login", content="ann")
        self.assertEqual(ann.recv_json("login")["user_list"], ["ann"])
        bo.send_json(type="login", content="bo")
        bo.recv_json("login", content="bo")
        # Each frame carries node b's list of users. Node b hears of ann through Redis, which may
        # lag behind a client that heard of her first (milliseconds, on a loaded machine): the
        # list converges; it is not asserted on the first frame.
        deadline = time.monotonic() + WAIT
        n = 0
        while True:
            n += 1
            bo.send_json(type="user", content="hi %d" % n)
            got = bo.recv_json("user", content="hi %d" % n)
            if sorted(got["user_list"]) == ["ann", "bo"] or time.monotonic() > deadline:
                break
        self.assertEqual(sorted(got["user_list"]), ["ann", "bo"])
        self.assertEqual(ann.recv_json("user", content="hi %d" % n)["from"], "bo")
        b.check_exit = False
        b.signal(signal.SIGKILL)
        out = ann.recv_json("logout", timeout=DEATH_WAIT)
        self.assertEqual((out["content"], out["user_list"]), ("bo", ["ann"]))

    def test_redis_restarted_empty_the_nodes_put_back_who_is_where_and_the_names(self):
        a, b = self.node(), self.node()
        alice = self.user(a, "alice")
        bob = self.user(b, "bob")
        alice.recv_json("joined", room="lobby", name="bob")
        self.redis.restart(keep_data=False)
        for srv in (a, b):
            srv.wait_log(r"presence: Redis did not know node \d+", timeout=DEATH_WAIT)
        deadline = time.monotonic() + DEATH_WAIT  # node a's claims go back in its next writes
        while self.redis.call("HGET", "confab:{p}:claims", "n:alice") is None:
            self.assertLess(time.monotonic(), deadline, "alice's name was not claimed again")
            time.sleep(0.01)
        taker = self.client(b)
        taker.send_json(type="hello", name="alice")
        self.assertEqual(taker.recv_json("error", timeout=DEATH_WAIT)["code"], "name_taken")
        self.assertEqual(members(bob), ["alice", "bob"])
        self.assertEqual(members(alice), ["alice", "bob"])
        self.assertEqual(alice.take_all("left") + bob.take_all("left"), [])

