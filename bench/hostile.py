#!/usr/bin/python3
"""Per-connection memory under hostile peers: starts the real confab (echo script, default
limits unless given), lets K connections run one attack at once, and reports the server's peak
RSS growth per connection (VmHWM after the attack minus VmRSS before, divided by K).

    /usr/bin/python3 bench/hostile.py [--bin build/confab] [--conns K] [--scenario NAME...]
                                      [-- confab flags]

Scenarios (each peer never reads what the server sends unless said otherwise; its receive
buffer is set small so that the server's queue, not the kernel, holds what it cannot send):
  fragments  an unfinished text message of 1-byte fragments up to --max-message, never finished
  bigframe   one data frame announcing --max-message bytes, all but the last byte sent
  pings      empty pings, 32 MB of them, never reading the pongs
  tiny       1-byte text messages pipelined (32 MB), echoed, never reading the replies
  pipelined  --max-message-sized messages pipelined (16 MB), echoed, never reading the replies
  ctrlmix    fragments, pings and closes interleaved: 1-byte fragment + empty ping, repeated
  flood      not memory but turns: 16 MB of 1-byte messages whose echoes the attacker does read
             (--send-queue 256M, so it is never cut off), while a second connection sends a
             ping every 5 ms; reports the victim's pong round trip (p50, p99, max)

It prints key=value lines (one block per scenario) and a table row per scenario; it never judges
the figures. Linux only (reads /proc)."""

import os
import re
import select
import selectors
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import base64

ECHO = """
local confab = require "confab"
confab.on("message", function(ev) confab.send(ev.id, ev.data, ev.binary) end)
"""


def status_kb(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def frame(opcode, payload=b"", fin=True, length=None):
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    # A zero mask key: the payload goes as is (masking is still announced, as clients must).
    return head + b"\0\0\0\0" + payload


def parse_size(s):
    mult = {"K": 1024, "M": 1 << 20, "G": 1 << 30}
    s = s.strip()
    if s and s[-1].upper() in mult:
        return int(float(s[:-1]) * mult[s[-1].upper()])
    return int(s)


class Server:
    def __init__(self, binary, flags):
        self.tmp = tempfile.mkdtemp(prefix="confab-hostile-")
        script = os.path.join(self.tmp, "echo.lua")
        with open(script, "w") as f:
            f.write(ECHO)
        self.log_path = os.path.join(self.tmp, "log")
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen([binary, "--addr", "127.0.0.1:0", "--script", script]
                                         + flags, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=log)
        for _ in range(100):
            m = re.search(r"listening on [0-9.]+:(\d+)", open(self.log_path).read())
            if m:
                break
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        if not m:
            raise SystemExit("server did not start: " + open(self.log_path).read()[-500:])
        self.port = int(m.group(1))

    def settle(self):
        """Waits until the server's CPU time and RSS stop changing (three reads 200 ms apart)."""
        last, same = None, 0
        for _ in range(300):
            now = (cpu_ticks(self.proc.pid), status_kb(self.proc.pid, "VmRSS"))
            same = same + 1 if now == last else 0
            if same >= 3:
                return
            last = now
            time.sleep(0.2)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        with open(self.log_path) as f:
            self.log = f.read()
        shutil.rmtree(self.tmp, True)


def connect(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(("GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
               % (port, key)).encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(1)  # byte by byte: leave whatever follows the 101 unread
        if not chunk:
            raise SystemExit("handshake refused")
        buf += chunk
    if b" 101 " not in buf.split(b"\r\n")[0]:
        raise SystemExit("handshake refused: %r" % buf[:100])
    return s


def attack_bytes(name, max_message):
    if name == "fragments":
        n = max_message - 1
        return frame(1, b"a", fin=False) + frame(0, b"a", fin=False) * (n - 1)
    if name == "bigframe":
        return frame(2, b"x" * (max_message - 1), length=max_message)
    if name == "pings":
        return frame(9) * (32 * 1024 * 1024 // 6)
    if name == "tiny":
        return frame(1, b"x") * (32 * 1024 * 1024 // 7)
    if name == "pipelined":
        one = frame(2, b"y" * max_message)
        return one * max(1, 16 * 1024 * 1024 // len(one))
    if name == "ctrlmix":
        n = max_message // 2
        return frame(1, b"a", fin=False) + (frame(9) + frame(0, b"a", fin=False)) * n
    raise SystemExit("unknown scenario " + name)


def run(binary, flags, name, conns):
    max_message = 64 * 1024
    for i, f in enumerate(flags):
        if f == "--max-message":
            max_message = parse_size(flags[i + 1])
    srv = Server(binary, flags)
    try:
        socks = [connect(srv.port) for _ in range(conns)]
        srv.settle()
        before = status_kb(srv.proc.pid, "VmRSS")
        data = attack_bytes(name, max_message)
        sel = selectors.DefaultSelector()
        left = {}
        for s in socks:
            s.setblocking(False)
            sel.register(s, selectors.EVENT_WRITE)
            left[s] = memoryview(data)
        closed = 0
        t0 = time.monotonic()
        while left and time.monotonic() - t0 < 120:
            for key, _ in sel.select(1):
                s = key.fileobj
                try:
                    n = s.send(left[s][:262144])
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    n = None
                if n is None:
                    closed += 1
                    sel.unregister(s)
                    del left[s]
                    continue
                left[s] = left[s][n:]
                if not len(left[s]):
                    sel.unregister(s)
                    del left[s]
        srv.settle()
        peak = status_kb(srv.proc.pid, "VmHWM")
        after = status_kb(srv.proc.pid, "VmRSS")
        alive = srv.proc.poll() is None
        for s in socks:
            s.close()
        result = {"scenario": name, "conns": conns, "attack_bytes_per_conn": len(data),
                  "rss_before_kb": before, "rss_after_kb": after, "peak_kb": peak,
                  "peak_per_conn_bytes": (peak - before) * 1024 // conns,
                  "cut_off_while_sending": closed, "server_alive": int(alive)}
    finally:
        srv.stop()
    result["slow_consumer_cutoffs"] = len(re.findall(r"slow consumer", srv.log))
    result["closed_1009"] = len(re.findall(r"closed with 1009", srv.log))
    return result


def flood(binary, flags):
    """The victim's ping round trips while another connection floods tiny messages."""
    import statistics
    import threading
    srv = Server(binary, flags + ["--send-queue", "256M"])
    try:
        victim, att = connect(srv.port), connect(srv.port)
        stop = threading.Event()

        def drain():
            while not stop.is_set():
                if not select.select([att], [], [], 0.2)[0]:
                    continue
                try:
                    if not att.recv(1 << 20):
                        return
                except OSError:
                    return

        rtts = []

        def probe():
            victim.settimeout(10)
            while not stop.is_set():
                t = time.monotonic()
                victim.sendall(frame(9, b"p"))
                got = b""
                while len(got) < 3:
                    got += victim.recv(3 - len(got))
                rtts.append(time.monotonic() - t)
                stop.wait(0.005)

        threads = [threading.Thread(target=drain, daemon=True),
                   threading.Thread(target=probe, daemon=True)]
        for t in threads:
            t.start()
        att.sendall(frame(1, b"x") * (16 * 1024 * 1024 // 7))
        srv.settle()
        stop.set()
        for t in threads:
            t.join(5)
        rtts.sort()
        ms = lambda x: round(x * 1000, 2)
        return {"scenario": "flood", "conns": 2, "attack_bytes_per_conn": 16 * 1024 * 1024 // 7 * 7,
                "victim_pings": len(rtts), "victim_rtt_p50_ms": ms(statistics.median(rtts)),
                "victim_rtt_p99_ms": ms(rtts[int(len(rtts) * 0.99)]),
                "victim_rtt_max_ms": ms(rtts[-1]), "server_alive": int(srv.proc.poll() is None)}
    finally:
        srv.stop()


def main(argv):
    binary, conns, names, flags = "build/confab", 20, [], []
    if "--" in argv:
        i = argv.index("--")
        argv, flags = argv[:i], argv[i + 1:]
    i = 0
    while i < len(argv):
        if argv[i] == "--bin":
            binary = argv[i + 1]
            i += 1
        elif argv[i] == "--conns":
            conns = int(argv[i + 1])
            i += 1
        elif argv[i] == "--scenario":
            names.append(argv[i + 1])
            i += 1
        else:
            raise SystemExit(__doc__)
        i += 1
    names = names or ["fragments", "bigframe", "pings", "tiny", "pipelined", "ctrlmix"]
    rows = []
    for name in names:
        r = flood(binary, flags) if name == "flood" else run(binary, flags, name, conns)
        for k, v in r.items():
            print("%s=%s" % (k, v))
        print()
        rows.append(r)
    print("%-10s %s" % ("scenario", "server peak RSS growth per hostile connection"))
    for r in rows:
        if r["scenario"] == "flood":
            print("%-10s victim ping round trip p50 %.2f ms, p99 %.2f ms, max %.2f ms"
                  % ("flood", r["victim_rtt_p50_ms"], r["victim_rtt_p99_ms"],
                     r["victim_rtt_max_ms"]))
            continue
        print("%-10s %8.1f KB  (%d conns, %d KB sent each, server %s)"
              % (r["scenario"], r["peak_per_conn_bytes"] / 1024, r["conns"],
                 r["attack_bytes_per_conn"] // 1024, "alive" if r["server_alive"] else "DEAD"))


if __name__ == "__main__":
    main(sys.argv[1:])
