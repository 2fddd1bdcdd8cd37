#!/bin/sh
# Build the Debian package (debian/, dh with the CMake build) and print the
# path of the .deb on the last line.
#
#   scripts/package.sh [OUTDIR]        (default: build-deb/ in this tree)
#
# The build runs in a copy of the source tree under OUTDIR, so neither the
# checkout nor its build directories change; OUTDIR receives the .deb and
# dpkg-buildpackage's .buildinfo and .changes.  DEB_BUILD_OPTIONS is passed
# on (default "parallel=<cores>": the unit tests run; add "nocheck" to skip
# them).  Installs what is missing first (scripts/deps.sh).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
out="${1:-$top/build-deb}"

"$top/scripts/deps.sh" >&2

version=$(dpkg-parsechangelog -l "$top/debian/changelog" -S Version)
mkdir -p "$out"
out=$(cd "$out" && pwd)
src="$out/chatp2p-$version"
rm -rf "$src"
mkdir "$src"
# Everything but version control, OUTDIR itself and what builds leave
# behind (a package build made in the checkout leaves the debian/ files and
# obj-* listed here).
set --
case "$out" in "$top"/*) set -- "--exclude=./${out#"$top"/}" ;; esac
tar -C "$top" -cf - "$@" \
	--exclude=./.git --exclude='./build*' --exclude='./obj-*' \
	--exclude=./debian/chatp2p --exclude=./debian/tmp --exclude=./debian/.debhelper \
	--exclude=./debian/files --exclude='./debian/*.substvars' \
	--exclude='./debian/*debhelper*' --exclude='__pycache__' --exclude=./chatp2p.log \
	. | tar -C "$src" -xf -

export DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS:-parallel=$(nproc)}"
# dpkg-buildpackage writes its results next to the source directory: OUTDIR.
(cd "$src" && dpkg-buildpackage -us -uc -b) >&2

arch=$(dpkg-architecture -qDEB_HOST_ARCH)
deb="$out/chatp2p_${version#*:}_$arch.deb"
[ -f "$deb" ] || { echo "chatp2p: no $deb after the build" >&2; exit 1; }
rm -rf "$src"
echo "$deb"
