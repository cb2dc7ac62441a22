"""Shared helpers of the integration suite: start the real confab binary on 127.0.0.1 port 0,
talk to it over raw sockets (HTTP, hand-made WebSocket frames) or with websocket-client, and
await events with timeouts that are only upper bounds."""

import base64
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import unittest

import websocket  # websocket-client (Debian python3-websocket)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.abspath(os.path.join(REPO, os.environ.get("CONFAB_BIN", "build/confab")))
CHAT = os.path.join(REPO, "scripts", "chat.lua")
WEB = os.path.join(REPO, "web")
EXAMPLES = os.path.join(REPO, "scripts", "examples")
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

# Upper bounds for awaiting events. Generous: they only matter when a test is failing.
WAIT = 5.0

# Hook scripts shared by several test modules.
ECHO_LUA = """
local confab = require "confab"
confab.on("message", function(ev) confab.send(ev.id, ev.data, ev.binary) end)
"""

# Joins every connection to room "all"; every message is broadcast to the whole room.
# "join" joins room "all" (answered "joined"); anything else is broadcast to "all".
RELAY_LUA = """
local confab = require "confab"
confab.on("message", function(ev)
  if ev.data == "join" then
    confab.join(ev.id, "all")
    confab.send(ev.id, "joined")
  else
    confab.broadcast("all", ev.data, nil, ev.binary)
  end
end)
"""

# Reports what the connect hook saw as the first message of the connection.
PROBE_LUA = """
local confab = require "confab"
local cjson = require "cjson"
confab.on("connect", function(ev)
  confab.send(ev.id, cjson.encode({
    type = "connect", path = ev.path, query = ev.query, remote = ev.remote,
    subprotocol = ev.subprotocol or cjson.null,
    origin = ev.headers.origin or cjson.null,
  }))
end)
confab.on("message", function(ev) confab.send(ev.id, ev.data, ev.binary) end)
"""


def ws_key():
    return base64.b64encode(os.urandom(16)).decode()


def ws_accept(key):
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


# ---------------------------------------------------------------------------------------------
# The server process


class Server:
    """One confab process listening on an ephemeral loopback port; stderr is collected."""

    def __init__(self, *flags, script=CHAT, web=WEB, wait_listening=True, preexec_fn=None,
                 cwd=REPO, bin=BIN):
        argv = [bin, "--addr", "127.0.0.1:0"]
        if script is not None:
            argv += ["--script", script]
        if web is not None:
            argv += ["--web", web]
        argv += [str(f) for f in flags]
        self.argv = argv
        self.lines = []
        self.cond = threading.Condition()
        self.eof = False
        self.stopped = False
        self.port = None
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, cwd=cwd, preexec_fn=preexec_fn)
        self.pid = self.proc.pid
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        if wait_listening:
            self.wait_listening()

    def wait_listening(self):
        m = self.wait_log(r"listening on 127\.0\.0\.1:(\d+)", WAIT)
        self.port = int(m.group(1))
        return self.port

    def _read(self):
        for raw in self.proc.stderr:
            with self.cond:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    @property
    def log(self):
        with self.cond:
            return "\n".join(self.lines)

    def find_log(self, pattern, flags=re.I):
        """The first match of pattern in the log so far, or None (does not wait)."""
        return re.search(pattern, self.log, flags)

    def wait_log(self, pattern, timeout=WAIT, flags=re.I):
        """Awaits a stderr line (or lines: the log is searched as one text) matching pattern."""
        rx = re.compile(pattern, flags)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                m = rx.search("\n".join(self.lines))
                if m:
                    return m
                left = deadline - time.monotonic()
                if self.eof or left <= 0:
                    raise AssertionError("no log matching %r within %.1fs (server %s); log:\n%s"
                                         % (pattern, timeout, self.state(), self.log_tail()))
                self.cond.wait(left)

    def state(self):
        rc = self.proc.poll()
        return "running" if rc is None else "exited %d" % rc

    def log_tail(self, n=40):
        with self.cond:
            return "\n".join(self.lines[-n:])

    def wait_exit(self, timeout=WAIT):
        """Awaits the process's exit; returns its status or fails."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("server still running after %.1fs" % timeout)
        self.reader.join(WAIT)
        self.stopped = True
        return rc

    def signal(self, sig):
        os.kill(self.pid, sig)

    def stop(self):
        """SIGTERM by PID; returns the exit status (SIGKILL and -9 if it does not stop)."""
        if self.stopped:
            return self.proc.returncode
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(WAIT)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(WAIT)
        self.reader.join(WAIT)
        self.proc.stderr.close()
        self.stopped = True
        return self.proc.returncode


def run_confab(*args, timeout=WAIT):
    """Runs confab to completion (flag checks, --check); returns CompletedProcess (text)."""
    return subprocess.run([BIN] + [str(a) for a in args], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout, cwd=REPO)


# ---------------------------------------------------------------------------------------------
# Raw HTTP


class Response:
    def __init__(self, status, reason, headers, body, version):
        self.status = status
        self.reason = reason
        self.header_list = headers
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body
        self.version = version

    def __repr__(self):
        return "<HTTP %d %s %r body=%r>" % (self.status, self.reason, self.headers,
                                             self.body[:200])


class Conn:
    """A raw TCP connection with a receive buffer, for HTTP and hand-made WebSocket frames;
    over TLS when tls (an ssl.SSLContext) is given."""

    def __init__(self, port, rcvbuf=None, source=None, tls=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if source:  # another loopback source address, e.g. "127.0.0.2" (per-address caps)
            self.sock.bind((source, 0))
        self.sock.settimeout(WAIT)
        self.sock.connect(("127.0.0.1", port))
        if tls is not None:
            self.sock = tls.wrap_socket(self.sock, server_hostname="127.0.0.1")
        self.port = port
        self.buf = b""
        self.eof = False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _fill(self, deadline):
        """Reads more bytes into buf; False at EOF (or reset). Raises AssertionError on timeout."""
        if self.eof:
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("timed out waiting for data from the server")
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise AssertionError("timed out waiting for data from the server")
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def read_exact(self, n, deadline):
        while len(self.buf) < n:
            if not self._fill(deadline):
                return None
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_until(self, marker, deadline):
        while marker not in self.buf:
            if not self._fill(deadline):
                return None
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def read_to_eof(self, timeout=WAIT):
        deadline = time.monotonic() + timeout
        while self._fill(deadline):
            pass
        out, self.buf = self.buf, b""
        return out

    def wait_eof(self, timeout=WAIT):
        """Awaits the server closing the connection, discarding data; returns the bytes read."""
        return self.read_to_eof(timeout)

    def read_response(self, head=False, timeout=WAIT):
        """Reads one HTTP response (body by Content-Length, chunked, or to EOF)."""
        deadline = time.monotonic() + timeout
        raw = self.read_until(b"\r\n\r\n", deadline)
        if raw is None:
            raise AssertionError("connection closed before a complete response head; got %r"
                                 % self.buf[:300])
        lines = raw.decode("latin-1").split("\r\n")
        m = re.match(r"(HTTP/\d\.\d) (\d{3}) ?(.*)", lines[0])
        if not m:
            raise AssertionError("bad status line %r" % lines[0])
        headers = []
        for line in lines[1:]:
            if line:
                k, _, v = line.partition(":")
                headers.append((k.strip(), v.strip()))
        status = int(m.group(2))
        hmap = {k.lower(): v for k, v in headers}
        body = b""
        if head or status in (101, 204, 304) or 100 <= status < 200:
            pass
        elif "content-length" in hmap:
            body = self.read_exact(int(hmap["content-length"]), deadline)
            if body is None:
                raise AssertionError("connection closed inside the body")
        elif hmap.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int(self.read_until(b"\r\n", deadline).split(b";")[0], 16)
                body += self.read_exact(size, deadline)
                self.read_until(b"\r\n", deadline)
                if size == 0:
                    break
        else:
            body = self.read_to_eof(timeout=max(0.1, deadline - time.monotonic()))
        return Response(status, m.group(3), headers, body, m.group(1))


def http(port, request, head=False, timeout=WAIT):
    """Sends one raw request (str/bytes) on a new connection and returns its Response."""
    c = Conn(port)
    try:
        c.send(request)
        return c.read_response(head=head, timeout=timeout)
    finally:
        c.close()


def get(port, path, method="GET", extra="", version="HTTP/1.1"):
    req = "%s %s %s\r\nHost: 127.0.0.1:%d\r\n%sConnection: close\r\n\r\n" % (
        method, path, version, port, extra)
    return http(port, req, head=(method == "HEAD"))


def upgrade_request(port, path="/ws", headers=None, drop=(), method="GET", version="HTTP/1.1",
                    key=None):
    """A WebSocket upgrade request; headers (list of pairs) are added, names in drop removed."""
    key = key or ws_key()
    base = [("Host", "127.0.0.1:%d" % port), ("Upgrade", "websocket"),
            ("Connection", "Upgrade"), ("Sec-WebSocket-Key", key),
            ("Sec-WebSocket-Version", "13")]
    override = {k.lower() for k, _ in (headers or [])} | {d.lower() for d in drop}
    lines = [(k, v) for k, v in base if k.lower() not in override] + list(headers or [])
    req = "%s %s %s\r\n" % (method, path, version)
    req += "".join("%s: %s\r\n" % kv for kv in lines) + "\r\n"
    return req, key


def handshake(port, **kw):
    """Sends an upgrade request on a new connection; returns (Response, Conn)."""
    req, key = upgrade_request(port, **kw)
    c = Conn(port)
    c.send(req)
    return c.read_response(), c, key


# ---------------------------------------------------------------------------------------------
# Hand-made WebSocket frames

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


def encode_frame(opcode, payload=b"", fin=True, mask=True, rsv=0, length=None):
    if isinstance(payload, str):
        payload = payload.encode()
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    mbit = 0x80 if mask else 0
    if n < 126:
        head += bytes([mbit | n])
    elif n < 65536:
        head += bytes([mbit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mbit | 127]) + struct.pack("!Q", n)
    if mask:
        key = os.urandom(4)
        head += key
        if payload:
            k = (key * (len(payload) // 4 + 1))[:len(payload)]
            x = int.from_bytes(payload, "big") ^ int.from_bytes(k, "big")
            payload = x.to_bytes(len(payload), "big")
    return head + payload


def close_payload(code, reason=b""):
    return struct.pack("!H", code) + reason


class Frame:
    def __init__(self, fin, rsv, opcode, payload):
        self.fin, self.rsv, self.opcode, self.payload = fin, rsv, opcode, payload

    @property
    def close_code(self):
        return struct.unpack("!H", self.payload[:2])[0] if len(self.payload) >= 2 else None

    def __repr__(self):
        return "<Frame op=%d fin=%d len=%d %r>" % (self.opcode, self.fin, len(self.payload),
                                                   self.payload[:60])


class RawWS(Conn):
    """A WebSocket client made by hand: frames go out exactly as the test builds them, and
    control frames coming in are shown to the test (nothing is answered automatically unless
    auto_pong is set)."""

    def __init__(self, port, path="/ws", headers=None, rcvbuf=None, auto_pong=False, source=None,
                 tls=None):
        super().__init__(port, rcvbuf=rcvbuf, source=source, tls=tls)
        req, key = upgrade_request(port, path=path, headers=headers)
        self.send(req)
        self.response = self.read_response()
        if self.response.status != 101:
            raise AssertionError("handshake refused: %r" % self.response)
        if self.response.headers.get("sec-websocket-accept") != ws_accept(key):
            raise AssertionError("bad Sec-WebSocket-Accept: %r" % self.response)
        self.auto_pong = auto_pong
        self.pings = 0

    def send_frame(self, opcode, payload=b"", **kw):
        self.send(encode_frame(opcode, payload, **kw))

    def send_text(self, text):
        self.send_frame(OP_TEXT, text)

    def send_close(self, code=1000, reason=b""):
        self.send_frame(OP_CLOSE, close_payload(code, reason))

    def recv_frame(self, timeout=WAIT):
        """The next frame, or None at EOF."""
        deadline = time.monotonic() + timeout
        head = self.read_exact(2, deadline)
        if head is None:
            return None
        b0, b1 = head
        if b1 & 0x80:
            raise AssertionError("the server sent a masked frame")
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self.read_exact(2, deadline))[0]
        elif n == 127:
            n = struct.unpack("!Q", self.read_exact(8, deadline))[0]
        payload = self.read_exact(n, deadline) if n else b""
        if payload is None:
            return None
        return Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0x0F, payload)

    def recv_message(self, timeout=WAIT):
        """The next data message as (opcode, bytes); control frames are counted/answered.
        Returns (OP_CLOSE, payload) for a close frame and None at EOF."""
        deadline = time.monotonic() + timeout
        parts, first = [], None
        while True:
            f = self.recv_frame(max(0.0, deadline - time.monotonic()))
            if f is None:
                return None
            if f.opcode == OP_PING:
                self.pings += 1
                if self.auto_pong:
                    self.send_frame(OP_PONG, f.payload)
                continue
            if f.opcode == OP_PONG:
                continue
            if f.opcode == OP_CLOSE:
                return OP_CLOSE, f.payload
            if first is None:
                first = f.opcode
            parts.append(f.payload)
            if f.fin:
                return first, b"".join(parts)

    def recv_text(self, timeout=WAIT):
        m = self.recv_message(timeout)
        if m is None or m[0] != OP_TEXT:
            raise AssertionError("expected a text message, got %r" % (m,))
        return m[1].decode()

    def wait_close(self, timeout=WAIT):
        """Reads until the server's close frame; returns its Frame (data before it is dropped),
        or None if the connection ended without one."""
        deadline = time.monotonic() + timeout
        while True:
            f = self.recv_frame(max(0.0, deadline - time.monotonic()))
            if f is None or f.opcode == OP_CLOSE:
                return f


# ---------------------------------------------------------------------------------------------
# A JSON client over websocket-client


class Client:
    """A chat client on the websocket-client library. Received JSON messages not yet asked for
    wait in an inbox, so a test can await them in any order."""

    def __init__(self, port, path="/ws", scheme="ws", **options):
        options.setdefault("timeout", WAIT)
        self.ws = websocket.create_connection("%s://127.0.0.1:%d%s" % (scheme, port, path),
                                              **options)
        self.inbox = []
        self.name = None
        self.closed = None  # (code, reason) once the server's close frame arrived

    def send(self, text):
        self.ws.send(text)

    def send_json(self, obj=None, **fields):
        msg = dict(obj or {}, **fields)
        self.ws.send(json.dumps(msg))

    def _recv(self, deadline):
        """One data message as text (or bytes); None once closed."""
        if self.closed is not None:
            return None
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout()
        self.ws.settimeout(left)
        try:
            op, frame = self.ws.recv_data_frame(True)
        except websocket.WebSocketTimeoutException:
            raise socket.timeout()
        except (websocket.WebSocketConnectionClosedException, ConnectionError):
            self.closed = (None, "")
            return None
        if op == websocket.ABNF.OPCODE_CLOSE:
            data = frame.data
            code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None
            self.closed = (code, data[2:].decode("utf-8", "replace"))
            return None
        if op in (websocket.ABNF.OPCODE_PING, websocket.ABNF.OPCODE_PONG):
            return self._recv(deadline)
        data = frame.data
        return data.decode() if op == websocket.ABNF.OPCODE_TEXT else data

    def recv_raw(self, timeout=WAIT):
        """The next data message (text or bytes), failing on timeout or close."""
        try:
            m = self._recv(time.monotonic() + timeout)
        except socket.timeout:
            raise AssertionError("no message within %.1fs" % timeout)
        if m is None:
            raise AssertionError("connection closed %r while awaiting a message" % (self.closed,))
        return m

    @staticmethod
    def _matches(msg, type, fields):
        if type is not None and msg.get("type") != type:
            return False
        return all(msg.get(k) == v for k, v in fields.items())

    def recv_json(self, type=None, timeout=WAIT, **fields):
        """Awaits (or takes from the inbox) the first message of this type whose fields equal
        the given ones. Fails on timeout or close, showing what arrived instead."""
        for i, msg in enumerate(self.inbox):
            if self._matches(msg, type, fields):
                return self.inbox.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            try:
                raw = self._recv(deadline)
            except socket.timeout:
                raise AssertionError("no %s %r within %.1fs; got instead: %s"
                                     % (type, fields, timeout, json.dumps(self.inbox)[-1500:]))
            if raw is None:
                raise AssertionError("connection closed %r while awaiting %s %r; inbox: %s"
                                     % (self.closed, type, fields, json.dumps(self.inbox)[-1500:]))
            try:
                msg = json.loads(raw)
            except ValueError:
                raise AssertionError("server sent non-JSON %r" % raw[:200])
            if self._matches(msg, type, fields):
                return msg
            self.inbox.append(msg)

    def take_all(self, type=None, **fields):
        """Removes and returns every inbox message matching (no waiting)."""
        hit = [m for m in self.inbox if self._matches(m, type, fields)]
        self.inbox = [m for m in self.inbox if not self._matches(m, type, fields)]
        return hit

    def wait_close(self, timeout=WAIT):
        """Awaits the server's close; returns (code, reason), code None if no close frame."""
        deadline = time.monotonic() + timeout
        while self.closed is None:
            try:
                raw = self._recv(deadline)
            except socket.timeout:
                raise AssertionError("connection not closed within %.1fs" % timeout)
            if raw is not None:
                try:
                    self.inbox.append(json.loads(raw))
                except ValueError:
                    self.inbox.append(raw)
        return self.closed

    # Chat protocol conveniences (the protocol in README.md)

    def hello(self, name, **extra):
        """Sends hello and awaits welcome, and (without resume) our own join of lobby."""
        self.send_json(type="hello", name=name, **extra)
        welcome = self.recv_json("welcome")
        self.name = welcome["name"]
        if "resume" not in extra:
            self.recv_json("joined", room="lobby", name=self.name)
        return welcome

    def say(self, room, text):
        self.send_json(type="say", room=room, text=text)

    def close(self):
        try:
            self.ws.close(timeout=1)
        except Exception:
            pass
        try:
            self.ws.shutdown()
        except Exception:
            pass

    def drop(self):
        """Ends the TCP connection without a close handshake."""
        try:
            self.ws.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.ws.shutdown()


# ---------------------------------------------------------------------------------------------
# Test case base


class ConfabTest(unittest.TestCase):
    """Each test starts its own servers and clients through these methods; everything is
    stopped (by PID) or closed afterwards. A server that crashed, or did not exit 0 on
    SIGTERM, fails the test. Logs of the servers of a failing test are printed."""

    def setUp(self):
        self.servers = []
        self.tmp = tempfile.mkdtemp(prefix="confab-it-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def start(self, *flags, script=CHAT, web=WEB, check_exit=True, wait_listening=True,
              preexec_fn=None, cwd=REPO, bin=BIN):
        """Starts confab with flags; returns once it listens (unless wait_listening=False).
        preexec_fn runs in the child before exec (e.g. to lower its limits); script or web None
        leaves the flag out (the server's default applies); cwd is the server's directory; bin
        another binary (an installed one)."""
        srv = Server(*flags, script=script, web=web, wait_listening=False, preexec_fn=preexec_fn,
                     cwd=cwd, bin=bin)
        srv.check_exit = check_exit
        self.servers.append(srv)
        self.addCleanup(self._stop, srv)
        if wait_listening:
            srv.wait_listening()
        return srv

    def _stop(self, srv):
        if srv.stopped:  # the test awaited the exit itself and checked its status
            return
        was_running = srv.proc.poll() is None
        rc = srv.stop()
        if srv.check_exit:
            if not was_running:
                self.fail("the server died during the test (status %s); log:\n%s"
                          % (rc, srv.log_tail()))
            if rc != 0:
                self.fail("the server exited %s on SIGTERM (want 0); log:\n%s"
                          % (rc, srv.log_tail()))

    def write(self, name, text, mode=0o644):
        path = os.path.join(self.tmp, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        return path

    def script(self, text, name="hooks.lua"):
        return self.write(name, text)

    def client(self, srv_or_port, path="/ws", **options):
        port = getattr(srv_or_port, "port", srv_or_port)
        c = Client(port, path, **options)
        self.addCleanup(c.close)
        return c

    def raw(self, srv_or_port, **kw):
        port = getattr(srv_or_port, "port", srv_or_port)
        c = RawWS(port, **kw)
        self.addCleanup(c.close)
        return c

    def conn(self, srv_or_port, **kw):
        port = getattr(srv_or_port, "port", srv_or_port)
        c = Conn(port, **kw)
        self.addCleanup(c.close)
        return c

    def run(self, result=None):
        before = (len(result.failures) + len(result.errors)) if result is not None else 0
        out = super().run(result)
        if result is not None and len(result.failures) + len(result.errors) > before:
            for srv in getattr(self, "servers", []):
                print("---- server log of %s (%s):\n%s\n----" % (self.id(), " ".join(srv.argv[1:]),
                                                             srv.log_tail(60)), flush=True)
        return out



def proc_status(pid, field):
    """A /proc/PID/status field in kB (VmRSS, VmHWM, ...)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError("no %s in /proc/%d/status" % (field, pid))


def proc_cpu_seconds(pid):
    """User + system CPU time of a process so far (/proc/PID/stat), in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
