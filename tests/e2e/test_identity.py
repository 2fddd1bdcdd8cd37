"""Who is on the other end (PROTOCOL.md §4 and §5, issue 17): what a peer
advertises is believed only where it cannot be an echo.  Real chatp2pd
processes, fake peers and attackers on loopback."""

import json
import os
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import fakepeer  # noqa: E402
from nodes import Node, NodesAndFakes  # noqa: E402


class EchoPeer(fakepeer.FakePeer):
    """The wild implementation that reads one line per recv() and builds its
    HELLO_OK by copying the dialler's version and features (PROTOCOL.md §4:
    "An advertisement in HELLO_OK can be an echo")."""

    def hello_ok(self, conn, hello):
        m = self.hello("HELLO_OK")
        m["version"] = hello.get("version", "1.0")
        if "features" in hello:
            m["features"] = list(hello["features"])
        return m


def write_modes(node, peer_id):
    return [c.get("write_mode") for c in node.call("conn")["connections"]
            if c["peer_id"] == peer_id and c["state"] == "established"]


class Echo(NodesAndFakes, unittest.TestCase):

    def test_echoed_pipeline_is_not_believed(self):
        # Finding 6: dialled by our node, the echo "advertises" pipeline;
        # 905dabf batched to it and 1,991 of 2,000 SENDs timed out.
        echo = self.fake_echo("echo", first_line_only=True)
        echo.register(self.rdv)
        a = self.node("alice", self.rdv)
        a.wait_active(echo.peer_id)
        harness.wait_for(lambda: write_modes(a, echo.peer_id) not in ([], ["probing"]), 10,
                         what="the probe of the echo to end")
        n = 300
        ctl = a.ctl()
        try:
            t0 = time.monotonic()
            rids = [ctl.request("send", {"to": echo.peer_id, "text": "echo %d" % i})
                    for i in range(n)]
            res = [ctl.answer(r, timeout=120) for r in rids]
            dt = time.monotonic() - t0
        finally:
            ctl.close()
        statuses = [r.get("status") for r in res]
        harness.log("%d SENDs to an echoing one-line-per-recv peer: %d acked in %.2f s"
                    % (n, statuses.count("acked"), dt))
        self.assertEqual(statuses, ["acked"] * n)
        self.assertEqual(write_modes(a, echo.peer_id), ["one-per-write"])
        a.stop(self)

    def fake_echo(self, *args, **kw):
        f = EchoPeer(*args, **kw)
        self.fakes.append(f)
        return f


# ---- TLS between chatp2p nodes (PROTOCOL.md §5.2) ----------------------------

class Relay:
    """A TCP relay on loopback that records every byte it passes, both ways:
    what a capture on the path sees.  The node dials the relay's port,
    registered at the rendezvous under the peer's name."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.lock = threading.Lock()
        self.data = bytearray()
        self.socks = []
        self.lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lst.bind(("127.0.0.1", 0))
        self.lst.listen(16)
        self.port = self.lst.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                a, _ = self.lst.accept()
            except OSError:
                return
            b = harness.connect(self.target_port)
            b.settimeout(None)
            with self.lock:
                self.socks += [a, b]
            threading.Thread(target=self._pump, args=(a, b), daemon=True).start()
            threading.Thread(target=self._pump, args=(b, a), daemon=True).start()

    def _pump(self, src, dst):
        while True:
            try:
                d = src.recv(65536)
            except OSError:
                d = b""
            if not d:
                break
            with self.lock:
                self.data += d
            try:
                dst.sendall(d)
            except OSError:
                break
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def seen(self):
        with self.lock:
            return bytes(self.data)

    def close(self):
        try:
            self.lst.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.lst.close()
        with self.lock:
            for s in self.socks:
                try:
                    s.close()
                except OSError:
                    pass


def ctl_run(node, *args):
    argv = [harness.binary("CHATP2PCTL"), "--socket", node.sock_path] + [str(a) for a in args]
    cp = harness.run(argv, timeout=30)
    return cp.returncode, cp.stdout.decode(), cp.stderr.decode()


def conn_of(node, peer_id):
    cs = node.connections_to(peer_id)
    return cs[0] if cs else None


def secure_with(node, peer_id):
    c = conn_of(node, peer_id)
    return c is not None and c.get("secure") is True


def register_as(rdv, name, port, ns="CIC"):
    r = harness.rdv_request(rdv.port, {"type": "REGISTER", "namespace": ns, "name": name,
                                       "port": port, "ttl": 7200})
    assert r["status"] == "OK", r


class Tls(NodesAndFakes, unittest.TestCase):

    def test_two_nodes_talk_tls_a_capture_never_sees_their_payloads(self):
        # Finding 4: payloads between two chatp2p nodes were readable on the
        # path.  alice learns bob (and the wild carol) at relays' addresses.
        rdv_b = harness.start_rendezvous("rate_limit=100000")
        try:
            b = self.node("bob", rdv_b)
            relay = Relay(b.port)
            carol = self.fake("carol")
            relay_c = Relay(carol.port)
            register_as(self.rdv, "bob", relay.port)
            register_as(self.rdv, "carol", relay_c.port)
            a = self.node("alice", self.rdv)
            a.wait_active(b.peer_id, carol.peer_id)
            harness.wait_for(lambda: secure_with(a, b.peer_id), 10, what="TLS to bob")
            c = conn_of(a, b.peer_id)
            self.assertEqual(c["identity"], "pinned")
            self.assertEqual(c["fingerprint"], b.call("status")["fingerprint"])
            self.assertEqual(c["write_mode"], "pipeline")
            self.assertIs(conn_of(a, carol.peer_id)["secure"], False)
            self.assertIsNone(conn_of(a, carol.peer_id)["fingerprint"])
            secrets = ["tls-secret-%d-from-alice" % i for i in range(20)]
            for t in secrets:
                self.assertEqual(a.call("send", {"to": b.peer_id, "text": t})["status"], "acked")
            back = "tls-secret-from-bob"
            harness.wait_for(lambda: b.state_of(a.peer_id) == "ACTIVE", 10, what="bob sees alice")
            self.assertEqual(b.call("send", {"to": a.peer_id, "text": back})["status"], "acked")
            plain = "plain-payload-for-carol"
            self.assertEqual(a.call("send", {"to": carol.peer_id, "text": plain})["status"], "acked")
            inbox = [m["text"] for m in b.call("inbox")["messages"]]
            for t in secrets:
                self.assertIn(t, inbox)
            # §5.3: every stored message says whether its connection proved a
            # key, and which; what came in clear says so too.
            fa = a.call("status")["fingerprint"]
            for m in b.call("inbox")["messages"]:
                self.assertEqual((m["secure"], m["fingerprint"], m["identity"]),
                                 (True, fa, "pinned"), m)
            seen = relay.seen()
            # The handshake lines go in clear, then nothing readable.
            self.assertIn(b'"starttls"', seen)
            self.assertIn(b"alice@CIC", seen)
            for t in secrets + [back]:
                self.assertNotIn(t.encode(), seen)
            self.assertNotIn(b'"SEND"', seen)
            self.assertIn(plain.encode(), relay_c.seen())
            self.assertNotIn(b'"starttls"', relay_c.seen())
            relay.close()
            relay_c.close()
            a.stop(self)
            b.stop(self)
        finally:
            rdv_b.check_clean_exit()

    def test_changed_key_is_refused_until_forgotten(self):
        a = self.node("alice", self.rdv)
        b = self.node("bob", self.rdv)
        a.wait_active(b.peer_id)
        harness.wait_for(lambda: secure_with(a, b.peer_id), 10, what="TLS to bob")
        old_fp = b.call("status")["fingerprint"]
        pins = json.loads(ctl_run(a, "--json", "trust")[1])
        self.assertEqual([(p["peer_id"], p["fingerprint"], p["verified"]) for p in pins],
                         [(b.peer_id, old_fp, False)])
        ev = a.events(["peer"])
        b.stop(self)
        # bob again, with a new state directory: a new key.
        b2 = self.node("bob", self.rdv)
        new_fp = b2.call("status")["fingerprint"]
        self.assertNotEqual(new_fp, old_fp)
        e = ev.wait_event(lambda e: e["type"] == "identity_changed", 20, "identity_changed")
        self.assertEqual((e["peer_id"], e["fingerprint"], e["pinned"]), (b.peer_id, new_fp, old_fp))
        self.assertIn("127.0.0.1:", e["address"])
        warn = [l for l in a.proc.stderr_text().splitlines()
                if "WARNING" in l and new_fp in l and old_fp in l]
        self.assertTrue(warn, "no WARNING naming both fingerprints")
        self.assertIn("127.0.0.1:", warn[0])
        rc, out, err = ctl_run(a, "watch", "--since", "10m", "--until", "0s", "peer")
        self.assertEqual(rc, 0, err)
        shown = [l for l in out.splitlines() if "KEY CHANGED for bob@CIC" in l]
        self.assertTrue(shown and new_fp in shown[0] and old_fp in shown[0], out)
        # Still refused a while later, on every attempt.
        ev.wait_event(lambda e: e["type"] == "identity_changed", 20, "identity_changed again")
        self.assertNotEqual(a.state_of(b.peer_id), "ACTIVE")
        self.assertGreaterEqual(a.call("status")["guard"]["identity_refused"], 2)
        rc, out, err = ctl_run(a, "trust", "forget", b.peer_id)
        self.assertEqual(rc, 0, err)
        e = ev.wait_event(lambda e: e["type"] == "identity_new", 20, "identity_new")
        self.assertEqual((e["peer_id"], e["fingerprint"]), (b.peer_id, new_fp))
        a.wait_active(b.peer_id)
        harness.wait_for(lambda: secure_with(a, b.peer_id), 10, what="TLS to the new bob")
        self.assertEqual(a.call("send", {"to": b.peer_id, "text": "hi new bob"})["status"], "acked")
        ev.close()
        a.stop(self)
        b2.stop(self)

    def test_plaintext_claim_of_a_pinned_peer_is_refused_and_gets_nothing(self):
        a = self.node("alice", self.rdv)
        b = self.node("bob", self.rdv)
        a.wait_active(b.peer_id)
        harness.wait_for(lambda: secure_with(a, b.peer_id), 10, what="TLS to bob")
        b.kill9()
        harness.wait_for(lambda: a.state_of(b.peer_id) != "ACTIVE", 15, what="bob lost")
        secret = "queued-for-the-real-bob"
        ctl = a.ctl()
        rid = ctl.request("send", {"to": b.peer_id, "text": secret, "queue": True})
        ev = a.events(["peer"])
        # From bob's own address (127.0.0.1), a plaintext HELLO as bob.
        fake = self.fake("bob", listen=True)
        conn = fake.dial(a.port, wait=False)
        e = ev.wait_event(lambda e: e["type"] == "impostor", 10, "impostor")
        self.assertEqual(e["peer_id"], b.peer_id)
        self.assertIn("127.0.0.1:", e["address"])
        fake.wait(lambda: conn.eof, 10, "the refusal")
        self.assertNotIn("HELLO_OK", conn.types())
        # And bob's registration now points at the fake: our dial is refused too.
        register_as(self.rdv, "bob", fake.port)
        ev.wait_event(lambda e: e["type"] == "impostor" and e["reason"] == "no TLS for a pinned peer"
                      and e["address"] == "127.0.0.1:%d" % fake.port, 20, "impostor (dialled)")
        dialled = [c for c in fake.conns if c.role == "in"]
        self.assertTrue(dialled)
        fake.wait(lambda: all(c.eof for c in dialled), 10, "our dials closed")
        for _, _, m in fake.messages():
            self.assertNotEqual(m.get("type"), "SEND")
            self.assertNotIn(secret, json.dumps(m))
        self.assertEqual([(o["to"], o["attempts"]) for o in a.call("outbox")["queued"]],
                         [(b.peer_id, 0)])
        self.assertNotEqual(a.state_of(b.peer_id), "ACTIVE")
        ctl.close()
        ev.close()
        a.stop(self)

    def test_require_refuses_wild_peers(self):
        a = self.node("alice", self.rdv, sets=["security.tls=require"])
        b = self.node("bob", self.rdv)
        a.wait_active(b.peer_id)
        harness.wait_for(lambda: secure_with(a, b.peer_id), 10, what="TLS to bob")
        wild = self.fake("wild")
        conn = wild.dial(a.port, wait=False)
        wild.wait(lambda: conn.eof, 10, "the refusal")
        self.assertNotIn("HELLO_OK", conn.types())
        harness.wait_for(lambda: any("wild@CIC" in l and "security.tls is require" in l
                                     for l in a.proc.stderr_text().splitlines()), 5,
                         what="the log line")
        self.assertNotEqual(a.state_of(wild.peer_id), "ACTIVE")
        a.stop(self)
        b.stop(self)

    def test_off_behaves_like_today(self):
        a = self.node("alice", self.rdv, sets=["security.tls=off"])
        b = self.node("bob", self.rdv)
        carol = self.fake("carol")
        carol.register(self.rdv)
        a.wait_active(b.peer_id, carol.peer_id)
        c = conn_of(a, b.peer_id)
        self.assertIs(c["secure"], False)
        # No key: what the address says (PROTOCOL.md §5.1), as for a wild peer.
        self.assertEqual(c["identity"], "backed")
        self.assertEqual(a.call("send", {"to": b.peer_id, "text": "clear"})["status"], "acked")
        got = [m for m in b.call("inbox")["messages"] if m["text"] == "clear"]
        self.assertEqual([(m["secure"], m["fingerprint"]) for m in got], [(False, None)])
        hello = carol.wait_msg(lambda cc, m: m.get("type") == "HELLO" and
                               m.get("peer_id") == a.peer_id, 10, "alice's HELLO")[2]
        self.assertNotIn("tls", hello.get("features", []))
        self.assertEqual(ctl_run(a, "--json", "trust")[1].strip(), "[]")
        a.stop(self)
        b.stop(self)

    def test_send_to_a_pinned_peer_over_an_unproven_connection_fails(self):
        a = self.node("alice", self.rdv)
        carol = self.fake("carol")
        carol.register(self.rdv)
        a.wait_active(carol.peer_id)
        fp = "SHA256:" + "A" * 43
        rc, out, err = ctl_run(a, "trust", "pin", carol.peer_id, fp)
        self.assertEqual(rc, 0, err)
        rc, out, err = ctl_run(a, "send", carol.peer_id, "must-not-leave")
        self.assertEqual(rc, 4, (out, err))
        self.assertIn("identity_unproven", err)
        with self.assertRaises(Exception) as cm:
            a.call("send", {"to": carol.peer_id, "text": "must-not-leave-either"})
        self.assertEqual(cm.exception.reason, "identity_unproven")
        ctl = a.ctl()
        ctl.request("send", {"to": carol.peer_id, "text": "queued-must-wait", "queue": True})
        harness.wait_for(lambda: len(a.call("outbox")["queued"]) == 1, 5, what="queued")
        pub = a.call("pub", {"to": "*", "text": "pub-must-not-leave"})
        for _, _, m in carol.messages():
            self.assertNotIn(m.get("type"), ("SEND", "PUB"))
        ctl.close()
        a.stop(self)
        del pub

    def test_id_and_trust_commands(self):
        a = self.node("alice", self.rdv)
        b = self.node("bob", self.rdv)
        a.wait_active(b.peer_id)
        harness.wait_for(lambda: secure_with(a, b.peer_id), 10, what="TLS to bob")
        rc, out, err = ctl_run(b, "id")
        self.assertEqual(rc, 0, err)
        fp = b.call("status")["fingerprint"]
        self.assertEqual(out.split(), [b.peer_id, fp])
        rc, out, err = ctl_run(a, "trust", "verify", b.peer_id, "SHA256:" + "A" * 43)
        self.assertNotEqual(rc, 0)
        self.assertIn("mismatch", err)
        rc, out, err = ctl_run(a, "trust", "verify", b.peer_id, fp)
        self.assertEqual(rc, 0, err)
        self.assertEqual(conn_of(a, b.peer_id)["identity"], "verified")
        self.assertEqual(json.loads(ctl_run(a, "--json", "trust", "list")[1])[0]["verified"], True)
        p = a.peer(b.peer_id)
        self.assertEqual((p["secure"], p["fingerprint"], p["identity"]), (True, fp, "verified"))
        a.stop(self)
        b.stop(self)

    def test_client_hello_in_the_hellos_segment_goes_to_tls(self):
        # A client that writes HELLO and its ClientHello in one segment: the
        # bytes after the HELLO line are TLS, not lines (net/conn.c feeds
        # what the framer holds past the line to the TLS filter).
        import ssl
        a = self.node("alice", self.rdv)
        ctx = harness.tls_client_context("eager@CIC")
        inc, outg = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = ctx.wrap_bio(inc, outg)
        try:
            tls.do_handshake()
        except ssl.SSLWantReadError:
            pass
        hello = {"type": "HELLO", "peer_id": "eager@CIC", "version": "1.0", "ttl": 1,
                 "features": ["ack", "metrics", "pipeline", "tls"]}
        s = harness.connect(a.port)
        s.sendall((json.dumps(hello) + "\n").encode() + outg.read())
        buf = b""
        while b"\n" not in buf:
            d = s.recv(65536)
            self.assertTrue(d, "closed before HELLO_OK")
            buf += d
        line, rest = buf.split(b"\n", 1)
        self.assertIn("starttls", json.loads(line)["features"])
        inc.write(rest)
        deadline = time.monotonic() + 10
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                s.sendall(outg.read())
                self.assertLess(time.monotonic(), deadline, "TLS handshake")
                d = s.recv(65536)
                self.assertTrue(d, "closed during the TLS handshake")
                inc.write(d)
        s.sendall(outg.read())
        harness.wait_for(lambda: secure_with(a, "eager@CIC"), 10, what="eager's TLS session")
        self.assertEqual(conn_of(a, "eager@CIC")["fingerprint"],
                         json.loads(ctl_run(a, "--json", "trust")[1])[0]["fingerprint"])
        s.close()
        a.stop(self)


if __name__ == "__main__":
    unittest.main()
