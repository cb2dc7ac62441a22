#!/usr/bin/python3
"""Figures for the protections of issue 11 (printed as key=value lines, then a summary).

    /usr/bin/python3 bench/protect.py --bin build/confab [--scenario NAME]...

  rate     one connection floods 1-byte messages for FLOOD_SECONDS while another measures its
           ping round trips: with no limit, --rate-msgs 200:400 and --rate-bytes 64K; the
           victim's p50/p99/max, the messages the flooder got through per second and the
           server's CPU per second of flood
  drain    DRAIN_CONNS connections, SIGTERM with --drain-time DRAIN_SECONDS: when the closes
           1012 arrive (first, last, most in any 100 ms), and when the process exits
  caps     CAPS_TRIES connections from one address over --max-connections-per-ip 10: refusals
           per second, server CPU per refusal, log lines written
"""

import os
import re
import select
import signal
import socket
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True
from hostile import Server, connect, cpu_ticks, frame  # noqa: E402

FLOOD_SECONDS = 5
DRAIN_CONNS = 500
DRAIN_SECONDS = 5
CAPS_TRIES = 3000
TICK = os.sysconf("SC_CLK_TCK")


def ms(x):
    return round(x * 1000, 2)


def rate(binary, label, flags):
    srv = Server(binary, flags + ["--send-queue", "256M"])
    try:
        victim, att = connect(srv.port), connect(srv.port)
        stop = threading.Event()
        echoed = [0]

        def drain():
            while not stop.is_set():
                if not select.select([att], [], [], 0.2)[0]:
                    continue
                try:
                    got = att.recv(1 << 20)
                except OSError:
                    return
                if not got:
                    return
                echoed[0] += len(got) // 3  # an echo of a 1-byte text is 3 bytes

        def send():
            chunk = frame(1, b"x") * 10000
            att.settimeout(0.2)
            while not stop.is_set():
                try:
                    att.sendall(chunk)
                except socket.timeout:
                    pass  # pushed back: the server is not reading
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

        threads = [threading.Thread(target=f, daemon=True) for f in (drain, send, probe)]
        cpu0 = cpu_ticks(srv.proc.pid)
        for t in threads:
            t.start()
        time.sleep(FLOOD_SECONDS)  # the measuring window
        cpu = (cpu_ticks(srv.proc.pid) - cpu0) / TICK
        stop.set()
        for t in threads:
            t.join(5)
        rtts.sort()
        return {"scenario": "rate", "limit": label, "victim_pings": len(rtts),
                "victim_rtt_p50_ms": ms(statistics.median(rtts)),
                "victim_rtt_p99_ms": ms(rtts[int(len(rtts) * 0.99)]),
                "victim_rtt_max_ms": ms(rtts[-1]),
                "flooder_msgs_per_s": round(echoed[0] / FLOOD_SECONDS),
                "server_cpu_per_s": round(cpu / FLOOD_SECONDS, 3),
                "server_alive": int(srv.proc.poll() is None)}
    finally:
        srv.stop()


def drain(binary):
    srv = Server(binary, ["--drain-time", str(DRAIN_SECONDS)])
    try:
        conns = [connect(srv.port) for _ in range(DRAIN_CONNS)]
        for s in conns:  # every one open and served
            s.sendall(frame(1, b"o"))
        for s in conns:
            s.settimeout(10)
            assert s.recv(3) == b"\x81\x01o"
        arrived = {}
        t0 = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        left = set(conns)
        while left and time.monotonic() - t0 < DRAIN_SECONDS + 10:
            ready, _, _ = select.select(list(left), [], [], 1)
            now = time.monotonic() - t0
            for s in ready:
                data = s.recv(64)
                if data[:1] == b"\x88":
                    arrived[s] = now
                    code = int.from_bytes(data[2:4], "big")
                    s.sendall(frame(8, code.to_bytes(2, "big")))
                s.close()  # done, as a client is once the close is answered
                left.discard(s)
        srv.proc.wait(DRAIN_SECONDS + 10)
        exit_s = time.monotonic() - t0
        times = sorted(arrived.values())
        buckets = {}
        for t in times:
            buckets[int(t * 10)] = buckets.get(int(t * 10), 0) + 1
        return {"scenario": "drain", "conns": DRAIN_CONNS, "drain_time_s": DRAIN_SECONDS,
                "closes_1012": len(times), "first_close_s": round(times[0], 3),
                "last_close_s": round(times[-1], 3),
                "most_closes_in_100ms": max(buckets.values()),
                "even_share_per_100ms": round(DRAIN_CONNS / DRAIN_SECONDS / 10, 1),
                "exit_s": round(exit_s, 3), "exit_status": srv.proc.returncode}
    finally:
        srv.stop()


def caps(binary):
    srv = Server(binary, ["--max-connections-per-ip", "10"])
    try:
        req = ("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        held = []
        for _ in range(10):
            s = socket.socket()
            s.bind(("127.0.0.9", 0))
            s.connect(("127.0.0.1", srv.port))
            held.append(s)
        cpu0 = cpu_ticks(srv.proc.pid)
        t0 = time.monotonic()
        refused = 0
        for _ in range(CAPS_TRIES):
            s = socket.socket()
            s.bind(("127.0.0.9", 0))
            s.connect(("127.0.0.1", srv.port))
            s.sendall(req.encode())
            if b" 503 " in s.recv(4096):
                refused += 1
            s.close()
        wall = time.monotonic() - t0
        cpu = (cpu_ticks(srv.proc.pid) - cpu0) / TICK
        for s in held:
            s.close()
        srv.stop()
        srv.stopped = True
        lines = len(re.findall(r"refused", srv.log))
        return {"scenario": "caps", "tries": CAPS_TRIES, "refused_503": refused,
                "refusals_per_s": round(refused / wall), "server_cpu_us_per_refusal":
                round(cpu / max(1, refused) * 1e6, 1), "log_lines": lines}
    finally:
        if not getattr(srv, "stopped", False):
            srv.stop()


def main(argv):
    binary, names = "build/confab", []
    i = 0
    while i < len(argv):
        if argv[i] == "--bin":
            binary = argv[i + 1]
        elif argv[i] == "--scenario":
            names.append(argv[i + 1])
        else:
            raise SystemExit(__doc__)
        i += 2
    names = names or ["rate", "drain", "caps"]
    rows = []
    for name in names:
        if name == "rate":
            rs = [rate(binary, "none", []), rate(binary, "--rate-msgs 200:400",
                                                 ["--rate-msgs", "200:400"]),
                  rate(binary, "--rate-bytes 64K", ["--rate-bytes", "64K"])]
        elif name == "drain":
            rs = [drain(binary)]
        elif name == "caps":
            rs = [caps(binary)]
        else:
            raise SystemExit(__doc__)
        for r in rs:
            for k, v in r.items():
                print("%s=%s" % (k, v))
            print()
        rows += rs
    for r in rows:
        if r["scenario"] == "rate":
            print("rate  flood, limit %-20s victim ping p50 %.2f ms, p99 %.2f ms, max %.2f ms; "
                  "flooder %d msg/s; server CPU %.2f s/s"
                  % (r["limit"], r["victim_rtt_p50_ms"], r["victim_rtt_p99_ms"],
                     r["victim_rtt_max_ms"], r["flooder_msgs_per_s"], r["server_cpu_per_s"]))
        elif r["scenario"] == "drain":
            print("drain %d conns over %d s: 1012 to %d, first at %.2f s, last at %.2f s, at most "
                  "%d in 100 ms (even share %.1f); exit at %.2f s (status %d)"
                  % (r["conns"], r["drain_time_s"], r["closes_1012"], r["first_close_s"],
                     r["last_close_s"], r["most_closes_in_100ms"], r["even_share_per_100ms"],
                     r["exit_s"], r["exit_status"]))
        else:
            print("caps  %d tries over --max-connections-per-ip 10: %d refused with 503, %d/s, "
                  "%.1f us server CPU each, %d log lines"
                  % (r["tries"], r["refused_503"], r["refusals_per_s"],
                     r["server_cpu_us_per_refusal"], r["log_lines"]))


if __name__ == "__main__":
    main(sys.argv[1:])
