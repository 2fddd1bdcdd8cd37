"""Benchmarks of chatp2pd on loopback (not part of the test suite; run
scripts/bench.sh).  Figures, not verdicts: the load generators are Python,
so these are lower bounds of what the node does.

  send_latency   sequential `send` through the control socket, each waiting
                 for the peer's ACK: controller -> node A -> node B -> ACK -> A
  send_pipelined `send` requests kept WINDOW in flight on one controller
  pub_fanout     one PUB to K connected peers (fake peers that advertise
                 "pipeline" and just read): time until the last one has it
  idle_memory    RSS of a node holding C idle peer connections
  durable        send_pipelined with storage.sync off, normal and full in the
                 same run (every message committed to the receiver's inbox
                 before its ACK), with each node's CPU time per message
"""

import argparse
import json
import os
import socket
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
import harness  # noqa: E402
from nodes import Node, mesh  # noqa: E402

QUIET = ["logging.level=WARNING", "keepalive.ping_interval=30", "keepalive.ping_timeout=10",
         "rendezvous.discover_interval=60", "limits.accept_rate=100000",
         "limits.max_connections=100000"]


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def send_latency(a, n):
    c = a.ctl()
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        r = c.call("send", {"to": "bob@CIC", "text": "ping %d" % i})
        times.append((time.perf_counter() - t0) * 1000)
        assert r["status"] == "acked"
    c.close()
    times.sort()
    return {"n": n, "p50_ms": round(times[n // 2], 3), "p99_ms": round(times[int(n * 0.99)], 3),
            "per_s": round(n / (sum(times) / 1000), 1)}


def send_pipelined(a, n, window):
    c = a.ctl()
    t0 = time.perf_counter()
    inflight = []
    sent = done = 0
    while done < n:
        while sent < n and len(inflight) < window:
            inflight.append(c.request("send", {"to": "bob@CIC", "text": "bulk %d" % sent}))
            sent += 1
        assert c.answer(inflight.pop(0), 30)["status"] == "acked"
        done += 1
    dt = time.perf_counter() - t0
    c.close()
    return {"n": n, "window": window, "seconds": round(dt, 3), "per_s": round(n / dt, 1)}


class FakeReader:
    """A peer that dials the node, says HELLO with "pipeline", then reads."""

    def __init__(self, port, name):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.s.sendall((json.dumps({"type": "HELLO", "peer_id": "%s@BENCH" % name,
                                    "version": "1.0", "features": ["ack", "metrics", "pipeline"],
                                    "ttl": 1}) + "\n").encode())
        f = self.s.makefile("rb")
        assert json.loads(f.readline())["type"] == "HELLO_OK"
        self.f = f

    def wait_for(self, needle, out, i):
        for line in self.f:
            if needle in line:
                out[i] = time.perf_counter()
                return


def pub_fanout(k, rounds):
    rdv = harness.start_rendezvous("rate_limit=100000")  # the hub meets no one else
    a = Node("hub", rdv, sets=QUIET)
    readers = [FakeReader(a.port, "r%d" % i) for i in range(k)]
    harness.wait_for(lambda: a.call("status")["connections"] >= k, 20, what="%d peers" % k)
    c = a.ctl()
    results = []
    for r in range(rounds):
        marker = "marker-%d" % r
        got = [0.0] * k
        ths = [threading.Thread(target=x.wait_for, args=(marker.encode(), got, i))
               for i, x in enumerate(readers)]
        for t in ths:
            t.start()
        t0 = time.perf_counter()
        res = c.call("pub", {"to": "*", "text": marker})
        t1 = time.perf_counter()
        for t in ths:
            t.join(10)
        assert res["reached"] == k, (res, k)
        results.append(((t1 - t0) * 1000, (max(got) - t0) * 1000))
    c.close()
    for x in readers:
        x.s.close()
    a.stop()
    rdv.stop()
    return {"peers": k, "pub_call_ms": round(statistics.median(r[0] for r in results), 3),
            "all_received_ms": round(statistics.median(r[1] for r in results), 3)}


def idle_memory(conns):
    rdv = harness.start_rendezvous("rate_limit=100000")
    a = Node("idle", rdv, sets=QUIET)
    before = rss_kb(a.proc.pid)
    readers = [FakeReader(a.port, "i%d" % i) for i in range(conns)]
    harness.wait_for(lambda: a.call("status")["connections"] >= conns, 30,
                     what="%d connections" % conns)
    after = rss_kb(a.proc.pid)
    for x in readers:
        x.s.close()
    a.stop()
    rdv.stop()
    return {"connections": conns, "rss_before_kb": before, "rss_after_kb": after,
            "kb_per_connection": round((after - before) / conns, 2)}


def cpu_s(pid):
    """user + system CPU seconds of a process (/proc/PID/stat)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def durable(n, window, rounds=3):
    """Throughput over one connection for each storage.sync, rounds
    interleaved so a noisy neighbour hits every mode alike; best of rounds."""
    best = {}
    for _ in range(rounds):
        for sync in ("off", "normal", "full"):
            rdv = harness.start_rendezvous("rate_limit=100000")
            a, b = mesh(rdv, ["alice", "bob"], sets=QUIET + ["storage.sync=" + sync])
            ca, cb = cpu_s(a.proc.pid), cpu_s(b.proc.pid)
            r = send_pipelined(a, n, window)
            r["sender_cpu_us_per_msg"] = round((cpu_s(a.proc.pid) - ca) / n * 1e6, 1)
            r["receiver_cpu_us_per_msg"] = round((cpu_s(b.proc.pid) - cb) / n * 1e6, 1)
            a.stop()
            b.stop()
            rdv.stop()
            if sync not in best or r["per_s"] > best[sync]["per_s"]:
                best[sync] = r
    out = {}
    for sync, r in best.items():
        out[sync + "_per_s"] = r["per_s"]
        out[sync + "_rx_cpu_us"] = r["receiver_cpu_us_per_msg"]
    out["normal_vs_off"] = round(best["normal"]["per_s"] / best["off"]["per_s"], 2)
    out["full_vs_off"] = round(best["full"]["per_s"] / best["off"]["per_s"], 2)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sends", type=int, default=2000)
    ap.add_argument("--window", type=int, default=64)
    ap.add_argument("--peers", type=int, default=200)
    ap.add_argument("--conns", type=int, default=1000)
    ap.add_argument("--durable-only", action="store_true",
                    help="only the storage.sync comparison (off, normal, full)")
    args = ap.parse_args()
    if args.durable_only:
        d = durable(args.sends, args.window)
        print("%-15s %s" % ("durable", "  ".join("%s=%s" % kv for kv in d.items())))
        print(json.dumps({"durable": d}))
        return

    rdv = harness.start_rendezvous("rate_limit=100000")
    a, b = mesh(rdv, ["alice", "bob"], sets=QUIET)
    out = {
        "send_latency": send_latency(a, args.sends // 4),
        "send_pipelined": send_pipelined(a, args.sends, args.window),
        "pub_fanout": pub_fanout(args.peers, 5),
        "idle_memory": idle_memory(args.conns),
        "durable": durable(args.sends, args.window),
    }
    a.stop()
    b.stop()
    rdv.stop()
    for k, v in out.items():
        print("%-15s %s" % (k, "  ".join("%s=%s" % kv for kv in v.items())))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
