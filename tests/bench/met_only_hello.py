"""CPU per inbound HELLO from an unknown peer_id with a big peer table
(issue 18 finding 8; a measurement, not a test).

A node lists PEERS peers (registered at one closed port, so every dial is
refused at once) and holds limits.max_met_only peers met only inbound; then
HELLOS connections each say HELLO with a new made-up peer_id (each one
counted against max_met_only and, at the cap, evicting the oldest) and
close.  Node CPU from /proc/PID/stat over the HELLOs, less its idle rate.

    CHATP2PD=build-rel/chatp2pd/chatp2pd python3 tests/bench/met_only_hello.py
"""

import argparse
import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
import harness as h  # noqa: E402
from nodes import Node  # noqa: E402


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def register_many(port, ns, n, target_port):
    """n REGISTERs, 64 connections at a time."""
    done = 0
    while done < n:
        batch = []
        for i in range(done, min(n, done + 64)):
            s = h.connect(port)
            s.sendall(h.encode_request({"type": "REGISTER", "namespace": ns, "name": "p%05d" % i,
                                        "port": target_port, "ttl": 3600}))
            batch.append(s)
        for s in batch:
            assert h.parse_reply(h.read_until_close(s)[0])["status"] == "OK"
            s.close()
        done += len(batch)


def hello_once(port, peer_id):
    s = h.connect(port)
    s.sendall((json.dumps({"type": "HELLO", "peer_id": peer_id, "version": "1.0", "ttl": 1,
                           "features": ["ack"]}) + "\n").encode())
    buf = b""
    while b"\n" not in buf:
        b = s.recv(4096)
        if not b:
            break
        buf += b
    s.close()
    return b"HELLO_OK" in buf


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--peers", type=int, default=30000)
    ap.add_argument("--hellos", type=int, default=2000)
    ap.add_argument("--max-met-only", type=int, default=100)
    a = ap.parse_args()

    rdv = h.start_rendezvous("rate_limit=1000000")
    closed = h.free_port()
    t0 = time.monotonic()
    register_many(rdv.port, "BIG", a.peers, closed)
    print("registered %d in %.1f s" % (a.peers, time.monotonic() - t0), flush=True)
    node = Node("meter", rdv, namespace="BIG", sets=[
        "logging.level=WARNING", "rendezvous.discover_interval=3600",
        "limits.max_met_only=%d" % a.max_met_only, "limits.accept_rate=1000000",
        "limits.dial_rate=100000", "limits.dials_in_flight=1000",
        "peer_connection.retry_attempts=1", "keepalive.ping_interval=3600"])
    pid = node.proc.pid
    h.wait_for(lambda: node.call("status")["peers"]["total"] >= a.peers, 120,
               what="the node to list every peer")
    # Dials settle (refused at once); then the idle rate over 3 s.
    h.wait_for(lambda: time.monotonic() > t0, 1)
    c = node.ctl()
    settle = time.monotonic()
    h.wait_for(lambda: time.monotonic() > settle + 5, 10, what="dials to settle")
    i0, c0 = time.monotonic(), cpu_s(pid)
    h.wait_for(lambda: time.monotonic() > i0 + 3, 5, what="idle window")
    idle_rate = (cpu_s(pid) - c0) / (time.monotonic() - i0)
    # Fill max_met_only, then the measured HELLOs (each at the cap).
    for i in range(a.max_met_only):
        hello_once(node.port, "fill%d@BIG" % i)
    t1, c1 = time.monotonic(), cpu_s(pid)
    ok = sum(hello_once(node.port, "m%d@BIG" % i) for i in range(a.hellos))
    t2, c2 = time.monotonic(), cpu_s(pid)
    used = (c2 - c1) - idle_rate * (t2 - t1)
    st = node.call("status")
    c.close()
    print(json.dumps({"peers_listed": a.peers, "peers_total": st["peers"]["total"],
                      "hellos": a.hellos, "hello_ok": ok, "seconds": round(t2 - t1, 2),
                      "node_cpu_s": round(c2 - c1, 3), "idle_cpu_per_s": round(idle_rate, 4),
                      "cpu_us_per_hello": round(used / a.hellos * 1e6, 1)}), flush=True)
    node.stop()
    rdv.check_clean_exit()


if __name__ == "__main__":
    try:
        main()
    finally:
        h.kill_all()
