"""The redis-server fixture itself (redis_server.py): the cluster tests rely on it starting on a
private address, keeping nothing unless asked, restarting empty or with its data, and stopping by
PID."""

import os
import socket

from helpers import ConfabTest
from redis_server import RedisError, RedisServer, free_port


class RedisFixture(ConfabTest):
    def redis(self, **kw):
        r = RedisServer(self.tmp, **kw)
        self.addCleanup(r.stop)
        return r

    def test_tcp_private_port_answers_and_stops_by_pid(self):
        r = self.redis()
        self.assertEqual(r.call("PING"), "PONG")
        self.assertTrue(r.url.startswith("redis://127.0.0.1:"))
        self.assertEqual(r.url, "redis://127.0.0.1:%d" % r.port)
        pid = r.pid
        r.stop()
        self.assertFalse(r.running())
        with self.assertRaises(ProcessLookupError):
            os.kill(pid, 0)
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", r.port), timeout=2).close()

    def test_unix_socket_only(self):
        r = self.redis(unix=True)
        self.assertEqual(r.url, "unix:" + r.socket_path)
        self.assertTrue(r.socket_path.startswith(self.tmp))
        self.assertEqual(r.call("SET", "k", "v"), "OK")
        self.assertEqual(r.call("GET", "k"), "v")
        self.assertEqual(r.call("CONFIG", "GET", "port"), ["port", "0"])  # no TCP listener

    def test_a_taken_port_is_replaced_by_a_free_one(self):
        blocker = socket.socket()
        blocker.bind(("127.0.0.1", free_port()))
        blocker.listen(1)
        self.addCleanup(blocker.close)
        taken = blocker.getsockname()[1]
        r = self.redis(port=taken)
        self.assertNotEqual(r.port, taken)
        self.assertEqual(r.call("PING"), "PONG")
        self.assertIn("Address already in use", r.log)

    def test_restart_empty_and_with_data(self):
        r = self.redis()
        r.call("SET", "kept", "1")
        port = r.port
        r.restart(keep_data=True)
        self.assertEqual(r.port, port)
        self.assertEqual(r.call("GET", "kept"), "1")
        r.restart(keep_data=False)
        self.assertEqual(r.port, port)
        self.assertIsNone(r.call("GET", "kept"))

    def test_nothing_written_to_disk_without_persistence(self):
        r = self.redis()
        r.call("SET", "k", "v")
        self.assertEqual(r.call("CONFIG", "GET", "save"), ["save", ""])
        self.assertEqual(r.call("CONFIG", "GET", "appendonly"), ["appendonly", "no"])
        r.stop()
        self.assertEqual([f for f in os.listdir(r.dir) if f.endswith((".rdb", ".aof"))], [])
        r.start()
        self.assertIsNone(r.call("GET", "k"))

    def test_error_replies_raise_and_pubsub_clients_can_be_killed(self):
        r = self.redis()
        with self.assertRaises(RedisError):
            r.call("NOSUCHCOMMAND")
        sub = r.client()
        self.addCleanup(sub.close)
        self.assertEqual(sub.call("SUBSCRIBE", "ch"), ["subscribe", "ch", 1])
        self.assertEqual(r.call("PUBLISH", "ch", "x"), 1)
        self.assertEqual(sub.read(), ["message", "ch", "x"])
        self.assertEqual(r.call("CLIENT", "KILL", "TYPE", "pubsub"), 1)
        with self.assertRaises((ConnectionError, OSError)):
            sub.read()
