"""Default paths that do not depend on the current directory, the page a script ships beside
itself (NAME.web/), --pid-file, and --help naming the data directory."""

import os
import shutil
import signal

from helpers import BIN, CHAT, EXAMPLES, REPO, WEB, ConfabTest, Server, get, run_confab


def read(path):
    with open(path, "rb") as f:
        return f.read()


class DefaultPaths(ConfabTest):
    def test_started_from_another_directory_serves_the_default_chat(self):
        # Neither --script nor --web: both come from beside the binary, not from the cwd.
        srv = self.start(script=None, web=None, cwd=self.tmp)
        r = get(srv.port, "/")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, read(os.path.join(WEB, "index.html")))
        c = self.client(srv)
        self.assertEqual(c.hello("alice")["name"], "alice")  # scripts/chat.lua runs
        self.assertIn(os.path.realpath(CHAT), srv.log)

    def test_a_relative_script_is_found_from_the_cwd_and_the_page_from_the_binary(self):
        self.write("mine.lua", 'local confab = require "confab"\n'
                               'confab.on("message", function(ev) confab.send(ev.id, "ok") end)\n')
        srv = self.start(script="mine.lua", web=None, cwd=self.tmp)
        self.assertEqual(get(srv.port, "/").body, read(os.path.join(WEB, "index.html")))
        c = self.client(srv)
        c.send("x")
        self.assertEqual(c.recv_raw(), "ok")

    def test_an_installed_binary_uses_prefix_share_confab(self):
        # The layout of make install: PREFIX/bin/confab, PREFIX/share/confab/{scripts,web}.
        prefix = os.path.join(self.tmp, "usr")
        os.makedirs(os.path.join(prefix, "bin"))
        shutil.copy2(BIN, os.path.join(prefix, "bin", "confab"))
        share = os.path.join(prefix, "share", "confab")
        shutil.copytree(os.path.join(REPO, "scripts"), os.path.join(share, "scripts"))
        shutil.copytree(WEB, os.path.join(share, "web"))
        with open(os.path.join(share, "web", "index.html"), "a") as f:
            f.write("<!-- installed copy -->\n")
        srv = Server(script=None, web=None, cwd=self.tmp, bin=os.path.join(prefix, "bin", "confab"))
        srv.check_exit = True
        self.servers.append(srv)
        self.addCleanup(self._stop, srv)
        self.assertTrue(get(srv.port, "/").body.endswith(b"<!-- installed copy -->\n"))
        self.assertIn(os.path.join(share, "scripts", "chat.lua"), srv.log)

    def test_help_names_the_data_directory(self):
        r = run_confab("--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn(os.path.realpath(REPO), r.stdout)
        self.assertIn("--pid-file", r.stdout)


class ScriptPages(ConfabTest):
    def test_each_example_ships_its_page_and_it_is_served_at_the_root(self):
        for name in ("gorilla", "namefirst", "jsonlogin", "add", "pathrooms"):
            with self.subTest(name):
                page = os.path.join(EXAMPLES, name + ".web", "index.html")
                self.assertTrue(os.path.isfile(page), page)
                flags = ("--ws-path", "/add") if name == "add" else ()
                srv = self.start(*flags, script=os.path.join(EXAMPLES, name + ".lua"), web=None,
                                 cwd=self.tmp)
                r = get(srv.port, "/")
                self.assertEqual((r.status, r.body), (200, read(page)))
                srv.wait_log(r"the script's own page")
                self._stop(srv)

    def test_an_explicit_web_wins_over_the_scripts_page(self):
        srv = self.start(script=os.path.join(EXAMPLES, "gorilla.lua"), web=WEB)
        self.assertEqual(get(srv.port, "/").body, read(os.path.join(WEB, "index.html")))

    def test_a_script_of_ones_own_ships_a_page(self):
        script = self.write("echo.lua", 'local confab = require "confab"\n')
        self.write("echo.web/index.html", "<!doctype html><title>echo</title>\n")
        self.write("echo.web/app.js", "// js\n")
        srv = self.start(script=script, web=None)
        self.assertEqual(get(srv.port, "/").body, b"<!doctype html><title>echo</title>\n")
        r = get(srv.port, "/app.js")
        self.assertEqual((r.status, r.body), (200, b"// js\n"))
        self.assertEqual(get(srv.port, "/../echo.lua").status, 404)


class PidFile(ConfabTest):
    def test_written_at_start_and_removed_at_exit(self):
        path = os.path.join(self.tmp, "confab.pid")
        srv = self.start("--pid-file", path)
        self.assertEqual(read(path), b"%d\n" % srv.pid)
        # What hooks.md suggests: signal this one process through its pid file.
        os.kill(int(read(path)), signal.SIGHUP)
        srv.wait_log(r"reloaded \(SIGHUP\)")
        srv.signal(signal.SIGTERM)
        self.assertEqual(srv.wait_exit(), 0)
        self.assertFalse(os.path.exists(path))

    def test_an_unwritable_pid_file_is_a_clear_error(self):
        path = os.path.join(self.tmp, "no", "such", "dir", "confab.pid")
        r = run_confab("--addr", "127.0.0.1:0", "--script", CHAT, "--web", WEB, "--pid-file", path)
        self.assertEqual(r.returncode, 2)
        self.assertRegex(r.stderr, r"(?m)^confab: cannot write pid file '.*confab\.pid': No such file")

    def test_removed_when_the_server_cannot_start(self):
        path = os.path.join(self.tmp, "confab.pid")
        srv = self.start("--pid-file", path)
        # Same port: the second server fails to listen after writing its pid file.
        r = run_confab("--addr", "127.0.0.1:%d" % srv.port, "--script", CHAT, "--web", WEB,
                       "--pid-file", path + "2")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertFalse(os.path.exists(path + "2"))
        self.assertTrue(os.path.exists(path))
