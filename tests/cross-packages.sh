#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# The other architectures' packages (packaging/cross.sh: `make deb ARCH=...`, `make rpm
# ARCH=...`, from scripts/cross-build's static binaries), checked as tests/packages.sh checks
# the amd64 ones, for each architecture given:
#   deb  name, epoch and version, Architecture; the files (binary, links, unit, conffile, man
#        pages, completions, copyright, changelogs); the binary is the target's (ELF machine,
#        byte order, word size), static and stripped, stalld-guardian a hard link to it; no
#        Depends on shared libraries; the unit is systemd/stalld.service; the maintainer
#        scripts of dh_installsystemd --no-enable; lintian: no errors, no warnings
#   rpm  epoch and version, the rpm's architecture; the same files and binary checks;
#        %config(noreplace); Requires no shared library; the bundled(...) Provides;
#        rpmlint: no errors, no unfiltered warnings
# The binaries themselves run in tests/kernel-matrix.sh --arch (the same cross build).
#   tests/cross-packages.sh [--no-build] ARCH...   (default: aarch64)
# Prints one "cross-packages: <arch> <check> PASS|FAIL" line per check; exits 0 only if all
# passed. Needs root (the cross root).
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 2
CHECK_TAG=cross-packages
# shellcheck source=tests/lib/checks.sh
. "$ROOT/tests/lib/checks.sh"
BUILD=1
[ "${1:-}" = --no-build ] && { BUILD=0; shift; }
ARCHS=("$@")
[ "${#ARCHS[@]}" -gt 0 ] || ARCHS=(aarch64)

# What readelf -h says of each architecture's binaries: machine, class, byte order.
declare -A ELF_MACHINE=([aarch64]=AArch64 [s390x]="IBM S/390" [ppc64le]="PowerPC64" [riscv64]="RISC-V"
	[i686]="Intel 80386")
declare -A ELF_CLASS=([aarch64]=ELF64 [s390x]=ELF64 [ppc64le]=ELF64 [riscv64]=ELF64 [i686]=ELF32)
declare -A ELF_ENDIAN=([aarch64]=little [s390x]=big [ppc64le]=little [riscv64]=little [i686]=little)

need_tools lintian:lintian rpmlint:rpmlint rpm:rpm rpm2cpio:rpm2cpio cpio:cpio

VERSION=$(make --no-print-directory -s version)
RELEASE=${PACKAGE_RELEASE:-1}
EPOCH=$(sed -n 's/^EPOCH=//p' packaging/common.sh)
OUT=target/cross/packages
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

ARCH=""

# binary_why DIR: what is wrong with DIR/usr/bin/stalld for ARCH (nothing: empty).
binary_why() {
	local dir=$1 bin=$1/usr/bin/stalld header why=""
	[ -f "$bin" ] || { echo "no /usr/bin/stalld"; return; }
	header=$(readelf -h "$bin" 2>&1)
	grep -q "Machine: *${ELF_MACHINE[$ARCH]}" <<<"$header" || why="machine: $(sed -n 's/^ *Machine: *//p' <<<"$header"); "
	grep -q "Class: *${ELF_CLASS[$ARCH]}" <<<"$header" || why="${why}not ${ELF_CLASS[$ARCH]}; "
	grep -q "Data: .*${ELF_ENDIAN[$ARCH]} endian" <<<"$header" || why="${why}not ${ELF_ENDIAN[$ARCH]}-endian; "
	if readelf -l "$bin" | grep -q 'program interpreter' || readelf -d "$bin" | grep -q NEEDED; then
		why="${why}not static; "
	fi
	readelf -S "$bin" | grep -q '\.symtab' && why="${why}not stripped; "
	[ "$(stat -c %i "$bin")" = "$(stat -c %i "$dir/usr/bin/stalld-guardian" 2>/dev/null)" ] ||
		why="${why}stalld-guardian is not a hard link to stalld; "
	[ "$(readlink "$dir/usr/bin/throttlectl")" = stalld ] || why="${why}throttlectl is not a link to stalld; "
	echo "$why"
}

# files_why DIR UNITDIR ENVFILE ZSHDIR: the files every package has.
files_why() {
	local dir=$1 file why=""
	for file in /usr/bin/stalld /usr/bin/throttlectl /usr/bin/stalld-guardian "$2/stalld.service" "$3" \
		/usr/share/man/man8/stalld.8.gz /usr/share/man/man8/throttlectl.8.gz /usr/share/man/man8/stalld-guardian.8.gz \
		/usr/share/bash-completion/completions/stalld "$4/_stalld" /usr/share/fish/vendor_completions.d/stalld.fish; do
		[ -e "$dir$file" ] || [ -L "$dir$file" ] || why="${why}$file "
	done
	[ -z "$why" ] || echo "missing: $why"
	cmp -s systemd/stalld.service "$dir$2/stalld.service" || echo "; the unit is not systemd/stalld.service"
}

for ARCH in "${ARCHS[@]}"; do
	CHECK_SUBJECT=$ARCH
	[ -n "${ELF_MACHINE[$ARCH]:-}" ] || die "unknown architecture '$ARCH' (known: ${!ELF_MACHINE[*]})"
	deb_arch=$(scripts/cross-build --deb-arch "$ARCH")
	if [ "$BUILD" = 1 ]; then
		for kind in deb rpm; do
			start=$SECONDS
			make --no-print-directory "$kind" ARCH="$ARCH" || die "make $kind ARCH=$ARCH failed"
			echo "cross-packages: make $kind ARCH=$ARCH took $((SECONDS - start)) s" >&2
		done
	fi
	DEB=$OUT/stalld_$VERSION-${RELEASE}_$deb_arch.deb
	RPM=$OUT/stalld-$VERSION-$RELEASE.$ARCH.rpm
	for file in "$DEB" "$RPM"; do
		[ -f "$file" ] || die "no $file (drop --no-build)"
	done

	# ---------------------------------------------------------------- deb
	d=$WORK/$ARCH-deb
	dpkg-deb -x "$DEB" "$d"
	dpkg-deb -e "$DEB" "$d-control"
	check "deb name, version (epoch $EPOCH), architecture" "$(
		[ "$(dpkg-deb -f "$DEB" Package Version Architecture | tr '\n' ' ')" = "Package: stalld Version: $EPOCH:$VERSION-$RELEASE Architecture: $deb_arch " ] ||
			dpkg-deb -f "$DEB" Package Version Architecture | tr '\n' ' ')"
	# Debian unstable's debhelper installs units under /usr/lib (merged /usr); bookworm's under /lib.
	unitdir=/usr/lib/systemd/system
	[ -e "$d$unitdir/stalld.service" ] || unitdir=/lib/systemd/system
	check "deb files" "$(files_why "$d" "$unitdir" /etc/default/stalld /usr/share/zsh/vendor-completions)$(
		for file in copyright changelog.Debian.gz changelog.gz README.md.gz; do
			[ -e "$d/usr/share/doc/stalld/$file" ] || echo "no /usr/share/doc/stalld/$file "
		done)"
	check "deb binary (${ELF_MACHINE[$ARCH]}, static, stripped, links)" "$(binary_why "$d")"
	depends=$(dpkg-deb -f "$DEB" Depends)
	check "deb needs no shared library (static)" "$(! grep -qE 'libc6|libelf|zlib' <<<"$depends" || echo "Depends: $depends")"
	check "deb conffiles" "$([ "$(cat "$d-control/conffiles")" = /etc/default/stalld ] ||
		echo "conffiles: '$(tr '\n' ' ' <"$d-control/conffiles")'")"
	cat "$d-control"/{postinst,prerm,postrm} >"$d-maint" 2>/dev/null
	check "deb maintainer scripts (daemon-reload, restart on upgrade, stop on removal, no enable)" "$(
		grep -q daemon-reload "$d-maint" || echo "no daemon-reload; "
		grep -qE 'deb-systemd-invoke .*(restart|\$_dh_action)' "$d-maint" || echo "no restart on upgrade; "
		grep -q 'deb-systemd-invoke stop' "$d-maint" || echo "no stop before removal; "
		grep -vE '^[[:space:]]*#' "$d-maint" | grep -E '(deb-systemd-helper|systemctl)[^#]*\benable\b' |
			grep -vqE "^[[:space:]]*deb-systemd-helper enable 'stalld.service'" && echo "enables the service")"
	changes=${DEB%.deb}.changes
	lintian --pedantic --display-info "$DEB" "$changes" >"$WORK/lintian-$ARCH.txt" 2>&1
	grep -E '^[EWIPX]: ' "$WORK/lintian-$ARCH.txt" | sed 's/^/    lintian: /'
	bad=$(grep -cE '^[EW]: ' "$WORK/lintian-$ARCH.txt")
	check "lintian (no errors, no warnings)" "$([ "$bad" = 0 ] || echo "$bad errors or warnings")"

	# ---------------------------------------------------------------- rpm
	r=$WORK/$ARCH-rpm
	mkdir -p "$r" && (cd "$r" && rpm2cpio "$ROOT/$RPM" | cpio -idm --quiet)
	check "rpm version (epoch $EPOCH), architecture" "$(
		got=$(rpm -qp --qf '%{NAME} %{EPOCH}:%{VERSION}-%{RELEASE} %{ARCH}' "$RPM" 2>/dev/null)
		[ "$got" = "stalld $EPOCH:$VERSION-$RELEASE $ARCH" ] || echo "$got")"
	check "rpm files" "$(files_why "$r" /usr/lib/systemd/system /etc/sysconfig/stalld /usr/share/zsh/site-functions)$(
		[ -e "$r/usr/share/licenses/stalld/COPYING" ] || echo "no license file")"
	check "rpm binary (${ELF_MACHINE[$ARCH]}, static, stripped, links)" "$(binary_why "$r")"
	check "rpm %config(noreplace) /etc/sysconfig/stalld" "$(
		flags=$(rpm -qp --qf '[%{FILENAMES} %{FILEFLAGS:fflags}\n]' "$RPM" 2>/dev/null | grep '^/etc/')
		[ "$flags" = "/etc/sysconfig/stalld cn" ] || echo "config files: '$flags'")"
	check "rpm needs no shared library (static)" "$(rpm -qpR "$RPM" 2>/dev/null | grep -E '\.so|^lib' | tr '\n' ' ')"
	provides=$(rpm -qp --provides "$RPM" 2>/dev/null)
	check "rpm Provides: bundled(crate(...)), libbpf, the static C libraries" "$(
		[ "$(grep -c '^bundled(crate(' <<<"$provides")" -gt 10 ] || echo "few bundled crates; "
		for lib in libbpf elfutils-libelf zlib glibc; do
			grep -qE "^bundled\($lib\) = [0-9]" <<<"$provides" || echo "no bundled($lib); "
		done)"
	# rpmlint reads every *.toml of a folder: the amd64 rpm's filters and the static ones'.
	mkdir -p "$WORK/rpmlint.d"
	cp packaging/rpmlint.toml packaging/rpmlint-cross.toml "$WORK/rpmlint.d/"
	rpmlint -c "$WORK/rpmlint.d" "$RPM" >"$WORK/rpmlint-$ARCH.txt" 2>&1
	sed 's/^/    rpmlint: /' "$WORK/rpmlint-$ARCH.txt" | grep -vE 'rpmlint: *$' | tail -n 20
	summary=$(grep -E 'packages and [0-9]+ specfiles checked' "$WORK/rpmlint-$ARCH.txt")
	check "rpmlint (no errors, no unfiltered warnings)" "$(grep -qE '; 0 errors, 0 warnings' <<<"$summary" || echo "${summary:-rpmlint printed no summary}")"
	echo "cross-packages: $ARCH: $(du -h "$DEB" | cut -f1) $DEB, $(du -h "$RPM" | cut -f1) $RPM"
done
exit "$FAILED"
