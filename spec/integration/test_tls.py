"""TLS (--tls-cert, --tls-key, --tls-addr): wss:// and HTTPS against certificates made at test time
with the openssl command in a temporary directory; Python's ssl module, websocket-client and
websockets as clients. What must hold: chat and files over TLS, both listeners at once, a
stalled or garbled handshake costs one connection and one log line, SIGHUP reloads the
certificate (a bad one keeps the old), only TLS 1.2 and 1.3, and the protections of plain
connections (send queue, paused reads, request limits, close handshake, shutdown) hold."""

import asyncio
import hashlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time

import websockets

from helpers import (ECHO_LUA, OP_CLOSE, OP_TEXT, RELAY_LUA, WAIT, WEB, ConfabTest, Conn, RawWS,
                     close_payload, encode_frame, proc_status, run_confab, upgrade_request,
                     ws_accept)

TLS_LINE = r"listening on 127\.0\.0\.1:(\d+) \(TLS\)"


def openssl(*args):
    r = subprocess.run(["openssl"] + list(args), capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise AssertionError("openssl %s failed: %s" % (" ".join(args), r.stderr))


def self_signed(dirname, name, cn):
    """A self-signed P-256 certificate for 127.0.0.1 and localhost: (cert path, key path)."""
    cert, key = os.path.join(dirname, name + ".crt"), os.path.join(dirname, name + ".key")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=" + cn,
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost")
    return cert, key


def signed_by(dirname, name, cn, ca_cert, ca_key, ca=False):
    """A P-256 certificate signed by ca_cert: an intermediate CA (ca=True) or a leaf for
    127.0.0.1."""
    cert, key = os.path.join(dirname, name + ".crt"), os.path.join(dirname, name + ".key")
    csr, ext = cert + ".csr", cert + ".ext"
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", key, "-out", csr, "-subj", "/CN=" + cn)
    with open(ext, "w") as f:
        f.write("subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n")
        if ca:
            f.write("basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n")
        else:
            f.write("basicConstraints=critical,CA:FALSE\nsubjectAltName=IP:127.0.0.1\n"
                    "extendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key, "-set_serial",
            str(int.from_bytes(os.urandom(8), "big")), "-days", "2", "-extfile", ext,
            "-out", cert)
    return cert, key


def der(cert_path):
    with open(cert_path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def client_hello(ctx):
    """A ClientHello, made by Python's own TLS code on memory buffers."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = outgoing.read()
    if len(hello) < 100:
        raise AssertionError("no ClientHello: %r" % hello)
    return hello


def client_context(cafile, **versions):
    ctx = ssl.create_default_context(cafile=cafile)
    for k, v in versions.items():
        setattr(ctx, k, v)
    return ctx


class TLSTest(ConfabTest):
    """Every test gets certificates A and B (self-signed, different keys) in its temp dir."""

    def setUp(self):
        super().setUp()
        self.cert, self.key = self_signed(self.tmp, "a", "confab-test-a")
        self.cert_b, self.key_b = self_signed(self.tmp, "b", "confab-test-b")
        self.ctx = client_context(self.cert)

    def start_tls(self, *flags, both=False, script=None, cert=None, key=None, **kw):
        """A server with TLS on --addr, or (both) plain on --addr and TLS on --tls-addr. Sets
        srv.tls_port (and srv.port, the plain port when both)."""
        tls = ["--tls-cert", cert or self.cert, "--tls-key", key or self.key]
        if both:
            tls += ["--tls-addr", "127.0.0.1:0"]
        if script is not None:
            kw["script"] = script
        srv = self.start(*(tls + list(flags)), wait_listening=False, **kw)
        srv.tls_port = int(srv.wait_log(TLS_LINE).group(1))
        srv.port = srv.wait_listening() if both else srv.tls_port
        return srv

    def wss(self, port, ctx=None, **kw):
        return self.client(port, scheme="wss", sslopt={"context": ctx or self.ctx}, **kw)

    def tls_conn(self, port, ctx=None, **kw):
        c = Conn(port, tls=ctx or self.ctx, **kw)
        self.addCleanup(c.close)
        return c

    def tls_raw(self, port, ctx=None, **kw):
        c = RawWS(port, tls=ctx or self.ctx, **kw)
        self.addCleanup(c.close)
        return c

    def peer_cert(self, port, ctx=None):
        """The DER certificate a new connection is served."""
        c = self.tls_conn(port, ctx)
        try:
            return c.sock.getpeercert(binary_form=True)
        finally:
            c.close()

    def handshake_fails(self, port, ctx):
        """Asserts a TLS handshake with ctx fails; returns the client's error."""
        s = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        try:
            with self.assertRaises((ssl.SSLError, ConnectionError)) as cm:
                ctx.wrap_socket(s, server_hostname="127.0.0.1")
            return cm.exception
        finally:
            s.close()


class Chat(TLSTest):
    def test_wss_chat_between_two_members(self):
        srv = self.start_tls()
        ann, bob = self.wss(srv.port), self.wss(srv.port)
        ann.hello("ann")
        bob.hello("bob")
        ann.say("lobby", "over TLS")
        self.assertEqual(bob.recv_json("message", room="lobby")["text"], "over TLS")
        self.assertEqual(ann.ws.sock.version(), "TLSv1.3")
        self.assertEqual(ann.ws.sock.selected_alpn_protocol(), None)  # websocket-client offers none

    def test_websockets_client_echoes_large_and_many_messages(self):
        """Messages of several records each way, and a burst of small ones that arrive in few
        records (input OpenSSL holds must be read without a new readiness event)."""
        srv = self.start_tls(script=self.script(ECHO_LUA))
        big = os.urandom(60000).hex()[:60000]
        small = ["m%04d" % i for i in range(500)]

        async def run():
            async with websockets.connect("wss://127.0.0.1:%d/ws" % srv.port, ssl=self.ctx,
                                          max_size=2 ** 20) as ws:
                await ws.send(big)
                self.assertEqual(await asyncio.wait_for(ws.recv(), WAIT), big)
                for m in small:
                    await ws.send(m)
                got = [await asyncio.wait_for(ws.recv(), WAIT) for _ in small]
                self.assertEqual(got, small)

        asyncio.run(run())

    def test_certificate_chain_is_served(self):
        """--tls-cert holds the leaf and an intermediate; the client trusts only the root."""
        root, root_key = self_signed(self.tmp, "root", "confab-test-root")
        inter, inter_key = signed_by(self.tmp, "inter", "confab-test-inter", root, root_key,
                                     ca=True)
        leaf, leaf_key = signed_by(self.tmp, "leaf", "127.0.0.1", inter, inter_key)
        chain = self.write("chain.pem", open(leaf).read() + open(inter).read())
        srv = self.start_tls(cert=chain, key=leaf_key)
        c = self.wss(srv.port, client_context(root))
        c.hello("ann")
        # Without the intermediate in the file the same client cannot verify it.
        self._stop(srv)
        srv2 = self.start_tls(cert=leaf, key=leaf_key)
        err = self.handshake_fails(srv2.port, client_context(root))
        self.assertIn("CERTIFICATE_VERIFY_FAILED", str(err))


class Https(TLSTest):
    def test_static_files_over_https_with_keep_alive(self):
        srv = self.start_tls()
        c = self.tls_conn(srv.port)
        for path in ("/app.js", "/index.html"):
            c.send("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % path)
            r = c.read_response()
            with open(os.path.join(WEB, path[1:]), "rb") as f:
                self.assertEqual((r.status, r.body), (200, f.read()))
        self.assertEqual(c.sock.selected_alpn_protocol(), None)

    def test_alpn_http11_is_chosen_and_a_client_without_it_refused(self):
        srv = self.start_tls()
        ctx = client_context(self.cert)
        ctx.set_alpn_protocols(["h2", "http/1.1"])
        c = self.tls_conn(srv.port, ctx)
        self.assertEqual(c.sock.selected_alpn_protocol(), "http/1.1")
        only_h2 = client_context(self.cert)
        only_h2.set_alpn_protocols(["h2"])
        err = self.handshake_fails(srv.port, only_h2)
        self.assertIn("no application protocol", str(err))
        srv.wait_log(r"TLS handshake with 127\.0\.0\.1:\d+ failed: no application protocol")

    def test_a_large_file_to_a_slow_reader_arrives_whole(self):
        """A 4 MB file through a 4 KB receive buffer: the server's writes stop for the socket
        again and again (the record sealed but not sent is written again); every byte arrives
        in order."""
        web = os.path.join(self.tmp, "web")
        os.makedirs(web)
        data = os.urandom(4 << 20)
        with open(os.path.join(web, "big.bin"), "wb") as f:
            f.write(data)
        srv = self.start_tls(web=web)
        c = self.tls_conn(srv.port, rcvbuf=4096)
        c.send("GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        r = c.read_response(timeout=60)
        self.assertEqual(r.status, 200)
        self.assertEqual(hashlib.sha256(r.body).hexdigest(), hashlib.sha256(data).hexdigest())

    def test_pipelined_requests_past_the_send_queue_are_all_answered(self):
        """300 requests in one go, --send-queue at its minimum: reading pauses and resumes
        many times while the requests wait decrypted inside OpenSSL, not in the socket."""
        web = os.path.join(self.tmp, "web")
        os.makedirs(web)
        for i in range(3):
            with open(os.path.join(web, "f%d.txt" % i), "w") as f:
                f.write(("file %d\n" % i) * 200)
        srv = self.start_tls("--send-queue", "1024", web=web)
        c = self.tls_conn(srv.port)
        c.send("".join("GET /f%d.txt HTTP/1.1\r\nHost: x\r\n\r\n" % (i % 3) for i in range(300)))
        for i in range(300):
            r = c.read_response()
            self.assertEqual((r.status, r.body), (200, (b"file %d\n" % (i % 3)) * 200))

    def test_request_limits_hold(self):
        srv = self.start_tls("--max-request", "1024")
        c = self.tls_conn(srv.port)
        c.send("GET / HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n" % ("a" * 2000))
        self.assertEqual(c.read_response().status, 431)
        self.assertEqual(c.read_to_eof(), b"")


class Listeners(TLSTest):
    def test_plain_and_tls_listeners_at_once_share_rooms(self):
        srv = self.start_tls("--handshake-timeout", "1", both=True)
        self.assertNotEqual(srv.port, srv.tls_port)
        plain, secure = self.client(srv.port), self.wss(srv.tls_port)
        plain.hello("ann")
        secure.hello("bob")
        plain.say("lobby", "from ws")
        self.assertEqual(secure.recv_json("message")["text"], "from ws")
        secure.say("lobby", "from wss")
        self.assertEqual(plain.recv_json("message", text="from wss")["from"], "bob")
        # Each port speaks only its own: plain HTTP to the TLS port is a failed handshake; a
        # ClientHello to the plain port is a request head that never ends (cut off after 1 s).
        c = self.conn(srv.tls_port)
        c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        c.read_to_eof()
        srv.wait_log(r"TLS handshake with 127\.0\.0\.1:\d+ failed: http request")
        self.handshake_fails(srv.port, self.ctx)

    def test_origin_of_the_https_page_is_its_own(self):
        srv = self.start_tls(both=True)
        c = self.tls_raw(srv.tls_port,
                         headers=[("Origin", "https://127.0.0.1:%d" % srv.tls_port)])
        self.assertEqual(c.response.status, 101)

    def test_settings_from_a_config_file(self):
        conf = self.write("confab.conf", "tls-cert %s\ntls-key %s\ntls-addr 127.0.0.1:0\n"
                          % (self.cert, self.key))
        srv = self.start("--config", conf, wait_listening=False)
        tls_port = int(srv.wait_log(TLS_LINE).group(1))
        srv.wait_listening()
        self.assertNotEqual(srv.port, tls_port)
        self.wss(tls_port).hello("ann")
        bad = self.write("bad.conf", "tls-cert %s\n" % self.cert)
        r = run_confab("--addr", "127.0.0.1:0", "--config", bad)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertRegex(r.stderr, "(?m)^confab: --tls-cert and --tls-key go together")

    def test_flag_errors(self):
        cases = [
            (["--tls-cert", self.cert], "--tls-cert and --tls-key go together"),
            (["--tls-addr", "127.0.0.1:0"], "--tls-addr needs --tls-cert"),
            (["--tls-cert", self.cert + ".none", "--tls-key", self.key],
             "cannot read the TLS certificate '.*none': No such file"),
            (["--tls-cert", self.cert, "--tls-key", self.key_b],
             "the TLS key '.*b.key' does not belong to the certificate"),
            (["--tls-cert", self.write("junk.pem", "junk\n"), "--tls-key", self.key],
             "cannot use the TLS certificate '.*junk.pem': no start line"),
        ]
        for flags, message in cases:
            with self.subTest(flags=flags):
                r = run_confab("--addr", "127.0.0.1:0", *flags)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertRegex(r.stderr, "(?m)^confab: " + message)


class Handshakes(TLSTest):
    def test_a_stalled_handshake_is_cut_off_by_the_handshake_timeout(self):
        srv = self.start_tls("--handshake-timeout", "1")
        # One sends part of a ClientHello, the other nothing at all.
        stalled, silent = self.conn(srv.port), self.conn(srv.port)
        stalled.send(client_hello(self.ctx)[:60])
        other = self.wss(srv.port)
        other.hello("ann")
        started = time.monotonic()
        self.assertEqual(stalled.read_to_eof(timeout=WAIT), b"")
        self.assertEqual(silent.read_to_eof(timeout=WAIT), b"")
        self.assertLess(time.monotonic() - started, WAIT)
        srv.wait_log(r"TLS handshake not completed within 1\.0 s, closed")
        # The one who completed its handshake is not cut off (its time runs from its upgrade
        # to the silence limit), and chats.
        other.say("lobby", "still here")
        self.assertEqual(other.recv_json("message")["text"], "still here")

    def test_garbage_instead_of_a_client_hello_is_one_log_line(self):
        srv = self.start_tls()
        ann, bob = self.wss(srv.port), self.wss(srv.port)
        ann.hello("ann")
        bob.hello("bob")
        bad = self.conn(srv.port)
        bad.send(b"\x00garbage, not TLS\r\n" * 4)
        self.assertEqual(bad.read_to_eof(), b"")
        line = r"TLS handshake with 127\.0\.0\.1:\d+ failed: wrong version number"
        srv.wait_log(line)
        ann.say("lobby", "after the garbage")
        self.assertEqual(bob.recv_json("message")["text"], "after the garbage")
        self.assertEqual(len([l for l in srv.log.splitlines() if "TLS handshake" in l]), 1,
                         srv.log)

    def test_tls_1_1_is_refused_and_1_2_and_1_3_accepted(self):
        srv = self.start_tls()
        old = client_context(self.cert, minimum_version=ssl.TLSVersion.TLSv1,
                             maximum_version=ssl.TLSVersion.TLSv1_1)
        old.set_ciphers("DEFAULT:@SECLEVEL=0")
        self.handshake_fails(srv.port, old)
        srv.wait_log(r"TLS handshake with 127\.0\.0\.1:\d+ failed: unsupported protocol")
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            with self.subTest(version=version):
                ctx = client_context(self.cert, minimum_version=version, maximum_version=version)
                c = self.wss(srv.port, ctx)
                c.hello("v%d" % version.value)
                self.assertEqual(c.ws.sock.version(), version.name.replace("v1_", "v1."))

    def test_a_peer_that_leaves_before_its_hello_is_not_logged_at_info(self):
        srv = self.start_tls()
        for _ in range(3):
            self.conn(srv.port).close()
        c = self.wss(srv.port)
        c.hello("ann")
        self.assertNotRegex(srv.log, r"TLS handshake")


class Reload(TLSTest):
    def test_sighup_serves_the_new_certificate_to_new_connections(self):
        cert = self.write("live.crt", open(self.cert).read())
        key = self.write("live.key", open(self.key).read())
        srv = self.start_tls(cert=cert, key=key)
        trust_both = client_context(self.cert)
        trust_both.load_verify_locations(self.cert_b)
        old = self.wss(srv.port, trust_both)
        old.hello("ann")
        self.assertEqual(old.ws.sock.getpeercert(binary_form=True), der(self.cert))

        shutil.copy(self.cert_b, cert)
        shutil.copy(self.key_b, key)
        srv.signal(signal.SIGHUP)
        srv.wait_log(r"TLS certificate and key reloaded \(SIGHUP\)")
        self.assertEqual(self.peer_cert(srv.port, trust_both), der(self.cert_b))
        new = self.wss(srv.port, trust_both)
        new.hello("bob")
        # The connection made before goes on with its session.
        old.say("lobby", "still on the old certificate")
        self.assertEqual(new.recv_json("message", text="still on the old certificate")["from"],
                         "ann")
        new.say("lobby", "and the new one")
        self.assertEqual(old.recv_json("message", text="and the new one")["from"], "bob")

    def test_a_bad_new_certificate_keeps_the_old(self):
        cert = self.write("live.crt", open(self.cert).read())
        key = self.write("live.key", open(self.key).read())
        srv = self.start_tls(cert=cert, key=key)
        old = self.wss(srv.port)
        old.hello("ann")
        cases = [
            ("truncated certificate", lambda: self.write("live.crt", open(self.cert).read()[:200]),
             r"cannot use the TLS certificate '.*live\.crt'"),
            ("key of another certificate", lambda: shutil.copy(self.key_b, key),
             r"the TLS key '.*live\.key' does not belong to the certificate"),
            ("missing key", lambda: os.unlink(key),
             r"cannot read the TLS key '.*live\.key': No such file"),
        ]
        for n, (what, damage, reason) in enumerate(cases, 1):
            with self.subTest(what):
                # restore, then damage one thing
                self.write("live.crt", open(self.cert).read())
                self.write("live.key", open(self.key).read())
                damage()
                srv.signal(signal.SIGHUP)
                srv.wait_log(r"(?s)(TLS reload failed.*?){%d}" % n)
                failures = [l for l in srv.log.splitlines() if "TLS reload failed" in l]
                self.assertEqual(len(failures), n)
                self.assertRegex(failures[-1],
                                 r"TLS reload failed, the previous certificate stays: " + reason)
                self.assertEqual(self.peer_cert(srv.port), der(self.cert))
        old.say("lobby", "unaffected")
        self.assertEqual(old.recv_json("message")["text"], "unaffected")


class Protections(TLSTest):
    def test_a_tls_peer_that_does_not_read_is_closed_as_a_slow_consumer(self):
        srv = self.start_tls("--send-queue", "65536", script=self.script(RELAY_LUA))
        slow = self.tls_raw(srv.port, rcvbuf=4096)
        slow.send_text("join")
        self.assertEqual(slow.recv_text(), "joined")
        fast = self.wss(srv.port)
        fast.send("join")
        self.assertEqual(fast.recv_raw(), "joined")
        chunk = "x" * 8000
        for i in range(400):
            fast.send(chunk)
            fast.recv_raw()
            if srv.find_log(r"slow consumer closed"):
                break
        srv.wait_log(r"conn \d+: slow consumer closed \(\d+ bytes queued, limit 65536\)")
        # What the slow one gets, once it reads, is whole frames then the close 1008.
        f = slow.wait_close(timeout=WAIT)
        self.assertIsNotNone(f)
        self.assertEqual(f.payload[:2], (1008).to_bytes(2, "big"))
        fast.send("after")
        self.assertEqual(fast.recv_raw(), "after")

    def test_handshakes_in_progress_share_the_request_memory(self):
        """Each TLS handshake in progress is charged 48 KB of --request-memory (what OpenSSL
        holds for it): at 100K, two may be in progress; a third is closed at accept."""
        srv = self.start_tls("--request-memory", "100K", "--handshake-timeout", "30")
        held = [self.conn(srv.port) for _ in range(2)]
        for c in held:
            c.send(client_hello(self.ctx)[:60])
        third = self.conn(srv.port)
        self.assertEqual(third.read_to_eof(), b"")
        # Exactly the two handshakes are charged: none of them holds a request buffer yet.
        srv.wait_log(r"TLS connection refused: handshakes and requests in progress are at "
                     r"--request-memory \(98304 bytes\)")
        for c in held:
            c.close()
        srv.wait_log(r"(?s)(TLS handshake with \S+ failed: connection closed by the peer.*){2}")
        # Their charge is returned: handshakes go through again, one after the other.
        for name in ("ann", "bob", "cyd"):
            self.wss(srv.port).hello(name)

    def test_close_handshake_then_close_notify_and_eof(self):
        srv = self.start_tls(script=self.script(ECHO_LUA))
        c = self.tls_raw(srv.port)
        c.send_text("hi")
        self.assertEqual(c.recv_text(), "hi")
        c.send_close(1000, b"bye")
        f = c.recv_frame()
        self.assertEqual((f.opcode, f.payload[:2]), (OP_CLOSE, (1000).to_bytes(2, "big")))
        # The server's close_notify then its FIN: a clean TLS end, not a truncation.
        self.assertEqual(c.sock.recv(100), b"")

    def test_shutdown_sends_1001_over_tls_and_exits_0(self):
        srv = self.start_tls(both=True)
        secure = self.wss(srv.tls_port)
        secure.hello("ann")
        plain = self.client(srv.port)
        plain.hello("bob")
        srv.signal(signal.SIGINT)  # SIGTERM drains with 1012 (test_drain)
        self.assertEqual(secure.wait_close()[0], 1001)
        self.assertEqual(plain.wait_close()[0], 1001)
        self.assertEqual(srv.wait_exit(), 0)
