#!/bin/bash
# The main job, offline on this machine: build chatp2p, start a local
# rendezvous server (the chatp2pd --rendezvous-server role) on loopback, and
# show it answering a REGISTER and a DISCOVER.  Everything it starts is
# stopped when it ends.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build="${CHATP2P_BUILD:-$top/build}"

"$top/scripts/deps.sh"
cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "$(nproc)" >/dev/null
chatp2pd="$build/chatp2pd/chatp2pd"

work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

# Port 0: the server picks a free port and prints it.
"$chatp2pd" --rendezvous-server --listen 127.0.0.1 --port 0 \
	--set logging.log_to_file=false >"$work/rdv.out" 2>"$work/rdv.log" &
pids+=($!)
port=""
for _ in $(seq 100); do
	port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$work/rdv.out")
	[ -n "$port" ] && break
	sleep 0.05
done
[ -n "$port" ] || { cat "$work/rdv.log" >&2; echo "demo: rendezvous server did not start" >&2; exit 1; }
echo "rendezvous server listening on 127.0.0.1:$port"

# One command per connection, as the protocol wants (bash's /dev/tcp).
rdv() {
	exec 3<>"/dev/tcp/127.0.0.1/$port"
	printf '%s\n' "$1" >&3
	echo "  -> $1"
	echo "  <- $(head -n 1 <&3)"
	exec 3>&-
}
rdv '{"type":"REGISTER","namespace":"CIC","name":"alice","port":5000,"ttl":7200}'
rdv '{"type":"REGISTER","namespace":"CIC","name":"bob","port":5001}'
rdv '{"type":"DISCOVER","namespace":"CIC"}'
rdv '{"type":"UNREGISTER","namespace":"CIC","name":"alice"}'
rdv '{"type":"DISCOVER"}'
