#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Builds `make deb` and `make rpm` and checks them: every file `make install` stages is in the
# package, the environment file is a configuration file, the version is Cargo.toml's and
# `stalld --version`'s, the maintainer scripts reload systemd and never start or enable the
# service on install, the .deb passes lintian without errors (its tags are printed), and the
# rpm installs into a scratch root where its static binary runs.
#   tests/packages.sh [--no-build]
# Prints one "packages: <check> PASS|FAIL" line per check; exits 0 only if all passed.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 2
FAILED=0
BUILD=1
[ "${1:-}" = --no-build ] && BUILD=0

check() {
	local name=$1 why=$2
	if [ -z "$why" ]; then
		echo "packages: $name PASS"
	else
		echo "packages: $name FAIL: $why"
		FAILED=$((FAILED + 1))
	fi
}

if ! command -v lintian >/dev/null; then
	echo "packages: installing lintian" >&2
	apt-get update -qq >/dev/null 2>&1
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends lintian >/dev/null ||
		{ echo "packages: apt-get install lintian failed" >&2; exit 2; }
fi
if [ "$BUILD" = 1 ]; then
	make --no-print-directory deb || { echo "packages: make deb failed" >&2; exit 1; }
	make --no-print-directory rpm || { echo "packages: make rpm failed" >&2; exit 1; }
fi
VERSION=$(make --no-print-directory -s version)
DEB=$(ls target/debian/stalld_*.deb)
RPM=$(ls target/rpm/stalld-*.rpm)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# The staged trees (target/{debian,rpm}/root) are what `make install` put there; a file
# there that is missing from the package means the package no longer follows make install.
staged() {
	(cd "$1" && find . -path ./DEBIAN -prune -o \( -type f -o -type l \) -printf '/%P\n' | sort)
}

# ------------------------------------------------------------------ deb
dpkg-deb -x "$DEB" "$WORK/deb"
dpkg-deb -e "$DEB" "$WORK/deb-control"
missing=$(comm -23 <(staged target/debian/root) <(staged "$WORK/deb"))
check "deb has every staged file" "${missing:+missing: $missing}"
for file in /usr/bin/stalld /usr/bin/throttlectl /lib/systemd/system/stalld.service /etc/default/stalld \
	/usr/share/man/man8/stalld.8.gz /usr/share/doc/stalld/copyright /usr/share/doc/stalld/changelog.Debian.gz \
	/usr/share/bash-completion/completions/stalld /usr/share/zsh/vendor-completions/_stalld \
	/usr/share/fish/vendor_completions.d/stalld.fish; do
	[ -e "$WORK/deb$file" ] || [ -L "$WORK/deb$file" ] || why_layout="${why_layout:-}$file "
done
check "deb layout" "${why_layout:+missing: ${why_layout}}"
conffiles=$(cat "$WORK/deb-control/conffiles")
check "deb conffiles" "$([ "$conffiles" = /etc/default/stalld ] || echo "conffiles are '$conffiles', expected /etc/default/stalld")"
deb_version=$(dpkg-deb -f "$DEB" Version)
binary_version=$("$WORK/deb/usr/bin/stalld" --version)
check "deb version" "$([ "${deb_version%-*}" = "$VERSION" ] && [ "$binary_version" = "$VERSION" ] ||
	echo "package $deb_version, stalld --version $binary_version, Cargo.toml $VERSION")"
depends=$(dpkg-deb -f "$DEB" Depends)
check "deb dependencies declared" "$(grep -q libelf1 <<<"$depends" && grep -q zlib1g <<<"$depends" ||
	echo "Depends: '$depends' lacks libelf1 or zlib1g (the binary links them)")"
why=""
grep -q 'daemon-reload' "$WORK/deb-control/postinst" || why="postinst does not daemon-reload; "
if grep -hvE '^[[:space:]]*#' "$WORK/deb-control"/{postinst,prerm,postrm} |
	grep -E '(systemctl|deb-systemd-invoke|deb-systemd-helper)[^#]*\b(start|enable|restart)\b' | grep -vE 'try-restart'; then
	why="${why}a maintainer script starts, restarts or enables the service"
fi
check "deb maintainer scripts" "$why"
lintian --pedantic --info "$DEB" >"$WORK/lintian.txt" 2>&1
grep -E '^[EWIPX]: ' "$WORK/lintian.txt" | sed 's/^/    lintian: /'
errors=$(grep -c '^E: ' "$WORK/lintian.txt")
check "deb lintian errors" "$([ "$errors" = 0 ] || echo "$errors lintian errors")"

# ------------------------------------------------------------------ rpm
(cd "$WORK" && mkdir rpm && cd rpm && rpm2cpio "$ROOT/$RPM" | cpio -idm --quiet)
missing=$(comm -23 <(staged target/rpm/root) <(staged "$WORK/rpm"))
check "rpm has every staged file" "${missing:+missing: $missing}"
config=$(rpm -qpc "$RPM")
check "rpm config files" "$([ "$config" = /etc/sysconfig/stalld ] || echo "config files are '$config', expected /etc/sysconfig/stalld")"
licenses=$(rpm -qpL "$RPM")
check "rpm license" "$([ "$licenses" = /usr/share/licenses/stalld/COPYING ] || echo "license files: '$licenses'")"
rpm_version=$(rpm -qp --qf '%{VERSION}' "$RPM")
check "rpm version" "$([ "$rpm_version" = "$VERSION" ] || echo "rpm $rpm_version, Cargo.toml $VERSION")"
libs=$(rpm -qpR "$RPM" | grep -E '\.so|^lib' || true)
check "rpm needs no shared library (static)" "${libs:+requires $libs}"
why=""
rpm -qp --scripts "$RPM" >"$WORK/scripts.txt"
grep -q 'daemon-reload' "$WORK/scripts.txt" || why="no daemon-reload in the scriptlets; "
grep -vE '^[[:space:]]*#' "$WORK/scripts.txt" | grep -E 'systemctl[^#]*\b(start|enable|restart)\b' | grep -vq 'try-restart' &&
	why="${why}a scriptlet starts, restarts or enables the service"
check "rpm scriptlets" "$why"
# Installed into a scratch root (its own rpm database; no scripts, no dependency check since
# the root is empty), the static binary runs and reports the package's version.
why=""
if ! rpm --root "$WORK/rpmroot" --nodeps --noscripts -i "$ROOT/$RPM" >"$WORK/rpm-i.log" 2>&1; then
	why="rpm -i --root failed: $(tail -n 3 "$WORK/rpm-i.log")"
else
	installed=$("$WORK/rpmroot/usr/bin/stalld" --version 2>&1)
	[ "$installed" = "$VERSION" ] || why="the installed stalld says '$installed'"
	[ "$(readlink "$WORK/rpmroot/usr/bin/throttlectl")" = stalld ] || why="$why throttlectl is not a link to stalld"
fi
check "rpm installs and runs" "$why"

echo "packages: $(du -h "$DEB" | cut -f1) $DEB, $(du -h "$RPM" | cut -f1) $RPM"
exit "$FAILED"
