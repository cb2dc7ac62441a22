"""--log-format text|json: every line has a timestamp, and the connection's id where one applies;
names, reasons and paths sent by a hostile client cannot forge a line (or a JSON field) in either
format."""

import json
import re

from helpers import WAIT, ConfabTest, handshake

# Logs what clients send as their "name" (text or binary) and refuses paths other than /ws with
# the decoded path as the reason; answers each message with the connection's id.
HOSTILE_LUA = """
local confab = require "confab"
confab.on("connect", function(ev)
  local p = confab.urldecode(ev.path) or ev.path
  if p ~= "/ws" then return false, "bad path " .. p end
end)
confab.on("message", function(ev)
  confab.log("info", "name %s", ev.data)
  confab.send(ev.id, tostring(ev.id))
end)
confab.on("disconnect", function(ev) confab.log("info", "bye") end)
"""

FORGED_TS = "2026-12-01T00:00:00.000Z"
NAMES = [
    "bob\n" + FORGED_TS + " error forged",
    "x\r" + FORGED_TS + " error forged\x1b[31mred\x07",
    '"}\n{"ts":"' + FORGED_TS + '","level":"error","msg":"forged"}',
    'q","level":"error","conn":999,"msg":"forged',
    "back\\slash \u2028" + FORGED_TS + " error forged \u202egnp.exe",
]
BINARY_NAME = b"\xff\xfe\x01\n" + FORGED_TS.encode() + b" error forged \xc0\xaf"
PATH = "/ws/%0a" + FORGED_TS.replace(":", "%3a") + "%20error%20forged%0d%22%7d"

TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (debug|info |warn |error|note ) "
                       r"(conn=(\d+) |fd=\d+ )?(.*)$")
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


class HostileText(ConfabTest):
    def provoke(self, fmt):
        srv = self.start("--log-format", fmt, script=self.script(HOSTILE_LUA))
        c = self.client(srv)
        for n in NAMES:
            c.send(n)
        c.ws.send_binary(BINARY_NAME)
        ids = {c.recv_raw() for _ in range(len(NAMES) + 1)}
        self.assertEqual(len(ids), 1)
        r, conn, _ = handshake(srv.port, path=PATH)
        conn.close()
        self.assertEqual(r.status, 403)
        srv.wait_log(r"bad path")
        srv.wait_log(r"(name [\s\S]*){%d}" % (len(NAMES) + 1))
        c.close()
        srv.wait_log(r"bye")
        srv.stop()
        lines = srv.log.split("\n")
        # Every line written is one of the server's; "forged" only ever inside a message.
        forged = [ln for ln in lines if "forged" in ln]
        self.assertEqual(len(forged), len(NAMES) + 2, "\n".join(lines))
        return srv, lines, int(ids.pop())

    def test_text_lines_cannot_be_forged(self):
        srv, lines, cid = self.provoke("text")
        names = 0
        for ln in lines:
            m = TEXT_LINE.match(ln)
            self.assertIsNotNone(m, "not a log line: %r" % ln)
            msg = m.group(4)
            self.assertNotRegex(msg, r"[\x00-\x1f\x7f\x80-\x9f\u2028\u2029\u202a-\u202e]", ln)
            if msg.startswith("script: name "):
                names += 1
                self.assertEqual(m.group(3), str(cid), ln)  # the connection's id
            if "bad path" in msg:
                self.assertIn("bad path /ws/\\n" + FORGED_TS + " error forged\\r\"}", msg)
        self.assertEqual(names, len(NAMES) + 1)
        self.assertTrue(any(("script: name bob\\n" + FORGED_TS + " error forged") in ln for ln in lines))
        self.assertTrue(any("\\xe2\\x80\\xa8" in ln and "\\xe2\\x80\\xae" in ln for ln in lines))
        self.assertTrue(any("name \\xff\\xfe\\x01\\n" in ln for ln in lines))

    def test_json_lines_parse_and_cannot_be_forged(self):
        srv, lines, cid = self.provoke("json")
        objs = []
        for ln in lines:
            obj = json.loads(ln)  # every line is one JSON object
            self.assertIsInstance(obj, dict, ln)
            self.assertRegex(obj["ts"], TS)
            self.assertIn(obj["level"], ("debug", "info", "warn", "error", "note"))
            self.assertIsInstance(obj["msg"], str)
            self.assertLessEqual(set(obj), {"ts", "level", "conn", "fd", "msg", "cut"}, ln)
            self.assertNotEqual(obj.get("conn"), 999, ln)
            objs.append(obj)
        names = [o for o in objs if o["msg"].startswith("script: name ")]
        self.assertEqual(len(names), len(NAMES) + 1)
        for o in names:
            self.assertEqual(o.get("conn"), cid, o)  # the connection's id, as a number
            self.assertEqual(o["level"], "info")
        # The message reads as the text format's does (escaped once, then JSON-encoded).
        self.assertEqual(names[0]["msg"], "script: name bob\\n" + FORGED_TS + " error forged")
        self.assertEqual(names[2]["msg"],
                         'script: name "}\\n{"ts":"' + FORGED_TS + '","level":"error","msg":"forged"}')
        self.assertEqual(names[5]["msg"], "script: name \\xff\\xfe\\x01\\n" + FORGED_TS +
                         " error forged \\xc0\\xaf")
        bye = [o for o in objs if o["msg"] == "script: bye"]
        self.assertEqual([o.get("conn") for o in bye], [cid])
        refused = [o for o in objs if "bad path" in o["msg"]]
        self.assertEqual(len(refused), 1)
        # The id its connect hook saw (it was refused, so no other line has it).
        self.assertGreater(refused[0]["conn"], cid)
        # Lines about no connection carry neither.
        listening = [o for o in objs if o["msg"].startswith("listening on")]
        self.assertEqual(len(listening), 1)
        self.assertNotIn("conn", listening[0])
        self.assertNotIn("fd", listening[0])

    def test_bad_log_format_is_refused(self):
        srv = self.start("--log-format", "xml", wait_listening=False, check_exit=False)
        self.assertEqual(srv.wait_exit(WAIT), 2)
        self.assertIn("--log-format", srv.log)

    def test_json_startup_errors_are_json_lines(self):
        srv = self.start("--log-format", "json", script=self.tmp + "/absent.lua",
                         wait_listening=False, check_exit=False)
        self.assertEqual(srv.wait_exit(WAIT), 2)
        lines = [json.loads(ln) for ln in srv.log.split("\n")]
        self.assertEqual([o["level"] for o in lines], ["error"])
        self.assertIn("absent.lua", lines[0]["msg"])
        self.assertRegex(lines[0]["ts"], TS)
