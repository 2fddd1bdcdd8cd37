"""Writing to peers that did not advertise "pipeline" (PROTOCOL.md §4, issue
10): stop-and-wait without fixed gaps, and the per-connection probe (two
PINGs in one write) that tells a peer reading whole segments from one that
reads one line per recv().  Real chatp2pd processes and fake peers on
loopback; timing checks are ratios with a wide margin."""

import json
import os
import statistics
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from fakepeer import is_probe, new_id  # noqa: E402
from nodes import Node, NodesAndFakes  # noqa: E402

# A gap as the interop tests use it (the fakes' reader threads get a turn
# between two writes on a loaded machine).  Stop-and-wait must not pay it.
GAP = ["limits.send_gap_ms=25"]


def fake_round_trip(fake, n=30):
    """The fake's own SEND -> ACK time, driven directly in stop-and-wait
    (median of n), from a connection of our own."""
    s = harness.connect(fake.port)
    s.settimeout(5)
    f = s.makefile("rb")
    s.sendall((json.dumps({"type": "HELLO", "peer_id": "probe@CIC", "version": "1.0",
                           "features": ["ack", "metrics"], "ttl": 1}) + "\n").encode())
    assert json.loads(f.readline())["type"] == "HELLO_OK"
    times = []
    for i in range(n):
        mid = new_id()
        t0 = time.perf_counter()
        s.sendall((json.dumps({"type": "SEND", "msg_id": mid, "src": "probe@CIC",
                               "dst": fake.peer_id, "payload": "rtt %d" % i, "require_ack": True,
                               "ttl": 1}) + "\n").encode())
        while True:
            m = json.loads(f.readline())
            if m.get("type") == "ACK" and m.get("msg_id") == mid:
                break
        times.append(time.perf_counter() - t0)
    s.close()
    return statistics.median(times)


def write_modes(node, peer_id):
    return [c.get("write_mode") for c in node.call("conn")["connections"]
            if c["peer_id"] == peer_id and c["state"] == "established"]


class WriteDiscipline(NodesAndFakes, unittest.TestCase):

    def wait_mode(self, node, peer_id, timeout=10):
        harness.wait_for(lambda: write_modes(node, peer_id) not in ([], ["probing"]), timeout,
                         what="the probe of %s to end" % peer_id)
        return write_modes(node, peer_id)

    def test_burst_to_a_stop_and_wait_peer(self):
        # 200 SENDs to a peer that reads one line per recv(): stop-and-wait
        # costs one round trip each, a fixed gap per write 25 ms each.
        oneline = self.fake("oneline", first_line_only=True)
        oneline.register(self.rdv)
        a = self.node("alice", self.rdv, sets=GAP)
        a.wait_active(oneline.peer_id)
        # the probe's first PONG came, its second never will
        harness.wait_for(lambda: a.call("rtt")["rtt"], 10, what="a round trip to oneline")
        rtt = fake_round_trip(oneline)
        n = 200
        ctl = a.ctl()
        try:
            t0 = time.monotonic()
            rids = [ctl.request("send", {"to": oneline.peer_id, "text": "burst %d" % i})
                    for i in range(n)]
            res = [ctl.answer(r, timeout=120) for r in rids]
            dt = time.monotonic() - t0
        finally:
            ctl.close()
        harness.log("200 SENDs to a one-line-per-recv peer: %.3f s, its round trip %.3f ms "
                    "(%.0f%% of 1/RTT)" % (dt, rtt * 1000, 100 * n * rtt / dt))
        self.assertEqual([r["status"] for r in res], ["acked"] * n)
        ids = [r["msg_id"] for r in res]
        first = {}
        for _, t, m in oneline.messages(lambda c, m: m.get("type") == "SEND"):
            first.setdefault(m["msg_id"], (t, m))
        self.assertTrue(set(ids) <= set(first), "the fake did not see every SEND")
        self.assertEqual(sorted(ids, key=lambda i: first[i][0]), ids, "SENDs out of order")
        self.assertEqual([first[i][1]["payload"] for i in ids], ["burst %d" % i for i in range(n)])
        for c in oneline.conns:
            with oneline.cond:
                multi = list(c.multi)
            if multi and is_probe(multi[0]):
                multi = multi[1:]
            self.assertEqual(multi, [], "recv()s that held several messages")
        # One round trip per SEND, with a wide margin: the fake's round trip
        # is measured apart, and on loopback it can be 70 us in a quiet
        # moment while a busy machine stretches the burst.  A fifth of the
        # gap per SEND still fails the discipline this replaced (25 ms after
        # every write: 5 s for 200, and ack timeouts).
        bound = max(10 * rtt * n, n * 0.025 / 5)
        self.assertLess(dt, bound,
                        "200 SENDs took %.3f s, more than max(10 x the peer's round trip, a fifth "
                        "of the gap) x 200 = %.3f s" % (dt, bound))
        self.assertEqual(oneline.problems, [])
        self.assertEqual(self.wait_mode(a, oneline.peer_id), ["one-per-write"])
        a.stop(self)

    def test_probe_classifies_both_kinds(self):
        # Neither advertises "pipeline"; one reads whole segments, the other
        # only the first line of each recv().  Both directions: the node
        # dials them (outbound), and they dial a second node (inbound).
        whole = self.fake("whole")
        oneline = self.fake("oneline", first_line_only=True)
        piped = self.fake("piped", features=("ack", "metrics", "pipeline"))
        for f in (whole, oneline, piped):
            f.register(self.rdv)
        a = self.node("alice", self.rdv, sets=GAP)
        a.wait_active(whole.peer_id, oneline.peer_id, piped.peer_id)
        self.assertEqual(self.wait_mode(a, whole.peer_id), ["learned"])
        self.assertEqual(self.wait_mode(a, oneline.peer_id), ["one-per-write"])
        # Dialled by the node, piped's "pipeline" comes in a HELLO_OK, which
        # may be an echo (PROTOCOL.md §4): it is probed, and learned.
        self.assertEqual(self.wait_mode(a, piped.peer_id), ["learned"])
        # Each got the two PINGs in one write; only one PONG came from oneline.
        for f in (whole, oneline):
            with f.cond:
                multi = [m for c in f.conns for m in c.multi]
            self.assertTrue(multi and is_probe(multi[0]), "%s: no probe seen" % f.peer_id)

        # The lost PING is no keep-alive failure: the connection stays, and
        # a burst afterwards loses nothing.
        res = [a.call("send", {"to": oneline.peer_id, "text": "after %d" % i}) for i in range(5)]
        self.assertEqual([r["status"] for r in res], ["acked"] * 5)
        ctl = a.ctl()
        try:
            rids = [ctl.request("send", {"to": whole.peer_id, "text": "batch %d" % i})
                    for i in range(50)]
            self.assertEqual([ctl.answer(r, timeout=30)["status"] for r in rids], ["acked"] * 50)
        finally:
            ctl.close()

        # Inbound: the fakes dial a node that does not know them.
        b = self.node("bob", self.rdv, sets=GAP + ["rendezvous.discover_interval=3600"])
        w2 = self.fake("whole2", listen=False)
        o2 = self.fake("oneline2", first_line_only=True, listen=False)
        p2 = self.fake("piped2", features=("ack", "metrics", "pipeline"), listen=False)
        w2.dial(b.port)
        o2.dial(b.port)
        p2.dial(b.port)
        self.assertEqual(self.wait_mode(b, w2.peer_id), ["learned"])
        self.assertEqual(self.wait_mode(b, o2.peer_id), ["one-per-write"])
        # A HELLO is the dialler's own word: believed at once.
        self.assertEqual(self.wait_mode(b, p2.peer_id), ["pipeline"])

        # chatp2pctl shows it: a WRITE column in the table, write_mode in JSON.
        out = harness.run([harness.binary("CHATP2PCTL"), "--socket", a.sock_path, "conn"])
        self.assertEqual(out.returncode, 0, out)
        text = out.stdout.decode() if isinstance(out.stdout, bytes) else out.stdout
        lines = text.splitlines()
        self.assertTrue(lines[0].split()[-1] == "WRITE", lines[0])
        rows = {ln.split()[0]: ln.split()[-1] for ln in lines[1:] if ln.strip()}
        self.assertEqual(rows.get(whole.peer_id), "learned", text)
        self.assertEqual(rows.get(oneline.peer_id), "one-per-write", text)
        self.assertEqual(rows.get(piped.peer_id), "learned", text)
        out = harness.run([harness.binary("CHATP2PCTL"), "--socket", a.sock_path, "--json",
                           "conn"])
        text = out.stdout.decode() if isinstance(out.stdout, bytes) else out.stdout
        got = {c["peer_id"]: c.get("write_mode") for c in json.loads(text)["connections"]}
        self.assertEqual(got[whole.peer_id], "learned")
        self.assertEqual(got[oneline.peer_id], "one-per-write")
        for f in (whole, oneline, piped, w2, o2, p2):
            self.assertEqual(f.problems, [], f.peer_id)
        self.assertEqual(a.state_of(oneline.peer_id), "ACTIVE")
        a.stop(self)
        b.stop(self)


if __name__ == "__main__":
    unittest.main(verbosity=2)
