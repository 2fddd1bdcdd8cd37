"""The Debian package, built, installed on this machine, checked and purged.

scripts/package.sh builds the .deb from a copy of the source tree (its own
optimised build, no sanitizers, DEB_BUILD_OPTIONS="nocheck parallel=2": the
checkout and the build directories stay as they were), then, in order:

- lintian finds no error in it;
- `apt-get install ./chatp2p_*.deb`: the files are where `dpkg -L` says, the
  configuration is a conffile, the chatp2p user and group exist (made by
  systemd-sysusers from the package's postinst);
- `systemd-analyze verify` accepts the installed units;
- `chatp2pd --version` (and chatp2pctl's, and the man pages) print the
  package's version;
- a local edit of /etc/chatp2p/config.json survives a reinstall and an
  upgrade (the same .deb repacked as a later version), and so does
  `systemctl enable`;
- `apt-get remove` keeps the configuration and the units' enablement,
  `apt-get purge` removes both, and the state directory.

It installs for real, so it needs root (CI runs as root), and it purges the
package at the end whatever happened, and at the start if an earlier run
left it installed.  The chatp2p system user stays after the purge, as
Debian policy asks.  Needs (scripts/deps.sh installs them): dpkg-dev,
debhelper, lintian, apt, systemd (systemd-analyze, systemd-sysusers).
"""

import gzip
import grp
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest

SRC = os.environ.get("CHATP2P_SRC") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
PKG = "chatp2p"
CONF = "/etc/chatp2p/config.json"
UNITDIR = "/lib/systemd/system"        # Debian 12 (debian/rules says so)
UNITS = ["chatp2pd.service", "chatp2pd.socket", "chatp2pd@.service", "chatp2pd@.socket"]
EXPECTED = [
    "/usr/bin/chatp2pd",
    "/usr/bin/chatp2pctl",
    CONF,
    "/usr/lib/sysusers.d/chatp2p.conf",
    "/usr/share/man/man1/chatp2pctl.1.gz",
    "/usr/share/man/man8/chatp2pd.8.gz",
    "/usr/share/bash-completion/completions/chatp2pctl",
    "/usr/share/doc/chatp2p/copyright",
    "/usr/share/doc/chatp2p/changelog.gz",
] + [UNITDIR + "/" + u for u in UNITS]

PACKAGE_OF = {
    "dpkg-buildpackage": "dpkg-dev",
    "dpkg-parsechangelog": "dpkg-dev",
    "dh": "debhelper",
    "lintian": "lintian",
    "apt-get": "apt",
    "systemd-analyze": "systemd",
    "systemd-sysusers": "systemd",
}

# What the builds and installs below see: none of CTest's sanitizer
# settings, compiler flags or make state from around this test.
ENV = {k: v for k, v in os.environ.items()
       if not re.match(r"(ASAN|UBSAN|LSAN|MSAN|TSAN)_|LD_PRELOAD$|C(PP|XX)?FLAGS$|LDFLAGS$"
                       r"|CC$|CXX$|MAKE|MFLAGS$|DESTDIR$|DEB_|DH_|CHATP2P", k)}
ENV.update(LC_ALL="C.UTF-8", DEBIAN_FRONTEND="noninteractive")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def run(argv, check=True, timeout=120, **kw):
    """Run argv with the cleaned environment and no standard input (a dpkg
    conffile prompt must fail, not wait); its output goes to our stderr."""
    # A process group of its own: on timeout the whole build goes, not just
    # the script that started it.
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=kw.pop("env", ENV),
                         start_new_session=True, **kw)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        raise
    cp = subprocess.CompletedProcess(argv, p.returncode, out, err)
    if check and cp.returncode != 0:
        raise AssertionError("%s: exit %d\n%s%s" % (" ".join(argv), cp.returncode,
                                                    cp.stdout, cp.stderr))
    return cp


def dpkg_status():
    """'installed', 'config-files', ... or None when dpkg does not know it."""
    cp = run(["dpkg-query", "-W", "-f=${db:Status-Status}", PKG], check=False)
    return cp.stdout.strip() if cp.returncode == 0 and cp.stdout.strip() != "not-installed" \
        else None


def purge():
    """Take the package away, whatever state an earlier run left it in."""
    if dpkg_status() is None:
        return
    log("purging %s (%s)" % (PKG, dpkg_status()))
    cp = run(["dpkg", "--purge", PKG], check=False, timeout=300)
    if cp.returncode != 0:
        # A half-installed package whose scripts fail: dpkg's force option
        # for that, rather than leave the machine stuck.
        log(cp.stdout + cp.stderr)
        run(["dpkg", "--purge", "--force-remove-reinstreq", PKG], timeout=300)


def apt_get(*args):
    return run(["apt-get", "-y", "-q", "-o", "Dpkg::Use-Pty=0"] + list(args), timeout=300)


def upstream(version):
    """1:0.2.0~rc1-3 -> 0.2.0~rc1: what the programs print."""
    version = version.split(":", 1)[-1]
    return version.rsplit("-", 1)[0] if "-" in version else version


class Package(unittest.TestCase):
    """Steps in order (unittest runs the methods by name): test_NN_..."""

    tmp = None
    deb = None

    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise AssertionError("the package test installs the package: run it as root")
        missing = [t for t in PACKAGE_OF if not shutil.which(t)]
        if missing:
            raise AssertionError("not installed: %s (Debian packages %s; scripts/deps.sh "
                                 "installs them)" % (", ".join(missing), ", ".join(
                                     sorted({PACKAGE_OF[t] for t in missing}))))
        purge()
        # Runs after the tests, and also when this setup fails half way
        # (tearDownClass would not): the package never stays behind.
        cls.addClassCleanup(cls.cleanup)
        if os.path.exists(CONF):
            raise AssertionError("%s exists and no package owns it (a `cmake --install`?): "
                                 "the test would take it over; move it away first" % CONF)
        cls.user_before = PKG in [p.pw_name for p in pwd.getpwall()]
        # Readable by apt's _apt user: no "unsandboxed download" notice.
        cls.tmp = tempfile.mkdtemp(prefix="chatp2p-package-")
        os.chmod(cls.tmp, 0o755)
        env = dict(ENV, DEB_BUILD_OPTIONS="nocheck parallel=2")
        cp = run([os.path.join(SRC, "scripts", "package.sh"), cls.tmp], env=env, timeout=780)
        cls.deb = cp.stdout.strip().splitlines()[-1]
        log("built %s" % cls.deb)
        cls.version = run(["dpkg-deb", "-f", cls.deb, "Version"]).stdout.strip()
        apt_get("install", cls.deb)

    @classmethod
    def cleanup(cls):
        purge()
        if cls.tmp:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_01_lintian_finds_no_error(self):
        cp = run(["lintian", "--fail-on", "error", "--no-tag-display-limit", self.deb],
                 check=False, timeout=300)
        log("lintian:\n" + cp.stdout)
        self.assertEqual(cp.returncode, 0, "lintian reports errors:\n" + cp.stdout + cp.stderr)

    def test_02_files_in_place(self):
        self.assertEqual(dpkg_status(), "installed")
        listed = set(run(["dpkg", "-L", PKG]).stdout.split("\n"))
        for f in EXPECTED:
            self.assertIn(f, listed, "dpkg -L does not list " + f)
            self.assertTrue(os.path.isfile(f), f + " is not on disk")
        for prog in ("/usr/bin/chatp2pd", "/usr/bin/chatp2pctl"):
            self.assertTrue(os.access(prog, os.X_OK), prog)
        conffiles = run(["dpkg-query", "-W", "-f=${Conffiles}", PKG]).stdout
        self.assertRegex(conffiles, r"(?m)^ %s [0-9a-f]{32}$" % re.escape(CONF))
        # The service's configuration: journal logging at INFO, no log file.
        with open(CONF) as f:
            conf = json.load(f)
        self.assertEqual(conf["logging"]["level"], "INFO")
        self.assertIs(conf["logging"]["log_to_file"], False)
        with open(UNITDIR + "/chatp2pd.service") as f:
            svc = f.read()
        self.assertIn("ExecStart=/usr/bin/chatp2pd --config /etc/chatp2p/config.json", svc)
        # dpkg's own check of every file against the package's md5sums.
        self.assertEqual(run(["dpkg", "--verify", PKG], check=False).stdout, "")

    def test_03_user_and_group(self):
        u = pwd.getpwnam(PKG)
        g = grp.getgrnam(PKG)
        self.assertEqual(u.pw_gid, g.gr_gid)
        self.assertEqual(u.pw_dir, "/var/lib/chatp2p")
        self.assertLess(u.pw_uid, 1000, "not a system user")
        self.assertIn(u.pw_shell, ("/usr/sbin/nologin", "/sbin/nologin"))
        log("chatp2p user: uid %d (%s)" % (u.pw_uid, "existed before" if self.user_before
                                           else "created by the install"))
        # The postinst applies the sysusers entry; in an empty root the same
        # call makes the user (proves it where the user existed already).
        with open("/var/lib/dpkg/info/%s.postinst" % PKG) as f:
            postinst = f.read()
        self.assertRegex(postinst, r"systemd-sysusers .*chatp2p\.conf")
        root = os.path.join(self.tmp, "sysroot")
        os.makedirs(os.path.join(root, "etc"))
        run(["systemd-sysusers", "--root", root, "/usr/lib/sysusers.d/chatp2p.conf"])
        with open(os.path.join(root, "etc", "passwd")) as f:
            self.assertRegex(f.read(), r"(?m)^chatp2p:x:\d+:\d+:")

    def test_04_units_verify(self):
        # By name: systemd-analyze loads them from the unit path, where the
        # package put them, templates as an instance.  verify exits 0 on an
        # unknown key: any output is a failure.  --man=yes also checks that
        # the man pages of Documentation= are installed.
        man = "--man=yes" if shutil.which("man") else "--man=no"
        for u in UNITS:
            name = u.replace("@.", "@alice.")
            cp = run(["systemd-analyze", "verify", man, name], check=False, cwd=self.tmp)
            self.assertEqual((cp.returncode, cp.stdout + cp.stderr), (0, ""),
                             "systemd-analyze verify " + name)

    def test_05_version(self):
        v = upstream(self.version)
        changelog = run(["dpkg-parsechangelog", "-l", os.path.join(SRC, "debian", "changelog"),
                         "-S", "Version"]).stdout.strip()
        self.assertEqual(self.version, changelog)
        self.assertEqual(run(["/usr/bin/chatp2pd", "--version"]).stdout, "chatp2pd %s\n" % v)
        self.assertTrue(run(["/usr/bin/chatp2pctl", "--version"]).stdout
                        .startswith("chatp2pctl %s " % v))
        for page in ("/usr/share/man/man1/chatp2pctl.1.gz", "/usr/share/man/man8/chatp2pd.8.gz"):
            with gzip.open(page, "rt") as f:
                th = [l for l in f if l.startswith(".TH ")][0]
            self.assertIn('"chatp2p %s"' % v, th, page)

    ENABLE_LINKS = ["/etc/systemd/system/sockets.target.wants/chatp2pd.socket",
                    "/etc/systemd/system/multi-user.target.wants/chatp2pd.service"]

    def test_06_edited_conffile_survives_reinstall_and_upgrade(self):
        # What the README tells the administrator to do (works offline too).
        run(["systemctl", "enable", "chatp2pd.socket", "chatp2pd.service"])
        with open(CONF) as f:
            conf = json.load(f)
        conf["node"]["name"] = "pkgtest"
        mine = json.dumps(conf, indent=2) + "\n"
        with open(CONF, "w") as f:
            f.write(mine)

        apt_get("install", "--reinstall", self.deb)
        with open(CONF) as f:
            self.assertEqual(f.read(), mine, "the reinstall replaced the edited configuration")

        # An upgrade: the same package as a later version (repacked, no rebuild).
        tree = os.path.join(self.tmp, "upgrade")
        run(["dpkg-deb", "-R", self.deb, tree])
        control = os.path.join(tree, "DEBIAN", "control")
        with open(control) as f:
            text = f.read()
        newer = self.version + "+upgrade1"
        with open(control, "w") as f:
            f.write(re.sub(r"(?m)^Version: .*$", "Version: " + newer, text))
        up = os.path.join(self.tmp, "chatp2p_upgrade.deb")
        run(["dpkg-deb", "-b", tree, up])
        apt_get("install", up)
        self.assertEqual(run(["dpkg-query", "-W", "-f=${Version}", PKG]).stdout, newer)
        with open(CONF) as f:
            self.assertEqual(f.read(), mine, "the upgrade replaced the edited configuration")
        # No .dpkg-dist or .dpkg-old beside it: dpkg saw nothing to ask about.
        self.assertEqual(os.listdir("/etc/chatp2p"), ["config.json"])
        for l in self.ENABLE_LINKS:
            self.assertTrue(os.path.islink(l), "the upgrade disabled the units: " + l)

    def test_07_remove_keeps_configuration(self):
        os.makedirs("/var/lib/chatp2p", exist_ok=True)
        with open("/var/lib/chatp2p/chatp2p.db", "w") as f:
            f.write("stands for the inbox")
        apt_get("remove", PKG)
        self.assertEqual(dpkg_status(), "config-files")
        for f in EXPECTED:
            if f != CONF:
                self.assertFalse(os.path.exists(f), f + " is still there after remove")
        with open(CONF) as f:
            self.assertIn('"pkgtest"', f.read())
        for l in self.ENABLE_LINKS:
            self.assertTrue(os.path.islink(l), "remove disabled the units: " + l)
        self.assertTrue(os.path.exists("/var/lib/chatp2p/chatp2p.db"))

    def test_08_purge_removes_configuration(self):
        apt_get("purge", PKG)
        self.assertIsNone(dpkg_status())
        for gone in ["/etc/chatp2p", "/var/lib/chatp2p"] + self.ENABLE_LINKS:
            self.assertFalse(os.path.lexists(gone), gone + " is still there after purge")
        # The system user stays (policy: files it owns may remain).
        pwd.getpwnam(PKG)


if __name__ == "__main__":
    unittest.main(verbosity=2)
