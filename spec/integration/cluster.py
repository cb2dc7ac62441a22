"""Several confab nodes on one private redis-server, for the cluster tests (issue 8).

    class T(ClusterTest):
        def test_x(self):
            redis, (a, b) = self.cluster(2)          # Redis on a free port, two nodes with --redis
            alice = self.client(a); alice.hello("alice")
            b2 = self.restart_node(b)                # the same flags again (a new port)

Every process is stopped by its PID at the end of the test; a node that died without the test
killing it fails the test (ConfabTest's rule). NODE_FLAGS are added to every node: a short
heartbeat so that a dead node's members leave within seconds in the tests."""

import os
import signal
import time

import websocket

from helpers import WAIT, Client, ConfabTest
from redis_server import RedisServer

# Liveness settings for tests (README: "Running several nodes"); the defaults are for production.
NODE_FLAGS = [f for f in os.environ.get("CONFAB_NODE_FLAGS", "").split() if f]

# Upper bound for a dead node's members to leave everywhere with NODE_FLAGS (heartbeat + expiry
# + a loaded machine's slack). Only matters when a test fails.
DEATH_WAIT = float(os.environ.get("CONFAB_DEATH_WAIT", "20"))


def supports_redis():
    """True when this build of confab has --redis (issue 8)."""
    import subprocess
    from helpers import BIN
    try:
        out = subprocess.run([BIN, "--help"], capture_output=True, text=True, timeout=WAIT)
    except OSError:
        return False
    return "--redis" in out.stdout + out.stderr


class ClusterClient(Client):
    """A chat client that also takes the close codes 1012-1014 (a node cut off from the cluster
    closes its clients with 1012 "service restart"), which websocket-client 1.2 rejects as
    invalid: the connection then counts as closed by the server."""

    def _recv(self, deadline):
        try:
            return super()._recv(deadline)
        except websocket.WebSocketProtocolException as e:
            self.closed = (None, "close frame websocket-client refuses (%s)" % e)
            return None


class ClusterTest(ConfabTest):
    def client(self, srv_or_port, path="/ws", **options):
        port = getattr(srv_or_port, "port", srv_or_port)
        c = ClusterClient(port, path, **options)
        self.addCleanup(c.close)
        return c

    def redis(self, **kw):
        """A private redis-server for this test (stopped by PID afterwards)."""
        r = RedisServer(self.tmp, **kw)
        self.addCleanup(r.stop)
        self.redises = getattr(self, "redises", []) + [r]
        return r

    def node(self, redis, *flags, **kw):
        """One confab node on redis (a RedisServer or a list of them: one --redis each)."""
        rs = redis if isinstance(redis, (list, tuple)) else [redis]
        args = []
        for r in rs:
            args += ["--redis", r.url]
        srv = self.start(*(args + NODE_FLAGS + [str(f) for f in flags]), **kw)
        srv.flags = list(flags)
        srv.redis = redis
        srv.kw = kw
        return srv

    def cluster(self, n, *flags, unix=False, persist=False, **kw):
        r = self.redis(unix=unix, persist=persist)
        nodes = [self.node(r, *flags, **kw) for _ in range(n)]
        return r, nodes

    def restart_node(self, srv):
        """Stops srv (if it still runs) and starts a node with the same flags (a new port)."""
        if srv.proc.poll() is None:
            srv.stop()
        srv.stopped = True
        return self.node(srv.redis, *srv.flags, **srv.kw)

    def kill_node(self, srv, sig=signal.SIGKILL):
        """A crash: the node is SIGKILLed by its PID and not counted as having died by itself."""
        srv.check_exit = False
        os.kill(srv.pid, sig)
        srv.proc.wait(WAIT)

    def run(self, result=None):
        before = (len(result.failures) + len(result.errors)) if result is not None else 0
        out = super().run(result)
        if result is not None and len(result.failures) + len(result.errors) > before:
            for r in getattr(self, "redises", []):
                print("---- redis log of %s:\n%s\n----" % (self.id(), r.log_tail(20)), flush=True)
        return out


def wait_until(pred, timeout=WAIT, what="condition", step=0.05):
    """Polls pred() until true (a state that has no event to await, such as a count in Redis);
    fails after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("%s not reached within %.1fs" % (what, timeout))
        time.sleep(step)
