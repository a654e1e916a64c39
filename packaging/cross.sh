#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# make deb ARCH=aarch64, make rpm ARCH=aarch64 (any of scripts/cross-build's architectures):
# the .deb and the rpm of another architecture, packaging the static binaries, man page and
# completions that scripts/cross-build left in target/cross/<triple>/release (built first if
# they are not there) with the same debian/ and stalld.spec as the source builds:
#   deb  dpkg-buildpackage -a <debian arch> -B of the release tarball with debian/ and
#        STALLD_PREBUILT (debian/rules packages the binaries instead of building them)
#   rpm  rpmbuild -bb --target <arch> of the release tarball's stalld.spec with
#        stalld_prebuilt
# Both run in scripts/cross-build's root of Debian unstable, whose cross binutils strip the
# target's binaries (debhelper and rpm are added to it once); the rpm in rpm's version 4
# format, which every RPM distribution reads (unstable's rpm 6 writes version 6 by default). The binaries are static, as the
# amd64 rpm's: no Depends on shared libraries. Out: target/cross/packages/
# stalld_<version>-<release>_<debian arch>.deb (with its .changes and .buildinfo) and
# stalld-<version>-<release>.<arch>.rpm. Needs root (the root's chroot).
#   packaging/cross.sh deb|rpm ARCH...
#   STALLD_REUSE_DIST=1    use target/dist's tarball as it is instead of running make dist
#   STALLD_REUSE_CROSS=1   package the binaries already in target/cross, without a rebuild
set -euo pipefail
PKG_TAG="make cross packages"
# shellcheck source=packaging/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

[ "$#" -ge 2 ] || pkg_die "usage: packaging/cross.sh deb|rpm ARCH..."
KIND=$1
shift
case "$KIND" in deb | rpm) ;; *) pkg_die "unknown package kind '$KIND' (deb, rpm)" ;; esac
[ "$(id -u)" = 0 ] || pkg_die "needs root (the cross root's chroot)"
CROSS=$ROOT/scripts/cross-build
OUT=$ROOT/target/cross/packages
DIST=$ROOT/target/dist
TARBALL=$DIST/stalld-$VERSION.tar.gz
DATE=$(changelog_date)
SOURCE_DATE_EPOCH=$(date -u -d "$DATE" +%s)

if [ "${STALLD_REUSE_DIST:-0}" != 1 ] || [ ! -f "$TARBALL" ]; then
	"$ROOT/packaging/dist.sh"
fi
"$CROSS" --packaging-tools || pkg_die "adding the packaging tools to the cross root failed"
mkdir -p "$OUT"

for arch in "$@"; do
	deb_arch=$("$CROSS" --deb-arch "$arch") || pkg_die "unknown architecture '$arch'"
	gnu=$("$CROSS" --gnu-triplet "$arch")
	built=$("$CROSS" --dir "$arch")
	if [ "${STALLD_REUSE_CROSS:-0}" != 1 ] || [ ! -x "$built/stalld" ]; then
		"$CROSS" "$arch" || pkg_die "scripts/cross-build $arch failed"
	fi
	for file in stalld man/stalld.8 completions/stalld.bash; do
		[ -e "$built/$file" ] || pkg_die "no $built/$file: scripts/cross-build $arch left no complete build"
	done
	# The same tree as the source packages': the release tarball unpacked (and debian/,
	# whose copyright gets the vendored crates' stanzas, as packaging/deb.sh completes it).
	work=$ROOT/target/cross-packages/$arch
	rm -rf "$work"
	mkdir -p "$work"
	tar -C "$work" -xzf "$TARBALL"
	tree=$work/stalld-$VERSION
	# The paths as the root sees them (the repository is its /src).
	root_work=/src/${work#"$ROOT"/}
	root_built=/src/${built#"$ROOT"/}
	start=$SECONDS
	case "$KIND" in
	deb)
		cp -a "$ROOT/debian" "$tree/debian"
		# The static binary's lintian overrides, each with its reason.
		{
			echo
			cat "$ROOT/packaging/static.lintian-overrides"
		} >>"$tree/debian/stalld.lintian-overrides"
		{
			echo
			"$ROOT/packaging/bundled.py" debian-copyright "$tree"
		} >>"$tree/debian/copyright" || pkg_die "listing the vendored crates' copyright failed"
		pkg_note "dpkg-buildpackage -a $deb_arch -B (STALLD_PREBUILT=${built#"$ROOT"/})"
		# -d: the build dependencies are for building, and nothing is built here.
		"$CROSS" --run env SOURCE_DATE_EPOCH="$SOURCE_DATE_EPOCH" STALLD_PREBUILT="$root_built" \
			sh -c "cd $root_work/stalld-$VERSION && dpkg-buildpackage -a $deb_arch -B -d -us -uc" \
			>"$work/build.log" 2>&1 || {
			tail -n 40 "$work/build.log" >&2
			pkg_die "dpkg-buildpackage -a $deb_arch failed; full log in ${work#"$ROOT"/}/build.log"
		}
		rm -f "$OUT"/stalld_*_"$deb_arch".*
		find "$work" -maxdepth 1 -type f -name "stalld_*_$deb_arch.*" -exec mv {} "$OUT/" \;
		package=$OUT/stalld_$VERSION-${RELEASE}_$deb_arch.deb
		;;
	rpm)
		topdir=$work/rpmbuild
		mkdir -p "$topdir/SOURCES" "$topdir/SPECS"
		cp "$TARBALL" "$topdir/SOURCES/"
		cp "$DIST/stalld.spec" "$topdir/SPECS/"
		rpm_arch=$arch
		pkg_note "rpmbuild -bb --target $rpm_arch (stalld_prebuilt ${built#"$ROOT"/})"
		# As packaging/rpm.sh builds outside an RPM distribution, and the target's strip.
		"$CROSS" --run env SOURCE_DATE_EPOCH="$SOURCE_DATE_EPOCH" rpmbuild -bb --target "$rpm_arch" --nodeps \
			--define "_topdir $root_work/rpmbuild" \
			--define "_rpmdir $root_work" \
			--define "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm" \
			--define "packager $MAINTAINER" \
			--define "use_source_date_epoch_as_buildtime 1" \
			--define "clamp_mtime_to_source_date_epoch 1" \
			--define "debug_package %{nil}" --define "_enable_debug_packages 0" --define "_build_id_links none" \
			--define "_rpmformat 4" \
			--define "_docdir_fmt %%{NAME}" \
			--define "__strip /usr/bin/$gnu-strip" \
			--define "__objdump /usr/bin/$gnu-objdump" \
			--define "__os_install_post /bin/bash /usr/lib/rpm/brp-compress %{_prefix}" \
			--define "stalld_prebuilt $root_built" \
			--with static \
			"$root_work/rpmbuild/SPECS/stalld.spec" >"$work/build.log" 2>&1 || {
			tail -n 40 "$work/build.log" >&2
			pkg_die "rpmbuild --target $rpm_arch failed; full log in ${work#"$ROOT"/}/build.log"
		}
		package=$(find "$work" -maxdepth 1 -name "stalld-$VERSION-$RELEASE.*.rpm" | head -n 1)
		[ -n "$package" ] || pkg_die "rpmbuild left no rpm (see ${work#"$ROOT"/}/build.log)"
		rm -f "$OUT/stalld-$VERSION-$RELEASE.$(basename "${package%.rpm}" | sed 's/.*\.//').rpm"
		mv "$package" "$OUT/"
		package=$OUT/$(basename "$package")
		;;
	esac
	[ -f "$package" ] || pkg_die "no $package (see ${work#"$ROOT"/}/build.log)"
	pkg_note "built ${package#"$ROOT"/} ($(du -h "$package" | cut -f1)) in $((SECONDS - start)) s"
done
