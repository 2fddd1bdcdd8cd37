"""chatp2pd's control socket under pressure and abuse: malformed requests,
a 1 MB line, controllers that leave mid-request, pipelining, 20 controllers
with 5 watchers, a watcher that stops reading, history replay, the socket
file (mode, stale socket, a regular file, two daemons on one path)."""

import json
import os
import signal
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from nodes import Ctl, CtlError, Node  # noqa: E402
from test_ctl import (EXIT_DAEMON, EXIT_OK, SLOW_DISCOVER, CtlAsserts, FakePeer,  # noqa: E402
                      ctl, describe)


def raw_line(sock, timeout=10.0):
    """One line (parsed) from a raw control socket."""
    buf = getattr(sock, "_buf", b"")
    deadline = time.monotonic() + timeout
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("no line from the control socket within %.1f s" % timeout)
        sock.settimeout(left)
        d = sock.recv(65536)
        if not d:
            raise EOFError("control socket closed")
        buf += d
    line, sock._buf = buf.split(b"\n", 1)
    return json.loads(line)


class RawSock(socket.socket):
    pass


def raw_connect(path):
    s = RawSock(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    return s


class Watcher:
    """A subscriber read by a thread of its own, so it never lags behind."""

    def __init__(self, path, params):
        self.c = Ctl(path)
        self.seq0 = self.c.call("subscribe", params)["seq"]
        self.notes = list(self.c.notes)
        self.c.notes.clear()
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            while True:
                msg = self.c._read_line(time.monotonic() + 3600)
                with self.cond:
                    self.notes.append(msg)
                    self.cond.notify_all()
        except (OSError, EOFError, ValueError):
            pass

    def wait(self, pred, timeout=20.0, what="event"):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for n in self.notes:
                    if n.get("method") == "event" and pred(n["params"]):
                        return n["params"]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("watcher: no %s within %.1f s" % (what, timeout))
                self.cond.wait(left)

    def events(self):
        with self.cond:
            return [n["params"] for n in self.notes if n.get("method") == "event"]

    def lagged(self):
        with self.cond:
            return [n["params"] for n in self.notes if n.get("method") == "lagged"]

    def close(self):
        self.c.close()
        self.thread.join(5)


def consecutive(testcase, events, first=None):
    seqs = [e["seq"] for e in events]
    testcase.assertTrue(seqs, "no events")
    if first is not None:
        testcase.assertEqual(seqs[0], first, "the first event after subscribing")
    testcase.assertEqual(seqs, list(range(seqs[0], seqs[0] + len(seqs))),
                         "sequence numbers not consecutive")


class RequestsCase(unittest.TestCase, CtlAsserts):
    """Bad requests and odd controllers against alice (bob and mute@CIC, a
    peer that never ACKs, connected to her)."""

    @classmethod
    def setUpClass(cls):
        cls.rdv = harness.start_rendezvous("rate_limit=100000")
        cls.alice = Node("alice", cls.rdv, sets=SLOW_DISCOVER + ["control.history=8"])
        cls.mute = FakePeer(cls.alice, "mute")
        cls.alice.wait_active("mute@CIC")

    @classmethod
    def tearDownClass(cls):
        cls.mute.close()
        # Exit 0 and nothing from the sanitizers after all the abuse.
        cls.alice.stop()
        cls.rdv.check_clean_exit()

    def setUp(self):
        self.s = raw_connect(self.alice.sock_path)

    def tearDown(self):
        self.s.close()
        # Whatever a test did, the daemon still answers.
        self.assertEqual(self.alice.call("status")["peer_id"], "alice@CIC")

    def send(self, data):
        self.s.sendall(data if isinstance(data, bytes) else data.encode())

    def error_of(self, data):
        self.send(data)
        msg = raw_line(self.s)
        self.assertIn("error", msg, msg)
        self.assertEqual(msg["jsonrpc"], "2.0")
        return msg

    def still_usable(self):
        self.send('{"jsonrpc":"2.0","id":"after","method":"status"}\n')
        msg = raw_line(self.s)
        self.assertEqual(msg["id"], "after")
        self.assertEqual(msg["result"]["peer_id"], "alice@CIC")

    def test_malformed_json(self):
        for bad in (b"{not json\n", b'{"jsonrpc":"2.0","id":1,\n', b"\xff\xfe\n",
                    b'{"a":"\x00"}\n', b"[" * 100 + b"\n"):
            with self.subTest(bad=bad):
                msg = self.error_of(bad)
                self.assertEqual(msg["error"]["code"], -32700)
                self.assertEqual(msg["error"]["data"]["reason"], "parse_error")
                self.assertIsNone(msg["id"])
        self.still_usable()

    def test_not_an_object(self):
        for bad in (b"[1,2]\n", b"42\n", b'"status"\n', b"null\n", b"true\n", b"[]\n"):
            with self.subTest(bad=bad):
                msg = self.error_of(bad)
                self.assertEqual(msg["error"]["code"], -32600)
                self.assertEqual(msg["error"]["data"]["reason"], "invalid_request")
        msg = self.error_of('{"jsonrpc":"2.0","id":1}\n')
        self.assertEqual((msg["id"], msg["error"]["code"]), (1, -32600))
        msg = self.error_of('{"jsonrpc":"2.0","id":{"x":1},"method":"status"}\n')
        self.assertEqual(msg["error"]["code"], -32600)
        self.still_usable()

    def test_unknown_method(self):
        msg = self.error_of('{"jsonrpc":"2.0","id":"abc","method":"frobnicate"}\n')
        self.assertEqual(msg["id"], "abc")
        self.assertEqual((msg["error"]["code"], msg["error"]["data"]["reason"]),
                         (-32601, "unknown_method"))
        msg = self.error_of('{"jsonrpc":"2.0","id":7,"method":5}\n')
        self.assertEqual((msg["id"], msg["error"]["code"]), (7, -32600))
        self.still_usable()

    def test_wrong_param_types(self):
        cases = [
            ("send", {"to": 5, "text": "x"}), ("send", {"to": "bob@CIC"}),
            ("send", {"to": "bob@CIC", "text": 1}),
            ("send", {"to": "bob@CIC", "text": "x", "require_ack": "yes"}),
            ("send", {"to": "not a peer", "text": "x"}), ("pub", {"to": 5, "text": "t"}),
            ("pub", {"to": "*"}), ("peers", {"filter": 1}), ("peers", {"discover": "yes"}),
            ("peers", {"filter": "bob@CIC"}), ("log.set", {"level": 5}), ("log.set", {}),
            ("log.set", {"level": "loud"}), ("subscribe", {"events": "message"}),
            ("subscribe", {"events": ["message", 3]}), ("subscribe", {"since": -1}),
            ("subscribe", {"since": "x"}), ("subscribe", {"log_level": "loud"}),
            ("unsubscribe", {"events": {}}), ("reconnect", {"peer": 5}), ("send", 5),
            ("status", "x"),
        ]
        c = self.alice.ctl()
        try:
            for method, params in cases:
                with self.subTest(method=method, params=params):
                    with self.assertRaises(CtlError) as cm:
                        c.call(method, params)
                    self.assertEqual((cm.exception.code, cm.exception.reason),
                                     (-32602, "bad_params"))
        finally:
            c.close()
        self.still_usable()

    def test_one_megabyte_line(self):
        big = b'{"jsonrpc":"2.0","id":1,"method":"send","params":{"to":"bob@CIC","text":"' \
              + b"x" * (1024 * 1024) + b'"}}\n'
        try:
            self.send(big)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the daemon may close us instead: that is allowed too
        try:
            msg = raw_line(self.s)
        except (EOFError, ConnectionResetError):
            return
        self.assertEqual((msg["error"]["code"], msg["error"]["data"]["reason"]),
                         (-32003, "line_too_long"))
        self.still_usable()

    def test_disconnect_mid_request(self):
        w = Watcher(self.alice.sock_path, {"events": ["ack"]})
        try:
            # A send waiting for an ACK that never comes, and its controller
            # gone before the answer.
            self.send('{"jsonrpc":"2.0","id":1,"method":"send","params":'
                      '{"to":"mute@CIC","text":"bye"}}\n')
            # And ones that leave before even being read.
            for method in ("status", "peers", "send"):
                s = raw_connect(self.alice.sock_path)
                s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"%s","params":'
                          b'{"to":"mute@CIC","text":"x"}}\n' % method.encode())
                s.close()
            harness.wait_for(lambda: len(self.mute.sends) >= 1, 5, what="the SEND at mute")
            self.s.close()
            # The ACK timeout fires after its controller left: no crash.
            w.wait(lambda e: e["type"] == "ack_timeout", 15, what="ack_timeout")
        finally:
            w.close()

    def test_event_order_when_a_controller_write_fails(self):
        # A subscriber that stops taking data (SHUT_RD: writes to it fail)
        # is dropped in the middle of a fan-out; a DEBUG log watcher must
        # still see every event once and in order (the drop's own log line
        # once overtook the event being sent).
        w = Watcher(self.alice.sock_path, {"events": ["all"], "log_level": "DEBUG"})
        deaf = raw_connect(self.alice.sock_path)
        try:
            deaf.sendall(b'{"jsonrpc":"2.0","id":1,"method":"subscribe","params":{"events":["all"]}}\n')
            self.assertIn("result", raw_line(deaf))
            deaf.shutdown(socket.SHUT_RD)
            c = self.alice.ctl()
            try:
                for level in ("INFO", "DEBUG") * 5:
                    c.call("log.set", {"level": level})
            finally:
                c.close()
            w.wait(lambda e: e["type"] == "log" and "INFO -> DEBUG" in e.get("text", "")
                   and e["seq"] > w.seq0 + 8, 10, what="the last log.set")
            consecutive(self, w.events(), first=w.seq0 + 1)
        finally:
            deaf.close()
            w.close()

    def test_unsubscribe(self):
        c = self.alice.ctl()
        try:
            c.call("subscribe", {"events": ["peer", "log"]})
            self.assertEqual(c.call("unsubscribe", {"events": ["log"]}), {})
            self.alice.call("log.set", {"level": "DEBUG"})  # a log event nobody here wants
            self.alice.call("log.set", {"level": "INFO"})
            self.visit("caller")                           # peer events, still wanted
            c.call("status")  # everything sent before this answer has been read
            types = [n["params"]["type"] for n in c.notes if n.get("method") == "event"]
            self.assertIn("peer_connected", types)
            self.assertNotIn("log", types)
            c.notes.clear()
            # Without params: all of them.
            self.assertEqual(c.call("unsubscribe"), {})
            self.visit("unheard")
            c.call("status")
            self.assertEqual([n for n in c.notes if n.get("params", {}).get("peer_id") ==
                              "unheard@CIC"], [])
        finally:
            c.close()

    def test_empty_object_is_answered(self):
        # No "method" and no "id": not a notification, an invalid request.
        self.send(b"{}\n")
        msg = raw_line(self.s)
        self.assertIsNone(msg["id"])
        self.assertEqual(msg["error"]["data"]["reason"], "invalid_request")
        self.still_usable()

    def test_pipelined_answers_by_id(self):
        c = self.alice.ctl()
        try:
            slow = c.request("send", {"to": "mute@CIC", "text": "waits for an ACK"})
            fast = [c.request("status"), c.request("peers"), c.request("log.get")]
            order = []
            deadline = time.monotonic() + 15
            while len(order) < 4:
                c._pump(deadline)
                for rid in list(c.answers):
                    if rid not in order:
                        order.append(rid)
            self.assertEqual(order[-1], slow, "the send is answered last")
            self.assertEqual(sorted(order[:3]), sorted(fast))
            with self.assertRaises(CtlError) as cm:
                c.answer(slow)
            self.assertEqual(cm.exception.reason, "ack_timeout")
            self.assertEqual(c.answer(fast[0])["peer_id"], "alice@CIC")
        finally:
            c.close()

    def test_string_ids_and_notifications(self):
        # No id: a notification, answered by nothing; the next request is.
        self.send('{"jsonrpc":"2.0","method":"log.get"}\n')
        self.send('{"jsonrpc":"2.0","id":"x-1","method":"log.get"}\n')
        msg = raw_line(self.s)
        self.assertEqual(msg["id"], "x-1")
        self.send('{"jsonrpc":"2.0","id":12345678901234,"method":"version"}\n')
        self.assertEqual(raw_line(self.s)["id"], 12345678901234)

    def visit(self, name):
        """A peer comes and goes: two peer events."""
        v = FakePeer(self.alice, name)
        v.close()
        harness.wait_for(lambda: self.alice.state_of(v.peer_id) not in (None, "ACTIVE"), 10,
                         what="%s gone" % v.peer_id)

    def test_history_since(self):
        c = self.alice.ctl()
        try:
            seq = c.call("subscribe", {"events": []})["seq"]
        finally:
            c.close()
        self.visit("visitor")
        # Resume from seq: both events come back, in order.
        c = self.alice.ctl()
        try:
            r = c.call("subscribe", {"events": ["peer"], "since": seq})
            self.assertGreaterEqual(r["seq"], seq + 2)
            e1 = c.wait_event(lambda e: e["type"] == "peer_connected"
                              and e["peer_id"] == "visitor@CIC", what="the replayed connect")
            e2 = c.wait_event(lambda e: e["type"] in ("peer_disconnected", "peer_stale")
                              and e["peer_id"] == "visitor@CIC", what="the replayed loss")
            self.assertTrue(seq < e1["seq"] < e2["seq"], (seq, e1, e2))
        finally:
            c.close()

    def test_history_gap_reported_as_lagged(self):
        c = self.alice.ctl()
        try:
            seq = c.call("subscribe", {"events": []})["seq"]
        finally:
            c.close()
        # Further back than the history holds (control.history=8): the
        # subscriber is told how many it lost, then gets live events.
        for i in range(5):
            self.visit("visitor%d" % i)
        c = self.alice.ctl()
        try:
            sub = c.call("subscribe", {"events": ["peer"], "since": seq})
            deadline = time.monotonic() + 10
            lagged = None
            while lagged is None:
                while c.notes and lagged is None:
                    n = c.notes.pop(0)
                    if n.get("method") == "lagged":
                        lagged = n["params"]
                if lagged is None:
                    try:
                        c._pump(deadline)
                    except TimeoutError:
                        # (control.c ctl_subscribe must arm the write
                        # watcher when it counts a gap as missed.)
                        self.fail("no lagged notification after subscribing with a since "
                                  "older than the history: the subscriber hears nothing")
            self.assertGreater(lagged["missed"], 0)
            # Then what the history still holds is replayed (the last
            # visitor's events, from before the subscription) ...
            ev = c.wait_event(lambda e: e.get("peer_id") == "visitor4@CIC", 5,
                              what="the events the history holds, replayed after the gap")
            self.assertLessEqual(ev["seq"], sub["seq"])
            # ... and from then on, live events.
            self.visit("latecomer")
            c.wait_event(lambda e: e.get("peer_id") == "latecomer@CIC", what="a live event")
        finally:
            c.close()


class StopWithRequestsCase(unittest.TestCase):
    """Requests still waiting when the node stops are answered, not lost
    (and not leaked: LeakSanitizer runs on the daemon's exit)."""

    def test_waiting_send_answered_stopping(self):
        rdv = harness.start_rendezvous("rate_limit=100000")
        alice = Node("alice", rdv, sets=SLOW_DISCOVER + ["network.ack_timeout=60"])
        mute = FakePeer(alice, "mute")
        alice.wait_active("mute@CIC")
        stays = alice.ctl()
        try:
            waiting = stays.request("send", {"to": "mute@CIC", "text": "still there?"})
            # One more whose controller leaves before the answer.
            gone = alice.ctl()
            gone.request("send", {"to": "mute@CIC", "text": "anyone?"})
            harness.wait_for(lambda: len(mute.sends) >= 2, 5, what="both SENDs at mute")
            gone.close()
            alice.proc.send_signal(signal.SIGTERM)
            with self.assertRaises(CtlError) as cm:
                stays.answer(waiting, timeout=10)
            self.assertEqual((cm.exception.code, cm.exception.reason), (-32004, "stopping"))
        finally:
            stays.close()
            mute.close()
        # It is already stopping: let it finish (a second SIGTERM would
        # not be a graceful stop), then check its exit and sanitizers.
        self.assertEqual(alice.proc.wait(15), 0)
        alice.stop(self)
        rdv.check_clean_exit(self)


class ManyControllersCase(unittest.TestCase, CtlAsserts):

    @classmethod
    def setUpClass(cls):
        cls.rdv = harness.start_rendezvous("rate_limit=100000")
        cls.alice = Node("alice", cls.rdv, sets=SLOW_DISCOVER)
        cp = ctl(cls.alice, "wait-ready", "--timeout", "15")
        if cp.returncode != 0:
            raise AssertionError(describe(cp))
        cls.bob = Node("bob", cls.rdv, sets=SLOW_DISCOVER)  # finds alice, dials her
        cls.alice.wait_active("bob@CIC")

    @classmethod
    def tearDownClass(cls):
        cls.bob.stop()
        cls.alice.stop()
        cls.rdv.check_clean_exit()

    def test_twenty_controllers_five_watchers(self):
        watchers = [Watcher(self.alice.sock_path, {"events": ["all"], "log_level": "DEBUG"})
                    for _ in range(5)]
        results, errors = {}, []

        def controller(i):
            try:
                out = []
                for args in (["status"], ["--json", "peers"], ["conn"], ["rtt"], ["log"],
                             ["--json", "send", "bob@CIC", "from controller %d" % i],
                             ["pub", "*", "pub %d" % i]):
                    cp = ctl(self.alice, *args, timeout=60)
                    if cp.returncode != 0:
                        errors.append(describe(cp))
                    out.append(cp)
                results[i] = json.loads(out[5].out)["msg_id"]
            except Exception as e:  # noqa: BLE001 (reported below)
                errors.append(repr(e))

        try:
            threads = [threading.Thread(target=controller, args=(i,)) for i in range(20)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
            self.assertEqual(errors, [])
            self.assertEqual(len(results), 20)
            # A last event everyone must see.
            marker = self.alice.call("send", {"to": "bob@CIC", "text": "marker"})["msg_id"]
            for w in watchers:
                w.wait(lambda e: e["type"] == "ack" and e["msg_id"] == marker, 20,
                       what="the marker's ack")
            for w in watchers:
                evs = w.events()
                consecutive(self, evs, first=w.seq0 + 1)
                self.assertEqual(w.lagged(), [])
                acked = {e["msg_id"] for e in evs if e["type"] == "ack"}
                self.assertTrue(set(results.values()) <= acked, "an ack event is missing")
            # All five saw the very same stream.
            last = min(w.events()[-1]["seq"] for w in watchers)
            streams = [[(e["seq"], e["type"]) for e in w.events() if e["seq"] <= last]
                       for w in watchers]
            for s in streams[1:]:
                self.assertEqual(s[-50:], streams[0][-50:])
        finally:
            for w in watchers:
                w.close()

    def test_too_many_controllers(self):
        node = Node("full", self.rdv, sets=SLOW_DISCOVER + ["control.max_clients=2"])
        held = [node.ctl(), node.ctl()]
        try:
            for c in held:
                c.call("status")
            cp = self.fails(node, EXIT_DAEMON, "status")
            self.assertIn("too_many_clients", cp.err)
            held.pop().close()
            harness.wait_for(lambda: ctl(node, "status").returncode == EXIT_OK, 5,
                             what="a free slot")
        finally:
            for c in held:
                c.close()
            node.stop(self)


class SlowWatcherCase(unittest.TestCase):
    """control.max_output=4096: a subscriber that stops reading loses
    events and is told how many; nobody else notices."""

    @classmethod
    def setUpClass(cls):
        cls.rdv = harness.start_rendezvous("rate_limit=100000")
        cls.node = Node("busy", cls.rdv, sets=SLOW_DISCOVER + ["control.max_output=4096",
                                                                 "logging.level=INFO"])

    @classmethod
    def tearDownClass(cls):
        cls.node.stop()
        cls.rdv.check_clean_exit()

    def test_slow_watcher_lags_others_unaffected(self):
        params = {"events": ["all"], "log_level": "DEBUG"}
        slow = raw_connect(self.node.sock_path)
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.sendall(b'{"jsonrpc":"2.0","id":1,"method":"subscribe","params":%s}\n'
                     % json.dumps(params).encode())
        self.assertIn("result", raw_line(slow))
        fast = Watcher(self.node.sock_path, params)
        gen = self.node.ctl()
        try:
            # Each log.set logs one INFO line: one event, ~150 bytes.  The
            # slow one's socket buffer and 4 KiB queue fill many times over.
            # Small batches: the daemon queues a burst's events before it
            # writes them, and a burst must fit in 4 KiB for the fast one.
            n, batch = 4000, 10
            t0 = time.monotonic()
            for _ in range(n // batch):
                ids = [gen.request("log.set", {"level": "INFO"}) for _ in range(batch)]
                for rid in ids:
                    gen.answer(rid, timeout=20)
            gen.call("log.set", {"level": "DEBUG"})
            gen.call("log.set", {"level": "INFO"})
            last = fast.wait(lambda e: e["type"] == "log" and "INFO -> DEBUG" in e.get("text", ""),
                             20, what="the last event, at the fast watcher")
            elapsed = time.monotonic() - t0
            evs = fast.events()
            consecutive(self, evs, first=fast.seq0 + 1)
            self.assertGreaterEqual(len(evs), n)
            self.assertEqual(fast.lagged(), [], "the fast watcher lost events")
            self.assertLess(elapsed, 60)
            # The slow one reads again: a "lagged" notification says how many
            # it lost; what follows it is whole.
            missed, seen = None, []
            deadline = time.monotonic() + 20
            while missed is None:
                self.assertLess(time.monotonic(), deadline, "no lagged notification")
                msg = raw_line(slow)
                if msg.get("method") == "lagged":
                    missed = msg["params"]["missed"]
                    self.assertGreater(msg["params"]["seq"], 0)
                elif msg.get("method") == "event":
                    seen.append(msg["params"]["seq"])
            self.assertGreater(missed, 0)
            self.assertLess(len(seen), n, "the slow watcher got everything?")
            # The daemon says so in its log, both ways.
            log = self.node.proc.stderr_text()
            self.assertIn("does not read its events", log)
            self.assertIn("caught up after missing", log)
            # Still subscribed: a new event arrives.
            gen.call("log.set", {"level": "DEBUG"})
            gen.call("log.set", {"level": "INFO"})
            while True:
                msg = raw_line(slow)
                p = msg.get("params", {})
                if msg.get("method") == "event" and p["seq"] > last["seq"] \
                        and "INFO -> DEBUG" in p.get("text", ""):
                    break
        finally:
            gen.close()
            fast.close()
            slow.close()
        self.assertTrue(self.node.proc.alive())


class SocketFileCase(unittest.TestCase, CtlAsserts):

    @classmethod
    def setUpClass(cls):
        cls.rdv = harness.start_rendezvous("rate_limit=100000")

    @classmethod
    def tearDownClass(cls):
        cls.rdv.check_clean_exit()

    def test_default_mode_0660(self):
        node = Node("modes", self.rdv, sets=SLOW_DISCOVER)
        try:
            st = os.stat(node.sock_path)
            self.assertEqual(st.st_mode & 0o777, 0o660)
            self.assertTrue(os.path.exists(node.sock_path))
        finally:
            node.stop(self)
        # A clean stop removes the socket file.
        self.assertFalse(os.path.exists(node.sock_path))

    def test_mode_set(self):
        node = Node("mode600", self.rdv, sets=SLOW_DISCOVER + ["control.mode=0600"])
        try:
            self.assertEqual(os.stat(node.sock_path).st_mode & 0o777, 0o600)
            self.ok(node, "status")
        finally:
            node.stop(self)

    def test_stale_socket_replaced(self):
        node = Node("crashy", self.rdv, sets=SLOW_DISCOVER)
        node.kill9()
        self.assertTrue(os.path.exists(node.sock_path), "kill -9 leaves the socket file")
        self.fails(node, 2, "status")  # refused: nobody listens
        node.start()
        try:
            self.assertEqual(self.ok(node, "--json", "status").out.count("crashy@CIC"), 1)
        finally:
            node.stop(self)

    def start_failing(self, node):
        p = harness.start([harness.binary("CHATP2PD")] + node.argv(), name=node.name + "-refused")
        rc = p.wait(15)
        self.assertIsNone(p.sanitizer_report())
        return rc, p.stderr_text()

    def test_regular_file_refused(self):
        node = Node("squatter", self.rdv, sets=SLOW_DISCOVER, start=False)
        with open(node.sock_path, "w") as f:
            f.write("precious\n")
        rc, err = self.start_failing(node)
        self.assertEqual(rc, 1, err)
        lines = [l for l in err.splitlines() if l.startswith("chatp2pd: ")]
        self.assertEqual(len(lines), 1, err)
        self.assertIn("not a socket", lines[0])
        with open(node.sock_path) as f:
            self.assertEqual(f.read(), "precious\n")

    def test_directory_others_can_write_refused(self):
        # Whoever can write to the socket's directory can swap the socket
        # for their own: open to all (not sticky), or someone else's.
        cases = [("open", 0o777, None)]
        if os.geteuid() == 0:
            cases.append(("foreign", 0o755, 65534))  # nobody's
        for label, mode, owner in cases:
            with self.subTest(directory=label):
                d = os.path.join(harness.tmpdir(), "dir-" + label)
                os.mkdir(d)
                os.chmod(d, mode)
                if owner is not None:
                    os.chown(d, owner, owner)
                node = Node("cautious", self.rdv, sets=SLOW_DISCOVER, start=False)
                node.sock_path = os.path.join(d, "chatp2pd.sock")
                rc, err = self.start_failing(node)
                self.assertEqual(rc, 1, err)
                self.assertIn("writable by others", err)
                self.assertFalse(os.path.exists(node.sock_path))
        # A sticky directory open to all (like /tmp) is fine.
        d = os.path.join(harness.tmpdir(), "dir-sticky")
        os.mkdir(d)
        os.chmod(d, 0o1777)
        node = Node("cautious", self.rdv, sets=SLOW_DISCOVER, start=False)
        node.sock_path = os.path.join(d, "chatp2pd.sock")
        node.start()
        self.assertEqual(node.call("status")["peer_id"], "cautious@CIC")
        node.stop(self)

    def test_two_daemons_one_path(self):
        first = Node("twin", self.rdv, sets=SLOW_DISCOVER)
        try:
            second = Node("twin2", self.rdv, sets=SLOW_DISCOVER, start=False)
            second.sock_path = first.sock_path
            rc, err = self.start_failing(second)
            self.assertEqual(rc, 1, err)
            lines = [l for l in err.splitlines() if l.startswith("chatp2pd: ")]
            self.assertEqual(len(lines), 1, err)
            self.assertIn("another chatp2pd", lines[0])
            # The first is untouched.
            cp = self.ok(first, "status")
            self.assertIn("twin@CIC", cp.out)
        finally:
            first.stop(self)


if __name__ == "__main__":
    unittest.main(verbosity=2)
