#!/usr/bin/python3
"""How far past --hook-timeout a hostile hook keeps every other client waiting. The real server
runs a script whose message hook runs the text it receives as a Lua chunk; for each hog below,
client A sends it and client B, right behind, sends "ping". Printed per hog: how long B waited for
its answer (the freeze every client sees), that minus the limit (the overshoot), and the server's
CPU time over the same span (utime+stime, 10 ms ticks: what the freeze costs without the wait for
a CPU on a loaded machine), the worst of RUNS runs.

    /usr/bin/python3 bench/overshoot.py BUILD/confab [RUNS [WORD...]] [-- confab flags]

With WORDs, only the hogs whose name contains one of them run.

Defaults: --hook-timeout 50 --script-memory 64M (the server's own defaults)."""

import os
import re
import subprocess
import sys
import tempfile
import time

import websocket  # Debian python3-websocket

LIMIT_MS = 50
TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


def cpu_ms(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * TICK_MS

EVAL_LUA = """local confab = require "confab"
confab.on("message", function(ev)
  if ev.data == "ping" then confab.send(ev.id, "pong") return end
  local fn = load(ev.data, "hog", "t", _ENV)
  if fn then
    local ok, err = pcall(fn)       -- the time limit's abort goes through: nothing is sent
    confab.send(ev.id, "ended: " .. tostring(err))
  end
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
    # Not interruptible (one C call each): as long as the data the memory cap lets it build.
    ("cjson.decode of 6 MB (one C call)", "local s = '[' .. ('\"ab\",'):rep(1000000) .. '1]' "
                                          "while true do require('cjson').decode(s) end"),
    ("table.concat of 500k strings (one C call)", "local s = ('x'):rep(30) local t = {} "
                                                "for i = 1, 500000 do t[i] = s end "
                                                "while true do table.concat(t) end"),
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
    words = rest[1:]
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
    print("%-40s %10s %10s %10s" % ("hog", "freeze ms", "over ms", "CPU ms"))
    try:
        for name, code in HOGS:
            if words and not any(w in name for w in words):
                continue
            worst = worst_cpu = 0.0
            notes = set()
            for _ in range(runs):
                a = websocket.create_connection(url, timeout=120)
                b = websocket.create_connection(url, timeout=120)
                t0, c0 = time.monotonic(), cpu_ms(proc.pid)
                a.send(code)
                b.send("ping")
                assert b.recv() == "pong"
                worst = max(worst, (time.monotonic() - t0) * 1000)
                worst_cpu = max(worst_cpu, cpu_ms(proc.pid) - c0)
                a.settimeout(0.2)
                try:
                    notes.add(a.recv()[:100])  # the hog ended otherwise than by the limit
                except websocket.WebSocketTimeoutException:
                    pass
                a.close()
                b.close()
            print("%-40s %10.0f %10.0f %10.0f%s" % (name, worst, worst - LIMIT_MS, worst_cpu,
                                             "  " + "; ".join(sorted(notes)) if notes else ""))
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main(sys.argv)
