# SPDX-License-Identifier: GPL-2.0-or-later
# shellcheck shell=bash disable=SC2034 # sourced: the variables are for the caller
# Shared by packaging/deb.sh and packaging/rpm.sh (sourced): the version, and the staging
# tree that `make install` fills. Every file of a package comes from that tree; the
# packaging scripts add only their format's metadata.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VERSION=$(make -C "$ROOT" --no-print-directory -s version)
[ -n "$VERSION" ] || { echo "packaging: no version in Cargo.toml" >&2; exit 2; }
# The packages' own revision: raise it for a packaging-only change of the same version.
RELEASE=${PACKAGE_RELEASE:-1}
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
	apt-get update -qq >/dev/null 2>&1 || true
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
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

# stage DIR MAKE-VARIABLES...: `make install` into DIR, with the distribution's paths (and
# STATIC=1 or not), then strips the binary as the distributions' helpers do.
stage() {
	local dir=$1
	shift
	rm -rf "$dir"
	mkdir -p "$dir"
	pkg_note "make install DESTDIR=${dir#"$ROOT"/} $*"
	make -C "$ROOT" --no-print-directory install DESTDIR="$dir" "$@" >"$dir.make.log" 2>&1 || {
		tail -n 40 "$dir.make.log" >&2
		pkg_die "make install failed; full log in $dir.make.log"
	}
	strip --remove-section=.comment --remove-section=.note --strip-unneeded "$dir/usr/bin/stalld"
	# strip writes a new file: the guardian's hard link must name the stripped one again.
	ln -f "$dir/usr/bin/stalld" "$dir/usr/bin/stalld-guardian"
	local built
	built=$("$dir/usr/bin/stalld" --version) || pkg_die "the staged stalld does not run"
	[ "$built" = "$VERSION" ] || pkg_die "the staged stalld says version '$built', Cargo.toml says $VERSION"
}
