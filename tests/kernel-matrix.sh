#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# The kernel matrix: boots Debian's kernels under qemu (TCG) with one static stalld and
# stalld-starve in an initramfs, and proves in each of them, for each backend and queue_track
# stamp source (the kernel's sched_info by default, stalld's tracepoints forced), that a
# starving task is detected, boosted and restored, and that the default attaches nothing to
# scheduler tracepoints.
#
# x86_64: Debian 12's 6.1 and 6.12 (generic and PREEMPT_RT), Debian unstable's newest kernel
# (generic and PREEMPT_RT: the next kernel that breaks a field breaks the matrix first),
# 6.12 once more with lockdown=confidentiality, and Debian 11's 5.10, the oldest kernel with
# BTF Debian offers: queue_track must load and boost with the kernel's stamps there, and its
# own tracepoint stamps (BPF task storage in tracing programs: 5.13) must fall back to
# sched_debug, or be refused under -b queue_track, naming 5.13.
# Other architectures (--arch): Debian's kernel for each under its qemu machine, with the
# binaries of scripts/cross-build: aarch64 (unstable, generic and PREEMPT_RT), s390x, ppc64le,
# riscv64 (unstable) and i686 (Debian 12's 686-pae, generic and PREEMPT_RT: unstable has no
# 32-bit x86 kernel).
#
#   tests/kernel-matrix.sh                 the x86_64 set
#   tests/kernel-matrix.sh --quick         6.1-rt, 6.12, unstable, unstable-rt and
#                                          aarch64:unstable (the CI set)
#   tests/kernel-matrix.sh --arch ARCH     that architecture's set (all: every set)
#   tests/kernel-matrix.sh --table         print the tables of the last run
#
# Prints one line per kernel, backend and stamp source:
#   arch=<uname -m> kernel=<uname -r> case=<case> backend=<name> stamps=<source|-> tp_links=<n>
#   result=PASS|FAIL wait_beyond_threshold_s=<x> ...
# writes them to target/kernel-matrix.txt, and exits 0 only if every line passed.
# Needs root (apt-get, mmdebstrap for the cross builds; the starvation only ever runs inside
# the guests). KVM is not used: /dev/kvm on these machines is PVM and hangs stock kernels.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HERE=$ROOT/tests/kernel-matrix
KERNEL_CACHE=${KERNEL_MATRIX_CACHE:-$ROOT/.cache/kernels}
WORK=$ROOT/target/kernel-matrix
RESULTS=$ROOT/target/kernel-matrix.txt
DOC=$ROOT/tests/kernel-matrix.md
LOG_TAG="kernel-matrix"
# shellcheck source=tests/lib/qemu-guest.sh
. "$ROOT/tests/lib/qemu-guest.sh"
THRESHOLD=3
# Seconds per boot. Another architecture under TCG runs several times slower than x86_64,
# and the host's CPUs are shared: generous, but bounded.
BOOT_TIMEOUT=${KERNEL_MATRIX_BOOT_TIMEOUT:-420}
declare -A ARCH_TIMEOUT_FACTOR=([x86_64]=1 [i686]=2 [aarch64]=3 [s390x]=3 [ppc64le]=3 [riscv64]=3)
HOST_PACKAGES=(busybox-static cpio gcc libc6-dev make pkg-config clang libelf-dev zlib1g-dev)

# Each entry is FLAVOUR (x86_64) or ARCH:FLAVOUR. Per entry: the guest's mode (normal;
# lockdown: the 6.12 kernel with lockdown=confidentiality; fallback: a kernel queue_track
# cannot load on; kernel-stamps-only: queue_track loads with the kernel's stamps only, its
# tracepoint stamps must fall back or be refused) and whether a SCHED_OTHER victim starves too
# (kernels without the fair server: a CFS task really starves behind an RT hog there).
declare -A MODE=([lockdown]=lockdown [5.10]=kernel-stamps-only [i686:6.1]=fallback [i686:6.1-rt]=fallback
	[ppc64le:unstable]=kernel-stamps-only [ppc64le:unstable-64k]=kernel-stamps-only
	[riscv64:unstable]=kernel-stamps-only)
# What the fallback's reason must name: 5.10 has no BPF task storage, which the tracepoint
# stamps need in tracing programs (5.13); on ppc64le and riscv64 since 6.19 task storage cannot
# allocate (kmalloc_nolock() needs CONFIG_HAVE_CMPXCHG_DOUBLE, kernel commit f484f4a3e058);
# Debian builds its 32-bit x86 kernels without CONFIG_DEBUG_INFO_BTF.
declare -A FALLBACK_REASON=([5.10]=5.13 [i686:6.1]=CONFIG_DEBUG_INFO_BTF [i686:6.1-rt]=CONFIG_DEBUG_INFO_BTF
	[ppc64le:unstable]=f484f4a3e058 [ppc64le:unstable-64k]=f484f4a3e058 [riscv64:unstable]=f484f4a3e058)
declare -A OTHER=([6.1]=1 [6.1-rt]=1 [5.10]=1 [i686:6.1]=1 [i686:6.1-rt]=1)
X86_SET=(6.1 6.1-rt 6.12 6.12-rt lockdown unstable unstable-rt 5.10)
declare -A ARCH_SET=(
	[x86_64]="${X86_SET[*]}"
	[aarch64]="aarch64:unstable aarch64:unstable-rt"
	[s390x]="s390x:unstable"
	# 64k: Debian's ppc64el kernel with 64 KiB pages (the generic one has 4 KiB).
	[ppc64le]="ppc64le:unstable ppc64le:unstable-64k"
	[riscv64]="riscv64:unstable"
	[i686]="i686:6.1 i686:6.1-rt"
)
ALL_ARCHS=(x86_64 aarch64 s390x ppc64le riscv64 i686)
QUICK_SET=(6.1-rt 6.12 unstable unstable-rt aarch64:unstable)
# In the quick set, a foreign architecture runs the default case only (queue_track with the
# kernel's stamps: what its users get); the whole set runs with --arch.
QUICK_CASES=queue_track
CASES_OVERRIDE=""

# entry_arch ENTRY / entry_source ENTRY (its KERNEL_SOURCE key).
entry_arch() {
	case "$1" in *:*) echo "${1%%:*}" ;; *) echo x86_64 ;; esac
}
entry_source() {
	case "$1" in lockdown) echo 6.12 ;; *) echo "$1" ;; esac
}

usage() {
	cat <<EOF
usage: tests/kernel-matrix.sh [--quick | --arch ARCH|all | --only ENTRY[,ENTRY...]] [--offline] [--no-build] [--fetch-only]
       tests/kernel-matrix.sh --table | --update-doc

  (default)     the x86_64 set: ${X86_SET[*]}
  --quick       ${QUICK_SET[*]} (for CI on every run;
                the other architecture runs its default case, $QUICK_CASES, only)
  --arch LIST   the sets of these architectures (comma-separated; all: ${ALL_ARCHS[*]})
  --only LIST   any entry of those sets (ARCH:FLAVOUR for the other architectures:
                $(for a in "${ALL_ARCHS[@]:1}"; do printf '%s ' ${ARCH_SET[$a]}; done))
  --offline     no apt-get update/download: use the kernels in ${KERNEL_CACHE#"$ROOT"/}
  --no-build    reuse the static binaries of the previous run
  --fetch-only  install the host packages and fetch the kernels, then stop
  --table       print the markdown tables of target/kernel-matrix.txt
  --update-doc  write them into tests/kernel-matrix.md and README.md

Environment: KERNEL_MATRIX_BOOT_TIMEOUT (seconds per x86_64 boot, default $BOOT_TIMEOUT; other
architectures get a multiple), KERNEL_MATRIX_CACHE (kernel cache, default .cache/kernels),
STALLD_CI_CACHE (private apt trees and the cross-build root, default /var/cache/stalld-ci),
KERNEL_MATRIX_APPEND (more kernel command line, e.g. kmatrix.runtime=20us or
kmatrix.backends=sched_debug).
EOF
}

# ---------------------------------------------------------------------------- the table

# victims_cell LINE: the victims column of a result line.
victims_cell() {
	local line=$1 victims fallback
	victims=$(field victims "$line")
	[ -n "$victims" ] || victims="fifo:$(field wait_beyond_threshold_s "$line")"
	victims=${victims//fifo:/SCHED_FIFO }
	victims=${victims//other:/SCHED_OTHER }
	victims=${victims//,/, }
	fallback=$(field fifo_fallback "$line")
	[ -z "$fallback" ] || victims="$victims (SCHED_FIFO fallback: ${fallback//,/, })"
	echo "$victims"
}

# backend_cells LINE: "backend | enqueue stamps (tracepoint links) | victims" of a result line.
backend_cells() {
	local line=$1 backend stamps forced="" victims
	backend=$(field case "$line")
	stamps=$(field stamps "$line")
	case "$backend" in *:*) forced=${backend#*:} ;; esac
	if [ "$stamps" != - ]; then
		stamps="$stamps${forced:+, forced} ($(field tp_links "$line"))"
	elif [ -n "$forced" ]; then
		stamps="- ($forced forced)"
	fi
	backend=${backend%%:*}
	victims=$(victims_cell "$line")
	if [ -n "$(field lockdown "$line")" ]; then
		case "$backend" in
		auto) backend="default (chose $(field chose "$line"))" ;;
		sched_debug)
			backend="-b sched_debug"
			[ "$(field outcome "$line")" = refused ] && victims="refused, naming the cause"
			;;
		esac
	elif [ -n "$(field reason "$line")" ]; then
		backend="default (fell back to $(field chose "$line"): $(field reason "$line"))"
	elif [ "$(field outcome "$line")" = refused ]; then
		backend="-b queue_track"
		victims="refused to start (exit $(field exit "$line")): $(field said "$line")"
	elif [ "$backend" = auto ]; then
		backend="default (chose $(field backend "$line"))"
	fi
	echo "$backend | $stamps | $victims"
}

preemption_of() {
	case "$1" in
	*-rt-* | *-rt) echo PREEMPT_RT ;;
	*) echo voluntary/dynamic ;;
	esac
}

result_lines() {
	grep -E '^(arch|kernel)=' "$RESULTS"
}

run_header() {
	[ -r "$RESULTS" ] || die "no $RESULTS yet: run tests/kernel-matrix.sh first"
	echo "Generated by \`tests/kernel-matrix.sh --update-doc\` from the run of $(sed -n 's/^# date: //p' "$RESULTS") (commit $(sed -n 's/^# commit: //p' "$RESULTS"))."
}

# The "Tested kernels" markdown table (x86_64) from the result lines of the last run.
print_kernel_table() {
	run_header
	echo
	echo "| kernel (uname -r) | preemption | boot options | backend | enqueue stamps (tracepoint links) | victims (wait beyond the ${THRESHOLD} s threshold, s) | sched_rt_runtime_us at boot | result |"
	echo "|---|---|---|---|---|---|---|---|"
	result_lines | while IFS= read -r line; do
		local arch kernel options
		arch=$(field arch "$line")
		[ "${arch:-x86_64}" = x86_64 ] || continue
		kernel=$(field kernel "$line")
		options=-
		[ -z "$(field lockdown "$line")" ] || options="lockdown=$(field lockdown "$line")"
		echo "| $kernel | $(preemption_of "$kernel") | $options | $(backend_cells "$line") | $(field rt_runtime_us "$line") | $(field result "$line") |"
	done
	echo
	echo "The result lines of that run:"
	echo
	echo '```'
	result_lines | grep -v -E '^arch=(i686|aarch64|s390x|ppc64le|riscv64) '
	echo '```'
}

# The "Tested architectures" markdown table: every line, with its architecture, and the time
# each architecture took (cross build and boots).
print_arch_table() {
	run_header
	echo
	echo "| architecture | kernel (uname -r) | preemption | page size | backend | enqueue stamps (tracepoint links) | victims (wait beyond the ${THRESHOLD} s threshold, s) | result |"
	echo "|---|---|---|---|---|---|---|---|"
	result_lines | while IFS= read -r line; do
		local arch kernel
		arch=$(field arch "$line")
		kernel=$(field kernel "$line")
		[ -z "$(field lockdown "$line")" ] || continue
		echo "| ${arch:-x86_64} | $kernel | $(preemption_of "$kernel") | $(field page "$line") | $(backend_cells "$line") | $(field result "$line") |"
	done
	echo
	echo "Wall time of each boot (all its cases), TCG on a shared 2-CPU host: $(sed -n 's/^# boot \([^ ]*\) [^ ]*: .*, \([0-9.]*\) s$/\1 \2 s/p' "$RESULTS" | paste -sd',' | sed 's/,/, /g')."
	sed -n 's/^# time: \([^ ]*\) \([0-9]*\) s.*/\1 took \2 s (build and boots)./p' "$RESULTS" | paste -sd' '
}

print_table() {
	print_kernel_table
	echo
	print_arch_table
}

# field NAME LINE: the value of NAME=... in a result line (values without blanks, or "quoted").
field() {
	local rest=" $2"
	case "$rest" in
	*" $1=\""*) rest=${rest#*" $1=\""}; echo "${rest%%\"*}" ;;
	*" $1="*) rest=${rest#*" $1="}; echo "${rest%% *}" ;;
	esac
}

# replace_between FILE MARKER TEXT: TEXT between <!-- MARKER:begin --> and <!-- MARKER:end -->.
replace_between() {
	local file=$1 marker=$2 text=$3
	grep -q "<!-- $marker:begin -->" "$file" || die "$file has no <!-- $marker:begin --> marker"
	awk -v table="$text" -v begin="<!-- $marker:begin -->" -v end="<!-- $marker:end -->" '
		index($0, begin) { print; print table; skip = 1; next }
		index($0, end) { skip = 0 }
		!skip { print }
	' "$file" >"$file.new"
	mv "$file.new" "$file"
}

# Each table is rewritten only from a run that has lines for it: a run of one architecture
# does not empty the kernels' table.
update_doc() {
	[ -r "$DOC" ] || die "$DOC is missing"
	if result_lines | grep -v -E '^arch=(i686|aarch64|s390x|ppc64le|riscv64) ' >/dev/null; then
		replace_between "$DOC" kernel-matrix "$(print_kernel_table)"
		replace_between "$ROOT/README.md" kernel-matrix "$(print_kernel_table | sed '/^The result lines/,$d')"
		note "updated the kernels' tables in ${DOC#"$ROOT"/} and README.md"
	fi
	if [ "$(result_lines | sed -n 's/^arch=\([^ ]*\) .*/\1/p' | sort -u | wc -l)" -gt 1 ]; then
		replace_between "$ROOT/README.md" kernel-matrix-architectures "$(print_arch_table)"
		note "updated the architectures' table in README.md"
	fi
}

# ---------------------------------------------------------------------------- the payload

# binaries_dir ARCH: where the static stalld and stalld-starve for ARCH are.
binaries_dir() {
	if [ "$1" = x86_64 ]; then
		echo "$STATIC_OUT"
	else
		"$ROOT/scripts/cross-build" --dir "$1"
	fi
}

# guest_busybox ARCH: a static busybox for ARCH (the host's for x86_64; Debian unstable's
# busybox-static of that architecture otherwise, cached next to the kernels).
guest_busybox() {
	local arch=$1 debarch=${DEBIAN_ARCH[$1]} dir
	if [ "$arch" = x86_64 ]; then
		echo /bin/busybox
		return 0
	fi
	dir=$KERNEL_CACHE/busybox-$debarch
	if [ ! -x "$dir/bin/busybox" ]; then
		[ "$OFFLINE" = 1 ] && die "no busybox for $arch in $dir and --offline was given"
		local tmp
		tmp=$(mktemp -d "$KERNEL_CACHE/.busybox.XXXXXX")
		(cd "$tmp" && debian_apt "sid:$debarch" -- apt-get download -q "busybox-static:$debarch" \
			>"$WORK/apt-download-busybox-$debarch.log" 2>&1) ||
			die "apt-get download busybox-static:$debarch failed; see $WORK/apt-download-busybox-$debarch.log"
		dpkg-deb -x "$tmp"/busybox-static_*.deb "$tmp/x"
		mkdir -p "$dir/bin"
		# /bin or, merged, /usr/bin.
		install -m 0755 "$(find "$tmp/x" -path "*bin/busybox" -type f | head -n 1)" "$dir/bin/busybox"
		rm -rf "$tmp"
	fi
	echo "$dir/bin/busybox"
}

# guest_qexit ARCH DEST: the isa-debug-exit helper where the guest has that device (x86).
guest_qexit() {
	case "$1" in
	x86_64) build_qexit "$2" ;;
	i686)
		mkdir -p "$ROOT/target/cross"
		"$ROOT/scripts/cross-build" --run i686-linux-gnu-gcc -static -O2 -Wall \
			-o target/cross/qexit-i686 tests/lib/qexit.c || die "building qexit for i686 failed"
		install -m 0755 "$ROOT/target/cross/qexit-i686" "$2"
		;;
	esac
}

# build_initramfs ARCH: $WORK/initrd-ARCH.gz, busybox, /init and the test payload.
build_initramfs() {
	local arch=$1 base=$WORK/base-$1 payload=$WORK/payload-$1 applet busybox bins
	rm -rf "$base" "$payload"
	mkdir -p "$base"/{bin,proc,sys,dev,tmp,test} "$payload/test"
	busybox=$(guest_busybox "$arch")
	cp "$busybox" "$base/bin/busybox"
	# The applet list of the host's busybox: every Debian busybox-static has these.
	for applet in $(/bin/busybox --list); do
		[ "$applet" = busybox ] || ln -sf busybox "$base/bin/$applet"
	done
	guest_qexit "$arch" "$base/bin/qexit"
	install -m 0755 "$HERE/init" "$base/init"
	(cd "$base" && find . | cpio -o -H newc --quiet | gzip -1) >"$WORK/base-$arch.cpio.gz"
	bins=$(binaries_dir "$arch")
	install -m 0755 "$bins/stalld" "$bins/stalld-starve" "$HERE/run.sh" "$payload/test/"
	(cd "$payload" && find . | cpio -o -H newc --quiet | gzip -1) >"$WORK/payload-$arch.cpio.gz"
	# The kernel merges concatenated compressed cpio archives.
	cat "$WORK/base-$arch.cpio.gz" "$WORK/payload-$arch.cpio.gz" >"$WORK/initrd-$arch.gz"
}

# ---------------------------------------------------------------------------- the boots

FAILURES=0
RESULT_LINES=()

# boot ENTRY RELEASE: one guest; appends its result lines to RESULT_LINES.
boot() {
	local entry=$1 release=$2 arch mode extra="" expected log rc wall status
	local -a lines=()
	arch=$(entry_arch "$entry")
	mode=${MODE[$entry]:-normal}
	expected="queue_track queue_track:tracepoints sched_debug"
	case "$mode" in
	lockdown)
		extra="lockdown=confidentiality"
		expected="auto queue_track:tracepoints sched_debug"
		;;
	fallback) expected="auto queue_track sched_debug" ;;
	kernel-stamps-only) expected="auto queue_track auto:tracepoints queue_track:tracepoints sched_debug" ;;
	esac
	[ -z "$CASES_OVERRIDE" ] || [ "$arch" = x86_64 ] || expected=$CASES_OVERRIDE
	# The stamp source the default must choose: the kernel's own where it keeps them.
	local stamps=tracepoints
	grep -q '^CONFIG_SCHED_INFO=y' "$KERNEL_CACHE/$release/boot/config-$release" 2>/dev/null && stamps=sched_info
	log=$WORK/console-${entry//:/-}.log
	note "booting $release ($entry); console in ${log#"$ROOT"/}"
	QEMU_ARCH=$arch qemu_boot "$KERNEL_CACHE/$release/boot/vmlinuz-$release" "$WORK/initrd-$arch.gz" \
		"console=${QEMU_CONSOLE[$arch]} panic=-1 quiet $extra kmatrix.mode=$mode kmatrix.other=${OTHER[$entry]:-0} kmatrix.threshold=$THRESHOLD kmatrix.backends=${expected// /,} kmatrix.stamps=$stamps kmatrix.reason=${FALLBACK_REASON[$entry]:-} ${KERNEL_MATRIX_APPEND:-}" \
		"$log" "$((BOOT_TIMEOUT * ${ARCH_TIMEOUT_FACTOR[$arch]}))" 1024
	rc=$QEMU_RC status=$QEMU_STATUS wall=$QEMU_WALL
	mapfile -t lines < <(tr -d '\r' <"$log" | sed -n 's/^KMATRIX //p')
	# Lines the guest never printed are failures too.
	local case_name seen line
	for case_name in $expected; do
		seen=0
		for line in "${lines[@]}"; do
			[ "$(field case "$line")" = "$case_name" ] && seen=1
		done
		if [ "$seen" = 0 ]; then
			line="arch=$arch kernel=$release case=$case_name backend=${case_name%%:*} stamps=- tp_links=NA result=FAIL wait_beyond_threshold_s=NA"
			[ "$mode" = lockdown ] && line="$line lockdown=confidentiality"
			lines+=("$line why=\"no result line: $status\"")
		fi
	done
	local failed=0
	for line in "${lines[@]}"; do
		[ "$(field result "$line")" = PASS ] || failed=1
		RESULT_LINES+=("$line")
		echo "$line"
	done
	if [ "$rc" -ne 1 ] && [ "$failed" = 0 ]; then
		failed=1
		line="arch=$arch kernel=$release case=boot backend=boot stamps=- tp_links=NA result=FAIL wait_beyond_threshold_s=NA why=\"$status\""
		RESULT_LINES+=("$line")
		echo "$line"
	fi
	RESULT_LINES+=("# boot $entry $release: $status, ${wall} s")
	note "$release ($entry): $status, ${wall} s wall"
	if [ "$failed" = 1 ]; then
		FAILURES=$((FAILURES + 1))
		echo "========== console of $release ($entry), FAILED =========="
		tr -d '\r' <"$log"
		echo "========== end of console of $release ($entry) =========="
	fi
}

# ---------------------------------------------------------------------------- main

OFFLINE=0
BUILD=1
FETCH_ONLY=0
SET=("${X86_SET[@]}")
while [ "$#" -gt 0 ]; do
	case "$1" in
	--quick)
		SET=("${QUICK_SET[@]}")
		CASES_OVERRIDE=$QUICK_CASES
		;;
	--arch)
		[ "$#" -ge 2 ] || die "--arch needs an architecture (or all)"
		SET=()
		IFS=, read -r -a archs <<<"$2"
		[ "${archs[*]}" = all ] && archs=("${ALL_ARCHS[@]}")
		for arch in "${archs[@]}"; do
			[ -n "${ARCH_SET[$arch]:-}" ] || die "unknown architecture '$arch' (known: ${ALL_ARCHS[*]})"
			read -r -a entries <<<"${ARCH_SET[$arch]}"
			SET+=("${entries[@]}")
		done
		shift
		;;
	--only)
		[ "$#" -ge 2 ] || die "--only needs a list of entries"
		IFS=, read -r -a SET <<<"$2"
		shift
		;;
	--offline) OFFLINE=1 ;;
	--no-build) BUILD=0 ;;
	--fetch-only) FETCH_ONLY=1 ;;
	--table) print_table; exit 0 ;;
	--update-doc) update_doc; exit 0 ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; die "unknown argument: $1" ;;
	esac
	shift
done
known=" $(printf '%s ' "${ARCH_SET[@]}") "
ARCHS=()
for entry in "${SET[@]}"; do
	[[ "$known" == *" $entry "* ]] || die "unknown entry '$entry' (known:$known)"
	arch=$(entry_arch "$entry")
	[[ " ${ARCHS[*]} " == *" $arch "* ]] || ARCHS+=("$arch")
done
[ "$(uname -m)" = x86_64 ] || die "the matrix builds on and for x86_64 and cross-builds the rest: run it on x86_64"

SECONDS=0
mkdir -p "$WORK" "$KERNEL_CACHE"
for arch in "${ARCHS[@]}"; do
	[[ " ${HOST_PACKAGES[*]} " == *" ${QEMU_PACKAGE[$arch]} "* ]] || HOST_PACKAGES+=("${QEMU_PACKAGE[$arch]}")
done
# riscv64's firmware (OpenSBI) is a package of its own.
[[ " ${ARCHS[*]} " == *" riscv64 "* ]] && HOST_PACKAGES+=(opensbi)
install_host_packages

[ "$OFFLINE" = 1 ] || apt_update || true
declare -A RELEASE=()
declare -A TIMING=()
for entry in "${SET[@]}"; do
	source=$(entry_source "$entry")
	if [ -z "${RELEASE[$source]:-}" ]; then
		RELEASE[$source]=$(fetch_kernel "$source")
	fi
	RELEASE[$entry]=${RELEASE[$source]}
done
note "kernels ready after ${SECONDS} s: $(for e in "${SET[@]}"; do printf '%s=%s ' "$e" "${RELEASE[$e]}"; done)"
[ "$FETCH_ONLY" = 1 ] && exit 0

for arch in "${ARCHS[@]}"; do
	start=$SECONDS
	if [ "$BUILD" = 1 ]; then
		if [ "$arch" = x86_64 ]; then
			build_static_binaries stalld stalld-starve
		else
			note "cross-building for $arch (scripts/cross-build $arch)"
			"$ROOT/scripts/cross-build" "$arch" || die "scripts/cross-build $arch failed"
		fi
		note "$arch: static binaries ready after $((SECONDS - start)) s"
	fi
	build_initramfs "$arch"
	TIMING[$arch]=$((SECONDS - start))
done

for entry in "${SET[@]}"; do
	start=$SECONDS
	boot "$entry" "${RELEASE[$entry]}"
	arch=$(entry_arch "$entry")
	TIMING[$arch]=$((${TIMING[$arch]:-0} + SECONDS - start))
done

{
	echo "# kernel matrix: tests/kernel-matrix.sh ${SET[*]}"
	echo "# date: $(date -u +%Y-%m-%dT%H:%MZ)"
	echo "# commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ' (with local changes)')"
	echo "# host: $(uname -r), $(qemu-system-x86_64 --version | head -n 1), TCG, 2 vCPUs, 1 GiB"
	printf '%s\n' "${RESULT_LINES[@]}"
	for arch in "${ARCHS[@]}"; do
		echo "# time: $arch ${TIMING[$arch]} s (build and boots)"
	done
	echo "# total: ${SECONDS} s"
} >"$RESULTS"
note "results in ${RESULTS#"$ROOT"/}; total ${SECONDS} s ($(for a in "${ARCHS[@]}"; do printf '%s %s s; ' "$a" "${TIMING[$a]}"; done))"
if [ "$FAILURES" -ne 0 ]; then
	note "FAILED: $FAILURES boot(s) had failures (their consoles are printed above)"
	exit 1
fi
note "all passed"
