"""Dial hygiene under junk registrations (issue 18 finding 6).

Anyone may register any name at any address.  An attacker on another host
(127.0.0.9 here) registers 1,000 names at one ip:port where a listener of
its own accepts connections and never answers (or never accepts).  A node
in that namespace must still reach a real peer quickly, and must not pour
connections at the attacker: handshakes per ip:port are capped, and an
address whose dials stall is backed off for every name listed at it.
905dabf took 156 s to reach the real peer and opened 1,664 connections to
the attacker."""

import os
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from fakepeer import FakePeer  # noqa: E402
from nodes import Node  # noqa: E402

ATTACKER_IP = "127.0.0.9"
JUNK = 1000

# The attacker's listener, a process of its own: it accepts and then says
# nothing (mode "silent"), or never accepts (mode "deaf": a full backlog
# drops the SYNs, so connects time out).  It prints one line per accepted
# connection.
LISTENER = r"""
import signal, socket, sys
mode = sys.argv[2]
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 0))
s.listen(0 if mode == "deaf" else 4096)
print("PORT %d" % s.getsockname()[1], flush=True)
held = []
while True:
    if mode == "deaf":
        signal.pause()  # never accept: the backlog fills and SYNs go unanswered
    c, _ = s.accept()
    held.append(c)
    print("ACCEPT %d" % len(held), flush=True)
"""


class Attacker:
    def __init__(self, mode):
        self.popen = subprocess.Popen([sys.executable, "-u", "-c", LISTENER, ATTACKER_IP, mode],
                                      stdout=subprocess.PIPE, text=True)
        line = self.popen.stdout.readline().split()
        assert line and line[0] == "PORT", line
        self.port = int(line[1])
        self.accepted = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.popen.stdout:
            if line.startswith("ACCEPT"):
                self.accepted = int(line.split()[1])

    def register_junk(self, rdv, n, ns):
        for i in range(n):
            r = h.rdv_request(rdv.port, {"type": "REGISTER", "namespace": ns,
                                         "name": "junk%04d" % i, "port": self.port,
                                         "ttl": 3600}, source=ATTACKER_IP)
            assert r["status"] == "OK", r

    def stop(self):
        self.popen.kill()
        self.popen.wait(5)
        self.popen.stdout.close()


# Production-like backoff and timeouts (nodes.FAST has sub-second ones).
SETS = ["limits.handshake_timeout=5", "limits.connect_timeout=5",
        "peer_connection.backoff_base=2", "reconnection.backoff_base=2",
        "reconnection.backoff_max=32"]


class JunkRegistrations(unittest.TestCase):
    def setUp(self):
        self.rdv = h.start_rendezvous("rate_limit=1000000")
        self.nodes = []
        self.fakes = []

    def tearDown(self):
        for f in self.fakes:
            f.close()
        for n in self.nodes:
            if n.proc.alive():
                n.stop()
        self.rdv.check_clean_exit()

    def reach_real_peer(self, mode):
        attacker = Attacker(mode)
        try:
            attacker.register_junk(self.rdv, JUNK, "JUNK")
            # The real peer only listens (it never dials the victim), and
            # is listed after the 1,000 junk names.
            real = FakePeer("real", ns="JUNK")
            self.fakes.append(real)
            real.register(self.rdv)
            t0 = time.monotonic()
            victim = Node("victim", self.rdv, namespace="JUNK", sets=SETS)
            self.nodes.append(victim)
            victim.wait_active(real.peer_id, timeout=30)
            took = time.monotonic() - t0
            h.log("real peer reached in %.1f s; %d connections to the attacker so far"
                  % (took, attacker.accepted))
            # Another 10 s of DISCOVERs listing the 1,000 names again.
            t1 = time.monotonic()
            h.wait_for(lambda: time.monotonic() > t1 + 10, 15, what="10 s more")
            self.assertEqual(victim.state_of(real.peer_id), "ACTIVE")
            h.log("%d connections to the attacker after %.1f s"
                  % (attacker.accepted, time.monotonic() - t0))
            return took, attacker.accepted
        finally:
            attacker.stop()

    def test_silent_listener(self):
        took, conns = self.reach_real_peer("silent")
        self.assertLess(took, 30)
        # Two handshakes at once to the address, then a backoff after each
        # stall: a dozen or so, not hundreds.
        self.assertLess(conns, 60, "%d connections to the attacker" % conns)

    def test_listener_that_never_accepts(self):
        took, _ = self.reach_real_peer("deaf")
        self.assertLess(took, 30)


if __name__ == "__main__":
    unittest.main(verbosity=2)
