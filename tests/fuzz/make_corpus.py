#!/usr/bin/env python3
"""Write the seed corpus of every fuzz target into tests/fuzz/corpus/<target>/.

Static seeds cover every message type, PROTOCOL.md section 4's cases and
issue 13's attack cases.  With --capture (and $CHATP2PD set to a built
daemon), the control replies and events of a real node are recorded too,
so fuzz_ctl_reply starts from what the daemon really sends.

    CHATP2PD=build/chatp2pd/chatp2pd tests/fuzz/make_corpus.py --capture
"""

import hashlib
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(HERE, "corpus")


def d(obj):
    return json.dumps(obj, separators=(",", ":"))


def write(target, name, data):
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    path = os.path.join(OUT, target)
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, name), "wb") as f:
        f.write(data)


# ---- peer protocol lines (fuzz_peer_line) -----------------------------------

MID = "3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f"
TS = "2025-10-27T10:00:00Z"
HELLO = {"type": "HELLO", "peer_id": "alice@CIC", "version": "1.0",
         "features": ["ack", "metrics", "pipeline"], "ttl": 1}
PEER = {
    "hello": HELLO,
    "hello_ok": dict(HELLO, type="HELLO_OK", peer_id="bob@CIC"),
    "ping": {"type": "PING", "msg_id": MID, "timestamp": TS, "ttl": 1},
    "pong": {"type": "PONG", "msg_id": MID, "timestamp": TS, "ttl": 1},
    "send": {"type": "SEND", "msg_id": MID, "src": "alice@CIC", "dst": "bob@CIC",
             "payload": "hello", "require_ack": True, "ttl": 1},
    "ack": {"type": "ACK", "msg_id": MID, "timestamp": TS, "ttl": 1},
    "pub_all": {"type": "PUB", "msg_id": MID, "src": "alice@CIC", "dst": "*",
                "payload": "hi all", "require_ack": False, "ttl": 1},
    "pub_ns": {"type": "PUB", "msg_id": MID, "src": "alice@CIC", "dst": "#CIC",
               "payload": "hi CIC", "require_ack": False, "ttl": 1},
    "bye": {"type": "BYE", "msg_id": MID, "src": "alice@CIC", "dst": "bob@CIC",
            "reason": "shutdown", "ttl": 1},
    "bye_ok": {"type": "BYE_OK", "msg_id": MID, "src": "bob@CIC", "dst": "alice@CIC", "ttl": 1},
    # section 4: what we accept
    "s4_version_number": dict(HELLO, version=1),
    "s4_no_ttl_no_features": {"type": "HELLO", "peer_id": "alice@CIC", "version": "1.0"},
    "s4_features_reordered": dict(HELLO, features=["metrics", "ack"]),
    "s4_ts_fraction": {"type": "PING", "msg_id": MID, "timestamp": "2025-10-27T10:00:00.123456Z"},
    "s4_ts_offset": {"type": "PONG", "msg_id": MID, "timestamp": "2025-10-27T07:00:00-03:00"},
    "s4_ts_naive": {"type": "PING", "msg_id": MID, "timestamp": "2025-10-27T10:00:00"},
    "s4_bare_ack": {"type": "ACK", "msg_id": MID},
    "s4_bare_bye_ok": {"type": "BYE_OK"},
    "s4_dest": {"type": "SEND", "msg_id": MID, "src": "alice@CIC", "dest": "bob@CIC",
                "payload": "x"},
    "s4_require_ack_null": {"type": "SEND", "msg_id": MID, "src": "a@CIC", "dst": "b@CIC",
                            "payload": "x", "require_ack": None},
    "s4_pub_bare_ns": {"type": "PUB", "msg_id": MID, "src": "a@CIC", "dst": "CIC",
                       "payload": "x"},
    "s4_pub_peer_id": {"type": "PUB", "msg_id": MID, "src": "a@CIC", "dst": "b@CIC",
                       "payload": "x"},
    "s4_lowercase_type": {"type": "send", "msg_id": MID, "payload": "x"},
    "s4_unknown_type": {"type": "WHATEVER", "x": 1},
    # issue 13
    "i13_impostor_hello": {"type": "HELLO", "peer_id": "witness@CIC", "version": "1.0",
                           "features": ["ack", "metrics", "pipeline"], "ttl": 1},
    "i13_spoofed_src": {"type": "SEND", "msg_id": MID, "src": "mallory@CIC", "dst": "bob@CIC",
                        "payload": "x", "require_ack": True, "ttl": 1},
    "i13_bad_peer_id": dict(HELLO, peer_id="no-at-sign"),
    "i13_self_peer_id": dict(HELLO, peer_id="bob@CIC"),
    "i13_nul_payload": {"type": "SEND", "msg_id": MID, "src": "a@CIC", "dst": "b@CIC",
                        "payload": "a\u0000b", "require_ack": True, "ttl": 1},
    "i13_lone_surrogate": '{"type":"SEND","msg_id":"\\ud800","src":"a@CIC","dst":"b@CIC","payload":"\\udfff"}',
}


def peer_seeds():
    for name, m in PEER.items():
        write("peer_line", name, (m if isinstance(m, str) else d(m)) + "\n")
    t = "peer_line"
    write(t, "two_in_one", d(PEER["send"]) + "\n" + d(PEER["ping"]) + "\n")
    write(t, "crlf", d(PEER["ping"]) + "\r\n")
    write(t, "garbage", b"\x00\xff\xfe not json {{{\n")
    write(t, "array", b"[1,2,3]\n")
    write(t, "scalars", b"42\n\"x\"\nnull\ntrue\n")
    write(t, "bad_utf8", b'{"type":"SEND","payload":"\xc3\x28\xed\xa0\x80"}\n')
    write(t, "nested", b"[" * 200 + b"]" * 200 + b"\n")
    write(t, "nested_obj", b'{"a":' * 100 + b"1" + b"}" * 100 + b"\n")
    write(t, "wrong_types", d({"type": 5, "msg_id": [], "src": {}, "dst": 1,
                               "payload": None, "require_ack": "yes", "ttl": "1"}) + "\n")
    write(t, "long_line_40k", d(dict(PEER["send"], payload="x" * 40000)) + "\n")
    write(t, "no_newline", d(PEER["hello"]))


# ---- rendezvous requests (fuzz_rdv_request) and replies (fuzz_rdv_reply) -----

def rdv_seeds():
    t = "rdv_request"
    reqs = {
        "register": {"type": "REGISTER", "namespace": "CIC", "name": "alice", "port": 5000,
                     "ttl": 7200},
        "register_lower": {"type": "register", "namespace": "CIC", "name": "a", "port": "5000"},
        "register_ttl_clamp": {"type": "REGISTER", "namespace": "CIC", "name": "a", "port": 1,
                               "ttl": 999999},
        "register_bad_port": {"type": "REGISTER", "namespace": "CIC", "name": "a", "port": "x"},
        "register_float_port": {"type": "REGISTER", "namespace": "CIC", "name": "a",
                                "port": 5000.7, "ttl": " +7_200 "},
        "register_bool_port": {"type": "REGISTER", "namespace": "CIC", "name": "a", "port": True},
        "register_long_name": {"type": "REGISTER", "namespace": "CIC", "name": "\u00e9" * 65,
                               "port": 1},
        "discover": {"type": "DISCOVER", "namespace": "CIC"},
        "discover_all": {"type": "DISCOVER"},
        "discover_falsy": {"type": "DISCOVER", "namespace": 0},
        "discover_list": {"type": "DISCOVER", "namespace": ["CIC"]},
        "unregister": {"type": "UNREGISTER", "namespace": "CIC", "name": "alice", "port": 5000},
        "unregister_bad_port": {"type": "UNREGISTER", "namespace": "CIC", "port": "abc"},
        "unregister_obj_port": {"type": "UNREGISTER", "namespace": "CIC", "port": {"a": [1]}},
        "unknown": {"type": "FOO"},
        "missing_type": {"namespace": "CIC"},
        "type_number": {"type": 5},
        "type_null": {"type": None},
    }
    for name, r in reqs.items():
        write(t, name, d(r) + "\n")
    write(t, "invalid_json", b"{nope\n")
    write(t, "array", b"[1,2]\n")
    write(t, "scalar", b"42\n")
    write(t, "empty", b"\n")
    write(t, "blank", b"  \t\r\n")
    write(t, "bad_utf8", b'{"type":"REGISTER","name":"\xff","namespace":"CIC","port":1}\n')
    write(t, "nul", b'{"type":"DIS\x00COVER"}\n')
    write(t, "nested", b'{"type":"DISCOVER","namespace":' + b"[" * 100 + b"]" * 100 + b"}\n")
    write(t, "python_separators", b'{"type": "DISCOVER", "namespace": "CIC"}\n')
    t = "rdv_reply"
    reps = {
        "register_ok": {"status": "OK", "ttl": 7200, "ip": "203.0.113.7", "port": 5000},
        "register_old": {"status": "OK", "ttl": 7200, "observed_ip": "203.0.113.7",
                         "observed_port": 40000},
        "discover": {"status": "OK", "peers": [
            {"ip": "127.0.0.1", "port": 5000, "name": "alice", "namespace": "CIC", "ttl": 7200,
             "expires_in": 6931},
            {"ip": "10.0.0.2", "port": 5001, "name": "bob", "namespace": "LAB", "ttl": 60,
             "expires_in": 0}]},
        "discover_empty": {"status": "OK", "peers": []},
        "unregister_ok": {"status": "OK"},
        "error_message": {"status": "ERROR", "message": "bad_name"},
        "error_old": {"status": "ERROR", "error": "line_too_long", "limit": 32768},
        "blocked": {"status": "ERROR", "message":
                    "Connection from 127.0.0.1:5555 has been blocked due to excessive login "
                    "attempts (limit: 50). The block will be lifted in 42 seconds."},
        "timeout": {"status": "ERROR", "message": "Timeout: no data received, closing connection"},
        "quota": {"status": "ERROR", "message": "too_many_registrations_from_ip"},
        "unknown": {"status": "ERROR", "message": "Unknown command"},
    }
    for name, r in reps.items():
        write(t, name, json.dumps(r) + "\n")
    write(t, "garbage", b"\x00\x01 not json\n")
    write(t, "peers_wrong_types", d({"status": "OK", "peers": [1, "x", None,
                                                              {"ip": 5, "port": "p"}]}) + "\n")


# ---- control requests (fuzz_ctl_request) -------------------------------------

def rpc(method, params=None, id_=1):
    r = {"jsonrpc": "2.0", "id": id_, "method": method}
    if params is not None:
        r["params"] = params
    return d(r) + "\n"


def ctl_request_seeds():
    t = "ctl_request"
    methods = {
        "version": None, "hello": None, "status": None, "peers": None, "conn": None,
        "send": {"to": "bob@CIC", "text": "hello", "require_ack": True},
        "pub": {"to": "*", "text": "hi"},
        "rtt": None, "reconnect": {"peer_id": "bob@CIC"}, "log.get": None,
        "log.set": {"level": "ERROR"}, "discover": None, "register": None,
        "unregister": None, "subscribe": {"events": ["message", "peer"], "since": 0},
        "unsubscribe": {"events": ["all"]}, "shutdown": None, "reload": None,
    }
    for m, p in methods.items():
        write(t, m, rpc(m, p))
    # wrong params per method
    for m in methods:
        write(t, m + "_bad_params", rpc(m, {"to": 5, "text": [], "require_ack": "yes",
                                            "peer_id": {}, "level": 1, "events": "x",
                                            "since": -1, "namespace": None}))
        write(t, m + "_array_params", rpc(m, ["bob@CIC", "x"]))
    write(t, "pub_ns", rpc("pub", {"to": "#CIC", "text": "x"}))
    write(t, "send_bad_peer", rpc("send", {"to": "no-at", "text": "x"}))
    write(t, "send_big", rpc("send", {"to": "bob@CIC", "text": "x" * 3000}))
    write(t, "subscribe_log", rpc("subscribe", {"events": ["log"], "level": "debug"}))
    write(t, "discover_ns", rpc("discover", {"namespace": "CIC"}))
    write(t, "id_string", d({"jsonrpc": "2.0", "id": "abc", "method": "version"}) + "\n")
    write(t, "id_surrogate", '{"jsonrpc":"2.0","id":"\\ud800","method":"version"}\n')
    write(t, "id_float", '{"jsonrpc":"2.0","id":1.5e300,"method":"version"}\n')
    write(t, "id_object", '{"jsonrpc":"2.0","id":{},"method":"version"}\n')
    write(t, "notification", '{"jsonrpc":"2.0","method":"status"}\n')
    write(t, "no_method", '{"jsonrpc":"2.0","id":1}\n')
    write(t, "unknown_method", rpc("nope"))
    write(t, "params_scalar", '{"jsonrpc":"2.0","id":1,"method":"status","params":5}\n')
    write(t, "garbage", b"\x00\xffgarbage\n")
    write(t, "array", b"[]\n")
    write(t, "scalars", b"1\n\"x\"\nnull\n")
    write(t, "nested", b"[" * 100 + b"]" * 100 + b"\n")
    write(t, "bad_utf8", b'{"jsonrpc":"2.0","id":1,"method":"send","params":{"to":"b@CIC","text":"\xc3("}}\n')
    write(t, "batch", rpc("version", None, 1) + rpc("status", None, 2) + rpc("peers", None, 3))
    write(t, "empty_lines", b"\n\n\n")


# ---- config (fuzz_config): first byte even = file, odd = --set lines ----------

def config_seeds():
    t = "config"
    with open(os.path.join(TOP, "config.json"), "rb") as f:
        write(t, "file_shipped", b"0" + f.read())
    write(t, "file_empty_object", b"0{}")
    write(t, "file_partial", b'0{"node":{"name":"alice","port":5001},"logging":{"level":"debug"}}')
    write(t, "file_unknown", b'0{"nope":{"x":1},"node":{"zzz":2}}')
    write(t, "file_wrong_types", b'0{"node":{"port":"x","ttl":1e99},"control":{"mode":"999"}}')
    write(t, "file_array", b"0[1,2]")
    write(t, "file_garbage", b"0\x00\xff{")
    write(t, "file_nested", b'0{"node":' + b"[" * 80 + b"]" * 80 + b"}")
    write(t, "file_bad_utf8", b'0{"node":{"name":"\xc3("}}')
    write(t, "set_basic", b"1node.name=alice\nnode.port=5001\nlogging.level=INFO\n"
                          b"rendezvous_server.max_per_ip=3\nrendezvous_server.state_dir=/tmp\n")
    write(t, "set_bad", b"1node.port=-1\n")
    write(t, "set_unknown", b"1nope.key=1\n")
    write(t, "set_mode", b"1control.mode=0600\n")
    write(t, "set_bool", b"1logging.log_to_file=yes\n")
    write(t, "set_double", b"1limits.send_gap_ms=0.5e1\n")
    write(t, "set_empty", b"1node.name=\n")
    write(t, "set_no_dot", b"1node=1\n")


# ---- peer ids (fuzz_peer_id) ---------------------------------------------------

def peer_id_seeds():
    t = "peer_id"
    ids = {"ok": "alice@CIC", "two_at": "a@b@CIC", "no_at": "alice", "empty_name": "@CIC",
           "empty_ns": "alice@", "unicode": "jos\u00e9@CI\u00c7", "long": "a" * 64 + "@" + "b" * 64,
           "too_long": "a" * 65 + "@CIC", "space": "al ice@CIC", "ctrl": "a\x01@CIC",
           "emoji": "\U0001F600@CIC"}
    for name, s in ids.items():
        write(t, name, s)
    write(t, "bad_utf8", b"\xc3(@CIC")
    write(t, "nul", b"a\x00@CIC")


# ---- replies and events of a real daemon (fuzz_ctl_reply) ---------------------

def ctl_reply_static():
    t = "ctl_reply"
    write(t, "error", d({"jsonrpc": "2.0", "id": 1, "error": {
        "code": -32001, "message": "not connected", "data": {"reason": "not_connected",
                                                              "msg_id": MID}}}) + "\n")
    write(t, "error_id_null", d({"jsonrpc": "2.0", "id": None, "error": {
        "code": -32003, "message": "too many controllers", "data": {"reason": "limit"}}}) + "\n")
    write(t, "lagged", d({"jsonrpc": "2.0", "method": "lagged", "params": {"missed": 12}}) + "\n")
    write(t, "garbage", b"\x00\xff\n")
    write(t, "non_object", b"[1]\n")
    write(t, "neither", b'{"jsonrpc":"2.0"}\n')
    write(t, "mid_line_eof", b'{"jsonrpc":"2.0","id":1,"res')
    write(t, "wrong_types", d({"jsonrpc": "2.0", "id": 1, "result": {
        "peer_id": 5, "peers": "x", "connections": {}, "rendezvous": [], "uptime": "y"}}) + "\n")


def capture():
    """Replies and events from a real node (needs $CHATP2PD)."""
    sys.path.insert(0, os.path.join(TOP, "tests", "e2e"))
    import harness as h
    import nodes as nd
    rdv = h.start_rendezvous("rate_limit=100000")
    a = nd.Node("alice", rdv)
    b = nd.Node("bob", rdv)
    a.wait_active(b.peer_id)
    b.wait_active(a.peer_id)
    c = a.ctl()
    raw = []
    orig = c._read_line

    def tap(deadline):
        msg = orig(deadline)
        raw.append(msg)
        return msg
    c._read_line = tap
    c.call("subscribe", {"events": ["all"]})
    for m, p in [("version", None), ("status", None), ("peers", None), ("conn", None),
                 ("rtt", None), ("log.get", None), ("discover", None), ("register", None),
                 ("send", {"to": "bob@CIC", "text": "hi", "require_ack": True}),
                 ("pub", {"to": "*", "text": "all"}), ("reconnect", {"peer_id": "bob@CIC"}),
                 ("send", {"to": "nobody@CIC", "text": "x"})]:
        try:
            c.call(m, p)
        except nd.CtlError:
            pass
    b.call("send", {"to": "alice@CIC", "text": "back", "require_ack": True})
    c.wait_event(lambda e: e.get("type") == "message", what="message")
    c.close()
    for n in (a, b):
        n.stop()
    rdv.check_clean_exit()
    for i, msg in enumerate(raw):
        if "id" in msg:
            msg["id"] = 1 + i % 3
        kind = msg.get("method") or ("error" if "error" in msg else "result")
        write("ctl_reply", "real_%02d_%s" % (i, kind), d(msg) + "\n")


def persist_seeds():
    t = "rdv_persist"
    e = {"ip": "127.0.0.1", "namespace": "CIC", "name": "alice", "port": 5000, "ttl": 7200,
         "expires_at": 1700003600.5}
    write(t, "one", "[\n  " + json.dumps(e) + "\n]\n")
    write(t, "empty", "[]\n")
    write(t, "expired", json.dumps([dict(e, expires_at=1600000000)]))
    write(t, "many_one_ip", json.dumps([dict(e, name="n%d" % i) for i in range(20)]))
    write(t, "escapes", json.dumps([dict(e, name="caf\u00e9\U0001F600\"\\", namespace="L\tB")]))
    write(t, "wrong_types", json.dumps([dict(e, port="5000"), dict(e, ttl=None), 7, [], None,
                                         dict(e, expires_at="soon")]))
    write(t, "torn", "[\n  " + json.dumps(e)[:30])
    write(t, "object", "{}")


def main():
    persist_seeds()
    peer_seeds()
    rdv_seeds()
    ctl_request_seeds()
    config_seeds()
    peer_id_seeds()
    ctl_reply_static()
    if "--capture" in sys.argv:
        capture()


if __name__ == "__main__":
    main()
