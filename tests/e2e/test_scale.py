"""A namespace at the size a busy one reaches (issue 10): 1,000 registered
peers at our own rendezvous server.  A node discovers all of them in one
DISCOVER (a reply of ~95 KB, past the 32 KB request limit) and connects to
all of them, paced (limits.dials_in_flight, limits.dial_rate).  The 1,000
peers are one thread of listening sockets that answer HELLO and PING."""

import json
import os
import resource
import selectors
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from nodes import CtlError, Node  # noqa: E402

N = 1000
NS = "BIG"


def raise_fd_limit(want):
    """Raise our soft descriptor limit (the node inherits it); the limit we got."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY:
        want = min(want, hard)
    if soft == resource.RLIM_INFINITY or soft >= want:
        return soft if soft != resource.RLIM_INFINITY else want
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return want


class PeerFarm:
    """n listening sockets, one per registration, served by one thread:
    HELLO -> HELLO_OK (without "pipeline": the node probes each), PING -> PONG."""

    def __init__(self, n, ns):
        self.sel = selectors.DefaultSelector()
        self.names = {}
        self.ports = []
        self.lock = threading.Lock()
        self.accepted = []      # monotonic times of accepts
        self.hellos = set()     # names that completed a handshake
        self.open = 0
        self.max_open_unhandshaken = 0
        self.pending = set()
        self.stop = False
        for i in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            s.listen(16)
            s.setblocking(False)
            name = "f%04d" % i
            self.names[s.fileno()] = name
            self.ports.append((name, s.getsockname()[1]))
            self.sel.register(s, selectors.EVENT_READ, ("listen", name))
        self.ns = ns
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop:
            for key, _ in self.sel.select(0.1):
                kind, name = key.data[0], key.data[1]
                if kind == "listen":
                    try:
                        c, _ = key.fileobj.accept()
                    except OSError:
                        continue
                    c.setblocking(False)
                    with self.lock:
                        self.accepted.append(time.monotonic())
                        self.pending.add(c.fileno())
                        self.max_open_unhandshaken = max(self.max_open_unhandshaken,
                                                         len(self.pending))
                    self.sel.register(c, selectors.EVENT_READ, ("conn", name, [b""]))
                    continue
                self.serve(key.fileobj, name, key.data[2])

    def serve(self, c, name, buf):
        try:
            data = c.recv(65536)
        except OSError:
            data = b""
        if not data:
            self.sel.unregister(c)
            with self.lock:
                self.pending.discard(c.fileno())
            c.close()
            return
        buf[0] += data
        *lines, buf[0] = buf[0].split(b"\n")
        out = b""
        for raw in lines:
            try:
                m = json.loads(raw)
            except ValueError:
                continue
            t = m.get("type")
            if t == "HELLO":
                out += (json.dumps({"type": "HELLO_OK", "peer_id": "%s@%s" % (name, self.ns),
                                    "version": "1.0", "features": ["ack", "metrics"],
                                    "ttl": 1}) + "\n").encode()
                with self.lock:
                    self.hellos.add(name)
                    self.pending.discard(c.fileno())
            elif t == "PING":
                out += (json.dumps({"type": "PONG", "msg_id": m.get("msg_id"),
                                    "timestamp": "2026-01-01T00:00:00Z", "ttl": 1}) + "\n").encode()
        if out:
            try:
                c.sendall(out)
            except OSError:
                pass

    def close(self):
        self.stop = True
        self.thread.join(5)
        for key in list(self.sel.get_map().values()):
            key.fileobj.close()
        self.sel.close()


class Namespace1000(unittest.TestCase):
    def test_discover_and_connect_1000(self):
        fds = raise_fd_limit(4 * N + 256)
        if fds < 2 * N + 128:
            self.skipTest("descriptor limit %d is too low for %d peers" % (fds, N))
        rdv = harness.start_rendezvous("rate_limit=1000000")
        farm = PeerFarm(N, NS)
        a = None
        try:
            t0 = time.monotonic()
            for name, port in farm.ports:
                r = harness.rdv_request(rdv.port, {"type": "REGISTER", "namespace": NS,
                                                   "name": name, "port": port, "ttl": 3600})
                self.assertEqual(r["status"], "OK", r)
            dt = time.monotonic() - t0
            harness.log("%d REGISTERs in %.2f s (%.0f/s)" % (N, dt, N / dt))
            t0 = time.monotonic()
            r = harness.rdv_request(rdv.port, {"type": "DISCOVER", "namespace": NS}, timeout=30)
            harness.log("DISCOVER of %d: %.1f ms" % (len(r["peers"]), (time.monotonic() - t0) * 1000))
            self.assertEqual(len(r["peers"]), N)

            rate = 200
            a = Node("hub", rdv, namespace=NS,
                     sets=["limits.max_connections=%d" % (N + 100),
                           "limits.dial_rate=%d" % rate, "limits.dials_in_flight=32",
                           "logging.level=INFO", "keepalive.ping_interval=10",
                           "keepalive.ping_timeout=5", "rendezvous.discover_interval=5",
                           "limits.handshake_timeout=20", "limits.connect_timeout=20"])
            t_start = time.monotonic()

            def discovered():
                return len([p for p in a.call("peers")["peers"] if p["peer_id"].endswith("@" + NS)
                            and p["peer_id"] != a.peer_id])
            harness.wait_for(lambda: discovered() >= N, 30, what="all %d peers discovered" % N)
            harness.wait_for(lambda: a.call("status")["connections"] >= N, 60,
                             what="all %d peers connected" % N)
            took = time.monotonic() - t_start
            with farm.lock:
                hellos = len(farm.hellos)
                accepted = sorted(farm.accepted)
                most_pending = farm.max_open_unhandshaken
            harness.log("%d peers connected in %.1f s; accepts spread over %.2f s; at most %d "
                        "handshakes pending at once" % (hellos, took, accepted[-1] - accepted[0],
                                                        most_pending))
            self.assertEqual(hellos, N)
            self.assertLess(took, 60)
            # Paced: 1,000 dials at 200/s (bursts of 32) cannot all start at once.
            self.assertGreater(accepted[N - 1] - accepted[0], (N - 32) / rate * 0.7,
                               "the dials were not paced")
            self.assertLessEqual(most_pending, 32 + 5)
            # The connections stay up (each was probed: two PINGs, two PONGs).
            modes = {c.get("write_mode") for c in a.call("conn")["connections"]
                     if c["state"] == "established"}
            self.assertLessEqual(modes, {"learned", "probing"})
            a.stop(self)
        finally:
            if a is not None and a.proc.alive():
                a.stop()
            farm.close()
            rdv.check_clean_exit()

    def test_reply_past_the_limit_is_a_clear_error(self):
        # 600 registrations make a reply of ~60 KB: past a 32 KB limit it
        # fails with the limit's name; the default (16 MiB) takes it.
        rdv = harness.start_rendezvous("rate_limit=1000000")
        nodes = []
        try:
            for i in range(600):
                r = harness.rdv_request(rdv.port, {"type": "REGISTER", "namespace": NS,
                                                   "name": "r%04d" % i, "port": 1000 + i,
                                                   "ttl": 3600})
                self.assertEqual(r["status"], "OK", r)
            quiet = ["rendezvous.discover_interval=3600", "peer_connection.retry_attempts=1"]
            small = Node("small", rdv, namespace=NS,
                         sets=quiet + ["limits.rendezvous_reply_max=32768"])
            nodes.append(small)
            with self.assertRaises(CtlError) as cm:
                small.call("discover", timeout=20)
            self.assertIn("reply longer than 32768 bytes (limits.rendezvous_reply_max)",
                          str(cm.exception))
            big = Node("big", rdv, namespace=NS, sets=quiet)
            nodes.append(big)
            self.assertGreaterEqual(len(big.call("discover", timeout=20)["peers"]), 600)
            for n in nodes:
                n.stop(self)
        finally:
            for n in nodes:
                if n.proc.alive():
                    n.stop()
            rdv.check_clean_exit()


if __name__ == "__main__":
    unittest.main(verbosity=2)
