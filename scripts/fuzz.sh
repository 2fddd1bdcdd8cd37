#!/bin/sh
# Fuzz every network parser with libFuzzer (clang): scripts/fuzz.sh [SECONDS]
# (default 60 each).  Not part of scripts/test.sh: fuzzing is open-ended.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build="$top/build-fuzz"
"$top/scripts/deps.sh"
command -v clang >/dev/null || { echo "fuzz.sh: needs clang (apt-get install clang)" >&2; exit 1; }
CC=clang cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCHATP2P_FUZZ=ON \
	-DCHATP2P_FUZZ_SECONDS="${1:-60}" >/dev/null
cmake --build "$build" -j "$(nproc)"
cd "$build"
exec ctest -L fuzz --output-on-failure
