"""chatp2pctl against real chatp2pd nodes: every command in human and --json
output, and every exit status (0 ok, 1 daemon error, 2 unreachable, 3 usage,
4 timeout / delivery not confirmed, 5 permission denied, 6 protocol error).

The helpers here (ctl(), FakePeer, FakeServer) are shared by the other
test_ctl_*.py files, which import this module."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from nodes import CtlError, Node  # noqa: E402

EXIT_OK, EXIT_DAEMON, EXIT_UNREACHABLE, EXIT_USAGE, EXIT_TIMEOUT, EXIT_PERM, EXIT_PROTO = range(7)

# Human watch lines start with the local time, as journalctl's do.
TS = r"[A-Z][a-z]{2} \d\d \d\d:\d\d:\d\d "

# Nodes of these tests discover rarely: the rendezvous client keeps its own
# request budget (10 a minute), and on-demand discover/register must fit in it.
SLOW_DISCOVER = ["rendezvous.discover_interval=60"]


# ---- running chatp2pctl ------------------------------------------------------

def ctl_argv(target, *args):
    path = target.sock_path if hasattr(target, "sock_path") else target
    argv = [harness.binary("CHATP2PCTL")]
    if path is not None:
        argv += ["--socket", path]
    return argv + [str(a) for a in args]


def ctl(target, *args, input=b"", env=None, timeout=30.0, preexec_fn=None, cwd=None,
        binary=None):
    """Run chatp2pctl --socket PATH ARGS… to completion (CompletedProcess
    with .out and .err decoded).  Standard input is a pipe (empty unless
    input is given), never the terminal of whoever runs the tests."""
    argv = ctl_argv(target, *args)
    if binary:
        argv[0] = binary
    if isinstance(input, str):
        input = input.encode()
    if preexec_fn is None:
        cp = harness.run(argv, timeout=timeout, env=env, input=input, cwd=cwd)
    else:
        full_env = dict(os.environ)
        full_env.update(env or {})
        cp = subprocess.run(argv, input=input, capture_output=True, timeout=timeout, env=full_env,
                            preexec_fn=preexec_fn, cwd=cwd or "/")
        err = cp.stderr.decode("utf-8", "replace")
        for marker in harness.SANITIZER_MARKERS:
            if marker in err:
                raise AssertionError("sanitizer report from chatp2pctl:\n" + err[-6000:])
    cp.out = cp.stdout.decode("utf-8", "replace")
    cp.err = cp.stderr.decode("utf-8", "replace")
    return cp


def describe(cp):
    return "argv %s\nexit %s\nstdout:\n%s\nstderr:\n%s" % (cp.args, cp.returncode, cp.out[-3000:],
                                                          cp.err[-3000:])


class CtlAsserts:
    """Mixin for unittest.TestCase."""

    def assertExit(self, cp, code):
        self.assertEqual(cp.returncode, code, describe(cp))
        if code == EXIT_OK:
            self.assertEqual(cp.err, "", describe(cp))
        else:
            # One line on stderr, "chatp2pctl: …", for every failure.
            lines = cp.err.splitlines()
            self.assertEqual(len(lines), 1, describe(cp))
            self.assertTrue(lines[0].startswith("chatp2pctl: "), describe(cp))
        return cp

    def ok(self, target, *args, **kw):
        return self.assertExit(ctl(target, *args, **kw), EXIT_OK)

    def json_ok(self, target, *args, **kw):
        """--json: stdout is exactly one JSON document (an object)."""
        cp = self.ok(target, "--json", *args, **kw)
        self.assertEqual(cp.out.count("\n"), 1, "one line expected\n" + describe(cp))
        doc = json.loads(cp.out)
        self.assertIsInstance(doc, dict, describe(cp))
        return doc

    def fails(self, target, code, *args, **kw):
        return self.assertExit(ctl(target, *args, **kw), code)


# ---- a peer that never ACKs ------------------------------------------------------

def now_iso():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class FakePeer:
    """A peer in Python that dials a node, completes the handshake (HELLO /
    HELLO_OK, no "pipeline"), answers PING and BYE, and never ACKs a SEND:
    every send to it ends in ack_timeout.  .sends lists the msg_ids seen."""

    def __init__(self, node, name, namespace="CIC"):
        self.peer_id = "%s@%s" % (name, namespace)
        self.sends = []
        self.lock = threading.Lock()
        self.established = threading.Event()
        self.closed = threading.Event()
        self.sock = harness.connect(node.port)
        self.sock.settimeout(None)
        self._write({"type": "HELLO", "peer_id": self.peer_id, "version": "1.0",
                     "features": ["ack", "metrics"], "ttl": 1})
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        if not self.established.wait(10):
            raise AssertionError("%s: no HELLO_OK from %s" % (self.peer_id, node.peer_id))

    def _write(self, obj):
        try:
            self.sock.sendall((json.dumps(obj) + "\n").encode())
        except OSError:
            pass

    def _run(self):
        buf = b""
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    break
                buf += data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    try:
                        msg = json.loads(line)
                    except ValueError:
                        continue
                    t = msg.get("type")
                    if t == "HELLO_OK":
                        self.established.set()
                    elif t == "PING":
                        self._write({"type": "PONG", "msg_id": msg.get("msg_id"),
                                     "timestamp": now_iso(), "ttl": 1})
                    elif t == "SEND":
                        with self.lock:
                            self.sends.append(msg.get("msg_id"))
                    elif t == "BYE":
                        self._write({"type": "BYE_OK", "msg_id": msg.get("msg_id"),
                                     "src": self.peer_id, "dst": msg.get("src"), "ttl": 1})
                        return
        except OSError:
            pass
        finally:
            self.closed.set()

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(5)


# ---- a control socket that misbehaves ------------------------------------------------

class FakeServer:
    """A UNIX socket server playing a broken daemon.  behaviour(conn) is run
    for every connection, in a thread."""

    def __init__(self, behaviour, name="fake"):
        self.path = os.path.join(harness.tmpdir(), "%s-%d.sock" % (name, id(self)))
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(8)
        self.behaviour = behaviour
        self.conns = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        try:
            self.behaviour(conn)
        except OSError:
            pass

    def close(self):
        self.stop.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        for c in self.conns:
            c.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass


def read_request(conn):
    """The first request line a client sends (bytes), or b"" at EOF."""
    buf = b""
    conn.settimeout(10)
    while b"\n" not in buf:
        d = conn.recv(65536)
        if not d:
            return buf
        buf += d
    return buf.split(b"\n", 1)[0]


def start_watch(node, *classes, options=()):
    """chatp2pctl [options] watch CLASS… as a running process.  Subscribed
    with --since the sequence number current now, so no event from now on
    is missed, even one that happens before the subscription is in place."""
    c = node.ctl()
    try:
        seq = c.call("subscribe", {"events": []})["seq"]
    finally:
        c.close()
    argv = ctl_argv(node, *options) + ["watch", "--since", str(seq)] + list(classes)
    return harness.start(argv, name="watch")


# ---- the tests -----------------------------------------------------------------------

class AliceBobMute:
    """Class fixture: alice and bob connected, plus mute@CIC (a FakePeer
    dialled into alice that never ACKs)."""

    @classmethod
    def setUpClass(cls):
        cls.rdv = harness.start_rendezvous("rate_limit=100000")
        cls.alice = Node("alice", cls.rdv, sets=SLOW_DISCOVER)
        # bob's first DISCOVER must find alice registered: wait-ready.
        cp = ctl(cls.alice, "wait-ready", "--timeout", "15")
        if cp.returncode != 0:
            raise AssertionError("alice not ready:\n" + describe(cp))
        cls.bob = Node("bob", cls.rdv, sets=SLOW_DISCOVER)
        cls.alice.wait_active("bob@CIC")
        cls.bob.wait_active("alice@CIC")
        cls.mute = FakePeer(cls.alice, "mute")
        cls.alice.wait_active("mute@CIC")

    @classmethod
    def tearDownClass(cls):
        cls.mute.close()
        cls.bob.stop()
        cls.alice.stop()
        cls.rdv.check_clean_exit()

    a = property(lambda self: self.alice)


class CommandsCase(AliceBobMute, unittest.TestCase, CtlAsserts):
    """The one-shot commands against alice, bob and mute."""

    # -- status, version, help ---------------------------------------------------

    def test_status(self):
        cp = self.ok(self.a, "status")
        self.assertRegex(cp.out, r"(?m)^peer_id:\s+alice@CIC$")
        self.assertRegex(cp.out, r"(?m)^version:\s+\S+ \(control protocol 1\)$")
        # Durations as people write them (issue 12): "2h", "1h59m", never "7140 s".
        self.assertRegex(cp.out, r"(?m)^rendezvous:\s+127\.0\.0\.1:%d registered \(ttl \d+[dhms]\w*, "
                                 r"expires in \d+[dhms]\w*, " % self.rdv.port)
        self.assertRegex(cp.out, r"(?m)^started:\s+\S+ \(up \d+(\.\d)?[dhms]\w*\)$")
        self.assertRegex(cp.out, r"(?m)^peers:\s+\d+ \(\d+ active, \d+ stale, \d+ unknown\)$")
        self.assertRegex(cp.out, r"(?m)^connections:\s+\d+$")
        st = self.json_ok(self.a, "status")
        self.assertEqual(st["peer_id"], "alice@CIC")
        self.assertEqual(st["protocol"], 1)
        self.assertEqual(st["listen"]["port"], self.a.port)
        self.assertEqual(st["rendezvous"]["state"], "registered")
        # expires_in counts down from the ttl (one clock for both ends).
        self.assertTrue(0 < st["rendezvous"]["expires_in"] <= st["rendezvous"]["ttl"], st)
        self.assertGreaterEqual(st["peers"]["active"], 2)

    def test_version_and_help(self):
        cp = self.ok(None, "--version")
        self.assertRegex(cp.out, r"^chatp2pctl \S+ \(control protocol 1\)\n$")
        cp = self.ok(self.a, "version")
        self.assertRegex(cp.out, r"(?m)^chatp2pd \S+ \(control protocol 1\), node alice@CIC$")
        v = self.json_ok(self.a, "version")
        self.assertEqual((v["protocol"], v["node"]), (1, "alice@CIC"))
        cp = self.ok(None, "--help")
        self.assertIn("exit status", cp.out)
        for code in range(7):
            self.assertRegex(cp.out, r"(?m)^  %d  \S" % code)
        for cmd in ("status", "peers", "conn", "send", "pub", "rtt", "reconnect", "log", "discover",
                    "register", "unregister", "watch", "shutdown", "shell", "call", "wait-ready"):
            self.assertRegex(cp.out, r"(?m)^  %s\b" % re.escape(cmd))
        cp = self.ok(None, "help", "send")
        self.assertIn("--no-ack", cp.out)

    def test_usage_errors_exit_3(self):
        # Caught before connecting: the same against a socket that is not there.
        missing = os.path.join(harness.tmpdir(), "nobody-here.sock")
        cases = [
            [], ["bogus"], ["--bogus", "status"], ["--timeout", "abc", "status"],
            ["--timeout", "-1", "status"], ["status", "extra"], ["conn", "x"], ["rtt", "x"],
            ["send"], ["send", "bad name", "hi"], ["send", "@CIC", "hi"], ["send", "--bad", "bob@CIC"],
            ["pub"], ["pub", "CIC", "hi"], ["pub", "#", "hi"], ["peers", "nope"],
            ["peers", "--bogus"], ["peers", "*", "extra"], ["log", "nonsense"], ["log", "info", "x"],
            ["watch", "nonsense"], ["watch", "--since", "x"], ["watch", "--log-level", "loud"],
            ["call"], ["call", "status", "{bad"], ["call", "status", "42"], ["call", "a", "{}", "x"],
            ["reconnect", "bad name"], ["send", "bob@CIC", ""], ["wait-ready", "--timeout", "x"], ["shutdown", "now"],
            ["help", "nope"], ["shell", "x"],
        ]
        for args in cases:
            with self.subTest(args=args):
                self.fails(missing, EXIT_USAGE, *args)
        # No text on standard input.
        self.fails(self.a, EXIT_USAGE, "send", "bob@CIC", input=b"")
        self.fails(self.a, EXIT_USAGE, "send", "bob@CIC", "-", input=b"\n")
        self.fails(self.a, EXIT_USAGE, "pub", "*", input=b"")
        # Not UTF-8.
        self.fails(self.a, EXIT_USAGE, "send", "bob@CIC", input=b"\xff\xfe\n")

    # -- peers, conn, rtt ----------------------------------------------------------

    def test_peers(self):
        cp = self.ok(self.a, "peers")
        self.assertRegex(cp.out, r"^PEER\s+STATE\s+ADDRESS\s+DIR\s+RTT\(avg ms\)\s+LAST SEEN\s+"
                                 r"CONNECTS\s+DISCONNECTS\s+SUCCESS\s+IDENTITY\n")  # IDENTITY: issue 17, §5.3
        # bob dialled alice: alice knows no listening address of bob's.
        # Never dialled by alice: no success rate to show.
        self.assertRegex(cp.out, r"(?m)^bob@CIC\s+ACTIVE\s+-\s+in\s+([\d.]+|-)\s+"
                                 r"(\d+[smhd] ago|-)\s+\d+\s+\d+\s+-\s+pinned$")
        self.assertRegex(cp.out, r"(?m)^mute@CIC\s+ACTIVE\s")
        # bob found alice at the rendezvous server and dialled her.
        cp = self.ok(self.bob, "peers")
        self.assertRegex(cp.out, r"(?m)^alice@CIC\s+ACTIVE\s+127\.0\.0\.1:%d\s+out\s+([\d.]+|-)\s+"
                                 r"(\d+[smhd] ago|-)\s+1\s+0\s+100%%\s+pinned$" % self.a.port)
        # Aligned: every line puts STATE in the same column.
        lines = cp.out.splitlines()
        col = lines[0].index("STATE")
        for line in lines[1:]:
            self.assertRegex(line[col:], r"^(ACTIVE|STALE|UNKNOWN) ", cp.out)
        peers = self.json_ok(self.bob, "peers")["peers"]
        alice = [p for p in peers if p["peer_id"] == "alice@CIC"]
        self.assertEqual(len(alice), 1, peers)
        self.assertEqual((alice[0]["state"], alice[0]["port"], alice[0]["direction"]),
                         ("ACTIVE", self.a.port, "outbound"))
        ids = {p["peer_id"] for p in self.json_ok(self.a, "peers", "#CIC")["peers"]}
        self.assertTrue({"bob@CIC", "mute@CIC"} <= ids, ids)
        ids = {p["peer_id"] for p in self.json_ok(self.a, "peers", "*")["peers"]}
        self.assertIn("bob@CIC", ids)
        self.assertEqual(self.json_ok(self.a, "peers", "#nowhere")["peers"], [])
        self.assertEqual(self.ok(self.a, "peers", "#nowhere").out, "no peers\n")
        # --discover: a DISCOVER first, then the table.
        ids = {p["peer_id"] for p in self.json_ok(self.a, "peers", "--discover")["peers"]}
        self.assertIn("bob@CIC", ids)

    def test_conn(self):
        cp = self.ok(self.a, "conn")
        self.assertRegex(cp.out, r"^PEER\s+DIR\s+STATE\s+ADDRESS\s+SINCE\s+RTT\(ms\)\s+RX\s+TX\s+"
                                 r"QUEUED\s+IDENTITY\s+WRITE\n")  # IDENTITY: issue 17, §5.3
        self.assertRegex(cp.out, r"(?m)^bob@CIC\s+(in|out)\s+established\s")
        self.assertRegex(cp.out, r"(?m)^mute@CIC\s+in\s+established\s+127\.0\.0\.1:\d+\s")
        conns = self.json_ok(self.a, "conn")["connections"]
        mine = [c for c in conns if c["peer_id"] == "mute@CIC" and c["primary"]]
        self.assertEqual(len(mine), 1, conns)
        self.assertEqual((mine[0]["direction"], mine[0]["state"]), ("inbound", "established"))

    def test_rtt(self):
        # PINGs go every second: samples come.
        harness.wait_for(lambda: any(r["peer_id"] == "bob@CIC" and r["samples"] > 0
                                     for r in self.json_ok(self.a, "rtt")["rtt"]),
                         10, what="an RTT sample for bob")
        cp = self.ok(self.a, "rtt")
        self.assertRegex(cp.out, r"^PEER\s+SAMPLES\s+LAST\(ms\)\s+AVG\(ms\)\s+MIN\(ms\)\s+MAX\(ms\)\n")
        self.assertRegex(cp.out, r"(?m)^bob@CIC\s+\d+(\s+\d+\.\d\d){4}$")
        r = [x for x in self.json_ok(self.a, "rtt")["rtt"] if x["peer_id"] == "bob@CIC"][0]
        self.assertLessEqual(r["min"], r["avg"])
        self.assertLessEqual(r["avg"], r["max"])

    # -- send ------------------------------------------------------------------------

    def test_send_from_stdin_delivered(self):
        ev = self.bob.events(["message"])
        try:
            # The example, exactly: echo hi | chatp2pctl send bob@CIC
            cp = self.ok(self.a, "send", "bob@CIC", input=b"hi\n")
            self.assertRegex(cp.out, r"^delivered to bob@CIC \(\d+\.\d\d ms\)\n$")
            e = ev.wait_event(lambda e: e["type"] == "message" and e["text"] == "hi",
                              what="bob to receive 'hi'")
            self.assertEqual((e["from"], e["to"]), ("alice@CIC", "bob@CIC"))
            # "-" reads standard input too; inner newlines and UTF-8 survive.
            self.ok(self.a, "send", "bob@CIC", "-", input="Olá, mundo!\nsegunda linha\n")
            ev.wait_event(lambda e: e["text"] == "Olá, mundo!\nsegunda linha",
                          what="the two-line message")
            # Words are joined by single spaces.
            # Options go anywhere (issue 12): text that starts with '-' goes after --.
            self.ok(self.a, "send", "bob@CIC", "hello", "there", "--", "-x")
            ev.wait_event(lambda e: e["text"] == "hello there -x", what="'hello there -x'")
        finally:
            ev.close()

    def test_send_json_and_no_ack(self):
        r = self.json_ok(self.a, "send", "bob@CIC", "json please")
        self.assertEqual(r["status"], "acked")
        self.assertIsInstance(r["rtt_ms"], float)
        self.assertRegex(r["msg_id"], r"^[0-9a-f-]{36}$")
        r = self.json_ok(self.a, "send", "--no-ack", "bob@CIC", "fire and forget")
        self.assertEqual(r["status"], "sent")
        self.assertNotIn("rtt_ms", r)
        cp = self.ok(self.a, "send", "--no-ack", "bob@CIC", "again")
        self.assertEqual(cp.out, "sent to bob@CIC (no ACK asked for)\n")
        # Even to a peer that never ACKs, --no-ack succeeds at once.
        self.assertEqual(self.json_ok(self.a, "send", "--no-ack", "mute@CIC", "x")["status"], "sent")

    def test_send_unknown_peer_exit_4(self):
        cp = self.fails(self.a, EXIT_TIMEOUT, "send", "nobody@CIC", "hello?")
        self.assertIn("unknown_peer", cp.err)
        self.assertEqual(cp.out, "")
        self.fails(self.a, EXIT_TIMEOUT, "--json", "send", "nobody@CIC", "hello?")

    def test_send_not_connected_exit_4(self):
        # ghost@CIC: registered at a port where nothing listens.
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        r = harness.rdv_request(self.rdv.port, {"type": "REGISTER", "namespace": "CIC",
                                                "name": "ghost", "port": port, "ttl": 600})
        self.assertEqual(r["status"], "OK", r)
        ids = {p["peer_id"] for p in self.json_ok(self.a, "peers", "--discover")["peers"]}
        self.assertIn("ghost@CIC", ids)
        cp = self.fails(self.a, EXIT_TIMEOUT, "send", "ghost@CIC", "anyone?")
        self.assertIn("not_connected", cp.err)
        # reconnect knows it.
        cp = self.ok(self.a, "reconnect", "ghost@CIC")
        self.assertEqual(cp.out, "dialling 1 peer\n")

    def test_send_ack_timeout_exit_4(self):
        t0 = time.monotonic()
        cp = self.fails(self.a, EXIT_TIMEOUT, "send", "mute@CIC", "are you there?")
        self.assertIn("ack_timeout", cp.err)
        self.assertGreater(time.monotonic() - t0, 2.5)  # network.ack_timeout=3
        self.assertTrue(self.mute.sends, "mute never saw the SEND")
        # Our own --timeout, shorter than the daemon's ack timeout.
        t0 = time.monotonic()
        cp = self.fails(self.a, EXIT_TIMEOUT, "--timeout", "0.5", "send", "mute@CIC", "quick?")
        self.assertIn("within 0.5 s", cp.err)
        self.assertLess(time.monotonic() - t0, 2.5)

    # -- pub, reconnect, log -------------------------------------------------------------

    def test_pub(self):
        ev = self.bob.events(["message"])
        try:
            cp = self.ok(self.a, "pub", "*", "hello", "all")
            m = re.match(r"^published to (\d+) peers?\n$", cp.out)
            self.assertTrue(m, describe(cp))
            self.assertGreaterEqual(int(m.group(1)), 2)  # bob and mute
            e = ev.wait_event(lambda e: e["type"] == "pub" and e["text"] == "hello all",
                              what="bob to receive the PUB")
            self.assertEqual((e["from"], e["to"]), ("alice@CIC", "*"))
            r = self.json_ok(self.a, "pub", "#CIC", "-", input="ns only\n")
            self.assertGreaterEqual(r["reached"], 2)
            e = ev.wait_event(lambda e: e["type"] == "pub" and e["text"] == "ns only",
                              what="the #CIC PUB")
            self.assertEqual(e["to"], "#CIC")
            # Reaching nobody is exit 4 (issue 12, bug 13); --json still prints the result.
            cp = self.fails(self.a, EXIT_TIMEOUT, "--json", "pub", "#nowhere", "x")
            self.assertEqual(json.loads(cp.out)["reached"], 0)
        finally:
            ev.close()

    def test_reconnect(self):
        cp = self.ok(self.a, "reconnect")
        self.assertRegex(cp.out, r"^dialling \d+ peers?\n$")
        self.assertIsInstance(self.json_ok(self.a, "reconnect")["dialling"], int)
        cp = self.fails(self.a, EXIT_TIMEOUT, "reconnect", "nobody@CIC")
        self.assertIn("unknown_peer", cp.err)
        # bob dialled alice and no DISCOVER of hers listed him: she could not
        # dial him back, so she says why and keeps the connection he made.
        def conns():
            return [(c["address"], c["since"]) for c in self.a.connections_to("bob@CIC")]
        # A healthy connection is kept (issue 12, bug 3), and the answer says so.
        before = conns()
        cp = self.ok(self.a, "reconnect", "bob@CIC")
        self.assertRegex(cp.out, r"^dialling 0 peers: already connected \(\w+bound, [0-9.:]+\): "
                                 r"the healthy connection is kept\n$")
        self.assertEqual(conns(), before)

    def test_log(self):
        self.assertEqual(self.ok(self.a, "log").out, "DEBUG\n")
        try:
            cp = self.ok(self.a, "log", "warning")
            self.assertEqual(cp.out, "log level WARNING (was DEBUG)\n")
            self.assertEqual(self.json_ok(self.a, "log"), {"level": "WARNING"})
            self.assertEqual(self.json_ok(self.a, "log", "INFO"),
                             {"level": "INFO", "previous": "WARNING"})
        finally:
            self.ok(self.a, "log", "DEBUG")
        self.assertEqual(self.json_ok(self.a, "status")["log_level"], "DEBUG")

    # -- call and daemon-side errors (exit 1) -----------------------------------------------

    def test_call(self):
        cp = self.ok(self.a, "call", "status")
        self.assertGreater(cp.out.count("\n"), 5, "pretty-printed for people")
        self.assertEqual(json.loads(cp.out)["peer_id"], "alice@CIC")
        self.assertEqual(self.json_ok(self.a, "call", "status")["peer_id"], "alice@CIC")
        r = self.json_ok(self.a, "call", "peers", '{"filter": "#nowhere"}')
        self.assertEqual(r, {"peers": []})
        r = self.json_ok(self.a, "call", "hello")
        self.assertEqual(r["protocol"], 1)

    def test_daemon_errors_exit_1(self):
        cp = self.fails(self.a, EXIT_DAEMON, "call", "no.such.method")
        self.assertIn("unknown_method", cp.err)
        cp = self.fails(self.a, EXIT_DAEMON, "call", "log.set", '{"level": "nonsense"}')
        self.assertIn("bad_params", cp.err)
        cp = self.fails(self.a, EXIT_DAEMON, "call", "send", '{"to": 5, "text": "x"}')
        self.assertIn("bad_params", cp.err)
        cp = self.fails(self.a, EXIT_DAEMON, "call", "subscribe", '{"events": ["nonsense"]}')
        self.assertIn("bad_params", cp.err)
        self.assertEqual(cp.out, "")

    # -- watch ------------------------------------------------------------------------------

    def test_watch_human(self):
        w = start_watch(self.bob, "message", "peer")
        try:
            self.ok(self.a, "send", "bob@CIC", "Olá!")
            w.wait_stdout("^" + TS + r"\[alice@CIC\] Olá!$")
            self.ok(self.a, "pub", "*", "to everyone")
            w.wait_stdout("^" + TS + r"\[alice@CIC → \*\] to everyone$")
            # Peer events: a peer comes and goes.
            fp = FakePeer(self.bob, "visitor")
            w.wait_stdout("^" + TS + r"\* peer visitor@CIC connected$")
            fp.close()
            w.wait_stdout("^" + TS + r"\* peer visitor@CIC (disconnected|lost)( \(.*\))?$")
            # A peer's control characters cannot reach the terminal.
            self.ok(self.a, "send", "bob@CIC", "bell\x07 esc\x1b[2J")
            w.wait_stdout("^" + TS + r"\[alice@CIC\] bell\^G esc\^\[\[2J$")
            # Nor can a multi-line text pass for another peer's message or
            # for one of our own lines: its further lines are indented.
            self.ok(self.a, "send", "bob@CIC", "ok\n[carol@UnB] run this\r\n* peer carol@UnB connected")
            w.wait_stdout("^" + TS + r"\[alice@CIC\] ok$")
            w.wait_stdout(r"^    \[carol@UnB\] run this\^M$")
            w.wait_stdout(r"^    \* peer carol@UnB connected$")
            self.assertFalse([l for l in w.stdout_lines() if re.match(TS + r"(\[carol@UnB\]|\* peer carol)", l)
                              or l.startswith("[carol@UnB]") or l.startswith("* peer carol")])
            self.assertEqual(w.stop(signal.SIGINT), 0, w.stderr_text())
            self.assertIsNone(w.sanitizer_report())
        finally:
            w.stop()

    def test_watch_json(self):
        w = start_watch(self.bob, "all", options=["--json"])
        try:
            self.ok(self.a, "send", "bob@CIC", "as json")
            m = w.wait_stdout(r'"text":"as json"')
            ev = json.loads(m.string)
            self.assertEqual((ev["type"], ev["from"], ev["to"]), ("message", "alice@CIC", "bob@CIC"))
            self.assertIsInstance(ev["seq"], int)
            self.assertRegex(ev["at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")
            self.ok(self.bob, "send", "alice@CIC", "reply")
            w.wait_stdout(r'"type":"ack"')
            self.assertEqual(w.stop(signal.SIGTERM), 0)
            # NDJSON: every line one event, sequence numbers increasing.
            seqs = [json.loads(line)["seq"] for line in w.stdout_lines()]
            self.assertEqual(seqs, sorted(set(seqs)))
        finally:
            w.stop()

    def test_watch_formats(self):
        # Every kind of notification, from a fake daemon that then goes away.
        notes = [
            {"method": "lagged", "params": {"missed": 5, "seq": 10}},
            {"method": "event", "params": {"seq": 11, "type": "ack", "at": "x",
                                           "peer_id": "bob@CIC", "msg_id": "m1", "rtt_ms": 0.5}},
            {"method": "event", "params": {"seq": 12, "type": "ack_timeout", "at": "x",
                                           "peer_id": "bob@CIC", "msg_id": "m2"}},
            {"method": "event", "params": {"seq": 13, "type": "registration", "at": "x",
                                           "state": "blocked", "error": "rate limited", "ttl": 0}},
            {"method": "event", "params": {"seq": 14, "type": "log", "at": "x", "level": "WARNING",
                                           "module": "Router", "text": "something"}},
            {"method": "event", "params": {"seq": 15, "type": "message", "at": "x",
                                           "from": "eve@CIC", "to": "bob@CIC", "text": "hi",
                                           "msg_id": "m3", "src_mismatch": True}},
            {"method": "event", "params": {"seq": 16, "type": "peer_connected", "at": "x",
                                           "peer_id": "bob@CIC", "reconnected": True}},
            {"method": "event", "params": {"seq": 17, "type": "from_the_future", "at": "x"}},
        ]

        def daemon(conn):
            req = json.loads(read_request(conn))
            self.assertEqual(req["method"], "subscribe")
            conn.sendall((json.dumps({"jsonrpc": "2.0", "id": req["id"],
                                      "result": {"events": [], "seq": 10}}) + "\n").encode())
            for n in notes:
                n["jsonrpc"] = "2.0"
                conn.sendall((json.dumps(n) + "\n").encode())
            conn.close()

        srv = FakeServer(daemon, "events")
        try:
            cp = ctl(srv.path, "watch")
            self.assertEqual(cp.returncode, EXIT_UNREACHABLE, describe(cp))  # the daemon left
            self.assertEqual([re.sub("^" + TS, "", l) for l in cp.out.splitlines()], [
                "* lagged: 5 events missed (now at seq 10)",
                "* ack from bob@CIC (0.50 ms) for m1",
                "* no ack from bob@CIC for m2",
                "* registration blocked: rate limited",
                "* WARNING [Router] something",
                "[eve@CIC] hi  (sender's src differs from its handshake)",
                "* peer bob@CIC reconnected",
                '* {"seq":17,"type":"from_the_future","at":"x"}',
            ])
            cp = ctl(srv.path, "--json", "watch")
            lines = [json.loads(l) for l in cp.out.splitlines()]
            self.assertEqual(lines[0], {"type": "lagged", "missed": 5, "seq": 10})
            self.assertEqual(lines[1:], [n["params"] for n in notes[1:]])
        finally:
            srv.close()

    def test_reload(self):
        cp = self.ok(self.a, "reload")
        self.assertEqual(cp.out.splitlines()[0], "configuration reloaded")
        r = self.json_ok(self.a, "reload")
        self.assertEqual(r["reloaded"], True)
        self.assertIsInstance(r["refused"], list)

    # -- unreachable, refused, no answer, protocol errors -------------------------------------

    def test_unreachable_exit_2(self):
        cp = self.fails(os.path.join(harness.tmpdir(), "absent.sock"), EXIT_UNREACHABLE, "status")
        self.assertIn("absent.sock", cp.err)
        # A socket file nobody listens on (a crashed daemon's): refused.
        path = os.path.join(harness.tmpdir(), "dead.sock")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path)
        s.close()
        self.fails(path, EXIT_UNREACHABLE, "status")
        self.fails(path, EXIT_UNREACHABLE, "--json", "peers")
        self.fails(path, EXIT_UNREACHABLE, "watch")

    def test_no_answer_exit_4(self):
        srv = FakeServer(lambda conn: (read_request(conn), time.sleep(30)), "silent")
        try:
            t0 = time.monotonic()
            cp = self.fails(srv.path, EXIT_TIMEOUT, "--timeout", "0.5", "status")
            self.assertIn("no answer", cp.err)
            self.assertLess(time.monotonic() - t0, 5)
        finally:
            srv.close()

    def test_protocol_errors_exit_6(self):
        def garbage(conn):
            read_request(conn)
            conn.sendall(b"this is not JSON\n")

        def eof(conn):
            read_request(conn)
            conn.close()

        def half_line(conn):
            read_request(conn)
            conn.sendall(b'{"jsonrpc":"2.0","id":1,"res')
            conn.close()

        def not_object(conn):
            read_request(conn)
            conn.sendall(b"[1,2,3]\n")

        def endless_line(conn):
            read_request(conn)
            # past CTL_MAX_REPLY (64 MiB), the longest reply line accepted
            conn.sendall(b"x" * (64 * 1024 * 1024 + 4096))
            time.sleep(10)

        def neither(conn):
            read_request(conn)
            conn.sendall(b'{"jsonrpc":"2.0","id":1}\n')

        def send_without_status(conn):
            read_request(conn)
            conn.sendall(b'{"jsonrpc":"2.0","id":1,"result":null}\n')

        for behaviour in (garbage, half_line, not_object, endless_line, neither):
            with self.subTest(behaviour=behaviour.__name__):
                srv = FakeServer(behaviour, behaviour.__name__)
                try:
                    cp = self.fails(srv.path, EXIT_PROTO, "status")
                    self.assertEqual(cp.out, "")
                finally:
                    srv.close()
        # An answer that does not say "acked" is no promise of delivery.
        srv = FakeServer(send_without_status, "send_without_status")
        try:
            cp = self.fails(srv.path, EXIT_PROTO, "send", "bob@CIC", "hi")
            self.assertEqual(cp.out, "")
        finally:
            srv.close()
        # Gone before answering (stopped, crashed): unreachable, try later.
        srv = FakeServer(eof, "eof")
        try:
            self.fails(srv.path, EXIT_UNREACHABLE, "status")
        finally:
            srv.close()

    def test_too_many_controllers_exit_1(self):
        # The daemon's refusal is an error about the connection (id null).
        def full(conn):
            conn.sendall(b'{"jsonrpc":"2.0","id":null,"error":{"code":-32003,"message":'
                         b'"too many controllers","data":{"reason":"too_many_clients"}}}\n')
            conn.close()
        srv = FakeServer(full, "full")
        try:
            cp = self.fails(srv.path, EXIT_DAEMON, "status")
            self.assertIn("too_many_clients", cp.err)
        finally:
            srv.close()

    def test_permission_denied_exit_5(self):
        d = tempfile.mkdtemp(prefix="chatp2p-perm-")
        os.chmod(d, 0o755)
        node = Node("perm", self.rdv, sets=SLOW_DISCOVER + ["control.mode=0600"], start=False)
        node.sock_path = os.path.join(d, "perm.sock")
        node.start()
        try:
            self.assertEqual(os.stat(node.sock_path).st_mode & 0o777, 0o600)
            if os.geteuid() == 0:
                # root passes every permission check: run as nobody instead.
                def as_nobody():
                    os.setgid(65534)
                    os.setuid(65534)
                # nobody may not be able to reach the build tree (a checkout
                # under /root): run a copy from the world-readable directory.
                copy = os.path.join(d, "chatp2pctl")
                shutil.copy2(harness.binary("CHATP2PCTL"), copy)
                cp = ctl(node, "status", preexec_fn=as_nobody, binary=copy)
            else:
                os.chmod(node.sock_path, 0)
                cp = ctl(node, "status")
            self.assertExit(cp, EXIT_PERM)
            self.assertIn("permission denied", cp.err)
            if os.geteuid() == 0:
                self.ok(node, "status")  # the same command, allowed
        finally:
            node.stop(self)
            shutil.rmtree(d)

    # -- where the socket is -------------------------------------------------------------------

    def test_socket_from_environment(self):
        cp = self.ok(None, "status", env={"CHATP2P_SOCKET": self.a.sock_path})
        self.assertRegex(cp.out, r"(?m)^peer_id:\s+alice@CIC$")
        # --socket wins over the environment.
        cp = self.ok(self.bob, "status", env={"CHATP2P_SOCKET": "/nonexistent/x.sock"})
        self.assertRegex(cp.out, r"(?m)^peer_id:\s+bob@CIC$")
        self.fails(None, EXIT_UNREACHABLE, "status", env={"CHATP2P_SOCKET": "/nonexistent/x.sock"})

    def test_default_socket_shared_with_daemon(self):
        # Neither side is told the path: both derive it from RUNTIME_DIRECTORY.
        rt = os.path.join(harness.tmpdir(), "runtime")
        os.mkdir(rt)
        env = {"RUNTIME_DIRECTORY": rt, "CHATP2P_SOCKET": ""}
        d = harness.start_daemon(["--name", "carol", "--listen", "127.0.0.1", "--port", "0",
                                  "--rendezvous", "127.0.0.1:%d" % self.rdv.port]
                                 + sum((["--set", s] for s in
                                        ["logging.log_to_file=false"] + SLOW_DISCOVER), []),
                                 name="carol", env=env)
        try:
            self.assertTrue(os.path.exists(os.path.join(rt, "chatp2pd.sock")))
            cp = self.ok(None, "status", env=env)
            self.assertRegex(cp.out, r"(?m)^peer_id:\s+carol@CIC$")
        finally:
            d.check_clean_exit(self)

    # -- wait-ready, discover/register/unregister, shutdown --------------------------------------

    def test_wait_ready(self):
        absent = os.path.join(harness.tmpdir(), "late.sock")
        t0 = time.monotonic()
        cp = self.fails(absent, EXIT_TIMEOUT, "wait-ready", "--timeout", "0.5")
        self.assertIn("not ready", cp.err)
        self.assertLess(time.monotonic() - t0, 5)
        # Waiting for a daemon that is not started yet.
        node = Node("late", self.rdv, sets=SLOW_DISCOVER, start=False)
        node.sock_path = absent
        w = harness.start(ctl_argv(absent, "wait-ready", "--timeout", "20"), name="wait-ready")
        try:
            node.start()
            self.assertEqual(w.wait(20), 0, w.stderr_text())
            self.assertEqual(w.stdout_lines(), ["ready: late@CIC registered"])
            self.assertEqual(self.json_ok(node, "wait-ready")["peer_id"], "late@CIC")
            self.assertIsNone(w.sanitizer_report())
        finally:
            w.stop()
            node.stop(self)

    def test_rendezvous_commands(self):
        node = Node("dora", self.rdv, sets=SLOW_DISCOVER)
        try:
            self.ok(node, "wait-ready", "--timeout", "15")
            cp = self.ok(node, "discover")
            self.assertRegex(cp.out, r"^PEER\s+ADDRESS\s+TTL\s+EXPIRES IN\n")
            self.assertRegex(cp.out, r"(?m)^alice@CIC\s+127\.0\.0\.1:%d\s+\d+[dhms]\w*\s+\d+[dhms]\w*$"
                             % self.a.port)
            r = self.json_ok(node, "discover")
            self.assertIn(("bob", "CIC"), {(p["name"], p["namespace"]) for p in r["peers"]})
            cp = self.ok(node, "unregister")
            self.assertEqual(cp.out, "unregistered: ok\n")
            names = {p["name"] for p in self.json_ok(node, "discover")["peers"]}
            self.assertNotIn("dora", names)
            cp = self.ok(node, "register")
            self.assertRegex(cp.out, r"^registered: ttl \d+[dhms]\w*, public address 127\.0\.0\.1:%d\n$"
                             % node.port)
            r = harness.rdv_request(self.rdv.port, {"type": "DISCOVER", "namespace": "CIC"})
            self.assertIn("dora", {p["name"] for p in r["peers"]})
        finally:
            node.stop(self)

    def test_register_unregister_json(self):
        # A node of its own: each node may ask the rendezvous server only so
        # often (its request budget), and the test above spent dora's.
        node = Node("dory", self.rdv, sets=SLOW_DISCOVER)
        try:
            self.ok(node, "wait-ready", "--timeout", "15")
            # --json: the server's answer, as the daemon read it
            self.assertEqual(self.json_ok(node, "unregister"), {})
            r = self.json_ok(node, "register")
            self.assertEqual((r["ip"], r["port"]), ("127.0.0.1", node.port))
            self.assertGreater(r["ttl"], 0)
        finally:
            node.stop(self)

    def test_rendezvous_failure_exit_1(self):
        # Its rendezvous is down: the daemon answers -32002/rendezvous and
        # chatp2pctl says so in one line, exit 1.
        nowhere = type("Nowhere", (), {"port": harness.free_port()})()
        node = Node("lonely", nowhere, sets=SLOW_DISCOVER + ["limits.rendezvous_timeout=0.5"])
        try:
            for cmd in ("discover", "register"):
                with self.subTest(cmd=cmd):
                    cp = self.fails(node, EXIT_DAEMON, cmd)
                    self.assertEqual(cp.out, "")
                    self.assertIn("rendezvous", cp.err)
            with self.assertRaises(CtlError) as cm:
                node.call("discover")
            self.assertEqual((cm.exception.code, cm.exception.reason), (-32002, "rendezvous"))
        finally:
            node.stop(self)

    def test_shutdown(self):
        node = Node("eve", self.rdv, sets=SLOW_DISCOVER)
        w = start_watch(node)
        probe = FakePeer(node, "probe")  # once watch prints it, it is subscribed
        w.wait_stdout("^" + TS + r"\* peer probe@CIC connected$")
        cp = self.ok(node, "shutdown", "--wait")
        probe.close()
        self.assertEqual(cp.out, "node stopping\n")
        self.assertEqual(node.proc.wait(15), 0, node.proc.stderr_text()[-3000:])
        self.assertIsNone(node.proc.sanitizer_report())
        # A watcher learns the daemon is gone: exit 2.
        self.assertEqual(w.wait(10), EXIT_UNREACHABLE, w.stderr_text())
        self.assertRegex(w.stderr_text(), r"^chatp2pctl: .*closed")
        # Its peers were closed on purpose: disconnected, not lost.
        self.assertIn("* peer probe@CIC disconnected (BYE_OK received)",
                      [re.sub("^" + TS, "", l) for l in w.stdout_lines()])
        self.assertFalse([l for l in w.stdout_lines() if " lost" in l], w.stdout_lines())
        self.fails(node, EXIT_UNREACHABLE, "--json", "shutdown")
        node2 = Node("eve", self.rdv, sets=SLOW_DISCOVER)
        try:
            self.assertEqual(self.json_ok(node2, "shutdown"), {"stopping": True})
            self.assertEqual(node2.proc.wait(15), 0)
            self.assertIsNone(node2.proc.sanitizer_report())
        finally:
            node2.proc.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
