#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Builds stand-ins for the distribution's stalld (the C stalld 1.x, epoch 0), the package ours
# replaces in place: the same name and file paths (/usr/bin/stalld and throttlectl, the unit,
# the environment file as a configuration file, the man page), the C stalld's unit (Type=simple,
# ExecStartPost=chrt) and default environment file, and maintainer scripts as a distribution's
# (daemon-reload; an upgrade restarts a running service; removal stops it). Its "stalld" is a
# shell script that says which stand-in it is and sleeps: what the tests look at is which
# package's files are there, its command line (the environment file's values) and the service.
#   tests/packages/standin.sh deb|rpm OUTDIR VERSION...
# Writes OUTDIR/stalld_VERSION-1_ARCH.deb or OUTDIR/stalld-VERSION-1.ARCH.rpm for each VERSION.
set -euo pipefail
FORMAT=$1
OUT=$2
shift 2
mkdir -p "$OUT"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# tree DIR VERSION ENVFILE UNITDIR: the stand-in's files.
tree() {
	local dir=$1 version=$2 envfile=$3 unitdir=$4
	mkdir -p "$dir/usr/bin" "$dir$unitdir" "$dir$(dirname "$envfile")" "$dir/usr/share/man/man8"
	cat >"$dir/usr/bin/stalld" <<SCRIPT
#!/bin/sh
# Stand-in for the distribution's C stalld $version (stalld's tests/packages/standin.sh).
case "\${1:-}" in -V | --version) echo "stalld version $version (distribution stand-in)"; exit 0 ;; esac
echo "stalld $version (distribution stand-in) running: \$*"
while :; do sleep 3600; done
SCRIPT
	cat >"$dir/usr/bin/throttlectl" <<'SCRIPT'
#!/bin/sh
# Stand-in for the C stalld's throttlectl: `off` saves sched_rt_period_us and
# sched_rt_runtime_us in /run/stalld/rtthrottle-XXXXXXX as the C tool does, then turns RT
# throttling off; `on` puts the saved values back (the kernel's defaults without a file).
set -e
mkdir -p /run/stalld
k=/proc/sys/kernel
case "$1" in
off)
	rm -f /run/stalld/rtthrottle*
	save=$(mktemp /run/stalld/rtthrottle-XXXXXXX)
	printf 'period=%s\nruntime=%s\n' "$(cat $k/sched_rt_period_us)" "$(cat $k/sched_rt_runtime_us)" >"$save"
	echo -1 >$k/sched_rt_runtime_us ;;
on)
	period=1000000 runtime=950000
	for save in /run/stalld/rtthrottle-*; do
		[ -f "$save" ] && . "$save"
	done
	echo "$period" >$k/sched_rt_period_us
	echo "$runtime" >$k/sched_rt_runtime_us
	rm -f /run/stalld/rtthrottle* ;;
esac
SCRIPT
	chmod 0755 "$dir/usr/bin/stalld" "$dir/usr/bin/throttlectl"
	cat >"$dir$unitdir/stalld.service" <<UNIT
[Unit]
Description=Stall Monitor

[Service]
Type=simple
EnvironmentFile=$envfile
ExecStartPre=/usr/bin/throttlectl off
ExecStart=/usr/bin/stalld --systemd \$CLIST \$AGGR \$BP \$BR \$BD \$THRESH \$LOGGING \$FG \$PF \$IT \$IP \$BE
ExecStartPost=/usr/bin/chrt -f -p 10 \$MAINPID
ExecStopPost=/usr/bin/throttlectl on
RuntimeDirectory=stalld
RuntimeDirectoryMode=0700
Restart=always

[Install]
WantedBy=multi-user.target
UNIT
	cat >"$dir$envfile" <<'CONF'
# This file contains the configuration for stalld (distribution stand-in)
CLIST=
AGGR=
BP="-p 1000000000"
BR="-r 20000"
BD="-d 3"
IT=
IP=
THRESH="-t 20"
LOGGING="--log_syslog"
FG="--foreground"
PF="--pidfile /run/stalld/stalld.pid"
BE=
CONF
	printf '.TH STALLD 8\n.SH NAME\nstalld \\- stand-in %s\n' "$version" | gzip -9n >"$dir/usr/share/man/man8/stalld.8.gz"
}

for version in "$@"; do
	dir=$WORK/$version
	case "$FORMAT" in
	deb)
		arch=$(dpkg --print-architecture)
		tree "$dir" "$version" /etc/default/stalld /lib/systemd/system
		mkdir -p "$dir/DEBIAN"
		cat >"$dir/DEBIAN/control" <<CONTROL
Package: stalld
Version: $version-1
Architecture: $arch
Maintainer: stand-in <standin@example.org>
Section: admin
Priority: optional
Description: distribution stalld $version (test stand-in)
 What stalld's package tests upgrade from and downgrade to.
CONTROL
		echo /etc/default/stalld >"$dir/DEBIAN/conffiles"
		cat >"$dir/DEBIAN/postinst" <<'SCRIPT'
#!/bin/sh
set -e
if [ "$1" = configure ] && [ -d /run/systemd/system ]; then
	systemctl --system daemon-reload >/dev/null || true
	[ -z "$2" ] || deb-systemd-invoke try-restart stalld.service >/dev/null || true
fi
SCRIPT
		cat >"$dir/DEBIAN/prerm" <<'SCRIPT'
#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
	deb-systemd-invoke stop stalld.service >/dev/null || true
fi
SCRIPT
		chmod 0755 "$dir/DEBIAN/postinst" "$dir/DEBIAN/prerm"
		dpkg-deb --root-owner-group -Zxz --build "$dir" "$OUT/stalld_${version}-1_$arch.deb" >/dev/null
		;;
	rpm)
		arch=$(uname -m)
		tree "$dir/root" "$version" /etc/sysconfig/stalld /usr/lib/systemd/system
		cat >"$WORK/standin.spec" <<SPEC
Name: stalld
Version: $version
Release: 1
Summary: distribution stalld $version (test stand-in)
License: GPL-2.0-or-later
%description
What stalld's package tests upgrade from and downgrade to.
%install
cp -a $dir/root/. %{buildroot}/
%post
if [ -d /run/systemd/system ]; then systemctl daemon-reload >/dev/null 2>&1 || :; fi
%preun
if [ \$1 -eq 0 ] && [ -d /run/systemd/system ]; then systemctl stop stalld.service >/dev/null 2>&1 || :; fi
%postun
if [ \$1 -ge 1 ] && [ -d /run/systemd/system ]; then systemctl try-restart stalld.service >/dev/null 2>&1 || :; fi
%files
/usr/bin/stalld
/usr/bin/throttlectl
/usr/lib/systemd/system/stalld.service
%config(noreplace) /etc/sysconfig/stalld
/usr/share/man/man8/stalld.8.gz
SPEC
		rpmbuild -bb --quiet --target "$arch" --nodeps \
			--define "_topdir $WORK/rpmbuild" --define "_rpmdir $OUT" \
			--define "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm" \
			--define "debug_package %{nil}" --define "__os_install_post %{nil}" \
			"$WORK/standin.spec" >"$WORK/rpmbuild.log" 2>&1 || { cat "$WORK/rpmbuild.log" >&2; exit 1; }
		;;
	*) echo "standin.sh: deb or rpm, not $FORMAT" >&2; exit 2 ;;
	esac
done
