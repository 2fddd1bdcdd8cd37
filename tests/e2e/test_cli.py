"""chatp2pd's command line and configuration as a user meets them: flags
override config.json, and every mistake is one line on stderr naming the
key, with exit status 2 (issue 3 and 4: "a clear one-line error")."""

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from nodes import Ctl  # noqa: E402


def chatp2pd(*args, cwd=None):
    return harness.run([harness.binary("CHATP2PD")] + list(args), timeout=10, cwd=cwd)


def write(name, text):
    path = os.path.join(harness.tmpdir(), name)
    with open(path, "w") as f:
        f.write(text)
    return path


class Mistakes(unittest.TestCase):
    def assert_one_line_exit2(self, cp, *needles):
        err = cp.stderr.decode()
        self.assertEqual(cp.returncode, 2, err)
        lines = [l for l in err.splitlines() if l.strip()]
        self.assertEqual(len(lines), 1, err)
        for n in needles:
            self.assertIn(n, lines[0])

    def test_no_name(self):
        self.assert_one_line_exit2(chatp2pd(), "node.name")

    def test_invalid_name(self):
        self.assert_one_line_exit2(chatp2pd("--name", "a@b"), "node.name")
        self.assert_one_line_exit2(chatp2pd("--name", "x" * 65), "node.name")

    def test_invalid_namespace(self):
        self.assert_one_line_exit2(chatp2pd("--name", "a", "--namespace", ""), "node.namespace")

    def test_bad_values_name_the_key(self):
        self.assert_one_line_exit2(chatp2pd("--name", "a", "--port", "99999"), "node.port")
        self.assert_one_line_exit2(chatp2pd("--name", "a", "--set", "keepalive.ping_interval=abc"),
                                   "keepalive.ping_interval")
        self.assert_one_line_exit2(chatp2pd("--name", "a", "--set", "nosuch.key=1"), "nosuch.key")
        self.assert_one_line_exit2(chatp2pd("--name", "a", "--log-level", "loud"), "logging.level")
        self.assert_one_line_exit2(chatp2pd("--name", "a", "--rendezvous", "nohostport"),
                                   "--rendezvous")

    def test_malformed_file(self):
        path = write("broken.json", '{"network": {"ack_timeout": 20,}')
        self.assert_one_line_exit2(chatp2pd("-c", path, "--name", "a"), "broken.json", "invalid JSON")

    def test_wrong_type_in_file(self):
        path = write("wrongtype.json", json.dumps({"network": {"ack_timeout": "soon"}}))
        self.assert_one_line_exit2(chatp2pd("-c", path, "--name", "a"), "network.ack_timeout")

    def test_out_of_range_in_file(self):
        path = write("range.json", json.dumps({"rendezvous": {"port": 70000}}))
        self.assert_one_line_exit2(chatp2pd("-c", path, "--name", "a"), "rendezvous.port",
                                   "70000")

    def test_missing_named_file(self):
        self.assert_one_line_exit2(chatp2pd("-c", "/nonexistent/config.json", "--name", "a"),
                                   "/nonexistent/config.json")

    def test_usage(self):
        cp = chatp2pd("--no-such-flag")
        self.assertEqual(cp.returncode, 2)
        cp = chatp2pd("--version")
        self.assertEqual(cp.returncode, 0)
        self.assertTrue(cp.stdout.decode().startswith("chatp2pd "))


class FileAndFlags(unittest.TestCase):
    def test_the_original_clients_file_works_and_flags_win(self):
        rdv = harness.start_rendezvous("rate_limit=100000")
        # A config.json as users of the original client have it, plus a name,
        # in the working directory (read without -c).
        d = os.path.join(harness.tmpdir(), "cwdconf")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(os.environ["CHATP2P_SRC"], "config.json")) as f:
            cfg = json.load(f)
        for k in ("node", "control", "limits", "rendezvous_server"):
            cfg.pop(k)
        cfg["rendezvous"]["host"] = "127.0.0.1"
        cfg["rendezvous"]["port"] = rdv.port
        cfg["logging"]["log_to_file"] = False
        cfg["logging"]["level"] = "WARNING"
        cfg["node"] = {"name": "fromfile", "namespace": "FILE"}
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg, f)
        sock = os.path.join(d, "n.sock")
        p = harness.start_daemon(["--namespace", "FLAG", "--listen", "127.0.0.1", "--port", "0",
                                  "--control", sock, "--log-level", "INFO"], cwd=d)
        c = Ctl(sock)
        st = c.call("status")
        self.assertEqual(st["peer_id"], "fromfile@FLAG")   # name from the file, ns from the flag
        self.assertEqual(st["log_level"], "INFO")           # the flag beat the file
        self.assertEqual(st["rendezvous"]["port"], rdv.port)
        harness.wait_for(lambda: c.call("status")["rendezvous"]["state"] == "registered", 10,
                         what="registration with the file's rendezvous address")
        c.close()
        p.check_clean_exit(self)
        rdv.check_clean_exit(self)


if __name__ == "__main__":
    unittest.main(verbosity=2)
