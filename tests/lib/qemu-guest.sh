# SPDX-License-Identifier: GPL-2.0-or-later
# shellcheck shell=bash disable=SC2034 # sourced: the variables are for the caller
#
# Shared by the scripts that boot Debian kernels under qemu (tests/kernel-matrix.sh,
# tests/systemd-guest.sh): host packages from apt, Debian kernels fetched into an ignored
# cache, the static stalld/stalld-starve build, the qexit helper and one bounded qemu boot.
# Sourced, not run. The caller sets, before sourcing:
#   ROOT        the repository
#   WORK        a scratch folder under target/ for logs
#   LOG_TAG     the prefix of messages (e.g. kernel-matrix)
# and, before calling the functions that use them:
#   HOST_PACKAGES (array), OFFLINE (0|1), KERNEL_CACHE.
# KVM is never used: /dev/kvm on these machines is PVM and hangs stock kernels (TCG only).

QEMU_GUEST_LIB=$ROOT/tests/lib
# Where `make static` puts the static binaries.
STATIC_OUT=$ROOT/$(make -C "$ROOT" --no-print-directory -s static-dir)

# flavour -> apt package name pattern (the newest match is used)
declare -A KERNEL_PACKAGE_PATTERN=(
	[6.1]='^linux-image-6\.1\.0-[0-9]+-amd64-unsigned$'
	[6.1-rt]='^linux-image-6\.1\.0-[0-9]+-rt-amd64-unsigned$'
	[6.12]='^linux-image-6\.12\.[0-9]+\+deb12-amd64-unsigned$'
	[6.12-rt]='^linux-image-6\.12\.[0-9]+\+deb12-rt-amd64-unsigned$'
)

die() {
	echo "$LOG_TAG: error: $*" >&2
	exit 2
}

note() {
	echo "$LOG_TAG: $*" >&2
}

APT_UPDATED=0
apt_update() {
	[ "$APT_UPDATED" = 1 ] && return 0
	APT_UPDATED=1
	note "apt-get update"
	apt-get update -qq >"$WORK/apt-update.log" 2>&1 || {
		note "warning: apt-get update failed (see $WORK/apt-update.log); using what apt already knows"
		return 1
	}
}

# install_host_packages: apt-get installs whatever of HOST_PACKAGES is missing.
install_host_packages() {
	local missing=() package
	for package in "${HOST_PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' ||
			missing+=("$package")
	done
	[ "${#missing[@]}" -eq 0 ] && return 0
	[ "$(id -u)" -eq 0 ] || die "host packages missing (${missing[*]}) and not root to install them"
	[ "$OFFLINE" = 1 ] && die "host packages missing (${missing[*]}) and --offline given"
	apt_update || true
	note "installing host packages: ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
		>"$WORK/apt-install.log" 2>&1 ||
		die "apt-get install ${missing[*]} failed; see $WORK/apt-install.log"
}

# fetch_kernel FLAVOUR: prints the kernel release (uname -r) whose vmlinuz is in KERNEL_CACHE,
# downloading and unpacking the newest Debian package of that flavour first if needed.
fetch_kernel() {
	local flavour=$1 pattern=${KERNEL_PACKAGE_PATTERN[$1]} package="" release deb tmp
	if [ "$OFFLINE" != 1 ]; then
		package=$(apt-cache pkgnames linux-image-6. | grep -E "$pattern" | sort -V | tail -n 1 || true)
		[ -n "$package" ] || note "warning: apt knows no package matching $pattern"
	fi
	if [ -z "$package" ]; then
		# Offline, or apt knows nothing: the newest cached kernel of this flavour.
		package=$(find "$KERNEL_CACHE" -mindepth 1 -maxdepth 1 -type d -printf 'linux-image-%f-unsigned\n' 2>/dev/null |
			grep -E "$pattern" | sort -V | tail -n 1 || true)
		[ -n "$package" ] || die "no $flavour kernel: none in $KERNEL_CACHE and apt has none matching $pattern"
	fi
	release=${package#linux-image-}
	release=${release%-unsigned}
	if [ ! -s "$KERNEL_CACHE/$release/boot/vmlinuz-$release" ]; then
		[ "$OFFLINE" = 1 ] && die "$release is not in $KERNEL_CACHE and --offline was given"
		mkdir -p "$KERNEL_CACHE/debs"
		note "downloading $package"
		(cd "$KERNEL_CACHE/debs" && apt-get download -q "$package" >"$WORK/apt-download-$release.log" 2>&1) ||
			die "apt-get download $package failed; see $WORK/apt-download-$release.log"
		local debs=("$KERNEL_CACHE/debs/${package}_"*.deb)
		deb=${debs[-1]}
		[ -f "$deb" ] || die "apt-get download $package left no .deb in $KERNEL_CACHE/debs"
		# Only boot/ (vmlinuz, config, System.map) is needed: the guests load no modules.
		tmp=$(mktemp -d "$KERNEL_CACHE/.unpack.XXXXXX")
		dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp" ./boot ||
			die "unpacking $deb failed"
		[ -s "$tmp/boot/vmlinuz-$release" ] || die "$deb has no boot/vmlinuz-$release"
		rm -rf "${KERNEL_CACHE:?}/$release"
		mkdir -p "$KERNEL_CACHE/$release"
		mv "$tmp/boot" "$KERNEL_CACHE/$release/boot"
		basename "$deb" >"$KERNEL_CACHE/$release/package"
		rm -rf "$tmp" "$deb"
	fi
	echo "$release"
}

# build_static_binaries BIN...: the static (glibc +crt-static, libbpf/libelf/libz linked in)
# build of the named binaries through `make static`, the same build the packages and the
# container image ship; then checks that each is really static.
build_static_binaries() {
	[ -f "$ROOT/src/bin/stalld-starve.rs" ] ||
		die "src/bin/stalld-starve.rs is missing: the starvation generator has not landed on this branch yet"
	note "building static $* (make static)"
	make -C "$ROOT" --no-print-directory static STATIC_BINS="$*" >"$WORK/cargo-build.log" 2>&1 || {
		tail -n 60 "$WORK/cargo-build.log" >&2
		die "the static build failed; full log in $WORK/cargo-build.log"
	}
	local bin
	for bin in "$@"; do
		local path=$STATIC_OUT/$bin
		[ -x "$path" ] || die "$path was not built"
		if readelf -l "$path" | grep -q 'program interpreter' || readelf -d "$path" | grep -q NEEDED; then
			readelf -d "$path" | grep NEEDED >&2 || true
			die "$bin is not static (it has a program interpreter or NEEDED libraries)"
		fi
	done
}

# build_qexit DEST: the static helper that hands the guest's exit status to qemu.
build_qexit() {
	gcc -static -O2 -Wall -o "$1" "$QEMU_GUEST_LIB/qexit.c" || die "building qexit failed"
}

# qemu_boot KERNEL INITRD APPEND LOG TIMEOUT MEMORY_MB: boots one guest (TCG, 2 vCPUs,
# isa-debug-exit), console in LOG. A guest that died before printing "=== INIT started" (an
# occasional TCG emulation oops while the kernel boots, not ours) is booted again, up to 3
# times. Sets QEMU_RC (1 means the guest reported 0 through qexit), QEMU_STATUS (words),
# QEMU_CONSOLE_RC (the "=== RESULT rc=N" the guest printed, or empty) and QEMU_WALL (s).
qemu_boot() {
	local kernel=$1 initrd=$2 append=$3 log=$4 timeout=$5 memory=$6 attempt start end rc
	start=$(date +%s.%N)
	for attempt in 1 2 3; do
		set +e
		timeout --kill-after=10 "$timeout" qemu-system-x86_64 \
			-accel tcg -cpu max -smp 2 -m "$memory" \
			-nodefaults -display none -no-reboot -serial stdio \
			-device isa-debug-exit,iobase=0xf4,iosize=0x04 \
			-kernel "$kernel" -initrd "$initrd" -append "$append" \
			</dev/null >"$log" 2>&1
		rc=$?
		set -e
		grep -q '^=== INIT started' "$log" && break
		note "$(basename "$kernel"): the kernel died before /init (attempt $attempt); booting again"
	done
	end=$(date +%s.%N)
	QEMU_WALL=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
	QEMU_CONSOLE_RC=$(tr -d '\r' <"$log" | sed -n 's/^=== RESULT rc=\([0-9]*\)$/\1/p' | tail -n 1)
	case "$rc" in
	1) QEMU_STATUS="guest rc 0" ;;
	124 | 137) QEMU_STATUS="timed out after ${timeout} s" ;;
	0)
		# Lockdown (integrity and up) refuses ioperm(), so qexit cannot report: the guest
		# then powers off, and its console line is the only word on the result.
		if [ -n "$QEMU_CONSOLE_RC" ] && grep -q '^qexit: ioperm: Operation not permitted' "$log"; then
			QEMU_STATUS="guest rc $QEMU_CONSOLE_RC (console; lockdown refuses ioperm)"
			[ "$QEMU_CONSOLE_RC" = 0 ] && rc=1
		else
			QEMU_STATUS="guest powered off without reporting (panic?)"
		fi
		;;
	*) if [ $((rc % 2)) -eq 1 ]; then QEMU_STATUS="guest rc $((rc >> 1))"; else QEMU_STATUS="qemu rc $rc"; fi ;;
	esac
	if [ "$rc" = 1 ] && [ "$QEMU_CONSOLE_RC" != 0 ]; then
		QEMU_STATUS="$QEMU_STATUS, but the console says rc=${QEMU_CONSOLE_RC:-nothing}"
		rc=2
	fi
	QEMU_RC=$rc
}
