#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# make deb: target/debian/stalld_<version>-<release>_<arch>.deb from `make install`'s tree,
# with Debian's paths (/etc/default/stalld, /lib/systemd/system as bookworm's policy and
# lintian want), compressed man pages and changelogs, a machine-readable copyright file, the
# conffiles and the maintainer scripts of packaging/debian/ (daemon-reload; the service is
# neither enabled nor started on install).
#
# The binary is linked dynamically against Debian's libelf and zlib (Depends computed by
# dpkg-shlibdeps), so their security updates reach stalld; lintian rejects a static zlib
# (embedded-library). The rpm and the container image ship the static build instead.
set -euo pipefail
PKG_TAG="make deb"
# shellcheck source=packaging/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

need_tools dpkg-dev:dpkg-shlibdeps binutils:strip
ARCH=$(dpkg --print-architecture)
DEB_VERSION=$VERSION-$RELEASE
OUT=$ROOT/target/debian
STAGE=$OUT/root
DEB=$OUT/stalld_${DEB_VERSION}_${ARCH}.deb
DATE=$(changelog_date)
SOURCE_DATE_EPOCH=$(date -u -d "$DATE" +%s)

mkdir -p "$OUT"
stage "$STAGE" STATIC=0 UNITDIR=/lib/systemd/system ENVFILE=/etc/default/stalld LICENSEDIR= \
	ZSHCOMPDIR=/usr/share/zsh/vendor-completions
# Only now: cargo (inside make install) must build with the same environment every time.
export SOURCE_DATE_EPOCH

DOC=$STAGE/usr/share/doc/stalld
# Debian's own files: the copyright (the GPL itself is /usr/share/common-licenses/GPL-2) and
# the packaging changelog; upstream's changelog is changelog.gz beside it.
cat >"$DOC/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: stalld
Comment: built from the stalld (Rust) tree with \`make deb\`.

Files: *
Copyright: ${DATE%%-*} the stalld (Rust) developers
License: GPL-2+

License: GPL-2+
 This program is free software; you can redistribute it and/or modify it under the terms of
 the GNU General Public License as published by the Free Software Foundation; either version
 2 of the License, or (at your option) any later version.
 .
 This program is distributed in the hope that it will be useful, but WITHOUT ANY WARRANTY;
 without even the implied warranty of MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE.
 See the GNU General Public License for more details.
 .
 On Debian systems, the complete text of the GNU General Public License version 2 can be
 found in "/usr/share/common-licenses/GPL-2".
COPYRIGHT
cat >"$DOC/changelog.Debian" <<CHANGELOG
stalld ($DEB_VERSION) unstable; urgency=medium

  * Built from the upstream tree with \`make deb\`; upstream's changes are in
    changelog.gz.

 -- $MAINTAINER  $(date -u -R -d "$DATE")
CHANGELOG

# As dh_compress: man pages and changelogs gzip'd (-n: no name or time, reproducible), and
# links to a compressed page pointed at the .gz.
find "$STAGE/usr/share/man" "$DOC" -type f \( -path '*/man/man*' -o -name 'changelog*' \) -exec gzip -9nf {} +
find "$STAGE/usr/share/man" -type l | while read -r link; do
	target=$(readlink "$link")
	rm "$link"
	ln -s "$target.gz" "$link.gz"
done

# The control area.
CONTROL=$STAGE/DEBIAN
mkdir -p "$CONTROL"
install -m 0755 "$ROOT"/packaging/debian/{postinst,prerm,postrm} "$CONTROL/"
(cd "$STAGE" && find etc -type f -printf '/%p\n' | sort) >"$CONTROL/conffiles"
# Depends: the packages of the shared libraries the binary links, at the versions it needs.
mkdir -p "$OUT/shlibdeps/debian"
printf 'Source: stalld\n\nPackage: stalld\nArchitecture: any\n' >"$OUT/shlibdeps/debian/control"
depends=$(cd "$OUT/shlibdeps" && dpkg-shlibdeps -O "$STAGE/usr/bin/stalld" 2>"$OUT/shlibdeps.log" |
	sed -n 's/^shlibs:Depends=//p') || true
[ -n "$depends" ] || pkg_die "dpkg-shlibdeps found no dependencies for usr/bin/stalld (see $OUT/shlibdeps.log)"
cat >"$CONTROL/control" <<CONTROLFILE
Package: stalld
Version: $DEB_VERSION
Architecture: $ARCH
Maintainer: $MAINTAINER
Installed-Size: $(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)
Depends: $depends
Section: admin
Priority: optional
Description: $SUMMARY
 On real-time and CPU-isolated machines one busy-looping, high-priority task
 can keep the kernel threads that must still run on its CPU (kworkers,
 ksoftirqd, RCU) waiting until the system stalls. stalld watches the run
 queues and lends a task that waited longer than a threshold a short
 SCHED_DEADLINE reservation for a few seconds, then restores its own policy.
 .
 A drop-in replacement for the C stalld (same options, unit and environment
 file), with a BPF backend that needs no debugfs. The service is not started
 on install: configure /etc/default/stalld, then systemctl enable --now stalld.
CONTROLFILE
(cd "$STAGE" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) >"$CONTROL/md5sums"
chmod 0644 "$CONTROL"/{control,conffiles,md5sums}

# Modes as the distributions ship them, whatever the umask of the build.
find "$STAGE" -type d -exec chmod 0755 {} +
find "$STAGE" -path "$CONTROL" -prune -o -type f ! -perm -u+x -exec chmod 0644 {} +
find "$STAGE" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

rm -f "$OUT"/stalld_*.deb
dpkg-deb --root-owner-group -Zxz --build "$STAGE" "$DEB" >/dev/null
pkg_note "built ${DEB#"$ROOT"/} ($(du -h "$DEB" | cut -f1))"
