#!/usr/bin/python3
"""TLS handshakes left unfinished: starts the real confab with TLS (a certificate made with the
openssl command in a temporary directory) and prints key=value lines. It never judges them.

    /usr/bin/python3 bench/tls_handshakes.py [--bin build/confab] [--conns 1000]

Blocks (one server each, --handshake-timeout 60 so that nothing expires while measuring):
  half     N sockets each send the first 60 bytes of a ClientHello: server RSS growth per
           connection (OpenSSL holds a record buffer and its handshake state for each)
  whole    N sockets each send a whole ClientHello and read nothing: the same (the server has
           answered and waits for the client's Finished)
  budget   the same as half with the default --request-memory (64M) and 3,000 sockets: how many
           were accepted into a handshake and how many closed at accept, and the RSS growth in all

Linux only (reads /proc)."""

import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Server:
    def __init__(self, binary, cert, key, *flags):
        argv = [binary, "--addr", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key,
                "--script", os.path.join(ROOT, "scripts", "chat.lua"),
                "--web", os.path.join(ROOT, "web"), "--handshake-timeout", "60"] + list(flags)
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        self.lines = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        self.port = int(self.wait(r"listening on 127\.0\.0\.1:(\d+)").group(1))
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

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


def client_hello():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    out = ssl.MemoryBIO()
    obj = ctx.wrap_bio(ssl.MemoryBIO(), out)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def settle(pid):
    """RSS once it stops moving (3 equal samples 200 ms apart, at most 5 s)."""
    last, same = -1, 0
    for _ in range(25):
        r = rss_kb(pid)
        same = same + 1 if r == last else 0
        if same >= 2:
            return r
        last = r
        time.sleep(0.2)
    return last


def run(binary, cert, key, name, n, send, flags=()):
    srv = Server(binary, cert, key, *flags)
    before = settle(srv.pid)
    socks = []
    try:
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", srv.port))
            s.sendall(send)
            socks.append(s)
        after = settle(srv.pid)
        refused = 0
        for s in socks:  # closed at accept: EOF at once; the others have nothing to read
            s.setblocking(False)
            try:
                if s.recv(1) == b"":
                    refused += 1
            except (BlockingIOError, ssl.SSLError):
                pass
            except ConnectionError:
                refused += 1
        print("scenario=%s" % name)
        print("connections=%d" % n)
        print("bytes_sent_each=%d" % len(send))
        print("rss_before_kb=%d" % before)
        print("rss_after_kb=%d" % after)
        print("rss_growth_kb=%d" % (after - before))
        print("rss_growth_per_conn_bytes=%d" % ((after - before) * 1024 // max(1, n - refused)))
        print("closed_at_accept=%d" % refused)
        print("in_handshake=%d" % (n - refused))
        print()
    finally:
        for s in socks:
            s.close()
        srv.stop()


def main(argv):
    binary = os.path.join(ROOT, "build", "confab")
    n = 1000
    args = list(argv)
    while args:
        a = args.pop(0)
        if a == "--bin":
            binary = os.path.abspath(args.pop(0))
        elif a == "--conns":
            n = int(args.pop(0))
        else:
            raise SystemExit("usage: tls_handshakes.py [--bin PATH] [--conns N]")
    tmp = tempfile.mkdtemp(prefix="confab-tlsbench-")
    try:
        cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-days", "1", "-subj", "/CN=bench",
                        "-keyout", key, "-out", cert], check=True, capture_output=True)
        hello = client_hello()
        run(binary, cert, key, "half", n, hello[:60], ("--request-memory", "1G"))
        run(binary, cert, key, "whole", n, hello, ("--request-memory", "1G"))
        run(binary, cert, key, "budget", 3 * n, hello[:60])
    finally:
        shutil.rmtree(tmp, True)


if __name__ == "__main__":
    main(sys.argv[1:])
