#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# Runs inside a kernel-matrix guest (busybox sh, started by /init with this shell pinned to
# CPU 0). For each backend it starts stalld on CPU 1, starves a victim there with
# stalld-starve, and checks: stalld reported the victim as starved and boosted it, the victim
# ran while under SCHED_DEADLINE, and afterwards stalld restored its own policy.
#
# Prints one line per backend, prefixed with "KMATRIX " for the host to collect:
#   KMATRIX kernel=<uname -r> backend=<name> result=PASS|FAIL wait_beyond_threshold_s=<x> ...
# Exit status: the number of FAIL lines.
#
# Parameters come from the kernel command line (kmatrix.NAME=VALUE):
#   kmatrix.mode=normal|lockdown   lockdown: default backend must be queue_track and boost,
#                                  -b sched_debug must be refused with a clear message
#   kmatrix.backends=a,b           backends to run in normal mode
#   kmatrix.other=0|1              also starve a SCHED_OTHER victim (kernels without fair server)
#   kmatrix.threshold=S            stalld's -t
#   kmatrix.runtime=T              stalld's -r (default 1ms: see tests/kernel-matrix.md)

export PATH=/bin:/test

param() {
	tr ' ' '\n' </proc/cmdline | sed -n "s/^kmatrix\.$1=//p" | tail -n 1
}

MODE=$(param mode)
BACKENDS=$(param backends | tr ',' ' ')
OTHER=$(param other)
THRESHOLD=$(param threshold)
RUNTIME=$(param runtime)
: "${MODE:=normal}" "${BACKENDS:=queue_track sched_debug}" "${OTHER:=0}" "${THRESHOLD:=3}" "${RUNTIME:=1ms}"
KREL=$(uname -r)
FAILED=0

# jfield KEY: the value of KEY in the JSON object(s) on stdin (flat values only).
jfield() {
	sed -n "s/.*\"$1\":\"\{0,1\}\([^,\"}]*\).*/\1/p" | head -n 1
}

# alive PID: the process exists and is not a zombie.
alive() {
	[ -r "/proc/$1/stat" ] || return 1
	[ "$(sed 's/.*) //' "/proc/$1/stat" | cut -d ' ' -f 1)" != Z ]
}

# policy_of TID: field 41 (policy) of /proc/TID/stat; the comm may contain blanks.
policy_of() {
	sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $39 }'
}

section() {
	echo "----- $*"
}

show_file() {
	echo "----- $1:"
	sed 's/^/    | /' "$1" 2>/dev/null
}

facts() {
	section "kernel facts"
	echo "uname: $(uname -r) $(uname -v)"
	echo "cmdline: $(cat /proc/cmdline)"
	echo "realtime: $(cat /sys/kernel/realtime 2>/dev/null || echo 0)"
	echo "btf: $(ls /sys/kernel/btf/vmlinux 2>/dev/null || echo none)"
	echo "sched_rt_runtime_us: $(cat /proc/sys/kernel/sched_rt_runtime_us)"
	if [ -d /sys/kernel/debug/sched/fair_server ]; then
		echo "fair_server: yes"
	else
		echo "fair_server: no"
	fi
	if head -n 1 /sys/kernel/debug/sched/debug >/tmp/sd.head 2>/tmp/sd.err; then
		echo "sched/debug: $(cat /tmp/sd.head)"
		echo "sched/debug tasks header: $(grep -A 1 -m 1 'runnable tasks:' /sys/kernel/debug/sched/debug | tail -n 1)"
	else
		echo "sched/debug: unreadable: $(cat /tmp/sd.err)"
	fi
}

# wait_for_start LOG PID: waits until stalld says which backend it uses (or exits).
wait_for_start() {
	i=0
	while [ "$i" -lt 900 ]; do
		grep -q '^stalld: using .* backend' "$1" && return 0
		alive "$2" || return 1
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

# stop_stalld PID: SIGTERM, then up to 15 s for the restore-and-exit.
stop_stalld() {
	kill -TERM "$1" 2>/dev/null
	i=0
	while alive "$1" && [ "$i" -lt 150 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	if alive "$1"; then
		echo "stalld pid $1 did not exit 15 s after SIGTERM; killing it"
		kill -KILL "$1" 2>/dev/null
	fi
	wait "$1" 2>/dev/null
}

# starve_case BACKEND POLICY: one stalld + one stalld-starve run. Sets CASE_WAIT (the
# victim's wait beyond the threshold), CASE_USED (the backend stalld chose) and CASE_WHY
# (empty on success).
starve_case() {
	backend=$1
	policy=$2
	tag="$backend-$policy"
	slog=/tmp/stalld-$tag.log
	gout=/tmp/starve-$tag.json
	gerr=/tmp/starve-$tag.err
	CASE_WAIT=NA
	CASE_USED=""
	CASE_WHY=""
	case "$policy" in
	fifo) expect_name=SCHED_FIFO expect_num=1 ;;
	other) expect_name=SCHED_OTHER expect_num=0 ;;
	esac
	if [ "$backend" = auto ]; then
		set -- -f -v -t "$THRESHOLD" -r "$RUNTIME" -d 1 -g 1 -c 1
	else
		set -- -f -v -t "$THRESHOLD" -r "$RUNTIME" -d 1 -g 1 -c 1 -b "$backend"
	fi
	section "$tag: stalld $*"
	stalld "$@" >"$slog" 2>&1 &
	spid=$!
	if ! wait_for_start "$slog" "$spid"; then
		CASE_WHY="stalld did not start"
		stop_stalld "$spid"
		show_file "$slog"
		return 1
	fi
	CASE_USED=$(sed -n 's/^stalld: using \(.*\) backend$/\1/p' "$slog" | head -n 1)
	stalld-starve --cpu 1 --victims 1 --victim-prio 5 --victim-policy "$policy" \
		--starve-after-ms 200 --duration 30 --linger 3 >"$gout" 2>"$gerr" &
	gpid=$!
	vpid=""
	policy_after=""
	while alive "$gpid"; do
		if [ -z "$vpid" ]; then
			vpid=$(grep '"event":"victim_ready"' "$gout" | jfield pid)
		fi
		if [ -n "$vpid" ] && [ -z "$policy_after" ] && grep -q "^stalld: restored pid $vpid " "$slog"; then
			policy_after=$(policy_of "$vpid")
			[ -n "$policy_after" ] || policy_after=gone
		fi
		sleep 0.1
	done
	wait "$gpid"
	grc=$?
	stop_stalld "$spid"

	ran=$(grep '"event":"victim_ran"' "$gout")
	when=$(echo "$ran" | jfield policy_when_ran)
	wait_s=$(echo "$ran" | jfield wait_s)
	if [ -n "$wait_s" ]; then
		CASE_WAIT=$(awk -v w="$wait_s" -v t="$THRESHOLD" 'BEGIN { printf "%.3f", w - t }')
	fi
	if [ -z "$vpid" ]; then
		CASE_WHY="stalld-starve reported no victim_ready (rc $grc)"
	elif ! grep -q -- "-$vpid starved on CPU 1 for " "$slog"; then
		CASE_WHY="no 'starved on CPU 1' line for victim $vpid"
	elif ! grep -q "^stalld: boosted pid $vpid (.*) (cpu 1) using SCHED_DEADLINE" "$slog"; then
		CASE_WHY="no 'boosted pid $vpid' line"
	elif [ -z "$ran" ]; then
		CASE_WHY="victim $vpid never ran"
	elif [ "$when" != SCHED_DEADLINE ]; then
		CASE_WHY="victim $vpid ran under $when, not under stalld's SCHED_DEADLINE boost"
	elif ! grep -q "^stalld: restored pid $vpid to $expect_name\$" "$slog"; then
		CASE_WHY="no 'restored pid $vpid to $expect_name' line"
	elif [ "$policy_after" != "$expect_num" ]; then
		CASE_WHY="victim $vpid has policy '$policy_after' after the restore, expected $expect_num ($expect_name)"
	elif [ "$grc" -ne 0 ]; then
		CASE_WHY="stalld-starve exited with $grc"
	fi
	# The evidence, also on success: stalld's lines about the victim, the generator's events.
	grep -e '^stalld: using' -e "-$vpid starved" -e "pid $vpid " "$slog" | sed 's/^/    /'
	sed -e '/"event":"victim_ran"/!d' -e 's/^/    /' "$gout"
	if [ -n "$CASE_WHY" ]; then
		echo "FAILED: $tag: $CASE_WHY"
		show_file "$slog"
		show_file "$gout"
		show_file "$gerr"
		return 1
	fi
	echo "ok: $tag: victim $vpid waited ${wait_s} s, ${CASE_WAIT} s beyond the ${THRESHOLD} s threshold; policy restored to $expect_name"
	return 0
}

# report BACKEND RESULT WAIT EXTRA...: the line the host collects.
report() {
	echo "KMATRIX kernel=$KREL backend=$1 result=$2 wait_beyond_threshold_s=$3${4:+ $4}"
	[ "$2" = PASS ] || FAILED=$((FAILED + 1))
}

run_backend() {
	backend=$1
	result=PASS
	worst=""
	detail=""
	why=""
	policies=fifo
	[ "$OTHER" = 1 ] && policies="fifo other"
	for policy in $policies; do
		if starve_case "$backend" "$policy"; then
			worst=$(awk -v a="${worst:--1e9}" -v b="$CASE_WAIT" 'BEGIN { printf "%.3f", (b > a ? b : a) }')
		else
			result=FAIL
			why="${why:+$why; }$policy: $CASE_WHY"
		fi
		detail="${detail:+$detail,}$policy:$CASE_WAIT"
	done
	[ "$result" = PASS ] || worst=NA
	if [ -n "$why" ]; then
		report "$backend" "$result" "$worst" "victims=$detail why=\"$why\""
	else
		report "$backend" "$result" "$worst" "victims=$detail"
	fi
}

# The lockdown mode from securityfs, which stalld (not /init) must have mounted.
read_lockdown() {
	if grep -q ' securityfs ' /proc/mounts; then
		SECURITYFS=mounted-by-stalld
	else
		SECURITYFS=not-mounted-by-stalld
		mount -t securityfs securityfs /sys/kernel/security
	fi
	LOCKDOWN=$(sed -n 's/.*\[\([a-z]*\)\].*/\1/p' /sys/kernel/security/lockdown 2>/dev/null)
	echo "lockdown: ${LOCKDOWN:-unreadable} (securityfs $SECURITYFS)"
}

lockdown_mode() {
	# 1. The default backend must be queue_track, and it must boost.
	starve_case auto fifo
	ok=$?
	read_lockdown
	if [ "$LOCKDOWN" != confidentiality ]; then
		ok=1
		CASE_WHY="the guest runs with lockdown '${LOCKDOWN:-unreadable}', not confidentiality"
	fi
	if [ "$ok" -eq 0 ] && [ "$CASE_USED" = queue_track ]; then
		report auto PASS "$CASE_WAIT" "lockdown=$LOCKDOWN chose=$CASE_USED"
	else
		[ -n "$CASE_WHY" ] || CASE_WHY="chose the $CASE_USED backend, not queue_track"
		report auto FAIL NA "lockdown=$LOCKDOWN chose=${CASE_USED:-none} why=\"$CASE_WHY\""
	fi
	# 2. -b sched_debug must be refused, saying why.
	section "lockdown: stalld -f -v -c 1 -b sched_debug (must be refused)"
	timeout 20 stalld -f -v -t "$THRESHOLD" -c 1 -b sched_debug >/tmp/stalld-lockdown-sd.log 2>&1
	rc=$?
	sed 's/^/    /' /tmp/stalld-lockdown-sd.log
	if [ "$rc" -eq 0 ] || [ "$rc" -eq 143 ] || grep -q '^stalld: using sched_debug backend' /tmp/stalld-lockdown-sd.log; then
		report sched_debug FAIL NA "lockdown=$LOCKDOWN expect=refused why=\"not refused (rc $rc)\""
	elif ! grep -qi -e lockdown -e debugfs /tmp/stalld-lockdown-sd.log; then
		report sched_debug FAIL NA "lockdown=$LOCKDOWN expect=refused why=\"refused (rc $rc) without naming lockdown or debugfs\""
	else
		report sched_debug PASS NA "lockdown=$LOCKDOWN expect=refused rc=$rc"
	fi
}

facts
for bin in stalld stalld-starve; do
	if [ ! -x "/test/$bin" ]; then
		echo "run.sh: /test/$bin is missing from the initramfs"
		exit 90
	fi
done

if [ "$MODE" = lockdown ]; then
	lockdown_mode
else
	for backend in $BACKENDS; do
		run_backend "$backend"
	done
fi
section "dmesg warnings"
dmesg | grep -v -e 'Command line:' -e 'LSM' | grep -e 'rcu.*stall' -e 'blocked for more than' -e 'BUG' -e 'WARNING' \
	-e 'Call Trace' -e '[Ll]ockdown' -e 'bpf' -e 'BPF' -e 'sched: ' | tail -n 60
exit "$FAILED"
