#!/usr/bin/python3
"""How long a killed node's members take to leave everywhere (issue 8): a private redis-server,
two confab nodes running chat.lua with --node-heartbeat H, a client on each; the second node is
SIGKILLed and the first node's client times the "left" of the second's user. RUNS times for each
heartbeat given. Prints one line per heartbeat: min, median, max in seconds.

    bench/node_death.py BUILD_DIR [HEARTBEAT ...]      (default heartbeats: 0.2 1)"""

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import websocket

RUNS = int(os.environ.get("BENCH_DEATH_RUNS", "5"))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_node(binary, redis_port, heartbeat, log):
    p = subprocess.Popen([binary, "--addr", "127.0.0.1:0", "--redis",
                          "redis://127.0.0.1:%d" % redis_port, "--node-heartbeat", str(heartbeat)],
                         stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with open(log.name) as f:
            text = f.read()
        for line in text.splitlines():
            if "listening on 127.0.0.1:" in line and "subscribed" in text:
                return p, int(line.rsplit(":", 1)[1])
        time.sleep(0.02)
    p.kill()
    raise RuntimeError("node did not start: " + text[-500:])


def hello(port, name):
    ws = websocket.create_connection("ws://127.0.0.1:%d/ws" % port, timeout=10)
    ws.send(json.dumps({"type": "hello", "name": name}))
    while json.loads(ws.recv()).get("type") != "welcome":
        pass
    return ws


def one_run(binary, heartbeat, tmp):
    rport = free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(rport), "--bind", "127.0.0.1",
                              "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    nodes = []
    try:
        for _ in range(50):
            try:
                socket.create_connection(("127.0.0.1", rport), 0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        logs = [open(os.path.join(tmp, "n%d.log" % i), "w") for i in range(2)]
        nodes = [start_node(binary, rport, heartbeat, logs[i]) for i in range(2)]
        watcher = hello(nodes[0][1], "watcher")
        hello(nodes[1][1], "victim")
        while True:  # the watcher has seen the victim join
            m = json.loads(watcher.recv())
            if m.get("type") == "joined" and m.get("name") == "victim":
                break
        killed = time.monotonic()
        nodes[1][0].send_signal(signal.SIGKILL)
        while True:
            m = json.loads(watcher.recv())
            if m.get("type") == "left" and m.get("name") == "victim":
                return time.monotonic() - killed
    finally:
        for p, _ in nodes:
            p.kill()
            p.wait()
        redis.kill()
        redis.wait()


def main():
    binary = os.path.abspath(os.path.join(sys.argv[1] if len(sys.argv) > 1 else "build", "confab"))
    beats = [float(h) for h in sys.argv[2:]] or [0.2, 1.0]
    with tempfile.TemporaryDirectory() as tmp:
        for h in beats:
            times = [one_run(binary, h, tmp) for _ in range(RUNS)]
            print("node death, --node-heartbeat %g: left everywhere after %.2f / %.2f / %.2f s "
                  "(min / median / max of %d SIGKILLs; bound 4 heartbeats = %.1f s)"
                  % (h, min(times), statistics.median(times), max(times), RUNS, 4 * h))


if __name__ == "__main__":
    main()
