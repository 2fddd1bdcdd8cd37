#!/bin/sh
# Install the Debian packages chatp2p needs to build, test and run, if any
# are missing.  Works as root or through sudo; does nothing when all are there.
set -eu

# systemd: systemd-analyze, systemd-socket-activate and systemd-sysusers, which
# tests/e2e/test_systemd.py needs (it fails, not skips, without them).
# libssl-dev: OpenSSL 3, TLS between chatp2p nodes (chatp2pd/net/tls.c, keys.c).
# libsqlite3-dev: the durable inbox/outbox (chatp2pd/store/storage.c).
# procps: /bin/kill, the units' ExecReload= (systemd-analyze verify checks it).
# clang, libclang-rt-14-dev: the libFuzzer targets scripts/test.sh runs (the
# fuzzer runtime is only a Recommends of clang, which this script skips).
# debhelper (with dpkg-dev), build-essential (dpkg-buildpackage requires it),
# lintian: scripts/package.sh and the package test (tests/package), which
# builds the .deb, checks it with lintian and installs it.
PACKAGES="gcc libc6-dev make cmake pkg-config libev-dev libyajl-dev uuid-dev libsystemd-dev
libcmocka-dev libedit-dev python3 systemd procps clang libclang-rt-14-dev
libsqlite3-dev libssl-dev build-essential debhelper lintian"

missing=""
for p in $PACKAGES; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

echo "chatp2p: installing Debian packages:$missing" >&2
if [ "$(id -u)" -eq 0 ]; then
	as_root=""
elif command -v sudo >/dev/null 2>&1; then
	as_root="sudo"
else
	echo "chatp2p: need root or sudo to install:$missing" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$as_root apt-get update -q
# shellcheck disable=SC2086
$as_root apt-get install -y -q --no-install-recommends $missing
