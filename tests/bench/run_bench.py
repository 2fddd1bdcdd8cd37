"""Run the benchmarks of docs/benchmarks.md and rewrite it (scripts/bench.sh
calls this with an optimised build).  Starts, on loopback: a rendezvous
server for the node, one chatp2pd node, and a second rendezvous server for
the rendezvous benchmark; runs chatp2p-loadgen once over every scenario,
then profiles the node under two loads with perf (when perf works); writes
the figures, the ratios and each target of issue 10 as met or missed.

Environment: CHATP2PD, CHATP2P_LOADGEN, CHATP2P_SRC (paths)."""

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import harness as h  # noqa: E402

NODE_SETS = ["logging.level=WARNING", "logging.log_to_file=false",
             "limits.accept_rate=1000000", "limits.max_connections=100000",
             "rendezvous.discover_interval=600", "keepalive.ping_interval=30",
             "keepalive.ping_timeout=10", "control.max_clients=256", "storage.sync=off"]
RDV_SETS = ["rate_limit=1000000"]


def start_node(rdv, sync=None, tag=None):
    tag = tag or sync or "default"
    sock = os.path.join(h.tmpdir(), "bench-%s.sock" % tag)
    args = ["--name", "bench", "--namespace", "BENCH", "--listen", "127.0.0.1", "--port", "0",
            "--rendezvous", "127.0.0.1:%d" % rdv.port, "--control", sock,
            # A state directory per node: each starts with an empty inbox and
            # its own key, and two nodes never share one (the identity's
            # pins.db and the inbox are locked by the node that runs).
            "--state-dir", os.path.join(h.tmpdir(), "state-%s" % tag)]
    for s in [x for x in NODE_SETS if not (sync and x.startswith("storage.sync="))] + \
            (["storage.sync=" + sync] if sync else []):
        args += ["--set", s]
    return h.start_daemon(args, name="node-%s" % tag), sock


SYNC_MODES = ("off", "normal", "full")


def durable_runs(rdv, quick):
    """One node per storage.sync mode, one after the other, the same load:
    what storing every message before its ACK costs."""
    out = []
    for sync in SYNC_MODES:
        node, sock = start_node(rdv, sync)
        res = loadgen(["--target", "127.0.0.1:%d" % node.port, "--control", sock,
                       "--pid", str(node.popen.pid), "--scenarios", "throughput", "--reference", "none",
                       "--conns", "1", "--modes", "pipeline_batched,one_in_flight",
                       "--duration", "0.5" if quick else "2"])
        node.check_clean_exit()
        for r in res:
            if r.get("scenario") == "throughput" and r.get("target") == "node":
                out.append(dict(r, sync=sync))
    return out


def tls_runs(rdv, quick):
    """A fresh node (TLS is on by default: security.tls=prefer) loaded by
    bench peers that speak TLS (`chatp2p-loadgen --tls`, one Ed25519 key
    shared by all): 1,000 idle TLS connections (RSS, node CPU per handshake
    as server), SEND→ACK over one pipelined connection in plaintext and in
    TLS alternated (ratio_to_plain), then a namespace of TLS-speaking peers
    the node dials (node CPU per handshake as client)."""
    node, sock = start_node(rdv, tag="tls")
    res = loadgen(["--target", "127.0.0.1:%d" % node.port, "--control", sock,
                   "--pid", str(node.popen.pid), "--ns-rdv", "127.0.0.1:%d" % rdv.port, "--tls",
                   "--scenarios", "idle,throughput,ns", "--reference", "none",
                   "--conns", "1", "--modes", "pipeline_batched"] +
                  (["--duration", "0.5", "--idle-conns", "200", "--idle-seconds", "1",
                    "--ns-peers", "100", "--ns-timeout", "10"] if quick else
                   ["--duration", "1", "--repeat", "3", "--idle-conns", "1000", "--idle-seconds", "3",
                    "--ns-peers", "1000", "--ns-timeout", "60"]))
    node.check_clean_exit()
    return res


def sqlite_floor(quick):
    """What SQLite alone costs per inbox row here (tests/bench/sqlite_floor.c),
    or None when the program is not built."""
    prog = os.path.join(os.path.dirname(h.binary("CHATP2P_LOADGEN")), "chatp2p-sqlite-floor")
    if not os.path.exists(prog):
        return None
    cp = subprocess.run([prog, h.tmpdir(), "60000" if quick else "300000"], capture_output=True,
                        timeout=300)
    if cp.returncode != 0:
        sys.stderr.write(cp.stderr.decode("utf-8", "replace"))
        return None
    return json.loads(cp.stdout)


def durable_targets(rows, floor=None):
    """(target, figure, verdict) rows for the durable inbox (issue 18)."""
    pick_ = lambda sync: next((r for r in rows if r["sync"] == sync and  # noqa: E731
                               r["mode"] == "pipeline_batched"), None)
    off, normal = pick_("off"), pick_("normal")
    if not off or not normal:
        return []
    cpu = normal.get("cpu_us_per_ack")
    r = normal["acks_per_s"] / off["acks_per_s"] if off["acks_per_s"] else None
    return [("`storage.sync normal`: node CPU per ACKed SEND ≤ 2.5 µs (batched, one connection)",
             "%s µs (`off`: %s µs)" % (num(cpu, "{:.2f}"), num(off.get("cpu_us_per_ack"), "{:.2f}")),
             verdict(None if cpu is None else cpu <= 2.5)),
            ("`storage.sync normal`: throughput ≥ 0.8 of `off` (same run)",
             "%s vs %s ACKs/s (%s)" % (num(normal["acks_per_s"]), num(off["acks_per_s"]),
                                       num(r, "{:.2f}")),
             verdict(None if r is None else r >= 0.8))] + floor_rows(off, floor)


def floor_rows(off, floor):
    """0.8 of `off` as a budget for storage, beside SQLite's own cost per row:
    the node is CPU-bound in both modes, so throughput follows CPU per ACK."""
    oc = off.get("cpu_us_per_ack")
    if not floor or not oc:
        return []
    budget = oc / 0.8 - oc
    f = floor["no_journal_one_txn_us_per_row"]
    return [("What 0.8 of `off` leaves for storing a message (node CPU per ACK ≤ `off` / 0.8), "
             "against SQLite alone (`chatp2p-sqlite-floor`: the inbox row, no journal, no sync, one "
             "transaction)",
             "budget %.2f µs per message; SQLite alone %.2f µs per row (%.2f µs in WAL with a commit "
             "per 63 rows, still no sync)" % (budget, f, floor["wal_commit_63_us_per_row"]),
             verdict(f <= budget))]


def tls_targets(res):
    """(target, figure, verdict) rows for issue 17's targets."""
    rows = []
    tp = pick(res, "throughput", "node", conns=1, mode="pipeline_batched", tls=True)
    if tp:
        r = tp.get("ratio_to_plain")
        rows.append(("TLS SEND→ACK over one pipelined connection: at least 60% of the same load "
                     "without TLS (same run)",
                     "%s ACKs/s with TLS = %s of plaintext (%s µs node CPU per ACK)" %
                     (num(tp["acks_per_s"]), num(r, "{:.0%}"), num(tp["cpu_us_per_ack"], "{:.1f}")),
                     verdict(None if r is None else r >= 0.6 and tp.get("secured") == 1)))
    idle = pick(res, "idle", "node", tls=True)
    ns = pick(res, "ns", "node", tls=True)
    for rec, side, who in ((idle, "server", "bench peers dial the node"),
                           (ns, "client", "the node dials the namespace's bench peers")):
        if rec:
            c = rec.get("cpu_ms_per_conn")
            rows.append(("Node CPU per TLS handshake ≤ 2 ms, as %s (%s)" % (side, who),
                         "%s ms per TLS connection (%s secured; connect, HELLO, TLS, pin, session)" %
                         (num(c, "{:.2f}"), rec["secured"]),
                         verdict(None if c is None else c <= 2 and rec["secured"] >= 1)))
    if idle:
        ok = idle["secured"] >= 1000 and idle["rss_after_kb"] <= 65536
        rows.append(("1 000 idle TLS connections: RSS ≤ 64 MB in total",
                     "%s TLS connections: %s kB RSS (%s kB each)" %
                     (idle["secured"], num(idle["rss_after_kb"]), num(idle["kb_per_conn"], "{:.1f}")),
                     verdict(ok)))
    if ns:
        ok = ns["secured"] >= ns["registered"] >= 1000 and ns["all_connected_s"] is not None and \
            ns["all_connected_s"] <= 60
        rows.append(("A namespace of 1 000 TLS-speaking peers fully connected within 60 s",
                     "%s registered, %s connected, %s over TLS%s" %
                     (ns["registered"], ns["connected"], ns["secured"],
                      ", all within %.2f s" % ns["all_connected_s"] if ns["all_connected_s"] else ""),
                     verdict(ok)))
    return rows


def render_tls(res):
    L = ["## TLS between nodes\n",
         "A fresh node (`security.tls=prefer`, the default) and bench peers that speak TLS as chatp2p "
         "nodes do (`chatp2p-loadgen --tls`: chatp2pd's own `net/tls.c`, one Ed25519 key shared by "
         "all bench peers, each with its own peer_id, so the node pins each one on first use). "
         "Throughput: the same load in plaintext and in TLS, alternated against this node; `vs "
         "plaintext` is their ratio; the generator encrypts and decrypts too, on the same cores, so its "
         "own CPU per ACK is shown. Node CPU per connection (`/proc/PID/stat`): from the first "
         "connect until a second after the last handshake (idle: bench peers dial the node, it is "
         "the TLS server), or from the `discover` answer until the last peer's handshake (namespace: "
         "the node dials, it is the TLS client); it holds TCP, HELLO, the TLS handshake, the pin "
         "and the session. The plaintext figure for the same work is in the idle and namespace "
         "rows above (`cpu_ms_per_conn` in bench.json).\n"]
    L.append(table([r for r in res if r["scenario"] == "throughput"], [
        ("TLS", lambda r: "yes" if r["tls"] else "no"), ("conns", lambda r: str(r["conns"])),
        ("window", lambda r: str(r["window"])), ("variant", lambda r: r["mode"]),
        ("ACKs/s", lambda r: num(r["acks_per_s"])), ("p50 ms", lambda r: num(r["p50_ms"], "{:.3f}")),
        ("p99 ms", lambda r: num(r["p99_ms"], "{:.3f}")),
        ("CPU µs/ACK", lambda r: num(r["cpu_us_per_ack"], "{:.2f}")),
        ("generator CPU µs/ACK", lambda r: num(r.get("loadgen_cpu_us_per_ack"), "{:.2f}")),
        ("vs plaintext", lambda r: num(r.get("ratio_to_plain"), "{:.0%}"))]))
    L.append("")
    rows = [r for r in res if r["scenario"] in ("idle", "ns")]
    L.append(table(rows, [
        ("scenario", lambda r: "idle (node = TLS server)" if r["scenario"] == "idle"
         else "namespace (node = TLS client)"),
        ("connections", lambda r: str(r.get("conns", r.get("connected")))),
        ("over TLS", lambda r: str(r.get("secured"))),
        ("node CPU ms/connection", lambda r: num(r.get("cpu_ms_per_conn"), "{:.2f}")),
        ("RSS after kB", lambda r: num(r.get("rss_after_kb"))),
        ("kB/connection", lambda r: num(r.get("kb_per_conn"), "{:.1f}")),
        ("all connected after s", lambda r: num(r.get("all_connected_s"), "{:.2f}")),
        ("lost", lambda r: str(r.get("lost", "—")))]))
    L.append("")
    return L


def render_durable(rows):
    L = ["## Durable inbox (`storage.sync`)\n",
         "With storage on (the default, `normal`), every SEND and PUB the node receives is committed "
         "to its SQLite inbox before the ACK is written; the rows of one loop iteration share one "
         "commit, written to the log in one write (`full` adds an fdatasync per commit); the "
         "checkpoints read the log back from memory. One node "
         "per mode, started one after the other, one connection; `vs off` is the ratio to `off` in "
         "this run (targets: the table above).\n",
         "| variant | storage.sync | ACKs/s | p50 ms | CPU µs/ACK | vs off |", "|---|---|---|---|---|---|"]
    base = {r["mode"]: r["acks_per_s"] for r in rows if r["sync"] == "off"}
    for r in rows:
        b = base.get(r["mode"]) or 0
        L.append("| %s | `%s` | %s | %s | %s | %s |" % (
            r["mode"], r["sync"], "{:,}".format(int(r["acks_per_s"])).replace(",", " "),
            "-" if r.get("p50_ms") is None else "%.3f" % r["p50_ms"],
            "-" if r.get("cpu_us_per_ack") is None else "%.2f" % r["cpu_us_per_ack"],
            "%.2f" % (r["acks_per_s"] / b) if b else "-"))
    L.append("")
    return L


def loadgen(args, timeout=600):
    argv = [h.binary("CHATP2P_LOADGEN")] + args + ["--json"]
    cp = subprocess.run(argv, capture_output=True, timeout=timeout)
    sys.stderr.write(cp.stderr.decode("utf-8", "replace"))
    if cp.returncode != 0:
        raise SystemExit("chatp2p-loadgen failed (%d)" % cp.returncode)
    return json.loads(cp.stdout)["results"]


def perf_profile(pid, lg_args, top=14):
    """The node's hottest symbols while lg_args run, or None when perf is
    missing or not allowed."""
    data = os.path.join(h.tmpdir(), "perf-%d.data" % time.monotonic_ns())
    try:
        rec = subprocess.Popen(["perf", "record", "-F", "2999", "-g", "-o", data, "-p", str(pid)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError:
        return None
    # perf creates its output file once it is attached to the process.
    deadline = time.monotonic() + 10
    while not os.path.exists(data) and rec.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if rec.poll() is not None:
        return None
    try:
        loadgen(lg_args)
    finally:
        rec.send_signal(2)
        rec.wait(30)
    def report(sort, limit):
        cp = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children",
                             "--sort", sort, "-g", "none", "--percent-limit", limit],
                            capture_output=True, timeout=120)
        return [re.sub(r"(\s+-)+\s*$", "", ln)
                for ln in cp.stdout.decode("utf-8", "replace").splitlines()
                if ln.strip() and not ln.startswith("#")]
    syms = report("dso,symbol", "1.5")[:top]
    if not syms:
        return None
    return report("dso", "1")[:6] + [""] + syms


def machine():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for ln in f:
                if ln.startswith("model name"):
                    model = ln.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            mem = "%.1f GiB" % (int(f.readline().split()[1]) / 1048576)
    except OSError:
        pass
    return "%d × %s, %s RAM, %s %s" % (os.cpu_count() or 0, model, mem, platform.system(),
                                        platform.release())


def commit(src):
    try:
        return subprocess.run(["git", "-C", src, "describe", "--always", "--dirty", "--abbrev=12"],
                              capture_output=True, timeout=10).stdout.decode().strip() or "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


# ---- the report ---------------------------------------------------------------

def pick(res, scenario, target=None, **kw):
    for r in res:
        if r["scenario"] == scenario and (target is None or r["target"] == target) and \
                all(r.get(k) == v for k, v in kw.items()):
            return r
    return None


def num(v, fmt="{:,.0f}"):
    if v is None:
        return "—"
    return fmt.format(v).replace(",", " ")


def verdict(ok):
    if ok is None:
        return "not measured"
    return "**met**" if ok else "**missed**"


def targets(res):
    """(target, figure, verdict) rows for issue 10's targets."""
    rows = []
    node = lambda **kw: pick(res, "throughput", "node", **kw)  # noqa: E731
    p1 = node(conns=1, mode="pipeline_per_send")
    n1 = node(conns=1, mode="no_pipeline")
    if p1 and n1 and p1["acks_per_s"]:
        r = n1["acks_per_s"] / p1["acks_per_s"]
        rows.append(("To a peer without `pipeline` that reads whole segments: the throughput of a "
                     "`pipeline` peer, within 20% (ACKs the node writes, 1 connection, window 64)",
                     "%s vs %s ACKs/s (%.0f%%)" % (num(n1["acks_per_s"]), num(p1["acks_per_s"]), r * 100),
                     verdict(r >= 0.8)))
    cp_ = pick(res, "ctl", "node", sink="pipeline")
    cn = pick(res, "ctl", "node", sink="no_pipeline")
    if cp_ and cn and cp_["acked_per_s"]:
        r = cn["acked_per_s"] / cp_["acked_per_s"]
        rows.append(("… the same for SENDs the node writes (`send` on the control socket)",
                     "%s vs %s sends/s (%.0f%%)" % (num(cn["acked_per_s"]), num(cp_["acked_per_s"]), r * 100),
                     verdict(r >= 0.8)))
    c1 = pick(res, "ctl", "node", sink="one_line_per_recv")
    if c1:
        ratio = c1.get("ratio_to_1_rtt")
        lost = c1["failed"] + c1["unanswered"]
        rows.append(("To a one-line-per-recv peer: at least 80% of 1/RTT, nothing lost",
                     "%s sends/s = %s of 1/RTT; %d failed or unanswered" %
                     (num(c1["acked_per_s"]), num(ratio, "{:.1%}") if ratio is not None else "—", lost),
                     verdict(ratio is not None and ratio >= 0.8 and lost == 0)))
    b1 = node(conns=1, mode="pipeline_batched")
    if b1:
        r = b1.get("ratio_to_transport")
        rows.append(("SEND→ACK over one pipelined connection: at least 50% of the transport limit",
                     "%s ACKs/s = %s of the responder's" % (num(b1["acks_per_s"]),
                                                           num(r, "{:.0%}") if r is not None else "—"),
                     verdict(r is not None and r >= 0.5)))
        c = b1["cpu_us_per_ack"]
        rows.append(("Node CPU per ACKed SEND, batched input: ≤ 1.5 µs",
                     "%s µs" % num(c, "{:.2f}"), verdict(c is not None and c <= 1.5)))
    o64 = node(conns=64, mode="one_in_flight")
    if o64:
        c = o64["cpu_us_per_ack"]
        rows.append(("Node CPU per ACKed SEND, one SEND per segment: ≤ 5 µs",
                     "%s µs (64 connections, one SEND in flight on each: every segment the node "
                     "reads holds one SEND)%s" % (num(c, "{:.2f}"), "; %s µs with 64 in flight on one "
                                                  "connection, one per write" % num(p1["cpu_us_per_ack"], "{:.2f}")
                                                  if p1 else ""),
                     verdict(c is not None and c <= 5)))
    b64 = node(conns=64, mode="pipeline_batched")
    if b64:
        rows.append(("64 connections: ≥ 300 000 ACKed SENDs/s in total (generator on the same cores)",
                     "%s ACKs/s" % num(b64["acks_per_s"]), verdict(b64["acks_per_s"] >= 300000)))
    pub = pick(res, "pub", "node", peers=1000) or \
        max((r for r in res if r["scenario"] == "pub"), key=lambda r: r["peers"], default=None)
    if pub:
        ok = pub["peers"] >= 1000 and pub["incomplete"] == 0 and pub["last_p99_ms"] is not None \
            and pub["last_p99_ms"] <= 20
        rows.append(("PUB to 1 000 peers: the last one has it within 20 ms (p99)",
                     "p99 %s ms (%d peers, %d PUBs incomplete)" %
                     (num(pub["last_p99_ms"], "{:.1f}"), pub["peers"], pub["incomplete"]), verdict(ok)))
    idle = pick(res, "idle", "node", conns=1000) or pick(res, "idle", "node")
    if idle:
        ok = idle["conns"] >= 1000 and idle["rss_after_kb"] < 16384 and \
            idle["idle_cpu_pct"] is not None and idle["idle_cpu_pct"] < 1
        rows.append(("1 000 idle connections: RSS under 16 MB in total, idle CPU under 1%",
                     "%s connections: %s kB RSS (%s kB each), idle CPU %s%%" %
                     (idle["conns"], num(idle["rss_after_kb"]), num(idle["kb_per_conn"], "{:.1f}"),
                      num(idle["idle_cpu_pct"], "{:.2f}")), verdict(ok)))
    ns = pick(res, "ns", "node")
    if ns:
        ok = ns["discovered"] is not None and ns["discovered"] >= ns["registered"] >= 1000 and \
            ns["all_connected_s"] is not None and ns["all_connected_s"] <= 60
        rows.append(("A namespace of 1 000 registered peers: all discovered in one DISCOVER, all "
                     "connected within 60 s",
                     "%s registered, %s discovered, %s connected%s" %
                     (ns["registered"], num(ns["discovered"]), ns["connected"],
                      ", all within %.2f s" % ns["all_connected_s"] if ns["all_connected_s"] else ""),
                     verdict(ok)))
    return rows


def table(rows, cols):
    out = ["| " + " | ".join(c[0] for c in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        out.append("| " + " | ".join(c[1](r) for c in cols) + " |")
    return "\n".join(out)


def render(res, meta, profiles, durable=(), tls=(), floor=None):
    L = []
    L.append("# Benchmarks\n")
    L.append("Written by `scripts/bench.sh` (do not edit by hand: it rewrites this file). It builds an "
             "optimised `chatp2pd` and `tests/bench/chatp2p-loadgen` (C, libev), starts on loopback a "
             "rendezvous server, one node and a second rendezvous server, and runs every scenario of "
             "the load generator once. `chatp2p-loadgen --help` says what each scenario does; it "
             "can load any peer, ours or another implementation's.\n")
    L.append("Wall-clock figures on a shared 2-core machine are noisy: the **ratios** (to the transport "
             "limit measured in the same run by `chatp2p-loadgen --responder`, a peer that ACKs by "
             "string search without a JSON parser) and the **node CPU per message** (utime+stime from "
             "`/proc/PID/stat`, 10 ms ticks: short runs are coarse) are the figures to compare.\n")
    L.append("Before → after comparisons of a change (both builds measured in one session, runs "
             "alternated) are kept by hand in [benchmarks-history.md](benchmarks-history.md), which "
             "this script does not touch.\n")
    L.append("| | |\n|---|---|")
    for k, v in meta:
        L.append("| %s | %s |" % (k, v))
    L.append("")
    L.append("## Targets (issue 10)\n")
    L.append(table(targets(res), [("target", lambda r: r[0]), ("measured", lambda r: r[1]),
                                  ("", lambda r: r[2])]))
    L.append("")
    if tls:
        L.append("## Targets (issue 17: TLS)\n")
        L.append(table(tls_targets(tls), [("target", lambda r: r[0]), ("measured", lambda r: r[1]),
                                          ("", lambda r: r[2])]))
        L.append("")
    if durable and durable_targets(durable):
        L.append("## Targets (issue 18: the durable inbox)\n")
        L.append(table(durable_targets(durable, floor), [("target", lambda r: r[0]),
                                                  ("measured", lambda r: r[1]), ("", lambda r: r[2])]))
        L.append("")
    L.append("## SEND → ACK throughput\n")
    L.append("Bench peers dial the target, say HELLO (with or without `pipeline`) and keep a window of "
             "SENDs in flight on each connection. `pipeline_batched` refills half a window in one write; "
             "`pipeline_per_send` and `no_pipeline` write each SEND in its own `write()` (as every other "
             "peer does), advertising `pipeline` or not; `one_in_flight` keeps a single SEND in flight per "
             "connection, so each segment the node reads holds exactly one SEND (a read and a write per "
             "message). "
             "`vs transport`: the node's ACKs/s over the responder's, same variant.\n")
    tp = [r for r in res if r["scenario"] == "throughput"]
    L.append(table(tp, [
        ("target", lambda r: r["target"]), ("conns", lambda r: str(r["conns"])),
        ("window", lambda r: str(r["window"])), ("variant", lambda r: r["mode"]),
        ("ACKs/s", lambda r: num(r["acks_per_s"])), ("p50 ms", lambda r: num(r["p50_ms"], "{:.3f}")),
        ("p99 ms", lambda r: num(r["p99_ms"], "{:.3f}")), ("max ms", lambda r: num(r["max_ms"], "{:.3f}")),
        ("CPU µs/ACK", lambda r: num(r["cpu_us_per_ack"], "{:.2f}")),
        ("vs transport", lambda r: num(r.get("ratio_to_transport"), "{:.0%}"))]))
    L.append("")
    L.append("## Single-message round trip\n")
    L.append("One connection, one SEND in flight. `vs transport`: the responder's p50 over the node's.\n")
    L.append(table([r for r in res if r["scenario"] == "rtt"], [
        ("target", lambda r: r["target"]), ("pipeline", lambda r: str(r["pipeline"]).lower()),
        ("p50 ms", lambda r: num(r["p50_ms"], "{:.3f}")), ("p99 ms", lambda r: num(r["p99_ms"], "{:.3f}")),
        ("max ms", lambda r: num(r["max_ms"], "{:.3f}")), ("round trips/s", lambda r: num(r["per_s"])),
        ("CPU µs/ACK", lambda r: num(r["cpu_us_per_ack"], "{:.2f}")),
        ("vs transport", lambda r: num(r.get("ratio_to_transport"), "{:.0%}"))]))
    L.append("")
    L.append("## PUB fan-out\n")
    L.append("Connected bench peers (advertising `pipeline`); `pub` to `*` on the control socket; time "
             "from writing the request until the last peer has read the PUB, over repetitions.\n")
    L.append(table([r for r in res if r["scenario"] == "pub"], [
        ("peers", lambda r: str(r["peers"])), ("PUBs", lambda r: str(r["reps"])),
        ("last has it, p50 ms", lambda r: num(r["last_p50_ms"], "{:.2f}")),
        ("p99 ms", lambda r: num(r["last_p99_ms"], "{:.2f}")), ("max ms", lambda r: num(r["last_max_ms"], "{:.2f}")),
        ("`pub` answered, p50 ms", lambda r: num(r["call_p50_ms"], "{:.2f}")),
        ("incomplete", lambda r: str(r["incomplete"])),
        ("CPU µs/line", lambda r: num(r["cpu_us_per_line"], "{:.2f}"))]))
    L.append("")
    L.append("## Idle connections\n")
    L.append(table([r for r in res if r["scenario"] == "idle"], [
        ("connections", lambda r: str(r["conns"])), ("RSS before kB", lambda r: num(r["rss_before_kb"])),
        ("RSS after kB", lambda r: num(r["rss_after_kb"])), ("kB/connection", lambda r: num(r["kb_per_conn"], "{:.2f}")),
        ("idle CPU %", lambda r: num(r["idle_cpu_pct"], "{:.2f}")), ("lost", lambda r: str(r["lost"]))]))
    L.append("")
    L.append("## Control plane: `send` from many controllers\n")
    L.append("K controllers keep W `send` requests each in flight to one bench peer connected to the node: "
             "one advertising `pipeline`, one not (it reads whole segments), one that reads only the "
             "first line of each `recv()` and drops the rest (as one implementation in the wild does). "
             "`RTT`: p50 round trip of a second bench peer that writes one SEND every 2 ms to the node "
             "during the run (same node, same moment); `vs 1/RTT` (for the one-line peer, which needs "
             "stop-and-wait): sends/s times that RTT. Over 100% means the stop-and-wait cycle runs faster "
             "than a lone message arriving at a random moment makes its round trip (the cycle's path is "
             "warm; the probe waits behind the controllers' work); a fixed gap after each write shows as "
             "a few %.\n")
    L.append(table([r for r in res if r["scenario"] == "ctl"], [
        ("peer", lambda r: r["sink"]), ("K×W", lambda r: "%d×%d" % (r["controllers"], r["window"])),
        ("acked sends/s", lambda r: num(r["acked_per_s"])), ("p50 ms", lambda r: num(r["p50_ms"], "{:.2f}")),
        ("p99 ms", lambda r: num(r["p99_ms"], "{:.2f}")), ("acked", lambda r: str(r["acked"])),
        ("failed", lambda r: str(r["failed"])), ("SENDs seen by the peer", lambda r: str(r["sink_sends"])),
        ("CPU µs/send", lambda r: num(r["cpu_us_per_send"], "{:.2f}")),
        ("RTT ms", lambda r: num(r.get("rtt_ms"), "{:.3f}")),
        ("vs 1/RTT", lambda r: num(r.get("ratio_to_1_rtt"), "{:.1%}"))]))
    L.append("")
    L.append("## Rendezvous server role\n")
    L.append("`chatp2pd --rendezvous-server` (rate limit raised for one source address); distinct names "
             "REGISTERed from 127.0.0.1 one after another, then DISCOVER of that namespace, one after "
             "another. (The public server's own code manages ~160 REGISTER/s driven the same way by a "
             "Python client.)\n")
    L.append(table([r for r in res if r["scenario"] == "rdv"], [
        ("request", lambda r: r["target"]), ("ok", lambda r: str(r["ok"])), ("failed", lambda r: str(r["failed"])),
        ("per s", lambda r: num(r["per_s"])), ("p50 ms", lambda r: num(r["p50_ms"], "{:.3f}")),
        ("p99 ms", lambda r: num(r["p99_ms"], "{:.3f}")), ("max ms", lambda r: num(r["max_ms"], "{:.3f}")),
        ("entries", lambda r: num(r.get("entries"))), ("reply bytes", lambda r: num(r.get("reply_bytes"))),
        ("server CPU µs/request", lambda r: num(r["server_cpu_us_per_req"], "{:.1f}"))]))
    L.append("")
    L.append("## A namespace of registered peers\n")
    L.append("The load generator listens on N ports, REGISTERs each at the node's rendezvous server in "
             "the node's namespace, and calls `discover` on the node's control socket; it counts the "
             "entries the node got and the peers the node then connects to.\n")
    L.append(table([r for r in res if r["scenario"] == "ns"], [
        ("registered", lambda r: str(r["registered"])), ("discovered", lambda r: num(r["discovered"])),
        ("`discover` answered, ms", lambda r: num(r.get("discover_ms"), "{:.1f}")),
        ("node CPU for it, ms (10 ms ticks)", lambda r: num(r.get("discover_cpu_ms"))),
        ("connected", lambda r: str(r["connected"])), ("all connected after s", lambda r: num(r["all_connected_s"], "{:.2f}")),
        ("waited s", lambda r: num(r["waited_s"], "{:.2f}")), ("node RSS growth kB", lambda r: num(r["rss_growth_kb"]))]))
    L.append("")
    if profiles:
        L.append("## Where the node's time goes\n")
        L.append("`perf record -g` on the node during a throughput run, "
                 "`perf report --no-children`: by library (kernel vs user space), then by symbol, entries of "
                 "1.5% or more.\n")
        for title, lines in profiles:
            L.append("%s:\n" % title)
            L.append("```")
            L.extend(ln.rstrip() for ln in lines)
            L.append("```\n")
    if tls:
        L.extend(render_tls(tls))
    if durable:
        L.extend(render_durable(durable))
    L.append("## Re-running\n")
    L.append("`scripts/bench.sh` (about two minutes; `--quick` for a shorter run that does not rewrite "
             "this file, `--no-profile` to skip perf). The raw figures of the last run are in "
             "`build-bench/bench.json`. Any peer can be loaded directly, for instance "
             "`chatp2p-loadgen --target HOST:PORT --scenarios throughput,rtt` against another "
             "implementation.\n")
    return "\n".join(L)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", help="markdown file to write (default: print only)")
    ap.add_argument("--json-out", help="write the raw results here")
    ap.add_argument("--quick", action="store_true", help="short, small run")
    ap.add_argument("--no-profile", action="store_true")
    args = ap.parse_args()

    started = datetime.datetime.now(datetime.timezone.utc)
    rdv = h.start_rendezvous(*RDV_SETS)
    # The REGISTER figures are of the durable path: each reply waits for
    # its commit to the state directory's database (issue 18).
    rdv2 = h.start_rendezvous(*RDV_SETS, "state_dir=" + os.path.join(h.tmpdir(), "rdv2-state"))
    node, sock = start_node(rdv)
    common = ["--target", "127.0.0.1:%d" % node.port, "--control", sock, "--pid", str(node.popen.pid)]
    if args.quick:
        knobs = ["--duration", "0.5", "--pub-peers", "100", "--pub-reps", "5", "--idle-conns", "200",
                 "--idle-seconds", "1", "--rdv-regs", "1000", "--rdv-discovers", "5", "--ns-peers", "100",
                 "--ns-timeout", "10"]
    else:
        knobs = ["--duration", "1", "--repeat", "3", "--pub-peers", "100,1000", "--pub-reps", "50",
                 "--idle-conns", "1000,10000", "--idle-seconds", "3", "--rdv-regs", "10000",
                 "--rdv-discovers", "20", "--ns-peers", "1000", "--ns-timeout", "60"]
    t0 = time.monotonic()
    res = loadgen(common + knobs + ["--rdv", "127.0.0.1:%d" % rdv2.port, "--rdv-pid", str(rdv2.popen.pid),
                                    "--ns-rdv", "127.0.0.1:%d" % rdv.port])
    durable = durable_runs(rdv2, args.quick)
    floor = sqlite_floor(args.quick)
    profiles = []
    if not args.no_profile:
        for mode, conns, title in (
                ("pipeline_batched", "1", "Batched input (one connection, `pipeline`, half a window of "
                 "SENDs per write)"),
                ("one_in_flight", "64", "One SEND per segment (64 connections, one SEND in flight on each)")):
            prof = perf_profile(node.popen.pid, common + [
                "--scenarios", "throughput", "--reference", "none", "--conns", conns,
                "--modes", mode, "--duration", "3" if not args.quick else "0.5"])
            if prof:
                profiles.append((title, prof))
    node.check_clean_exit()
    tls = tls_runs(rdv, args.quick)
    elapsed = time.monotonic() - t0
    rdv.check_clean_exit()
    rdv2.check_clean_exit()

    meta = [("date", started.strftime("%Y-%m-%d %H:%M UTC")),
            ("commit", "`%s`" % commit(os.environ.get("CHATP2P_SRC", os.path.join(HERE, "..", "..")))),
            ("machine", machine()),
            ("build", "CMake Release (no sanitizers)"),
            ("node settings", ", ".join("`%s`" % s for s in NODE_SETS)
             + " (the message path alone; what the durable inbox, on by default, costs is in the "
             "last section)"),
            ("run time", "%.0f s of load" % elapsed)]
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"meta": dict(meta), "results": res, "tls": tls, "durable": durable,
                       "sqlite_floor": floor}, f, indent=1)
    text = render(res, meta, profiles, durable, tls, floor)
    if args.out:
        tmp = tempfile.NamedTemporaryFile("w", dir=os.path.dirname(os.path.abspath(args.out)),
                                          delete=False, suffix=".tmp")
        with tmp:
            tmp.write(text)
        os.replace(tmp.name, args.out)
        print("wrote %s" % args.out)
    print("\n".join("%-100s %s %s" % r for r in targets(res) + tls_targets(tls) +
                     durable_targets(durable, floor)))


if __name__ == "__main__":
    main()
