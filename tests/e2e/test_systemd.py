"""chatp2pd as a systemd service, proved without systemd as PID 1.

- the units: `systemd-analyze verify` on each, against a staged install
  (DESTDIR), and `systemd-analyze security --offline=yes` within the score
  the README records (2.0 at most);
- the test plays the service manager: a datagram NOTIFY_SOCKET it reads,
  WATCHDOG_USEC/WATCHDOG_PID; READY=1, STATUS=, WATCHDOG=1 cadence,
  RELOADING=1 + MONOTONIC_USEC= then READY=1, STOPPING=1; no WATCHDOG=1
  while the process is stopped or its loop blocked in write(2), and again
  after; without NOTIFY_SOCKET, nothing and no complaint;
- socket activation through systemd-socket-activate (control socket, and
  the peer listener), with chatp2pctl connecting before the daemon runs;
- reload (SIGHUP and the control method): log level, an interval and
  timeouts (network.ack_timeout, limits.bye_timeout) change with connections
  kept, identity changes refused, a broken file ignored;
- journal priority prefixes when stderr is the journal stream;
- `cmake --install` into a staging directory (man pages included, the
  /etc config.json at INFO without a log file), and the bash completion.

Needs: CHATP2PD, CHATP2PCTL (set by CTest), systemd-analyze,
systemd-socket-activate, systemd-sysusers (Debian: systemd), /bin/kill
(procps), cmake, pkg-config; scripts/deps.sh installs them all.  A missing
one is a failure, not a skip: CTest counts a skipped test as passed.
"""

import fcntl
import json
import os
import select
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from nodes import FAST, Ctl, CtlError, Node  # noqa: E402

SRC = os.environ.get("CHATP2P_SRC") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
UNITS = ["chatp2pd.service", "chatp2pd.socket", "chatp2pd@.service", "chatp2pd@.socket"]
SCORE_MAX = 2.0   # the bound; the README's figure is checked too

# The Debian package of every outside program these tests run.
PACKAGE_OF = {
    "systemd-analyze": "systemd",
    "systemd-socket-activate": "systemd",
    "systemd-sysusers": "systemd",
    "/bin/kill": "procps",
    "cmake": "cmake",
    "pkg-config": "pkg-config",
}


def require(*tools):
    """Fail (not skip: CTest would count that as a pass) unless every tool
    is installed, naming the package that has it."""
    missing = [t for t in tools
               if not (os.access(t, os.X_OK) if os.path.isabs(t) else shutil.which(t))]
    if missing:
        raise AssertionError("not installed: %s (Debian package %s; scripts/deps.sh installs it)"
                             % (", ".join(missing),
                                ", ".join(sorted({PACKAGE_OF.get(t, "?") for t in missing}))))


def build_dir():
    """…/build-x/chatp2pd/chatp2pd → …/build-x"""
    return os.path.dirname(os.path.dirname(os.path.abspath(harness.binary("CHATP2PD"))))


def pkg_var(var, default):
    try:
        out = subprocess.run(["pkg-config", "--variable=" + var, "systemd"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
    except OSError:
        out = ""
    return out or default


def install(destdir, prefix="/usr"):
    """cmake --install into destdir; returns the output."""
    require("cmake", "pkg-config")
    env = dict(os.environ, DESTDIR=destdir)
    cp = subprocess.run(["cmake", "--install", build_dir(), "--prefix", prefix],
                        capture_output=True, text=True, timeout=120, env=env)
    if cp.returncode != 0:
        raise AssertionError("cmake --install failed:\n%s%s" % (cp.stdout, cp.stderr))
    return cp.stdout


_stage = None


def stage():
    """One staged install (prefix /usr) shared by the unit tests."""
    global _stage
    if _stage is None:
        _stage = os.path.join(harness.tmpdir(), "stage")
        install(_stage)
    return _stage


def unit_dir(root):
    return os.path.join(root, pkg_var("systemdsystemunitdir", "/lib/systemd/system").lstrip("/"))


def exec_paths(text):
    """The program of every Exec*= line of a unit."""
    return [m.group(1) for m in re.finditer(r"^Exec\w+=[-@:+!]*(\S+)", text, re.M)]


def verifiable_copy(root, name, dest, instance=None):
    """The staged unit, with our staged chatp2pd as its ExecStart (verify
    needs the program to exist where the unit says), under dest."""
    with open(os.path.join(unit_dir(root), name)) as f:
        text = f.read()
    for prog in exec_paths(text):
        staged = os.path.join(root, prog.lstrip("/"))
        if os.path.exists(staged):
            text = text.replace("=" + prog, "=" + staged)
    if instance:
        name = name.replace("@.", "@%s." % instance)
    path = os.path.join(dest, name)
    with open(path, "w") as f:
        f.write(text)
    return path


# ---- a fake service manager ----------------------------------------------------

class Manager:
    """Binds a datagram NOTIFY_SOCKET and records what arrives, with the
    monotonic time of arrival."""

    def __init__(self):
        self.path = os.path.join(tempfile.mkdtemp(dir=harness.tmpdir()), "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self.msgs = []          # (time, {key: value})
        self.cond = threading.Condition()
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while self.running:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            t = time.monotonic()
            fields = dict(line.split("=", 1) for line in data.decode().split("\n") if "=" in line)
            with self.cond:
                self.msgs.append((t, fields))
                self.cond.notify_all()

    def close(self):
        self.running = False
        self.thread.join(2)
        self.sock.close()

    def env(self, **extra):
        e = {"NOTIFY_SOCKET": self.path}
        e.update(extra)
        return e

    def snapshot(self):
        with self.cond:
            return list(self.msgs)

    def wait(self, pred, timeout=10.0, start=0, what="notification"):
        """Index of the first message at or after start satisfying pred."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for i in range(start, len(self.msgs)):
                    if pred(self.msgs[i][1]):
                        return i
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no %s within %.1f s; got: %r"
                                         % (what, timeout, [m for _, m in self.msgs][-20:]))
                self.cond.wait(left)

    def collect(self, pred, count, timeout=10.0, start=0, what="notifications"):
        """Arrival times of the first count messages at or after start
        satisfying pred, as they come."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                times = [t for t, m in self.msgs[start:] if pred(m)]
                if len(times) >= count:
                    return times[:count]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("%d of %d %s within %.1f s"
                                         % (len(times), count, what, timeout))
                self.cond.wait(left)

    def none_within(self, pred, seconds, start=0, what="notification"):
        """Fail at once if a message at or after start satisfies pred before
        seconds have passed (an observation window, not a synchronisation)."""
        deadline = time.monotonic() + seconds
        with self.cond:
            while True:
                bad = [m for _, m in self.msgs[start:] if pred(m)]
                if bad:
                    raise AssertionError("unexpected %s: %r" % (what, bad))
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self.cond.wait(left)

    def barrier(self, timeout=5.0):
        """Index after everything already queued on the socket: a marker we
        send ourselves comes out of the queue after all that came before."""
        mark = str(time.monotonic_ns())
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(b"X_CHATP2P_TEST_MARK=%s\n" % mark.encode(), self.path)
        return self.wait(lambda m: m.get("X_CHATP2P_TEST_MARK") == mark, timeout,
                         what="our own marker") + 1

    def last_status(self):
        for _, m in reversed(self.snapshot()):
            if "STATUS" in m:
                return m["STATUS"]
        return None


def node_argv(name, rdv_port, sock, sets=(), fast=True):
    """Like nodes.Node's; fast=False leaves out FAST (its logging.level
    would override a configuration file's)."""
    a = ["--name", name, "--namespace", "CIC", "--listen", "127.0.0.1", "--port", "0",
         "--rendezvous", "127.0.0.1:%d" % rdv_port, "--control", sock]
    for s in (list(FAST) if fast else []) + list(sets):
        a += ["--set", s]
    return a


def start_with_own_pid(args, env, name):
    """chatp2pd through `sh -c exec`, so WATCHDOG_PID=$$ is its own pid, as
    the manager sets it."""
    argv = ["/bin/sh", "-c", 'WATCHDOG_PID=$$ exec "$0" "$@"', harness.binary("CHATP2PD")] + args
    p = harness.start(argv, name=name, env=env, cwd=harness.tmpdir())
    m = p.wait_stdout(harness.LISTENING_RE, 15)
    p.port = int(m.group(2))
    return p


def read(path):
    with open(path) as f:
        return f.read()


def proc_state(pid):
    """The one-letter state in /proc/PID/stat (T: stopped by a signal)."""
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def wait_stopped(proc, timeout=5.0):
    harness.wait_for(lambda: proc_state(proc.pid) in "tT", timeout,
                     what="%s (pid %d) to stop on SIGSTOP" % (proc.name, proc.pid))


def blocked_writing_stderr(pid):
    """True if pid sleeps in write(2, …) on a pipe, False if not, None if
    this kernel does not say (/proc/PID/wchan and /proc/PID/syscall)."""
    if proc_state(pid) != "S":
        return False
    try:
        with open("/proc/%d/wchan" % pid) as f:
            wchan = f.read().strip()
        if wchan not in ("", "0"):
            return "pipe_write" in wchan    # pipe_write, anon_pipe_write
    except OSError:
        pass
    write_nr = {"x86_64": "1", "aarch64": "64", "riscv64": "64"}.get(os.uname().machine)
    try:
        with open("/proc/%d/syscall" % pid) as f:
            fields = f.read().split()
    except OSError:
        return None
    if write_nr is None or len(fields) < 2 or fields[0] == "running":
        return None
    return fields[0] == write_nr and fields[1] == "0x2"


def wait_socket_file(path, timeout=10.0):
    harness.wait_for(lambda: os.path.exists(path), timeout, what="socket file " + path)


# ---- the units --------------------------------------------------------------------

class Units(unittest.TestCase):

    def test_verify_every_unit(self):
        require("systemd-analyze")
        root = stage()
        d = tempfile.mkdtemp(dir=harness.tmpdir())
        paths = []
        for u in UNITS:
            with open(os.path.join(unit_dir(root), u)) as f:
                for prog in exec_paths(f.read()):
                    # The installed unit names the installed program.
                    if "chatp2p" in prog:
                        self.assertTrue(os.access(os.path.join(root, prog.lstrip("/")), os.X_OK),
                                        "%s: %s is not in the install" % (u, prog))
                    else:
                        # verify: "Command /bin/kill is not executable"
                        require(prog)
            paths.append(verifiable_copy(root, u, d, instance="alice" if "@" in u else None))
        for p in paths:
            cp = harness.run(["systemd-analyze", "verify", "--man=no", p], timeout=60)
            err = cp.stderr.decode()
            # verify exits 0 on unknown or unparsable keys: any output is a failure.
            self.assertEqual((cp.returncode, err), (0, ""), "systemd-analyze verify %s" % p)

    def security_score(self, unit_path):
        cp = harness.run(["systemd-analyze", "security", "--offline=yes",
                          "--threshold=%d" % int(SCORE_MAX * 10), unit_path], timeout=60)
        out = cp.stdout.decode() + cp.stderr.decode()
        m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out)
        self.assertIsNotNone(m, out)
        self.assertEqual(cp.returncode, 0, "over the threshold:\n" + out)
        return float(m.group(1))

    def test_security_score(self):
        require("systemd-analyze")
        root = stage()
        d = tempfile.mkdtemp(dir=harness.tmpdir())
        score = self.security_score(verifiable_copy(root, "chatp2pd.service", d))
        harness.log("systemd-analyze security: chatp2pd.service %.1f" % score)
        self.assertLessEqual(score, SCORE_MAX)
        with open(os.path.join(SRC, "README.md")) as f:
            readme = f.read()
        m = re.search(r"Overall exposure level for chatp2pd\.service: (\d+\.\d+)", readme)
        self.assertIsNotNone(m, "README.md does not record the score")
        self.assertLessEqual(score, float(m.group(1)), "the score rose above the README's")
        # The template is hardened the same way.
        inst = self.security_score(verifiable_copy(root, "chatp2pd@.service", d, "alice"))
        self.assertLessEqual(inst, score)

    def test_socket_unit_lets_the_group_in(self):
        with open(os.path.join(SRC, "systemd", "chatp2pd.socket")) as f:
            text = f.read()
        self.assertIn("SocketMode=0660", text)
        self.assertIn("SocketGroup=chatp2p", text)
        self.assertIn("ListenStream=/run/chatp2p/chatp2pd.sock", text)
        with open(os.path.join(unit_dir(stage()), "chatp2pd.service")) as f:
            svc = f.read()
        # The socket lives in the RuntimeDirectory: it must survive a stop.
        self.assertIn("RuntimeDirectory=chatp2p\n", svc)
        self.assertIn("RuntimeDirectoryPreserve=yes", svc)
        self.assertIn("Type=notify", svc)
        self.assertRegex(svc, r"ExecReload=/bin/kill -HUP \$MAINPID")


# ---- the manager's side channel ------------------------------------------------------

class Notify(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.rdv = harness.start_rendezvous("rate_limit=100000")

    @classmethod
    def tearDownClass(cls):
        cls.rdv.check_clean_exit()

    def setUp(self):
        self.mgr = Manager()

    def tearDown(self):
        self.mgr.close()

    def test_ready_status_watchdog_reload_stopping(self):
        mgr = self.mgr
        sock = os.path.join(harness.tmpdir(), "notify-alice.sock")
        alice = start_with_own_pid(node_argv("alice", self.rdv.port, sock), mgr.env(WATCHDOG_USEC="400000"),
                                   "alice")
        ready = mgr.wait(lambda m: m.get("READY") == "1", what="READY=1")
        self.assertIn("STATUS", mgr.snapshot()[ready][1])
        # READY means the control socket answers already.
        c = Ctl(sock)
        self.assertEqual(c.call("status")["name"], "alice")
        c.close()

        # Watchdog: every 0.2 s (half of 0.4 s), none missing, over 1.2 s+.
        pings = mgr.collect(lambda m: m.get("WATCHDOG") == "1", 7, timeout=5,
                            start=len(mgr.snapshot()), what="WATCHDOG=1")
        gaps = [b - a for a, b in zip(pings, pings[1:])]
        self.assertLess(max(gaps), 0.4, "a gap would have tripped the watchdog: %r" % gaps)
        self.assertGreater(min(gaps), 0.1, "pinging far too often: %r" % gaps)

        # STATUS is kept current: registration, then a peer.
        harness.wait_for(lambda: (mgr.last_status() or "").startswith("registered as alice@CIC"),
                         10, what="STATUS registered")
        bob = Node("bob", self.rdv)
        harness.wait_for(lambda: mgr.last_status() == "registered as alice@CIC, 1 peer connected",
                         15, what="STATUS with 1 peer (last: %r)" % mgr.last_status())

        # SIGHUP: RELOADING=1 with MONOTONIC_USEC (CLOCK_MONOTONIC, as ours), then READY=1.
        n = len(mgr.snapshot())
        alice.send_signal(signal.SIGHUP)
        i = mgr.wait(lambda m: m.get("RELOADING") == "1", start=n, what="RELOADING=1")
        usec = int(mgr.snapshot()[i][1]["MONOTONIC_USEC"])
        self.assertLess(abs(usec / 1e6 - time.monotonic()), 5.0)
        mgr.wait(lambda m: m.get("READY") == "1", start=i + 1, what="READY=1 after reload")

        # The control method does the same.
        n = len(mgr.snapshot())
        c = Ctl(sock)
        self.assertEqual(c.call("reload")["refused"], [])
        c.close()
        i = mgr.wait(lambda m: m.get("RELOADING") == "1", start=n, what="RELOADING=1 (control)")
        mgr.wait(lambda m: m.get("READY") == "1", start=i + 1, what="READY=1 (control)")

        # SIGTERM: STOPPING=1 first, then a clean exit; the watchdog goes on meanwhile.
        n = len(mgr.snapshot())
        alice.check_clean_exit(self)
        i = mgr.wait(lambda m: m.get("STOPPING") == "1", start=n, timeout=1, what="STOPPING=1")
        self.assertFalse([m for _, m in mgr.snapshot()[i:] if m.get("READY")])
        bob.stop(self)

    def test_watchdog_for_another_pid_is_not_ours(self):
        sock = os.path.join(harness.tmpdir(), "notify-carol.sock")
        env = self.mgr.env(WATCHDOG_USEC="200000", WATCHDOG_PID="1")
        carol = harness.start_daemon(node_argv("carol", self.rdv.port, sock), env=env, name="carol")
        self.mgr.wait(lambda m: m.get("READY") == "1", what="READY=1")
        self.mgr.none_within(lambda m: "WATCHDOG" in m, 0.6, what="WATCHDOG for pid 1")
        carol.check_clean_exit(self)

    def test_a_stopped_daemon_stops_the_watchdog_until_continued(self):
        # Stop the whole process: the pings stop; continue it: they resume
        # at once, at their cadence.  (SIGSTOP stops every thread, so this
        # alone does not show they come from the loop: the next test does.)
        mgr = self.mgr
        sock = os.path.join(harness.tmpdir(), "notify-hal.sock")
        hal = start_with_own_pid(node_argv("hal", self.rdv.port, sock),
                                 mgr.env(WATCHDOG_USEC="400000"), "hal")
        mgr.wait(lambda m: m.get("READY") == "1", what="READY=1")
        mgr.collect(lambda m: m.get("WATCHDOG") == "1", 2, what="WATCHDOG=1")
        hal.send_signal(signal.SIGSTOP)
        try:
            wait_stopped(hal)
            # A ping sent just before the stop may still be queued: from
            # past our marker on, nothing can come from a stopped process.
            n = mgr.barrier()
            # 1.2 s is three watchdog intervals (six pings' worth): a
            # manager would have killed it long before.
            mgr.none_within(lambda m: m.get("WATCHDOG") == "1", 1.2, start=n,
                            what="WATCHDOG=1 from a stopped process")
        finally:
            hal.send_signal(signal.SIGCONT)
        t_cont = time.monotonic()
        n = len(mgr.snapshot())
        pings = mgr.collect(lambda m: m.get("WATCHDOG") == "1", 5, timeout=5, start=n,
                            what="WATCHDOG=1 after SIGCONT")
        # The overdue timer fires at once, then every 0.2 s again.
        self.assertLess(pings[0] - t_cont, 0.4, "late first ping after SIGCONT")
        gaps = [b - a for a, b in zip(pings, pings[1:])]
        self.assertLess(max(gaps), 0.4, "a gap would have tripped the watchdog: %r" % gaps)
        c = Ctl(sock)
        self.assertEqual(c.call("status")["name"], "hal")
        c.close()
        hal.check_clean_exit(self)

    def test_a_loop_blocked_in_write_stops_the_watchdog(self):
        # A loop really stuck while the process runs: stderr is a pipe
        # nobody reads (a journal that stopped reading), so a log line
        # blocks the loop in write(2).  The watchdog pings must stop with it
        # (a timer thread of its own would go on pinging), and resume once
        # the pipe drains.
        mgr = self.mgr
        sock = os.path.join(harness.tmpdir(), "notify-judy.sock")
        r, w = os.pipe()
        fcntl.fcntl(r, getattr(fcntl, "F_SETPIPE_SZ", 1031), 4096)
        os.set_blocking(r, False)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("WATCHDOG_", "NOTIFY_"))}
        env.update(mgr.env(WATCHDOG_USEC="400000"))
        # No log rate limit: the flood of "controller connected" lines is
        # what fills the pipe.
        argv = [harness.binary("CHATP2PD")] + node_argv("judy", self.rdv.port, sock,
                                                        sets=["logging.level=INFO",
                                                              "logging.rate_limit=0"])
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=w, env=env, cwd=harness.tmpdir())
        os.close(w)
        err = bytearray()
        draining = threading.Event()
        draining.set()
        done = threading.Event()

        def drain():
            while not done.is_set():
                if not draining.wait(0.05):
                    continue
                if select.select([r], [], [], 0.05)[0]:
                    try:
                        data = os.read(r, 65536)
                    except BlockingIOError:
                        continue
                    if not data:
                        return
                    err.extend(data)
        reader = threading.Thread(target=drain, daemon=True)
        reader.start()

        def log_lines():
            # Every controller that connects is logged at INFO.
            for _ in range(8):
                try:
                    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
                        c.settimeout(0.2)
                        c.connect(sock)
                except OSError:
                    pass
            return blocked_writing_stderr(p.pid) is not False

        try:
            mgr.wait(lambda m: m.get("READY") == "1", what="READY=1")
            mgr.collect(lambda m: m.get("WATCHDOG") == "1", 2, what="WATCHDOG=1")
            draining.clear()
            harness.wait_for(log_lines, 15, what="judy's loop to block on its stderr")
            if blocked_writing_stderr(p.pid) is None:
                self.skipTest("this kernel shows neither /proc/PID/wchan nor /proc/PID/syscall:"
                              " no way to see that the loop is blocked")
            n = mgr.barrier()
            mgr.none_within(lambda m: m.get("WATCHDOG") == "1", 1.2, start=n,
                            what="WATCHDOG=1 from a loop blocked in write(2)")
            self.assertTrue(blocked_writing_stderr(p.pid), "the loop got unstuck by itself")
            draining.set()
            mgr.collect(lambda m: m.get("WATCHDOG") == "1", 3, timeout=5,
                        start=len(mgr.snapshot()), what="WATCHDOG=1 once stderr drains")
            c = Ctl(sock)
            self.assertEqual(c.call("status")["name"], "judy")
            c.close()
            p.send_signal(signal.SIGTERM)
            self.assertEqual(p.wait(10), 0)
        finally:
            draining.set()
            if p.poll() is None:
                p.kill()
                p.wait()
            reader.join(5)
            done.set()
            os.close(r)
        text = err.decode("utf-8", "replace")
        for marker in harness.SANITIZER_MARKERS:
            self.assertNotIn(marker, text, text[-4000:])

    def test_a_manager_that_stops_reading_does_not_stall_the_loop(self):
        # Nobody reads this socket until the end: its queue (10 datagrams)
        # fills with 10 ms watchdog pings within a fraction of a second.
        path = os.path.join(tempfile.mkdtemp(dir=harness.tmpdir()), "slow")
        mute = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        mute.bind(path)
        sock = os.path.join(harness.tmpdir(), "notify-frank.sock")
        frank = start_with_own_pid(node_argv("frank", self.rdv.port, sock),
                                   {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "20000"}, "frank")
        # Full when a datagram of ours no longer fits (EAGAIN): our probes
        # take a place or two, frank's pings the rest.
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        probe.setblocking(False)

        def queue_full():
            try:
                probe.sendto(b"X_CHATP2P_TEST_PROBE=1\n", path)
            except BlockingIOError:
                return True
            return False
        try:
            harness.wait_for(queue_full, 5, what="the manager's queue to fill")
        finally:
            probe.close()
        c = Ctl(sock, timeout=3)
        self.assertIn(c.call("log.get", timeout=3)["level"], ("DEBUG", "INFO"))
        frank.send_signal(signal.SIGHUP)
        harness.wait_for(lambda: "reloaded" in frank.stderr_text(), 5, what="the reload")
        self.assertIn("level", c.call("log.get", timeout=3))
        c.close()
        # Now read: READY, then RELOADING=1 and READY=1 again, in that order.
        mute.settimeout(0.5)
        got, states = [], []
        deadline = time.monotonic() + 5
        while len(states) < 3 and time.monotonic() < deadline:
            try:
                got.append(mute.recv(4096).decode())
            except socket.timeout:
                continue
            if not got[-1].startswith(("WATCHDOG", "X_CHATP2P_TEST_PROBE")):
                states.append(got[-1].split("\n")[0])
        mute.close()
        self.assertEqual(states[:3], ["READY=1", "RELOADING=1", "READY=1"], got)
        frank.check_clean_exit(self)

    def test_abstract_notify_socket(self):
        name = "chatp2p-test-%d" % os.getpid()
        mgr = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        mgr.bind("\0" + name)
        mgr.settimeout(10)
        sock = os.path.join(harness.tmpdir(), "notify-gina.sock")
        gina = harness.start_daemon(node_argv("gina", self.rdv.port, sock),
                                    env={"NOTIFY_SOCKET": "@" + name}, name="gina")
        self.assertTrue(mgr.recv(4096).startswith(b"READY=1\n"))
        mgr.close()
        gina.check_clean_exit(self)

    def test_rendezvous_server_role_notifies_too(self):
        p = harness.start_daemon(["--rendezvous-server", "--listen", "127.0.0.1", "--port", "0"],
                                 env=self.mgr.env(WATCHDOG_USEC="400000"), name="rdv-notify")
        self.mgr.wait(lambda m: m.get("READY") == "1", what="READY=1")
        self.mgr.wait(lambda m: m.get("WATCHDOG") == "1", what="WATCHDOG=1")
        n = len(self.mgr.snapshot())
        p.check_clean_exit(self)
        self.mgr.wait(lambda m: m.get("STOPPING") == "1", start=n, timeout=1, what="STOPPING=1")

    def test_failed_reload_is_reported(self):
        cfgpath = os.path.join(harness.tmpdir(), "dave.json")
        with open(cfgpath, "w") as f:
            json.dump({"logging": {"level": "INFO", "log_to_file": False}}, f)
        sock = os.path.join(harness.tmpdir(), "notify-dave.sock")
        dave = harness.start_daemon(["-c", cfgpath] + node_argv("dave", self.rdv.port, sock, fast=False),
                                    env=self.mgr.env(), name="dave")
        self.mgr.wait(lambda m: m.get("READY") == "1", what="READY=1")
        with open(cfgpath, "w") as f:
            f.write('{"logging": {"level": "LOUD"}}\n')
        n = len(self.mgr.snapshot())
        c = Ctl(sock)
        with self.assertRaises(CtlError) as e:
            c.call("reload")
        self.assertEqual(e.exception.reason, "bad_config")
        self.assertIn("logging.level", str(e.exception))
        c.close()
        i = self.mgr.wait(lambda m: m.get("RELOADING") == "1", start=n, what="RELOADING=1")
        j = self.mgr.wait(lambda m: m.get("READY") == "1", start=i + 1, what="READY=1")
        self.assertIn("last error: reload failed", self.mgr.snapshot()[j][1]["STATUS"])
        c = Ctl(sock)
        self.assertEqual(c.call("log.get")["level"], "INFO")
        c.close()
        dave.check_clean_exit(self)


class WithoutManager(unittest.TestCase):
    """No NOTIFY_SOCKET (started by hand, or by another supervisor): the
    notifications are a silent no-op, even with WATCHDOG_USEC set."""

    def test_no_notify_socket_is_a_silent_no_op(self):
        rdv = harness.start_rendezvous("rate_limit=100000")
        sock = os.path.join(harness.tmpdir(), "plain-ivan.sock")
        # harness.start adds to our environment: take NOTIFY_SOCKET out of
        # it (this test may itself run under systemd) for the start.
        saved = os.environ.pop("NOTIFY_SOCKET", None)
        try:
            ivan = start_with_own_pid(node_argv("ivan", rdv.port, sock),
                                      {"WATCHDOG_USEC": "200000"}, "ivan")
        finally:
            if saved is not None:
                os.environ["NOTIFY_SOCKET"] = saved
        with open("/proc/%d/environ" % ivan.pid, "rb") as f:
            self.assertNotIn(b"NOTIFY_SOCKET=", f.read())
        c = Ctl(sock)
        st = c.call("status")
        self.assertEqual(st["peer_id"], "ivan@CIC")
        harness.wait_for(lambda: c.call("status")["rendezvous"]["state"] == "registered", 10,
                         what="ivan registered")
        c.close()
        ivan.check_clean_exit(self)
        err = ivan.stderr_text()
        for word in ("Notify", "watchdog", "NOTIFY_SOCKET", "service manager"):
            self.assertNotIn(word, err, "a notification attempt without NOTIFY_SOCKET")
        rdv.check_clean_exit(self)


# ---- socket activation --------------------------------------------------------------

class SocketActivation(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.rdv = harness.start_rendezvous("rate_limit=100000")

    @classmethod
    def tearDownClass(cls):
        cls.rdv.check_clean_exit()

    def setUp(self):
        require("systemd-socket-activate")

    def activate(self, name, listen, fdnames, extra=()):
        argv = ["systemd-socket-activate"]
        for l in listen:
            argv += ["-l", l]
        argv += ["--fdname=" + ":".join(fdnames), harness.binary("CHATP2PD"),
                 "--name", name, "--namespace", "CIC", "--listen", "127.0.0.1", "--port", "0",
                 "--rendezvous", "127.0.0.1:%d" % self.rdv.port] + list(extra)
        for s in FAST:
            argv += ["--set", s]
        # systemd-socket-activate passes no environment (no XDG_STATE_HOME):
        # a state directory of this test's own, never the user's, so keys
        # and pins from another run cannot meet this one.
        SocketActivation._seq = getattr(SocketActivation, "_seq", 0) + 1
        state = os.path.join(harness.tmpdir(), "act-state-%s-%d" % (name, SocketActivation._seq))
        argv += ["--set", "node.state_dir=" + state]
        return harness.start(argv, name=name, cwd=harness.tmpdir())

    def test_control_socket_passed_in(self):
        sock = os.path.join(harness.tmpdir(), "act-alice.sock")
        p = self.activate("alice", [sock], ["control"])
        wait_socket_file(sock)
        # Nobody has started chatp2pd yet: the first controller starts it
        # (systemd-socket-activate execs on the first connection) and waits.
        self.assertFalse(any("listening on" in l for l in p.stdout_lines()))
        early = Ctl(sock)
        rid = early.request("status")
        cp = harness.run([harness.binary("CHATP2PCTL"), "--socket", sock, "--json", "status"],
                         timeout=20)
        self.assertEqual(cp.returncode, 0, cp.stderr.decode())
        self.assertEqual(json.loads(cp.stdout)["peer_id"], "alice@CIC")
        self.assertEqual(early.answer(rid)["peer_id"], "alice@CIC")
        early.close()
        p.wait_stdout(r"control %s" % re.escape(sock))
        self.assertIn("control socket passed by the service manager", p.stderr_text())
        p.check_clean_exit(self)
        # The socket belongs to the manager: we leave its file alone.
        self.assertTrue(os.path.exists(sock))

    def test_peer_listener_passed_in(self):
        sock = os.path.join(harness.tmpdir(), "act-bob.sock")
        port = harness.free_port()
        p = self.activate("bob", [sock, "127.0.0.1:%d" % port], ["control", "peer"])
        wait_socket_file(sock)
        c = Ctl(sock, timeout=20)
        st = c.call("status", timeout=20)
        c.close()
        self.assertEqual(st["listen"]["port"], port)
        # A peer finds bob through the rendezvous server at the passed port.
        carol = Node("carol", self.rdv)
        carol.wait_active("bob@CIC")
        conns = carol.connections_to("bob@CIC")
        self.assertTrue(conns)
        carol.stop(self)
        p.check_clean_exit(self)


# ---- reload ------------------------------------------------------------------------

class Reload(unittest.TestCase):

    def write_config(self, path, level, ping, name="alice", ack=3, bye=1):
        cfg = {
            "rendezvous": {"host": "127.0.0.1", "port": self.rdv.port, "discover_interval": 1,
                           "register_backoff_base": 0.2},
            "keepalive": {"ping_interval": ping, "ping_timeout": min(0.5, ping * 0.8),
                          "max_ping_failures": 3},
            "reconnection": {"check_interval": 1, "backoff_base": 0.3, "backoff_max": 1},
            "peer_connection": {"backoff_base": 0.3},
            "network": {"ack_timeout": ack},
            "limits": {"rendezvous_timeout": 2, "bye_timeout": bye},
            "logging": {"level": level, "log_to_file": False},
            "node": {"name": name, "namespace": "CIC", "listen": "127.0.0.1", "port": 0,
                     "state_dir": self.state},
            "control": {"socket": self.sock},
        }
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(cfg, f, indent=2)
        os.rename(tmp, path)

    def setUp(self):
        self.rdv = harness.start_rendezvous("rate_limit=100000")
        self.sock = os.path.join(harness.tmpdir(), "reload-alice.sock")
        self.cfg = os.path.join(harness.tmpdir(), "reload-alice.json")
        # A state directory per test: alice's pins of one test's bob (a new
        # key each time) must not refuse the next test's bob (§5.2).
        self.state = tempfile.mkdtemp(prefix="reload-alice-", dir=harness.tmpdir())

    def tearDown(self):
        self.rdv.check_clean_exit()

    def alice_and_bob(self):
        """alice from self.cfg, bob connected to her, a controller of hers."""
        alice = harness.start_daemon(["-c", self.cfg], name="alice")
        bob = Node("bob", self.rdv)
        bob.wait_active("alice@CIC")
        ctl = Ctl(self.sock)
        harness.wait_for(lambda: [c for c in ctl.call("conn")["connections"]
                                  if c["state"] == "established" and c["primary"]],
                         10, what="alice's connection to bob")
        return alice, bob, ctl

    def rtt_samples(self, ctl, peer):
        for p in ctl.call("rtt")["rtt"]:
            if p["peer_id"] == peer:
                return p["samples"]
        return 0

    def test_sighup_changes_level_and_interval_keeps_connections(self):
        self.write_config(self.cfg, "INFO", 1)
        alice, bob, ctl = self.alice_and_bob()
        conns = self.connections(ctl)
        self.assertEqual(ctl.call("log.get")["level"], "INFO")
        base = self.rtt_samples(ctl, "bob@CIC")

        # New level and ping interval; a new name, which must be refused.
        self.write_config(self.cfg, "WARNING", 0.25, name="mallory")
        alice.send_signal(signal.SIGHUP)
        harness.wait_for(lambda: ctl.call("log.get")["level"] == "WARNING", 5,
                         what="log level WARNING after SIGHUP")
        # At 1 s a ping, 10 more samples take 10 s: seen within 5 s, the new
        # 0.25 s interval is in force (from the timer's next round, <= 1 s).
        harness.wait_for(lambda: self.rtt_samples(ctl, "bob@CIC") >= base + 10, 5,
                         what="pings at the new interval")
        self.assertEqual(self.connections(ctl), conns, "connections changed across the reload")
        self.assertEqual(ctl.call("status")["peer_id"], "alice@CIC")
        self.assertEqual(bob.state_of("alice@CIC"), "ACTIVE")
        harness.wait_for(lambda: "not changed: node.name" in alice.stderr_text(), 5,
                         what="the refusal in the log")

        # The control method reports refusals; back to INFO.
        self.write_config(self.cfg, "INFO", 5, name="mallory")
        self.assertEqual(ctl.call("reload")["refused"], ["node.name"])
        self.assertEqual(ctl.call("log.get")["level"], "INFO")

        # A broken file changes nothing and costs nothing.
        with open(self.cfg, "w") as f:
            f.write('{"logging": {"level": "DEBUG",')
        alice.send_signal(signal.SIGHUP)
        harness.wait_for(lambda: "keeping the running configuration" in alice.stderr_text(), 5,
                         what="the reload error in the log")
        line = [l for l in alice.stderr_text().splitlines() if "keeping the running" in l][-1]
        self.assertIn(self.cfg, line)
        self.assertEqual(ctl.call("log.get")["level"], "INFO")
        self.assertEqual(len(ctl.call("conn")["connections"]), len(conns))
        ctl.close()
        bob.stop(self)
        alice.check_clean_exit(self)

    def connections(self, ctl):
        return sorted(json.dumps({k: c[k] for k in ("peer_id", "direction", "address", "since",
                                                    "state")}, sort_keys=True)
                      for c in ctl.call("conn")["connections"])

    def test_sighup_changes_timeouts_keeps_connections(self):
        # Started with 30 s for the ACK and for BYE_OK; a stopped bob sends
        # neither.  The slow keep-alive leaves the connection alone meanwhile.
        self.write_config(self.cfg, "INFO", 30, ack=30, bye=30)
        alice, bob, ctl = self.alice_and_bob()
        conns = self.connections(ctl)

        # network.ack_timeout 30 -> 1, limits.bye_timeout 30 -> 0.5.
        self.write_config(self.cfg, "INFO", 30, ack=1, bye=0.5)
        reloads = alice.stderr_text().count("reloaded ")
        alice.send_signal(signal.SIGHUP)
        harness.wait_for(lambda: alice.stderr_text().count("reloaded ") > reloads, 5,
                         what="the reload in alice's log")
        self.assertEqual(self.connections(ctl), conns, "the reload changed the connections")

        # A SEND bob cannot ACK: ack_timeout after 1 s, not 30.
        bob.proc.send_signal(signal.SIGSTOP)
        try:
            wait_stopped(bob.proc)
            t0 = time.monotonic()
            try:
                ctl.call("send", {"to": "bob@CIC", "text": "are you there?"}, timeout=8)
                self.fail("a stopped bob ACKed")
            except CtlError as e:
                self.assertEqual(e.reason, "ack_timeout")
            except (TimeoutError, socket.timeout):
                self.fail("no answer within 8 s: network.ack_timeout is still 30 s")
            dt = time.monotonic() - t0
        finally:
            bob.proc.send_signal(signal.SIGCONT)
        self.assertGreater(dt, 0.9)
        self.assertLess(dt, 5, "the new network.ack_timeout (1 s) is not in force")
        # Nothing dropped: the same connection, bob still ACTIVE, and a
        # message goes through it.
        self.assertEqual(self.connections(ctl), conns, "connections changed")
        self.assertEqual(bob.state_of("alice@CIC"), "ACTIVE")
        self.assertEqual(ctl.call("send", {"to": "bob@CIC", "text": "there you are"})["status"],
                         "acked")
        ctl.close()

        # Stopping while bob cannot answer BYE: it waits limits.bye_timeout
        # (0.5 s now; 30 s would outlast check_clean_exit's 10 s).
        bob.proc.send_signal(signal.SIGSTOP)
        try:
            wait_stopped(bob.proc)
            t0 = time.monotonic()
            alice.check_clean_exit(self)
            dt = time.monotonic() - t0
        finally:
            bob.proc.send_signal(signal.SIGCONT)
        self.assertGreater(dt, 0.4, "alice did not wait for BYE_OK at all")
        self.assertLess(dt, 5, "the new limits.bye_timeout (0.5 s) is not in force")
        bob.stop(self)

    def test_flags_still_override_after_reload(self):
        self.write_config(self.cfg, "INFO", 5)
        alice = harness.start_daemon(["-c", self.cfg, "--log-level", "ERROR"], name="alice")
        ctl = Ctl(self.sock)
        self.assertEqual(ctl.call("log.get")["level"], "ERROR")
        self.write_config(self.cfg, "DEBUG", 5)
        self.assertEqual(ctl.call("reload")["refused"], [])
        self.assertEqual(ctl.call("log.get")["level"], "ERROR")
        ctl.close()
        alice.check_clean_exit(self)


# ---- the journal ----------------------------------------------------------------------

class Journal(unittest.TestCase):

    def test_priority_prefix_when_stderr_is_the_journal(self):
        path = os.path.join(harness.tmpdir(), "journal.stderr")
        with open(path, "wb") as err:
            st = os.fstat(err.fileno())
            env = dict(os.environ, JOURNAL_STREAM="%d:%d" % (st.st_dev, st.st_ino))
            sock = os.path.join(harness.tmpdir(), "journal.sock")
            # Nobody listens at this rendezvous port: a WARNING comes at once.
            argv = [harness.binary("CHATP2PD")] + node_argv("erin", 1, sock,
                                                            sets=["logging.level=INFO"])
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=err, env=env, cwd=harness.tmpdir())
            try:
                harness.wait_for(lambda: "<4>" in read(path), 10, what="a <4> line")
                p.send_signal(signal.SIGTERM)
                self.assertEqual(p.wait(10), 0)
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        lines = [l for l in read(path).splitlines() if l.strip()]
        self.assertTrue(lines)
        for l in lines:
            self.assertRegex(l, r"^<[0-7]>", "a line without a priority prefix")
        self.assertTrue(any(l.startswith("<6>INFO") for l in lines))


# ---- install --------------------------------------------------------------------------

class Install(unittest.TestCase):

    def test_staged_install_lists_the_expected_files(self):
        root = tempfile.mkdtemp(dir=harness.tmpdir())
        install(root)
        units = pkg_var("systemdsystemunitdir", "/lib/systemd/system")
        expected = {
            "usr/bin/chatp2pd", "usr/bin/chatp2pctl", "etc/chatp2p/config.json",
            pkg_var("sysusersdir", "/usr/lib/sysusers.d").lstrip("/") + "/chatp2p.conf",
            "usr/share/bash-completion/completions/chatp2pctl",
            "usr/share/man/man1/chatp2pctl.1", "usr/share/man/man8/chatp2pd.8",
        } | {units.lstrip("/") + "/" + u for u in UNITS}
        found = set()
        for d, _, files in os.walk(root):
            for f in files:
                found.add(os.path.relpath(os.path.join(d, f), root))
        harness.log("installed:\n  " + "\n  ".join(sorted(found)))
        self.assertEqual(expected - found, set(), "missing from the install")
        for prog in ("usr/bin/chatp2pd", "usr/bin/chatp2pctl"):
            self.assertTrue(os.access(os.path.join(root, prog), os.X_OK), prog)
        # The shipped config.json, but for the journal: INFO, no log file
        # (the top-level one keeps the original client's DEBUG and file).
        with open(os.path.join(root, "etc/chatp2p/config.json")) as f:
            installed = json.load(f)
        self.assertEqual(installed["logging"]["level"], "INFO")
        self.assertIs(installed["logging"]["log_to_file"], False)
        with open(os.path.join(SRC, "config.json")) as f:
            shipped = json.load(f)
        shipped["logging"].update(level="INFO", log_to_file=False)
        self.assertEqual(installed, shipped, "more than the logging changed")
        with open(os.path.join(root, units.lstrip("/"), "chatp2pd.service")) as f:
            svc = f.read()
        self.assertIn("ExecStart=/usr/bin/chatp2pd --config /etc/chatp2p/config.json", svc)
        self.assertNotIn("@", re.sub(r"chatp2pd@|%i|\$MAINPID|@system-service|@privileged|"
                                     r"@resources", "", svc), "an unsubstituted @VAR@")

        # The administrator's configuration survives a reinstall.
        conf = os.path.join(root, "etc/chatp2p/config.json")
        with open(conf, "a") as f:
            f.write("\n")
        mine = read(conf)
        install(root)
        self.assertEqual(read(conf), mine)

        # Another prefix: the units follow it.
        other = tempfile.mkdtemp(dir=harness.tmpdir())
        install(other, prefix="/usr/local")
        with open(os.path.join(other, units.lstrip("/"), "chatp2pd.service")) as f:
            self.assertIn("ExecStart=/usr/local/bin/chatp2pd --config /usr/local/etc/chatp2p/",
                          f.read())
        self.assertTrue(os.path.exists(os.path.join(other, "usr/local/etc/chatp2p/config.json")))

    def test_sysusers_entry(self):
        require("systemd-sysusers")
        root = tempfile.mkdtemp(dir=harness.tmpdir())
        os.mkdir(os.path.join(root, "etc"))
        cp = harness.run(["systemd-sysusers", "--root", root,
                          os.path.join(SRC, "systemd", "chatp2p.sysusers")], timeout=30)
        self.assertEqual(cp.returncode, 0, cp.stderr.decode())
        with open(os.path.join(root, "etc/passwd")) as f:
            self.assertRegex(f.read(), r"(?m)^chatp2p:x:\d+:\d+:chatp2p chat node:/var/lib/chatp2p:")
        with open(os.path.join(root, "etc/group")) as f:
            self.assertRegex(f.read(), r"(?m)^chatp2p:x:\d+:")

    def test_bash_completion(self):
        script = os.path.join(SRC, "scripts", "chatp2pctl.bash-completion")

        def complete(line):
            prog = ('source "$1"; COMP_WORDS=($2); [[ $2 == *" " ]] && COMP_WORDS+=("");'
                    'COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _chatp2pctl; echo "${COMPREPLY[*]}"')
            cp = harness.run(["bash", "-c", prog, "bash", script, line])
            return cp.stdout.decode().split()

        self.assertEqual(complete("chatp2pctl sta"), ["status"])
        self.assertEqual(complete("chatp2pctl log "), ["DEBUG", "INFO", "WARNING", "ERROR"])
        self.assertIn("--socket", complete("chatp2pctl --s"))
        self.assertIn("reload", complete("chatp2pctl call rel"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
