"""TLS between chatp2p nodes (PROTOCOL.md §5.2, issue 17): figures in one run.

  throughput  N SENDs alice -> bob over one connection, WINDOW in flight on one
              controller, with security.tls prefer (TLS) and off (plaintext):
              rate ratio, and each node's CPU per message (/proc/PID/stat)
  handshake   node CPU per TLS handshake as the TLS server: K clients (Python
              ssl with their own Ed25519 certificates) say HELLO with "tls",
              read HELLO_OK "starttls", shake hands, close
  idle        RSS of a node holding C idle TLS connections (after - before)

Run: CHATP2PD=build/chatp2pd/chatp2pd python3 tests/bench/tls_bench.py
"""

import argparse
import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
import harness  # noqa: E402
from nodes import Node  # noqa: E402
from bench_node import QUIET, cpu_s, rss_kb, send_pipelined  # noqa: E402

MANY = QUIET + ["limits.max_met_only=60000", "limits.max_connections_per_ip=60000",
                "network.connection_timeout=3600", "keepalive.ping_interval=600"]


def throughput(n, window, mode):
    rdv = harness.start_rendezvous("rate_limit=100000")
    sets = QUIET + ["security.tls=" + mode]
    a, b = Node("alice", rdv, sets=sets), Node("bob", rdv, sets=sets)
    a.wait_active("bob@CIC")
    harness.wait_for(lambda: any(c["state"] == "established" and c.get("secure") == (mode != "off")
                                 for c in a.call("conn")["connections"]), 10, what="the connection")
    send_pipelined(a, 500, window)  # warm-up
    ca, cb = cpu_s(a.proc.pid), cpu_s(b.proc.pid)
    r = send_pipelined(a, n, window)
    r["alice_cpu_us_per_msg"] = round((cpu_s(a.proc.pid) - ca) / n * 1e6, 1)
    r["bob_cpu_us_per_msg"] = round((cpu_s(b.proc.pid) - cb) / n * 1e6, 1)
    a.stop()
    b.stop()
    rdv.check_clean_exit()
    return r


def tls_connect(ctx, port, name):
    s = socket.create_connection(("127.0.0.1", port))
    feats = ["ack", "metrics", "pipeline"] + (["tls"] if ctx else [])
    s.sendall((json.dumps({"type": "HELLO", "peer_id": "%s@BENCH" % name, "version": "1.0",
                           "features": feats, "ttl": 1}) + "\n").encode())
    line = b""
    while not line.endswith(b"\n"):  # byte by byte: what follows is TLS
        d = s.recv(1)
        if not d:
            raise AssertionError("closed before HELLO_OK")
        line += d
    if ctx is None:
        return s
    assert "starttls" in json.loads(line).get("features", []), line
    return ctx.wrap_socket(s, server_hostname=None)


def handshake(k, ctx):
    rdv = harness.start_rendezvous("rate_limit=100000")
    a = Node("hub", rdv, sets=MANY)
    for i in range(20):
        tls_connect(ctx, a.port, "warm%d" % i).close()
    c0 = cpu_s(a.proc.pid)
    t0 = time.perf_counter()
    for i in range(k):
        tls_connect(ctx, a.port, "h%d" % i).close()
    dt = time.perf_counter() - t0
    per = (cpu_s(a.proc.pid) - c0) / k * 1000
    # The same connections in plaintext: what TLS adds.
    c0 = cpu_s(a.proc.pid)
    for i in range(k):
        tls_connect(None, a.port, "p%d" % i).close()
    plain = (cpu_s(a.proc.pid) - c0) / k * 1000
    a.stop()
    rdv.check_clean_exit()
    return {"handshakes": k, "node_cpu_ms_per_tls_connection": round(per, 3),
            "node_cpu_ms_per_plain_connection": round(plain, 3), "tls_per_s": round(k / dt, 1)}


def idle(count, ctx):
    rdv = harness.start_rendezvous("rate_limit=100000")
    a = Node("hub", rdv, sets=MANY)
    a.call("status")  # started and serving: the baseline RSS
    before = rss_kb(a.proc.pid)
    conns = [tls_connect(ctx, a.port, "i%d" % i) for i in range(count)]
    harness.wait_for(lambda: a.call("status")["connections"] >= count, 60, what="all connected")
    secure = sum(1 for c in a.call("conn")["connections"] if c.get("secure"))
    after = rss_kb(a.proc.pid)
    for c in conns:
        c.close()
    a.stop()
    rdv.check_clean_exit()
    return {"connections": count, "secure": secure, "rss_before_kb": before, "rss_after_kb": after,
            "rss_added_mb": round((after - before) / 1024, 1),
            "per_conn_kb": round((after - before) / count, 1)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=20000)
    ap.add_argument("--window", type=int, default=256)
    ap.add_argument("-k", type=int, default=300)
    ap.add_argument("-c", type=int, default=1000)
    o = ap.parse_args()
    out = {}
    tls = throughput(o.n, o.window, "prefer")
    plain = throughput(o.n, o.window, "off")
    out["throughput"] = {"tls": tls, "plain": plain,
                         "tls_over_plain": round(tls["per_s"] / plain["per_s"], 3)}
    ctx = harness.tls_client_context("bench")
    out["handshake"] = handshake(o.k, ctx)
    out["idle"] = idle(o.c, ctx)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
