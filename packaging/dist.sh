#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# make dist: the release tarball target/dist/stalld-<version>.tar.gz, what the rpm spec's
# Source0 and the Debian source package's orig tarball are:
#   - the tracked files of the tree as they are in the work tree (debian/ left out: it is the
#     Debian source package's own part, packaging/deb.sh adds it);
#   - vendor/: every crate of Cargo.lock that a Linux build needs (`cargo vendor`), so that the
#     tarball builds offline with --locked; crates only other systems need (windows-*) are
#     kept as empty stubs (their manifests, which cargo reads to resolve the lock file), which
#     keeps prebuilt Windows libraries out of the source;
#   - .cargo/config.toml pointing cargo at vendor/;
#   - stalld.spec, filled in from packaging/stalld.spec.in (version, release, the bundled
#     crates and C libraries and the License tag, from Cargo.lock), so `rpmbuild -ta` works too.
# Also target/dist/stalld.spec beside the tarball. The only step of the packaging that may use
# the network (cargo vendor fetches what ~/.cargo does not have yet).
set -euo pipefail
PKG_TAG="make dist"
# shellcheck source=packaging/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

OUT=$ROOT/target/dist
NAME=stalld-$VERSION
STAGE=$OUT/$NAME
TARBALL=$OUT/$NAME.tar.gz
DATE=$(changelog_date)
SOURCE_DATE_EPOCH=$(date -u -d "$DATE" +%s)

rm -rf "$STAGE" "$TARBALL"
mkdir -p "$STAGE"
(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard) |
	while IFS= read -r -d '' file; do
		case "$file" in debian/*) continue ;; esac
		[ -e "$ROOT/$file" ] || [ -L "$ROOT/$file" ] || continue # deleted, not yet committed
		mkdir -p "$STAGE/$(dirname "$file")"
		cp -a "$ROOT/$file" "$STAGE/$file"
	done

pkg_note "cargo vendor"
(cd "$STAGE" && cargo vendor --locked --versioned-dirs --quiet vendor >"$OUT/vendor.log" 2>&1) || {
	tail -n 20 "$OUT/vendor.log" >&2
	pkg_die "cargo vendor failed; full log in $OUT/vendor.log"
}
# Before .cargo/config.toml exists: cargo reads the crates from ~/.cargo, offline.
needed=$(cd "$STAGE" && "$ROOT/packaging/bundled.py" linux-crates .) || pkg_die "cargo metadata failed"
stubbed=0
for dir in "$STAGE"/vendor/*/; do
	crate=$(basename "$dir")
	grep -qxF "$crate" <<<"$needed" && continue
	# An empty library with the crate's own manifest; the checksum file keeps the package's
	# checksum (compared with Cargo.lock) and no longer lists the files, which are gone.
	find "$dir" -mindepth 1 -maxdepth 1 ! -name Cargo.toml ! -name .cargo-checksum.json -exec rm -rf {} +
	mkdir -p "$dir/src"
	: >"$dir/src/lib.rs"
	python3 -c 'import json, sys
path = sys.argv[1]
checksum = json.load(open(path))
json.dump({"files": {}, "package": checksum["package"]}, open(path, "w"))' "$dir/.cargo-checksum.json"
	stubbed=$((stubbed + 1))
done
mkdir -p "$STAGE/.cargo"
cat >"$STAGE/.cargo/config.toml" <<'CONFIG'
# Written by make dist: the crates come from vendor/, never from the network.
[source.crates-io]
replace-with = "vendored-sources"

[source.vendored-sources]
directory = "vendor"
CONFIG

# The spec, with what the binary bundles (from the vendored tree: offline by construction).
provides=$(cd "$STAGE" && "$ROOT/packaging/bundled.py" rpm-provides .) || pkg_die "listing the bundled crates failed"
license=$(cd "$STAGE" && "$ROOT/packaging/bundled.py" rpm-license .) || pkg_die "summing up the licenses failed"
python3 - "$ROOT/packaging/stalld.spec.in" "$STAGE/stalld.spec" <<PYTHON || pkg_die "filling in stalld.spec failed"
import sys
text = open(sys.argv[1]).read()
for key, value in {
    "@VERSION@": "$VERSION", "@RELEASE@": "$RELEASE", "@EPOCH@": "$EPOCH",
    "@LICENSE@": """$license""", "@BUNDLED_PROVIDES@": """$provides""",
    "@MAINTAINER@": "$MAINTAINER", "@CHANGELOG_DATE@": "$(date -u -d "$DATE" '+%a %b %d %Y')",
}.items():
    if key not in text:
        sys.exit(f"{sys.argv[1]} has no {key}")
    text = text.replace(key, value)
open(sys.argv[2], "w").write(text)
PYTHON
cp "$STAGE/stalld.spec" "$OUT/stalld.spec"

# Reproducible: sorted, one owner, the changelog's date on every file.
tar --sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner \
	--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
	-C "$OUT" -cf - "$NAME" | gzip -6n >"$TARBALL.tmp"
mv "$TARBALL.tmp" "$TARBALL"
rm -rf "$STAGE"
pkg_note "built ${TARBALL#"$ROOT"/} ($(du -h "$TARBALL" | cut -f1); $(wc -l <<<"$needed") crates vendored for Linux, $stubbed stubbed)"
