#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# make deb: the Debian source package and its .deb, built as Debian builds them: the release
# tarball (make dist) becomes stalld_<version>.orig.tar.gz, debian/ (with the copyright
# stanzas of the vendored crates appended from Cargo.lock) its Debian part, and
# `dpkg-buildpackage -us -uc` builds both in a clean Debian root of this machine's release
# (mmdebstrap: essential, build-essential and debian/control's Build-Depends, cached under
# /var/cache/stalld-ci/deb-build/ keyed by its recipe), without network. Out, in
# target/debian/: stalld_<version>-<release>.dsc, .debian.tar.xz, .orig.tar.gz,
# _<arch>.deb, .changes, .buildinfo (and the -dbgsym package).
#
# The build runs in a private mount namespace over a copy-on-write view of the cached root
# (overlayfs), so the cache stays clean and nothing stays mounted. Needs root.
#   STALLD_REUSE_DIST=1          use target/dist's tarball as it is instead of running make dist
#   DEB_BUILD_CACHE=DIR          where the root is cached
#   DEB_BUILD_OPTIONS=nocheck    skip the unit tests, as for any Debian build
#   packaging/deb.sh --root-only  build (or find) the cached clean root and stop: CI prepares
#                                it while its tests run
set -euo pipefail
PKG_TAG="make deb"
# shellcheck source=packaging/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

[ "$(id -u)" = 0 ] || pkg_die "needs root (mmdebstrap, the build root's mounts)"
need_tools mmdebstrap:mmdebstrap dpkg-dev:dpkg-source
CACHE=${DEB_BUILD_CACHE:-/var/cache/stalld-ci/deb-build}
OUT=$ROOT/target/debian
WORK=$ROOT/target/deb-build
DIST=$ROOT/target/dist
CODENAME=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
[ -n "$CODENAME" ] || pkg_die "cannot tell this machine's Debian release from /etc/os-release"
DEB_VERSION=$EPOCH:$VERSION-$RELEASE

# debian/changelog names the version the packages get: it must be this one.
changelog_version=$(dpkg-parsechangelog -l "$ROOT/debian/changelog" -S Version)
[ "$changelog_version" = "$DEB_VERSION" ] ||
	pkg_die "debian/changelog's newest entry is $changelog_version, not $DEB_VERSION (Cargo.toml, epoch $EPOCH, PACKAGE_RELEASE): add an entry"

# build_root: prints the cached clean root (a directory), building it if needed.
build_root() {
	local depends key dir sources
	depends=$(sed -n '/^Build-Depends:/,/^[^ ]/p' "$ROOT/debian/control" | sed -e '$d' -e 's/^Build-Depends://' | tr -s ' \n' ' ' | sed -e 's/^ *//' -e 's/[ ,]*$//')
	key=$( {
		echo "$CODENAME $depends"
		sed -n '/^build_root() {/,/^}/p' "$0"
	} | sha256sum | cut -c1-16)
	dir=$CACHE/root-$CODENAME-$key
	if [ -f "$dir/.complete" ]; then
		echo "$dir"
		return 0
	fi
	mkdir -p "$CACHE" "$WORK"
	sources=$WORK/root.sources
	"$ROOT/scripts/host-apt-sources" "$CODENAME" >"$sources"
	[ -s "$sources" ] || pkg_die "found no apt sources for $CODENAME in /etc/apt"
	rm -rf "$CACHE"/root-* "$CACHE/.build"
	pkg_note "building the clean build root ($CODENAME, buildd + Build-Depends) with mmdebstrap"
	local start=$SECONDS
	# apt-get satisfy: alternatives and versions as dpkg-checkbuilddeps reads them (on
	# bookworm `cargo (>= 1.89)` is cargo-web, which provides it).
	# shellcheck disable=SC2016 # $1 is mmdebstrap's, expanded by its hook shell
	mmdebstrap --mode=root --variant=buildd \
		--customize-hook="chroot \"\$1\" apt-get satisfy -y --no-install-recommends '${depends//\'/}'" \
		--customize-hook='chroot "$1" apt-get clean' \
		--customize-hook='rm -rf "$1"/var/lib/apt/lists/*' \
		"$CODENAME" "$CACHE/.build" "$sources" >"$WORK/mmdebstrap.log" 2>&1 || {
		tail -n 40 "$WORK/mmdebstrap.log" >&2
		pkg_die "mmdebstrap failed; full log in $WORK/mmdebstrap.log"
	}
	touch "$CACHE/.build/.complete"
	mv "$CACHE/.build" "$dir"
	pkg_note "build root ready in $((SECONDS - start)) s ($(du -sh "$dir" | cut -f1))"
	echo "$dir"
}

if [ "${1:-}" = --root-only ]; then
	root=$(build_root)
	pkg_note "clean build root: $root"
	exit 0
fi
if [ "${STALLD_REUSE_DIST:-0}" != 1 ] || [ ! -f "$DIST/stalld-$VERSION.tar.gz" ]; then
	"$ROOT/packaging/dist.sh"
fi
root=$(build_root)

# The source tree: the orig tarball unpacked, debian/ beside it, the copyright completed.
rm -rf "$WORK/src" "$OUT"
mkdir -p "$WORK/src" "$OUT"
cp "$DIST/stalld-$VERSION.tar.gz" "$WORK/src/stalld_$VERSION.orig.tar.gz"
tar -C "$WORK/src" -xzf "$WORK/src/stalld_$VERSION.orig.tar.gz"
tree=$WORK/src/stalld-$VERSION
cp -a "$ROOT/debian" "$tree/debian"
{
	echo
	"$ROOT/packaging/bundled.py" debian-copyright "$tree"
} >>"$tree/debian/copyright" || pkg_die "listing the vendored crates' copyright failed"

# The build: a private mount namespace (its mounts vanish with it), no network but loopback, the root
# seen through an overlay whose changes land in $WORK/overlay and are thrown away.
rm -rf "$WORK/overlay"
mkdir -p "$WORK/overlay/upper" "$WORK/overlay/work" "$WORK/overlay/merged"
start=$SECONDS
pkg_note "dpkg-buildpackage -us -uc in the clean root (no network)"
unshare --mount --net --pid --fork --propagation private sh -euc '
	root=$1 work=$2 src=$3
	# Loopback only (unit tests talk to themselves over 127.0.0.1), as sbuild gives.
	ip link set lo up
	mount -t overlay overlay -o "lowerdir=$root,upperdir=$work/upper,workdir=$work/work" "$work/merged"
	mount -t proc proc "$work/merged/proc"
	mount --rbind /dev "$work/merged/dev"
	mkdir -p "$work/merged/build"
	mount --bind "$src" "$work/merged/build"
	exec chroot "$work/merged" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/build \
		LANG=C.UTF-8 DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS:-}" \
		sh -c "cd /build/stalld-$4 && dpkg-buildpackage -us -uc"
' sh "$root" "$WORK/overlay" "$WORK/src" "$VERSION" >"$OUT/build.log" 2>&1 || {
	tail -n 60 "$OUT/build.log" >&2
	rm -rf "$WORK/overlay"
	pkg_die "dpkg-buildpackage failed; full log in $OUT/build.log"
}
rm -rf "$WORK/overlay"
find "$WORK/src" -maxdepth 1 -type f -exec mv {} "$OUT/" \;
ARCH=$(dpkg --print-architecture)
DEB=$OUT/stalld_${VERSION}-${RELEASE}_$ARCH.deb
[ -f "$DEB" ] || pkg_die "dpkg-buildpackage left no $DEB (see $OUT/build.log)"
pkg_note "built ${DEB#"$ROOT"/} ($(du -h "$DEB" | cut -f1)) and the source package in $((SECONDS - start)) s"
