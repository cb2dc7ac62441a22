"""Static files over HTTP/1.1: GET/HEAD, errors, path traversal, keep-alive, limits, slow loris."""

import os
import select
import time
from unittest import mock

import procfs

from helpers import WAIT, WEB, ConfabTest, get, http, proc_status

SECRET = "TOP-SECRET-9f2c1e"


class StaticFiles(ConfabTest):
    def setUp(self):
        super().setUp()
        # tmp/web is served; tmp/secret.txt and tmp/outside/ must never be.
        self.web = os.path.join(self.tmp, "web")
        self.index = "<!doctype html><title>t</title><p>temp index %s</p>\n" % os.getpid()
        self.write("web/index.html", self.index)
        self.write("web/style.css", "body { color: red }\n")
        self.write("web/sub/page.html", "<p>sub page</p>\n")
        self.write("web/hello world.txt", "spaced\n")
        self.write("secret.txt", SECRET + " parent\n")
        self.write("outside/secret.txt", SECRET + " outside\n")
        os.symlink(os.path.join(self.tmp, "outside", "secret.txt"),
                   os.path.join(self.web, "link.txt"))
        os.symlink(os.path.join(self.tmp, "outside"), os.path.join(self.web, "linkdir"))
        os.symlink("../secret.txt", os.path.join(self.web, "rel.txt"))

    def serve(self, *flags):
        return self.start(*flags, web=self.web)

    def test_get_root_serves_the_repository_index(self):
        srv = self.start()  # the real web/ directory
        with open(os.path.join(WEB, "index.html"), "rb") as f:
            want = f.read()
        r = get(srv.port, "/")
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.headers.get("content-type", "").startswith("text/html"), r)
        self.assertEqual(r.body, want)

    def test_get_file_with_its_type(self):
        srv = self.serve()
        r = get(srv.port, "/")
        self.assertEqual((r.status, r.body.decode()), (200, self.index))
        r = get(srv.port, "/style.css")
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.headers.get("content-type", "").startswith("text/css"), r)
        self.assertEqual(r.body, b"body { color: red }\n")
        r = get(srv.port, "/sub/page.html")
        self.assertEqual((r.status, r.body), (200, b"<p>sub page</p>\n"))

    def test_query_string_and_percent_encoding(self):
        srv = self.serve()
        r = get(srv.port, "/index.html?v=3")
        self.assertEqual((r.status, r.body.decode()), (200, self.index))
        r = get(srv.port, "/hello%20world.txt")
        self.assertEqual((r.status, r.body), (200, b"spaced\n"))

    def test_head_has_headers_and_no_body(self):
        srv = self.serve()
        c = self.conn(srv)
        c.send("HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        r = c.read_response(head=True)
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.headers.get("content-type", "").startswith("text/html"), r)
        self.assertEqual(r.headers.get("content-length"), str(len(self.index.encode())))
        self.assertEqual(c.read_to_eof(), b"", "HEAD must not send a body")

    def test_missing_file_is_404(self):
        srv = self.serve()
        r = get(srv.port, "/nope.html")
        self.assertEqual(r.status, 404, r)
        r = get(srv.port, "/sub/nope/deeper.txt")
        self.assertEqual(r.status, 404, r)

    def test_other_methods_are_405(self):
        srv = self.serve()
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            req = ("%s /index.html HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                   "Connection: close\r\n\r\nhi" % method)
            r = http(srv.port, req)
            self.assertEqual(r.status, 405, "%s: %r" % (method, r))
            self.assertNotIn(b"temp index", r.body)

    def test_traversal_and_symlinks_outside_are_refused(self):
        srv = self.serve()
        paths = ["/../secret.txt", "/sub/../../secret.txt", "/%2e%2e/secret.txt",
                 "/%2E%2E/secret.txt", "/..%2fsecret.txt", "/sub/..%2f..%2fsecret.txt",
                 "/%2e%2e%2fsecret.txt", "/sub/%2e%2e/%2e%2e/secret.txt",
                 "/sub%2f..%2f..%2fsecret.txt", "/link.txt", "/linkdir/secret.txt",
                 "/rel.txt", "/%2e%2e/outside/secret.txt"]
        for path in paths:
            r = get(srv.port, path)
            self.assertNotIn(SECRET.encode(), r.body, path)
            self.assertIn(r.status, (403, 404), "%s: %r" % (path, r))
        # The server still serves what is inside.
        self.assertEqual(get(srv.port, "/style.css").status, 200)

    def test_keep_alive_serves_two_requests_on_one_socket(self):
        srv = self.serve()
        c = self.conn(srv)
        c.send("GET /style.css HTTP/1.1\r\nHost: x\r\n\r\n")
        r1 = c.read_response()
        c.send("GET /sub/page.html HTTP/1.1\r\nHost: x\r\n\r\n")
        r2 = c.read_response()
        self.assertEqual((r1.status, r1.body), (200, b"body { color: red }\n"))
        self.assertEqual((r2.status, r2.body), (200, b"<p>sub page</p>\n"))

    def test_oversize_request_head_is_431(self):
        srv = self.serve()
        c = self.conn(srv)
        try:
            c.send("GET / HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n" % ("a" * 20000))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before reading all of it
        r = c.read_response()
        self.assertEqual(r.status, 431, r)

    def test_oversize_body_is_413(self):
        srv = self.serve("--max-body", "1024")
        r = http(srv.port, "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n")
        self.assertEqual(r.status, 413, r)

    def test_incomplete_head_is_closed_after_handshake_timeout(self):
        srv = self.serve("--handshake-timeout", "1")
        c = self.conn(srv)
        t0 = time.monotonic()
        c.send("GET / HTTP/1.1\r\nHost: x\r\n")
        rest = c.wait_eof(timeout=5)
        elapsed = time.monotonic() - t0
        self.assertGreater(elapsed, 0.6, "closed before the timeout")
        self.assertLess(elapsed, 4.0)
        self.assertNotIn(b"temp index", rest)

    def test_a_client_that_sends_nothing_is_closed_by_the_handshake_timeout(self):
        # The listener has TCP_DEFER_ACCEPT (1 s): the kernel hands such a connection over after
        # one SYN-ACK retransmission, and the timeout runs from then. It is closed, silently,
        # never before the timeout.
        srv = self.start("--handshake-timeout", "1", "--log-level", "debug")
        c = self.conn(srv)
        t0 = time.monotonic()
        rest = c.wait_eof(timeout=WAIT + 2)
        elapsed = time.monotonic() - t0
        self.assertEqual(rest, b"")
        self.assertGreater(elapsed, 1.0, "closed before the timeout")
        self.assertLess(elapsed, WAIT + 2)
        srv.wait_log(r"no request in progress after 1\.0 s, closed")

    def test_slow_loris_dribbling_bytes_is_still_cut_off(self):
        # A byte every 0.2 s keeps the socket busy, but the head never completes: the
        # deadline counts from accept, not from the last byte.
        srv = self.serve("--handshake-timeout", "1")
        c = self.conn(srv)
        head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
        t0 = time.monotonic()
        closed = False
        for i in range(len(head)):  # bounded: at most ~20 s
            try:
                c.send(head[i:i + 1])
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            readable, _, _ = select.select([c.sock], [], [], 0.2)
            if readable:
                c.read_to_eof(timeout=2)
                closed = True
                break
        elapsed = time.monotonic() - t0
        self.assertTrue(closed, "a dribbling client was never cut off")
        self.assertLess(elapsed, 4.0)



class Pipelining(ConfabTest):
    """Responses count against --send-queue: a client that pipelines requests and reads nothing
    costs the server a bounded amount of memory, and still gets every response once it reads."""

    def test_pipelined_requests_to_a_non_reader_are_bounded_then_all_answered(self):
        with mock.patch.dict(os.environ, procfs.asan_env()):  # measured: no ASan quarantine
            srv = self.start("--send-queue", "256K", "--handshake-timeout", "60")
        size = os.path.getsize(os.path.join(WEB, "app.js"))
        n = 3000  # ~90 MB of responses; the requests (75 KB) fit in the socket buffers
        c = self.conn(srv)
        base = proc_status(srv.pid, "VmRSS")
        c.send(b"GET /app.js HTTP/1.1\r\n\r\n" * n)
        # The server has taken what it will take once a request on a fresh socket is answered:
        # it handles its sockets in turn, so the pipelined ones had their chance first.
        for _ in range(3):
            self.assertEqual(get(srv.port, "/favicon.svg").status, 200)
        held = proc_status(srv.pid, "VmRSS") - base
        got = 0
        while got < n:  # bounded: each read_response fails after WAIT without data
            r = c.read_response()
            self.assertEqual((r.status, len(r.body)), (200, size), r)
            got += 1
        peak = proc_status(srv.pid, "VmHWM") - base
        self.assertLess(held, 16 * 1024, "server held %d kB for a non-reader" % held)
        self.assertLess(peak, 16 * 1024, "server peaked %d kB above its start" % peak)

    def test_time_to_send_requests_is_bounded_from_accept(self):
        # Serving a request does not renew the deadline: a client that keeps asking is still
        # closed once --handshake-timeout has passed since it connected.
        srv = self.start("--handshake-timeout", "1", "--log-level", "debug")
        c = self.conn(srv)
        t0 = time.monotonic()
        closed = False
        while time.monotonic() - t0 < 8:  # bounded; the server should close after ~1 s
            try:
                c.send("GET /favicon.svg HTTP/1.1\r\n\r\n")
                r = c.read_response()
            except (AssertionError, BrokenPipeError, ConnectionResetError):
                closed = True
                break
            self.assertEqual(r.status, 200)
            select.select([], [], [], 0.05)  # a polite client, one request every 50 ms
        self.assertTrue(closed, "the connection was still served after 8 s")
        srv.wait_log(r"no more requests after|request not completed within|no request in progress")


class Framing(ConfabTest):
    """Request framing edges: transfer codings, Host, header-line shapes, HTTP/1.0 keep-alive,
    and files that are not regular files."""

    def test_transfer_codings_other_than_one_chunked_are_400(self):
        srv = self.start()
        for te in (["chunked, gzip"], ["xchunked"], ["gzip, chunked"], ["chunked", "chunked"]):
            head = "".join("Transfer-Encoding: %s\r\n" % v for v in te)
            r = http(srv.port, "GET / HTTP/1.1\r\nHost: x\r\n%s\r\n0\r\n\r\n" % head)
            self.assertEqual(r.status, 400, (te, r))
            self.assertIn(b"Transfer-Encoding", r.body, r)
            self.assertEqual(r.headers.get("connection"), "close", r)

    def test_two_host_headers_and_leading_whitespace_are_400(self):
        srv = self.start()
        r = http(srv.port, "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
        self.assertEqual(r.status, 400, r)
        self.assertIn(b"Host", r.body, r)
        r = http(srv.port, "GET / HTTP/1.1\r\n Host: a\r\n\r\n")
        self.assertEqual(r.status, 400, r)
        self.assertIn(b"whitespace", r.body, r)

    def test_http_1_0_keep_alive_is_answered_in_kind(self):
        srv = self.start()
        c = self.conn(srv)
        c.send("GET /favicon.svg HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        r = c.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers.get("connection", "").lower(), "keep-alive", r)
        c.send("GET /favicon.svg HTTP/1.0\r\n\r\n")  # the same socket serves the next one
        r = c.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(c.wait_eof(), b"")  # plain HTTP/1.0: closed after the response

    def test_fifo_under_web_is_404_and_does_not_block_the_server(self):
        web = os.path.join(self.tmp, "web")
        self.write("web/index.html", "<p>ok</p>\n")
        os.mkfifo(os.path.join(web, "pipe"))
        srv = self.start(web=web)
        r = get(srv.port, "/pipe")
        self.assertEqual(r.status, 404, r)
        r = get(srv.port, "/")
        self.assertEqual((r.status, r.body), (200, b"<p>ok</p>\n"))


class LargeFiles(ConfabTest):
    """A file body is read from disk as the peer drains it: a large file costs a connection one
    chunk, whatever its size, and any size is served."""

    def test_large_file_to_non_readers_is_bounded_and_arrives_whole(self):
        web = os.path.join(self.tmp, "web")
        os.makedirs(web)
        body = os.urandom(1 << 20) * 8  # 8 MB
        with open(os.path.join(web, "big.bin"), "wb") as f:
            f.write(body)
        with mock.patch.dict(os.environ, procfs.asan_env()):  # measured: no ASan quarantine
            srv = self.start("--send-queue", "256K", "--handshake-timeout", "60", web=web)
        base = proc_status(srv.pid, "VmRSS")
        readers = [self.conn(srv) for _ in range(10)]
        for c in readers:
            c.send("GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        for _ in range(3):  # the requests above were handled before this one is answered
            self.assertEqual(get(srv.port, "/big.bin", method="HEAD").status, 200)
        held = proc_status(srv.pid, "VmRSS") - base
        self.assertLess(held, 16 * 1024, "10 non-readers of an 8 MB file cost %d kB" % held)
        for c in readers[:1]:
            r = c.read_response()
            self.assertEqual((r.status, len(r.body)), (200, len(body)), r)
            self.assertTrue(r.body == body, "the body arrived changed")
        peak = proc_status(srv.pid, "VmHWM") - base
        self.assertLess(peak, 16 * 1024, "server peaked %d kB above its start" % peak)


class RequestMemory(ConfabTest):
    def test_half_sent_heads_share_one_budget(self):
        # 16K for every request buffer together, heads of up to 8K: two connections holding
        # 5000 bytes of an unfinished head each take it all; the third is told 503.
        srv = self.start("--request-memory", "16K", "--max-request", "8K")
        partial = "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + "a" * 5000
        holders = []
        for _ in range(2):
            c = self.conn(srv)
            c.send(partial)
            procfs.await_server_read_all(srv, c.sock)
            holders.append(c)
        late = self.conn(srv)
        late.send(partial)
        r = late.read_response()
        self.assertEqual(r.status, 503, r)
        self.assertIn(b"busy", r.body, r)
        holders[0].close()  # its buffer goes back to the budget
        srv.wait_log(r"conn \d+: request buffers are at --request-memory")
        for _ in range(3):  # bounded: the server notices the close within a loop pass or two
            if get(srv.port, "/").status == 200:
                break
        else:
            self.fail("no room after a holder left")
