#!/usr/bin/python3
"""Runs the integration suite against the real binary ($CONFAB_BIN, default build/confab).

    /usr/bin/python3 spec/integration/run.py [-v] [PATTERN...]

PATTERN selects tests whose id contains it (e.g. test_http, test_frames.Frames.test_ping).
The last line is "integration: N passed, N failed" (errors count as failed); the exit status is
non-zero when anything failed."""

import os
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no __pycache__ in the source tree

import helpers  # noqa: E402


def flatten(suite):
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            yield from flatten(t)
        else:
            yield t


def main(argv):
    verbose = "-v" in argv
    patterns = [a for a in argv if a != "-v"]
    loader = unittest.TestLoader()
    tests = list(flatten(loader.discover(HERE, pattern="test_*.py", top_level_dir=HERE)))
    if patterns:
        tests = [t for t in tests if any(p in t.id() for p in patterns)]
    if not os.access(helpers.BIN, os.X_OK):
        print("integration: no executable at %s (run make)" % helpers.BIN)
    started = time.monotonic()
    runner = unittest.TextTestRunner(stream=sys.stdout, verbosity=2 if verbose else 1)
    result = runner.run(unittest.TestSuite(tests))
    # Count test methods: the failures of several subtests of one method count once.
    bad = {getattr(t, "test_case", t).id()
           for t, _ in result.failures + result.errors + [(u, None) for u in
                                                          result.unexpectedSuccesses]}
    failed = len(bad)
    passed = result.testsRun - failed - len(result.skipped)
    print("(%.1fs)" % (time.monotonic() - started))
    print("integration: %d passed, %d failed" % (passed, failed))
    return 1 if failed or result.testsRun == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
