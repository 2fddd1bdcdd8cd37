"""chatp2pd as a chat node (issue 4): real daemons on loopback with our own
rendezvous server, observed through their control sockets."""

import json
import os
import signal
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from nodes import Node, mesh  # noqa: E402


def rdv_server():
    # Every node on 127.0.0.1 shares one ip: lift the rate limit for tests.
    return harness.start_rendezvous("rate_limit=100000")


class ThreeNodes(unittest.TestCase):
    """alice and bob in CIC, carol in UnB: discover, connect, chat."""

    @classmethod
    def setUpClass(cls):
        cls.rdv = rdv_server()
        cls.a = Node("alice", cls.rdv)
        cls.b = Node("bob", cls.rdv)
        cls.c = Node("carol", cls.rdv, namespace="UnB")
        cls.nodes = [cls.a, cls.b, cls.c]
        for x in cls.nodes:
            x.wait_active(*[y.peer_id for y in cls.nodes if y is not x])

    @classmethod
    def tearDownClass(cls):
        for x in cls.nodes:
            x.stop()
        cls.rdv.check_clean_exit()

    def test_registered_and_discovered(self):
        st = self.a.call("status")
        self.assertEqual(st["rendezvous"]["state"], "registered")
        self.assertEqual(st["peer_id"], "alice@CIC")
        ids = {p["peer_id"] for p in self.a.call("peers")["peers"]}
        self.assertEqual(ids, {"bob@CIC", "carol@UnB"})  # never itself

    def test_send_delivered_and_acked(self):
        w = self.b.events(["message"])
        r = self.a.call("send", {"to": "bob@CIC", "text": "Olá, bob! 😀"})
        self.assertEqual(r["status"], "acked")
        self.assertGreaterEqual(r["rtt_ms"], 0)
        ev = w.wait_event(lambda e: e["type"] == "message" and e["msg_id"] == r["msg_id"])
        self.assertEqual(ev["from"], "alice@CIC")
        self.assertEqual(ev["text"], "Olá, bob! 😀")
        w.close()

    def test_send_errors(self):
        from nodes import CtlError
        with self.assertRaises(CtlError) as cm:
            self.a.call("send", {"to": "nobody@CIC", "text": "x"})
        self.assertEqual(cm.exception.reason, "unknown_peer")
        r = self.a.call("send", {"to": "bob@CIC", "text": "no ack", "require_ack": False})
        self.assertEqual(r["status"], "sent")

    def test_pub_all_and_namespace(self):
        wb = self.b.events(["message"])
        wc = self.c.events(["message"])
        r = self.a.call("pub", {"to": "*", "text": "to everyone"})
        self.assertEqual(r["reached"], 2)
        for w in (wb, wc):
            ev = w.wait_event(lambda e: e["type"] == "pub" and e["msg_id"] == r["msg_id"])
            self.assertEqual(ev["text"], "to everyone")
            self.assertEqual(ev["from"], "alice@CIC")
        r = self.a.call("pub", {"to": "#CIC", "text": "CIC only"})
        self.assertEqual(r["reached"], 1)
        wb.wait_event(lambda e: e["type"] == "pub" and e["text"] == "CIC only")
        # carol is not in CIC: a later PUB to all arrives, the #CIC one never did
        r2 = self.a.call("pub", {"to": "*", "text": "marker"})
        seen = []
        wc.wait_event(lambda e: seen.append(e["text"]) or e["msg_id"] == r2["msg_id"])
        self.assertNotIn("CIC only", seen)
        wb.close()
        wc.close()

    def test_rtt_samples(self):
        def samples():
            return {r["peer_id"]: r for r in self.a.call("rtt")["rtt"]}
        rtt = harness.wait_for(lambda: len(samples()) == 2 and samples(), 10,
                               what="RTT samples for both peers")
        for r in rtt.values():
            self.assertGreater(r["samples"], 0)
            self.assertLessEqual(r["min"], r["avg"])
            self.assertLessEqual(r["avg"], r["max"])
            self.assertLess(r["max"], 1000)

    def test_one_connection_per_pair(self):
        # Every node dialled every other at about the same moment.
        for x in self.nodes:
            for y in self.nodes:
                if x is y:
                    continue
                harness.wait_for(lambda: len(x.connections_to(y.peer_id)) == 1, 10,
                                 what="one connection %s -> %s" % (x.peer_id, y.peer_id))
        # and both ends agree on which one: the same pair of addresses
        for x, y in ((self.a, self.b), (self.a, self.c), (self.b, self.c)):
            cx = x.connections_to(y.peer_id)[0]
            cy = y.connections_to(x.peer_id)[0]
            self.assertNotEqual(cx["direction"], cy["direction"])


class Lifecycle(unittest.TestCase):
    def setUp(self):
        self.rdv = rdv_server()

    def tearDown(self):
        self.rdv.check_clean_exit()

    def test_kill9_stale_then_reconnect(self):
        a, b = mesh(self.rdv, ["alice", "bob"])
        w = a.events(["peer"])
        b.kill9()
        ev = w.wait_event(lambda e: e["type"] == "peer_stale" and e["peer_id"] == "bob@CIC", 10)
        self.assertEqual(a.state_of("bob@CIC"), "STALE")
        t0 = time.monotonic()
        b.start()  # same name, same port
        w.wait_event(lambda e: e["type"] == "peer_connected" and e["peer_id"] == "bob@CIC", 15)
        self.assertLess(time.monotonic() - t0, 10)
        self.assertEqual(a.state_of("bob@CIC"), "ACTIVE")
        r = a.call("send", {"to": "bob@CIC", "text": "welcome back"})
        self.assertEqual(r["status"], "acked")
        w.close()
        a.stop(self)
        b.stop(self)

    def test_dead_peer_detected_by_keepalive(self):
        a, b = mesh(self.rdv, ["alice", "bob"])
        w = a.events(["peer"])
        # SIGSTOP: the socket stays open but nothing answers the PINGs.
        b.proc.send_signal(signal.SIGSTOP)
        t0 = time.monotonic()
        try:
            w.wait_event(lambda e: e["type"] == "peer_stale" and e["peer_id"] == "bob@CIC", 10)
            # ping_interval 1 + 3 misses of 0.5 s: well under 5 s
            self.assertLess(time.monotonic() - t0, 6)
        finally:
            b.proc.send_signal(signal.SIGCONT)
        w.close()
        a.stop(self)
        b.stop(self)

    def test_sigterm_bye_unregister_exit0(self):
        a, b = mesh(self.rdv, ["alice", "bob"])
        w = a.events(["peer"])
        t0 = time.monotonic()
        rc = b.stop(self)
        self.assertEqual(rc, 0)
        self.assertLess(time.monotonic() - t0, 5)
        ev = w.wait_event(lambda e: e["peer_id"] == "bob@CIC" and e["type"] in
                          ("peer_disconnected", "peer_stale"), 5)
        self.assertEqual(ev["type"], "peer_disconnected")  # it said BYE
        listed = harness.rdv_request(self.rdv.port, {"type": "DISCOVER", "namespace": "CIC"})
        self.assertEqual([p["name"] for p in listed["peers"]], ["alice"])  # bob unregistered
        # alice does not rush to redial a peer that left
        self.assertFalse(a.peer("bob@CIC")["state"] == "ACTIVE")
        w.close()
        a.stop(self)

    def test_sigterm_with_silent_peer_still_exits(self):
        a = Node("alice", self.rdv)
        # A peer that completes the handshake and then never answers anything.
        lst = socket.socket()
        lst.bind(("127.0.0.1", 0))
        lst.listen(4)
        port = lst.getsockname()[1]
        harness.rdv_request(self.rdv.port, {"type": "REGISTER", "namespace": "CIC", "name": "mute",
                                            "port": port})
        a.call("discover")
        s, _ = lst.accept()
        s.settimeout(5)
        hello = json.loads(s.makefile().readline())
        self.assertEqual(hello["type"], "HELLO")
        s.sendall(b'{"type":"HELLO_OK","peer_id":"mute@CIC","version":"1.0","features":["ack"],"ttl":1}\n')
        a.wait_active("mute@CIC")
        t0 = time.monotonic()
        a.stop(self)
        self.assertLess(time.monotonic() - t0, 6)
        s.close()
        lst.close()


class HostileInput(unittest.TestCase):
    """Garbage, over-long lines, silence, talking before HELLO: the offender
    is dropped, nobody else notices."""

    @classmethod
    def setUpClass(cls):
        cls.rdv = rdv_server()
        cls.a, cls.b = mesh(cls.rdv, ["alice", "bob"], sets=["limits.handshake_timeout=1",
                                                             "limits.max_bad_lines=5"])

    @classmethod
    def tearDownClass(cls):
        cls.a.stop()
        cls.b.stop()
        cls.rdv.check_clean_exit()

    def closed_by_node(self, sock, timeout=5):
        sock.settimeout(timeout)
        try:
            while sock.recv(65536):
                pass
        except ConnectionResetError:
            pass
        finally:
            sock.close()
        return True

    def still_fine(self):
        r = self.a.call("send", {"to": "bob@CIC", "text": "still here"})
        self.assertEqual(r["status"], "acked")

    def test_garbage_before_hello(self):
        s = harness.connect(self.a.port)
        s.sendall(b"this is not json\n")
        self.assertTrue(self.closed_by_node(s))
        self.still_fine()

    def test_long_line_before_hello(self):
        s = harness.connect(self.a.port)
        s.sendall(b"x" * 40000)
        self.assertTrue(self.closed_by_node(s))
        self.still_fine()

    def test_silent_client(self):
        s = harness.connect(self.a.port)
        t0 = time.monotonic()
        self.assertTrue(self.closed_by_node(s, 5))
        self.assertLess(time.monotonic() - t0, 3)  # handshake_timeout 1
        self.still_fine()

    def test_send_before_hello(self):
        s = harness.connect(self.a.port)
        s.sendall(b'{"type":"SEND","msg_id":"1","src":"x@CIC","dst":"alice@CIC","payload":"hi","require_ack":true,"ttl":1}\n')
        data = b""
        s.settimeout(5)
        try:
            while True:
                d = s.recv(65536)
                if not d:
                    break
                data += d
        except ConnectionResetError:
            pass
        s.close()
        self.assertNotIn(b"ACK", data)
        self.still_fine()

    def test_garbage_after_handshake(self):
        s = harness.connect(self.a.port)
        s.sendall(b'{"type":"HELLO","peer_id":"troll@CIC","version":"1.0","features":[],"ttl":1}\n')
        f = s.makefile("rb")
        self.assertEqual(json.loads(f.readline())["type"], "HELLO_OK")
        # unknown types are ignored, invalid lines counted, then the door
        s.sendall(b'{"type":"WHATEVER"}\n' + b"garbage\n" * 3 + b"y" * 40000 + b"\n")
        s.sendall(b'{"type":"PING","msg_id":"p1","timestamp":"2025-01-01T00:00:00Z","ttl":1}\n')
        pong = json.loads(f.readline())
        self.assertEqual(pong["type"], "PONG")
        self.assertEqual(pong["msg_id"], "p1")
        s.sendall(b"garbage\n" * 5)
        f.close()
        self.assertTrue(self.closed_by_node(s))
        self.still_fine()

    def test_hello_as_ourselves_refused(self):
        s = harness.connect(self.a.port)
        s.sendall(b'{"type":"HELLO","peer_id":"alice@CIC","version":"1.0","features":[],"ttl":1}\n')
        s.settimeout(5)
        data = s.recv(65536)
        s.close()
        self.assertNotIn(b"HELLO_OK", data)
        self.still_fine()


class IdleConnection(unittest.TestCase):
    def test_idle_connection_closed_after_connection_timeout(self):
        rdv = rdv_server()
        # PINGs unanswered never add up to a failure here: only idleness can close it.
        a = Node("alice", rdv, sets=["network.connection_timeout=2",
                                     "keepalive.max_ping_failures=1000"])
        s = harness.connect(a.port)
        s.sendall(b'{"type":"HELLO","peer_id":"quiet@CIC","version":"1.0","features":[],"ttl":1}\n')
        s.settimeout(10)
        t0 = time.monotonic()
        data = b""
        try:
            while True:
                d = s.recv(65536)
                if not d:
                    break
                data += d
        except ConnectionResetError:
            pass
        s.close()
        took = time.monotonic() - t0
        self.assertIn(b"HELLO_OK", data)
        self.assertIn(b"PING", data)          # it did try to keep it alive
        self.assertGreater(took, 1.5)
        self.assertLess(took, 6)
        a.stop(self)
        rdv.check_clean_exit(self)


class OutOfDescriptors(unittest.TestCase):
    def test_accept_pauses_instead_of_spinning(self):
        rdv = rdv_server()
        # 48 descriptors: a few dozen silent connections use them all up
        # (the per-address accept rate would otherwise turn most away).
        a = Node("alice", rdv, start=False,
                 sets=["limits.accept_rate=1000", "limits.handshake_timeout=30"])
        p = harness.start(["prlimit", "--nofile=48", harness.binary("CHATP2PD")] + a.argv(),
                          name="alice")
        m = p.wait_stdout(harness.LISTENING_RE, 10)
        a.proc, a.port = p, int(m.group(2))
        flood = []
        for _ in range(80):
            try:
                flood.append(harness.connect(a.port))
            except OSError:
                break

        def cpu_ticks():
            with open("/proc/%d/stat" % p.pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return int(fields[11]) + int(fields[12])   # utime + stime
        t0 = cpu_ticks()
        harness.wait_for(lambda: "pausing" in p.stderr_text(), 5, what="the accept pause")
        time.sleep(1.0)  # measuring CPU use over a second is the point here
        used = (cpu_ticks() - t0) / os.sysconf("SC_CLK_TCK")
        self.assertLess(used, 0.5, "spinning on accept(): %.2f s of CPU in ~1 s" % used)
        for s in flood:
            s.close()
        # descriptors back: the node serves again
        harness.wait_for(lambda: a.call("status")["peer_id"] == "alice@CIC", 10,
                         what="the control socket after the flood")
        a.stop(self)
        rdv.check_clean_exit(self)


class RendezvousTrouble(unittest.TestCase):
    """A rendezvous that is down, hangs or rate-limits only delays things."""

    def free_port(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        return port

    def test_down_then_up(self):
        port = self.free_port()

        class Fake:
            pass
        fake = Fake()
        fake.port = port
        a = Node("alice", fake, sets=["limits.rendezvous_timeout=0.5"])
        st = a.call("status")["rendezvous"]
        self.assertNotEqual(st["state"], "registered")
        rdv = harness.start_daemon(["--rendezvous-server", "--listen", "127.0.0.1", "--port",
                                    str(port), "--set", "rendezvous_server.rate_limit=100000"],
                                   name="rendezvous")
        harness.wait_for(lambda: a.call("status")["rendezvous"]["state"] == "registered", 20,
                         what="registration once the server is up")
        a.stop(self)
        rdv.check_clean_exit(self)

    def test_hanging_server(self):
        lst = socket.socket()
        lst.bind(("127.0.0.1", 0))
        lst.listen(16)

        class Fake:
            pass
        fake = Fake()
        fake.port = lst.getsockname()[1]
        a = Node("alice", fake, sets=["limits.rendezvous_timeout=0.5"])
        # accepted, never answered: the node keeps working and says why
        harness.wait_for(lambda: "last_error" in a.call("status")["rendezvous"], 10,
                         what="a rendezvous timeout reported")
        self.assertNotEqual(a.call("status")["rendezvous"]["state"], "registered")
        a.stop(self)
        lst.close()

    def test_rate_limited(self):
        rdv = harness.start_rendezvous("rate_limit=3", "block_time=2")
        # burn the budget of 127.0.0.1
        for _ in range(4):
            try:
                harness.rdv_request(rdv.port, {"type": "DISCOVER"})
            except Exception:
                pass
        a = Node("alice", rdv)
        harness.wait_for(lambda: a.call("status")["rendezvous"]["state"] == "registered", 20,
                         what="registration after the block is lifted")
        a.stop(self)
        rdv.check_clean_exit(self)


if __name__ == "__main__":
    unittest.main(verbosity=2)
