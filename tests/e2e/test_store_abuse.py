"""The inbox and outbox under abuse and bad luck (issue 18), with real daemons on
loopback: one sender's flood evicts only its own messages; a big outbox backlog
drains at the pace of the connection; the outbox is capped and stays fast at
50,000 entries; inbox paging from since 0 starts at the first message."""

import glob
import json
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from fakepeer import FakePeer  # noqa: E402
from nodes import CtlError, Node, mesh  # noqa: E402


def raw_peer(port, peer_id):
    """A socket past the handshake, speaking as peer_id (a flooding stranger)."""
    s = harness.connect(port)
    hello = {"type": "HELLO", "peer_id": peer_id, "version": "1.0",
             "features": ["ack", "pipeline"], "ttl": 1}
    s.sendall((json.dumps(hello) + "\n").encode())
    buf = b""
    s.settimeout(5)
    while b"\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            raise AssertionError("closed during the handshake")
        buf += chunk
    assert json.loads(buf.split(b"\n")[0])["type"] == "HELLO_OK", buf
    return s


def drain(sock, stop):
    """Read and discard what the node writes (ACKs, PINGs) until stop is set."""
    sock.settimeout(0.2)
    while not stop.is_set():
        try:
            if not sock.recv(65536):
                return
        except socket.timeout:
            continue
        except OSError:
            return


def cpu_seconds(pid):
    """utime + stime of a process."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class StoreAbuseTest(unittest.TestCase):
    def setUp(self):
        self.rdv = harness.start_rendezvous("rate_limit=100000")

    def tearDown(self):
        harness.kill_all()

    # ---- finding 1: fair retention -----------------------------------------------

    def test_flood_evicts_only_the_flooder(self):
        (bob,) = [Node("bob", self.rdv, sets=["storage.inbox_max_messages=300"])]
        carol = FakePeer("carol")
        c = carol.dial(bob.port)
        ids = []
        for i in range(20):
            mid = str(uuid.uuid4())
            ids.append(mid)
            c.send({"type": "SEND", "msg_id": mid, "src": carol.peer_id, "dst": bob.peer_id,
                    "payload": "keep %d" % i, "require_ack": True, "ttl": 1})
        carol.wait(lambda: len(carol.messages(lambda cc, m: m["type"] == "ACK")) == 20, 10,
                   what="20 ACKs")
        ev = bob.events(["message"])
        mallory = "mallory@CIC"
        s = raw_peer(bob.port, mallory)
        stop = threading.Event()
        t = threading.Thread(target=drain, args=(s, stop), daemon=True)
        t.start()
        n = 3000
        lines = [json.dumps({"type": "PUB", "msg_id": str(uuid.uuid4()), "src": mallory,
                             "dst": "*", "payload": "flood %d" % i, "require_ack": False,
                             "ttl": 1}) for i in range(n)]
        s.sendall(("\n".join(lines) + "\n").encode())
        # A live subscriber still sees the flood, up to its last PUB.
        ev.wait_event(lambda e: e.get("text") == "flood %d" % (n - 1), 30,
                      what="the last PUB of the flood")
        ev.close()
        harness.wait_for(lambda: bob.call("status")["storage"]["messages"] == 300, 10,
                         what="the bound kept")
        kept = [m for m in bob.call("inbox", {"from": carol.peer_id, "limit": 100})["messages"]]
        self.assertEqual([m["msg_id"] for m in kept], ids)
        self.assertTrue(all(not m["read"] for m in kept))
        # Every eviction was the flooder's, and is counted for it.
        st = bob.call("status")["storage"]
        self.assertEqual(st["evicted"], n + 20 - 300)
        self.assertEqual(st["evicted_from"], {mallory: n + 20 - 300})
        metrics = bob.call("metrics")
        text = metrics["text"] if isinstance(metrics, dict) else metrics
        self.assertIn('chatp2p_inbox_evicted_by_sender_total{sender="mallory@CIC"} %d'
                      % (n + 20 - 300), text)
        stop.set()
        s.close()
        carol.close()

    # ---- finding 2: outbox flow control ------------------------------------------

    def test_big_backlog_drains_at_connection_pace(self):
        alice, bob = mesh(self.rdv, ["alice", "bob"])
        bob.stop(self)
        harness.wait_for(lambda: alice.state_of(bob.peer_id) != "ACTIVE", 15,
                         what="alice to see bob gone")
        ctl = alice.ctl()
        n = 150
        text = "y" * 30000
        rids = [ctl.request("send", {"to": bob.peer_id, "text": "%03d" % i + text, "queue": True,
                                     "deadline": 600}) for i in range(n)]
        harness.wait_for(lambda: alice.call("status")["storage"]["outbox"] == n, 10,
                         what="%d queued" % n)
        # 4.5 MB for a 4 MB output queue: written at once, it closed the
        # connection, every time.
        bob.start()
        for rid in rids:
            self.assertEqual(ctl.answer(rid, 120)["status"], "acked")
        ctl.close()
        self.assertEqual(alice.call("status")["storage"]["outbox"], 0)
        self.assertNotIn("output queue full", alice.proc.stderr_text())
        msgs, since = [], 0
        while True:  # 30 KB each: an answer carries a few
            r = bob.call("inbox", {"since": since, "limit": 1000})
            msgs += r["messages"]
            if not r["more"]:
                break
            since = r["messages"][-1]["id"]
        self.assertEqual(sorted(m["text"][:3] for m in msgs), ["%03d" % i for i in range(n)])

    # ---- finding 3: outbox at scale -----------------------------------------------

    def test_outbox_full(self):
        alice, bob = mesh(self.rdv, ["alice", "bob"], sets=["storage.outbox_max=10"])
        bob.stop(self)
        harness.wait_for(lambda: alice.state_of(bob.peer_id) != "ACTIVE", 15,
                         what="alice to see bob gone")
        ctl = alice.ctl()
        for i in range(10):
            ctl.request("send", {"to": bob.peer_id, "text": "q%d" % i, "queue": True})
        harness.wait_for(lambda: alice.call("status")["storage"]["outbox"] == 10, 10,
                         what="10 queued")
        rid = ctl.request("send", {"to": bob.peer_id, "text": "one too many", "queue": True})
        with self.assertRaises(CtlError) as cm:
            ctl.answer(rid, 5)
        self.assertEqual(cm.exception.reason, "outbox_full")
        self.assertEqual(alice.call("status")["storage"]["outbox"], 10)
        r = harness.run([harness.binary("CHATP2PCTL"), "--socket", alice.sock_path, "send",
                         "--queue", bob.peer_id, "more"], timeout=10)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"outbox", r.stdout + r.stderr)
        ctl.close()

    def test_fifty_thousand_queued_fast(self):
        alice, bob, carol = mesh(self.rdv, ["alice", "bob", "carol"])

        def live_rate(k=10000):
            # Sends per second of alice's CPU (/proc/PID/stat), the best of
            # two runs: the machine is shared, and wall time measures it.
            best = 0
            for _ in range(2):
                c = alice.ctl()
                t0 = cpu_seconds(alice.proc.pid)
                for w in range(0, k, 500):  # windows: answers are read as they come
                    rids = [c.request("send", {"to": carol.peer_id, "text": "live %d" % i})
                            for i in range(w, w + 500)]
                    for rid in rids:
                        self.assertEqual(c.answer(rid, 60)["status"], "acked")
                c.close()
                best = max(best, k / max(cpu_seconds(alice.proc.pid) - t0, 1e-3))
            return best

        before = live_rate()
        bob.stop(self)
        harness.wait_for(lambda: alice.state_of(bob.peer_id) != "ACTIVE", 15,
                         what="alice to see bob gone")
        n = 50000
        ctl = alice.ctl()
        ctl.sock.settimeout(None)  # the writer may wait on a full socket buffer
        blob = "".join(json.dumps({"jsonrpc": "2.0", "id": i, "method": "send",
                                   "params": {"to": bob.peer_id, "text": "b%d" % i,
                                              "queue": True, "deadline": 3600}}) + "\n"
                       for i in range(n)).encode()
        writer = threading.Thread(target=ctl.sock.sendall, args=(blob,), daemon=True)
        t0 = time.monotonic()
        writer.start()
        worst = 0.0
        st = {}

        def all_queued():
            # Every probe is also a measure of how long status takes.
            nonlocal worst, st
            q0 = time.monotonic()
            st = alice.call("status", timeout=5)
            worst = max(worst, time.monotonic() - q0)
            return st["storage"]["outbox"] >= n

        harness.wait_until(all_queued, 60, interval=0.05)
        took = time.monotonic() - t0
        harness.log("50,000 queued in %.1f s; slowest status %.0f ms" % (took, worst * 1000))
        self.assertEqual(st["storage"]["outbox"], n)
        self.assertLess(took, 15)
        self.assertLess(worst, 0.5)
        after = live_rate()
        harness.log("live sends to another peer: %.0f/s of CPU before, %.0f/s with the backlog (%.2f)"
                    % (before, after, after / before))
        # The claim (>= 0.8 of the rate, 0.93 measured on a Release build) is
        # a benchmark's (docs/benchmarks-history.md); what this test holds is
        # that a live send's cost does not grow with the backlog: 905dabf
        # scanned the outbox on every ACK, 0.007 of the rate with 100,000
        # queued.  Half is far from both, on a shared machine under ASan.
        self.assertGreaterEqual(after / before, 0.5)
        ctl.sock.close()

    # ---- finding 9: inbox paging --------------------------------------------------

    def test_inbox_since_zero_starts_at_first(self):
        alice, bob = mesh(self.rdv, ["alice", "bob"])
        for i in range(5):
            alice.call("send", {"to": bob.peer_id, "text": "p%d" % i})
        r = bob.call("inbox", {"since": 0, "limit": 2})
        self.assertEqual([m["text"] for m in r["messages"]], ["p0", "p1"])
        r = bob.call("inbox", {"since": r["messages"][-1]["id"], "limit": 2})
        self.assertEqual([m["text"] for m in r["messages"]], ["p2", "p3"])
        out = harness.run([harness.binary("CHATP2PCTL"), "--socket", bob.sock_path, "inbox",
                           "--since", "0", "--limit", "1"], timeout=10)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn(b"p0", out.stdout)
        self.assertNotIn(b"p4", out.stdout)


def all_inbox(node):
    """Every stored message, paging from since 0 (id order)."""
    out, since = [], 0
    while True:
        r = node.call("inbox", {"since": since, "limit": 10000})
        out += r["messages"]
        if not r["messages"] or not r["more"]:
            return out
        since = r["messages"][-1]["id"]


def send_all(node, to, texts, timeout=60):
    """Pipelined sends; {text: "acked" or the error reason}."""
    ctl = node.ctl()
    rids = {ctl.request("send", {"to": to, "text": t}): t for t in texts}
    out = {}
    for rid, t in rids.items():
        try:
            out[t] = ctl.answer(rid, timeout)["status"]
        except CtlError as e:
            out[t] = e.reason
    ctl.close()
    return out


def chattr(flag, paths):
    subprocess.run(["chattr", flag] + paths, check=True, capture_output=True)


class StorageFaultTest(unittest.TestCase):
    """Finding 4 and the ACK-after-commit guarantee: a database deleted,
    replaced or unwritable under the running node."""

    def setUp(self):
        self.rdv = harness.start_rendezvous("rate_limit=100000")
        self.immutable = []

    def tearDown(self):
        if self.immutable:
            chattr("-i", self.immutable)
        harness.kill_all()

    def test_state_dir_deleted_nothing_acked_is_lost(self):
        alice, bob = mesh(self.rdv, ["alice", "bob"])
        before = send_all(alice, bob.peer_id, ["before %d" % i for i in range(20)])
        self.assertEqual(set(before.values()), {"acked"})
        subprocess.run(["rm", "-rf", bob.state_dir], check=True)
        after = send_all(alice, bob.peer_id, ["after %d" % i for i in range(100)])
        # Some more, one by one, so that several commits follow the deletion.
        after.update(send_all(alice, bob.peer_id, ["later %d" % i for i in range(20)]))
        acked = [t for t, r in after.items() if r == "acked"]
        self.assertTrue(bob.proc.alive())
        bob.stop(self)
        log = bob.proc.stderr_text()
        bob.start()
        stored = {m["text"] for m in all_inbox(bob)}
        missing = [t for t in acked if t not in stored]
        self.assertEqual(missing, [], "ACKed after the deletion, gone after a restart")
        # It noticed, said so, and went on storing in a new database.
        self.assertGreater(len(acked), 0)
        self.assertIn("deleted or replaced", log)
        self.assertIn("reopened", log)

    def test_unwritable_database_acks_nothing_unstored(self):
        alice, bob = mesh(self.rdv, ["alice", "bob"])
        self.assertEqual(set(send_all(alice, bob.peer_id, ["ok %d" % i for i in range(10)])
                             .values()), {"acked"})
        files = sorted(glob.glob(os.path.join(bob.state_dir, "chatp2p.db*")))
        self.immutable = files
        chattr("+i", files)
        during = send_all(alice, bob.peer_id, ["during %d" % i for i in range(40)])
        # No crash (SIGBUS in the shared-memory WAL index was one), and it says why.
        self.assertTrue(bob.proc.alive(), bob.proc.stderr_text()[-2000:])
        st = bob.call("status")["storage"]
        self.assertIn("error", st)
        chattr("-i", files)
        self.immutable = []
        harness.wait_for(lambda: "error" not in bob.call("status")["storage"], 10,
                         what="the database reopened")
        self.assertEqual(set(send_all(alice, bob.peer_id, ["again %d" % i for i in range(10)])
                             .values()), {"acked"})
        bob.stop(self)
        bob.start()
        stored = {m["text"] for m in all_inbox(bob)}
        acked = [t for t, r in during.items() if r == "acked"]
        self.assertEqual([t for t in acked if t not in stored], [],
                         "ACKed while the database could not be written, and not stored")
        self.assertLess(len(acked), len(during))
        for i in range(10):
            self.assertIn("ok %d" % i, stored)
            self.assertIn("again %d" % i, stored)

    def test_full_filesystem_acks_nothing_unstored(self):
        mnt = os.path.join(harness.tmpdir(), "small-fs")
        os.makedirs(mnt)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", mnt],
                           capture_output=True)
        if r.returncode != 0:
            self.skipTest("cannot mount a small tmpfs here: %s" % r.stderr.decode().strip())
        try:
            (alice,) = [Node("alice", self.rdv)]
            bob = Node("bob", self.rdv, start=False)
            bob.state_dir = os.path.join(mnt, "bob")
            bob.start()
            alice.wait_active(bob.peer_id)
            texts = ["full %d " % i + "z" * 2000 for i in range(600)]
            res = {}
            for k in range(0, len(texts), 50):
                res.update(send_all(alice, bob.peer_id, texts[k:k + 50]))
            self.assertTrue(bob.proc.alive())
            acked = [t for t, r in res.items() if r == "acked"]
            self.assertLess(len(acked), len(texts), "the filesystem never filled")
            bob.stop(self)
            bob.start()
            stored = {m["text"] for m in all_inbox(bob)}
            self.assertEqual([t[:12] for t in acked if t not in stored], [],
                             "ACKed on a full filesystem, and not stored")
            bob.stop(self)
        finally:
            harness.kill_all()
            subprocess.run(["umount", "-l", mnt], capture_output=True)


class RetentionAndDuplicatesTest(unittest.TestCase):
    """Tests the suite lacked (issue 18's mutation check)."""

    def setUp(self):
        self.rdv = harness.start_rendezvous("rate_limit=100000")

    def tearDown(self):
        harness.kill_all()

    def test_age_retention_at_start(self):
        alice, bob = mesh(self.rdv, ["alice", "bob"])
        send_all(alice, bob.peer_id, ["m%d" % i for i in range(10)])
        bob.stop(self)
        with sqlite3.connect(os.path.join(bob.state_dir, "chatp2p.db")) as db:
            # The five oldest, 31 days old: past storage.inbox_max_days (30).
            db.execute("UPDATE inbox SET at = at - 31 * 86400 WHERE id IN "
                       "(SELECT id FROM inbox ORDER BY id LIMIT 5)")
        db.close()
        bob.start()
        self.assertEqual([m["text"] for m in all_inbox(bob)], ["m%d" % i for i in range(5, 10)])

    def test_duplicates_without_storage(self):
        (bob,) = [Node("bob", self.rdv, sets=["storage.sync=off"])]
        ev = bob.events(["message"])
        carol = FakePeer("carol")
        c = carol.dial(bob.port)
        mid, pid = str(uuid.uuid4()), str(uuid.uuid4())
        send = {"type": "SEND", "msg_id": mid, "src": carol.peer_id, "dst": bob.peer_id,
                "payload": "once", "require_ack": True, "ttl": 1}
        pub = {"type": "PUB", "msg_id": pid, "src": carol.peer_id, "dst": "*",
               "payload": "pub once", "require_ack": False, "ttl": 1}
        for m in (send, send, pub, pub, send):
            c.send(m)
        end = str(uuid.uuid4())
        c.send(dict(send, msg_id=end, payload="end"))
        # Every copy ACKed, each message shown once.
        carol.wait(lambda: len(carol.messages(lambda cc, m: m["type"] == "ACK")) == 4, 10,
                   what="4 ACKs")
        seen = []
        while True:
            e = ev.wait_event(lambda e: e["type"] in ("message", "pub"), 10)
            seen.append(e["text"])
            if e["text"] == "end":
                break
        self.assertEqual(seen, ["once", "pub once", "end"])
        ev.close()
        carol.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
