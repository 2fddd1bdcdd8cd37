"""Smoke run of chatp2p-loadgen (a few seconds), so the benchmark tool cannot
rot: against a real node and our own rendezvous server on loopback, every
scenario on a small scale must run, exit 0 and report figures that show the
traffic really flowed.  Not a performance test: no figure is compared with a
threshold other than "more than nothing".

Environment: CHATP2PD, CHATP2P_LOADGEN (paths of the binaries)."""

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
import harness as h  # noqa: E402

NODE_SETS = ["logging.level=WARNING", "logging.log_to_file=false",
             "limits.accept_rate=100000", "limits.max_connections=100000",
             "rendezvous.discover_interval=600", "keepalive.ping_interval=30"]


def loadgen(*args, timeout=120):
    cp = h.run([h.binary("CHATP2P_LOADGEN")] + list(args), timeout=timeout)
    err = cp.stderr.decode("utf-8", "replace")
    if cp.returncode != 0:
        raise AssertionError("chatp2p-loadgen exited %d:\n%s" % (cp.returncode, err[-4000:]))
    return cp.stdout.decode(), err


def records(out, scenario, target=None):
    res = json.loads(out)["results"]
    return [r for r in res if r["scenario"] == scenario and (target is None or r["target"] == target)]


class LoadgenSmoke(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.rdv = h.start_rendezvous("rate_limit=100000")
        cls.sock = os.path.join(h.tmpdir(), "hub.sock")
        args = ["--name", "hub", "--namespace", "BENCH", "--listen", "127.0.0.1", "--port", "0",
                "--rendezvous", "127.0.0.1:%d" % cls.rdv.port, "--control", cls.sock]
        for s in NODE_SETS:
            args += ["--set", s]
        cls.node = h.start_daemon(args, name="hub")

    @classmethod
    def tearDownClass(cls):
        cls.node.check_clean_exit()
        cls.rdv.check_clean_exit()

    def test_help(self):
        out, _ = loadgen("--help")
        for word in ("--responder", "--json", "throughput", "pub", "idle", "ctl", "rdv"):
            self.assertIn(word, out)

    def test_node_scenarios(self):
        out, err = loadgen("--target", "127.0.0.1:%d" % self.node.port, "--control", self.sock,
                           "--scenarios", "throughput,rtt,pub,idle,ctl", "--duration", "0.3",
                           "--conns", "1,4", "--window", "8", "--pub-peers", "10",
                           "--pub-reps", "3", "--idle-conns", "20", "--idle-seconds", "0.3",
                           "--ctl-clients", "2", "--ctl-window", "2", "--json")
        tp = records(out, "throughput", "node")
        self.assertEqual(len(tp), 8, out)
        for r in tp:
            self.assertGreater(r["acks_per_s"], 0, (r, err))
            self.assertIsNotNone(r["ratio_to_transport"], r)
        for r in records(out, "throughput", "responder"):
            self.assertGreater(r["acks_per_s"], 0, (r, err))
        self.assertEqual(len(records(out, "rtt", "node")), 2, out)
        for r in records(out, "rtt"):
            self.assertGreater(r["per_s"], 0, r)
            self.assertGreater(r["p50_ms"], 0, r)
        pub = records(out, "pub", "node")[0]
        self.assertEqual(pub["reached"], 10, pub)
        self.assertEqual(pub["incomplete"], 0, pub)
        idle = records(out, "idle", "node")[0]
        self.assertEqual(idle["conns"], 20, idle)
        self.assertGreater(idle["rss_after_kb"], 0, idle)
        ctl = records(out, "ctl", "node")
        self.assertEqual(len(ctl), 3, out)
        for r in ctl:
            self.assertGreater(r["acked"], 0, r)
            self.assertEqual(r["failed"], 0, r)
        # The table form prints the same scenarios.
        out, _ = loadgen("--target", "127.0.0.1:%d" % self.node.port, "--control", self.sock,
                         "--scenarios", "rtt", "--duration", "0.2", "--reference", "none")
        self.assertIn("rtt", out)
        self.assertIn("p50_ms=", out)

    def test_tls(self):
        """The bench peers speak TLS: dialling (throughput, idle: the node is
        the TLS server) and accepting (ns: the node dials them, TLS client)."""
        out, err = loadgen("--target", "127.0.0.1:%d" % self.node.port, "--control", self.sock,
                           "--ns-rdv", "127.0.0.1:%d" % self.rdv.port, "--tls",
                           "--scenarios", "throughput,idle,ns", "--reference", "none",
                           "--duration", "0.3", "--conns", "1", "--modes", "pipeline_batched",
                           "--window", "8", "--idle-conns", "10", "--idle-seconds", "0.2",
                           "--ns-peers", "20", "--ns-timeout", "30", "--json")
        tp = records(out, "throughput", "node")
        self.assertEqual([r["tls"] for r in tp], [False, True], out)
        self.assertEqual(tp[1]["secured"], 1, (tp, err))
        self.assertGreater(tp[1]["acks_per_s"], 0, (tp, err))
        self.assertGreater(tp[1]["ratio_to_plain"], 0, tp)
        idle = records(out, "idle", "node")[0]
        self.assertEqual((idle["conns"], idle["secured"]), (10, 10), (idle, err))
        ns = records(out, "ns", "node")[0]
        self.assertEqual((ns["connected"], ns["secured"]), (20, 20), (ns, err))

    def test_external_responder(self):
        resp = h.start_daemon(["--responder", "--port", "0"], var="CHATP2P_LOADGEN",
                              name="responder")
        out, err = loadgen("--reference", "127.0.0.1:%d" % resp.port, "--scenarios", "throughput",
                           "--conns", "2", "--duration", "0.3", "--json")
        rs = records(out, "throughput", "responder")
        self.assertEqual(len(rs), 4, out)
        for r in rs:
            self.assertGreater(r["acks_per_s"], 0, (r, err))
        resp.check_clean_exit(self)

    def test_rendezvous(self):
        srv = h.start_rendezvous("rate_limit=100000")
        out, err = loadgen("--rdv", "127.0.0.1:%d" % srv.port, "--rdv-pid", str(srv.popen.pid),
                           "--rdv-regs", "300", "--rdv-discovers", "3", "--json")
        reg = records(out, "rdv", "register")[0]
        disc = records(out, "rdv", "discover")[0]
        self.assertEqual((reg["ok"], reg["failed"]), (300, 0), (reg, err))
        self.assertEqual((disc["ok"], disc["entries"]), (3, 300), (disc, err))
        srv.check_clean_exit(self)


if __name__ == "__main__":
    unittest.main(verbosity=2)
