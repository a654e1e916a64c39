# SPDX-License-Identifier: GPL-2.0-or-later
# shellcheck shell=bash disable=SC2034 # sourced: the variables are for the caller
#
# Shared by the scripts that boot Debian kernels under qemu (tests/kernel-matrix.sh,
# tests/systemd-guest.sh): host packages from apt, Debian kernels (of the host's release, or of
# other Debian suites and architectures through a private apt tree) fetched into an ignored
# cache, the static stalld/stalld-starve build, the qexit helper and one bounded qemu boot of
# any of the architectures in QEMU_ARCH_* below.
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

# Where each kernel comes from: "host PATTERN" (the host's own apt sources; the newest package
# matching PATTERN), or "SUITE[,SUITE...] DEBIAN_ARCH PATTERN" (those Debian suites and that
# architecture through a private apt tree, see debian_apt). The key is the flavour for x86_64, ARCH:FLAVOUR for the
# other architectures. Packages named linux-binary-RELEASE (Debian 14 on) hold only the
# kernel; its config is in linux-base-RELEASE.
declare -A KERNEL_SOURCE=(
	[6.1]='host ^linux-image-6\.1\.0-[0-9]+-amd64-unsigned$'
	[6.1-rt]='host ^linux-image-6\.1\.0-[0-9]+-rt-amd64-unsigned$'
	[6.12]='host ^linux-image-6\.12\.[0-9]+\+deb12-amd64-unsigned$'
	[6.12-rt]='host ^linux-image-6\.12\.[0-9]+\+deb12-rt-amd64-unsigned$'
	[unstable]='sid amd64 ^linux-binary-[0-9.]+\+deb[0-9]+-amd64$'
	[unstable-rt]='sid amd64 ^linux-binary-[0-9.]+\+deb[0-9]+-rt-amd64$'
	[5.10]='bullseye-security amd64 ^linux-image-5\.10\.0-[0-9]+-amd64-unsigned$'
	[aarch64:unstable]='sid arm64 ^linux-binary-[0-9.]+\+deb[0-9]+-arm64$'
	[aarch64:unstable-rt]='sid arm64 ^linux-binary-[0-9.]+\+deb[0-9]+-rt-arm64$'
	[s390x:unstable]='sid s390x ^linux-binary-[0-9.]+\+deb[0-9]+-s390x$'
	[ppc64le:unstable]='sid ppc64el ^linux-binary-[0-9.]+\+deb[0-9]+-powerpc64le$'
	[ppc64le:unstable-64k]='sid ppc64el ^linux-binary-[0-9.]+\+deb[0-9]+-powerpc64le-64k$'
	[riscv64:unstable]='sid riscv64 ^linux-binary-[0-9.]+\+deb[0-9]+-riscv64$'
	[i686:6.1]='bookworm,bookworm-security i386 ^linux-image-6\.1\.0-[0-9]+-686-pae-unsigned$'
	[i686:6.1-rt]='bookworm,bookworm-security i386 ^linux-image-6\.1\.0-[0-9]+-rt-686-pae-unsigned$'
)
# Debian's architecture name for each guest architecture.
declare -A DEBIAN_ARCH=([x86_64]=amd64 [aarch64]=arm64 [s390x]=s390x [ppc64le]=ppc64el [riscv64]=riscv64 [i686]=i386)
# The mirror and the keys the private apt trees use: the ones the host's own apt uses.
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
DEBIAN_KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
# Caches that outlive a clone (CI starts from a fresh one): private apt trees, cross roots.
STALLD_CI_CACHE=${STALLD_CI_CACHE:-/var/cache/stalld-ci}

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
	apt-get -o DPkg::Lock::Timeout=900 update -qq >"$WORK/apt-update.log" 2>&1 || {
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
	# The lock timeout: CI installs these while another step may be using apt.
	DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends "${missing[@]}" \
		>"$WORK/apt-install.log" 2>&1 ||
		die "apt-get install ${missing[*]} failed; see $WORK/apt-install.log"
}

# debian_apt SUITE:ARCH[,ARCH...]... -- COMMAND ARGS...: runs an apt command (apt-get,
# apt-cache) against a private apt tree that knows only those suites and architectures, under
# STALLD_CI_CACHE/debian-apt/<key>: nothing of it reaches the host's own package state. Its
# lists are refreshed once per run (unless OFFLINE=1). Unstable's Release file served here may
# be past its Valid-Until, which apt is told to accept.
debian_apt() {
	local -a specs=()
	while [ "$1" != -- ]; do
		specs+=("$1")
		shift
	done
	shift
	local sources="" spec suite archs dir key
	for spec in "${specs[@]}"; do
		suite=${spec%%:*} archs=${spec#*:}
		local mirror=$DEBIAN_MIRROR
		case "$suite" in *-security) mirror=${DEBIAN_MIRROR%/debian}/debian-security ;; esac
		sources+="deb [arch=$archs signed-by=$DEBIAN_KEYRING] $mirror $suite main"$'\n'
	done
	key=$(printf '%s' "$sources" | sha256sum | cut -c1-12)
	dir=$STALLD_CI_CACHE/debian-apt/$key
	mkdir -p "$dir"/{lists/partial,archives/partial,etc/apt.conf.d,etc/preferences.d,etc/trusted.gpg.d}
	[ -e "$dir/status" ] || : >"$dir/status"
	printf '%s' "$sources" >"$dir/etc/sources.list"
	local all_archs
	all_archs=$(printf '%s\n' "${specs[@]}" | sed 's/^[^:]*://' | tr ',' '\n' | sort -u | sed 's/.*/"&";/' | tr -d '\n')
	cat >"$dir/apt.conf" <<-EOF
		Dir::State "$dir";
		Dir::State::lists "$dir/lists";
		Dir::State::status "$dir/status";
		Dir::Cache "$dir";
		Dir::Cache::archives "$dir/archives";
		Dir::Etc "$dir/etc";
		Dir::Etc::sourcelist "$dir/etc/sources.list";
		Dir::Etc::sourceparts "-";
		APT::Architecture "amd64";
		APT::Architectures { $all_archs };
		Acquire::Check-Valid-Until "false";
		Acquire::Languages "none";
		APT::Sandbox::User "root";
		DPkg::Lock::Timeout "900";
	EOF
	# Once per run, also from the subshells of $(fetch_kernel ...): $$ is the script's pid.
	local updated=$WORK/.apt-updated-$key-$$
	if [ "$OFFLINE" != 1 ] && [ ! -e "$updated" ]; then
		rm -f "$WORK/.apt-updated-$key-"*
		: >"$updated"
		note "apt-get update (private tree: ${specs[*]})"
		APT_CONFIG=$dir/apt.conf apt-get update -qq >"$WORK/apt-update-$key.log" 2>&1 ||
			note "warning: apt-get update of ${specs[*]} failed (see $WORK/apt-update-$key.log); using what it knew"
	fi
	APT_CONFIG=$dir/apt.conf "$@"
}

# kernel_apt SOURCE -- COMMAND...: an apt command against where SOURCE's kernels come from.
kernel_apt() {
	local source=$1
	shift 2
	if [ "${source%% *}" = host ]; then
		"$@"
	else
		local suites arch suite
		local -a specs=()
		read -r suites arch _ <<<"$source"
		for suite in ${suites//,/ }; do
			specs+=("$suite:$arch")
		done
		debian_apt "${specs[@]}" -- "$@"
	fi
}

# fetch_kernel FLAVOUR: prints the kernel release (uname -r) whose vmlinuz is in KERNEL_CACHE,
# downloading and unpacking the newest Debian package of that flavour first if needed. FLAVOUR
# is a key of KERNEL_SOURCE. Whatever the package's layout, the cache holds
# RELEASE/boot/vmlinuz-RELEASE and RELEASE/boot/config-RELEASE.
fetch_kernel() {
	local flavour=$1 source=${KERNEL_SOURCE[$1]:-} pattern package="" release deb tmp arch=""
	[ -n "$source" ] || die "no kernel source for flavour '$flavour'"
	pattern=${source##* }
	[ "${source%% *}" = host ] || arch=:$(read -r _ a _ <<<"$source" && echo "$a")
	if [ "$OFFLINE" != 1 ]; then
		package=$(kernel_apt "$source" -- apt-cache pkgnames "$(sed 's/^\^//; s/[[\\].*//' <<<"$pattern")" |
			grep -E "$pattern" | sort -V | tail -n 1 || true)
		[ -n "$package" ] || note "warning: apt knows no package matching $pattern ($source)"
	fi
	if [ -z "$package" ]; then
		# Offline, or apt knows nothing: the newest cached kernel of this flavour.
		package=$(find "$KERNEL_CACHE" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' 2>/dev/null |
			while read -r cached; do cat "$KERNEL_CACHE/$cached/package-name" 2>/dev/null; done |
			grep -E "$pattern" | sort -V | tail -n 1 || true)
		[ -n "$package" ] || die "no $flavour kernel: none in $KERNEL_CACHE and apt has none matching $pattern"
	fi
	release=${package#linux-image-}
	release=${release#linux-binary-}
	release=${release%-unsigned}
	if [ ! -s "$KERNEL_CACHE/$release/boot/vmlinuz-$release" ]; then
		[ "$OFFLINE" = 1 ] && die "$release is not in $KERNEL_CACHE and --offline was given"
		local -a packages=("$package")
		case "$package" in linux-binary-*) packages+=("linux-base-$release") ;; esac
		mkdir -p "$KERNEL_CACHE/debs"
		tmp=$(mktemp -d "$KERNEL_CACHE/.unpack.XXXXXX")
		for deb in "${packages[@]}"; do
			note "downloading $deb${arch}"
			(cd "$KERNEL_CACHE/debs" && kernel_apt "$source" -- apt-get download -q "$deb$arch" \
				>"$WORK/apt-download-$release.log" 2>&1) ||
				die "apt-get download $deb$arch failed; see $WORK/apt-download-$release.log"
			local debs=("$KERNEL_CACHE/debs/${deb}_"*.deb)
			[ -f "${debs[-1]}" ] || die "apt-get download $deb left no .deb in $KERNEL_CACHE/debs"
			# Only the kernel and its config are needed: the guests load no modules.
			dpkg-deb --fsys-tarfile "${debs[-1]}" | tar -x -C "$tmp" --wildcards \
				'./boot/vmlinu*' './boot/config-*' "./usr/lib/modules/$release/vmlinu*" \
				"./usr/lib/modules/$release/config" 2>/dev/null || true
			rm -f "${debs[@]}"
		done
		mkdir -p "$tmp/out"
		local image
		for image in "$tmp"/boot/vmlinu[xz]-"$release" "$tmp/usr/lib/modules/$release"/vmlinu[xz]; do
			[ -s "$image" ] && mv "$image" "$tmp/out/vmlinuz-$release"
		done
		for image in "$tmp/boot/config-$release" "$tmp/usr/lib/modules/$release/config"; do
			[ -s "$image" ] && mv "$image" "$tmp/out/config-$release"
		done
		[ -s "$tmp/out/vmlinuz-$release" ] || die "$package has no kernel image for $release"
		rm -rf "${KERNEL_CACHE:?}/$release"
		mkdir -p "$KERNEL_CACHE/$release"
		mv "$tmp/out" "$KERNEL_CACHE/$release/boot"
		echo "$package" >"$KERNEL_CACHE/$release/package-name"
		rm -rf "$tmp"
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

# The qemu of each guest architecture (TCG; KVM is PVM here and hangs stock kernels): its
# host package, command line and console. Only x86 has isa-debug-exit (qexit); the others
# power off, and their console's "=== RESULT rc=N" line is the result.
declare -A QEMU_PACKAGE=([x86_64]=qemu-system-x86 [i686]=qemu-system-x86 [aarch64]=qemu-system-arm
	[s390x]=qemu-system-misc [ppc64le]=qemu-system-ppc [riscv64]=qemu-system-misc)
declare -A QEMU_CONSOLE=([x86_64]=ttyS0 [i686]=ttyS0 [aarch64]=ttyAMA0 [s390x]=ttysclp0
	[ppc64le]=hvc0 [riscv64]=ttyS0)
declare -A QEMU_COMMAND=(
	[x86_64]='qemu-system-x86_64 -cpu max -device isa-debug-exit,iobase=0xf4,iosize=0x04'
	[i686]='qemu-system-i386 -cpu max -device isa-debug-exit,iobase=0xf4,iosize=0x04'
	# pauth-impdef: the same pointer authentication with a cheap hash; TCG runs it far faster.
	[aarch64]='qemu-system-aarch64 -M virt -cpu max,pauth-impdef=on'
	[s390x]='qemu-system-s390x -M s390-ccw-virtio -cpu max'
	# TCG cannot do the Spectre mitigations pseries asks for by default: say they are absent.
	[ppc64le]='qemu-system-ppc64 -M pseries,cap-cfpc=broken,cap-sbbc=broken,cap-ibs=broken,cap-ccf-assist=off -cpu power9'
	[riscv64]='qemu-system-riscv64 -M virt -cpu rv64 -bios default'
)
QEMU_ARCH=${QEMU_ARCH:-x86_64}

# qemu_kernel_image KERNEL: the image qemu -kernel can load for QEMU_ARCH, printed. qemu loads
# x86 bzImages, ELF vmlinux and (aarch64) gzipped Images itself; a gzipped riscv64 Image and
# an EFI zboot image (a PE file carrying the compressed Image, "zimg" at offset 4) are
# unpacked next to the kernel first.
qemu_kernel_image() {
	local kernel=$1 out=$1.qemu-image
	case "$QEMU_ARCH" in x86_64 | i686 | ppc64le | s390x) echo "$kernel"; return 0 ;; esac
	if [ ! -s "$out" ]; then
		local magic
		magic=$(head -c 8 "$kernel" | od -An -tx1 | tr -d ' \n')
		if [ "${magic:8:8}" = 7a696d67 ]; then
			# zboot header: payload offset and size (little-endian) at 8 and 12, its
			# compression ("gzip", "zstd") at 24.
			local offset size codec
			offset=$(od -An -tu4 -j8 -N4 --endian=little "$kernel" | tr -d ' ')
			size=$(od -An -tu4 -j12 -N4 --endian=little "$kernel" | tr -d ' ')
			codec=$(dd if="$kernel" bs=1 skip=24 count=4 2>/dev/null)
			tail -c +"$((offset + 1))" "$kernel" | head -c "$size" | "$codec" -dc >"$out.tmp" ||
				die "unpacking the $codec payload of the EFI zboot image $kernel failed"
		elif [ "${magic:0:4}" = 1f8b ]; then
			gzip -dc "$kernel" >"$out.tmp" || die "gunzip $kernel failed"
		else
			cp "$kernel" "$out.tmp"
		fi
		mv "$out.tmp" "$out"
	fi
	echo "$out"
}

# qemu_boot KERNEL INITRD APPEND LOG TIMEOUT MEMORY_MB: boots one guest of QEMU_ARCH (TCG,
# 2 vCPUs), console in LOG. A guest that died before printing "=== INIT started" (an
# occasional TCG emulation oops while the kernel boots, not ours) is booted again, up to 3
# times. Sets QEMU_RC (1 means the guest reported 0), QEMU_STATUS (words), QEMU_CONSOLE_RC
# (the "=== RESULT rc=N" the guest printed, or empty) and QEMU_WALL (s).
qemu_boot() {
	local kernel=$1 initrd=$2 append=$3 log=$4 timeout=$5 memory=$6 attempt start end rc
	local -a command
	read -ra command <<<"${QEMU_COMMAND[$QEMU_ARCH]}"
	kernel=$(qemu_kernel_image "$kernel")
	start=$(date +%s.%N)
	for attempt in 1 2 3; do
		set +e
		timeout --kill-after=10 "$timeout" "${command[@]}" \
			-accel tcg -smp 2 -m "$memory" \
			-nodefaults -display none -no-reboot -serial stdio \
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
		# No isa-debug-exit (not x86), or lockdown (integrity and up) refusing ioperm() to
		# qexit: the guest powered off, and its console line is the only word on the result.
		if [ -n "$QEMU_CONSOLE_RC" ] && { [ "${QEMU_COMMAND[$QEMU_ARCH]}" = "${QEMU_COMMAND[$QEMU_ARCH]%isa-debug-exit*}" ] ||
			grep -q '^qexit: ioperm: Operation not permitted' "$log"; }; then
			QEMU_STATUS="guest rc $QEMU_CONSOLE_RC (console)"
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
