"""Chat nodes for end-to-end tests: a rendezvous server of our own plus
chatp2pd nodes with short intervals, each observed and driven through its
control socket (JSON-RPC lines), never through its logs.

    rdv = harness.start_rendezvous("rate_limit=100000")
    a = Node("alice", rdv)            # started, control socket ready
    a.call("status")                  # -> result dict (raises CtlError)
    with a.events(["message"]) as ev: # a subscriber
        ev.wait(lambda e: e["type"] == "message")
"""

import json
import os
import socket
import threading
import time

import fakepeer
import harness

# Short intervals so tests see discovery, keep-alive and reconnection in
# seconds.  Tests override what they need with extra sets.
FAST = [
    "rendezvous.discover_interval=1",
    "rendezvous.register_backoff_base=0.2",
    "keepalive.ping_interval=1",
    "keepalive.ping_timeout=0.5",
    "keepalive.max_ping_failures=3",
    "reconnection.check_interval=1",
    "reconnection.backoff_base=0.3",
    "reconnection.backoff_max=1",
    "peer_connection.backoff_base=0.3",
    "network.ack_timeout=3",
    "limits.rendezvous_timeout=2",
    "limits.bye_timeout=1",
    "logging.log_to_file=false",
    "logging.level=DEBUG",
]


class CtlError(Exception):
    def __init__(self, error):
        super().__init__("%s (%s)" % (error.get("message"), (error.get("data") or {}).get("reason")))
        self.error = error
        self.code = error.get("code")
        self.reason = (error.get("data") or {}).get("reason")


class Ctl:
    """One controller connection: call() matches answers by id; events
    (notifications) are queued for events()/wait_event()."""

    def __init__(self, path, timeout=10.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b""
        self.next_id = 0
        self.answers = {}
        self.notes = []

    def close(self):
        self.sock.close()

    def _read_line(self, deadline):
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no line from the control socket")
            self.sock.settimeout(left)
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("control socket closed")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def _pump(self, deadline):
        msg = self._read_line(deadline)
        if "id" in msg and "method" not in msg:
            self.answers[msg["id"]] = msg
        else:
            self.notes.append(msg)

    def request(self, method, params=None):
        """Send a request without waiting; returns its id."""
        self.next_id += 1
        req = {"jsonrpc": "2.0", "id": self.next_id, "method": method}
        if params is not None:
            req["params"] = params
        self.sock.sendall((json.dumps(req) + "\n").encode())
        return self.next_id

    def answer(self, rid, timeout=10.0):
        deadline = time.monotonic() + timeout
        while rid not in self.answers:
            self._pump(deadline)
        msg = self.answers.pop(rid)
        if "error" in msg:
            raise CtlError(msg["error"])
        return msg["result"]

    def call(self, method, params=None, timeout=10.0):
        return self.answer(self.request(method, params), timeout)

    def wait_event(self, pred, timeout=10.0, what="event"):
        """The first queued or arriving event (params) for which pred holds;
        the events before it are consumed."""
        deadline = time.monotonic() + timeout
        while True:
            while self.notes:
                n = self.notes.pop(0)
                if n.get("method") == "event" and pred(n["params"]):
                    return n["params"]
            try:
                self._pump(deadline)
            except TimeoutError:
                raise AssertionError("timed out after %.1f s waiting for %s" % (timeout, what))


class Node:
    """A chatp2pd node registered at rdv, with its control socket."""

    _seq = 0

    def __init__(self, name, rdv, namespace="CIC", sets=(), args=(), start=True):
        self.name = name
        self.namespace = namespace
        self.peer_id = "%s@%s" % (name, namespace)
        self.rdv = rdv
        self.sock_path = os.path.join(harness.tmpdir(), "%s-%s.sock" % (name, namespace))
        self.sets = list(FAST) + list(sets)
        self.args = list(args)
        self.port = 0
        self.proc = None
        # Its own inbox/outbox database, kept across restarts of this node.
        Node._seq += 1
        self.state_dir = os.path.join(harness.tmpdir(), "state-%s-%s-%d" % (name, namespace, Node._seq))
        if start:
            self.start()

    def argv(self):
        a = ["--name", self.name, "--namespace", self.namespace, "--listen", "127.0.0.1",
             "--port", str(self.port), "--rendezvous", "127.0.0.1:%d" % self.rdv.port,
             "--control", self.sock_path, "--set", "node.state_dir=" + self.state_dir]
        for s in self.sets:
            a += ["--set", s]
        return a + self.args

    def start(self):
        self.proc = harness.start_daemon(self.argv(), name=self.name)
        self.port = self.proc.port  # restarts keep the same port
        return self

    def ctl(self):
        return Ctl(self.sock_path)

    def call(self, method, params=None, timeout=10.0):
        c = self.ctl()
        try:
            return c.call(method, params, timeout)
        finally:
            c.close()

    def events(self, classes=None, **extra):
        c = self.ctl()
        params = dict(extra)
        if classes is not None:
            params["events"] = classes
        c.call("subscribe", params)
        return c

    def peer(self, peer_id):
        for p in self.call("peers")["peers"]:
            if p["peer_id"] == peer_id:
                return p
        return None

    def state_of(self, peer_id):
        p = self.peer(peer_id)
        return p["state"] if p else None

    def connections_to(self, peer_id):
        return [c for c in self.call("conn")["connections"]
                if c["peer_id"] == peer_id and c["state"] == "established"]

    def wait_active(self, *peer_ids, timeout=15.0):
        for pid in peer_ids:
            harness.wait_for(lambda: self.state_of(pid) == "ACTIVE", timeout,
                             what="%s to see %s ACTIVE" % (self.peer_id, pid))

    def stop(self, testcase=None, expect=0):
        return self.proc.check_clean_exit(testcase, expect=expect)

    def kill9(self):
        self.proc.popen.kill()
        self.proc.wait(5)


def mesh(rdv, names, namespace="CIC", sets=()):
    """Start nodes and wait until every pair is connected both ways."""
    nodes = [Node(n, rdv, namespace, sets) for n in names]
    for a in nodes:
        a.wait_active(*[b.peer_id for b in nodes if b is not a])
    return nodes


class NodesAndFakes:
    """Per-test fixture (mix into a unittest.TestCase before it): a fresh
    rendezvous server, and nodes and fake peers made through node() and
    fake(), all stopped when the test ends."""

    def setUp(self):
        self.rdv = harness.start_rendezvous("rate_limit=100000")
        self.fakes = []
        self.nodes = []

    def tearDown(self):
        for n in self.nodes:
            if n.proc.alive():
                n.stop()
        for f in self.fakes:
            f.close()
        self.rdv.check_clean_exit()

    def fake(self, *args, **kw):
        f = fakepeer.FakePeer(*args, **kw)
        self.fakes.append(f)
        return f

    def node(self, *args, **kw):
        n = Node(*args, **kw)
        self.nodes.append(n)
        return n
