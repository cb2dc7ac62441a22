"""make install / make uninstall: the files land where confab(1) says; the installed binary, started
from elsewhere, finds its script and page; the systemd unit passes systemd-analyze verify; the man
page renders without warnings and documents every flag of --help."""

import os
import re
import shutil
import subprocess
import tempfile

from helpers import BIN, REPO, WAIT, ConfabTest, Server, get, run_confab

BUILD = os.path.relpath(os.path.dirname(BIN), REPO)
MAN = os.path.join(REPO, "docs", "confab.1")


def make(*args, env=None):
    r = subprocess.run(["make", "-s", "-C", REPO, "BUILD=" + BUILD] + list(args),
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
                       env=env)
    assert r.returncode == 0, "make %s failed:\n%s%s" % (" ".join(args), r.stdout, r.stderr)
    return r


def files_under(root):
    out = set()
    for d, _, names in os.walk(root):
        for n in names:
            out.add(os.path.relpath(os.path.join(d, n), root))
    return out


class Install(ConfabTest):
    def destdir(self):
        d = tempfile.mkdtemp(prefix="confab-install-")
        self.addCleanup(shutil.rmtree, d, True)
        return d

    def test_install_layout_run_from_elsewhere_and_uninstall(self):
        dest = self.destdir()
        make("install", "DESTDIR=" + dest)
        pre = dest + "/usr/local"
        files = files_under(dest)
        for f in ["bin/confab", "share/confab/scripts/chat.lua",
                  "share/confab/scripts/examples/gorilla.lua",
                  "share/confab/scripts/examples/gorilla.web/index.html",
                  "share/confab/web/index.html", "share/confab/web/app.js",
                  "share/confab/confab.conf.example", "etc/confab/confab.conf",
                  "share/man/man1/confab.1", "lib/systemd/system/confab.service",
                  "share/doc/confab/README.md", "share/doc/confab/hooks.md"]:
            self.assertIn("usr/local/" + f, files)
        self.assertTrue(os.access(pre + "/bin/confab", os.X_OK))
        unit = open(pre + "/lib/systemd/system/confab.service").read()
        self.assertIn("ExecStart=/usr/local/bin/confab --config /usr/local/etc/confab/confab.conf",
                      unit)
        for directive in ("DynamicUser=yes", "ProtectSystem=strict", "NoNewPrivileges=yes",
                          "RuntimeDirectory=confab", "ExecReload=kill -HUP $MAINPID"):
            self.assertIn("\n" + directive + "\n", unit)
        self.assertNotIn("@", unit.replace("@system-service", "").replace("@privileged", ""))

        # Started from another directory with neither --script nor --web: the installed chat.
        elsewhere = self.destdir()
        srv = self.start(script=None, web=None, cwd=elsewhere, bin=pre + "/bin/confab")
        self.assertIn(pre + "/share/confab/scripts/chat.lua", srv.log)
        r = get(srv.port, "/")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, open(os.path.join(REPO, "web", "index.html"), "rb").read())
        a, b = self.client(srv), self.client(srv)
        a.hello("ann")
        b.hello("bob")
        a.say("lobby", "hi from the installed server")
        self.assertEqual(b.recv_json("message", room="lobby")["text"],
                         "hi from the installed server")

        # The installed configuration file works as the unit uses it (ports made free here).
        srv = self.start("--config", pre + "/etc/confab/confab.conf", "--admin-addr",
                         "127.0.0.1:0", script=None, web=None, cwd=elsewhere,
                         bin=pre + "/bin/confab")
        self.assertIn('"level":"note","msg":"listening on', srv.log)  # log-format json
        self.assertEqual(get(srv.port, "/").status, 200)

        make("uninstall", "DESTDIR=" + dest)
        self.assertEqual(files_under(dest), set())
        self.assertFalse(os.path.exists(pre + "/share/confab"))

    def test_uninstall_keeps_an_edited_configuration(self):
        dest = self.destdir()
        make("install", "DESTDIR=" + dest)
        conf = dest + "/usr/local/etc/confab/confab.conf"
        with open(conf, "a") as f:
            f.write("history 500\n")
        make("install", "DESTDIR=" + dest)  # a second install does not overwrite it
        self.assertIn("history 500", open(conf).read())
        make("uninstall", "DESTDIR=" + dest)
        self.assertEqual(files_under(dest), {"usr/local/etc/confab/confab.conf"})

    def test_systemd_analyze_verify_accepts_the_unit(self):
        # Installed for real under a temporary PREFIX, so ExecStart and the man page exist
        # (verify checks both); this runs without systemd as PID 1.
        prefix = self.destdir()
        make("install", "PREFIX=" + prefix)
        unit = prefix + "/lib/systemd/system/confab.service"
        env = dict(os.environ, MANPATH=prefix + "/share/man", SYSTEMD_LOG_LEVEL="notice")
        r = subprocess.run(["systemd-analyze", "verify", unit], capture_output=True, text=True,
                           timeout=60, env=env)
        self.assertEqual((r.returncode, r.stdout + r.stderr), (0, ""))
        # And it would notice a mistake.
        bad = self.write("bad/confab.service", open(unit).read().replace(
            "ProtectSystem=strict", "ProtectSystem=strict\nProtectSistem=yes"))
        r = subprocess.run(["systemd-analyze", "verify", bad], capture_output=True, text=True,
                           timeout=60, env=env)
        self.assertIn("ProtectSistem", r.stdout + r.stderr)
        # The unit's command line is one confab accepts.
        m = re.search(r"^ExecStart=(\S+) (.*)$", open(unit).read(), re.M)
        args = m.group(2).split()
        r = subprocess.run([m.group(1)] + args + ["--check", prefix +
                                                  "/share/confab/scripts/chat.lua"],
                           capture_output=True, text=True, timeout=WAIT)
        self.assertEqual(r.returncode, 0, r)


class ManPage(ConfabTest):
    def test_renders_without_warnings(self):
        env = dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8")
        r = subprocess.run(["man", "--warnings", "-E", "UTF-8", "-l", MAN], capture_output=True,
                           text=True, timeout=60, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, "")
        for section in ("NAME", "SYNOPSIS", "OPTIONS", "SIGNALS", "FILES", "EXIT STATUS"):
            self.assertRegex(r.stdout, r"(?m)^%s$" % section)

    def test_every_flag_of_help_is_documented(self):
        help_text = run_confab("--help").stdout
        flags = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", help_text))
        self.assertGreater(len(flags), 20)
        source = open(MAN).read().replace("\\-", "-")
        entry = r"(?m)^\.B[IR]? \"?%s(?=[\s\"])"  # ".BI --flag VALUE" or ".B --flag"
        missing = sorted(f for f in flags
                         if f not in ("--help", "--version") and not re.search(entry % f, source))
        self.assertEqual(missing, [], "flags of --help without an entry in docs/confab.1")
        self.assertIn("--help", source)
        self.assertIn("--version", source)
