#!/bin/sh
# The whole test suite, as CI runs it: install what is missing, build with
# AddressSanitizer + UBSan and warnings as errors, run every test through
# CTest (unit tests and end-to-end tests with real processes on loopback).
# Extra arguments go to ctest (e.g. scripts/test.sh -L unit, -R rendezvous).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build="${CHATP2P_TEST_BUILD:-$top/build-test}"

"$top/scripts/deps.sh"
# An optimised build sees warnings a Debug build does not: keep both clean.
cmake -S "$top" -B "$build-release" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	-DCHATP2P_WERROR=ON -DCHATP2P_TESTS=OFF >/dev/null
cmake --build "$build-release" -j "$(nproc)"
cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=Debug \
	-DCHATP2P_SANITIZE=ON -DCHATP2P_WERROR=ON >/dev/null
cmake --build "$build" -j "$(nproc)"
cd "$build"
exec ctest --output-on-failure --timeout 600 "$@"
