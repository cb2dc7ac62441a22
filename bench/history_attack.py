#!/usr/bin/python3
"""The issue-7 history attack, measured: CLIENTS clients of scripts/chat.lua post long texts at
chat.lua's flood limit (5 messages a second each), each filling a room (98 messages of 2000
four-byte characters), leaving it and joining a fresh one, for SECONDS; then all leave. Prints the
server's VmRSS before, at the end of the attack, and after everyone left (after the RSS is
unchanged over three reads 200 ms apart) and, with HOLD=SEC in the environment, SEC later (to see
--history-age release it).

    /usr/bin/python3 bench/history_attack.py BUILD/confab [SECONDS [CLIENTS]] [-- confab flags]
"""

import asyncio
import json
import os
import re
import subprocess
import sys
import time

import websockets

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def settled_rss(pid):
    last, same = None, 0
    while same < 3:
        time.sleep(0.2)
        now = rss_kb(pid)
        same = same + 1 if now == last else 0
        last = now
    return last


async def drain(ws):
    try:
        async for _ in ws:
            pass
    except websockets.ConnectionClosed:
        pass


async def attacker(port, n, until):
    text = "\U0001F600" * 2000
    async with websockets.connect("ws://127.0.0.1:%d/ws" % port, max_size=None) as ws:
        reader = asyncio.ensure_future(drain(ws))
        await ws.send(json.dumps({"type": "hello", "name": "a%d" % n}))
        k = 0
        while time.monotonic() < until:
            room = "r%d-%d" % (n, k)
            for i in range(100):
                if time.monotonic() >= until:
                    break
                if i == 0:
                    msg = {"type": "join", "room": room}
                elif i == 99:
                    msg = {"type": "leave", "room": room}
                else:
                    msg = {"type": "say", "room": room, "text": text}
                await ws.send(json.dumps(msg, ensure_ascii=False))
                await asyncio.sleep(0.2)
            k += 1
        await ws.close()
        reader.cancel()


async def attack(port, seconds, clients):
    until = time.monotonic() + seconds
    await asyncio.gather(*(attacker(port, n, until) for n in range(clients)))


def main(argv):
    flags = []
    if "--" in argv:
        flags = argv[argv.index("--") + 1:]
        argv = argv[:argv.index("--")]
    binary = argv[1]
    seconds = float(argv[2]) if len(argv) > 2 else 60
    clients = int(argv[3]) if len(argv) > 3 else 100
    hold = float(os.environ.get("HOLD", "0"))
    proc = subprocess.Popen([binary, "--addr", "127.0.0.1:0", "--script",
                             os.path.join(REPO, "scripts", "chat.lua"), "--web",
                             os.path.join(REPO, "web"), "--log-level", "error"] + flags,
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    try:
        port = None
        for raw in proc.stderr:
            m = re.search(rb"listening on 127\.0\.0\.1:(\d+)", raw)
            if m:
                port = int(m.group(1))
                break
        before = settled_rss(proc.pid)
        asyncio.run(attack(port, seconds, clients))
        during = rss_kb(proc.pid)
        after = settled_rss(proc.pid)
        print("history attack: %d clients, %.0f s, flags %s: RSS before %.1f MB, at the end %.1f MB,"
              " after all left %.1f MB" % (clients, seconds, " ".join(flags) or "(none)",
                                           before / 1024, during / 1024, after / 1024), end="")
        if hold:
            time.sleep(hold)
            print(", %.0f s later %.1f MB" % (hold, settled_rss(proc.pid) / 1024), end="")
        print()
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main(sys.argv)
