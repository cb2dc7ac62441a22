#!/usr/bin/python3
"""Writes the seed corpora spec/fuzz/corpus/NAME/ from the inputs of the unit and integration
tests (handshake_test.c, test_http.py, ws_test.c, utf8_test.c, webroot_test.c, test_chat.py).
Run it again after changing it; the files are named by content, so reruns change nothing else.
Usage: spec/fuzz/seeds.py"""
import hashlib
import json
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def write(name, data):
    d = os.path.join(HERE, "corpus", name)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()[:16]), "wb") as f:
        f.write(data)


# ---- http: request heads (handshake_test.c, test_http.py, test_handshake.py) -------------
UP = "Upgrade: websocket\r\nConnection: Upgrade\r\n"
KV = "Sec-WebSocket-Key: " + KEY + "\r\nSec-WebSocket-Version: 13\r\n"
http = [
    "GET /ws HTTP/1.1\r\nHost: server.example.com\r\n" + UP + KV + "\r\n",
    "GET /ws HTTP/1.1\r\nHOST: h\r\nUPGRADE: WebSocket\r\nconnection: keep-alive, UPGRADE\r\n"
    "sec-websocket-key: " + KEY + "\r\nSEC-WEBSOCKET-VERSION: 13\r\n\r\n",
    "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: keep-alive ,  Upgrade \r\n"
    + KV + "\r\n",
    "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: keep-alive\r\n"
    "Connection: upgrade\r\n" + KV + "\r\n",
    "GET /ws HTTP/1.1\r\nHost: chat.test:8080\r\n" + UP + KV + "Origin: http://chat.test:8080\r\n\r\n",
    "GET /ws HTTP/1.1\r\nHost: chat.test\r\n" + UP + KV + "Origin: https://chat.test:443\r\n\r\n",
    "GET /ws HTTP/1.1\r\nHost: chat.test\r\n" + UP + KV + "Origin: http://evil.test\r\n\r\n",
    "GET /ws HTTP/1.1\r\nHost: chat.test\r\n" + UP + KV + "Origin: http://friend.test\r\n\r\n",
    "GET /ws HTTP/1.1\r\nHost: evil.example:8080\r\n" + UP + KV
    + "Origin: http://evil.example:8080\r\n\r\n",
    "GET /ws HTTP/1.1\r\nHost: x\r\n" + UP + KV + "Origin: http://localhost:8080\r\n\r\n",
    "GET /ws HTTP/1.1\r\nHost: x\r\n" + UP + KV + "Origin: https://[::1]:9\r\n\r\n",
    "GET /ws HTTP/1.1\r\nHost: x\r\n" + UP + KV + "Origin: http://192.0.2.10\r\n\r\n",
    "GET /ws HTTP/1.1\r\nHost: x\r\n" + UP + KV + "Origin: null\r\n\r\n",
    "POST /ws HTTP/1.1\r\nHost: h\r\n" + UP + KV + "Content-Length: 0\r\n\r\n",
    "GET /ws HTTP/1.0\r\nHost: h\r\n" + UP + KV + "\r\n",
    "GET /ws HTTP/1.1\r\n" + UP + KV + "\r\n",
    "GET /ws HTTP/1.1\r\nHost: h\r\nHost: h\r\n" + UP + KV + "\r\n",
    "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n" + KV + "\r\n",
    "GET /ws HTTP/1.1\r\nHost: h\r\n" + UP + "Sec-WebSocket-Key: " + KEY
    + "\r\nSec-WebSocket-Version: 8\r\n\r\n",
    "GET /ws HTTP/1.1\r\nHost: h\r\n" + UP + "Sec-WebSocket-Key: abc\r\n"
    "Sec-WebSocket-Version: 13\r\n\r\n",
    "GET /ws HTTP/1.1\r\nHost: h\r\n" + UP + KV + "Sec-WebSocket-Protocol: superchat, chat\r\n\r\n",
    "GET /ws HTTP/1.1\r\nHost: h\r\n" + UP + KV
    + "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n",
    "GET /ws HTTP/1.1\r\nHost: h\r\n" + UP + KV + "Sec-WebSocket-Extensions: x-webkit-deflate-frame, "
    "permessage-deflate; server_max_window_bits=8, permessage-deflate; server_max_window_bits=\"10\"\r\n"
    "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n\r\n",
    "GET /ws HTTP/1.1\r\nHost: h\r\n" + UP + KV + "Sec-WebSocket-Extensions: permessage-deflate; "
    "mystery=\"a,b\"; client_no_context_takeover; client_no_context_takeover, permessage-deflate;"
    " server_max_window_bits=010\r\n\r\n",
    "GET /ws HTTP/1.1\r\nHost: h\r\n" + UP + KV + "Sec-WebSocket-Protocol: v2.chat\r\n"
    "Sec-WebSocket-Protocol: x\r\n\r\n",
    "GET /ws?room=lobby&x=%41 HTTP/1.1\r\nHost: h\r\n" + UP + KV + "\r\n",
    "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    "HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    "GET /style.css HTTP/1.1\r\nHost: x\r\n\r\nGET /app.js HTTP/1.1\r\nHost: x\r\n\r\n"
    "GET /sub/page.html HTTP/1.1\r\nHost: x\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n",
    "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
    "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n",
    "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: x\r\n X-Folded: yes\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n",
    "GET / HTTP/2.0\r\nHost: x\r\n\r\n",
    "GET http://x/abs?q HTTP/1.1\r\nHost: x\r\n\r\n",
    "GET * HTTP/1.1\r\nHost: x\r\n\r\n",
    "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
    "GET / HTTP/1.1\nHost: x\n\n",
    "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + "a" * 300 + "\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: x\r\n" + "".join("X-%d: v\r\n" % i for i in range(70)) + "\r\n",
    "BREW / HTTP/1.1\r\nHost: x\r\n\r\n",
    "GET /%00 HTTP/1.1\r\nHost: x\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
]
for r in http:
    write("http", r)


# ---- ws: settings byte, then (length byte, chunk) pairs (ws_test.c, test_frames.py) --------
def frame(fin, opcode, payload, masked=True, rsv=0):
    key = b"\x37\xfa\x21\x3d"
    out = bytearray([(0x80 if fin else 0) | rsv << 4 | opcode])
    m = 0x80 if masked else 0
    n = len(payload)
    if n < 126:
        out.append(m | n)
    elif n <= 0xFFFF:
        out += bytes([m | 126]) + struct.pack(">H", n)
    else:
        out += bytes([m | 127]) + struct.pack(">Q", n)
    if masked:
        out += key
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return bytes(out) + payload


def chunks(stream, size):
    out = bytearray()
    for i in range(0, len(stream), size):
        part = stream[i:i + size]
        out += bytes([len(part)]) + part
    return bytes(out)


close = lambda code, reason=b"": struct.pack(">H", code) + reason
streams = [
    frame(1, 1, b"hello"),
    frame(0, 1, b"hel") + frame(0, 0, b"lo ") + frame(1, 9, b"p") + frame(1, 0, b"world"),
    frame(1, 1, b"ok\xc0\xaf"),
    frame(1, 2, b"x" * 1001),
    frame(0, 2, b"x" * 600) + frame(1, 0, b"x" * 600),
    frame(1, 1, b"hi", masked=False),
    frame(1, 3, b"hi"),
    frame(1, 0, b"hi"),
    frame(1, 8, close(1000, b"bye")),
    frame(0, 9, b"pp"),
    frame(1, 9, b"p" * 126),
    frame(1, 8, b"\x03"),
    frame(1, 8, close(1005)),
    frame(1, 8, close(1000, b"\xff\xfe")),
    frame(1, 8, close(1000, b"caf\xc3")),
    frame(1, 1, b"y" * 200) + frame(1, 8, close(13500, b"\xbe\xbf\xc0\xc1\xc2"))[:9],
    b"\x82\xff\x00\x00\x01\x00\x00\x00\x00\x00\x01\x02\x03\x04x",
    frame(1, 1, b"a", rsv=4),
    frame(1, 10, b"pong"),
    frame(1, 9, b"") * 5 + frame(1, 1, "héllo wörld €".encode()),
    frame(0, 1, "é".encode()[:1]) + frame(1, 0, "é".encode()[1:]),
    frame(0, 1, b"a") + frame(0, 1, b"b"),
    frame(1, 1, b"") + frame(1, 2, b""),
    frame(1, 1, b"y" * 200) + frame(1, 8, close(1001, b"going")),
    frame(1, 8, close(1000)) + frame(1, 1, b"after close"),
    frame(1, 1, "\U0001F600 \uFFFF".encode()),
    frame(1, 1, b"\xed\xa0\x80"),
    frame(1, 1, b"\xf4\x90\x80\x80"),
]
for i, s in enumerate(streams):
    settings = bytes([i % 4])
    write("ws", settings + chunks(s, 255))
    write("ws", settings + chunks(s, 1 + i % 5))


# permessage-deflate negotiated (settings bit 2): compressed messages (deflate_test.c,
# test_deflate.py)
def deflated(data):
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    return (z.compress(data) + z.flush(zlib.Z_SYNC_FLUSH))[:-4]


chat_z = deflated(b'{"type":"say","room":"lobby","text":"hello hello hello hello"}')
bomb = deflated(bytes(200000))
compressed = [
    frame(1, 1, chat_z, rsv=4),
    frame(0, 2, chat_z[:5], rsv=4) + frame(1, 9, b"p") + frame(1, 0, chat_z[5:]),
    frame(1, 2, bomb, rsv=4),
    frame(1, 1, b"\xff\xff\xff\xff\x00", rsv=4),
    frame(1, 1, deflated(b"ok \xc0\xaf"), rsv=4),
    frame(1, 9, b"p", rsv=4),
    frame(0, 1, chat_z[:5], rsv=4) + frame(1, 0, chat_z[5:], rsv=4),
    frame(1, 1, chat_z, rsv=4) + frame(1, 1, b"plain") + frame(1, 1, chat_z, rsv=4),
]
for i, s in enumerate(compressed):
    settings = bytes([4 | i % 4])
    write("ws", settings + chunks(s, 255))
    write("ws", settings + chunks(s, 1 + i % 5))


# ---- utf8: byte strings (utf8_test.c and the classic edge cases) --------------------------
utf8 = [b"", b"plain ascii", "héllo".encode(), "€".encode(), "\U0001F600".encode(),
        "\U0010FFFF".encode(), "\uFFFD".encode(), "\uD7FF".encode(), "\uE000".encode(),
        b"\xc0\xaf", b"\xc1\xbf", b"\xe0\x80\xaf", b"\xe0\x9f\xbf", b"\xed\xa0\x80", b"\xed\xbf\xbf",
        b"\xf0\x80\x80\xaf", b"\xf0\x8f\xbf\xbf", b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80",
        b"\xf8\x88\x80\x80\x80", b"\xfe", b"\xff", b"\x80", b"\xbf", b"\xc3", b"\xe2\x82",
        b"\xf0\x9f\x98", b"a\xc3\xa9b\xe2\x82\xacc\xf0\x9f\x98\x80d", b"\x00", b"\xc2\x80",
        b"\xdf\xbf", b"\xe0\xa0\x80", b"\xef\xbf\xbf", b"\xf0\x90\x80\x80", b"\xf4\x8f\xbf\xbf"]
for s in utf8:
    write("utf8", s)


# ---- webroot: request paths (webroot_test.c, test_http.py) --------------------------------
paths = ["/", "/index.html", "/app.js", "/sub/", "/sub", "/%61pp.js", "/inside.js",
         "/missing.html", "/../secret.txt", "/sub/../../secret.txt", "/%2e%2e/secret.txt",
         "/%2E%2E%2Fsecret.txt", "/..%2fsecret.txt", "/leak.txt", "/app.js%00.html", "/bad%zz",
         "/bad%2", "/evil/index.html", "/evil/", "/sub/up/app.js", "/sub/deeper/upup/secret.txt",
         "/loop", "/passwd", "/slash/etc/passwd", "/sub/a%20b.txt", "/sub/%2541.txt",
         "/sub/deeper/x.json", "/.hidden", "/empty/", "//app.js", "/./app.js", "/sub/./index.html",
         "/a\\..\\secret.txt", "/%5c..%5csecret.txt", "/style.css", "/sub/deeper/",
         "/" + "a/" * 200, "/%ff%fe", "/sub/up/../../secret.txt", "/pipe", "/sub/fifo"]
for p in paths:
    write("webroot", p)


# ---- chat: step lines (see fuzz_chat.c), from test_chat.py's conversations ----------------
def say(room, text):
    return json.dumps({"type": "say", "room": room, "text": text})


chat = [
    "hAalice\nsAlobby\thello everyone\nh1bob\ns1lobby\thi alice\nd0bob\tpsst\nx0\ns1lobby\tgone?",
    '0{"type":"hello","name":"alice"}\n1{"type":"hello","name":"ALICE"}\n1{"type":"hello","name":"Alice_2"}',
    "h0ann\nj0kitchen\nh1bo\nj1kitchen\ns0kitchen\t/who\ns0kitchen\t/me waves\nl1kitchen\nw0kitchen",
    "h0ann\nn0anna\nh1anna\nn1ANN\nn1bob\nn0bob\nr0",
    "h0ann\n" + "".join("j0room%d\n" % i for i in range(34)) + "r0",
    "h0ann\n" + "".join("s0lobby\tflood %d\n" % i for i in range(15)),
    "h0ann\nt0lobby\nt0lobby\nh1bo\nt1lobby\ns1lobby\tx",
    'h0ann\t{"epoch":42,"rooms":{"lobby":0,"kitchen":3}}\nh1bo\t{"epoch":1,"rooms":{"lobby":1}}',
    'h0ann\t{"epoch":42,"rooms":[]}\nh1bo\tnull\nh2cy\t{"epoch":"x","rooms":{"bad room":1}}',
    "0{\"type\": \"say\", \"room\": \"lobby\"\n0[]\n0null\n0\"str\"\n0{}\n0" + '{"type":5}',
    "h0ann\n" + "\n".join("0" + say("lobby", t) for t in
                          ["x" * 2001, "", "ding\x07", "a\x00b", "\x1b[31mred", "a\rb", "é" * 2000]),
    "h0ann\nj0has space\nj0" + "r" * 33 + "\ns0elsewhere\tx\nl0elsewhere\nn0no spaces\nd0ghost\tx",
    "h0ann\ns0lobby\t/join other\ns0other\t/leave\ns0lobby\t/nick anne\ns0lobby\t/msg anne hi\n"
    "s0lobby\t/rooms\ns0lobby\t/help\ns0lobby\t/dance",
    "h0ann\nb0\x00\x01\x02\nf0\x81\x85\x01\x02\x03\x04abcde\nf1\x88\x80\x01\x02\x03\x04",
    "h0ann\n0{\"type\":\"say\",\"room\":\"lobby\",\"text\":\"\xff\xfe\"}\nh1bo",
    "h0ann\nh1bo\nj0a\nj1a\nR\ns0a\tafter reload\nw1a\nx1\nR\ns0a\tstill here",
    "h0Ωμέγα\nh1ΩΜΈΓΑ\nh2ａｌｉｃｅ\nh3alice\nd0ωμέγα\thi",
    "h0ann\nh1bo\nh2cy\nh3di\ns0lobby\tall four\nx0\nx1\nx2\nx3\nh0eve\ns0lobby\tanyone?",
    "h0ann\nd0ann\tself\nd0\thi\n0{\"type\":\"dm\",\"to\":5,\"text\":\"x\"}",
    "h0ann\n0{\"type\":\"hello\",\"name\":\"again\"}\n0{\"type\":\"typing\",\"room\":5}",
    # Keys (test_chat.py): the same user on a new connection replaces the old one; keyed DMs.
    "k0ann\tkey-ann-0123456789ab\nk1bob\tkey-bob-0123456789ab\nd0bob\thi bob\nd1ann\thi ann\n"
    "k2ann\tkey-ann-0123456789ab\ns2lobby\tback\nx2\nk3ANN\tkey-ann-0123456789ab",
    "k0ann\tshort\nk0ann\tbad key with spaces!!\nk0ann\tkey-ann-0123456789ab\nk1ann\tkey-other-0123456789\n"
    "h2ann\nx0\nh1ann",
    '0{"type":"hello","name":"ann","key":"key-ann-0123456789ab","resume":{"epoch":42,'
    '"rooms":{"lobby":1},"dms":{"1:2":3,"x":1}}}\n1{"type":"hello","name":"cy","key":5}',
    # F4 (FUZZ_FINDINGS.md): back within the leave grace, or on a new connection, under another
    # case of the name or another name: one "renamed", nobody listed twice.
    "k0ann\tkey-ann-0123456789ab\nh2bob\nx0\nk1ANN\tkey-ann-0123456789ab",
    "k0ann\tkey-ann-0123456789ab\nh2bob\nk1ANN\tkey-ann-0123456789ab",
    "k0ann\tkey-ann-0123456789ab\nj0dev\nh2bob\nj2dev\nx0\n"
    '0{"type":"hello","name":"cy","key":"key-ann-0123456789ab","resume":{"epoch":42,"rooms":{"lobby":0}}}',
]
for c in chat:
    write("chat", c)
