#!/bin/sh
# The whole test suite, as CI runs it: install what is missing, build with
# AddressSanitizer + UBSan and warnings as errors, run every test through
# CTest (unit tests and end-to-end tests with real processes on loopback).
# Extra arguments go to ctest (e.g. scripts/test.sh -L unit, -R rendezvous).
# Then, on a full run (no arguments) with clang there (scripts/deps.sh
# installs it), every libFuzzer target runs from its seed corpus for
# CHATP2P_FUZZ_SECONDS (default 5) in a build of its own (build-test-fuzz);
# CHATP2P_FUZZ_SECONDS=0 skips that.
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
rc=0
(cd "$build" && ctest --output-on-failure --timeout 600 "$@") || rc=$?

fuzz_seconds="${CHATP2P_FUZZ_SECONDS:-5}"
if [ $# -eq 0 ] && [ "$fuzz_seconds" != 0 ] && command -v clang >/dev/null 2>&1; then
	CC=clang cmake -S "$top" -B "$build-fuzz" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DCHATP2P_FUZZ=ON -DCHATP2P_FUZZ_SECONDS="$fuzz_seconds" >/dev/null
	cmake --build "$build-fuzz" -j "$(nproc)"
	(cd "$build-fuzz" && ctest -L fuzz --output-on-failure) || rc=$?
fi
exit $rc
