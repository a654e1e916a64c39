#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Builds the packages from source as distributions do and checks them:
#   make dist   the release tarball: every crate a Linux build needs vendored, no prebuilt
#               Windows libraries, .cargo/config.toml for offline builds, stalld.spec inside
#   make rpm    `rpmbuild -ba` of that tarball (static, no network): the source rpm and the
#               rpm; epoch 1; every statically linked crate (cargo tree, independently of the
#               generator) as Provides: bundled(crate(...)), and libbpf; the unit tests ran
#               (%check); %config(noreplace); the scriptlets; rpmlint clean (each filtered
#               warning has its reason in packaging/rpmlint.toml)
#   make deb    `dpkg-buildpackage -us -uc` in a clean Debian root (no network): the source
#               package and the .deb; epoch 1; layout, conffile, Depends; the unit tests ran;
#               debian/copyright covers every vendored crate; lintian without errors or
#               warnings (each override has its reason in debian/)
#   the upgrade path, rpm (in a scratch root with its own rpm database: no systemd here; the
#               .deb's path with a running service is tests/systemd-guest.sh's): a stand-in
#               "distribution stalld 1.28" (tests/packages/standin.sh) with an edited
#               /etc/sysconfig/stalld, upgraded to ours (the edit kept), a distribution 1.29
#               update refused over ours, then the downgrade back to 1.28 (the edit kept).
#   tests/packages.sh [--no-build]
# Under CI=true the rpm build skips its unit tests (rpmbuild --nocheck): %check runs them on
# this machine, as scripts/test did on the same sources minutes before, and building them
# once more in release mode cost CI a test build (see tests/kernel-matrix.md's CI budget).
# The .deb's dh_auto_test still runs them: it runs them where a distribution's build daemon
# does, in the clean root without network or user namespaces, which scripts/test does not
# (a unit test that needed `unshare --user` failed there and nowhere else). The spec keeps
# %check for every other build; PACKAGES_UNIT_TESTS=1 (both) or 0 (neither) decides otherwise.
# Prints one "packages: <check> PASS|FAIL" line per check; exits 0 only if all passed. Needs
# root (the clean root, apt-get for the tools).
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 2
CHECK_TAG=packages
# shellcheck source=tests/lib/checks.sh
. "$ROOT/tests/lib/checks.sh"
BUILD=1
[ "${1:-}" = --no-build ] && BUILD=0

# ------------------------------------------------------------------ tools
need_tools lintian:lintian rpmlint:rpmlint rpm:rpmbuild rpm2cpio:rpm2cpio cpio:cpio mmdebstrap:mmdebstrap \
	dpkg-dev:dpkg-source
scripts/install-deps --static || die "scripts/install-deps failed"

VERSION=$(make --no-print-directory -s version)
RELEASE=${PACKAGE_RELEASE:-1}
EPOCH=$(sed -n 's/^EPOCH=//p' packaging/common.sh)
ARCH_RPM=$(uname -m)
ARCH_DEB=$(dpkg --print-architecture)
TARBALL=target/dist/stalld-$VERSION.tar.gz
SRPM=target/rpm/stalld-$VERSION-$RELEASE.src.rpm
RPM=target/rpm/stalld-$VERSION-$RELEASE.$ARCH_RPM.rpm
DEB=target/debian/stalld_$VERSION-${RELEASE}_$ARCH_DEB.deb
DSC=target/debian/stalld_$VERSION-$RELEASE.dsc
CHANGES=target/debian/stalld_$VERSION-${RELEASE}_$ARCH_DEB.changes

timed() {
	local start=$SECONDS
	"$@" || die "$* failed"
	echo "packages: $* took $((SECONDS - start)) s" >&2
}
DEB_UNIT_TESTS=${PACKAGES_UNIT_TESTS:-1}
RPM_UNIT_TESTS=${PACKAGES_UNIT_TESTS:-$([ "${CI:-}" = true ] && echo 0 || echo 1)}
if [ "$BUILD" = 1 ]; then
	deb_nocheck=() rpm_nocheck=()
	[ "$DEB_UNIT_TESTS" = 1 ] || deb_nocheck=(DEB_BUILD_OPTIONS="nocheck${DEB_BUILD_OPTIONS:+ $DEB_BUILD_OPTIONS}")
	if [ "$RPM_UNIT_TESTS" = 0 ]; then
		echo "packages: the rpm build skips its unit tests (CI: scripts/test ran them on this machine)" >&2
		rpm_nocheck=(RPM_NOCHECK=1)
	fi
	timed make --no-print-directory dist
	timed env STALLD_REUSE_DIST=1 "${deb_nocheck[@]}" make --no-print-directory deb
	timed env STALLD_REUSE_DIST=1 "${rpm_nocheck[@]}" make --no-print-directory rpm
fi
for file in "$TARBALL" "$SRPM" "$RPM" "$DEB" "$DSC" "$CHANGES"; do
	[ -f "$file" ] || die "no $file (drop --no-build)"
done
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# ------------------------------------------------------------------ the release tarball
mkdir -p "$WORK/dist"
tar -C "$WORK/dist" -xzf "$TARBALL"
SRC=$WORK/dist/stalld-$VERSION
why=""
for file in Cargo.lock stalld.spec .cargo/config.toml vendor; do
	[ -e "$SRC/$file" ] || why="${why}no $file; "
done
[ -e "$SRC/debian" ] && why="${why}debian/ is in the tarball (it is the Debian source package's own part); "
grep -q 'replace-with = "vendored-sources"' "$SRC/.cargo/config.toml" 2>/dev/null || why="${why}.cargo/config.toml does not use vendor/; "
prebuilt=$(find "$SRC/vendor" -type f \( -name '*.dll' -o -name '*.lib' -o -name '*.exe' -o -name '*.a' \) | head -n 3)
[ -z "$prebuilt" ] || why="${why}prebuilt libraries in vendor/: $prebuilt; "
# Every package of Cargo.lock has its directory (stubs included: cargo reads them to resolve).
while read -r name version; do
	[ -d "$SRC/vendor/$name-$version" ] || why="${why}vendor/$name-$version missing; "
done < <(awk '/^name = / { gsub(/"/, ""); name = $3 } /^version = / && name { gsub(/"/, ""); print name, $3; name = "" }' "$SRC/Cargo.lock" | grep -v '^stalld ')
check "release tarball (vendored crates, offline config, spec, $(du -h "$TARBALL" | cut -f1))" "$why"

# The statically linked crates, computed here with cargo tree (not with the generator):
# normal dependencies only, no proc macros, for this machine's target.
linked=$(cd "$SRC" && cargo tree --locked --offline -e normal,no-proc-macro --target "$ARCH_RPM-unknown-linux-gnu" \
	--prefix none --format '{p}' 2>/dev/null | awk '{ sub(/^v/, "", $2); print $1, $2 }' | grep -v '^stalld ' | sort -u)
[ -n "$linked" ] || die "cargo tree listed no crates in the tarball"

# ------------------------------------------------------------------ rpm
rpm_version=$(rpm -qp --qf '%{EPOCH}:%{VERSION}-%{RELEASE}' "$RPM" 2>/dev/null)
srpm_version=$(rpm -qp --qf '%{EPOCH}:%{VERSION}-%{RELEASE}' "$SRPM" 2>/dev/null)
check "rpm version (epoch $EPOCH)" "$([ "$rpm_version" = "$EPOCH:$VERSION-$RELEASE" ] && [ "$srpm_version" = "$rpm_version" ] ||
	echo "rpm $rpm_version, source rpm $srpm_version, expected $EPOCH:$VERSION-$RELEASE")"
sources=$(rpm -qpl "$SRPM" 2>/dev/null | sort | tr '\n' ' ')
check "source rpm (spec + the release tarball)" "$([ "$sources" = "stalld-$VERSION.tar.gz stalld.spec " ] || echo "holds: $sources")"
provides=$(rpm -qp --provides "$RPM" 2>/dev/null)
why=""
while read -r name version; do
	grep -qxF "bundled(crate($name)) = ${version//-/\~}" <<<"$provides" || why="${why}$name $version; "
done <<<"$linked"
grep -qE '^bundled\(libbpf\) = [0-9]' <<<"$provides" || why="${why}bundled(libbpf); "
check "rpm Provides: bundled(...) for the $(wc -l <<<"$linked") linked crates and libbpf" "${why:+missing: $why}"
license=$(rpm -qp --qf '%{LICENSE}' "$RPM" 2>/dev/null)
why=""
for term in GPL-2.0-or-later MIT Apache-2.0 BSD-2-Clause Zlib; do
	grep -qw -- "$term" <<<"$license" || why="${why}$term "
done
check "rpm License covers the bundled code" "${why:+License: '$license' lacks $why}"
flags=$(rpm -qp --qf '[%{FILENAMES} %{FILEFLAGS:fflags}\n]' "$RPM" 2>/dev/null | grep '^/etc/')
check "rpm %config(noreplace) /etc/sysconfig/stalld" "$([ "$flags" = "/etc/sysconfig/stalld cn" ] || echo "config files: '$flags'")"
check "rpm license file" "$([ "$(rpm -qpL "$RPM" 2>/dev/null)" = /usr/share/licenses/stalld/COPYING ] || echo "license files: '$(rpm -qpL "$RPM")'")"
libs=$(rpm -qpR "$RPM" 2>/dev/null | grep -E '\.so|^lib' || true)
check "rpm needs no shared library (static)" "${libs:+requires $libs}"
rpm -qp --scripts "$RPM" >"$WORK/scripts.txt" 2>/dev/null
why=""
grep -q 'daemon-reload' "$WORK/scripts.txt" || why="no daemon-reload; "
grep -q 'try-restart' "$WORK/scripts.txt" || why="${why}no restart on upgrade; "
grep -vE '^[[:space:]]*#' "$WORK/scripts.txt" | grep -E 'systemctl[^#]*\b(enable|start|restart)\b' | grep -vE 'try-restart|disable --now' &&
	why="${why}a scriptlet enables, starts or restarts the service"
check "rpm scriptlets (%systemd_*: reload, restart on upgrade, stop on erase)" "$why"
# unit_tests_ran NAME 0|1 LOG FILE SECTION END: the build ran the unit tests (and they
# passed), or, where they were skipped on purpose (0), the build did not run them and FILE
# still runs them between the lines matching SECTION and END.
unit_tests_ran() {
	local name=$1 ran=$2 log=$3 file=$4 section=$5 end=$6
	if [ "$ran" = 1 ]; then
		check "$name ran the unit tests" "$(grep -q '^test result: ok\. [1-9]' "$log" ||
			echo "no passing 'test result' in $log")"
	else
		echo "packages: $name ran the unit tests SKIPPED (scripts/test ran them; PACKAGES_UNIT_TESTS=1 runs them here)"
		check "$name: unit tests skipped as asked, still in $file" "$(! grep -q '^test result:' "$log" || echo "$log has test results")$(
			sed -n "/^$section/,/^$end/p" "$file" | grep -q 'cargo test .*--lib' || echo "no 'cargo test --lib' under $section in $file")"
	fi
}
unit_tests_ran "rpm %check" "$RPM_UNIT_TESTS" target/rpm/rpmbuild.log packaging/stalld.spec.in %check %post
mkdir -p "$WORK/rpm" && (cd "$WORK/rpm" && rpm2cpio "$ROOT/$RPM" | cpio -idm --quiet)
same_file() { [ "$(stat -c %i "$1/usr/bin/stalld")" = "$(stat -c %i "$1/usr/bin/stalld-guardian" 2>/dev/null)" ]; }
why=""
same_file "$WORK/rpm" || why="stalld-guardian is not a hard link to stalld; "
[ "$("$WORK/rpm/usr/bin/stalld" --version)" = "$VERSION" ] || why="${why}stalld --version is not $VERSION; "
[ "$(readlink "$WORK/rpm/usr/bin/throttlectl")" = stalld ] || why="${why}throttlectl is not a link to stalld; "
if readelf -l "$WORK/rpm/usr/bin/stalld" | grep -q 'program interpreter' || readelf -d "$WORK/rpm/usr/bin/stalld" | grep -q NEEDED; then
	why="${why}the binary is not static"
fi
check "rpm binary (static, version, links)" "$why"
rpmlint -c packaging/rpmlint.toml "$SRPM" "$RPM" >"$WORK/rpmlint.txt" 2>&1
sed 's/^/    rpmlint: /' "$WORK/rpmlint.txt" | grep -vE 'rpmlint: *$' | tail -n 30
summary=$(grep -E 'packages and [0-9]+ specfiles checked' "$WORK/rpmlint.txt")
check "rpmlint (no errors, no unfiltered warnings)" "$(grep -qE '; 0 errors, 0 warnings' <<<"$summary" || echo "${summary:-rpmlint printed no summary}")"

# ------------------------------------------------------------------ deb
deb_version=$(dpkg-deb -f "$DEB" Version)
dsc_version=$(sed -n 's/^Version: //p' "$DSC")
check "deb version (epoch $EPOCH)" "$([ "$deb_version" = "$EPOCH:$VERSION-$RELEASE" ] && [ "$dsc_version" = "$deb_version" ] ||
	echo ".deb $deb_version, .dsc $dsc_version, expected $EPOCH:$VERSION-$RELEASE")"
why=""
for file in "stalld_$VERSION.orig.tar.gz" "stalld_$VERSION-$RELEASE.debian.tar.xz"; do
	grep -q " $file\$" "$DSC" || why="${why}the .dsc does not list $file; "
done
cmp -s "$TARBALL" "target/debian/stalld_$VERSION.orig.tar.gz" || why="${why}the orig tarball is not make dist's; "
grep -q '^Format: 3.0 (quilt)' "$DSC" || why="${why}not 3.0 (quilt); "
check "Debian source package (orig = release tarball, debian.tar.xz)" "$why"
dpkg-deb -x "$DEB" "$WORK/deb"
dpkg-deb -e "$DEB" "$WORK/deb-control"
why=""
for file in /usr/bin/stalld /usr/bin/throttlectl /usr/bin/stalld-guardian /lib/systemd/system/stalld.service \
	/usr/lib/systemd/catalog/stalld.catalog \
	/etc/default/stalld /usr/share/man/man8/stalld.8.gz /usr/share/man/man8/throttlectl.8.gz \
	/usr/share/doc/stalld/copyright /usr/share/doc/stalld/changelog.Debian.gz /usr/share/doc/stalld/changelog.gz \
	/usr/share/doc/stalld/README.md.gz /usr/share/bash-completion/completions/stalld \
	/usr/share/zsh/vendor-completions/_stalld /usr/share/fish/vendor_completions.d/stalld.fish; do
	[ -e "$WORK/deb$file" ] || [ -L "$WORK/deb$file" ] || why="${why}$file "
done
check "deb layout" "${why:+missing: $why}"
why=""
same_file "$WORK/deb" || why="stalld-guardian is not a hard link to stalld; "
[ "$("$WORK/deb/usr/bin/stalld" --version)" = "$VERSION" ] || why="${why}stalld --version is not $VERSION; "
cmp -s systemd/stalld.service "$WORK/deb/lib/systemd/system/stalld.service" || why="${why}the unit is not systemd/stalld.service"
check "deb binary and unit" "$why"
check "deb conffiles" "$([ "$(cat "$WORK/deb-control/conffiles")" = /etc/default/stalld ] ||
	echo "conffiles: '$(tr '\n' ' ' <"$WORK/deb-control/conffiles")'")"
depends=$(dpkg-deb -f "$DEB" Depends)
check "deb dependencies (dpkg-shlibdeps)" "$(grep -q libelf1 <<<"$depends" && grep -q zlib1g <<<"$depends" ||
	echo "Depends: '$depends' lacks libelf1 or zlib1g (the binary links them)")"
why=""
cat "$WORK/deb-control"/{postinst,prerm,postrm} >"$WORK/maint.txt" 2>/dev/null
grep -q 'daemon-reload' "$WORK/maint.txt" || why="no daemon-reload; "
grep -qE 'deb-systemd-invoke .*(restart|\$_dh_action)' "$WORK/maint.txt" || why="${why}no restart on upgrade; "
grep -qE "deb-systemd-invoke stop" "$WORK/maint.txt" || why="${why}no stop before removal; "
# dh_installsystemd --no-enable re-creates only the links of a unit that was enabled before
# (an upgrade keeps the administrator's choice); any other enable is a fault.
grep -vE '^[[:space:]]*#' "$WORK/maint.txt" | grep -E '(deb-systemd-helper|systemctl)[^#]*\benable\b' |
	grep -vqE "^[[:space:]]*deb-systemd-helper enable 'stalld.service'" &&
	why="${why}a maintainer script enables the service; "
grep -B2 "deb-systemd-helper enable" "$WORK/maint.txt" | grep -q 'was-enabled' ||
	! grep -q "deb-systemd-helper enable" "$WORK/maint.txt" || why="${why}an enable not guarded by was-enabled"
check "deb maintainer scripts (dh_installsystemd --no-enable)" "$why"
unit_tests_ran "deb build" "$DEB_UNIT_TESTS" target/debian/build.log debian/rules override_dh_auto_test '$'
why=""
for dir in "$SRC"/vendor/*/; do
	grep -qxF "Files: vendor/$(basename "$dir")/*" "$WORK/deb/usr/share/doc/stalld/copyright" || why="${why}$(basename "$dir") "
done
check "debian/copyright covers every vendored crate ($(find "$SRC/vendor" -mindepth 1 -maxdepth 1 | wc -l))" "${why:+missing: $why}"
# Errors and warnings fail; each accepted one is overridden in debian/ with its reason.
lintian --pedantic --display-info "$CHANGES" >"$WORK/lintian.txt" 2>&1
grep -E '^[EWIPX]: ' "$WORK/lintian.txt" | sed 's/^/    lintian: /'
bad=$(grep -cE '^[EW]: ' "$WORK/lintian.txt")
check "lintian (source and binary: no errors, no warnings)" "$([ "$bad" = 0 ] || echo "$bad errors or warnings")"

# ------------------------------------------------------------------ the rpm upgrade path
# dnf and rpm order versions alike (rpmvercmp, epoch first).
newer=$(rpm --eval "%{lua: print(rpm.vercmp('$EPOCH:$VERSION-$RELEASE', '0:1.99-1'))}")
check "rpm: $EPOCH:$VERSION-$RELEASE sorts above every 1.x" "$([ "$newer" = 1 ] || echo "rpm.vercmp says $newer")"
tests/packages/standin.sh rpm "$WORK/standin" 1.28 1.29 || die "building the stand-in rpms failed"
R=$WORK/rpmroot
rpmroot() { rpm --root "$R" --nodeps --noscripts "$@"; }
why=""
rpmroot -i "$WORK/standin/stalld-1.28-1.$ARCH_RPM.rpm" >"$WORK/r.log" 2>&1 || why="installing the stand-in 1.28 failed: $(cat "$WORK/r.log")"
sed -i 's/^THRESH=.*/THRESH="-t 7"/' "$R/etc/sysconfig/stalld"
if [ -z "$why" ] && ! rpmroot -U "$ROOT/$RPM" >"$WORK/r.log" 2>&1; then
	why="rpm -U ours over 1.28 failed: $(cat "$WORK/r.log")"
elif [ -z "$why" ]; then
	installed=$(rpm --root "$R" -q --qf '%{EPOCH}:%{VERSION}-%{RELEASE}' stalld)
	[ "$installed" = "$EPOCH:$VERSION-$RELEASE" ] || why="rpm -q says $installed after the upgrade; "
	[ "$("$R/usr/bin/stalld" --version)" = "$VERSION" ] || why="${why}/usr/bin/stalld is not ours; "
	grep -qx 'THRESH="-t 7"' "$R/etc/sysconfig/stalld" || why="${why}the administrator's THRESH edit is lost; "
	[ -f "$R/etc/sysconfig/stalld.rpmnew" ] || why="${why}no stalld.rpmnew with our defaults beside it; "
	grep -q '^CPUSchedulingPolicy=fifo' "$R/usr/lib/systemd/system/stalld.service" || why="${why}the unit is not ours"
fi
check "rpm: upgrade from the distribution's 1.28 (edited /etc/sysconfig/stalld kept)" "$why"
why=""
if rpmroot -U "$WORK/standin/stalld-1.29-1.$ARCH_RPM.rpm" >"$WORK/r.log" 2>&1; then
	why="rpm -U of the distribution's 1.29 replaced ours"
elif ! grep -q 'which is newer than' "$WORK/r.log"; then
	why="rpm -U 1.29 failed for another reason: $(cat "$WORK/r.log")"
fi
check "rpm: the distribution's 1.29 update does not replace ours" "$why"
why=""
if ! rpmroot -U --oldpackage "$WORK/standin/stalld-1.28-1.$ARCH_RPM.rpm" >"$WORK/r.log" 2>&1; then
	why="rpm -U --oldpackage 1.28 failed: $(cat "$WORK/r.log")"
else
	installed=$(rpm --root "$R" -q --qf '%{EPOCH}:%{VERSION}-%{RELEASE}' stalld)
	[ "$installed" = "(none):1.28-1" ] || why="rpm -q says $installed after the downgrade; "
	grep -q 'distribution stand-in' "$R/usr/bin/stalld" || why="${why}/usr/bin/stalld is still ours; "
	[ -e "$R/usr/bin/stalld-guardian" ] && why="${why}our stalld-guardian is left behind; "
	grep -qx 'THRESH="-t 7"' "$R/etc/sysconfig/stalld" || why="${why}the administrator's THRESH edit is lost"
fi
check "rpm: downgrade back to the distribution's 1.28 (edit kept, nothing of ours left)" "$why"

echo "packages: $(du -h "$RPM" | cut -f1) $RPM, $(du -h "$DEB" | cut -f1) $DEB, $(du -h "$TARBALL" | cut -f1) $TARBALL"
exit "$FAILED"
