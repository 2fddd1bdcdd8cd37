#!/bin/sh
# Benchmarks on loopback with an optimised build (no sanitizers), and
# docs/benchmarks.md rewritten with the figures and the targets of issues 10
# and 17 (TLS between nodes: a fresh node loaded by `chatp2p-loadgen --tls`):
#   scripts/bench.sh [--quick] [--no-profile]
# --quick: a short, small run that prints the targets and leaves the docs
# alone.  Not part of the test suite: figures depend on the machine (the
# test suite runs a smoke run of the load generator instead).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build="$top/build-bench"
quick=
for a in "$@"; do
	case "$a" in
	--quick) quick=1 ;;
	--no-profile) ;;
	*) echo "usage: scripts/bench.sh [--quick] [--no-profile]" >&2; exit 2 ;;
	esac
done
"$top/scripts/deps.sh"
cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCHATP2P_TESTS=ON >/dev/null
cmake --build "$build" -j "$(nproc)" --target chatp2pd chatp2pctl chatp2p-loadgen chatp2p-sqlite-floor >/dev/null
# 1,000 idle connections and a namespace of 1,000 peers need descriptors on
# both ends: the node and the load generator inherit this.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || ulimit -n 65536 2>/dev/null || true
export CHATP2PD="$build/chatp2pd/chatp2pd" CHATP2PCTL="$build/chatp2pctl/chatp2pctl" \
	CHATP2P_LOADGEN="$build/tests/bench/chatp2p-loadgen" CHATP2P_SRC="$top"
if [ -n "$quick" ]; then
	exec python3 -u "$top/tests/bench/run_bench.py" "$@"
fi
exec python3 -u "$top/tests/bench/run_bench.py" --out "$top/docs/benchmarks.md" \
	--json-out "$build/bench.json" "$@"
