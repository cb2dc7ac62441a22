"""--config FILE: the flags' settings, one "name value" per line; flags on the command line win;
errors name the file and line."""

import re

from helpers import ECHO_LUA, WAIT, ConfabTest, get, run_confab


class ConfigFile(ConfabTest):
    def test_settings_come_from_the_file(self):
        script = self.script(ECHO_LUA)
        conf = self.write("confab.conf", """# confab settings
  # indented comment

admin-addr   127.0.0.1:0
script %s
log-format json
--max-message 2K
watch
""" % script)
        srv = self.start("--config", conf, script=None, web=None)
        m = srv.wait_log(r'"admin \(/metrics /healthz /readyz\) on 127\.0\.0\.1:(\d+)"')
        self.assertEqual(get(int(m.group(1)), "/healthz").status, 200)
        self.assertIn('"msg":"confab ', srv.log)  # JSON lines
        self.assertIn(script, srv.log)  # the file's script
        c = self.client(srv)
        c.send("x" * 2048)
        self.assertEqual(c.recv_raw(), "x" * 2048)
        c.send("x" * 2049)  # over the file's --max-message
        code, _ = c.wait_close()
        self.assertEqual(code, 1009)

    def test_command_line_overrides_the_file(self):
        conf = self.write("confab.conf", "log-format json\nmax-message 1K\n")
        srv = self.start("--config", conf, "--log-format", "text", "--max-message", "4K",
                         script=self.script(ECHO_LUA))
        self.assertNotIn('"msg"', srv.log)
        c = self.client(srv)
        c.send("y" * 4096)
        self.assertEqual(c.recv_raw(), "y" * 4096)
        # Before the file on the command line, too: the file is read first whatever the order.
        srv2 = self.start("--max-message", "4K", "--config", conf, script=self.script(ECHO_LUA))
        c = self.client(srv2)
        c.send("y" * 4096)
        self.assertEqual(c.recv_raw(), "y" * 4096)

    def test_errors_name_file_and_line(self):
        cases = [
            ("addr 127.0.0.1:0\n\nbogus 1\n", r":3: unknown option '--bogus'"),
            ("# c\nmax-message lots\n", r":2: bad value 'lots' for --max-message"),
            ("script\n", r":1: 'script' needs a value"),
            ("config other.conf\n", r":1: this setting is only accepted on the command line"),
            ("help\n", r":1: this setting is only accepted on the command line"),
            ("watch maybe\n", r":1: watch takes yes or no"),
            ("addr 127.0.0.1:0\nadmin-addr 127.0.0.1:99999\n", r":2: bad value"),
        ]
        for i, (text, want) in enumerate(cases):
            with self.subTest(text=text):
                conf = self.write("bad%d.conf" % i, text)
                r = run_confab("--config", conf)
                self.assertEqual(r.returncode, 2, r)
                self.assertRegex(r.stderr, re.escape(conf) + want)
                self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)

    def test_missing_file(self):
        r = run_confab("--config", self.tmp + "/absent.conf")
        self.assertEqual(r.returncode, 2, r)
        self.assertIn("absent.conf", r.stderr)
        r = run_confab("--config")
        self.assertEqual(r.returncode, 2, r)
        self.assertIn("--config", r.stderr)

    def test_every_flag_with_a_value_is_accepted_in_the_file(self):
        # --help lists the flags; each one that takes a value works as "name value" in the file
        # when given a valid value (the same as on the command line: --check runs it).
        valid = {"addr": "127.0.0.1:0", "admin-addr": "0", "script": self.script(ECHO_LUA),
                 "web": self.tmp, "ws-path": "/chat", "allow-origin": "*",
                 "subprotocol": "chat", "log-format": "json", "log-level": "warn",
                 "pid-file": self.tmp + "/pid"}
        help_text = run_confab("--help").stdout
        flags = sorted(set(re.findall(r"^  (--[a-z-]+) [A-Z]", help_text, re.M)))
        self.assertIn("--max-message", flags)
        for flag in flags:
            name = flag[2:]
            if name in ("config", "check"):
                continue
            value = valid.get(name)
            if value is None:
                continue  # numbers: covered by the command-line tests, same parser
            with self.subTest(flag=flag):
                conf = self.write("one.conf", "%s %s\n" % (name, value))
                r = run_confab("--config", conf, "--check", self.script(ECHO_LUA))
                self.assertEqual(r.returncode, 0, r)
