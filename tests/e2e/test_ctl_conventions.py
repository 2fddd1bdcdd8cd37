"""chatp2pctl as people and scripts expect it (issue 12): global options
anywhere, "--", per-command help, did-you-mean, peers by short name, output
control (-o, --no-legend, sorting, --time), a watch that ends with its
reader, client-side timeouts that name the message, ping, methods, metrics,
per-peer counters, the reachability hint; and the 13 bugs of the issue,
each test named bugN_… after its number there."""

import grp
import json
import os
import pty
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fakepeer  # noqa: E402
import harness  # noqa: E402
from nodes import Ctl, CtlError, Node  # noqa: E402
from test_ctl import (EXIT_OK, EXIT_PERM, EXIT_TIMEOUT, EXIT_USAGE, SLOW_DISCOVER,  # noqa: E402
                      AliceBobMute, CtlAsserts, FakePeer, ctl, ctl_argv, describe, start_watch)

COMPLETION = os.path.join(os.environ.get("CHATP2P_SRC", os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..")), "scripts", "chatp2pctl.bash-completion")


class ConventionsCase(AliceBobMute, unittest.TestCase, CtlAsserts):
    """alice and bob (CIC) connected, bob@UnB too (an ambiguous "bob"),
    and mute@CIC (dialled into alice, never ACKs)."""

    def bob_events(self):
        return self.bob.events(["message"])

    # -- conventions ----------------------------------------------------------------------

    def test_global_options_anywhere(self):
        # After the command, as before it.
        st = json.loads(self.ok(self.a, "status", "--json").out)
        self.assertEqual(st["peer_id"], "alice@CIC")
        st = json.loads(self.ok(None, "status", "-j", "--socket", self.a.sock_path).out)
        self.assertEqual(st["peer_id"], "alice@CIC")
        st = json.loads(self.ok(None, "status", "-o", "json", "-s" + self.a.sock_path).out)
        self.assertEqual(st["peer_id"], "alice@CIC")
        ev = self.bob_events()
        try:
            self.ok(self.a, "send", "-t", "10", "bob@CIC", "timed")
            ev.wait_event(lambda e: e["text"] == "timed", what="'timed'")
            # -- ends the options: what follows is text, dashes and all.
            self.ok(self.a, "send", "bob@CIC", "--", "--dash")
            ev.wait_event(lambda e: e["text"] == "--dash", what="'--dash'")
            self.ok(self.a, "send", "bob@CIC", "a", "--no-ack", "b")
            ev.wait_event(lambda e: e["text"] == "a b", what="'a b' (--no-ack after the text)")
        finally:
            ev.close()

    def test_help_after_any_command(self):
        for cmd in ("send", "status", "watch", "ping", "pub", "metrics"):
            for flag in ("-h", "--help"):
                with self.subTest(cmd=cmd, flag=flag):
                    cp = self.ok(None, cmd, flag)
                    self.assertRegex(cp.out, r"^usage: chatp2pctl \[options\] %s\b" % cmd)
        self.assertIn("--no-ack", self.ok(None, "send", "--help").out)

    def test_did_you_mean(self):
        cp = self.fails(self.a, EXIT_USAGE, "statsu")
        self.assertIn("did you mean 'status'", cp.err)
        cp = self.fails(self.a, EXIT_USAGE, "help", "reconect")
        self.assertIn("did you mean 'reconnect'", cp.err)
        # Unknown peers: the closest known ids.
        cp = self.fails(self.a, EXIT_TIMEOUT, "send", "bobb@CIC", "hi")
        self.assertIn("did you mean bob@CIC", cp.err)
        cp = self.fails(self.a, EXIT_TIMEOUT, "send", "alcie", "hi")
        self.assertIn("unknown peer 'alcie'", cp.err)

    def test_short_peer_names(self):
        ev = self.bob_events()
        try:
            self.ok(self.a, "send", "bob", "by name")
            ev.wait_event(lambda e: e["text"] == "by name", what="'by name'")
            self.ok(self.a, "send", "BOB", "any case")
            ev.wait_event(lambda e: e["text"] == "any case", what="'any case'")
        finally:
            ev.close()
        # Sending to ourselves says so, by name or by id.
        for who in ("alice", "alice@CIC"):
            with self.subTest(who=who):
                cp = self.fails(self.a, EXIT_USAGE, "send", who, "me")
                self.assertIn("alice@CIC is this node", cp.err)
        # Ambiguous: a second bob in another namespace.
        other = fakepeer.FakePeer("bob", "UnB")
        try:
            other.dial(self.a.port)
            self.a.wait_active("bob@UnB")
            cp = self.fails(self.a, EXIT_USAGE, "send", "bob", "which one")
            self.assertIn("'bob' is ambiguous: ", cp.err)
            self.assertIn("bob@CIC", cp.err)
            self.assertIn("bob@UnB", cp.err)
        finally:
            other.close()

    def test_output_control(self):
        cp = self.ok(self.a, "peers", "-o", "tsv")
        lines = cp.out.splitlines()
        self.assertEqual(lines[0].split("\t")[:3], ["PEER", "STATE", "ADDRESS"])
        rows = [l.split("\t") for l in lines[1:]]
        # 10: IDENTITY (issue 17, PROTOCOL.md §5.3) joined the 9 columns.
        self.assertTrue(all(len(r) == 10 for r in rows), cp.out)
        ids = [r[0] for r in rows]
        self.assertEqual(ids, sorted(ids))  # sorted by peer id
        cp = self.ok(self.a, "peers", "--no-legend")
        self.assertNotIn("PEER", cp.out)
        self.assertEqual([l.split()[0] for l in cp.out.splitlines()], ids)
        cp = self.ok(self.a, "peers", "--sort", "state", "-o", "tsv", "--no-legend")
        states = [l.split("\t")[1] for l in cp.out.splitlines()]
        self.assertEqual(states, sorted(states))
        # --time=iso: LAST SEEN in the local zone, as ISO 8601.
        cp = self.ok(self.a, "peers", "--time=iso", "-o", "tsv", "--no-legend")
        self.assertRegex(cp.out, r"\t\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}\t")
        cp = self.ok(self.a, "conn", "--time", "relative")
        self.assertRegex(cp.out, r"\d+(\.\d)?[smhd]\w* ago")
        self.fails(self.a, EXIT_USAGE, "peers", "-o", "yaml")
        self.fails(self.a, EXIT_USAGE, "peers", "--time", "tomorrow")

    def test_watch_ends_when_its_reader_goes_away(self):
        # "watch | head -1": head leaves after one line; watch must follow
        # at once, not at the next event (there is none here).
        c = self.a.ctl()
        try:
            seq = c.call("subscribe", {"events": []})["seq"]
        finally:
            c.close()
        self.ok(self.bob, "send", "alice@CIC", "one event to print")
        # Messages only: nothing else arrives later to end it by a failed write.
        argv = ctl_argv(self.a, "--json", "watch", "--since", str(seq), "message")
        r, w = os.pipe()
        p = subprocess.Popen(argv, stdout=w, stderr=subprocess.PIPE)
        os.close(w)
        try:
            ready, _, _ = select.select([r], [], [], 10)
            self.assertTrue(ready, "watch printed nothing")
            os.read(r, 1)
            os.close(r)  # the reader goes away
            r = None
            t0 = time.monotonic()
            p.wait(timeout=5)
            self.assertLess(time.monotonic() - t0, 5)
            self.assertEqual(p.returncode, 0, p.stderr.read())
        finally:
            if r is not None:
                os.close(r)
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stderr.close()

    def test_client_timeout_names_peer_and_msg_id(self):
        # mute never ACKs: our -t 1 ends first (the daemon's ack_timeout is 3 s).
        cp = self.fails(self.a, EXIT_TIMEOUT, "--json", "-t", "1", "send", "mute@CIC", "slow")
        self.assertIn("mute@CIC", cp.err)
        self.assertNotIn("no answer from the daemon", cp.err)
        err = json.loads(cp.out)
        self.assertEqual(err["data"]["reason"], "client_timeout")
        msg_id = err["data"]["msg_id"]
        self.assertIn(msg_id, cp.err)
        # The message went out under that id: the peer saw it.
        harness.wait_for(lambda: msg_id in self.mute.sends, 5, what="mute to get the SEND")

    def test_terminal_stdin_says_it_is_reading(self):
        pid, fd = pty.fork()
        if pid == 0:
            os.execv(ctl_argv(self.a)[0], ctl_argv(self.a, "send", "bob@CIC"))
        try:
            out = b""
            deadline = time.monotonic() + 10
            while b"Ctrl-D to send" not in out and time.monotonic() < deadline:
                if select.select([fd], [], [], 0.5)[0]:
                    try:
                        out += os.read(fd, 4096)
                    except OSError:
                        break
            self.assertIn(b"reading the message from standard input (Ctrl-D to send)", out)
            os.write(fd, b"from a tty\n\x04")
            _, status = os.waitpid(pid, 0)
            pid = None
            self.assertEqual(os.waitstatus_to_exitcode(status), 0)
        finally:
            if pid:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
            os.close(fd)
        # Not a terminal: not a word (ok() checks stderr is empty).
        self.ok(self.a, "send", "bob@CIC", input="from a pipe\n")

    # -- new commands ---------------------------------------------------------------------

    def test_ping(self):
        cp = self.ok(self.a, "ping", "bob", "-c", "3", "-i", "0.05")
        self.assertEqual(len(re.findall(r"(?m)^pong from bob@CIC: \d+\.\d\d ms$", cp.out)), 3, cp.out)
        self.assertRegex(cp.out, r"(?m)^bob@CIC: 3 sent, 3 answered; rtt min/avg/max "
                                 r"[\d.]+/[\d.]+/[\d.]+ ms$")
        r = json.loads(self.ok(self.a, "--json", "ping", "bob@CIC", "-c", "1").out)
        self.assertEqual((r["sent"], r["answered"], len(r["rtt_ms"])), (1, 1, 1))
        self.assertLessEqual(r["min"], r["max"])
        # Unknown or not connected: exit 4.
        self.fails(self.a, EXIT_TIMEOUT, "ping", "nobody@CIC", "-c", "1")
        # A peer that does not answer PING: exit 4 too.
        quiet = fakepeer.FakePeer("quiet", auto_pong=False)
        try:
            quiet.dial(self.a.port)
            self.a.wait_active("quiet@CIC")
            cp = self.fails(self.a, EXIT_TIMEOUT, "ping", "quiet@CIC", "-c", "1")
            self.assertIn("no pong from quiet@CIC", cp.out)
        finally:
            quiet.close()

    def test_methods(self):
        cp = self.ok(self.a, "methods")
        for m in ("status", "send", "ping", "methods", "metrics"):
            self.assertRegex(cp.out, r"(?m)^%s\s+\S" % re.escape(m))
        r = self.json_ok(self.a, "methods")
        self.assertIn("ping", {m["name"] for m in r["methods"]})
        self.assertTrue(all(m["description"] for m in r["methods"]))

    def test_traffic_counters(self):
        self.ok(self.a, "send", "bob@CIC", "count me")
        self.ok(self.a, "pub", "*", "and me")
        p = {x["peer_id"]: x for x in self.json_ok(self.a, "peers")["peers"]}["bob@CIC"]
        t = p["traffic"]
        self.assertGreaterEqual(t["sends_acked"], 1)
        self.assertGreaterEqual(t["pubs_out"], 1)
        self.assertGreaterEqual(t["msgs_out"], 2)
        self.assertGreater(t["bytes_out"], len("count me"))
        self.assertGreaterEqual(t["msgs_in"], 1)  # the ACK, at least
        self.assertIn("reconnects", p)
        conns = [c for c in self.json_ok(self.a, "conn")["connections"]
                 if c["peer_id"] == "bob@CIC" and c["primary"]]
        self.assertEqual(conns[0]["traffic"]["sends_acked"], t["sends_acked"])

    def test_metrics(self):
        self.ok(self.a, "send", "bob@CIC", "for the histogram")
        cp = self.ok(self.a, "metrics")
        text = cp.out
        samples = {}
        for line in text.splitlines():
            if line.startswith("#"):
                self.assertRegex(line, r"^# (HELP|TYPE) chatp2p_\w+ ")
                continue
            m = re.match(r"^(chatp2p_\w+)(\{[^}]*\})? (\S+)$", line)
            self.assertTrue(m, "not an exposition line: %r" % line)
            samples[m.group(1) + (m.group(2) or "")] = float(m.group(3))
        self.assertGreaterEqual(samples['chatp2p_peers{state="ACTIVE"}'], 2)
        self.assertIn('chatp2p_connections{direction="inbound"}', samples)
        self.assertGreaterEqual(samples['chatp2p_messages_total{direction="out",type="SEND"}'], 1)
        self.assertGreater(samples['chatp2p_message_bytes_total{direction="in",type="ACK"}'], 0)
        self.assertGreaterEqual(samples["chatp2p_ack_rtt_seconds_count"], 1)
        self.assertEqual(samples['chatp2p_ack_rtt_seconds_bucket{le="+Inf"}'],
                         samples["chatp2p_ack_rtt_seconds_count"])
        self.assertGreaterEqual(samples['chatp2p_rendezvous_requests_total{kind="register"}'], 1)
        self.assertIn('chatp2p_rendezvous_errors_total{kind="discover"}', samples)
        self.assertGreaterEqual(samples["chatp2p_controllers"], 1)
        self.assertIn("chatp2p_events_dropped_total", samples)
        self.assertIn("# TYPE chatp2p_ack_rtt_seconds histogram", text)

    # -- bugs ----------------------------------------------------------------------------------

    def test_bug1_completion_quotes_star_and_offers_namespaces(self):
        d = tempfile.mkdtemp(prefix="chatp2p-compl-")
        bindir = os.path.dirname(harness.binary("CHATP2PCTL"))
        try:
            for name in ("afile", "bfile"):
                open(os.path.join(d, name), "w").close()
            script = ('source "%s"; COMP_WORDS=(chatp2pctl --socket "%s" %s ""); '
                      'COMP_CWORD=4; _chatp2pctl; printf "%%s\\n" "${COMPREPLY[@]}"')
            env = dict(os.environ, PATH=bindir + ":" + os.environ.get("PATH", ""))
            for cmd in ("pub", "peers"):
                with self.subTest(cmd=cmd):
                    out = subprocess.run(["bash", "--norc", "-c", script % (COMPLETION, self.a.sock_path,
                                                                          cmd)],
                                         cwd=d, env=env, capture_output=True, text=True,
                                         timeout=30).stdout.split("\n")
                    self.assertNotIn("afile", out)
                    self.assertIn("'*'", out)
                    self.assertIn("'#CIC'", out)
            out = subprocess.run(["bash", "--norc", "-c",
                                  script.replace("COMP_CWORD=4", "COMP_CWORD=4")
                                  % (COMPLETION, self.a.sock_path, "call")],
                                 cwd=d, env=env, capture_output=True, text=True, timeout=30).stdout
            self.assertIn("ping\n", out)  # call completes from the daemon's methods
        finally:
            shutil.rmtree(d)

    def test_bug2_empty_text_refused(self):
        ev = self.bob_events()
        try:
            cp = self.fails(self.a, EXIT_USAGE, "send", "bob@CIC", "")
            self.assertIn("nothing to send", cp.err)
            self.fails(self.a, EXIT_USAGE, "send", "bob@CIC", input=b"")
            self.fails(self.a, EXIT_USAGE, "pub", "*", "")
            self.ok(self.a, "send", "bob@CIC", "marker")
            e = ev.wait_event(lambda e: True, what="the next message")
            self.assertEqual(e["text"], "marker")  # no empty one before it
        finally:
            ev.close()

    def test_bug3_reconnect_keeps_a_healthy_connection(self):
        before = [c["since"] for c in self.a.connections_to("bob@CIC")]
        ev = self.a.events(["peer"])
        try:
            cp = self.ok(self.a, "reconnect", "bob@CIC")
            self.assertIn("already connected", cp.out)
            self.assertIn("kept", cp.out)
            r = self.json_ok(self.a, "reconnect", "bob")
            self.assertEqual((r["dialling"], r["connected"]), (0, True))
            self.ok(self.a, "status")  # a round trip: any event would be queued by now
            self.assertFalse([e for e in ev.notes if e.get("peer_id") == "bob@CIC"], ev.notes)
        finally:
            ev.close()
        self.assertEqual([c["since"] for c in self.a.connections_to("bob@CIC")], before)

    def test_bug5_unknown_peer_same_for_every_command(self):
        for args in (["send", "nobody@CIC", "hi"], ["reconnect", "nobody@CIC"],
                     ["ping", "nobody@CIC", "-c", "1"]):
            with self.subTest(args=args):
                cp = self.fails(self.a, EXIT_TIMEOUT, *args)
                self.assertIn("unknown peer", cp.err)
        cp = self.fails(self.a, EXIT_TIMEOUT, "reconnect", "bobb@CIC")
        self.assertIn("did you mean bob@CIC", cp.err)

    def test_bug7_success_rate_null_without_attempts(self):
        # mute dialled alice: she never dialled it.
        p = {x["peer_id"]: x for x in self.json_ok(self.a, "peers")["peers"]}["mute@CIC"]
        self.assertEqual(p["attempts"], 0)
        self.assertIsNone(p["success_rate"])
        row = [l for l in self.ok(self.a, "peers").out.splitlines() if l.startswith("mute@CIC")]
        # SUCCESS is "-" (IDENTITY, issue 17 §5.3, is the last column now).
        self.assertEqual(row[0].split()[-2], "-", row)

    def test_bug9_params_must_be_an_object(self):
        cp = self.fails(self.a, EXIT_USAGE, "call", "status", "[1]")
        self.assertIn("must be an object", cp.err)
        c = Ctl(self.a.sock_path)
        try:
            with self.assertRaises(CtlError) as cm:
                c.call("status", [1])
            self.assertEqual((cm.exception.code, cm.exception.reason), (-32602, "bad_params"))
        finally:
            c.close()

    def test_bug10_texts_logged_at_debug_only(self):
        node = Node("quietlog", self.rdv, sets=SLOW_DISCOVER + ["logging.level=INFO"])
        try:
            FakeSender = FakePeer  # dials, handshakes; we write the SEND ourselves
            fp = FakeSender(node, "teller")
            node.wait_active("teller@CIC")
            fp._write({"type": "SEND", "msg_id": "6d2c1d6e-0000-4000-8000-000000000001",
                       "src": "teller@CIC", "dst": "quietlog@CIC", "payload": "a private secret",
                       "require_ack": True, "ttl": 1})
            harness.wait_for(lambda: "teller@CIC: 16 bytes" in node.proc.stderr_text()
                             or "from teller@CIC: 16 bytes" in node.proc.stderr_text(), 10,
                             what="the INFO line with the size")
            self.assertNotIn("a private secret", node.proc.stderr_text())
            fp.close()
        finally:
            node.stop(self)

    def test_bug12_permission_denied_names_the_group(self):
        d = tempfile.mkdtemp(prefix="chatp2p-perm-")
        os.chmod(d, 0o755)
        node = Node("permg", self.rdv, sets=SLOW_DISCOVER + ["control.mode=0660"], start=False)
        node.sock_path = os.path.join(d, "permg.sock")
        node.start()
        try:
            group = grp.getgrgid(os.stat(node.sock_path).st_gid).gr_name
            if os.geteuid() == 0:
                def as_nobody():
                    os.setgroups([])
                    os.setgid(65534)
                    os.setuid(65534)
                copy = os.path.join(d, "chatp2pctl")
                shutil.copy2(harness.binary("CHATP2PCTL"), copy)
                cp = ctl(node, "status", preexec_fn=as_nobody, binary=copy)
            else:
                os.chmod(node.sock_path, 0)
                cp = ctl(node, "status")
            self.assertExit(cp, EXIT_PERM)
            self.assertIn("permission denied", cp.err)
            self.assertIn("group '%s'" % group, cp.err)
        finally:
            node.stop(self)
            shutil.rmtree(d)

    def test_bug13_pub_to_nobody_exits_4(self):
        cp = self.fails(self.a, EXIT_TIMEOUT, "pub", "#nowhere", "hello?")
        self.assertIn("nobody received it", cp.err)
        self.assertEqual(cp.out, "")


class NodeLifeCase(unittest.TestCase, CtlAsserts):
    """Bugs and features that need nodes of their own."""

    @classmethod
    def setUpClass(cls):
        cls.rdv = harness.start_rendezvous("rate_limit=100000")

    @classmethod
    def tearDownClass(cls):
        cls.rdv.check_clean_exit()

    def test_bug4_discover_keeps_the_address_of_a_connected_peer(self):
        a = Node("anna", self.rdv, sets=SLOW_DISCOVER)
        carol = fakepeer.FakePeer("carol", "UnB")
        try:
            self.ok(a, "wait-ready", "--timeout", "15")
            carol.register(self.rdv)
            carol.dial(a.port)  # she dials first: anna learns her without an address
            a.wait_active("carol@UnB")
            self.ok(a, "discover")  # ... until a DISCOVER lists it
            p = a.peer("carol@UnB")
            self.assertEqual((p.get("ip"), p.get("port")), ("127.0.0.1", carol.port), p)
        finally:
            carol.close()
            a.stop(self)

    def test_bug6_bye_has_a_reason(self):
        a = Node("amy", self.rdv, sets=SLOW_DISCOVER)
        self.ok(a, "wait-ready", "--timeout", "15")
        e = Node("eve", self.rdv, sets=SLOW_DISCOVER)
        try:
            a.wait_active("eve@CIC")
            ev = a.events(["peer"])
            self.ok(e, "shutdown", "--wait")
            got = ev.wait_event(lambda x: x["type"] == "peer_disconnected"
                                and x["peer_id"] == "eve@CIC", what="eve's BYE")
            ev.close()
            self.assertEqual(got["reason"], "peer said BYE: shutdown")
            self.assertEqual(e.proc.wait(15), 0)
            self.assertRegex(a.proc.stderr_text(), r"eve@CIC left: peer said BYE: shutdown")
        finally:
            if e.proc.alive():
                e.stop(self)
            a.stop(self)

    def test_bug8_old_rendezvous_error_is_labelled(self):
        port = harness.free_port()
        sets = SLOW_DISCOVER + ["rendezvous.port=%d" % port]
        a = Node("late", self.rdv, sets=sets)
        try:
            harness.wait_for(lambda: a.call("status")["rendezvous"].get("last_error"), 10,
                             what="a registration error")
            rdv2 = harness.start_rendezvous("port=%d" % port)
            try:
                self.ok(a, "wait-ready", "--timeout", "15")
                st = self.json_ok(a, "status")["rendezvous"]
                self.assertRegex(st["last_error_at"], r"^\d{4}-\d\d-\d\dT")
                cp = self.ok(a, "status")
                self.assertRegex(cp.out, r"(?m)^last error \(\d+(\.\d)?[smhd]\w* ago, registered "
                                         r"since\): ")
            finally:
                a.stop(self)
                rdv2.check_clean_exit()
        finally:
            if a.proc.alive():
                a.stop(self)

    def test_bug11_rendezvous_server_writes_no_log_file_by_default(self):
        d = tempfile.mkdtemp(prefix="chatp2p-rdvlog-")
        try:
            p = harness.start_daemon(["--rendezvous-server", "--listen", "127.0.0.1", "--port", "0"],
                                     name="rdv-cwd", cwd=d)
            harness.rdv_request(p.port, {"type": "DISCOVER", "namespace": "CIC"})
            p.check_clean_exit(self)
            self.assertEqual(os.listdir(d), [])
            # Asked for: then it writes one.
            p = harness.start_daemon(["--rendezvous-server", "--listen", "127.0.0.1", "--port", "0",
                                      "--set", "logging.file=%s/rdv.log" % d], name="rdv-file",
                                     cwd=d)
            p.check_clean_exit(self)
            self.assertEqual(os.listdir(d), ["rdv.log"])
        finally:
            shutil.rmtree(d)

    def test_reachability_hint(self):
        # Registered, dials out fine (to peers that never dial back), and
        # nobody dials in: status names the likely cause.
        outs = [fakepeer.FakePeer("out%d" % i) for i in range(2)]
        for fp in outs:
            fp.register(self.rdv)
        a = Node("natted", self.rdv, sets=["rendezvous.discover_interval=1"])
        try:
            a.wait_active("out0@CIC", "out1@CIC")
            harness.wait_for(lambda: a.call("status")["reachability"].get("hint"), 30,
                             what="the reachability hint")
            cp = self.ok(a, "status")
            self.assertRegex(cp.out, r"(?m)^reachable\?\s+registered for .* no peer has dialled in "
                                     r"since: port %d is likely not reachable from outside "
                                     r"\(NAT or firewall\)" % a.port)
            r = self.json_ok(a, "status")["reachability"]
            self.assertEqual(r["inbound"], 0)
            self.assertGreaterEqual(r["outbound"], 2)
            # One peer dials in: no more hint.
            fp = FakePeer(a, "caller")
            try:
                a.wait_active("caller@CIC")
                self.assertNotIn("hint", self.json_ok(a, "status")["reachability"])
            finally:
                fp.close()
        finally:
            a.stop(self)
            for fp in outs:
                fp.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
