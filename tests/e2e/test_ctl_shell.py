"""chatp2pctl's chat shell driven through a pseudo-terminal: /msg reaches
the peer, incoming messages appear above the prompt without mangling the
line being typed, sends do not block the shell, Tab completes, Ctrl-C drops
the line, /quit and /shutdown; and the same commands on a plain pipe."""

import fcntl
import os
import pty
import re
import select
import signal
import struct
import sys
import termios
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from nodes import Node  # noqa: E402
from test_ctl import (EXIT_TIMEOUT, EXIT_USAGE, SLOW_DISCOVER, CtlAsserts, FakePeer, ctl,  # noqa: E402
                      ctl_argv, describe)

CSI = re.compile(r"\x1b\[([0-9;?]*)([A-Za-z@])|\x1b[()][0-9A-Za-z]|\x1b[=>78]")


def render(raw):
    """The lines a terminal would show for raw output: a minimal emulation
    of what libedit and the shell send (CR, BS, erase to end of line or
    screen, column moves), enough to see a line redrawn or replaced."""
    s = raw.decode("utf-8", "replace")
    lines, cur, col, i = [], [], 0, 0
    while i < len(s):
        c = s[i]
        if c == "\x1b":
            m = CSI.match(s, i)
            if m is None:
                i += 1
                continue
            arg, cmd = m.group(1), m.group(2)
            n = int(arg) if arg and arg.isdigit() else 1
            if cmd in ("J", "K"):
                del cur[col:]
            elif cmd == "G":
                col = n - 1
            elif cmd == "C":
                col += n
            elif cmd == "D":
                col = max(0, col - n)
            elif cmd == "@":
                cur[col:col] = [" "] * n
            elif cmd == "P":
                del cur[col:col + n]
            i = m.end()
            continue
        if c == "\r":
            col = 0
        elif c == "\n":
            lines.append("".join(cur))
            cur, col = [], 0
        elif c == "\b":
            col = max(0, col - 1)
        elif c >= " ":
            while len(cur) < col:
                cur.append(" ")
            if col < len(cur):
                cur[col] = c
            else:
                cur.append(c)
            col += 1
        i += 1
    lines.append("".join(cur))
    return lines


class PtyShell:
    """chatp2pctl on a pseudo-terminal, as a person would run it."""

    def __init__(self, argv):
        env = dict(os.environ)
        env["TERM"] = "xterm"
        env.pop("CHATP2P_SOCKET", None)
        # Never the tester's own ~/.chatp2p_history.
        env["CHATP2P_HISTFILE"] = os.path.join(harness.tmpdir(), "shell_history")
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: nothing but exec
            try:
                os.execve(argv[0], argv, env)
            finally:
                os._exit(127)
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
        self.raw = b""
        self.line, self.col, self.line_text = 0, 0, ""  # where the last match ended
        self.status = None

    def _read(self, timeout):
        r, _, _ = select.select([self.fd], [], [], timeout)
        if not r:
            return False
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            data = b""
        if not data:
            return None
        self.raw += data
        return True

    def text(self):
        """The screen's lines so far, joined."""
        return "\n".join(render(self.raw))

    def expect(self, pattern, timeout=15.0):
        """Wait for pattern (regex, multiline) after the previous match.
        Matching goes by lines: the line of the previous match may since
        have been erased and replaced (output printed above the prompt)."""
        rx = re.compile(pattern, re.M)
        deadline = time.monotonic() + timeout
        while True:
            lines = render(self.raw)
            start = sum(len(l) + 1 for l in lines[:self.line])
            after = start
            if self.line < len(lines) and lines[self.line] == self.line_text:
                after = start + self.col  # that line unchanged: past the match
            text = "\n".join(lines)
            m = next((m for m in rx.finditer(text, start) if m.end() > after
                      or (m.end() == after and m.start() == m.end())), None)
            if m:
                self.line = text.count("\n", 0, m.end())
                line_start = text.rfind("\n", 0, m.end()) + 1
                self.col = m.end() - line_start
                self.line_text = lines[self.line]
                return m
            left = deadline - time.monotonic()
            eof = left > 0 and self._read(min(left, 0.2)) is None
            if left <= 0 or eof:
                raise AssertionError("pty: no /%s/ within %.1f s%s; screen from the last "
                                     "match:\n%s" % (pattern, timeout, " (EOF)" if eof else "",
                                                      text[start:][-3000:]))

    def type(self, s):
        os.write(self.fd, s.encode() if isinstance(s, str) else s)

    def alive(self):
        if self.status is not None:
            return False
        pid, st = os.waitpid(self.pid, os.WNOHANG)
        if pid == 0:
            return True
        self.status = os.waitstatus_to_exitcode(st)
        return False

    def wait(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while self.alive():
            if time.monotonic() > deadline:
                raise AssertionError("the shell did not exit; screen:\n" + self.text()[-3000:])
            self._read(0.05)
        while self._read(0.05):
            pass
        return self.status

    def close(self):
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
            self.wait()
        os.close(self.fd)

    def sanitizer_report(self):
        t = self.text()
        for marker in harness.SANITIZER_MARKERS:
            if marker in t:
                return t[t.index(marker) - 200:][:6000]
        return None


# The prompt says who we are (issue 12): "alice@CIC> ", "carol@CIC> ".
PROMPT = r"\w+@\w+(?: \[[^\]]+\])?> "


class ShellCase(unittest.TestCase, CtlAsserts):

    @classmethod
    def setUpClass(cls):
        cls.rdv = harness.start_rendezvous("rate_limit=100000")
        cls.alice = Node("alice", cls.rdv, sets=SLOW_DISCOVER)
        cp = ctl(cls.alice, "wait-ready", "--timeout", "15")
        if cp.returncode != 0:
            raise AssertionError(describe(cp))
        cls.bob = Node("bob", cls.rdv, sets=SLOW_DISCOVER)
        cls.alice.wait_active("bob@CIC")
        cls.mute = FakePeer(cls.alice, "mute")
        cls.alice.wait_active("mute@CIC")

    @classmethod
    def tearDownClass(cls):
        cls.mute.close()
        cls.bob.stop()
        cls.alice.stop()
        cls.rdv.check_clean_exit()

    def setUp(self):
        self.inbox = self.bob.events(["message"])

    def tearDown(self):
        self.inbox.close()

    def shell(self, *args):
        sh = PtyShell(ctl_argv(self.alice, *(args or ("shell",))))
        self.addCleanup(sh.close)
        sh.expect(PROMPT)
        return sh

    def quit(self, sh):
        sh.type("/quit\r")
        self.assertEqual(sh.wait(), 0, sh.text()[-2000:])
        self.assertIsNone(sh.sanitizer_report())

    def bob_gets(self, text):
        return self.inbox.wait_event(lambda e: e["type"] == "message" and e["text"] == text,
                                     what="bob to receive %r" % text)

    def test_msg_and_incoming(self):
        sh = self.shell()
        sh.type("/msg bob@CIC hello from the shell\r")
        e = self.bob_gets("hello from the shell")
        self.assertEqual(e["from"], "alice@CIC")
        sh.expect(r"^✓ delivered to bob@CIC \(\d+\.\d\d ms\)$")
        self.bob.call("send", {"to": "alice@CIC", "text": "Olá, shell!"})
        sh.expect(r"^\[bob@CIC\] Olá, shell!$")
        sh.expect(PROMPT)
        self.quit(sh)

    def test_history_kept_between_sessions(self):
        path = os.path.join(harness.tmpdir(), "shell_history")
        if os.path.exists(path):
            os.unlink(path)
        sh = self.shell()
        sh.type("/msg bob@CIC remembered line\r")
        self.bob_gets("remembered line")
        sh.expect(PROMPT)
        self.quit(sh)
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)   # chat is private
        with open(path, "rb") as f:
            self.assertIn(b"remembered", f.read())
        # A new session recalls it (Ctrl-P: previous history line).
        sh = self.shell()
        sh.type("\x10\x10\r")  # before "/quit", the /msg line
        self.bob_gets("remembered line")
        sh.expect(PROMPT)
        self.quit(sh)

    def test_incoming_while_typing(self):
        sh = self.shell()
        sh.type("/msg bob@CIC half a li")
        sh.expect(r"half a li")
        self.bob.call("send", {"to": "alice@CIC", "text": "interrupting"})
        # Printed on a line of its own, then prompt and line redrawn below.
        sh.expect(r"^\[bob@CIC\] interrupting\n" + PROMPT + r"/msg bob@CIC half a li")
        sh.type("ne\r")
        self.bob_gets("half a line")
        self.quit(sh)

    def test_send_does_not_block(self):
        sh = self.shell()
        t0 = time.monotonic()
        sh.type("/msg mute@CIC you will not answer\r")
        sh.expect(PROMPT)
        sh.type("/status\r")
        sh.expect(r"^peer_id:\s+alice@CIC$")
        self.assertLess(time.monotonic() - t0, 2.5, "status waited for the send")
        self.assertNotIn("✗", sh.text())
        sh.expect(r"^✗ mute@CIC: .*\(ack_timeout\)$")
        self.quit(sh)

    def test_completion(self):
        sh = self.shell()
        sh.type("/ms\t")
        sh.expect(r"/msg $")
        sh.type("bo\t")
        sh.expect(r"bob@CIC $")
        sh.type("completed\r")
        self.bob_gets("completed")
        # Several matches: listed.
        sh.type("/re")
        sh.type("\t")
        sh.expect(r"/reconnect +/register")
        sh.type("\x15")  # Ctrl-U: drop the line
        self.quit(sh)

    def test_without_slash_and_tables(self):
        sh = self.shell()
        sh.type("msg bob@CIC no slash needed\r")
        self.bob_gets("no slash needed")
        sh.type("peers\r")
        sh.expect(r"^PEER\s+STATE\s+ADDRESS")
        sh.expect(r"^bob@CIC\s+ACTIVE")
        sh.type("/conn\r")
        sh.expect(r"^PEER\s+DIR\s+STATE")
        sh.type("/rtt\r")
        sh.expect(r"^(PEER\s+SAMPLES|no RTT samples yet)")
        sh.type("/log\r")
        sh.expect(r"^log level DEBUG$")
        sh.type("/pub * to all\r")
        sh.expect(r"^✓ published to \d+ peers?$")
        self.inbox.wait_event(lambda e: e["type"] == "pub" and e["text"] == "to all")
        sh.type("/pub #Nobodyhere hello?\r")
        sh.expect(r"^✗ nobody received it: no connected peer in #Nobodyhere$")
        sh.type("/frobnicate\r")
        sh.expect(r"^✗ unknown command '/frobnicate'")
        sh.type("/msg nobody\r")
        sh.expect(r"^✗ usage: /msg PEER TEXT$")
        sh.type("/help\r")
        sh.expect(r"^  /shutdown")
        self.quit(sh)

    def test_ctrl_c_drops_the_line_ctrl_d_leaves(self):
        sh = self.shell()
        sh.type("/msg bob@CIC never sent")
        sh.expect("never sent")
        sh.type("\x03")
        sh.expect(r"\^C\n" + PROMPT)
        sh.type("/msg bob@CIC after ctrl-c\r")
        self.bob_gets("after ctrl-c")
        sh.expect(PROMPT)
        sh.type("\x04")
        self.assertEqual(sh.wait(), 0)
        self.assertIsNone(sh.sanitizer_report())

    def test_default_command_on_a_terminal(self):
        sh = PtyShell(ctl_argv(self.alice))  # no command at all
        self.addCleanup(sh.close)
        sh.expect(PROMPT)
        self.quit(sh)

    def test_shutdown_from_the_shell(self):
        node = Node("carol", self.rdv, sets=SLOW_DISCOVER)
        sh = PtyShell(ctl_argv(node, "shell"))
        self.addCleanup(sh.close)
        try:
            sh.expect(PROMPT)
            sh.type("/shutdown\r")
            sh.expect(r"^node stopping$")
            self.assertEqual(sh.wait(15), 0, sh.text()[-2000:])
            self.assertEqual(node.proc.wait(15), 0)
            self.assertIsNone(node.proc.sanitizer_report())
            self.assertIsNone(sh.sanitizer_report())
        finally:
            node.proc.stop()

    def test_piped_shell(self):
        # Not a terminal: the same commands, line by line; at the end of
        # input it waits for the answers still due.
        cp = self.ok(self.alice, "shell", input="/msg bob@CIC piped in\npeers\n/log\n")
        self.bob_gets("piped in")
        self.assertRegex(cp.out, r"(?m)^✓ delivered to bob@CIC \(\d+\.\d\d ms\)$")
        self.assertRegex(cp.out, r"(?m)^bob@CIC\s+ACTIVE")
        self.assertRegex(cp.out, r"(?m)^log level DEBUG$")
        self.assertNotIn("alice@CIC>", cp.out)
        # A failed command: its error on standard error, and a non-zero exit
        # (issue 12; it used to be a line on standard output and exit 0).
        cp = self.fails(self.alice, EXIT_TIMEOUT, "shell",
                        input="/msg mute@CIC nobody home\n/quit\n")
        self.assertRegex(cp.err, r"^chatp2pctl: mute@CIC: .*\(ack_timeout\)\n$")
        self.assertNotIn("✗", cp.out)
        cp = self.fails(self.alice, EXIT_USAGE, "shell", input="/log\n/bogus\n")
        self.assertRegex(cp.out, r"(?m)^log level DEBUG$")
        self.assertIn("unknown command '/bogus'", cp.err)

    def test_prompt_names_us(self):
        sh = PtyShell(ctl_argv(self.alice, "shell"))
        self.addCleanup(sh.close)
        sh.expect(r"(?:^|\n)alice@CIC> ")
        self.quit(sh)

    def test_query(self):
        sh = self.shell()
        sh.type("/query bob\r")
        sh.expect(r"plain lines now go to bob@CIC")
        sh.expect(r"alice@CIC \[bob@CIC\]> ")
        sh.type("just chatting\r")
        self.bob_gets("just chatting")
        sh.type("status is text here too\r")
        self.bob_gets("status is text here too")
        sh.type("/log\r")  # commands keep their /
        sh.expect(r"^log level \w+$")
        sh.type("/query\r")
        sh.expect(r"query with bob@CIC ended")
        sh.expect(r"^alice@CIC> ")
        self.quit(sh)

    def test_ctrl_d_leaves_on_a_new_line(self):
        sh = self.shell()
        sh.type("\x04")
        self.assertEqual(sh.wait(), 0)
        # The terminal's next prompt starts on a line of its own.
        self.assertRegex(sh.raw.decode("utf-8", "replace"), r"alice@CIC> (\^D)?\r*\n$")

    def test_waits_for_the_daemon_to_come_back(self):
        node = Node("dave", self.rdv, sets=SLOW_DISCOVER)
        sh = PtyShell(ctl_argv(node, "shell"))
        self.addCleanup(sh.close)
        try:
            sh.expect(r"dave@CIC> ")
            node.stop(self)
            sh.expect(r"the daemon went away .*; waiting for it to come back")
            self.assertTrue(sh.alive())
            node.start()
            sh.expect(r"reconnected to the daemon", timeout=20)
            sh.type("/log\r")
            sh.expect(r"^log level \w+$")
            self.quit(sh)
        finally:
            node.proc.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
