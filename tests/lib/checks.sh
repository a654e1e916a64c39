# SPDX-License-Identifier: GPL-2.0-or-later
# shellcheck shell=bash
#
# Shared by the host-side tests (tests/packages.sh, tests/cross-packages.sh, tests/manifests.sh):
# one line per check, a failure count, and the host tools they need. Sourced, not run. The
# caller sets CHECK_TAG (the prefix of every line, e.g. packages) and, optionally,
# CHECK_SUBJECT (printed after the prefix, e.g. the architecture under test).

FAILED=0
CHECK_SUBJECT=${CHECK_SUBJECT:-}

# check NAME WHY: "<tag>: [subject ]NAME PASS", or FAIL with WHY (which counts in FAILED).
check() {
	local name=$1 why=$2
	if [ -z "$why" ]; then
		echo "$CHECK_TAG: ${CHECK_SUBJECT:+$CHECK_SUBJECT }$name PASS"
	else
		echo "$CHECK_TAG: ${CHECK_SUBJECT:+$CHECK_SUBJECT }$name FAIL: $why"
		FAILED=$((FAILED + 1))
	fi
}

die() {
	echo "$CHECK_TAG: error: $*" >&2
	exit 2
}

# need_tools PACKAGE:COMMAND...: apt-get installs each PACKAGE whose COMMAND is missing.
need_tools() {
	local spec missing=()
	for spec in "$@"; do
		command -v "${spec#*:}" >/dev/null 2>&1 || missing+=("${spec%%:*}")
	done
	[ "${#missing[@]}" -gt 0 ] || return 0
	echo "$CHECK_TAG: installing ${missing[*]}" >&2
	apt-get -o DPkg::Lock::Timeout=900 update -qq >/dev/null 2>&1
	DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends \
		"${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
}
