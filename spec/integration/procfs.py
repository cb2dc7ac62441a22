"""What the integration tests read about the server from /proc (Linux): its memory (VmRSS,
VmHWM) and how much a connection's socket holds that the server has not read yet. Used to await
"the server has read everything we sent" as an event, and to check memory bounds."""

import os
import selectors
import time

from helpers import WAIT


def status_kb(pid, key):
    """A VmRSS/VmHWM-style line of /proc/PID/status, in kB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise AssertionError("no %s in /proc/%d/status" % (key, pid))


def unread_by_server(srv, sock):
    """Bytes sent on sock that sit in the server's receive queue, not yet read by it (None when
    the server's end of the connection is gone)."""
    cport = sock.getsockname()[1]
    want_local = "0100007F:%04X" % srv.port
    want_remote = "0100007F:%04X" % cport
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            if fields[1] == want_local and fields[2] == want_remote:
                return int(fields[4].split(":")[1], 16)
    return None


def await_server_read_all(srv, sock, timeout=WAIT):
    """Awaits the server reading everything sock sent (its receive queue for it empty)."""
    deadline = time.monotonic() + timeout
    while True:
        left = unread_by_server(srv, sock)
        if left == 0 or left is None:
            return left
        if time.monotonic() > deadline:
            raise AssertionError("the server left %d bytes unread for %.1fs" % (left, timeout))
        time.sleep(0.01)


def asan_env():
    """ASAN_OPTIONS for a server whose memory is measured: no quarantine (freed blocks kept
    aside would look like growth). Harmless for a build without ASan."""
    opts = os.environ.get("ASAN_OPTIONS", "")
    return {"ASAN_OPTIONS": (opts + ":" if opts else "") +
            "quarantine_size_mb=0:thread_local_quarantine_size_kb=0"}


def send_all_nonblocking(sock, data, timeout=60):
    """Sends data even if the server stops reading or ends the connection; returns the number
    of bytes that went out."""
    sock.setblocking(False)
    view, sent = memoryview(data), 0
    deadline = time.monotonic() + timeout
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_WRITE)
    try:
        while sent < len(data) and time.monotonic() < deadline:
            if not sel.select(0.5):
                continue
            try:
                sent += sock.send(view[sent:sent + 262144])
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                break
    finally:
        sel.close()
        sock.setblocking(True)
        sock.settimeout(WAIT)
    return sent
