"""Claims weighed by where they come from (PROTOCOL.md §5.1, issue 17
findings 1-3 and 5): real chatp2pd nodes and a real rendezvous on
127.0.0.1, the attacker a real process on 127.0.0.9 (another host).

The nodes run with security.tls=off: what is tested here is the layer that
holds with every peer, wild ones included (claims backed by the address the
rendezvous lists).  Between two chatp2p nodes TLS proves more (`pinned`);
tests/e2e/test_identity.py's Tls class covers that."""

import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from fakepeer import FakePeer, encode, new_id, now_ts  # noqa: E402
from nodes import Node  # noqa: E402

PIPELINE = ("ack", "metrics", "pipeline")
ELSEWHERE = "127.0.0.9"


def guard(node):
    return node.call("status")["guard"]


def inbox(node):
    return node.call("inbox", {"limit": 1000})["messages"]


def send_msg(src, dst, msg_id, text):
    return {"type": "SEND", "msg_id": msg_id, "src": src, "dst": dst, "payload": text,
            "timestamp": now_ts(), "ttl": 1, "require_ack": True}


def primary(node, peer_id):
    cs = [c for c in node.connections_to(peer_id) if c["primary"]]
    return cs[0] if cs else None


class Claims(unittest.TestCase):

    def setUp(self):
        self.rdv = harness.start_rendezvous("rate_limit=100000")
        self.nodes, self.fakes = [], []

    def tearDown(self):
        for f in self.fakes:
            f.close()
        for n in self.nodes:
            n.stop(self)
        self.rdv.check_clean_exit()

    def node(self, name):
        n = Node(name, self.rdv, sets=["security.tls=off"])
        self.nodes.append(n)
        return n

    def fake(self, name, **kw):
        f = FakePeer(name, **kw)
        self.fakes.append(f)
        return f

    def stranger_conn(self, target, claim):
        """A connection from 127.0.0.9 to target's node (not yet HELLO'd)."""
        imp = self.fake(claim, features=PIPELINE, listen=False, host=ELSEWHERE)
        s = harness.connect(target.port, source=ELSEWHERE)
        return imp, imp.adopt(s, "out")

    # -- finding 1
    def test_second_connection_from_elsewhere_cannot_post_as_the_peer(self):
        zoe, bob = self.node("zoe"), self.node("bob")
        zoe.wait_active(bob.peer_id)
        bob.wait_active(zoe.peer_id)
        # bob may have dialled zoe before zoe's DISCOVER listed him: backed
        # once it does.
        harness.wait_for(lambda: (primary(zoe, bob.peer_id) or {}).get("identity", "backed") == "backed",
                         10, what="bob's connection to be backed")
        ev = zoe.events(["peer"])
        imp, c = self.stranger_conn(zoe, "bob")
        evil = new_id()
        # HELLO and a SEND in one segment: nothing after a refused HELLO is read.
        c.send(encode(imp.hello()) + encode(send_msg(bob.peer_id, zoe.peer_id, evil, "EVIL")))
        imp.wait(lambda: c.eof, 5, what="zoe to refuse the stranger")
        self.assertEqual([m for m in inbox(zoe) if m["msg_id"] == evil], [],
                         "the stranger's SEND was stored as bob's")
        self.assertGreaterEqual(guard(zoe)["impostors"], 1)
        e = ev.wait_event(lambda e: e["type"] == "impostor", 5, what="an impostor event")
        ev.close()
        self.assertEqual(e["peer_id"], bob.peer_id)
        self.assertTrue(e["address"].startswith(ELSEWHERE + ":"), e)
        self.assertTrue(e["reason"], e)
        self.assertEqual(zoe.state_of(bob.peer_id), "ACTIVE")
        self.assertEqual(primary(zoe, bob.peer_id)["identity"], "backed")
        r = bob.call("send", {"to": zoe.peer_id, "text": "the real bob"})
        self.assertEqual(r["status"], "acked")
        m = [m for m in inbox(zoe) if m["msg_id"] == r["msg_id"]]
        self.assertEqual(len(m), 1)
        self.assertEqual(m[0]["identity"], "backed")

    def test_msg_id_sent_ahead_does_not_swallow_the_real_send(self):
        zoe = self.node("zoe")
        bob = self.fake("bob", features=PIPELINE)
        bob.register(self.rdv)
        zoe.wait_active(bob.peer_id)
        real = bob.established_conn()
        imp, c = self.stranger_conn(zoe, "bob")
        x = new_id()
        c.send(encode(imp.hello()) + encode(send_msg(bob.peer_id, zoe.peer_id, x, "EVIL")))
        imp.wait(lambda: c.eof, 5, what="zoe to refuse the stranger")
        real.send(send_msg(bob.peer_id, zoe.peer_id, x, "REAL"))
        bob.wait_msg(lambda cc, m: m.get("type") == "ACK" and m.get("msg_id") == x, 5,
                     what="the ACK of bob's SEND")
        got = [m for m in inbox(zoe) if m["msg_id"] == x]
        self.assertEqual([(m["from"], m["text"]) for m in got], [(bob.peer_id, "REAL")])
        self.assertEqual(got[0]["identity"], "backed")

    # -- finding 2
    def test_claim_before_the_owner_connects_gives_way_to_the_owner(self):
        zoe = self.node("zoe")
        imp = self.fake("alice", features=PIPELINE, listen=False, host=ELSEWHERE)
        c = imp.dial(zoe.port)
        zoe.wait_active("alice@CIC")
        self.assertEqual(primary(zoe, "alice@CIC").get("identity", "unbacked"), "unbacked")
        alice = self.node("alice")
        harness.wait_for(lambda: (primary(zoe, alice.peer_id) or {}).get("address", "")
                         .startswith("127.0.0.1:"), 15, what="alice's own connection to win")
        imp.wait(lambda: c.eof, 5, what="zoe to close the unbacked claim")
        self.assertEqual(primary(zoe, alice.peer_id)["identity"], "backed")
        self.assertEqual(zoe.peer(alice.peer_id)["identity"], "backed")
        for i in range(3):
            r = zoe.call("send", {"to": alice.peer_id, "text": "for alice %d" % i})
            self.assertEqual(r["status"], "acked")
        self.assertEqual([m for _, _, m in imp.messages() if m.get("type") == "SEND"], [],
                         "a message for alice went to the stranger")
        # Only the stranger was called an impostor, once; alice was never refused.
        self.assertEqual(guard(zoe)["impostors"], 1)
        self.assertEqual(guard(alice)["impostors"], 0)
        alice.wait_active(zoe.peer_id)
        self.assertEqual(zoe.peer(alice.peer_id)["connects"], 1)

    def test_unbacked_msg_id_does_not_hide_the_owners_message(self):
        zoe = self.node("zoe")
        imp = self.fake("alice", features=PIPELINE, listen=False, host=ELSEWHERE)
        c = imp.dial(zoe.port)
        x = new_id()
        c.send(send_msg("alice@CIC", zoe.peer_id, x, "EVIL"))
        imp.wait_msg(lambda cc, m: m.get("type") == "ACK" and m.get("msg_id") == x, 5)
        alice = self.fake("alice", features=PIPELINE)
        alice.register(self.rdv)
        # zoe dials the listed address although the name is "connected".
        real = alice.established_conn(15)
        imp.wait(lambda: c.eof, 5, what="zoe to close the unbacked claim")
        real.send(send_msg(alice.peer_id, zoe.peer_id, x, "REAL"))
        alice.wait_msg(lambda cc, m: m.get("type") == "ACK" and m.get("msg_id") == x, 5)
        got = sorted((m["text"], m["identity"]) for m in inbox(zoe) if m["msg_id"] == x)
        self.assertEqual(got, [("EVIL", "unbacked"), ("REAL", "backed")])

    # -- finding 3
    def test_registration_from_elsewhere_is_not_dialled_instead(self):
        zoe, alice = self.node("zoe"), self.node("alice")
        zoe.wait_active(alice.peer_id)
        imp = self.fake("alice", features=PIPELINE, host=ELSEWHERE)
        imp.register(self.rdv, ttl=86400)
        zoe.call("discover")
        harness.wait_for(lambda: zoe.peer(alice.peer_id).get("ambiguous", True) is True, 10,
                         what="zoe to see alice listed at two addresses")
        # alice's connection drops (crash); a DISCOVER comes in meanwhile.
        alice.kill9()
        harness.wait_for(lambda: zoe.state_of(alice.peer_id) != "ACTIVE", 10,
                         what="zoe to lose alice")
        zoe.call("discover")
        ctl = zoe.ctl()
        rid = ctl.request("send", {"to": alice.peer_id, "text": "QUEUED", "queue": True})
        alice.start()
        self.assertEqual(ctl.answer(rid, 20)["status"], "acked")
        ctl.close()
        self.assertTrue(any(m["text"] == "QUEUED" for m in inbox(alice)),
                        "the queued message did not reach the real alice")
        for i in range(3):
            r = zoe.call("send", {"to": alice.peer_id, "text": "after %d" % i})
            self.assertEqual(r["status"], "acked")
        self.assertEqual([m for _, _, m in imp.messages() if m.get("type") == "SEND"], [],
                         "a message for alice went to the stranger's registration")
        self.assertEqual(imp.accepts, [], "zoe dialled the stranger's registration")
        p = zoe.peer(alice.peer_id)
        self.assertEqual((p["ambiguous"], p["identity"], p["ip"]), (True, "backed", "127.0.0.1"))
        self.assertEqual(primary(zoe, alice.peer_id)["ambiguous"], True)

    # -- finding 5
    def test_foreign_dst_is_flagged_not_dropped(self):
        zoe = self.node("zoe")
        carl = self.fake("carl", features=PIPELINE)
        c = carl.dial(zoe.port)
        x = new_id()
        c.send(send_msg(carl.peer_id, "someone@CIC", x, "not for zoe"))
        carl.wait_msg(lambda cc, m: m.get("type") == "ACK" and m.get("msg_id") == x, 5)
        got = [m for m in inbox(zoe) if m["msg_id"] == x]
        self.assertEqual(len(got), 1)
        self.assertIs(got[0].get("dst_mismatch"), True)
        self.assertEqual(got[0]["to"], "someone@CIC")
        self.assertEqual(got[0]["identity"], "unbacked")
        out = subprocess.run([harness.binary("CHATP2PCTL"), "--socket", zoe.sock_path, "inbox"],
                             capture_output=True, text=True, timeout=10)
        self.assertIn("not for zoe", out.stdout)
        self.assertIn("someone@CIC (not us)", out.stdout)

    def test_invisible_characters_in_names_are_shown_escaped(self):
        zoe = self.node("zoe")
        name = "mal\u202elory\u200b"
        f = self.fake(name, features=PIPELINE)
        c = f.dial(zoe.port)
        c.send(send_msg(f.peer_id, zoe.peer_id, new_id(), "hi"))
        harness.wait_for(lambda: zoe.state_of(f.peer_id) == "ACTIVE", 5, what="the peer")
        ctl = harness.binary("CHATP2PCTL")
        for cmd in (["peers"], ["conn"], ["inbox"]):
            out = subprocess.run([ctl, "--socket", zoe.sock_path] + cmd, capture_output=True,
                                 text=True, timeout=10)
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertNotIn("\u202e", out.stdout, cmd)
            self.assertNotIn("\u200b", out.stdout, cmd)
            self.assertIn("mal\\u202elory\\u200b", out.stdout, cmd)
        # JSON keeps the exact value.
        out = subprocess.run([ctl, "--socket", zoe.sock_path, "--json", "peers"],
                             capture_output=True, text=True, timeout=10)
        self.assertIn(f.peer_id, [p["peer_id"] for p in json.loads(out.stdout)["peers"]])
        # The daemon's log escapes them too.
        log = zoe.proc.stderr_text()
        self.assertIn("mal\\u202elory\\u200b@CIC", log)
        self.assertNotIn("\u202e", log)


if __name__ == "__main__":
    unittest.main()
