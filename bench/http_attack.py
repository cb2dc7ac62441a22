#!/usr/bin/python3
"""HTTP and accept edges under attack: starts the real confab (default limits unless said) for
each scenario and prints key=value lines, one block per scenario. It never judges the figures.

    /usr/bin/python3 bench/http_attack.py [--bin build/confab] [--scenario NAME...]

Scenarios:
  pipelined  one socket sends 60,000 `GET /app.js` (1.8 GB of responses) and reads nothing;
             the server's RSS growth once it stopped taking them, then every response is read
             and counted (and the peak RSS growth over the whole run)
  bigfile    10 sockets ask for a 64 MB file and read nothing: the server's RSS growth
  halfopen   3,000 sockets each send an unfinished request head of 7,000 bytes: RSS growth per
             connection (bounded by --request-memory in total), and how many got 503
  emfile     the server under RLIMIT_NOFILE 64 with 100 clients waiting: its CPU seconds and
             the number of log lines about it over 3 s, then whether it serves again once the
             clients leave

Linux only (reads /proc)."""

import os
import re
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ECHO = 'local confab = require "confab"\nconfab.on("message", function(ev) end)\n'


def status_kb(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    def __init__(self, binary, tmp, *flags, web=None, preexec=None):
        script = os.path.join(tmp, "idle.lua")
        with open(script, "w") as f:
            f.write(ECHO)
        argv = [binary, "--addr", "127.0.0.1:0", "--script", script,
                "--web", web or os.path.join(ROOT, "web")] + list(flags)
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, preexec_fn=preexec)
        self.lines = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        m = self.wait(r"listening on 127\.0\.0\.1:(\d+)")
        self.port = int(m.group(1))
        self.pid = self.proc.pid

    def _read(self):
        for raw in self.proc.stderr:
            with self.cond:
                self.lines.append(raw.decode("utf-8", "replace"))
                self.cond.notify_all()

    def wait(self, pattern, timeout=10):
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                m = rx.search("".join(self.lines))
                if m:
                    return m
                if time.monotonic() > deadline:
                    raise SystemExit("server: no %r in its log" % pattern)
                self.cond.wait(0.2)

    def count(self, pattern):
        with self.cond:
            return len(re.findall(pattern, "".join(self.lines)))

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


def get_status(port, path="/favicon.svg"):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET %s HTTP/1.1\r\nConnection: close\r\n\r\n" % path.encode())
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    return int(data.split(b" ", 2)[1]) if data else 0


def read_responses(sock, n, body_len):
    """Reads n responses of body_len bytes each (Content-Length framing); returns how many."""
    buf = bytearray()
    got = 0
    need = None
    sock.settimeout(10)
    while got < n:
        if need is None:
            i = buf.find(b"\r\n\r\n")
            if i >= 0:
                need = i + 4 + body_len
                continue
        elif len(buf) >= need:
            del buf[:need]
            need = None
            got += 1
            continue
        chunk = sock.recv(1 << 20)
        if not chunk:
            break
        buf += chunk
    return got


def pipelined(binary, tmp):
    srv = Server(binary, tmp, "--handshake-timeout", "600")
    n = 60000
    size = os.path.getsize(os.path.join(ROOT, "web", "app.js"))
    base = status_kb(srv.pid, "VmRSS")
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.sendall(b"GET /app.js HTTP/1.1\r\n\r\n" * n)
    for _ in range(3):
        get_status(srv.port)
    held = status_kb(srv.pid, "VmRSS") - base
    t0 = time.monotonic()
    got = read_responses(s, n, size)
    took = time.monotonic() - t0
    peak = status_kb(srv.pid, "VmHWM") - base
    s.close()
    srv.stop()
    print("scenario=pipelined\nrequests=%d\nresponse_bytes=%d\nrss_growth_held_kb=%d\n"
          "rss_growth_peak_kb=%d\nresponses_read=%d\nread_s=%.2f\n"
          % (n, n * size, held, peak, got, took))


def bigfile(binary, tmp):
    web = os.path.join(tmp, "bigweb")
    os.makedirs(web, exist_ok=True)
    with open(os.path.join(web, "big.bin"), "wb") as f:
        block = os.urandom(1 << 20)
        for _ in range(64):
            f.write(block)
    srv = Server(binary, tmp, "--handshake-timeout", "600", web=web)
    base = status_kb(srv.pid, "VmRSS")
    socks = []
    for _ in range(10):
        s = socket.create_connection(("127.0.0.1", srv.port))
        s.sendall(b"GET /big.bin HTTP/1.1\r\n\r\n")
        socks.append(s)
    for _ in range(3):
        get_status(srv.port)
    held = status_kb(srv.pid, "VmRSS") - base
    for s in socks:
        s.close()
    srv.stop()
    print("scenario=bigfile\nreaders=10\nfile_bytes=%d\nrss_growth_kb=%d\n" % (64 << 20, held))


def halfopen(binary, tmp):
    srv = Server(binary, tmp, "--handshake-timeout", "600")
    n = 3000
    base = status_kb(srv.pid, "VmRSS")
    head = b"GET / HTTP/1.1\r\nX-Pad: " + b"a" * 7000
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", srv.port))
        s.sendall(head)
        socks.append(s)
    get_status(srv.port)
    grown = status_kb(srv.pid, "VmRSS") - base
    refused = srv.count(r"request buffers are at --request-memory")
    for s in socks:
        s.close()
    srv.stop()
    print("scenario=halfopen\nconnections=%d\nhead_bytes=%d\nrss_growth_per_conn_bytes=%d\n"
          "refused_503_logged=%d\n" % (n, len(head), grown * 1024 // n, refused))


def emfile(binary, tmp):
    def low():
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
    srv = Server(binary, tmp, "--handshake-timeout", "600", preexec=low)
    socks = [socket.create_connection(("127.0.0.1", srv.port)) for _ in range(100)]
    srv.wait(r"cannot accept connections")
    c0 = cpu_seconds(srv.pid)
    time.sleep(3)  # the measuring window
    cpu = cpu_seconds(srv.pid) - c0
    lines = srv.count(r"cannot accept connections|connection refused")
    for s in socks:
        s.close()
    status = get_status(srv.port)
    srv.stop()
    print("scenario=emfile\nwindow_s=3\nserver_cpu_s=%.2f\nlog_lines=%d\nserves_after=%d\n"
          % (cpu, lines, status))


SCENARIOS = {"pipelined": pipelined, "bigfile": bigfile, "halfopen": halfopen, "emfile": emfile}


def main(argv):
    binary = os.path.join(ROOT, "build", "confab")
    names = []
    i = 0
    while i < len(argv):
        if argv[i] == "--bin":
            binary = argv[i + 1]
            i += 2
        elif argv[i] == "--scenario":
            names.append(argv[i + 1])
            i += 2
        else:
            raise SystemExit("usage: http_attack.py [--bin BIN] [--scenario NAME...]")
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (8192, max(8192, resource.getrlimit(
            resource.RLIMIT_NOFILE)[1])))
    except (ValueError, OSError):
        pass
    with tempfile.TemporaryDirectory(prefix="confab-http-bench-") as tmp:
        for name in names or list(SCENARIOS):
            SCENARIOS[name](binary, tmp)
            sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
