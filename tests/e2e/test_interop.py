"""chatp2pd against peers in the wild (PROTOCOL.md section 4): fake peers
(tests/e2e/fakepeer.py) that behave like the other implementations on the
network - one line per recv(), no "pipeline", lost ACKs, lenient fields,
echoed HELLO_OK ids, one connection per message, refusals, simultaneous
dials, reconnect bursts, peers that stop reading, peers that never ACK."""

import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from fakepeer import FakePeer, is_probe, new_id  # noqa: E402
from nodes import CtlError, Node, NodesAndFakes  # noqa: E402

# The fakes' reader threads must get the GIL quickly: a fake that is late
# to recv() sees two messages in one, as a slow real peer would.
sys.setswitchinterval(0.0005)


def rdv_server():
    return harness.start_rendezvous("rate_limit=100000")


def events_of(ctl, pred, until, timeout=10.0, what="event"):
    """Every event (params) up to and including the first for which until
    holds, filtered by pred."""
    seen = []

    def take(e):
        seen.append(e)
        return until(e)
    ctl.wait_event(take, timeout, what)
    return [e for e in seen if pred(e)]


def history(node, classes):
    """Every event of these classes the node still holds, oldest first: the
    replay of subscribe since 0 comes before the answer to the next call."""
    c = node.ctl()
    try:
        c.call("subscribe", {"events": classes, "since": 0})
        c.call("status")
        return [n["params"] for n in c.notes if n.get("method") == "event"]
    finally:
        c.close()


class WildPeers(unittest.TestCase):
    """One node, alice, among registered fakes of every kind it dials."""

    @classmethod
    def setUpClass(cls):
        cls.rdv = rdv_server()
        cls.oneline = FakePeer("oneline", first_line_only=True)
        cls.lossy = FakePeer("lossy", first_line_only=True, drop_first_copy=True)
        cls.echo = FakePeer("echo")
        # HELLO_OK with the caller's own peer_id
        cls.echo.hello_ok = lambda conn, hello: cls.echo.hello("HELLO_OK", hello.get("peer_id"))
        # Never ACKs; reads one line per recv(), so the node keeps the
        # stop-and-wait discipline with it (resends) after the probe.
        cls.mute = FakePeer("mute", ack=None, first_line_only=True)
        cls.perconn = FakePeer("perconn")
        cls.eager = FakePeer("eager")
        cls.eager_id = new_id()

        # Talks before its HELLO_OK can have been read: both in one write.
        def eager_answer(conn, hello):
            conn.established = True
            conn.send(harness.encode_request(cls.eager.hello("HELLO_OK")) + harness.encode_request(
                {"type": "SEND", "msg_id": cls.eager_id, "src": "eager@CIC", "dst": "alice@CIC",
                 "payload": "hi before you knew me", "require_ack": True, "ttl": 1}))
        cls.eager.answer_hello = eager_answer
        cls.fakes = [cls.oneline, cls.lossy, cls.echo, cls.mute, cls.perconn, cls.eager]
        for f in cls.fakes:
            f.register(cls.rdv)
        # The fakes' reader threads must get a turn between two writes for
        # "one message per recv()" to be observable; 5 ms (the default gap)
        # is too tight on a loaded CI machine, 25 ms is not.
        cls.a = Node("alice", cls.rdv, sets=["limits.send_gap_ms=25"])
        cls.a.wait_active(*[f.peer_id for f in cls.fakes])

    @classmethod
    def tearDownClass(cls):
        cls.a.stop()
        for f in cls.fakes:
            f.close()
        cls.rdv.check_clean_exit()
        problems = [p for f in cls.fakes for p in f.problems]
        if problems:
            raise AssertionError("chatp2pd sent non-conforming messages: %s" % problems[:10])

    def assertStrict(self, *fakes):
        for f in fakes:
            self.assertEqual(f.problems, [], "%s received non-conforming messages" % f.peer_id)

    def assertOneMessagePerRecv(self, fake):
        # The one exception is the node's probe, two PINGs in one write.
        for c in fake.conns:
            with fake.cond:
                multi = list(c.multi)
            if multi and is_probe(multi[0]):
                multi = multi[1:]
            self.assertEqual(multi, [], "%s: recv()s that held several messages" % fake.peer_id)

    # 1
    def test_one_line_per_recv_peer_gets_30_pipelined_sends(self):
        f = self.oneline
        conn = f.established_conn()
        ctl = self.a.ctl()
        try:
            rids = [ctl.request("send", {"to": f.peer_id, "text": "burst %d" % i}) for i in range(30)]
            res = [ctl.answer(r, timeout=30) for r in rids]
        finally:
            ctl.close()
        self.assertEqual([r["status"] for r in res], ["acked"] * 30)
        ids = [r["msg_id"] for r in res]
        self.assertEqual(len(set(ids)), 30)
        first = {}
        for _, t, m in f.messages(lambda c, m: m.get("type") == "SEND"):
            first.setdefault(m["msg_id"], (t, m))
        self.assertTrue(set(ids) <= set(first), "the fake did not see every msg_id")
        got = sorted(ids, key=lambda i: first[i][0])
        self.assertEqual(got, ids, "SENDs arrived out of order")
        self.assertEqual([first[i][1]["payload"] for i in ids], ["burst %d" % i for i in range(30)])
        # at most one SEND awaiting its ACK: each arrived after the previous ACK left
        acked = {}
        for t, mid in f.acked:
            acked.setdefault(mid, t)
        for prev, nxt in zip(ids, ids[1:]):
            self.assertLess(acked[prev], first[nxt][0], "SEND sent before the previous ACK")
        self.assertOneMessagePerRecv(f)
        # PINGs are answered: the node measured RTT from our PONGs
        f.wait_msg(lambda c, m: c is conn and m.get("type") == "PING", 5, "a PING")
        harness.wait_for(lambda: any(r["peer_id"] == f.peer_id for r in self.a.call("rtt")["rtt"]),
                         5, what="an RTT sample for oneline")
        self.assertEqual(self.a.state_of(f.peer_id), "ACTIVE")
        self.assertStrict(f)

    def test_one_line_per_recv_peer_gets_pub_with_a_gap(self):
        f = self.oneline
        conn = f.established_conn()
        ctl = self.a.ctl()
        try:
            r1 = ctl.request("pub", {"to": "#CIC", "text": "to all of CIC"})
            r2 = ctl.request("send", {"to": f.peer_id, "text": "right after the pub"})
            pub = ctl.answer(r1)
            snd = ctl.answer(r2)
        finally:
            ctl.close()
        self.assertGreaterEqual(pub["reached"], 1)
        self.assertEqual(snd["status"], "acked")
        _, tp, m = f.wait_msg(lambda c, m: m.get("type") == "PUB" and m["msg_id"] == pub["msg_id"],
                              5, "the PUB")
        self.assertEqual(m["payload"], "to all of CIC")
        self.assertEqual(m["dst"], "#CIC")
        # the next write came after a gap (limits.send_gap_ms), in its own recv()
        after = [t for t, _, _ in conn.chunks if t > tp]
        self.assertTrue(after, "nothing after the PUB")
        self.assertGreaterEqual(after[0] - tp, 0.002, "no gap after the PUB")
        self.assertOneMessagePerRecv(f)

    def test_one_line_per_recv_peer_gets_every_unacked_send(self):
        # require_ack false: nothing comes back, yet none may be lost or dropped
        f = self.oneline
        ctl = self.a.ctl()
        try:
            rids = [ctl.request("send", {"to": f.peer_id, "text": "fire %d" % i,
                                         "require_ack": False}) for i in range(5)]
            res = [ctl.answer(r) for r in rids]
        finally:
            ctl.close()
        self.assertEqual([r["status"] for r in res], ["sent"] * 5)
        for r in res:
            _, _, m = f.wait_msg(lambda c, m, i=r["msg_id"]: m.get("msg_id") == i, 5,
                                 "the SEND %s" % r["msg_id"])
            self.assertIs(m["require_ack"], False)
        self.assertOneMessagePerRecv(f)

    # 2
    def test_lost_send_resent_with_same_msg_id(self):
        f = self.lossy
        ctl = self.a.ctl()
        try:
            rids = [ctl.request("send", {"to": f.peer_id, "text": "lost once %d" % i})
                    for i in range(2)]
            res = [ctl.answer(r, timeout=10) for r in rids]
        finally:
            ctl.close()
        for r in res:
            self.assertEqual(r["status"], "acked")
            copies = [t for _, t, m in f.messages(lambda c, m: m.get("type") == "SEND"
                                                   and m["msg_id"] == r["msg_id"])]
            self.assertGreaterEqual(len(copies), 2)
            self.assertGreater(copies[1] - copies[0], 0.7, "resent too early")
            self.assertLess(copies[1] - copies[0], 2.0, "resent too late")
        self.assertOneMessagePerRecv(f)
        self.assertStrict(f)

    # 3
    def test_lenient_acceptance(self):
        a = self.a
        f = FakePeer("lenient", features=None, ack="bare", listen=False)
        w = a.events(["message"])
        try:
            c = f.dial(a.port, hello={"type": "HELLO", "peer_id": "lenient@CIC", "version": 1})
            _, _, ok = f.wait_msg(lambda cc, m: m.get("type") == "HELLO_OK", 5, "HELLO_OK")
            self.assertEqual(ok["peer_id"], "alice@CIC")
            self.assertEqual(ok["version"], "1.0")
            self.assertEqual(ok["ttl"], 1)
            self.assertEqual(set(ok["features"]), {"ack", "metrics", "pipeline"})

            def acks(mid):
                return [m for _, _, m in f.messages(lambda cc, m: m.get("type") == "ACK"
                                                    and m.get("msg_id") == mid)]

            def wait_ack(mid, n=1):
                f.wait(lambda: len(acks(mid)) >= n, 5, "ACK #%d of %s" % (n, mid))

            # "dest" for "dst", no require_ack, no ttl, no timestamp
            m1 = new_id()
            c.send({"type": "SEND", "msg_id": m1, "src": "lenient@CIC", "dest": "alice@CIC",
                    "payload": "dest, not dst"})
            wait_ack(m1)
            ev = w.wait_event(lambda e: e["type"] == "message" and e["msg_id"] == m1, 5)
            self.assertEqual(ev["from"], "lenient@CIC")
            self.assertEqual(ev["text"], "dest, not dst")
            self.assertNotIn("src_mismatch", ev)
            # the same msg_id again: ACKed again, shown once (checked below)
            c.send({"type": "SEND", "msg_id": m1, "src": "lenient@CIC", "dest": "alice@CIC",
                    "payload": "dest, not dst"})
            wait_ack(m1, 2)
            # require_ack null counts as true
            m2 = new_id()
            c.send({"type": "SEND", "msg_id": m2, "src": "lenient@CIC", "dst": "alice@CIC",
                    "payload": "null ack", "require_ack": None, "ttl": 1})
            wait_ack(m2)
            # timestamps of every shape, on SEND and PING
            stamps = ["2025-10-27T10:00:00.123456Z", "2025-10-27T10:00:00+02:00",
                      "2025-10-27T10:00:00", "2025-10-27T10:00:00.5-03:00", None, 12345]
            ts_ids = []
            for ts in stamps:
                mid = new_id()
                ts_ids.append(mid)
                c.send({"type": "SEND", "msg_id": mid, "src": "lenient@CIC", "dst": "alice@CIC",
                        "payload": "stamped %r" % ts, "require_ack": True, "timestamp": ts,
                        "ttl": 1})
                pid = new_id()
                c.send({"type": "PING", "msg_id": pid, "timestamp": ts})
                f.wait_msg(lambda cc, m, p=pid: m.get("type") == "PONG" and m.get("msg_id") == p,
                           5, "PONG to a PING stamped %r" % ts)
            for mid in ts_ids:
                wait_ack(mid)
            # PUBs: bare namespace, our peer_id and "*" are for us; #UnB is not; none ACKed
            p_bare, p_unb, p_peer, p_all = new_id(), new_id(), new_id(), new_id()
            for mid, dst in ((p_bare, "CIC"), (p_unb, "#UnB"), (p_peer, "alice@CIC"), (p_all, "*")):
                c.send({"type": "PUB", "msg_id": mid, "src": "lenient@CIC", "dst": dst,
                        "payload": "pub to %s" % dst, "require_ack": True})
            # "send" is not "SEND": ignored, the connection stays
            m_lower = new_id()
            c.send({"type": "send", "msg_id": m_lower, "src": "lenient@CIC", "dst": "alice@CIC",
                    "payload": "lower case", "require_ack": True})
            # a src that is not the handshake's peer_id
            m_spoof = new_id()
            c.send({"type": "SEND", "msg_id": m_spoof, "src": "mallory@CIC", "dst": "alice@CIC",
                    "payload": "trust me", "require_ack": True})
            marker = new_id()
            c.send({"type": "SEND", "msg_id": marker, "src": "lenient@CIC", "dst": "alice@CIC",
                    "payload": "marker", "require_ack": True})
            wait_ack(marker)
            evs = events_of(w, lambda e: e["type"] in ("message", "pub"),
                            lambda e: e.get("msg_id") == marker, 5, "the marker")
            by_id = {}
            for e in evs:
                by_id.setdefault(e["msg_id"], []).append(e)
            self.assertNotIn(m1, by_id, "a retransmitted SEND was shown twice")
            self.assertIn(m2, by_id)
            for mid in ts_ids:
                self.assertIn(mid, by_id, "a SEND with an odd timestamp was not shown")
            self.assertEqual(by_id[p_bare][0]["type"], "pub")
            self.assertEqual(by_id[p_bare][0]["text"], "pub to CIC")
            self.assertEqual(by_id[p_peer][0]["type"], "pub")
            self.assertEqual(by_id[p_all][0]["type"], "pub")
            self.assertNotIn(p_unb, by_id, "a PUB for #UnB was shown in CIC")
            self.assertNotIn(m_lower, by_id, "type \"send\" was taken for SEND")
            spoof = by_id[m_spoof][0]
            self.assertIs(spoof.get("src_mismatch"), True)
            self.assertEqual(spoof["from"], "lenient@CIC")
            for mid in (p_bare, p_unb, p_peer, p_all, m_lower):
                self.assertEqual(acks(mid), [], "ACK for a PUB or an unknown type")
            for e in evs:
                self.assertEqual(len(by_id[e["msg_id"]]), 1, "shown twice: %r" % e)
            self.assertTrue(c.open)

            # a bare ACK completes a SEND of ours
            r = a.call("send", {"to": "lenient@CIC", "text": "ack me, barely"})
            self.assertEqual(r["status"], "acked")
            self.assertEqual([x["pipeline"] for x in a.call("conn")["connections"]
                              if x["peer_id"] == "lenient@CIC"], [False])

            # BYE: BYE_OK with the BYE's msg_id, and the node closes the socket itself
            pw = a.events(["peer"])
            bye = new_id()
            c.send({"type": "BYE", "msg_id": bye, "src": "lenient@CIC", "dst": "alice@CIC",
                    "reason": "done"})
            _, _, bok = f.wait_msg(lambda cc, m: m.get("type") == "BYE_OK", 5, "BYE_OK")
            self.assertEqual(bok["msg_id"], bye)
            self.assertEqual(bok["src"], "alice@CIC")
            self.assertEqual(bok["dst"], "lenient@CIC")
            f.wait(lambda: c.eof, 3, "the node to close the connection after BYE_OK")
            ev = pw.wait_event(lambda e: e.get("peer_id") == "lenient@CIC", 5)
            self.assertEqual(ev["type"], "peer_disconnected")
            pw.close()
            self.assertStrict(f)
        finally:
            w.close()
            f.close()

    def test_send_before_hello_ok_read(self):
        # eager wrote HELLO_OK and a SEND in one write: the SEND counts
        w = self.a.events(["message"], since=0)
        ev = w.wait_event(lambda e: e["type"] == "message" and e["msg_id"] == self.eager_id, 5)
        self.assertEqual(ev["from"], "eager@CIC")
        self.eager.wait_msg(lambda c, m: m.get("type") == "ACK" and m.get("msg_id") == self.eager_id,
                            5, "the ACK of the early SEND")
        w.close()

    # 4
    def test_hello_ok_echoing_our_id(self):
        a = self.a
        self.assertEqual(a.state_of("echo@CIC"), "ACTIVE")
        ids = {p["peer_id"] for p in a.call("peers")["peers"]}
        self.assertNotIn("alice@CIC", ids)
        conns = a.connections_to("echo@CIC")
        self.assertEqual(len(conns), 1)
        self.assertTrue(conns[0]["primary"])
        self.assertEqual(conns[0]["direction"], "outbound")
        r = a.call("send", {"to": "echo@CIC", "text": "who are you?"})
        self.assertEqual(r["status"], "acked")
        _, _, m = self.echo.wait_msg(lambda c, m: m.get("msg_id") == r["msg_id"], 5)
        self.assertEqual(m["dst"], "echo@CIC")

    # 5
    def test_new_connection_per_message(self):
        a, f = self.a, self.perconn
        long_conn = f.established_conn()
        w = a.events(["message"])
        hello = harness.encode_request(f.hello())
        ids = []
        for i in range(6):
            mid = new_id()
            ids.append(mid)
            send = harness.encode_request({"type": "SEND", "msg_id": mid, "src": f.peer_id,
                                           "dst": "alice@CIC", "payload": "short %d" % i,
                                           "require_ack": True, "ttl": 1})
            if i % 3 == 0:      # HELLO, wait for HELLO_OK, SEND, wait for the ACK, close
                c = f.dial(a.port)
                c.send(send)
            else:               # HELLO and SEND in one write
                c = f.dial(a.port, hello=hello + send, wait=False)
            if i % 3 == 2:      # ... and close at once, no waiting for anything
                c.close()
            else:
                f.wait_msg(lambda cc, m, c=c, mid=mid: cc is c and m.get("type") == "ACK"
                           and m.get("msg_id") == mid, 5, "the ACK on its own connection")
                c.close()
        w.wait_event(lambda e: e["type"] == "message" and e["msg_id"] == ids[-1], 10)
        w.close()
        evs = history(a, ["message", "peer"])
        shown = [e["msg_id"] for e in evs if e["type"] == "message"]
        for mid in ids:
            self.assertEqual(shown.count(mid), 1, "message %s shown %d times"
                             % (mid, shown.count(mid)))
        self.assertFalse([e for e in evs if e.get("peer_id") == f.peer_id
                          and e["type"] in ("peer_stale", "peer_disconnected")],
                         "the long-lived connection was disturbed")
        # once the short ones are gone: exactly one connection, the long-lived primary
        def only_long():
            cs = [x for x in a.call("conn")["connections"] if x["peer_id"] == f.peer_id]
            return len(cs) == 1 and cs
        cs = harness.wait_for(only_long, 10, what="the short connections to close")
        self.assertTrue(cs[0]["primary"])
        self.assertEqual(cs[0]["state"], "established")
        self.assertEqual(cs[0]["direction"], "outbound")
        self.assertEqual(cs[0]["address"], "127.0.0.1:%d" % f.port)
        self.assertTrue(long_conn.open)
        r = a.call("send", {"to": f.peer_id, "text": "on the long one"})
        self.assertEqual(r["status"], "acked")
        got, _, _ = f.wait_msg(lambda c, m: m.get("msg_id") == r["msg_id"], 5)
        self.assertIs(got, long_conn)

    # 10
    def test_ack_timeout(self):
        a, f = self.a, self.mute
        w = a.events(["ack"])
        t0 = time.monotonic()
        with self.assertRaises(CtlError) as cm:
            a.call("send", {"to": f.peer_id, "text": "anyone there?"}, timeout=15)
        dt = time.monotonic() - t0
        self.assertEqual(cm.exception.reason, "ack_timeout")
        self.assertGreater(dt, 2.5)   # network.ack_timeout=3
        self.assertLess(dt, 6)
        ev = w.wait_event(lambda e: e["type"] == "ack_timeout" and e["peer_id"] == f.peer_id, 5)
        # the error names the message, as the event does
        self.assertEqual(cm.exception.error["data"]["msg_id"], ev["msg_id"])
        copies = f.messages(lambda c, m: m.get("type") == "SEND" and m["msg_id"] == ev["msg_id"])
        self.assertGreaterEqual(len(copies), 2, "the unACKed SEND was never resent")
        self.assertEqual(copies[0][2]["payload"], "anyone there?")
        # The ACK comes after all: the sender hears the message got through.
        copies[0][0].send({"type": "ACK", "msg_id": ev["msg_id"], "timestamp": "2026-01-01T00:00:00Z",
                           "ttl": 1})
        late = w.wait_event(lambda e: e["type"] == "ack" and e["msg_id"] == ev["msg_id"], 5,
                            what="the late ACK reported")
        self.assertIs(late.get("late"), True)
        self.assertGreater(late["rtt_ms"], 2500)
        w.close()
        # the queue is not stuck behind the dead SEND
        r = a.call("send", {"to": f.peer_id, "text": "no ack needed", "require_ack": False})
        f.wait_msg(lambda c, m: m.get("msg_id") == r["msg_id"], 5, "the next SEND")
        self.assertEqual(a.state_of(f.peer_id), "ACTIVE")


class Troublemakers(NodesAndFakes, unittest.TestCase):
    """Each test: a fresh rendezvous and node, and one difficult fake."""

    # 6
    def test_hello_ok_then_rejection_backs_off(self):
        grumpy = self.fake("grumpy")

        def refuse(conn, hello):
            conn.established = True
            conn.send(harness.encode_request(grumpy.hello("HELLO_OK")) + harness.encode_request(
                {"type": "ERROR", "message": "already connected, go away"}))
            conn.close()
        grumpy.answer_hello = refuse
        fine = self.fake("fine")
        grumpy.register(self.rdv)
        fine.register(self.rdv)
        # DISCOVER (which restarts a peer's backoff) well outside the window
        a = self.node("alice", self.rdv, sets=["rendezvous.discover_interval=30"])
        a.wait_active(fine.peer_id)
        t0 = grumpy.wait(lambda: grumpy.accepts and grumpy.accepts[0], 10, "a first dial")
        statuses = 0
        while time.monotonic() < t0 + 4.0:
            self.assertEqual(a.call("status")["peer_id"], "alice@CIC")
            statuses += 1
            time.sleep(0.1)
        n = len([t for t in grumpy.accepts if t <= t0 + 4.0])
        harness.log("refusing peer: %d dials in 4 s" % n)
        self.assertGreaterEqual(n, 2, "never retried")
        self.assertLessEqual(n, 6, "redialled a refusing peer %d times in 4 s" % n)
        # Refusals are no successes in its stats.
        self.assertEqual(a.peer(grumpy.peer_id)["success_rate"], 0)
        self.assertEqual(a.peer(fine.peer_id)["success_rate"], 100)
        r = a.call("send", {"to": fine.peer_id, "text": "still fine"})
        self.assertEqual(r["status"], "acked")
        a.stop(self)

    def test_odd_bye_ok_closes_at_once(self):
        # A bare BYE_OK, or one with a msg_id of its own, ends the session:
        # no waiting for limits.bye_timeout (3 s here).
        bare = self.fake("bare", bye_ok="bare")
        newid = self.fake("newid", bye_ok="new_id")
        for f in (bare, newid):
            f.register(self.rdv)
        a = self.node("alice", self.rdv, sets=["limits.bye_timeout=3"])
        a.wait_active(bare.peer_id, newid.peer_id)
        conns = [bare.established_conn(), newid.established_conn()]
        a.stop(self)
        for f, c in zip((bare, newid), conns):
            _, t, bye = f.wait_msg(lambda cc, m: cc is c and m.get("type") == "BYE", 5, "BYE")
            self.assertEqual(bye["src"], "alice@CIC")
            self.assertEqual(bye["dst"], f.peer_id)
            f.wait(lambda: c.eof, 5, "EOF after BYE_OK")
            self.assertLess(c.eof_at - t, 1.5, "%s: the node waited for another BYE_OK" % f.peer_id)
            self.assertEqual(f.problems, [])

    # 7
    def simultaneous(self, keep_both):
        twin = self.fake("twin")
        state = {"dialled": None, "accepted": None}
        a_box = []

        def answer(conn, hello):
            if state["accepted"] is None:
                # the node dialled us and we dial it back at once: it has
                # our HELLO (and answered it) before our HELLO_OK, so it
                # holds two established connections with us
                state["accepted"] = conn
                harness.wait_for(lambda: a_box[0].port, 5, what="the node's port")
                state["dialled"] = twin.dial(a_box[0].port)
                FakePeer.answer_hello(twin, conn, hello)
            elif not keep_both and any(c.open and c is not conn for c in twin.conns):
                conn.close()  # already connected: refused
            else:
                FakePeer.answer_hello(twin, conn, hello)
        twin.answer_hello = answer
        twin.register(self.rdv)
        a = self.node("alice", self.rdv, start=False,
                      sets=["limits.handshake_timeout=1.5", "rendezvous.discover_interval=30"])
        a_box.append(a)
        a.start()
        # both connections up on the node's side
        harness.wait_for(lambda: len(a.connections_to(twin.peer_id)) == 2, 10,
                         what="two connections with twin")
        if not keep_both:
            # twin accepted the node's connection first: it keeps that one
            # and closes the one it dialled as the duplicate
            state["dialled"].close()
            kept = state["accepted"]
        # in the end exactly one established connection, and it is the primary
        def one():
            cs = a.connections_to(twin.peer_id)
            return len(cs) == 1 and cs[0]["primary"] and cs
        cs = harness.wait_for(one, 10, what="exactly one connection with twin")
        if keep_both:
            twin.wait(lambda: len(twin.open_conns()) == 1, 5, "the node to close the other one")
            kept = twin.open_conns()[0]
        self.assertTrue(kept.open)
        self.assertEqual(cs[0]["direction"], "outbound" if kept is state["accepted"] else "inbound")
        # messages flow both ways on the connection twin keeps
        r = a.call("send", {"to": twin.peer_id, "text": "which one?"})
        self.assertEqual(r["status"], "acked")
        got, _, _ = twin.wait_msg(lambda c, m: m.get("msg_id") == r["msg_id"], 5)
        self.assertIs(got, kept)
        mw = a.events(["message"])
        mid = new_id()
        kept.send({"type": "SEND", "msg_id": mid, "src": twin.peer_id, "dst": "alice@CIC",
                   "payload": "this one", "require_ack": True, "ttl": 1})
        mw.wait_event(lambda e: e["type"] == "message" and e["msg_id"] == mid, 5)
        twin.wait_msg(lambda c, m: c is kept and m.get("type") == "ACK" and m.get("msg_id") == mid, 5)
        mw.close()
        # the peer was never lost on the way: connected once, never stale
        evs = [e for e in history(a, ["peer"]) if e.get("peer_id") == twin.peer_id
               and e["type"] in ("peer_connected", "peer_stale", "peer_disconnected")]
        self.assertEqual([e["type"] for e in evs], ["peer_connected"],
                         "the peer was lost during the simultaneous dial")
        self.assertEqual(a.state_of(twin.peer_id), "ACTIVE")
        a.stop(self)

    def test_simultaneous_dial_fake_keeps_both(self):
        self.simultaneous(keep_both=True)

    def test_simultaneous_dial_fake_refuses_second(self):
        self.simultaneous(keep_both=False)

    # 8
    def test_reconnect_burst(self):
        steady = self.fake("steady")
        steady.register(self.rdv)
        a = self.node("alice", self.rdv)
        a.wait_active(steady.peer_id)
        hello = harness.encode_request({"type": "HELLO", "peer_id": "burst@CIC", "version": "1.0",
                                        "features": ["ack", "metrics"], "ttl": 1})
        accepted = refused = 0
        t0 = time.monotonic()
        for i in range(40):
            s = socket.socket()
            s.settimeout(2)
            try:
                s.connect(("127.0.0.1", a.port))
                s.sendall(hello)
                data = b""
                while b"\n" not in data:
                    d = s.recv(4096)
                    if not d:
                        break
                    data += d
            except OSError:
                data = b""
            finally:
                s.close()
            if b"HELLO_OK" in data:
                accepted += 1
            else:
                refused += 1
            if i % 10 == 9:
                self.assertEqual(a.call("status")["peer_id"], "alice@CIC")
            # 40 in one second
            pause = t0 + (i + 1) / 40.0 - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        harness.log("burst: %d accepted, %d refused" % (accepted, refused))
        self.assertGreater(accepted, 0)
        self.assertGreater(refused, 0, "40 connections in a second and none refused")
        st = a.call("status")
        self.assertEqual(st["peer_id"], "alice@CIC")
        harness.wait_for(lambda: not [c for c in a.call("conn")["connections"]
                                      if c["peer_id"] == "burst@CIC"], 5,
                         what="the burst's connections to be gone")
        r = a.call("send", {"to": steady.peer_id, "text": "after the storm"})
        self.assertEqual(r["status"], "acked")
        a.stop(self)  # fails on a sanitizer report (leaks included)

    def _primary_port(self, node, peer_id):
        for c in node.call("conn")["connections"]:
            if c["peer_id"] == peer_id and c["primary"]:
                return int(c["address"].rsplit(":", 1)[1])
        return None

    def _back_on_a_new_connection(self, features, sets):
        """A peer whose first connection went silent (its host crashed, no
        FIN) comes back on a second one: the node must take the new one at
        once and keep it, not close it as a duplicate while the dead one
        lingers until keep-alive gives up."""
        ghost = self.fake("ghost", features=features, auto_pong=False, listen=False)
        a = self.node("alice", self.rdv, sets=["limits.handshake_timeout=1"] + sets)
        old = ghost.dial(a.port)
        a.wait_active(ghost.peer_id)
        return a, ghost, old

    def _check_new_one_kept(self, a, ghost, old):
        new = ghost.dial(a.port)
        harness.wait_for(lambda: self._primary_port(a, ghost.peer_id) == new.local_port, 5,
                         what="the new connection to be alice's primary")
        ghost.wait(lambda: old.eof, 5, what="alice to close the silent connection")
        # Past the duplicate grace (handshake_timeout) the new one is still up.
        ghost.wait(lambda: len([m for m in new.types() if m == "PING"]) >= 2, 10,
                   what="PINGs on the new connection")
        self.assertTrue(new.open, "alice closed the new connection")
        self.assertEqual(a.state_of(ghost.peer_id), "ACTIVE")
        a.stop(self)

    def test_our_kind_back_on_a_new_connection(self):
        # Our own kind never dials a peer it is still connected to: a second
        # connection from the same side replaces the first.
        a, ghost, old = self._back_on_a_new_connection(
            ("ack", "metrics", "pipeline"), ["keepalive.ping_interval=0.5"])
        self._check_new_one_kept(a, ghost, old)

    def test_other_kind_back_on_a_new_connection(self):
        # Any peer: the old connection's last PING went unanswered.
        a, ghost, old = self._back_on_a_new_connection(
            ("ack", "metrics"), ["keepalive.ping_interval=0.3", "keepalive.ping_timeout=0.2",
                                 "keepalive.max_ping_failures=1000"])
        # The first two PINGs are the pipeline probe; then keep-alive's
        # first PING goes unanswered before its second is sent.
        ghost.wait(lambda: old.types().count("PING") >= 4, 5, what="an unanswered PING")
        ghost.auto_pong = True  # the new connection is alive
        self._check_new_one_kept(a, ghost, old)

    def test_message_over_the_line_limit_refused(self):
        f = self.fake("far", features=("ack", "metrics", "pipeline"))
        f.register(self.rdv)
        a = self.node("alice", self.rdv)
        a.wait_active(f.peer_id)
        # A line of more than 32768 bytes is dropped by every receiver: it is
        # refused at once instead of ending in an ack_timeout.
        with self.assertRaises(CtlError) as cm:
            a.call("send", {"to": f.peer_id, "text": "x" * 40000})
        self.assertEqual(cm.exception.reason, "failed")
        self.assertIn("32768", str(cm.exception))
        with self.assertRaises(CtlError) as cm:
            a.call("pub", {"to": "*", "text": "x" * 40000})
        self.assertIn("32768", str(cm.exception))
        # Just under the limit goes through.
        self.assertEqual(a.call("send", {"to": f.peer_id, "text": "y" * 32000})["status"], "acked")
        self.assertFalse([m for _, _, m in f.messages() if len(m.get("payload", "")) > 32000])
        a.stop(self)

    def test_shutdown_with_a_full_output_queue(self):
        # The BYE itself does not fit in the queue of a peer that stopped
        # reading: the node still stops cleanly (it once used the freed
        # connection here).
        outmax = 200000
        stall = self.fake("stall", features=("ack", "metrics", "pipeline"), rcvbuf=4096,
                          read_after_handshake=False)
        stall.register(self.rdv)
        a = self.node("alice", self.rdv, sets=["limits.out_queue_bytes=%d" % outmax,
                                                "keepalive.ping_interval=1000"])
        a.wait_active(stall.peer_id)
        stall.established_conn()

        def queued():
            for c in a.call("conn")["connections"]:
                if c["peer_id"] == stall.peer_id:
                    return c["queued_bytes"]
            return None

        def send(text):
            a.call("send", {"to": stall.peer_id, "text": text, "require_ack": False})
        # Fill the kernel's buffers until our own queue starts to grow ...
        harness.wait_for(lambda: send("y" * 5000) or queued() > 0, 30,
                         what="the output queue to grow")
        # ... then fill it to within a few bytes less than a BYE needs.
        q0 = queued()
        send("z" * 100)
        overhead = queued() - q0 - 100
        while True:
            need = outmax - queued() - 60
            if need <= overhead:
                break
            send("w" * min(need - overhead, 20000))
        self.assertLess(outmax - queued(), 100, "room left for a BYE")
        a.stop(self)  # exit 0, no sanitizer report

    # 9
    def test_peer_that_stops_reading(self):
        # It advertises pipeline (writes are batched) and then never reads.
        stall = self.fake("stall", features=("ack", "metrics", "pipeline"), rcvbuf=4096,
                          read_after_handshake=False)
        stall.register(self.rdv)
        a = self.node("alice", self.rdv, sets=["limits.out_queue_bytes=200000",
                                                "keepalive.max_ping_failures=1000"])
        b = self.node("bob", self.rdv)
        a.wait_active(stall.peer_id, b.peer_id)
        rss0 = harness.vm_rss_kb(a.proc.pid)
        w = a.events(["peer"])
        ctl = a.ctl()
        text = "x" * 30000
        sent = 0
        lost = None
        try:
            while lost is None and sent < 600:
                rids = [ctl.request("pub", {"to": "*", "text": text}) for _ in range(20)]
                for r in rids:
                    ctl.answer(r)
                sent += len(rids)
                try:
                    lost = w.wait_event(lambda e: e.get("peer_id") == stall.peer_id, 0.05)
                except AssertionError:
                    pass
        finally:
            ctl.close()
        self.assertIsNotNone(lost, "%d PUBs of 30 KB and the stalled peer is still connected" % sent)
        self.assertEqual(lost["type"], "peer_stale")
        self.assertIn("queue", lost["reason"])
        rss1 = harness.vm_rss_kb(a.proc.pid)
        harness.log("stall: %d PUBs (%.1f MB) before the disconnect; VmRSS %d -> %d kB"
                    % (sent, sent * 30000 / 1e6, rss0, rss1))
        # bounded: far less than everything that was published (ASan's
        # quarantine keeps some freed memory, hence the slack)
        self.assertLess(rss1 - rss0, 64 * 1024)
        # bob read everything and is unaffected
        self.assertEqual(a.state_of(b.peer_id), "ACTIVE")
        r = a.call("send", {"to": b.peer_id, "text": "still here?"})
        self.assertEqual(r["status"], "acked")
        harness.wait_for(lambda: sum(c["rx_msgs"] for c in b.connections_to("alice@CIC")) >= sent,
                         10, what="bob to receive every PUB")
        w.close()
        a.stop(self)
        b.stop(self)


if __name__ == "__main__":
    unittest.main(verbosity=2)
