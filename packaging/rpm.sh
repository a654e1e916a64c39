#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# make rpm: `rpmbuild -ba` of the release tarball (make dist) with its stalld.spec, as an RPM
# distribution builds it: target/rpm/stalld-<version>-<release>.src.rpm and
# target/rpm/stalld-<version>-<release>.<arch>.rpm (epoch 1, see packaging/common.sh).
#
# The binary rpm is the static build (--with static: glibc, libbpf, libelf and zlib linked
# in): an rpm built here has to run on Fedora, RHEL and their rebuilds, whose glibc and libelf
# differ from this machine's. RPM_STATIC=0 builds against the system's libelf and zlib, as a
# distribution's own build of the same spec does.
# On a machine whose rpm database does not know the build dependencies (Debian, where CI
# builds), they are not checked (--nodeps) but must be there: scripts/install-deps --static
# and rpmbuild (Debian's rpm package). The build runs without network (unshare --net) when
# run as root: the tarball must build offline.
#   STALLD_REUSE_DIST=1   use target/dist's tarball as it is instead of running make dist
#   RPM_NOCHECK=1         rpmbuild --nocheck: skip %check (the unit tests), e.g. in CI, where
#                         scripts/test has run them on the same sources already
set -euo pipefail
PKG_TAG="make rpm"
# shellcheck source=packaging/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

need_tools rpm:rpmbuild
STATIC=${RPM_STATIC:-1}
OUT=$ROOT/target/rpm
TOPDIR=$OUT/build
DIST=$ROOT/target/dist
DATE=$(changelog_date)
export SOURCE_DATE_EPOCH
SOURCE_DATE_EPOCH=$(date -u -d "$DATE" +%s)

if [ "${STALLD_REUSE_DIST:-0}" != 1 ] || [ ! -f "$DIST/stalld-$VERSION.tar.gz" ]; then
	"$ROOT/packaging/dist.sh"
fi
rm -rf "$TOPDIR" "$OUT"/stalld-*.rpm
mkdir -p "$TOPDIR/SOURCES" "$TOPDIR/SPECS"
cp "$DIST/stalld-$VERSION.tar.gz" "$TOPDIR/SOURCES/"
cp "$DIST/stalld.spec" "$TOPDIR/SPECS/"

options=(
	--define "_topdir $TOPDIR"
	--define "_rpmdir $OUT"
	--define "_srcrpmdir $OUT"
	--define "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm"
	--define "packager $MAINTAINER"
	--define "use_source_date_epoch_as_buildtime 1"
	--define "clamp_mtime_to_source_date_epoch 1"
)
[ "$STATIC" = 1 ] && options+=(--with static)
[ "${RPM_NOCHECK:-0}" = 1 ] && options+=(--nocheck)
if ! rpm -q rpm >/dev/null 2>&1; then
	# Not an RPM distribution: no build dependencies in the rpm database, no debuginfo
	# tooling, and the static libraries in the multiarch directory.
	# Fedora's documentation and license folders (without the version), and Debian's
	# brp-compress run by bash (it is not dash-safe: the man pages stay uncompressed).
	options+=(--nodeps --define "debug_package %{nil}" --define "_build_id_links none"
		--define "_docdir_fmt %%{NAME}"
		--define "__os_install_post /bin/bash /usr/lib/rpm/brp-compress %{_prefix}; /usr/lib/rpm/brp-strip %{__strip}; /usr/lib/rpm/brp-strip-comment-note %{__strip} %{__objdump}")
	command -v dpkg-architecture >/dev/null &&
		options+=(--define "stalld_static_libdir /usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH)")
fi
offline=()
if [ "$(id -u)" = 0 ] && unshare --net true 2>/dev/null; then
	# Loopback only: the unit tests talk to themselves over 127.0.0.1.
	offline=(unshare --net sh -c 'ip link set lo up && exec "$@"' sh)
fi
pkg_note "rpmbuild -ba stalld.spec${offline:+ (no network but loopback)}"
"${offline[@]}" rpmbuild -ba "${options[@]}" "$TOPDIR/SPECS/stalld.spec" >"$OUT/rpmbuild.log" 2>&1 || {
	tail -n 40 "$OUT/rpmbuild.log" >&2
	pkg_die "rpmbuild failed; full log in $OUT/rpmbuild.log"
}
ARCH=$(rpm --eval '%{_target_cpu}')
for rpm in "$OUT/stalld-$VERSION-$RELEASE.src.rpm" "$OUT/stalld-$VERSION-$RELEASE.$ARCH.rpm"; do
	[ -f "$rpm" ] || pkg_die "rpmbuild left no $rpm (see $OUT/rpmbuild.log)"
	pkg_note "built ${rpm#"$ROOT"/} ($(du -h "$rpm" | cut -f1))"
done
