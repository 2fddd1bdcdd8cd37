"""chatp2pd --rendezvous-server against PROTOCOL.md section 1, over real TCP
on loopback.  Several client ips are played by binding 127.0.0.x sources."""

import json
import os
import re
import selectors
import signal
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

ERR_BLOCKED = re.compile(
    r"^Connection from (\S+):(\d+) has been blocked due to excessive login attempts "
    r"\(limit: (\d+)\)\. The block will be lifted in (\d+) seconds\.$")


def err(code):
    return {"status": "ERROR", "message": code}


def reg(name="alice", ns="CIC", port=5000, **kw):
    r = {"type": "REGISTER", "namespace": ns, "name": name, "port": port}
    r.update(kw)
    return r


class ServerCase(unittest.TestCase):
    """One server per class, stopped at the end with SIGTERM: it must exit 0
    with nothing from the sanitizers on its stderr."""

    SETS = ("rate_limit=100000",)
    LISTEN = "127.0.0.1"

    @classmethod
    def setUpClass(cls):
        cls.srv = h.start_rendezvous(*cls.SETS, listen=cls.LISTEN)
        cls.port = cls.srv.port

    @classmethod
    def tearDownClass(cls):
        cls.srv.check_clean_exit()

    def req(self, obj, **kw):
        kw.setdefault("host", self.LISTEN)
        return h.rdv_request(self.port, obj, **kw)

    def ns(self):
        """A namespace private to the running test."""
        return "t-" + self.id().rsplit(".", 1)[-1][:60]

    def discover(self, ns=None, **kw):
        q = {"type": "DISCOVER"}
        if ns is not None:
            q["namespace"] = ns
        r = self.req(q, **kw)
        self.assertEqual(r["status"], "OK", r)
        return r["peers"]


class TestRegister(ServerCase):
    def test_register_ok_echoes_ip_port_ttl(self):
        r = self.req(reg("alice", self.ns(), 5000, ttl=60))
        self.assertEqual(r, {"status": "OK", "ttl": 60, "ip": "127.0.0.1", "port": 5000})

    def test_lowercase_type(self):
        r = self.req({"type": "register", "namespace": self.ns(), "name": "a", "port": 1})
        self.assertEqual(r["status"], "OK", r)
        self.assertEqual(self.req({"type": "Discover", "namespace": self.ns()})["status"], "OK")

    def test_ttl_default_7200(self):
        r = self.req(reg("a", self.ns()))
        self.assertEqual(r["ttl"], 7200)
        [p] = self.discover(self.ns())
        self.assertEqual(p["ttl"], 7200)

    def test_ttl_clamped_never_rejected(self):
        cases = [(0, 1), (100000, 86400), (-5, 1), (86400, 86400), (1, 1), (10 ** 30, 86400),
                 (30.9, 30), ("300", 300), (0.5, 1)]
        for ttl, want in cases:
            with self.subTest(ttl=ttl):
                r = self.req(reg("a", self.ns(), ttl=ttl))
                self.assertEqual(r["status"], "OK", r)
                self.assertEqual(r["ttl"], want)

    def test_bad_ttl(self):
        for ttl in ("abc", "", None, [], {}, "1.5", True):
            with self.subTest(ttl=ttl):
                self.assertEqual(self.req(reg("a", self.ns(), ttl=ttl)), err("bad_ttl"))

    def test_bad_name(self):
        base = {"type": "REGISTER", "namespace": self.ns(), "port": 5000}
        for name in ("", "x" * 65, 5, None, ["a"], {"a": 1}, "é" * 65):
            with self.subTest(name=name):
                self.assertEqual(self.req(dict(base, name=name)), err("bad_name"))
        self.assertEqual(self.req(base), err("bad_name"))  # missing

    def test_name_length_counts_characters_not_bytes(self):
        for name in ("x" * 64, "é" * 64, "\U0001F600" * 64):
            with self.subTest(n=len(name.encode())):
                r = self.req(reg(name, self.ns()))
                self.assertEqual(r["status"], "OK", r)
        names = {p["name"] for p in self.discover(self.ns())}
        self.assertIn("\U0001F600" * 64, names)  # \ud83d\ude00 pairs decoded

    def test_bad_namespace(self):
        base = {"type": "REGISTER", "name": "a", "port": 5000}
        for ns in ("", "n" * 65, 7, None, ["CIC"]):
            with self.subTest(ns=ns):
                self.assertEqual(self.req(dict(base, namespace=ns)), err("bad_namespace"))
        self.assertEqual(self.req(base), err("bad_namespace"))
        self.assertEqual(self.req(dict(base, namespace="n" * 64))["status"], "OK")

    def test_bad_port(self):
        base = {"type": "REGISTER", "name": "a", "namespace": self.ns()}
        for port in (0, 70000, 65536, -1, "abc", "", "5000.5", None, True, False, [5000]):
            with self.subTest(port=port):
                self.assertEqual(self.req(dict(base, port=port)), err("bad_port"))
        self.assertEqual(self.req(base), err("bad_port"))  # missing

    def test_port_numeric_string_and_bounds_accepted(self):
        for port, want in (("5000", 5000), (" 6000 ", 6000), (1, 1), (65535, 65535),
                           (7000.0, 7000)):
            with self.subTest(port=port):
                r = self.req(reg("a", self.ns(), port))
                self.assertEqual(r["status"], "OK", r)
                self.assertEqual(r["port"], want)
                self.assertIsInstance(r["port"], int)

    def test_validation_order_name_ttl_namespace_port(self):
        everything_bad = {"type": "REGISTER", "name": "", "ttl": "x", "namespace": "",
                          "port": 0}
        self.assertEqual(self.req(everything_bad), err("bad_name"))
        self.assertEqual(self.req(dict(everything_bad, name="a")), err("bad_ttl"))
        self.assertEqual(self.req(dict(everything_bad, name="a", ttl=5)), err("bad_namespace"))
        self.assertEqual(self.req(dict(everything_bad, name="a", ttl=5, namespace="n")),
                         err("bad_port"))

    def test_upsert_same_key_updates_port_and_ttl(self):
        ns = self.ns()
        self.assertEqual(self.req(reg("alice", ns, 5000, ttl=100))["status"], "OK")
        self.assertEqual(self.req(reg("alice", ns, 5001, ttl=200))["status"], "OK")
        peers = self.discover(ns)
        self.assertEqual(len(peers), 1, peers)
        self.assertEqual((peers[0]["port"], peers[0]["ttl"]), (5001, 200))
        self.assertGreaterEqual(peers[0]["expires_in"], 198)

    def test_same_name_from_two_ips(self):
        ns = self.ns()
        r1 = self.req(reg("alice", ns, 5000), source="127.0.0.1")
        r2 = self.req(reg("alice", ns, 5002), source="127.0.0.2")
        self.assertEqual(r1["ip"], "127.0.0.1")
        self.assertEqual(r2["ip"], "127.0.0.2")
        got = sorted((p["ip"], p["port"], p["name"]) for p in self.discover(ns))
        self.assertEqual(got, [("127.0.0.1", 5000, "alice"), ("127.0.0.2", 5002, "alice")])

    def test_extra_fields_ignored(self):
        r = self.req(reg("a", self.ns(), 5000, observed_ip="1.2.3.4", extra={"x": [1]}))
        self.assertEqual(r, {"status": "OK", "ttl": 7200, "ip": "127.0.0.1", "port": 5000})

    def test_registration_expires_after_ttl(self):
        ns = self.ns()
        self.assertEqual(self.req(reg("short", ns, 5000, ttl=1))["ttl"], 1)
        self.assertEqual(self.req(reg("long", ns, 5001, ttl=600))["ttl"], 600)
        names = {p["name"] for p in self.discover(ns)}
        self.assertEqual(names, {"short", "long"})
        # Time passing is the point here: poll until the 1 s entry is gone.
        h.wait_for(lambda: {p["name"] for p in self.discover(ns)} == {"long"}, timeout=5,
                   interval=0.1, what="the ttl=1 registration to expire")


class TestDiscoverUnregister(ServerCase):
    def test_discover_one_namespace_all_and_unknown(self):
        a, b = self.ns() + "-a", self.ns() + "-b"
        self.req(reg("p1", a, 5001))
        self.req(reg("p2", a, 5002))
        self.req(reg("p3", b, 5003))
        self.assertEqual(sorted(p["name"] for p in self.discover(a)), ["p1", "p2"])
        self.assertEqual([p["name"] for p in self.discover(b)], ["p3"])
        every = {(p["namespace"], p["name"]) for p in self.discover()}
        self.assertTrue({(a, "p1"), (a, "p2"), (b, "p3")} <= every, every)
        self.assertEqual(self.discover(self.ns() + "-nobody"), [])

    def test_discover_entry_fields(self):
        ns = self.ns()
        self.req(reg("alice", ns, 5000, ttl=300))
        [p] = self.discover(ns)
        self.assertEqual(set(p), {"ip", "port", "name", "namespace", "ttl", "expires_in"})
        self.assertEqual((p["ip"], p["port"], p["name"], p["namespace"], p["ttl"]),
                         ("127.0.0.1", 5000, "alice", ns, 300))
        self.assertIsInstance(p["expires_in"], int)
        self.assertTrue(290 <= p["expires_in"] <= 300, p)

    def test_discover_falsy_namespace_lists_all(self):
        ns = self.ns()
        self.req(reg("alice", ns))
        for q in ({"type": "DISCOVER", "namespace": ""}, {"type": "DISCOVER", "namespace": None}):
            with self.subTest(q=q):
                r = self.req(q)
                self.assertIn(ns, {p["namespace"] for p in r["peers"]})

    def test_unregister_with_filters(self):
        ns = self.ns()
        for name, port in (("a", 5001), ("b", 5002), ("c", 5003), ("d", 5004)):
            self.assertEqual(self.req(reg(name, ns, port))["status"], "OK")
        self.req(reg("a", ns, 5001), source="127.0.0.2")
        names = lambda: sorted((p["ip"], p["name"]) for p in self.discover(ns))  # noqa: E731
        unreg = {"type": "UNREGISTER", "namespace": ns}

        self.assertEqual(self.req(dict(unreg, name="a")), {"status": "OK"})
        self.assertNotIn(("127.0.0.1", "a"), names())
        self.assertIn(("127.0.0.2", "a"), names())  # another ip's entry stays

        self.assertEqual(self.req(dict(unreg, port=5002)), {"status": "OK"})
        self.assertNotIn(("127.0.0.1", "b"), names())

        self.assertEqual(self.req(dict(unreg, name="c", port="9999")), {"status": "OK"})
        self.assertEqual(self.req(dict(unreg, name="nobody")), {"status": "OK"})
        self.assertEqual(self.req(dict(unreg, namespace=ns + "-other")), {"status": "OK"})
        self.assertEqual(names(), [("127.0.0.1", "c"), ("127.0.0.1", "d"), ("127.0.0.2", "a")])

        self.assertEqual(self.req(dict(unreg, name="c", port="5003")), {"status": "OK"})
        self.assertEqual(self.req(unreg), {"status": "OK"})  # the rest from 127.0.0.1
        self.assertEqual(names(), [("127.0.0.2", "a")])

    def test_unregister_bad_port(self):
        unreg = {"type": "UNREGISTER", "namespace": self.ns(), "name": "a"}
        self.assertEqual(self.req(dict(unreg, port="abc")), err("bad_port (abc)"))
        self.assertEqual(self.req(dict(unreg, port="")), err("bad_port ()"))
        self.assertEqual(self.req(dict(unreg, port=None)), {"status": "OK"})


class TestFraming(ServerCase):
    def test_line_too_long_without_newline(self):
        raw, reset, _ = h.rdv_exchange(self.port, b"x" * 40000)
        self.assertFalse(reset)
        self.assertEqual(h.parse_reply(raw),
                         {"status": "ERROR", "message": "line_too_long", "limit": 32768})

    def test_line_too_long_with_newline(self):
        line = json.dumps(reg("a", self.ns(), pad="x" * 40000)).encode() + b"\n"
        self.assertEqual(self.req(line),
                         {"status": "ERROR", "message": "line_too_long", "limit": 32768})

    def test_line_of_exactly_the_limit_is_accepted(self):
        base = json.dumps(reg("a", self.ns(), pad="")).encode()
        line = base[:-2] + b"x" * (32768 - len(base)) + base[-2:]
        self.assertEqual(len(line), 32768)
        self.assertEqual(self.req(line + b"\n")["status"], "OK")
        self.assertEqual(self.req(line[:-1] + b"x}\n")["message"], "line_too_long")

    def test_crlf_line_end(self):
        line = json.dumps(reg("a", self.ns())).encode() + b"\r\n"
        self.assertEqual(self.req(line)["status"], "OK")

    def test_empty_line(self):
        for line in (b"\n", b"   \r\n", b"\t\n"):
            with self.subTest(line=line):
                self.assertEqual(self.req(line), err("Empty request line"))

    # Issue 13 item 10: the deployed server answers "Unknown command" to
    # invalid JSON, a non-object, a missing and a non-string type alike.
    def test_invalid_json(self):
        for line in (b"{nope\n", b"[1,2]\n", b'"REGISTER"\n', b"42\n", b"null\n",
                     b'{"type":"DISCOVER"\n', b'\xff\xfe{}\n'):
            with self.subTest(line=line):
                self.assertEqual(self.req(line), err("Unknown command"))

    def test_missing_type(self):
        for obj in ({}, {"namespace": "CIC"}, {"type": 5}, {"type": None}, {"type": ""},
                    {"type": ["REGISTER"]}, {"type": {"a": 1}}, {"type": True}):
            with self.subTest(obj=obj):
                self.assertEqual(self.req(obj), err("Unknown command"))

    def test_type_upper_cased_as_python_does(self):
        # str.upper() maps dotless i, long s and the st ligatures to ASCII.
        ns = self.ns()
        for t in ("reg\u0131ster", "regi\u017fter", "regi\ufb06er", "Regi\ufb05er"):
            with self.subTest(t=t):
                self.assertEqual(self.req({"type": t, "namespace": ns, "name": "a",
                                           "port": 1})["status"], "OK")
        self.assertEqual(self.req({"type": "di\u017fcover", "namespace": ns})["peers"][0]["name"],
                         "a")
        self.assertEqual(self.req({"type": "DISCOVER\u00e9"}), err("Unknown command"))

    def test_unknown_command(self):
        for t in ("FOO", "REGISTERX", "HELLO", "x" * 100):
            with self.subTest(t=t):
                self.assertEqual(self.req({"type": t}), err("Unknown command"))

    def test_silent_client_gets_timeout_after_about_one_second(self):
        t0 = time.monotonic()
        raw, reset, _ = h.rdv_exchange(self.port, b"", timeout=5)
        elapsed = time.monotonic() - t0
        self.assertEqual(h.parse_reply(raw),
                         err("Timeout: no data received, closing connection"))
        self.assertTrue(0.8 <= elapsed < 3.0, elapsed)

    def test_unterminated_line_then_eof_is_processed(self):
        line = json.dumps(reg("eof", self.ns(), 5005)).encode()
        r = self.req(line, eof=True)
        self.assertEqual(r["status"], "OK", r)
        self.assertEqual([p["name"] for p in self.discover(self.ns())], ["eof"])

    def test_eof_without_data_is_an_empty_request(self):
        self.assertEqual(self.req(b"", eof=True), err("Empty request line"))

    def test_one_command_per_connection(self):
        two = (json.dumps(reg("first", self.ns())) + "\n" +
               json.dumps(reg("second", self.ns())) + "\n").encode()
        r = self.req(two)  # exactly one reply line, then the server closes
        self.assertEqual(r["status"], "OK")
        self.assertEqual([p["name"] for p in self.discover(self.ns())], ["first"])

    def test_silent_client_does_not_delay_others(self):
        silent = h.connect(self.port)
        with silent:
            t0 = time.monotonic()
            self.assertEqual(self.discover(self.ns()), [])
            self.assertLess(time.monotonic() - t0, 0.5)
            raw, _ = h.read_until_close(silent, timeout=5)
            self.assertEqual(h.parse_reply(raw)["message"],
                             "Timeout: no data received, closing connection")

    def test_byte_by_byte_request(self):
        line = json.dumps(reg("slow", self.ns())).encode() + b"\n"
        with h.connect(self.port) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for i in range(0, len(line), 7):
                s.sendall(line[i:i + 7])
            raw, _ = h.read_until_close(s)
        self.assertEqual(h.parse_reply(raw)["status"], "OK")


def py_dumps_line(obj):
    """What the public server sends: json.dumps() with its defaults + '\n'."""
    return (json.dumps(obj) + "\n").encode()


class TestByteForByte(ServerCase):
    """Issue 13 item 10: every reply is byte-identical to the deployed
    server's json.dumps() output (separators ", " and ": ", ensure_ascii)."""

    def raw(self, req, **kw):
        raw, _, _ = h.rdv_exchange(self.port, req, **kw)
        return raw

    def test_the_four_differential_cases(self):
        want = b'{"status": "ERROR", "message": "Unknown command"}\n'
        for line in (b"{nope\n", b"[1, 2]\n", b'{"namespace": "CIC"}\n', b'{"type": 5}\n',
                     b'"DISCOVER"\n', b"{}\n", b'{"type": null}\n', b'{"type": "FOO"}\n'):
            with self.subTest(line=line):
                self.assertEqual(self.raw(line), want)

    def test_fixed_replies(self):
        ns = self.ns()
        cases = [
            (reg("alice", ns, 5000, ttl=60),
             {"status": "OK", "ttl": 60, "ip": "127.0.0.1", "port": 5000}),
            ({"type": "DISCOVER", "namespace": ns + "-none"}, {"status": "OK", "peers": []}),
            ({"type": "UNREGISTER", "namespace": ns + "-none"}, {"status": "OK"}),
            ({"type": "UNREGISTER", "namespace": ns, "port": "abc"},
             {"status": "ERROR", "message": "bad_port (abc)"}),
            (reg("", ns), err("bad_name")),
            (reg("a", ns, ttl="x"), err("bad_ttl")),
            (reg("a", ""), err("bad_namespace")),
            (reg("a", ns, 0), err("bad_port")),
            (b"\n", err("Empty request line")),
            (b"x" * 40000, {"status": "ERROR", "message": "line_too_long", "limit": 32768}),
        ]
        for req, reply in cases:
            with self.subTest(req=req if not isinstance(req, bytes) else req[:20]):
                self.assertEqual(self.raw(req), py_dumps_line(reply))

    def test_timeout_reply(self):
        self.assertEqual(self.raw(b"", timeout=5),
                         py_dumps_line(err("Timeout: no data received, closing connection")))

    def test_discover_reply_and_non_ascii_names(self):
        ns = self.ns()
        name = "caf\u00e9\U0001F600\"q\\"
        self.req(reg("alice", ns, 5000, ttl=600))
        r = self.raw(reg(name, ns, 5001, ttl=600))
        self.assertEqual(r, py_dumps_line({"status": "OK", "ttl": 600, "ip": "127.0.0.1",
                                           "port": 5001}))
        raw = self.raw({"type": "DISCOVER", "namespace": ns})
        peers = json.loads(raw)["peers"]
        self.assertEqual([p["name"] for p in peers], ["alice", name])
        # Re-dumped by Python, the same bytes: order, separators, escapes.
        self.assertEqual(raw, py_dumps_line(json.loads(raw)))
        self.assertIn(b'"name": "caf\\u00e9\\ud83d\\ude00\\"q\\\\"', raw)
        self.assertEqual(list(peers[0]), ["ip", "port", "name", "namespace", "ttl",
                                          "expires_in"])
        # An all-namespaces reply too.
        raw = self.raw({"type": "DISCOVER"})
        self.assertEqual(raw, py_dumps_line(json.loads(raw)))


class TestPerAddressQuota(ServerCase):
    """Issue 13 item 6: one address holds at most max_per_ip registrations."""

    # Our test clients are all on loopback, exempt by default.
    SETS = ("rate_limit=100000", "max_per_ip=3", "quota_exempt_loopback=false")

    def test_quota_refuses_new_names_from_that_address_only(self):
        ns = self.ns()
        for i in range(3):
            self.assertEqual(self.req(reg("n%d" % i, ns, 5000 + i))["status"], "OK")
        self.assertEqual(self.req(reg("n3", ns, 5003)), err("too_many_registrations_from_ip"))
        # Another namespace counts too: the quota is per address.
        self.assertEqual(self.req(reg("n3", ns + "-b", 5003)),
                         err("too_many_registrations_from_ip"))
        # Renewing a held name works; another address is not affected.
        self.assertEqual(self.req(reg("n1", ns, 6001))["port"], 6001)
        self.assertEqual(self.req(reg("n3", ns, 5003), source="127.0.0.2")["status"], "OK")
        # Unregistering frees a place.
        self.assertEqual(self.req({"type": "UNREGISTER", "namespace": ns, "name": "n0"}),
                         {"status": "OK"})
        self.assertEqual(self.req(reg("n3", ns, 5003))["status"], "OK")
        self.assertEqual(sorted((p["ip"], p["name"]) for p in self.discover(ns)),
                         [("127.0.0.1", "n1"), ("127.0.0.1", "n2"), ("127.0.0.1", "n3"),
                          ("127.0.0.2", "n3")])


class TestDefaultQuota(ServerCase):
    """The issue's flood with the shipped default: one address stops at 256."""

    SETS = ("rate_limit=100000", "quota_exempt_loopback=false")

    def test_one_address_gets_256_registrations(self):
        ns, src = self.ns(), "127.0.0.9"
        replies = [self.req(reg("n%d" % i, ns, 5000), source=src) for i in range(257)]
        self.assertEqual([r["status"] for r in replies[:256]], ["OK"] * 256)
        self.assertEqual(replies[256], err("too_many_registrations_from_ip"))
        self.assertEqual(len(self.discover(ns)), 256)
        self.assertEqual(self.req(reg("other", ns, 5000))["status"], "OK")


class TestOutOfDescriptors(unittest.TestCase):
    """Descriptor exhaustion against the rendezvous role: accept pauses
    instead of spinning, and the server serves again once they come back."""

    def test_accept_pauses_instead_of_spinning(self):
        p = h.start(["prlimit", "--nofile=32", h.binary("CHATP2PD"), "--rendezvous-server",
                     "--listen", "127.0.0.1", "--port", "0",
                     "--set", "rendezvous_server.rate_limit=100000",
                     "--set", "rendezvous_server.first_line_timeout=30"], name="rendezvous")
        port = int(p.wait_stdout(h.LISTENING_RE, 10).group(2))
        flood = []
        for _ in range(60):  # silent: each holds a descriptor for 30 s
            try:
                flood.append(h.connect(port))
            except OSError:
                break

        def pauses():
            return p.stderr_text().count("pausing")

        def cpu_ticks():
            with open("/proc/%d/stat" % p.pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return int(fields[11]) + int(fields[12])

        h.wait_for(pauses, 10, what="the accept pause")
        # The backlog holds connections it cannot take: each resume fails
        # and pauses again.  CPU over three such rounds.
        n0, t0, c0 = pauses(), time.monotonic(), cpu_ticks()
        h.wait_for(lambda: pauses() >= n0 + 3, 10, what="three more pauses")
        used = (cpu_ticks() - c0) / os.sysconf("SC_CLK_TCK")
        spent = time.monotonic() - t0
        self.assertLess(used, 0.5 * spent,
                        "spinning on accept(): %.2f s of CPU in %.2f s" % (used, spent))
        for s in flood:
            s.close()
        h.wait_for(lambda: h.rdv_request(port, {"type": "DISCOVER"})["status"] == "OK", 10,
                   what="a DISCOVER after the flood")
        p.check_clean_exit(self)


class TestRestart(unittest.TestCase):
    """Issue 13 item 11: registrations survive a restart (clean or a crash);
    what expired while the server was down is gone.  Issue 18 finding 5:
    they are in a SQLite database (registrations.db), committed before the
    reply, so a REGISTER answered OK survives a SIGKILL at once after it; a
    peers.json of an earlier version is imported once."""

    def setUp(self):
        self.state = os.path.join(h.tmpdir(), "state-" + self.id().rsplit(".", 1)[-1])
        self.file = os.path.join(self.state, "peers.json")

    def start(self):
        return h.start_rendezvous("rate_limit=100000", "state_dir=" + self.state)

    def names(self, srv):
        r = h.rdv_request(srv.port, {"type": "DISCOVER", "namespace": "R"})
        return {p["name"]: p for p in r["peers"]}

    def test_registrations_survive_a_crash_expired_ones_are_gone(self):
        srv = self.start()
        self.assertEqual(h.rdv_request(srv.port, reg("keep", "R", 5000, ttl=3600))["status"], "OK")
        t_short = time.time()
        self.assertEqual(h.rdv_request(srv.port, reg("short", "R", 5001, ttl=2))["status"], "OK")
        srv.stop(signal.SIGKILL)  # a crash: no chance to save at exit
        # "short" expires while the server is down.
        h.wait_for(lambda: time.time() > t_short + 2.5, timeout=10, what="short's expiry")
        srv2 = self.start()
        peers = self.names(srv2)
        self.assertEqual(sorted(peers), ["keep"])
        self.assertEqual(peers["keep"]["port"], 5000)
        self.assertEqual(peers["keep"]["ip"], "127.0.0.1")
        self.assertEqual(peers["keep"]["ttl"], 3600)
        self.assertTrue(3500 <= peers["keep"]["expires_in"] <= 3600, peers["keep"])
        srv2.check_clean_exit(self)

    def test_ok_reply_survives_sigkill_at_once(self):
        # 905dabf wrote peers.json about 1 s after a change: a SIGKILL in
        # that second lost registrations already answered OK.
        srv = self.start()
        for i in range(20):
            self.assertEqual(h.rdv_request(srv.port, reg("k%02d" % i, "R", 6000 + i,
                                                         ttl=600))["status"], "OK")
        # One more, and the SIGKILL as soon as its reply is read.
        s = h.connect(srv.port)
        s.sendall(h.encode_request(reg("last", "R", 6100, ttl=600)))
        reply = b""
        while b"\n" not in reply:
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
        srv.popen.kill()
        s.close()
        self.assertEqual(h.parse_reply(reply)["status"], "OK")
        srv.wait(5)
        srv2 = self.start()
        names = self.names(srv2)
        self.assertEqual(sorted(names), sorted(["k%02d" % i for i in range(20)] + ["last"]))
        self.assertEqual(names["last"]["port"], 6100)
        # An UNREGISTER answered OK is as durable.
        self.assertEqual(h.rdv_request(srv2.port, {"type": "UNREGISTER", "namespace": "R",
                                                   "name": "last"}), {"status": "OK"})
        srv2.popen.kill()
        srv2.wait(5)
        srv3 = self.start()
        self.assertNotIn("last", self.names(srv3))
        self.assertEqual(len(self.names(srv3)), 20)
        srv3.check_clean_exit(self)

    def test_change_just_before_sigterm_is_saved_at_exit(self):
        srv = self.start()
        self.assertEqual(h.rdv_request(srv.port, reg("a", "R", 5000, ttl=600))["status"], "OK")
        self.assertEqual(h.rdv_request(srv.port, reg("b", "R", 5001, ttl=600))["status"], "OK")
        self.assertEqual(h.rdv_request(srv.port, {"type": "UNREGISTER", "namespace": "R",
                                                  "name": "a"}), {"status": "OK"})
        srv.check_clean_exit(self)
        srv2 = self.start()
        self.assertEqual(sorted(self.names(srv2)), ["b"])
        srv2.check_clean_exit(self)

    def test_peers_json_is_imported_once(self):
        os.makedirs(self.state, exist_ok=True)
        now = time.time()
        with open(self.file, "w") as f:
            json.dump([{"ip": "127.0.0.1", "namespace": "R", "name": "old", "port": 5000,
                        "ttl": 600, "expires_at": now + 500},
                       {"ip": "127.0.0.1", "namespace": "R", "name": "gone", "port": 5001,
                        "ttl": 600, "expires_at": now - 5}], f)
        srv = self.start()
        peers = self.names(srv)
        self.assertEqual(sorted(peers), ["old"])
        self.assertTrue(490 <= peers["old"]["expires_in"] <= 500, peers["old"])
        self.assertFalse(os.path.exists(self.file))
        self.assertTrue(os.path.exists(self.file + ".imported"))
        # Gone from the database: not imported again at the next start.
        self.assertEqual(h.rdv_request(srv.port, {"type": "UNREGISTER", "namespace": "R",
                                                  "name": "old"}), {"status": "OK"})
        srv.popen.kill()
        srv.wait(5)
        srv2 = self.start()
        self.assertEqual(self.names(srv2), {})
        srv2.check_clean_exit(self)

    def test_nothing_answered_ok_is_lost_when_the_disk_refuses(self):
        # A file size limit (RLIMIT_FSIZE, SIGXFSZ ignored) makes the
        # database's writes fail after a few dozen commits, as a full disk
        # would.  Every REGISTER answered OK must be there after a SIGKILL
        # and a restart; those that could not be stored get no reply.
        # 905dabf answered OK and lost them (its peers.json write failed).
        os.makedirs(self.state, exist_ok=True)
        wrap = ("import os, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
                "os.execvp(sys.argv[1], sys.argv[1:])")
        srv = h.start([sys.executable, "-c", wrap, "prlimit", "--fsize=120000",
                       h.binary("CHATP2PD"), "--rendezvous-server", "--listen", "127.0.0.1",
                       "--port", "0", "--set", "rendezvous_server.rate_limit=100000",
                       "--set", "rendezvous_server.state_dir=" + self.state],
                      name="rendezvous")
        port = int(srv.wait_stdout(h.LISTENING_RE, 10).group(2))
        answered, refused = [], 0
        for i in range(300):
            name = "d%03d" % i
            try:
                r = h.rdv_request(port, reg(name, "R", 7000 + i, ttl=600))
            except (OSError, ValueError, AssertionError):
                r = None
            if r is not None and r.get("status") == "OK":
                answered.append(name)
            else:
                refused += 1
            if refused >= 3:
                break
        h.log("%d answered OK, %d without a reply" % (len(answered), refused))
        srv.popen.kill()
        srv.wait(5)
        srv2 = self.start()
        kept = set(self.names(srv2))
        self.assertEqual(set(answered) - kept, set(),
                         "answered OK but lost: %d of %d" % (len(set(answered) - kept),
                                                             len(answered)))
        srv2.check_clean_exit(self)
        self.assertGreater(len(answered), 0)
        self.assertGreater(refused, 0, "the size limit never bit")
        self.assertIn("registrations not saved", srv.stderr_text())

    def test_torn_file_is_moved_aside(self):
        os.makedirs(self.state, exist_ok=True)
        with open(self.file, "w") as f:
            f.write('[\n  {"ip": "127.0.0.1", "namespace": "R", "na')
        srv = self.start()
        self.assertEqual(self.names(srv), {})
        self.assertTrue(os.path.exists(self.file + ".bad"))
        self.assertEqual(h.rdv_request(srv.port, reg("new", "R", 5000))["status"], "OK")
        srv.popen.kill()
        srv.wait(5)
        srv2 = self.start()
        self.assertEqual(sorted(self.names(srv2)), ["new"])
        srv2.check_clean_exit(self)


def concurrent_requests(port, requests, timeout=20.0):
    """Open one connection per request, all at once; send every request, then
    collect every reply.  Returns the parsed replies in order."""
    socks = [h.connect(port) for _ in requests]
    try:
        sel = selectors.DefaultSelector()
        bufs = {}
        for i, (s, r) in enumerate(zip(socks, requests)):
            s.sendall(h.encode_request(r))
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ, i)
            bufs[i] = bytearray()
        open_ = len(socks)
        deadline = time.monotonic() + timeout
        while open_:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("%d of %d replies missing" % (open_, len(socks)))
            for key, _ in sel.select(left):
                try:
                    b = key.fileobj.recv(65536)
                except BlockingIOError:
                    continue
                if b:
                    bufs[key.data] += b
                else:
                    sel.unregister(key.fileobj)
                    open_ -= 1
        sel.close()
        return [h.parse_reply(bytes(bufs[i])) for i in range(len(socks))]
    finally:
        for s in socks:
            s.close()


class TestLoad(ServerCase):
    # Hundreds of registrations, all from 127.0.0.1: loopback is not held to
    # max_per_ip by default (rendezvous_server.quota_exempt_loopback).
    def test_200_clients_at_once(self):
        ns = self.ns()
        replies = concurrent_requests(self.port,
                                      [reg("peer%03d" % i, ns, 10000 + i) for i in range(200)])
        self.assertEqual([r["status"] for r in replies], ["OK"] * 200)
        peers = self.discover(ns)
        self.assertEqual(len(peers), 200)
        self.assertEqual({p["port"] for p in peers}, set(range(10000, 10200)))

    def test_large_discover_reply_streams_whole(self):
        # ~100 KB of reply: several of the server's output pieces.
        ns = self.ns()[:40] + "-" + "n" * 23
        names = ["%03d" % i + "x" * 61 for i in range(400)]
        for start in range(0, 400, 200):
            replies = concurrent_requests(self.port, [reg(n, ns, 20000 + i) for i, n in
                                                      enumerate(names[start:start + 200])])
            self.assertEqual({r["status"] for r in replies}, {"OK"})
        raw, reset, _ = h.rdv_exchange(self.port, {"type": "DISCOVER", "namespace": ns},
                                       timeout=10)
        self.assertFalse(reset)
        self.assertGreater(len(raw), 65536)
        peers = h.parse_reply(raw)["peers"]
        self.assertEqual(sorted(p["name"] for p in peers), sorted(names))

    def test_client_that_never_reads_does_not_block_others(self):
        ns = self.ns()
        self.req(reg("x" * 64, ns))
        lazy = h.connect(self.port)
        with lazy:
            lazy.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            lazy.sendall(b'{"type":"DISCOVER"}\n')
            t0 = time.monotonic()
            self.assertEqual(len(self.discover(ns)), 1)
            self.assertLess(time.monotonic() - t0, 0.5)


class TestIPv6(ServerCase):
    LISTEN = "::1"

    @classmethod
    def setUpClass(cls):
        if not h.ipv6_loopback_available():
            raise unittest.SkipTest("no IPv6 loopback")
        super().setUpClass()

    def test_register_over_ipv6(self):
        r = self.req(reg("six", "v6", 5000))
        self.assertEqual(r, {"status": "OK", "ttl": 7200, "ip": "::1", "port": 5000})
        self.assertEqual([(p["ip"], p["name"]) for p in self.discover("v6")], [("::1", "six")])


class TestRateLimit(ServerCase):
    SETS = ("rate_limit=5", "rate_window=60", "block_time=3")

    def exchange(self, source, req=None):
        return h.rdv_exchange(self.port, req or {"type": "DISCOVER", "namespace": "rl"},
                              source=source)

    def test_limit_block_message_other_ip_and_lift(self):
        src = "127.0.0.3"
        for i in range(5):
            raw, reset, _ = self.exchange(src)
            self.assertEqual(h.parse_reply(raw)["status"], "OK", (i, raw))
        raw, reset, _ = self.exchange(src)
        self.assertEqual(raw, b"", "the connection over the limit gets no reply")

        raw, reset, cport = self.exchange(src)
        r = h.parse_reply(raw)
        self.assertEqual(r["status"], "ERROR")
        m = ERR_BLOCKED.match(r["message"])
        self.assertIsNotNone(m, r["message"])
        self.assertEqual((m.group(1), int(m.group(2)), int(m.group(3))), (src, cport, 5))
        self.assertTrue(1 <= int(m.group(4)) <= 3, m.group(4))

        # Another source ip has its own budget.
        raw, _, _ = self.exchange("127.0.0.4")
        self.assertEqual(h.parse_reply(raw)["status"], "OK")

        # Blocked attempts do not extend the block: polling gets back in.
        def served():
            raw, _, _ = self.exchange(src)
            return h.parse_reply(raw)["status"] == "OK"
        t0 = time.monotonic()
        h.wait_for(served, timeout=6, interval=0.25, what="the block to be lifted")
        self.assertLess(time.monotonic() - t0, 4.5)

        # And the ip starts with a fresh window.
        for i in range(4):
            raw, _, _ = self.exchange(src)
            self.assertEqual(h.parse_reply(raw)["status"], "OK", i)


class TestMaxClients(ServerCase):
    SETS = ("rate_limit=100000", "max_clients=2", "first_line_timeout=1")

    def test_over_max_clients_closed_at_once(self):
        a, b = h.connect(self.port), h.connect(self.port)
        with a, b:
            # Both are held by the server once a third one is refused.
            def refused():
                raw, reset, _ = h.rdv_exchange(self.port, {"type": "DISCOVER"}, timeout=2)
                return raw == b""
            h.wait_for(refused, timeout=3, what="a third client to be refused")
        # Once the two are gone, clients are served again.
        h.wait_for(lambda: self.req({"type": "DISCOVER"})["status"] == "OK", timeout=5,
                   what="service after the two clients left")



def wait_until(t, what):
    """Poll the monotonic clock until t: for waits where the passing of time
    itself is what is tested (a rate window sliding, a block running out)."""
    h.wait_for(lambda: time.monotonic() >= t, timeout=max(0.0, t - time.monotonic()) + 5,
               interval=0.02, what=what)


class TestRateWindow(ServerCase):
    """The rate limit's window slides, with numbers small enough to watch:
    5 connections per 2 s, then blocked for 3 s.  Each test plays its own
    source ip (the budget is per ip)."""

    LIMIT, WINDOW, BLOCK = 5, 2.0, 3.0
    SETS = ("rate_limit=5", "rate_window=2", "block_time=3")

    def exchange(self, source):
        return h.rdv_exchange(self.port, {"type": "DISCOVER", "namespace": "rl"},
                              source=source)

    def served(self, source, n, what):
        for i in range(n):
            raw, _, _ = self.exchange(source)
            self.assertEqual(h.parse_reply(raw)["status"], "OK", "%s #%d: %r" % (what, i, raw))

    def over(self, source):
        """The connection over the limit: closed without a reply."""
        raw, _, _ = self.exchange(source)
        self.assertEqual(raw, b"", "the connection over the limit gets no reply")

    def test_window_slides_no_block(self):
        src = "127.0.1.5"
        self.served(src, self.LIMIT, "first batch")
        t_end = time.monotonic()  # the server saw all five before this
        wait_until(t_end + self.WINDOW + 0.15, "the first batch to leave the window")
        self.served(src, self.LIMIT, "after the window")  # not blocked, not refused
        # ...and these five do count: one more is over the limit.
        self.over(src)

    def test_window_is_sliding_not_fixed(self):
        src = "127.0.1.6"
        t_a = time.monotonic()
        self.served(src, 3, "batch A")
        t_a_end = time.monotonic()
        wait_until(t_a + 0.8, "batch B's turn")
        t_b = time.monotonic()
        self.served(src, 2, "batch B")
        # A leaves the window, B stays in it: room for exactly 3 more.
        wait_until(t_a_end + self.WINDOW + 0.15, "batch A to leave the window")
        self.served(src, 3, "batch C")
        late = time.monotonic() - (t_b + self.WINDOW)
        if late >= 0:
            self.skipTest("too slow to tell (batch B left the window %.2f s ago)" % late)
        # A window restarted when A's ended would still have room here.
        self.over(src)

    def test_block_lifts_after_block_time_counting_down(self):
        src = "127.0.1.7"
        self.served(src, self.LIMIT, "budget")
        t0 = time.monotonic()
        self.over(src)
        t1 = time.monotonic()  # blocked from a moment in [t0, t1] for BLOCK s
        seen = []  # (time asked, time answered, N of "lifted in N seconds")
        lifted = None
        deadline = t1 + self.BLOCK + 3
        while lifted is None:
            self.assertLess(time.monotonic(), deadline, "block not lifted; saw N = %r" % [n for _, _, n in seen])
            ta = time.monotonic()
            raw, _, cport = self.exchange(src)
            tb = time.monotonic()
            r = h.parse_reply(raw)
            if r["status"] == "OK":
                lifted = ta
                break
            m = ERR_BLOCKED.match(r.get("message", ""))
            self.assertIsNotNone(m, r)
            self.assertEqual((m.group(1), int(m.group(2)), int(m.group(3))),
                             (src, cport, self.LIMIT))
            seen.append((ta, tb, int(m.group(4))))
            # Poll the block the way a client would: a few times a second.
            wait_until(tb + 0.15, "the next look at the block")
        ns = [n for _, _, n in seen]
        h.log("block countdown: %s; lifted %.2f s after the block"
              % (ns, lifted - t0))
        # Counts down whole seconds (rounded up) from block_time to 1...
        self.assertEqual(ns[0], int(self.BLOCK), ns)
        self.assertEqual(ns, sorted(ns, reverse=True), ns)
        self.assertEqual(sorted(set(ns)), list(range(1, int(self.BLOCK) + 1)), ns)
        for ta, tb, n in seen:
            # n = ceil(blocked_until - now), blocked_until in [t0, t1] + BLOCK
            self.assertLessEqual(n, (t1 + self.BLOCK) - ta + 1, (ta - t0, n))
            self.assertGreaterEqual(n, (t0 + self.BLOCK) - tb, (tb - t0, n))
        # ...the polling did not extend the block, and it ends on time.
        self.assertGreaterEqual(lifted, t0 + self.BLOCK - 0.3)
        self.assertLess(lifted, t1 + self.BLOCK + 0.6)
        # Afterwards a whole fresh budget.
        self.served(src, self.LIMIT - 1, "after the block")


def rdv_limit_max_ips():
    """RDV_LIMIT_MAX_IPS from the source tree (the cap is not configurable)."""
    src = os.environ.get("CHATP2P_SRC") or os.path.join(os.path.dirname(__file__), "..", "..")
    try:
        with open(os.path.join(src, "chatp2pd", "rdv_limit.h")) as f:
            m = re.search(r"#define\s+RDV_LIMIT_MAX_IPS\s+(\d+)", f.read())
        if m:
            return int(m.group(1))
    except OSError:
        pass
    return 16384


def flood_source(i):
    """The i-th distinct flood source, 127.100.0.1 onwards (254 per /24)."""
    return "127.%d.%d.%d" % (100 + i // 64516, (i // 254) % 254 + 1, i % 254 + 1)


class TestFlood(ServerCase):
    """Connections from far more distinct source ips than the rate limiter
    keeps: its table is capped (least recently seen ip evicted), so the
    server's memory stays flat however many come, and it goes on serving."""

    # Unbounded, every ip would cost at least a record (~150 B) and its ring
    # of times (64 B) plus allocator overhead: ~7.5 MB for 2 x 16384 ips.
    GROWTH_LIMIT_KB = 2048
    TOTAL_LIMIT_KB = 48 * 1024

    @classmethod
    def setUpClass(cls):
        # The public numbers (50 per 60 s, block 60 s).  A small ASan
        # quarantine: freed memory is otherwise held back (256 MB by default)
        # and RSS would grow with every connection whatever the table does.
        asan = os.environ.get("ASAN_OPTIONS", "")
        env = {"ASAN_OPTIONS": (asan + ":" if asan else "") + "quarantine_size_mb=1"}
        cls.srv = h.start_daemon(["--rendezvous-server", "--listen", cls.LISTEN, "--port", "0"],
                                 name="rendezvous-flood", env=env)
        cls.port = cls.srv.port

    def flood(self, first, count):
        """One connection from each of count distinct sources, closed at once
        (the server counts it when it accepts it).  Every 256th is a full
        DISCOVER: its reply means the server has accepted everything before
        it (one listening queue, first in first out), so the flood never
        overruns the backlog and ends with all of it seen."""
        for i in range(first, first + count):
            if i % 256 == 255 or i == first + count - 1:
                r = h.rdv_request(self.port, {"type": "DISCOVER", "namespace": "flood"},
                                  source=flood_source(i))
                self.assertEqual(r, {"status": "OK", "peers": []}, i)
                continue
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind((flood_source(i), 0))
                s.connect((self.LISTEN, self.port))
            finally:
                s.close()

    def test_flood_of_distinct_ips_memory_stays_bounded(self):
        cap = rdv_limit_max_ips()
        pid = self.srv.pid
        blocked = "127.0.2.1"
        for i in range(50):
            self.assertEqual(self.req({"type": "DISCOVER"}, source=blocked)["status"], "OK", i)
        raw, _, _ = h.rdv_exchange(self.port, {"type": "DISCOVER"}, source=blocked)
        self.assertEqual(raw, b"")
        self.assertRegex(self.req({"type": "DISCOVER"}, source=blocked)["message"],
                         r"lifted in \d+ seconds")
        rss0 = h.vm_rss_kb(pid)

        t0 = time.monotonic()
        n1 = cap + 2048  # the table is full and evicting
        self.flood(0, n1)
        rss1 = h.vm_rss_kb(pid)
        n2 = 2 * cap  # every ip in it replaced twice over
        self.flood(n1, n2)
        rss2 = h.vm_rss_kb(pid)
        h.log("flood: %d distinct ips in %.1f s; VmRSS %d -> %d -> %d kB"
              % (n1 + n2, time.monotonic() - t0, rss0, rss1, rss2))

        self.assertLess(rss2 - rss1, self.GROWTH_LIMIT_KB,
                        "VmRSS grew %d kB over the last %d ips" % (rss2 - rss1, n2))
        self.assertLess(rss2 - rss0, self.TOTAL_LIMIT_KB)
        # The table really is capped: the ip blocked before the flood, the
        # least recently seen of all, has been forgotten (block included).
        self.assertEqual(self.req({"type": "DISCOVER"}, source=blocked)["status"], "OK")
        # Still serving.
        r = self.req(reg("survivor", "flood", 5000, ttl=60))
        self.assertEqual(r, {"status": "OK", "ttl": 60, "ip": "127.0.0.1", "port": 5000})
        self.assertEqual([(p["ip"], p["name"]) for p in self.discover("flood")],
                         [("127.0.0.1", "survivor")])
        self.assertTrue(self.srv.alive())

if __name__ == "__main__":
    unittest.main(verbosity=2)
