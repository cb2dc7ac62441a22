"""The testing kit's fake against the real core: spec/support/api_probes.lua (a confab script with
one table of API probes) runs in the real server here and in the fake (spec/support/
api_probes_fake.lua, under lua5.4); each probe's outcome must be the same on both sides and the
same as recorded in spec/support/api_probes.expected.json. With CONFAB_PROBES_RECORD=1 the test
writes the core's outcomes to that file instead (after a deliberate change of the API)."""

import json
import os
import re
import subprocess
import unittest

from helpers import REPO, WAIT, ConfabTest

PROBES = "spec/support/api_probes.lua"
EXPECTED = os.path.join(REPO, "spec", "support", "api_probes.expected.json")
# The limits api_probes.lua's CONFIG gives the fake.
FLAGS = ["--history", 3, "--script-memory", 16 * 1024 * 1024, "--attr-memory", 1024 * 1024,
         # A bound, not a figure: the probes do thousands of calls in one hook, under ASan too.
         "--hook-timeout", 10000]


def fake_outcomes():
    """The fake's outcomes: [{name, got}] (lua5.4 with busted's module path)."""
    out = subprocess.run(["lua5.4", "-e", "package.path='spec/support/?.lua;'..package.path",
                          "spec/support/api_probes_fake.lua"], cwd=REPO, capture_output=True,
                         text=True, timeout=60)
    if out.returncode != 0:
        raise AssertionError("the fake's probe run failed:\n" + out.stderr)
    return json.loads(out.stdout)["probes"]


def write_expected(probes):
    """One [name, outcome] pair a line, so that a change reads as a diff of the probes it moves."""
    lines = [json.dumps([p["name"], p["got"]]) for p in probes]
    with open(EXPECTED, "w") as f:
        f.write("[\n" + ",\n".join(lines) + "\n]\n")


class ApiProbes(ConfabTest):
    maxDiff = None

    def core_outcomes(self):
        srv = self.start(*FLAGS, script=PROBES)
        early = self.client(srv, "/ws?probe-connect")  # its connect hook runs probes, then closes it
        early.recv_raw()  # "early", sent from the connect hook (then the close)
        victim = self.client(srv)
        victim.send("victim")
        self.assertEqual("victim", victim.recv_raw())
        gone = self.client(srv)
        gone.send("gone")
        self.assertEqual("gone", gone.recv_raw())
        gone.ws.close(status=1000, reason=b"probe gone")  # as the fake's disconnect(gone, ...)
        # The script tells the victim once the core has reported the disconnect.
        self.assertRegex(victim.recv_raw(), r"^gone \d+$")
        me = self.client(srv)
        me.send("run")
        while True:  # the probes also send frames to me; the outcome is the last one
            text = me.recv_raw(WAIT * 4)
            if isinstance(text, str) and text.startswith('{"probes":'):
                break
        # The one hook error is the timer probe's, on purpose (awaited: stderr is read by a
        # thread of its own, which may not have the line yet).
        srv.wait_log(r"hook timer failed: .*probe: deliberate")
        self.assertEqual(["probe: deliberate"],
                         re.findall(r"hook \w+ failed: .*?(probe: deliberate|[^:|]+$)", srv.log,
                                    re.M), srv.log_tail())
        return json.loads(text)["probes"]

    def test_core_and_fake_agree_with_the_record(self):
        core = self.core_outcomes()
        if os.environ.get("CONFAB_PROBES_RECORD"):
            write_expected(core)
        fake = fake_outcomes()
        with open(EXPECTED) as f:
            expected = json.load(f)
        self.assertGreater(len(core), 100)
        self.assertEqual([p["name"] for p in core], [p["name"] for p in fake],
                         "the same probes on both sides")
        record = dict(expected)
        problems = []
        for c, k in zip(core, fake):
            name = c["name"]
            if name not in record:
                problems.append("%s: not recorded (core: %s)" % (name, c["got"]))
            elif c["got"] != record[name]:
                problems.append("%s: the core gives %s, recorded %s" % (name, c["got"], record[name]))
            if k["got"] != c["got"]:
                problems.append("%s: the fake gives %s, the core %s" % (name, k["got"], c["got"]))
        gone = set(record) - {p["name"] for p in core}
        problems += ["%s: recorded but no longer probed" % n for n in sorted(gone)]
        self.assertEqual([], problems, "\n".join(problems))


if __name__ == "__main__":
    unittest.main()
