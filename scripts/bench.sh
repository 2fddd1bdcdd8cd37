#!/bin/sh
# Benchmarks on loopback with an optimised build (no sanitizers):
# scripts/bench.sh [--sends N --window W --peers K --conns C].  Not part of
# the test suite: figures depend on the machine (see docs/benchmarks.md).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build="$top/build-bench"
"$top/scripts/deps.sh"
cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCHATP2P_TESTS=OFF >/dev/null
cmake --build "$build" -j "$(nproc)" >/dev/null
ulimit -n 65536 2>/dev/null || ulimit -n 4096 2>/dev/null || true
CHATP2PD="$build/chatp2pd/chatp2pd" CHATP2PCTL="$build/chatp2pctl/chatp2pctl" \
CHATP2P_SRC="$top" exec python3 -u "$top/tests/bench/bench_node.py" "$@"
