# SPDX-License-Identifier: GPL-2.0-or-later
# shellcheck shell=bash disable=SC2034 # sourced: the variables are for the caller
# Shared by packaging/dist.sh, deb.sh and rpm.sh (sourced): the version scheme, the
# packager, the changelog date and small helpers.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VERSION=$(make -C "$ROOT" --no-print-directory -s version)
[ -n "$VERSION" ] || { echo "packaging: no version in Cargo.toml" >&2; exit 2; }
# The packages' own revision: raise it for a packaging-only change of the same version.
RELEASE=${PACKAGE_RELEASE:-1}
# The version scheme: epoch 1, i.e. 1:0.1.0-1. The distributions' stalld is the C one at
# 1.x, epoch 0; any epoch-1 version is above all of them, so ours upgrades it in place (same
# name, same files, rpm -U / dpkg -i / dnf and apt install), no later 1.x (or 2.x) update of
# theirs replaces it, and going back is an ordinary downgrade to their version. The upstream
# version (Cargo.toml, stalld --version) stays 0.x. Never lower it again: an epoch is forever.
EPOCH=1
MAINTAINER=${PACKAGE_MAINTAINER:-stalld maintainers <stalld@example.org>}
SUMMARY="boosts threads that starve on a CPU run queue"

pkg_die() {
	echo "$PKG_TAG: error: $*" >&2
	exit 2
}

pkg_note() {
	echo "$PKG_TAG: $*" >&2
}

# need_tools PACKAGE:COMMAND...: apt-get installs the packages whose command is missing.
need_tools() {
	local missing=() spec
	for spec in "$@"; do
		command -v "${spec#*:}" >/dev/null 2>&1 || missing+=("${spec%%:*}")
	done
	[ "${#missing[@]}" -eq 0 ] && return 0
	[ "$(id -u)" -eq 0 ] || pkg_die "missing ${missing[*]}: install them (apt-get install ${missing[*]})"
	pkg_note "installing ${missing[*]}"
	apt-get -o DPkg::Lock::Timeout=900 update -qq >/dev/null 2>&1 || true
	DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
		pkg_die "apt-get install ${missing[*]} failed"
}

# The newest CHANGELOG.md entry's date ("## 0.1.0 (2026-12-01)"), which must be this version's:
# the packages' changelogs and file times come from it, so a rebuild gives the same package.
# An "## Unreleased" entry above it (changes not in a release yet) is not one.
changelog_date() {
	local line
	line=$(grep -m 1 '^## [0-9]' "$ROOT/CHANGELOG.md") || pkg_die "CHANGELOG.md has no '## VERSION (DATE)' entry"
	case "$line" in
	"## $VERSION ("*")") ;;
	*) pkg_die "CHANGELOG.md's newest entry is '$line', not version $VERSION from Cargo.toml: add an entry" ;;
	esac
	line=${line#*(}
	echo "${line%)}"
}
