"""Fake chat peers for interop tests (Python stdlib, one thread per socket):
they speak the peer protocol the way the other implementations PROTOCOL.md
section 4 describes, and record everything they see.

    fake = FakePeer("oneline", first_line_only=True)   # listens at once
    fake.register(rdv)                                  # the node will dial it
    conn = fake.dial(node.port)                         # or it dials the node
    m = fake.wait_msg(lambda c, m: m["type"] == "SEND")
    fake.close()

Behaviour switches (constructor arguments, or attributes set later):
- first_line_only: handle only the first line of each recv(), drop the rest
  (the recv()s are recorded in conn.chunks either way: (time, lines, bytes)).
- features: what HELLO / HELLO_OK advertise (None: the field is left out).
- ack: "full" (ACK with timestamp and ttl), "bare" ({"type","msg_id"} only),
  or None (never ACK); drop_first_copy: ignore the first copy of each SEND.
- auto_pong: answer PINGs.
- bye_ok: how to answer BYE: "full", "bare" ({"type":"BYE_OK"}), "new_id"
  (a BYE_OK with a msg_id of its own) or None (never).
- hello_ok(conn, hello): the HELLO_OK line to answer (override for odd peers).
- read_after_handshake: False stops reading once the handshake is done.
Every message the node sends is checked against the strict rules of
PROTOCOL.md (all fields, version "1.0", ttl 1, boolean require_ack, ...);
violations are collected in fake.problems.
"""

import datetime
import json
import re
import socket
import threading
import time
import uuid

import harness

TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")

# Fields every message of a type must carry when we (chatp2pd) send it.
REQUIRED = {
    "HELLO": ("peer_id", "version", "features", "ttl"),
    "HELLO_OK": ("peer_id", "version", "features", "ttl"),
    "PING": ("msg_id", "timestamp", "ttl"),
    "PONG": ("msg_id", "timestamp", "ttl"),
    "SEND": ("msg_id", "src", "dst", "payload", "require_ack", "ttl"),
    "ACK": ("msg_id", "timestamp", "ttl"),
    "PUB": ("msg_id", "src", "dst", "payload", "require_ack", "ttl"),
    "BYE": ("msg_id", "src", "dst", "reason", "ttl"),
    "BYE_OK": ("msg_id", "src", "dst", "ttl"),
}


def new_id():
    return str(uuid.uuid4())


def now_ts():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def encode(obj):
    if isinstance(obj, (bytes, bytearray)):
        return bytes(obj)
    return (json.dumps(obj) + "\n").encode("utf-8")


def _type_of(raw):
    try:
        return json.loads(raw.decode("utf-8")).get("type")
    except (ValueError, AttributeError):
        return None


def is_probe(types):
    """The node's pipeline probe: two PINGs in one write (PROTOCOL.md §4)."""
    return types == ["PING", "PING"]


def strict_problems(m):
    """What is wrong with a message chatp2pd sent (empty list: nothing)."""
    t = m.get("type")
    if t not in REQUIRED:
        return ["unknown type %r" % t]
    out = ["%s without %s" % (t, f) for f in REQUIRED[t] if f not in m]
    if "ttl" in m and (m["ttl"] != 1 or isinstance(m["ttl"], bool)):
        out.append("%s with ttl %r" % (t, m["ttl"]))
    if t in ("HELLO", "HELLO_OK") and m.get("version") != "1.0":
        out.append("%s with version %r" % (t, m.get("version")))
    if "require_ack" in m and not isinstance(m["require_ack"], bool):
        out.append("%s with require_ack %r" % (t, m["require_ack"]))
    if t == "PUB" and m.get("require_ack") is not False:
        out.append("PUB asking for an ACK")
    if "timestamp" in m and not (isinstance(m["timestamp"], str) and TS_RE.match(m["timestamp"])):
        out.append("%s with timestamp %r" % (t, m["timestamp"]))
    return out


class FakeConn:
    """One connection of a fake peer.  role: "in" (the fake accepted it) or
    "out" (the fake dialled it)."""

    def __init__(self, peer, sock, role):
        self.peer = peer
        self.sock = sock
        self.role = role
        self.local_port = sock.getsockname()[1]
        self.msgs = []          # (monotonic time, message dict)
        self.chunks = []        # (monotonic time, newline count, bytes) per recv()
        self.multi = []         # types of the lines of each recv() that held several
        self.bad = []           # undecodable first lines
        self.established = False
        self.remote_id = None   # peer_id of the HELLO / HELLO_OK received
        self.eof = False        # the other side closed (or reset)
        self.eof_at = None      # monotonic time of the EOF
        self.closed_by_us = False
        self.stop_reading = False
        self._wlock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    # -- output
    def send(self, obj):
        """Write one message (dict) or raw bytes in one sendall; False if the
        connection is gone."""
        data = encode(obj)
        try:
            with self._wlock:
                self.sock.sendall(data)
            return True
        except OSError:
            return False

    def close(self):
        if self.closed_by_us:
            return
        self.closed_by_us = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes our reader
        except OSError:
            pass
        self.sock.close()

    @property
    def open(self):
        return not self.eof and not self.closed_by_us

    # -- input
    def _run(self):
        buf = b""
        while not self.stop_reading:
            try:
                data = self.sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                break
            t = time.monotonic()
            with self.peer.cond:
                self.chunks.append((t, data.count(b"\n"), len(data)))
                if data.count(b"\n") > 1:
                    self.multi.append([_type_of(x) for x in data.split(b"\n") if x.strip()])
            if self.peer.first_line_only:
                # The "first line of each recv()" reader: the rest is lost.
                lines = [data.split(b"\n", 1)[0]]
            else:
                buf += data
                *lines, buf = buf.split(b"\n")
            for raw in lines:
                raw = raw.strip(b"\r")
                if not raw:
                    continue
                try:
                    m = json.loads(raw.decode("utf-8"))
                except ValueError:
                    with self.peer.cond:
                        self.bad.append(raw[:200])
                    continue
                if not isinstance(m, dict):
                    continue
                with self.peer.cond:
                    self.msgs.append((t, m))
                    probs = strict_problems(m)
                    if probs:
                        self.peer.problems.extend(probs)
                    self.peer.cond.notify_all()
                self.peer.on_message(self, m)
            if self.established and not self.peer.read_after_handshake:
                return  # stop reading; the socket stays open
        with self.peer.cond:
            self.eof = True
            self.eof_at = time.monotonic()
            self.peer.cond.notify_all()

    def types(self):
        with self.peer.cond:
            return [m.get("type") for _, m in self.msgs]


class FakePeer:
    """A peer_id with a listening socket (unless listen=False) and any number
    of connections, all recorded."""

    def __init__(self, name, ns="CIC", features=("ack", "metrics"), first_line_only=False,
                 ack="full", drop_first_copy=False, auto_pong=True, listen=True,
                 rcvbuf=None, read_after_handshake=True, bye_ok="full", host="127.0.0.1"):
        self.name = name
        self.host = host        # its "host": listens, dials and registers from here
        self.ns = ns
        self.peer_id = "%s@%s" % (name, ns)
        self.features = list(features) if features is not None else None
        self.first_line_only = first_line_only
        self.ack = ack
        self.drop_first_copy = drop_first_copy
        self.auto_pong = auto_pong
        self.bye_ok = bye_ok
        self.read_after_handshake = read_after_handshake
        self.cond = threading.Condition()
        self.conns = []
        self.accepts = []       # monotonic times of accepted connections
        self.acked = []         # (monotonic time, msg_id) of every ACK sent
        self.problems = []      # strictness violations by the node
        self.seen_sends = set()
        self.port = None
        self._lst = None
        if listen:
            self._lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self._lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if rcvbuf:
                self._lst.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self._lst.bind((host, 0))
            self._lst.listen(64)
            self.port = self._lst.getsockname()[1]
            threading.Thread(target=self._accept_loop, daemon=True).start()

    # -- set-up
    def register(self, rdv, ttl=7200):
        r = harness.rdv_request(rdv.port, {"type": "REGISTER", "namespace": self.ns,
                                           "name": self.name, "port": self.port, "ttl": ttl},
                                source=None if self.host == "127.0.0.1" else self.host)
        assert r["status"] == "OK", r
        return r

    def hello(self, kind="HELLO", peer_id=None):
        m = {"type": kind, "peer_id": peer_id or self.peer_id, "version": "1.0", "ttl": 1}
        if self.features is not None:
            m["features"] = self.features
        return m

    def _accept_loop(self):
        while True:
            try:
                s, _ = self._lst.accept()
            except OSError:
                return
            with self.cond:
                self.accepts.append(time.monotonic())
                self.cond.notify_all()
            self.on_accept(s)

    def on_accept(self, sock):
        """A connection the node dialled: record it; the HELLO is answered
        by on_message."""
        self.adopt(sock, "in")

    def adopt(self, sock, role):
        sock.settimeout(None)
        c = FakeConn(self, sock, role)
        with self.cond:
            self.conns.append(c)
        return c

    def dial(self, port, hello=None, wait=True, timeout=5.0):
        """Connect to a node, send HELLO (or the given raw bytes / dict), and
        by default wait for HELLO_OK."""
        s = harness.connect(port, timeout=timeout,
                            source=None if self.host == "127.0.0.1" else self.host)
        c = self.adopt(s, "out")
        c.send(hello if hello is not None else self.hello())
        if wait:
            self.wait_msg(lambda cc, m: cc is c and m.get("type") == "HELLO_OK", timeout,
                          what="HELLO_OK")
        return c

    # -- behaviour
    def hello_ok(self, conn, hello):
        return self.hello("HELLO_OK")

    def answer_hello(self, conn, m):
        conn.send(self.hello_ok(conn, m))
        conn.established = True

    def should_ack(self, conn, m):
        if self.ack is None:
            return False
        if m.get("require_ack") is False:
            return False
        if self.drop_first_copy:
            with self.cond:
                first = m.get("msg_id") not in self.seen_sends
                self.seen_sends.add(m.get("msg_id"))
            if first:
                return False
        return True

    def on_message(self, conn, m):
        t = m.get("type")
        if t == "HELLO" and conn.role == "in" and not conn.established:
            conn.remote_id = m.get("peer_id")
            self.answer_hello(conn, m)
        elif t == "HELLO_OK" and conn.role == "out":
            conn.remote_id = m.get("peer_id")
            conn.established = True
        elif t == "PING" and self.auto_pong:
            conn.send({"type": "PONG", "msg_id": m.get("msg_id"), "timestamp": now_ts(), "ttl": 1})
        elif t == "SEND" and self.should_ack(conn, m):
            if self.ack == "bare":
                ack = {"type": "ACK", "msg_id": m.get("msg_id")}
            else:
                ack = {"type": "ACK", "msg_id": m.get("msg_id"), "timestamp": now_ts(), "ttl": 1}
            with self.cond:
                self.acked.append((time.monotonic(), m.get("msg_id")))
            conn.send(ack)
        elif t == "BYE" and self.bye_ok:
            ok = {"type": "BYE_OK"}
            if self.bye_ok == "full":
                ok.update(msg_id=m.get("msg_id"), src=self.peer_id, dst=m.get("src"), ttl=1)
            elif self.bye_ok == "new_id":
                ok.update(msg_id=new_id(), src=self.peer_id, dst=m.get("src"), ttl=1)
            conn.send(ok)

    # -- observation
    def messages(self, pred=None):
        """[(conn, time, msg)] over every connection, in arrival order per
        connection."""
        with self.cond:
            out = [(c, t, m) for c in self.conns for t, m in c.msgs]
        out.sort(key=lambda x: x[1])
        return [x for x in out if pred is None or pred(x[0], x[2])]

    def wait_msg(self, pred, timeout=5.0, what="message"):
        """The first message (over all connections) with pred(conn, msg);
        returns (conn, time, msg)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for c in self.conns:
                    for t, m in c.msgs:
                        if pred(c, m):
                            return c, t, m
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("%s: no %s within %.1f s (got %s)" % (
                        self.peer_id, what, timeout,
                        [c.types()[-10:] for c in self.conns][-5:]))
                self.cond.wait(left)

    def wait(self, cond, timeout=5.0, what="condition"):
        """Wait (on our own traffic) until cond() is truthy; returns it."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                v = cond()
                if v:
                    return v
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("%s: timed out after %.1f s waiting for %s"
                                         % (self.peer_id, timeout, what))
                self.cond.wait(min(left, 0.1))

    def open_conns(self):
        with self.cond:
            return [c for c in self.conns if c.open]

    def established_conn(self, timeout=10.0):
        """The first established connection (waits for one)."""
        return self.wait(lambda: next((c for c in self.conns if c.established and c.open), None),
                         timeout, "an established connection")

    def close(self):
        if self._lst is not None:
            try:
                self._lst.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._lst.close()
            self._lst = None
        with self.cond:
            conns = list(self.conns)
        for c in conns:
            c.close()
