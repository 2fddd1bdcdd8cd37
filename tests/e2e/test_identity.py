"""Who is on the other end (PROTOCOL.md §4 and §5, issue 17): what a peer
advertises is believed only where it cannot be an echo.  Real chatp2pd
processes, fake peers and attackers on loopback."""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import fakepeer  # noqa: E402
from nodes import NodesAndFakes  # noqa: E402


class EchoPeer(fakepeer.FakePeer):
    """The wild implementation that reads one line per recv() and builds its
    HELLO_OK by copying the dialler's version and features (PROTOCOL.md §4:
    "An advertisement in HELLO_OK can be an echo")."""

    def hello_ok(self, conn, hello):
        m = self.hello("HELLO_OK")
        m["version"] = hello.get("version", "1.0")
        if "features" in hello:
            m["features"] = list(hello["features"])
        return m


def write_modes(node, peer_id):
    return [c.get("write_mode") for c in node.call("conn")["connections"]
            if c["peer_id"] == peer_id and c["state"] == "established"]


class Echo(NodesAndFakes, unittest.TestCase):

    def test_echoed_pipeline_is_not_believed(self):
        # Finding 6: dialled by our node, the echo "advertises" pipeline;
        # 905dabf batched to it and 1,991 of 2,000 SENDs timed out.
        echo = self.fake_echo("echo", first_line_only=True)
        echo.register(self.rdv)
        a = self.node("alice", self.rdv)
        a.wait_active(echo.peer_id)
        harness.wait_for(lambda: write_modes(a, echo.peer_id) not in ([], ["probing"]), 10,
                         what="the probe of the echo to end")
        n = 300
        ctl = a.ctl()
        try:
            t0 = time.monotonic()
            rids = [ctl.request("send", {"to": echo.peer_id, "text": "echo %d" % i})
                    for i in range(n)]
            res = [ctl.answer(r, timeout=120) for r in rids]
            dt = time.monotonic() - t0
        finally:
            ctl.close()
        statuses = [r.get("status") for r in res]
        harness.log("%d SENDs to an echoing one-line-per-recv peer: %d acked in %.2f s"
                    % (n, statuses.count("acked"), dt))
        self.assertEqual(statuses, ["acked"] * n)
        self.assertEqual(write_modes(a, echo.peer_id), ["one-per-write"])
        a.stop(self)

    def fake_echo(self, *args, **kw):
        f = EchoPeer(*args, **kw)
        self.fakes.append(f)
        return f


if __name__ == "__main__":
    unittest.main()
