"""End-to-end test harness: real processes on loopback, Python stdlib only.

- start()/start_daemon() run a program with stderr captured to a file and
  stdout read by a thread (so a chatty process never blocks on a full pipe);
  every process is tracked and killed at exit.
- Proc.stop() ends one with SIGTERM and returns its exit status;
  Proc.sanitizer_report() finds ASan/UBSan/LSan output in its stderr.
- wait_for() polls a condition against a deadline: tests synchronise on
  state, never on fixed sleeps.
- rdv_exchange()/rdv_request() speak the rendezvous protocol: one line out,
  read until the server closes.

Environment: CHATP2PD (path of chatp2pd), CHATP2PCTL (path of chatp2pctl).
"""

import atexit
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

SANITIZER_MARKERS = (
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "runtime error:",
    "WARNING: ThreadSanitizer",
)

_procs = []
_tmpdir = tempfile.TemporaryDirectory(prefix="chatp2p-e2e-")


def tmpdir():
    """A private directory for this test run (sockets, logs, configs)."""
    return _tmpdir.name


# Every daemon this run starts keeps its inbox/outbox database under the
# run's directory, never in the user's ~/.local/state (nodes.Node gives
# each node a directory of its own on top of this).
os.environ["XDG_STATE_HOME"] = os.path.join(_tmpdir.name, "state")
os.environ.pop("STATE_DIRECTORY", None)


def binary(var):
    path = os.environ.get(var)
    if not path:
        raise RuntimeError("environment variable %s (path of the binary) is not set" % var)
    return path


class Proc:
    """One child process: stdout collected line by line, stderr in a file."""

    _seq = 0

    def __init__(self, argv, name=None, env=None, cwd=None):
        Proc._seq += 1
        self.name = name or os.path.basename(argv[0])
        self.argv = list(argv)
        self.stderr_path = os.path.join(tmpdir(), "%s-%d.stderr" % (self.name, Proc._seq))
        self._stderr = open(self.stderr_path, "wb")
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        self.popen = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=self._stderr, env=full_env, cwd=cwd)
        self._lines = []
        self._cond = threading.Condition()
        self._eof = False
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()
        self.returncode = None
        _procs.append(self)

    def _read_stdout(self):
        for raw in iter(self.popen.stdout.readline, b""):
            with self._cond:
                self._lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    @property
    def pid(self):
        return self.popen.pid

    def stdout_lines(self):
        with self._cond:
            return list(self._lines)

    def wait_stdout(self, pattern, timeout=10.0):
        """First stdout line matching the regex pattern (re.Match); fails
        when the deadline passes or the process closes stdout first."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for line in self._lines[seen:]:
                    m = rx.search(line)
                    if m:
                        return m
                seen = len(self._lines)
                if self._eof:
                    raise AssertionError("%s exited (status %s) before printing /%s/; stderr:\n%s"
                                         % (self.name, self.popen.poll(), pattern,
                                            self.stderr_text()[-4000:]))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("%s printed no line matching /%s/ within %.1f s; "
                                         "stderr:\n%s" % (self.name, pattern, timeout,
                                                          self.stderr_text()[-4000:]))
                self._cond.wait(left)

    def alive(self):
        return self.popen.poll() is None

    def send_signal(self, sig):
        if self.alive():
            self.popen.send_signal(sig)

    def wait(self, timeout=10.0):
        """Exit status, or None if still running after timeout."""
        try:
            self.returncode = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self._close()
        return self.returncode

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Signal, wait; SIGKILL if it does not exit in time.  Returns the
        exit status (negative: killed by that signal)."""
        if self.alive():
            self.popen.send_signal(sig)
        rc = self.wait(timeout)
        if rc is None:
            self.popen.kill()
            rc = self.wait(timeout)
        return rc

    def _close(self):
        self._reader.join(timeout=5)
        if not self._stderr.closed:
            self._stderr.close()
        if self.popen.stdout and not self.popen.stdout.closed:
            self.popen.stdout.close()

    def stderr_text(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def sanitizer_report(self):
        """The sanitizer output in stderr, or None."""
        text = self.stderr_text()
        for marker in SANITIZER_MARKERS:
            i = text.find(marker)
            if i >= 0:
                return text[max(0, i - 200):i + 6000]
        return None

    def check_clean_exit(self, testcase=None, expect=0, sig=signal.SIGTERM, timeout=10.0):
        """Stop the process; fail unless it exits with expect and stderr has no
        sanitizer report.  Returns the exit status."""
        rc = self.stop(sig, timeout)
        report = self.sanitizer_report()
        problems = []
        if rc != expect:
            problems.append("%s exited with %s, expected %s" % (self.name, rc, expect))
        if report:
            problems.append("sanitizer report in %s stderr:\n%s" % (self.name, report))
        if problems:
            msg = "\n".join(problems) + "\n--- stderr tail ---\n" + self.stderr_text()[-3000:]
            if testcase is not None:
                testcase.fail(msg)
            raise AssertionError(msg)
        return rc


def start(argv, name=None, env=None, cwd=None):
    """Start a tracked process."""
    return Proc(argv, name=name, env=env, cwd=cwd)


LISTENING_RE = r"listening on (\S+):(\d+)"


def start_daemon(args, var="CHATP2PD", name=None, timeout=10.0, env=None, cwd=None,
                 ready_re=LISTENING_RE):
    """Start the binary named by $var with args and wait for its
    "listening on HOST:PORT" line.  Returns the Proc with .host and .port."""
    p = start([binary(var)] + list(args), name=name or "chatp2pd", env=env, cwd=cwd or tmpdir())
    m = p.wait_stdout(ready_re, timeout)
    p.host = m.group(1)
    p.port = int(m.group(2))
    return p


def start_rendezvous(*sets, listen="127.0.0.1", timeout=10.0):
    """A rendezvous server on listen:any-port; sets are "key=value" strings
    for --set rendezvous_server.key=value."""
    args = ["--rendezvous-server", "--listen", listen, "--port", "0"]
    for kv in sets:
        args += ["--set", kv if "." in kv.split("=", 1)[0] else "rendezvous_server." + kv]
    return start_daemon(args, name="rendezvous", timeout=timeout)


def run(argv, timeout=10.0, env=None, input=None, cwd=None):
    """Run a one-shot command to completion (CompletedProcess); fails on
    timeout or a sanitizer report on its stderr."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    cp = subprocess.run(argv, input=input, capture_output=True, timeout=timeout, env=full_env,
                        cwd=cwd or tmpdir())
    err = cp.stderr.decode("utf-8", "replace")
    for marker in SANITIZER_MARKERS:
        if marker in err:
            raise AssertionError("sanitizer report from %s:\n%s" % (argv[0], err[-6000:]))
    return cp


def kill_all():
    for p in _procs:
        if p.alive():
            p.popen.kill()
            p.wait(5)


atexit.register(kill_all)

# A test that fails half-way must not leave its daemons behind to hold ports
# and socket paths the next tests want: whatever a test method started (not
# setUpClass, which runs outside run()) is killed when it ends.
_unittest_run = unittest.TestCase.run


def _run_and_reap(self, result=None):
    first = len(_procs)
    try:
        return _unittest_run(self, result)
    finally:
        for p in _procs[first:]:
            if p.alive():
                p.popen.kill()
                p.wait(5)


unittest.TestCase.run = _run_and_reap


def wait_for(cond, timeout=5.0, interval=0.05, what=None):
    """Poll cond() until it returns something truthy (returned) or the
    deadline passes (AssertionError naming what, with the last value or
    exception seen)."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = cond()
            if last:
                return last
        except (OSError, ValueError, AssertionError) as e:
            last = e
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1f s waiting for %s (last: %r)"
                                 % (timeout, what or getattr(cond, "__name__", "condition"),
                                    last))
        time.sleep(interval)


def tls_client_context(cn):
    """A TLS 1.3 client context with a fresh Ed25519 certificate for cn
    (made by the openssl command line, in this run's directory), verifying
    nothing: a peer that speaks TLS as chatp2p nodes do."""
    import ssl
    tmp = tempfile.mkdtemp(dir=tmpdir())
    key, crt = os.path.join(tmp, "k.pem"), os.path.join(tmp, "c.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ed25519", "-nodes", "-keyout", key,
                    "-out", crt, "-days", "1", "-subj", "/CN=" + cn], check=True,
                   capture_output=True)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(crt, key)
    return ctx


def wait_until(cond, timeout, interval=0.02):
    """Poll cond() until it is truthy (True) or timeout seconds pass (False):
    for a test that goes on either way."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


def vm_rss_kb(pid):
    """Resident memory of a process, in kB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


# ---- sockets ---------------------------------------------------------------

def free_port():
    """A loopback TCP port nobody listens on (now)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def connect(port, host="127.0.0.1", source=None, timeout=5.0):
    """A connected TCP socket; source binds the local address first (any
    127.x.y.z works on Linux loopback, to play several client ips)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        if source is not None:
            s.bind((source, 0))
        s.connect((host, port))
    except BaseException:
        s.close()
        raise
    return s


def read_until_close(sock, timeout=5.0, limit=64 * 1024 * 1024):
    """All bytes until EOF.  Returns (data, reset): reset is True when the
    connection was reset instead of closed.  Fails on timeout."""
    deadline = time.monotonic() + timeout
    chunks = []
    total = 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("no EOF within %.1f s (got %d bytes: %r)"
                                 % (timeout, total, b"".join(chunks)[:200]))
        sock.settimeout(left)
        try:
            b = sock.recv(65536)
        except ConnectionResetError:
            return b"".join(chunks), True
        except socket.timeout:
            continue
        if not b:
            return b"".join(chunks), False
        chunks.append(b)
        total += len(b)
        if total > limit:
            raise AssertionError("more than %d bytes without EOF" % limit)


def encode_request(req):
    if isinstance(req, (bytes, bytearray)):
        return bytes(req)
    if isinstance(req, str):
        return req.encode("utf-8")
    return (json.dumps(req) + "\n").encode("utf-8")


def rdv_exchange(port, req, timeout=5.0, host="127.0.0.1", source=None, eof=False):
    """Connect, send req (dict: one JSON line; bytes/str: as is), optionally
    shut the write side, read until the server closes.  Returns
    (reply_bytes, reset, client_port)."""
    s = connect(port, host=host, source=source, timeout=timeout)
    with s:
        client_port = s.getsockname()[1]
        data = encode_request(req)
        try:
            if data:
                s.sendall(data)
            if eof:
                s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may refuse before reading; read what it said
        reply, reset = read_until_close(s, timeout)
    return reply, reset, client_port


def parse_reply(raw):
    """The one JSON line of a rendezvous reply."""
    if not raw.endswith(b"\n"):
        raise AssertionError("reply not terminated by a newline: %r" % raw[:300])
    lines = raw[:-1].split(b"\n")
    if len(lines) != 1:
        raise AssertionError("expected one reply line, got %d: %r" % (len(lines), raw[:300]))
    return json.loads(lines[0].decode("utf-8"))


def rdv_request(port, req, timeout=5.0, host="127.0.0.1", source=None, eof=False):
    """One rendezvous command: returns the parsed reply object."""
    raw, reset, _ = rdv_exchange(port, req, timeout=timeout, host=host, source=source, eof=eof)
    if reset and not raw:
        raise AssertionError("connection reset without a reply")
    return parse_reply(raw)


def ipv6_loopback_available():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def log(msg):
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()
