#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# stalld under a real systemd: boots the kernel matrix's Debian 6.12 kernel under qemu (TCG)
# with a small Debian root filesystem (mmdebstrap, systemd as PID 1, cached in
# .cache/systemd-guest), installs the .deb that `make deb` builds from source in it with dpkg,
# and runs, as a user would (systemctl, journalctl, /etc/default/stalld, a drop-in):
#   install       dpkg -i: daemon-reload done, the service neither enabled nor started
#   purge         dpkg --purge: nothing of ours left
#   0-upgrade     the distribution's stalld 1.28 (tests/packages/standin.sh) with an edited
#                 /etc/default/stalld, enabled and running; ours installed over it: the edit
#                 kept and used, the service restarted as ours; apt (a local repository)
#                 does not take the distribution's 1.29 over ours; ours stopped, the RT
#                 runtime the distribution's `throttlectl off` saved is back
#   1-start       systemctl start stalld: stalld is SCHED_FIFO 10 from exec on (before READY,
#                 and at its first journal line), `pidof stalld` one pid, `chrt -ap` FIFO 10
#                 for every thread; journal says "using queue_track backend"
#   2-boost       a SCHED_FIFO victim starving behind a hog on CPU 1 is boosted and restored,
#                 and the journal has the lines
#   3-kill        systemctl kill -s KILL stalld during a boost, then the same with the unit's
#                 cgroup.kill (all processes at once): after each automatic restart
#                 nothing is left boosted and RT throttling is off while stalld runs
#   4-stop        systemctl stop stalld: sched_rt_runtime_us back, no stalld process left
#   5-drop-in     a drop-in's EnvironmentFile with BE="-b sched_debug" is honoured
#   6-prestop     stalld run as the DaemonSet runs it, a victim boosted, then the manifest's
#                 preStop hook: stalld stopped, the victim and RT throttling restored, also
#                 with stalld and its guardian stuck (SIGSTOP); its stdout is JSON lines;
#                 and beside the host's running unit: the pod stands aside (its event names
#                 the unit's stalld, GET /ready answers 503), the hook stops it and leaves
#                 the host's stalld, RT throttling and its saved value as they were
#   7-downgrade   the distribution's 1.28 installed back over a running ours: the edit kept,
#                 their service running, nothing of ours left
# Prints one "systemd: <step> PASS|FAIL" line per step (tests/systemd-guest/run.sh) and exits
# 0 only if all passed. Needs root (apt-get, mmdebstrap); the starvation only ever runs
# inside the guest. One guest at a time, bounded by timeout(1).
#
#   tests/systemd-guest.sh [--offline] [--no-build] [--reuse-deb] [--rebuild-rootfs] [--fetch-only]
#     --fetch-only  install the host packages, fetch the kernel and build the root filesystem
#                   (both cached), then stop: CI prepares them while its tests run
#     --reuse-deb   take target/debian's .deb as it is (tests/packages.sh built it), still
#                   build stalld-starve
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HERE=$ROOT/tests/systemd-guest
KERNEL_CACHE=${KERNEL_MATRIX_CACHE:-$ROOT/.cache/kernels}
ROOTFS_CACHE=${SYSTEMD_GUEST_CACHE:-$ROOT/.cache/systemd-guest}
WORK=$ROOT/target/systemd-guest
LOG_TAG="systemd-guest"
BOOT_TIMEOUT=${SYSTEMD_GUEST_BOOT_TIMEOUT:-1200}
KERNEL_FLAVOUR=6.12
HOST_PACKAGES=(qemu-system-x86 cpio mmdebstrap gcc libc6-dev make pkg-config clang libelf-dev zlib1g-dev dpkg-dev)
# shellcheck source=tests/lib/qemu-guest.sh
. "$ROOT/tests/lib/qemu-guest.sh"

# What the guest's root filesystem is made of. Changing any of it (or this script's recipe
# below) changes the cache key, so the rootfs is rebuilt.
ROOTFS_PACKAGES=systemd,systemd-sysv,procps,libelf1
# Timers and services that would only add noise (and CPU under TCG) to the test.
ROOTFS_MASKED="getty.target systemd-logind.service apt-daily.timer apt-daily-upgrade.timer
	dpkg-db-backup.timer e2scrub_all.timer fstrim.timer systemd-tmpfiles-clean.timer"
# Removed once everything is installed, to keep the image (which lives in the guest's RAM)
# small. (dpkg's path-exclude breaks on packages that ship into such folders.)
ROOTFS_REMOVED="/usr/share/doc /usr/share/man /usr/share/info /usr/share/locale /usr/share/i18n
	/usr/share/zoneinfo /var/cache/apt/*.bin /var/lib/apt/lists/* /var/log/*.log"

OFFLINE=0
BUILD=1
REUSE_DEB=0
REBUILD_ROOTFS=0
FETCH_ONLY=0
while [ "$#" -gt 0 ]; do
	case "$1" in
	--offline) OFFLINE=1 ;;
	--no-build) BUILD=0 ;;
	--reuse-deb) REUSE_DEB=1 ;;
	--rebuild-rootfs) REBUILD_ROOTFS=1 ;;
	--fetch-only) FETCH_ONLY=1 ;;
	-h | --help) sed -n '3,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown argument: $1 (see --help)" ;;
	esac
	shift
done
[ "$(uname -m)" = x86_64 ] || die "the guest boots an x86_64 kernel: run it on x86_64"
[ "$(id -u)" -eq 0 ] || die "needs root (apt-get, mmdebstrap building the guest's root filesystem)"

# build_rootfs: prints the path of the cached root filesystem cpio, building it if needed.
build_rootfs() {
	local codename key cpio dir sources
	codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
	[ -n "$codename" ] || die "cannot tell the host's Debian codename from /etc/os-release"
	key=$( {
		echo "$codename $ROOTFS_PACKAGES $ROOTFS_MASKED $ROOTFS_REMOVED"
		sed -n '/^build_rootfs() {/,/^}/p' "$0"
	} | sha256sum | cut -c1-16)
	cpio=$ROOTFS_CACHE/rootfs-$codename-$key.cpio.gz
	if [ "$REBUILD_ROOTFS" = 0 ] && [ -s "$cpio" ]; then
		note "root filesystem: cached ${cpio#"$ROOT"/}"
		echo "$cpio"
		return 0
	fi
	[ "$OFFLINE" = 1 ] && die "no cached root filesystem $cpio and --offline was given"
	mkdir -p "$ROOTFS_CACHE"
	sources=$WORK/guest.sources
	"$ROOT/scripts/host-apt-sources" "$codename" >"$sources"
	[ -s "$sources" ] || die "found no apt sources for $codename in /etc/apt to build the guest from"
	dir=$ROOTFS_CACHE/.build
	rm -rf "$dir"
	local start=$SECONDS path paths removed=()
	# read -a splits without globbing: the patterns are for the hook, inside the rootfs.
	read -ra paths <<<"${ROOTFS_REMOVED//[$'\n\t']/ }"
	for path in "${paths[@]}"; do
		removed+=(".$path")
	done
	note "building the guest's root filesystem ($codename, minbase + $ROOTFS_PACKAGES) with mmdebstrap"
	# shellcheck disable=SC2016 # $1 is mmdebstrap's, expanded by its hook shell
	mmdebstrap --mode=root --variant=minbase --include="$ROOTFS_PACKAGES" \
		--customize-hook='echo stalld-guest >"$1/etc/hostname"' \
		--customize-hook="chroot \"\$1\" systemctl mask ${ROOTFS_MASKED//[$'\n\t']/ } >/dev/null 2>&1" \
		--customize-hook="cd \"\$1\" && rm -rf ${removed[*]}" \
		"$codename" "$dir" "$sources" >"$WORK/mmdebstrap.log" 2>&1 || {
		tail -n 40 "$WORK/mmdebstrap.log" >&2
		die "mmdebstrap failed; full log in $WORK/mmdebstrap.log"
	}
	[ -x "$dir/lib/systemd/systemd" ] || die "the root filesystem has no /lib/systemd/systemd"
	rm -f "$ROOTFS_CACHE"/rootfs-*.cpio.gz
	(cd "$dir" && find . | cpio -o -H newc --quiet | gzip -1) >"$cpio.tmp"
	mv "$cpio.tmp" "$cpio"
	note "root filesystem built in $((SECONDS - start)) s: $(du -sh "$dir" | cut -f1) unpacked, $(du -h "$cpio" | cut -f1) as ${cpio#"$ROOT"/}"
	rm -rf "$dir"
	echo "$cpio"
}

# build_payload: the second cpio, merged over the rootfs by the kernel: the .deb, the
# distribution's stand-ins and a local apt repository with its 1.29, the DaemonSet's preStop
# hook, the static stalld-starve and qexit, the test and its unit.
build_payload() {
	local payload=$WORK/payload deb
	deb=$(find "$ROOT/target/debian" -maxdepth 1 -name 'stalld_*.deb' 2>/dev/null | sort | tail -n 1)
	[ -n "$deb" ] || die "no target/debian/stalld_*.deb: run make deb (or drop --no-build)"
	rm -rf "$payload"
	mkdir -p "$payload/test/repo" "$payload/etc/systemd/system/multi-user.target.wants"
	install -m 0644 "$deb" "$payload/test/"
	"$ROOT/tests/packages/standin.sh" deb "$payload/test/standin" 1.28 1.29 || die "building the stand-in packages failed"
	mv "$payload"/test/standin/stalld_1.29-*.deb "$payload/test/repo/"
	(cd "$payload/test/repo" && dpkg-scanpackages --multiversion . /dev/null >Packages 2>/dev/null) ||
		die "dpkg-scanpackages failed"
	# A flat repository's Release (unsigned: the source line trusts it).
	printf 'Origin: stand-in\nLabel: stand-in\nSuite: stand-in\nDate: %s\nSHA256:\n %s %s Packages\n' \
		"$(date -u -R)" "$(sha256sum <"$payload/test/repo/Packages" | cut -d' ' -f1)" \
		"$(stat -c %s "$payload/test/repo/Packages")" >"$payload/test/repo/Release"
	echo "deb [trusted=yes] file:/test/repo ./" >"$payload/test/repo.list"
	# The hook's script, as the DaemonSet's YAML block holds it.
	awk '/^ *preStop:/ { hook = 1 } hook && /- \|$/ { block = 1; next }
		block { if ($0 !~ /^ *$/) { n = match($0, /[^ ]/); if (!indent) indent = n; if (n < indent) exit }
			print substr($0, indent) }' "$ROOT/deploy/kubernetes/daemonset.yaml" >"$payload/test/prestop.sh"
	grep -q 'stalld restore' "$payload/test/prestop.sh" || die "found no preStop script in deploy/kubernetes/daemonset.yaml"
	# The container's arguments, one per line, as the DaemonSet gives them.
	awk '/^ *args:/ { list = 1; next } list && /^ *- / { sub(/^ *- /, ""); print; next } list { exit }' \
		"$ROOT/deploy/kubernetes/daemonset.yaml" >"$payload/test/pod-args"
	grep -q -- '--stand_aside' "$payload/test/pod-args" || die "found no container args with --stand_aside in deploy/kubernetes/daemonset.yaml"
	install -m 0755 "$STATIC_OUT/stalld-starve" "$HERE/run.sh" "$HERE/init" "$payload/test/"
	build_qexit "$payload/test/qexit"
	install -m 0644 "$HERE/stalld-guest-test.service" "$payload/etc/systemd/system/"
	ln -s ../stalld-guest-test.service "$payload/etc/systemd/system/multi-user.target.wants/"
	(cd "$payload" && find . | cpio -o -H newc --quiet | gzip -1) >"$WORK/payload.cpio.gz"
	note "payload: $(basename "$deb"), stalld-starve, run.sh"
}

SECONDS=0
mkdir -p "$WORK" "$KERNEL_CACHE"
install_host_packages
[ "$OFFLINE" = 1 ] || apt_update || true
release=$(fetch_kernel "$KERNEL_FLAVOUR")
rootfs=$(build_rootfs)
ROOTFS_READY=$SECONDS
if [ "$FETCH_ONLY" = 1 ]; then
	note "kernel $release and the root filesystem ready after ${ROOTFS_READY} s"
	exit 0
fi
if [ "$BUILD" = 1 ]; then
	if [ "$REUSE_DEB" = 0 ]; then
		note "make deb (the source package, built in a clean root)"
		make -C "$ROOT" --no-print-directory deb >"$WORK/make-deb.log" 2>&1 || {
			tail -n 40 "$WORK/make-deb.log" >&2
			die "make deb failed; full log in $WORK/make-deb.log"
		}
	fi
	build_static_binaries stalld-starve
fi
build_payload
cat "$rootfs" "$WORK/payload.cpio.gz" >"$WORK/initrd.gz"
BUILT=$SECONDS

log=$WORK/console.log
note "booting $release with systemd (timeout ${BOOT_TIMEOUT} s); console in ${log#"$ROOT"/}"
# 2 GiB: the root filesystem lives in RAM (the kernel unpacks the initramfs into it), which
# needs no disk driver module in the guest.
qemu_boot "$KERNEL_CACHE/$release/boot/vmlinuz-$release" "$WORK/initrd.gz" \
	"console=ttyS0 panic=-1 quiet loglevel=3 rdinit=/test/init systemd.show_status=error" \
	"$log" "$BOOT_TIMEOUT" 2048
mapfile -t results < <(tr -d '\r' <"$log" | grep -E '^systemd: [^ ]+ (PASS|FAIL)' || true)
printf '%s\n' "${results[@]}"
expected=(install purge 0-upgrade 1-start 2-boost 3-kill 4-stop 5-drop-in 6-prestop 7-downgrade)
failed=0
for step in "${expected[@]}"; do
	line=$(printf '%s\n' "${results[@]}" | grep -E "^systemd: $step " || true)
	if [ -z "$line" ]; then
		echo "systemd: $step FAIL: the guest printed no result for it ($QEMU_STATUS)"
		failed=1
	elif ! grep -q " PASS" <<<"$line"; then
		failed=1
	fi
done
[ "$QEMU_RC" = 1 ] || failed=1
note "timing: rootfs ready after ${ROOTFS_READY} s, build done after ${BUILT} s, guest boot + test ${QEMU_WALL} s ($QEMU_STATUS); total ${SECONDS} s"
if [ "$failed" = 1 ]; then
	echo "========== console of the systemd guest, FAILED =========="
	tr -d '\r' <"$log"
	echo "========== end of console =========="
	note "FAILED"
	exit 1
fi
note "all passed"
