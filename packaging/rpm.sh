#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# make rpm: target/rpm/stalld-<version>-<release>.<arch>.rpm from `make install`'s tree, with
# the C stalld's Fedora/RHEL paths (/etc/sysconfig/stalld, /usr/lib/systemd/system,
# /usr/share/licenses/stalld). rpmbuild comes from Debian's rpm package when missing.
#
# The binary is the static build (libbpf, libelf and zlib linked in): an rpm built here has to
# run on Fedora, RHEL and their rebuilds, whose glibc and libelf differ from this machine's, so
# it depends on no shared library at all.
set -euo pipefail
PKG_TAG="make rpm"
# shellcheck source=packaging/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

need_tools rpm:rpmbuild binutils:strip
ARCH=$(uname -m)
OUT=$ROOT/target/rpm
STAGE=$OUT/root
TOPDIR=$OUT/build
DATE=$(changelog_date)
SOURCE_DATE_EPOCH=$(date -u -d "$DATE" +%s)

mkdir -p "$OUT"
stage "$STAGE" STATIC=1
# Only now: cargo (inside make install) must build with the same environment every time.
export SOURCE_DATE_EPOCH
# rpm compresses man pages itself (brp-compress) on distributions that configure it; the
# file list matches either form.
filelist=$OUT/files.list
(
	cd "$STAGE"
	find . -type d -path './usr/share/doc/stalld' -printf '%%dir /%P\n'
	find . -type d -path './usr/share/licenses/stalld' -printf '%%dir /%P\n'
	find . \( -type f -o -type l \) -printf '/%P\n' | sort | while read -r path; do
		case "$path" in
		/etc/*) echo "%config(noreplace) $path" ;;
		/usr/share/licenses/*) echo "%license $path" ;;
		/usr/share/doc/*) echo "%doc $path" ;;
		/usr/share/man/*) echo "$path*" ;;
		*) echo "$path" ;;
		esac
	done
) >"$filelist"

rm -rf "$TOPDIR"
mkdir -p "$TOPDIR"
sed -e "s|@VERSION@|$VERSION|g" -e "s|@RELEASE@|$RELEASE|g" -e "s|@ARCH@|$ARCH|g" \
	-e "s|@STAGE@|$STAGE|g" -e "s|@FILELIST@|$filelist|g" -e "s|@MAINTAINER@|$MAINTAINER|g" \
	-e "s|@CHANGELOG_DATE@|$(date -u -d "$DATE" '+%a %b %d %Y')|g" \
	"$ROOT/packaging/stalld.spec.in" >"$OUT/stalld.spec"
rm -f "$OUT"/stalld-*.rpm
rpmbuild -bb --quiet \
	--define "_topdir $TOPDIR" \
	--define "_rpmdir $OUT" \
	--define "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm" \
	--define "debug_package %{nil}" \
	--define "_build_id_links none" \
	--define "use_source_date_epoch_as_buildtime 1" \
	--define "clamp_mtime_to_source_date_epoch 1" \
	"$OUT/stalld.spec" >"$OUT/rpmbuild.log" 2>&1 || {
	tail -n 40 "$OUT/rpmbuild.log" >&2
	pkg_die "rpmbuild failed; full log in $OUT/rpmbuild.log"
}
RPM=$OUT/stalld-$VERSION-$RELEASE.$ARCH.rpm
[ -f "$RPM" ] || pkg_die "rpmbuild left no $RPM (see $OUT/rpmbuild.log)"
pkg_note "built ${RPM#"$ROOT"/} ($(du -h "$RPM" | cut -f1))"
