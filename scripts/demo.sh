#!/bin/bash
# The main job, offline on this machine: build chatp2p, start our own
# rendezvous server on loopback and three chat nodes (alice and bob in #CIC,
# carol in #UnB), let them find each other, and chat through chatp2pctl:
# a direct message with its ACK, a PUB to everyone and one to a namespace,
# the peer, connection and RTT tables, and a clean shutdown.
#   scripts/demo.sh          the scripted demo
#   scripts/demo.sh --shell  the same, then the chat shell as alice
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build="${CHATP2P_BUILD:-$top/build}"
shell=0
[ "${1:-}" = "--shell" ] && shell=1

"$top/scripts/deps.sh"
echo "== building (cmake, $build)"
cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "$(nproc)" >/dev/null
chatp2pd="$build/chatp2pd/chatp2pd"
ctl="$build/chatp2pctl/chatp2pctl"

work=$(mktemp -d /tmp/chatp2p-demo.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

# Wait (bounded) for a "listening on HOST:PORT" line; print PORT.
port_of() {
	for _ in $(seq 200); do
		p=$(sed -n 's/^listening on [^ ]*:\([0-9][0-9]*\).*/\1/p' "$1")
		[ -n "$p" ] && { echo "$p"; return 0; }
		sleep 0.05
	done
	echo "demo: $1: no listening line" >&2
	cat "${1%.out}.log" >&2
	return 1
}

# Port 0: the server picks a free port and prints it.
"$chatp2pd" --rendezvous-server --listen 127.0.0.1 --port 0 \
	--set logging.log_to_file=false >"$work/rdv.out" 2>"$work/rdv.log" &
pids+=($!)
rdv=$(port_of "$work/rdv.out")
echo "== rendezvous server on 127.0.0.1:$rdv (our own; no internet needed)"

start_node() { # name namespace
	"$chatp2pd" --name "$1" --namespace "$2" --listen 127.0.0.1 --port 0 \
		--rendezvous "127.0.0.1:$rdv" --control "$work/$1.sock" --state-dir "$work/$1.state" \
		--set rendezvous.discover_interval=10 --set keepalive.ping_interval=1 --set keepalive.ping_timeout=1 \
		--set logging.log_to_file=false \
		--log-level INFO >"$work/$1.out" 2>"$work/$1.log" &
	pids+=($!)
	local port
	port=$(port_of "$work/$1.out")
	echo "== $1@$2 listening on 127.0.0.1:$port"
}
start_node alice CIC
start_node bob CIC
start_node carol UnB

alice() { "$ctl" --socket "$work/alice.sock" "$@"; }
bob() { "$ctl" --socket "$work/bob.sock" "$@"; }
carol() { "$ctl" --socket "$work/carol.sock" "$@"; }

for n in alice bob carol; do "$ctl" --socket "$work/$n.sock" wait-ready --timeout 20; done
echo "== all three registered; waiting for them to connect to each other"
for n in alice bob carol; do
	for _ in $(seq 200); do
		[ "$("$ctl" --socket "$work/$n.sock" --json peers | grep -o '"state":"ACTIVE"' | wc -l)" -ge 2 ] && break
		sleep 0.1
	done
done

# What bob and carol receive, as it arrives.
bob watch message >"$work/bob.watch" 2>&1 &
pids+=($!)
carol watch message >"$work/carol.watch" 2>&1 &
pids+=($!)
sleep 0.3 # let the watchers subscribe (display only; nothing depends on it)

echo
echo "== alice: peers"
alice peers
echo
echo "== alice -> bob (direct message, waits for the ACK)"
alice send bob@CIC "Olá, bob! Tudo bem? 😀"
echo "== bob -> alice"
bob send alice@CIC "Tudo ótimo, alice."
echo "== carol -> bob"
echo "piped from standard input" | carol send bob@CIC
echo "== alice -> * (everyone connected)"
alice pub '*' "hello, everyone"
echo "== alice -> #CIC (only CIC)"
alice pub '#CIC' "CIC only: carol does not get this"
echo "== alice -> nobody@CIC (exit status 4: not delivered)"
alice send nobody@CIC "are you there?" || echo "   (exit status $?)"
sleep 0.5 # let the watchers print
echo
echo "== what bob received (chatp2pctl watch message)"
sed 's/^/   /' "$work/bob.watch"
echo "== what carol received"
sed 's/^/   /' "$work/carol.watch"
echo
echo "== alice: connections and round-trip times"
alice conn
alice rtt
echo
if [ "$shell" = 1 ] && [ -t 0 ]; then
	echo "== the chat shell as alice (/help for commands, /quit to leave)"
	alice shell || true
fi
echo "== stopping the nodes (BYE to every peer, UNREGISTER)"
for n in alice bob carol; do "$ctl" --socket "$work/$n.sock" shutdown --wait >/dev/null; done
echo "== done"
