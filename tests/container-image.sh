#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# The Containerfile's multi-architecture path, built here for one foreign architecture
# (default aarch64): `podman build --platform linux/<arch> --build-arg STALLD_FROM=cross` with
# make cross's static binary in the build context (scripts/cross-build --image-context), then
# checks the image: its platform, `stalld --version` and `throttlectl`, the guardian's hard
# link, chrt, flock and readlink for the entrypoint and the preStop hook, the entrypoint.
# Containers run the image's foreign binaries through qemu-user-static registered with
# binfmt_misc, which this script registers for the run if it is not (and removes again); the
# checks run the image's commands in a chroot of its mounted file system.
#
# The base image is debian:bookworm-slim where a registry serves it; where none is
# reachable, an equivalent is built here from Debian's packages (mmdebstrap --variant=minbase
# of the host's release for that architecture, imported as localhost/stalld-base:<release>-<arch>,
# cached in STALLD_CI_CACHE/container-base) and passed as BASE.
#   tests/container-image.sh [ARCH]
# Prints "container: <check> PASS|FAIL" lines; exits 0 only if all passed. Needs root.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 2
ARCH=${1:-aarch64}
CACHE=${STALLD_CI_CACHE:-/var/cache/stalld-ci}/container-base
FAILED=0
declare -A PLATFORM=([aarch64]=arm64 [s390x]=s390x [ppc64le]=ppc64le [riscv64]=riscv64 [i686]=386)
declare -A QEMU=([aarch64]=aarch64 [s390x]=s390x [ppc64le]=ppc64le [riscv64]=riscv64 [i686]=i386)

die() {
	echo "container: error: $*" >&2
	exit 2
}
check() {
	if [ -z "$2" ]; then echo "container: $1 PASS"; else
		echo "container: $1 FAIL: $2"
		FAILED=$((FAILED + 1))
	fi
}

[ -n "${PLATFORM[$ARCH]:-}" ] || die "unknown architecture '$ARCH' (${!PLATFORM[*]})"
[ "$(id -u)" = 0 ] || die "needs root (podman, binfmt_misc)"
platform=linux/${PLATFORM[$ARCH]}
deb_arch=$(scripts/cross-build --deb-arch "$ARCH")
missing=()
for spec in podman:podman qemu-user-static:qemu-${QEMU[$ARCH]}-static mmdebstrap:mmdebstrap arch-test:arch-test; do
	command -v "${spec#*:}" >/dev/null 2>&1 || missing+=("${spec%%:*}")
done
if [ "${#missing[@]}" -gt 0 ]; then
	echo "container: installing ${missing[*]}" >&2
	DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends \
		"${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
fi

# binfmt_misc: the target's qemu-user for foreign binaries (F: opened now, so it works inside
# the containers' root file systems), for this run only if it was not registered.
binfmt=/proc/sys/fs/binfmt_misc
registered=""
mountpoint -q "$binfmt" || mount -t binfmt_misc binfmt_misc "$binfmt" || die "cannot mount binfmt_misc"
name=qemu-${QEMU[$ARCH]}
if [ ! -e "$binfmt/$name" ]; then
	conf=/usr/lib/binfmt.d/$name.conf
	[ -r "$conf" ] || die "no $conf (qemu-user-static)"
	# The package's line with F (fix the interpreter) added to its flags.
	sed 's/:\([A-Z]*\)$/:\1F/; s/F\(F*\)$/F/' "$conf" >"$binfmt/register" || die "registering $name with binfmt_misc failed"
	registered=$name
fi
cleanup() {
	[ -z "$registered" ] || echo -1 >"$binfmt/$registered"
}
trap cleanup EXIT

# The base image: the registry's, or one made here of the same Debian release's packages.
base=debian:bookworm-slim
if ! timeout 120 podman pull -q --platform "$platform" "docker.io/library/$base" >/dev/null 2>&1; then
	codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
	base=localhost/stalld-base:$codename-$deb_arch
	if ! podman image exists "$base"; then
		tarball=$CACHE/$codename-$deb_arch.tar
		if [ ! -s "$tarball" ]; then
			echo "container: no registry reachable: building $base with mmdebstrap (minbase, util-linux)" >&2
			mkdir -p "$CACHE"
			start=$SECONDS
			scripts/host-apt-sources "$codename" >"$CACHE/$codename.sources"
			# shellcheck disable=SC2016 # $1 is mmdebstrap's, expanded by its hook shell
			mmdebstrap --mode=root --variant=minbase --architectures="$deb_arch" --format=tar \
				--customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
				"$codename" "$tarball.tmp" "$CACHE/$codename.sources" >"$CACHE/mmdebstrap-$deb_arch.log" 2>&1 || {
				tail -n 20 "$CACHE/mmdebstrap-$deb_arch.log" >&2
				die "mmdebstrap of the base failed; see $CACHE/mmdebstrap-$deb_arch.log"
			}
			mv "$tarball.tmp" "$tarball"
			echo "container: base root file system built in $((SECONDS - start)) s" >&2
		fi
		podman import -q --arch "${PLATFORM[$ARCH]}" --os linux "$tarball" "$base" >/dev/null || die "podman import failed"
	fi
fi
echo "container: base image $base ($platform)" >&2

# The binary from make cross, in the build context; the image from the Containerfile.
built=$(scripts/cross-build --dir "$ARCH")
[ -x "$built/stalld" ] || scripts/cross-build "$ARCH" || die "scripts/cross-build $ARCH failed"
scripts/cross-build --image-context "$ARCH" || die "scripts/cross-build --image-context failed"
version=$(make --no-print-directory -s version)
image=localhost/stalld:$version-${PLATFORM[$ARCH]}
start=$SECONDS
# --isolation chroot: RUN steps without an OCI runtime, whose cgroup setup refuses these
# machines' hybrid cgroup layout (cgroup2 at /sys/fs/cgroup/unified).
podman build -q --isolation chroot --platform "$platform" --build-arg STALLD_FROM=cross --build-arg "BASE=$base" \
	-f Containerfile -t "$image" . >"$ROOT/target/container-build.log" 2>&1 || {
	tail -n 30 "$ROOT/target/container-build.log" >&2
	die "podman build failed; see target/container-build.log"
}
echo "container: built $image in $((SECONDS - start)) s" >&2

check "image platform is $platform" "$(
	got=$(podman image inspect --format '{{.Os}}/{{.Architecture}}' "$image")
	[ "$got" = "$platform" ] || echo "$got")"
# The image's file system, mounted: its commands run in a chroot of it (emulated through
# binfmt_misc), as a container would run them, without an OCI runtime (see above).
mnt=$(podman image mount "$image") || die "podman image mount $image failed"
unmount() {
	podman image unmount "$image" >/dev/null 2>&1
	cleanup
}
trap unmount EXIT
run() { chroot "$mnt" "$@"; }
check "stalld --version (run emulated)" "$(got=$(run /usr/bin/stalld --version 2>&1); [ "$got" = "$version" ] || echo "$got")"
check "throttlectl is stalld" "$(got=$(run /bin/readlink /usr/bin/throttlectl 2>&1); [ "$got" = stalld ] || echo "$got")"
check "stalld-guardian is a hard link to stalld" "$(
	got=$(run /usr/bin/stat -c %i /usr/bin/stalld /usr/bin/stalld-guardian 2>&1 | sort -u | wc -l)
	[ "$got" = 1 ] || run /usr/bin/stat -c '%n %i' /usr/bin/stalld /usr/bin/stalld-guardian 2>&1 | tr '\n' ' ')"
check "the binary is the target's, static" "$(
	file=$(file -b "$mnt/usr/bin/stalld")
	case "$file" in *"statically linked"*) ;; *) echo "$file" ;; esac)"
check "chrt, flock, readlink and sh for the entrypoint and the preStop hook" "$(
	run /bin/sh -c 'command -v chrt && command -v flock && command -v readlink' >/dev/null 2>&1 || echo "missing one")"
check "entrypoint chrt --fifo 10 stalld, --foreground --events=-" "$(
	got=$(podman image inspect --format '{{json .Config.Entrypoint}} {{json .Config.Cmd}}' "$image")
	[ "$got" = '["/usr/bin/chrt","--fifo","10","/usr/bin/stalld"] ["--foreground","--events=-"]' ] || echo "$got")"
echo "container: $(podman image inspect --format '{{.Size}}' "$image" | awk '{ printf "%.0f MB", $1 / 1e6 }') $image"
exit "$FAILED"
