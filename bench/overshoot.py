#!/usr/bin/python3
"""How far past --hook-timeout a hostile hook keeps every other client waiting. The real server
runs a script whose message hook runs the text it receives as a Lua chunk; for each hog below,
client A sends it and client B, right behind, sends "ping". Printed per hog: how long B waited for
its answer (the freeze every client sees), and that minus the limit (the overshoot), the worst
of RUNS runs.

    /usr/bin/python3 bench/overshoot.py BUILD/confab [RUNS] [-- confab flags]

Defaults: --hook-timeout 50 --script-memory 64M (the server's own defaults)."""

import os
import re
import subprocess
import sys
import tempfile
import time

import websocket  # Debian python3-websocket

LIMIT_MS = 50

EVAL_LUA = """local confab = require "confab"
confab.on("message", function(ev)
  if ev.data == "ping" then confab.send(ev.id, "pong") return end
  local fn = load(ev.data, "hog", "t", _ENV)
  if fn then pcall(fn) end
end)
"""

HOGS = [
    ("VM loop", "while true do end"),
    ("xpcall(loop, loop)", "local f = function() while true do end end xpcall(f, f)"),
    ("string.rep 16 MB loop", "local rep = string.rep while true do rep('x', 16000000) end"),
    ("string.rep 16 MB in a coroutine", "coroutine.wrap(function() local rep = string.rep "
                                  "while true do rep('x', 16000000) end end)()"),
    ("load 1.2 MB chunk loop", "local s = ('x = 1 '):rep(200000) while true do load(s) end"),
    ("table.sort 200k strings", "local t = {} for i = 1, 200000 do t[i] = tostring(i * 7919 % 200000) end "
                                "while true do table.sort(t) end"),
    ("string.find '.-.-b' on 2 KB", "local s = ('a'):rep(2048) while true do s:find('.-.-b') end"),
    ("namefirst.lua's match on 65 KB", "local s = 'a' .. (' '):rep(65000) .. 'b' "
                                        "while true do s:match('^%s*(.-)%s*$') end"),
    ("gsub '(.-)x' on 64 KB", "local s = ('a'):rep(65536) while true do s:gsub('(.-)x', '') end"),
]


def main(argv):
    global LIMIT_MS
    binary = argv[1]
    rest = argv[2:]
    flags = []
    if "--" in rest:
        i = rest.index("--")
        rest, flags = rest[:i], rest[i + 1:]
    runs = int(rest[0]) if rest else 3
    if "--hook-timeout" in flags:
        LIMIT_MS = int(flags[flags.index("--hook-timeout") + 1])
    else:
        flags += ["--hook-timeout", str(LIMIT_MS)]
    tmp = tempfile.mkdtemp(prefix="confab-overshoot-")
    script = os.path.join(tmp, "eval.lua")
    with open(script, "w") as f:
        f.write(EVAL_LUA)
    web = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "web")
    proc = subprocess.Popen([binary, "--addr", "127.0.0.1:0", "--script", script, "--web", web]
                            + flags, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    port = None
    while port is None:
        line = proc.stderr.readline().decode()
        if not line:
            sys.exit("the server did not start")
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        if m:
            port = int(m.group(1))
    # The server logs every aborted hook: keep reading so it never blocks on stderr.
    import threading
    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
    url = "ws://127.0.0.1:%d/ws" % port
    print("hook limit %d ms; freeze = B's wait for an answer behind A's hog (worst of %d)"
          % (LIMIT_MS, runs))
    print("%-40s %10s %10s" % ("hog", "freeze ms", "over ms"))
    try:
        for name, code in HOGS:
            worst = 0.0
            for _ in range(runs):
                a = websocket.create_connection(url, timeout=120)
                b = websocket.create_connection(url, timeout=120)
                t0 = time.monotonic()
                a.send(code)
                b.send("ping")
                assert b.recv() == "pong"
                worst = max(worst, (time.monotonic() - t0) * 1000)
                a.close()
                b.close()
            print("%-40s %10.0f %10.0f" % (name, worst, worst - LIMIT_MS))
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main(sys.argv)
