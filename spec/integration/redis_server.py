"""A private redis-server for the tests (Debian's /usr/bin/redis-server), and a small RESP client.

RedisServer starts one redis-server on 127.0.0.1 with a port of its own (a free port is picked and,
should another process take it first, another one) or on a unix socket in a temp directory. It
keeps nothing on disk unless persist=True (then RDB in its directory, saved on request and on
restart(keep_data=True)). It is stopped by its PID; restart() starts it again on the same address,
empty or with its data.

    r = RedisServer(tmpdir)                 # TCP
    r = RedisServer(tmpdir, unix=True)      # unix socket only
    r.url                                   # what confab's --redis takes
    r.call("PING")                          # -> "PONG"
    r.restart(keep_data=False); r.stop()
"""

import os
import re
import signal
import socket
import subprocess
import threading
import time

REDIS_BIN = os.environ.get("REDIS_SERVER", "/usr/bin/redis-server")
START_WAIT = 10.0  # upper bound for redis-server to accept connections (a loaded machine)


class RedisError(Exception):
    """An error reply (-ERR ...) from Redis."""


def free_port():
    """A port nothing listens on right now (the caller retries if it is taken before use)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


class RespClient:
    """One connection speaking RESP2: call() sends a command and returns its reply (str for simple
    strings, bytes-decoded str for bulk strings, int, list, None); error replies raise RedisError.
    Subscribe-style use: send() then read()."""

    def __init__(self, address, timeout=5.0):
        if isinstance(address, str):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(address)
        self.buf = b""

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            if not isinstance(a, bytes):
                a = str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def read(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RedisError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n).decode("utf-8", "replace")
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise ConnectionError("bad RESP reply %r" % line[:100])

    def call(self, *args):
        self.send(*args)
        return self.read()


class RedisServer:
    """One redis-server process of a test. Its log (stdout) is collected in lines."""

    def __init__(self, tmpdir, unix=False, persist=False, extra=(), port=None):
        self.dir = os.path.join(tmpdir, "redis-%d" % id(self))
        os.makedirs(self.dir, exist_ok=True)
        self.unix = unix
        self.persist = persist
        self.extra = [str(e) for e in extra]
        self.socket_path = os.path.join(self.dir, "redis.sock") if unix else None
        self.port = port
        self.proc = None
        self.lines = []
        self.cond = threading.Condition()
        self.starts = 0
        self._start()

    # -- address

    @property
    def address(self):
        return self.socket_path if self.unix else ("127.0.0.1", self.port)

    @property
    def url(self):
        """The --redis URL of this server."""
        return "unix:%s" % self.socket_path if self.unix else "redis://127.0.0.1:%d" % self.port

    @property
    def pid(self):
        return self.proc.pid

    # -- process

    def _argv(self):
        argv = [REDIS_BIN, "--bind", "127.0.0.1", "--dir", self.dir, "--dbfilename", "dump.rdb",
                "--appendonly", "no", "--daemonize", "no", "--logfile", "", "--loglevel", "notice",
                "--protected-mode", "yes", "--databases", "16"]
        # No snapshots unless the test asks (then saved only by SAVE, below: never behind its back).
        argv += ["--save", ""]
        if self.unix:
            argv += ["--port", "0", "--unixsocket", self.socket_path, "--unixsocketperm", "700"]
        else:
            argv += ["--port", str(self.port)]
        return argv + self.extra

    def _start(self):
        tries = 0
        while True:
            tries += 1
            if not self.unix and (self.port is None or tries > 1):
                self.port = free_port()
            if self._spawn():
                return
            if self.unix or tries >= 5:
                raise AssertionError("redis-server did not start; log:\n%s" % self.log_tail())

    def _spawn(self):
        """Starts the process; True once it accepts connections, False if its port was taken."""
        self.starts += 1
        mark = len(self.lines)
        self.proc = subprocess.Popen(self._argv(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.eof = False
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()
        rx = re.compile(r"Ready to accept connections|Address already in use|# .*(?:Fatal|Failed)",
                        re.I)
        deadline = time.monotonic() + START_WAIT
        with self.cond:
            while True:
                m = None
                for line in self.lines[mark:]:
                    m = rx.search(line)
                    if m:
                        break
                if m:
                    break
                left = deadline - time.monotonic()
                if left <= 0 or (self.eof and self.proc.poll() is not None):
                    break
                self.cond.wait(min(left, 0.5))
        if m and m.group(0).lower().startswith("ready"):
            return True
        self._kill()
        if m and "already in use" in m.group(0).lower():
            return False
        raise AssertionError("redis-server did not start within %.0fs; log:\n%s"
                             % (START_WAIT, self.log_tail()))

    def _read(self, proc):
        for raw in proc.stdout:
            with self.cond:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            if proc is self.proc:
                self.eof = True
            self.cond.notify_all()

    def _kill(self, sig=signal.SIGKILL):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(START_WAIT)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(START_WAIT)
        self.proc.stdout.close()

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        """SIGTERM by PID and wait (SIGKILL if it hangs). Nothing is saved (no save points)."""
        self._kill(signal.SIGTERM)

    def kill(self):
        """SIGKILL by PID: a crash."""
        self._kill(signal.SIGKILL)

    def save(self):
        """Writes the data to dump.rdb now (SAVE); restart(keep_data=True) loads it."""
        return self.call("SAVE")

    def restart(self, keep_data=False):
        """Stops and starts again on the same address. keep_data=False: empty (the RDB file, if
        any, is removed first); True: the data as of now (SAVE, then loaded at start)."""
        if keep_data and self.running():
            self.save()
        self.stop()
        rdb = os.path.join(self.dir, "dump.rdb")
        if not keep_data and os.path.exists(rdb):
            os.unlink(rdb)
        if not self._spawn():
            raise AssertionError("redis-server could not get its port %s back" % self.port)

    def start(self):
        """Starts it again after stop() (with whatever dump.rdb holds, normally nothing)."""
        if not self._spawn():
            raise AssertionError("redis-server could not get its port %s back" % self.port)

    # -- commands

    def client(self, timeout=5.0):
        return RespClient(self.address, timeout)

    def call(self, *args):
        c = self.client()
        try:
            return c.call(*args)
        finally:
            c.close()

    @property
    def log(self):
        with self.cond:
            return "\n".join(self.lines)

    def log_tail(self, n=30):
        with self.cond:
            return "\n".join(self.lines[-n:])
