#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# Runs inside a kernel-matrix guest (busybox sh, started by /init with this shell pinned to
# CPU 0). For each case (a backend, and for queue_track a stamp source) it starts stalld
# monitoring CPU 1, starves a victim there with stalld-starve, and checks: stalld reported
# the victim as starved and boosted it, the victim ran while under SCHED_DEADLINE, and
# afterwards stalld restored its own policy. For queue_track it also checks which stamp
# source stalld said it uses and how many programs it attached to scheduler tracepoints
# (none with the kernel's stamps, five with its own).
#
# Prints one line per case, prefixed with "KMATRIX " for the host to collect:
#   KMATRIX kernel=<uname -r> case=<case> backend=<name> stamps=<source|-> tp_links=<n>
#           result=PASS|FAIL wait_beyond_threshold_s=<x> ...
# Exit status: the number of FAIL lines.
#
# Parameters come from the kernel command line (kmatrix.NAME=VALUE):
#   kmatrix.mode=normal|lockdown|fallback|kernel-stamps-only
#                                  lockdown: default backend must be queue_track and boost;
#                                  -b sched_debug must work, or be refused naming the cause.
#                                  fallback (a kernel queue_track cannot load on): the default
#                                  must fall back to sched_debug saying why, and boost; -b
#                                  queue_track must refuse to start, saying why.
#                                  kernel-stamps-only (a kernel whose BPF task storage the
#                                  tracepoint stamps cannot use: none in tracing programs
#                                  before 5.13, none allocatable on ppc64le and riscv64 since
#                                  6.19): the default and -b queue_track must use the kernel's
#                                  stamps and boost; with the tracepoint stamps forced, the
#                                  same as fallback
#   kmatrix.backends=a,b           cases: auto (no -b), queue_track, sched_debug, or
#                                  queue_track:tracepoints (STALLD_QUEUE_TRACK_STAMPS forced)
#   kmatrix.stamps=S               the stamp source the default must choose (the host reads
#                                  CONFIG_SCHED_INFO from the kernel's config)
#   kmatrix.reason=WORD            fallback: what the reason stalld gives must name
#   kmatrix.other=0|1              also starve a SCHED_OTHER victim (kernels without fair server)
#   kmatrix.threshold=S            stalld's -t
#   kmatrix.runtime=T              stalld's -r (default 1ms: see tests/kernel-matrix.md)
#   kmatrix.period=T               stalld's -p (default 200ms: see tests/kernel-matrix.md)
#   kmatrix.duration=S             stalld's -d (default 2: see tests/kernel-matrix.md)
#   kmatrix.trace=1                trace CPU 1's scheduling around each case (tracefs)

export PATH=/bin:/test

param() {
	tr ' ' '\n' </proc/cmdline | sed -n "s/^kmatrix\.$1=//p" | tail -n 1
}

MODE=$(param mode)
BACKENDS=$(param backends | tr ',' ' ')
OTHER=$(param other)
THRESHOLD=$(param threshold)
RUNTIME=$(param runtime)
PERIOD=$(param period)
DURATION=$(param duration)
EXPECT_STAMPS=$(param stamps)
EXPECT_REASON=$(param reason)
: "${MODE:=normal}" "${BACKENDS:=queue_track queue_track:tracepoints sched_debug}" "${OTHER:=0}"
: "${THRESHOLD:=3}" "${EXPECT_STAMPS:=sched_info}"
: "${RUNTIME:=1ms}" "${PERIOD:=200ms}" "${DURATION:=2}"
KREL=$(uname -r)
# The kernel's page size (4 kB, 64 kB, ...), from the mappings of this shell.
PAGE=$(sed -n 's/^KernelPageSize: *\([0-9]*\) kB$/\1k/p' /proc/self/smaps 2>/dev/null | head -n 1)
FAILED=0
# The backend the default (no -b) must choose, where the mode says (empty: not checked here).
EXPECT_AUTO=""
RT_RUNTIME_AT_BOOT=$(cat /proc/sys/kernel/sched_rt_runtime_us)

# jfield KEY: the value of KEY in the JSON object(s) on stdin (flat values only).
jfield() {
	sed -n "s/.*\"$1\":\"\{0,1\}\([^,\"}]*\).*/\1/p" | head -n 1
}

# alive PID: the process exists and is not a zombie. No forks: the polling loops run on
# CPU 0 next to stalld, and under TCG every fork costs milliseconds.
alive() {
	stat=""
	read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
	stat=${stat##*) }
	[ "${stat%% *}" != Z ]
}

# dl_total_bw: the root domain's allocated SCHED_DEADLINE bandwidth, from sched/debug
# (1048576 = one CPU; each 6.12 fair server holds 52428).
dl_total_bw() {
	sed -n 's/^ *\.dl_bw->total_bw *: *//p' /sys/kernel/debug/sched/debug 2>/dev/null | head -n 1
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
	echo "dl_bw->total_bw: $(dl_total_bw)"
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

# wait_exit PID TENTHS: waits up to TENTHS tenths of a second for PID to exit; fails if it
# is still alive then.
wait_exit() {
	i=0
	while alive "$1" && [ "$i" -lt "$2" ]; do
		sleep 0.1
		i=$((i + 1))
	done
	! alive "$1"
}

# stop_stalld PID: SIGTERM, then up to 15 s for the restore-and-exit.
stop_stalld() {
	kill -TERM "$1" 2>/dev/null
	if ! wait_exit "$1" 150; then
		echo "stalld pid $1 did not exit 15 s after SIGTERM; killing it"
		kill -KILL "$1" 2>/dev/null
	fi
	wait "$1" 2>/dev/null
}

# With kmatrix.trace=1: sched_switch/sched_wakeup and hrtimer events on CPU 1 during a case,
# printed for the victim (and the SCHED_DEADLINE timers) afterwards.
TRACE=$(param trace)
TRACEFS=/sys/kernel/tracing
trace_start() {
	[ "$TRACE" = 1 ] || return 0
	echo 0 >"$TRACEFS/tracing_on"
	echo >"$TRACEFS/trace"
	echo 2 >"$TRACEFS/tracing_cpumask"
	echo 4096 >"$TRACEFS/buffer_size_kb"
	for event in sched/sched_switch sched/sched_wakeup sched/sched_migrate_task timer/hrtimer_expire_entry; do
		echo 1 >"$TRACEFS/events/$event/enable"
	done
	echo 1 >"$TRACEFS/tracing_on"
}
trace_stop() {
	[ "$TRACE" = 1 ] || return 0
	echo 0 >"$TRACEFS/tracing_on"
	echo "----- trace of CPU 1 (victim $1, DEADLINE timers)"
	grep -e "=$1 " -e "pid=$1 " -e dl_task_timer -e inactive_task_timer -e hrtick "$TRACEFS/trace" | head -n 300
}

# tracepoint_links PID: how many BPF links PID holds on scheduler tracepoints (tp_btf links
# show as raw_tracepoint in fdinfo; fentry-style ones as tracing).
tracepoint_links() {
	n=0
	for info in /proc/"$1"/fdinfo/*; do
		grep -q -e '^link_type:[[:space:]]*raw_tracepoint' -e '^link_type:[[:space:]]*tracing' "$info" 2>/dev/null &&
			n=$((n + 1))
	done
	echo "$n"
}

# starve_case CASE POLICY: one stalld + one stalld-starve run. CASE is a backend (or auto),
# with ":tracepoints" to force queue_track's tracepoint stamps. Sets CASE_WAIT (the victim's
# wait beyond the threshold), CASE_USED (the backend stalld chose), CASE_STAMPS (the stamp
# source it said it uses, - for none), CASE_TP_LINKS and CASE_WHY (empty on success).
starve_case() {
	backend=${1%%:*}
	forced=""
	[ "$backend" = "$1" ] || forced=${1#*:}
	policy=$2
	tag="$backend${forced:+-$forced}-$policy"
	slog=/tmp/stalld-$tag.log
	gout=/tmp/starve-$tag.json
	gerr=/tmp/starve-$tag.err
	CASE_WAIT=NA
	CASE_USED=""
	CASE_STAMPS=-
	CASE_TP_LINKS=NA
	CASE_FALLBACK=0
	CASE_WHY=""
	case "$policy" in
	fifo) expect_name=SCHED_FIFO expect_num=1 ;;
	other) expect_name=SCHED_OTHER expect_num=0 ;;
	esac
	if [ "$backend" = auto ]; then
		set -- -f -v -t "$THRESHOLD" -r "$RUNTIME" -p "$PERIOD" -d "$DURATION" -g 1 -c 1
	else
		set -- -f -v -t "$THRESHOLD" -r "$RUNTIME" -p "$PERIOD" -d "$DURATION" -g 1 -c 1 -b "$backend"
	fi
	section "$tag: ${forced:+STALLD_QUEUE_TRACK_STAMPS=$forced }stalld $*"
	if [ -n "$forced" ]; then
		STALLD_QUEUE_TRACK_STAMPS=$forced stalld "$@" >"$slog" 2>&1 &
	else
		stalld "$@" >"$slog" 2>&1 &
	fi
	spid=$!
	if ! wait_for_start "$slog" "$spid"; then
		CASE_WHY="stalld did not start"
		stop_stalld "$spid"
		show_file "$slog"
		return 1
	fi
	CASE_USED=$(sed -n 's/^stalld: using \(.*\) backend$/\1/p' "$slog" | head -n 1)
	# The -v line follows "using ... backend" at once; the links exist by then.
	sleep 0.5
	if grep -q "^stalld: queue_track: enqueue times from the kernel's sched_info" "$slog"; then
		CASE_STAMPS=sched_info
	elif grep -q "^stalld: queue_track: enqueue times from stalld's tracepoints" "$slog"; then
		CASE_STAMPS=tracepoints
	fi
	CASE_TP_LINKS=$(tracepoint_links "$spid")
	expect_stamps=-
	if [ "$CASE_USED" = queue_track ]; then
		expect_stamps=${forced:-$EXPECT_STAMPS}
	fi
	expect_links=0
	[ "$expect_stamps" = tracepoints ] && expect_links=5
	trace_start
	stalld-starve --cpu 1 --victims 1 --victim-prio 5 --victim-policy "$policy" \
		--starve-after-ms 200 --duration 30 --linger 4 >"$gout" 2>"$gerr" &
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
		sleep 0.2
	done
	wait "$gpid"
	grc=$?
	stop_stalld "$spid"
	trace_stop "$vpid"

	ran=$(grep '"event":"victim_ran"' "$gout")
	when=$(echo "$ran" | jfield policy_when_ran)
	wait_s=$(echo "$ran" | jfield wait_s)
	if [ -n "$wait_s" ]; then
		CASE_WAIT=$(awk -v w="$wait_s" -v t="$THRESHOLD" 'BEGIN { printf "%.3f", w - t }')
	fi
	# stalld checks 100 ms into a DEADLINE boost that the task ran, and boosts it with
	# SCHED_FIFO if not; under TCG on a loaded host a 1 ms runtime can pass without the
	# victim getting back to user space. That rescue is stalld's too, and is reported.
	CASE_FALLBACK=0
	grep -q "^stalld: pid $vpid did not run under SCHED_DEADLINE.*boosting it with SCHED_FIFO instead" "$slog" &&
		CASE_FALLBACK=1
	if [ "$backend" = auto ] && [ -n "$EXPECT_AUTO" ] && [ "$CASE_USED" != "$EXPECT_AUTO" ]; then
		CASE_WHY="the default chose the $CASE_USED backend, not $EXPECT_AUTO: $(fallback_reason "$slog")"
	elif [ "$CASE_STAMPS" != "$expect_stamps" ]; then
		CASE_WHY="stalld said its enqueue times come from '$CASE_STAMPS', expected '$expect_stamps'"
	elif [ "$CASE_TP_LINKS" != "$expect_links" ]; then
		CASE_WHY="stalld held $CASE_TP_LINKS links on scheduler tracepoints, expected $expect_links"
	elif [ -z "$vpid" ]; then
		CASE_WHY="stalld-starve reported no victim_ready (rc $grc)"
	elif ! grep -q -- "-$vpid starved on CPU 1 for " "$slog"; then
		CASE_WHY="no 'starved on CPU 1' line for victim $vpid"
	elif ! grep -q "^stalld: boosted pid $vpid (.*) (cpu 1) using SCHED_DEADLINE" "$slog"; then
		CASE_WHY="no 'boosted pid $vpid' line"
	elif [ -z "$ran" ]; then
		CASE_WHY="victim $vpid never ran"
	elif [ "$when" != SCHED_DEADLINE ] && ! { [ "$when" = SCHED_FIFO ] && [ "$CASE_FALLBACK" = 1 ]; }; then
		CASE_WHY="victim $vpid ran under $when, not under stalld's SCHED_DEADLINE boost (nor its SCHED_FIFO fallback)"
	# After the policy, the CPU time the boost gave the victim: "(it ran 0.021 ms boosted)".
	elif ! grep -qE "^stalld: restored pid $vpid to $expect_name( \(it ran [0-9.]+ ms boosted\))?\$" "$slog"; then
		CASE_WHY="no 'restored pid $vpid to $expect_name' line"
	elif [ "$policy_after" != "$expect_num" ]; then
		CASE_WHY="victim $vpid has policy '$policy_after' after the restore, expected $expect_num ($expect_name)"
	elif [ "$grc" -ne 0 ]; then
		CASE_WHY="stalld-starve exited with $grc"
	elif [ "$(cat /proc/sys/kernel/sched_rt_runtime_us)" != "$RT_RUNTIME_AT_BOOT" ]; then
		CASE_WHY="sched_rt_runtime_us left at $(cat /proc/sys/kernel/sched_rt_runtime_us), not restored to $RT_RUNTIME_AT_BOOT"
	fi
	# The evidence, also on success: stalld's lines about the victim, the generator's events,
	# what else stalld boosted on CPU 1, and how the machine was left.
	grep -e '^stalld: using' -e '^stalld: queue_track:' -e "-$vpid starved" -e "pid $vpid " "$slog" | sed 's/^/    /'
	sed -e '/"event":"victim_ran"/!d' -e 's/^/    /' "$gout"
	others=$(sed -n "s/^stalld: \(.*\)-\([0-9]*\) starved on CPU.*/\1-\2/p" "$slog" | grep -v -- "-$vpid\$" | sort | uniq -c | tr -s ' \n' ' ')
	[ -z "$others" ] || echo "    also starved and boosted on CPU 1 (count comm-pid):$others"
	echo "    order of stalld's starvation reports: $(sed -n "s/^stalld: \(.*-[0-9]*\) starved on CPU [0-9]* for \([0-9]*\) seconds.*/\1(\2s)/p" "$slog" | tr '\n' ' ')"
	grep -e 'RT Throttling' -e 'sched_rt_runtime_us' -e 'HRTICK' -e 'lockdown' "$slog" | sed 's/^/    /'
	echo "    after: sched_rt_runtime_us=$(cat /proc/sys/kernel/sched_rt_runtime_us) dl_bw->total_bw=$(dl_total_bw)"
	# Put it back for the next case, so one failure does not hide the next case's behaviour.
	echo "$RT_RUNTIME_AT_BOOT" >/proc/sys/kernel/sched_rt_runtime_us 2>/dev/null ||
		echo "    could not write $RT_RUNTIME_AT_BOOT to sched_rt_runtime_us either"
	if [ -n "$CASE_WHY" ]; then
		echo "FAILED: $tag: $CASE_WHY"
		show_file "$slog"
		show_file "$gout"
		show_file "$gerr"
		return 1
	fi
	echo "ok: $tag: victim $vpid waited ${wait_s} s, ${CASE_WAIT} s beyond the ${THRESHOLD} s threshold; policy restored to $expect_name; stamps $CASE_STAMPS, $CASE_TP_LINKS tracepoint links$([ "$CASE_FALLBACK" = 1 ] && echo "; rescued by the SCHED_FIFO fallback")"
	return 0
}

# report CASE RESULT WAIT EXTRA...: the line the host collects, for the last starve_case.
report() {
	echo "KMATRIX arch=$(uname -m) kernel=$KREL case=$1 backend=${CASE_USED:-${1%%:*}} stamps=$CASE_STAMPS tp_links=$CASE_TP_LINKS result=$2 wait_beyond_threshold_s=$3${4:+ $4} rt_runtime_us=$RT_RUNTIME_AT_BOOT page=${PAGE:-NA}"
	[ "$2" = PASS ] || FAILED=$((FAILED + 1))
}

# run_case CASE [EXTRA]: every victim policy of this kernel, one report line.
run_case() {
	rcase=$1
	extra=${2:-}
	result=PASS
	worst=""
	detail=""
	why=""
	fallback=""
	policies=fifo
	[ "$OTHER" = 1 ] && policies="fifo other"
	for policy in $policies; do
		if starve_case "$rcase" "$policy"; then
			worst=$(awk -v a="${worst:--1e9}" -v b="$CASE_WAIT" 'BEGIN { printf "%.3f", (b > a ? b : a) }')
		else
			result=FAIL
			why="${why:+$why; }$policy: $CASE_WHY"
		fi
		detail="${detail:+$detail,}$policy:$CASE_WAIT"
		[ "$CASE_FALLBACK" = 1 ] && fallback="${fallback:+$fallback,}$policy"
	done
	[ -z "$fallback" ] || extra="${extra:+$extra }fifo_fallback=$fallback"
	[ "$result" = PASS ] || worst=NA
	if [ -n "$why" ]; then
		report "$rcase" "$result" "$worst" "victims=$detail${extra:+ $extra} why=\"$why\""
	else
		report "$rcase" "$result" "$worst" "victims=$detail${extra:+ $extra}"
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

# fallback_field: " fifo_fallback=fifo" when the last (fifo) case needed stalld's FIFO fallback.
fallback_field() {
	[ "$CASE_FALLBACK" = 1 ] && echo " fifo_fallback=fifo"
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
		report auto PASS "$CASE_WAIT" "victims=fifo:$CASE_WAIT lockdown=$LOCKDOWN chose=$CASE_USED$(fallback_field)"
	else
		[ -n "$CASE_WHY" ] || CASE_WHY="chose the $CASE_USED backend, not queue_track"
		report auto FAIL NA "lockdown=$LOCKDOWN chose=${CASE_USED:-none} why=\"$CASE_WHY\""
	fi
	# 2. The other queue_track cases (the tracepoint stamps) work as anywhere else.
	for other in $BACKENDS; do
		case "$other" in
		auto | sched_debug) ;;
		*) run_case "$other" "lockdown=$LOCKDOWN" ;;
		esac
	done
	# 3. -b sched_debug. sched/debug is mode 0444, and debugfs's lockdown check lets such
	#    read-only files be read even under confidentiality (only writable, ioctl or mmap
	#    files are closed): so stalld may either work with it end to end, or refuse with a
	#    message that names the cause. Starting and then failing silently is the failure.
	if starve_case sched_debug fifo; then
		report sched_debug PASS "$CASE_WAIT" "victims=fifo:$CASE_WAIT lockdown=$LOCKDOWN outcome=works$(fallback_field)"
	elif [ "$CASE_WHY" = "stalld did not start" ] && grep -qi -e lockdown -e debugfs "$slog"; then
		report sched_debug PASS NA "lockdown=$LOCKDOWN outcome=refused"
	else
		report sched_debug FAIL NA "lockdown=$LOCKDOWN why=\"$CASE_WHY\""
	fi
}

# The reason stalld gave for falling back, from its log, made safe for a quoted field.
fallback_reason() {
	sed -n 's/^stalld: queue_track backend: \(.*\); falling back to sched_debug$/\1/p' "$1" |
		head -n 1 | tr '"' "'"
}

# fallback_checks [FORCED]: queue_track cannot load (with FORCED, STALLD_QUEUE_TRACK_STAMPS,
# the stamp source forced): the default falls back to sched_debug naming the reason and
# boosts; -b queue_track refuses to start, naming it.
fallback_checks() {
	forced_stamps=${1:-}
	# Falling back is what is checked here.
	EXPECT_AUTO=""
	# 1. The default: queue_track cannot load, so sched_debug, with the reason logged; and it
	#    must boost like anywhere else.
	acase=auto${forced_stamps:+:$forced_stamps}
	policies=fifo
	[ "$OTHER" = 1 ] && policies="fifo other"
	result=PASS detail="" worst="" why=""
	for policy in $policies; do
		if starve_case "$acase" "$policy"; then
			worst=$(awk -v a="${worst:--1e9}" -v b="$CASE_WAIT" 'BEGIN { printf "%.3f", (b > a ? b : a) }')
		else
			result=FAIL
			why="${why:+$why; }$policy: $CASE_WHY"
		fi
		detail="${detail:+$detail,}$policy:$CASE_WAIT"
		reason=$(fallback_reason "$slog")
		if [ "$CASE_USED" != sched_debug ] || [ -z "$reason" ]; then
			result=FAIL
			why="${why:+$why; }$policy: chose '$CASE_USED' $([ -n "$reason" ] && echo "saying '$reason'" || echo "without a fallback line")"
		elif [ -n "$EXPECT_REASON" ] && ! echo "$reason" | grep -q -F -- "$EXPECT_REASON"; then
			result=FAIL
			why="${why:+$why; }$policy: the reason does not name $EXPECT_REASON"
		fi
	done
	[ "$result" = PASS ] || worst=NA
	report "$acase" "$result" "$worst" "victims=$detail chose=$CASE_USED reason=\"$reason\"${why:+ why=\"$why\"}"
	# 2. -b queue_track: no fallback asked for, so stalld must refuse to start, saying why.
	qcase=queue_track${forced_stamps:+:$forced_stamps}
	section "queue_track forced: ${forced_stamps:+STALLD_QUEUE_TRACK_STAMPS=$forced_stamps }stalld -f -v -c 1 -b queue_track"
	CASE_USED="" CASE_STAMPS=- CASE_TP_LINKS=NA
	slog=/tmp/stalld-forced${forced_stamps:+-$forced_stamps}.log
	if [ -n "$forced_stamps" ]; then
		STALLD_QUEUE_TRACK_STAMPS=$forced_stamps stalld -f -v -t "$THRESHOLD" -c 1 -b queue_track >"$slog" 2>&1 &
	else
		stalld -f -v -t "$THRESHOLD" -c 1 -b queue_track >"$slog" 2>&1 &
	fi
	spid=$!
	if ! wait_exit "$spid" 300; then
		stop_stalld "$spid"
		report "$qcase" FAIL NA "why=\"-b queue_track kept running where it cannot load\""
	else
		wait "$spid"
		src=$?
		show_file "$slog"
		said=$(grep -m 1 '^stalld: .*queue_track' "$slog" | sed 's/^stalld: //' | tr '"' "'")
		if [ "$src" -ne 0 ] && [ -n "$said" ] && echo "$said" | grep -q -F -- "${EXPECT_REASON:-queue_track}"; then
			report "$qcase" PASS NA "outcome=refused exit=$src said=\"$said\""
		else
			report "$qcase" FAIL NA "why=\"exit $src, said '$said'\""
		fi
	fi
}

fallback_mode() {
	fallback_checks
	# 3. -b sched_debug works as anywhere.
	run_case sched_debug
}

# A kernel whose BPF task storage the tracepoint stamps cannot use (none in tracing programs
# before 5.13; on ppc64le and riscv64 since 6.19, none that can be allocated): the kernel's
# stamps work, by default and under -b queue_track; stalld's tracepoint stamps, forced, cannot.
kernel_stamps_only_mode() {
	EXPECT_AUTO=queue_track
	run_case auto
	run_case queue_track
	fallback_checks tracepoints
	run_case sched_debug
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
elif [ "$MODE" = fallback ]; then
	fallback_mode
elif [ "$MODE" = kernel-stamps-only ]; then
	kernel_stamps_only_mode
else
	for case_name in $BACKENDS; do
		run_case "$case_name"
	done
fi
section "dmesg warnings"
dmesg | grep -v -e 'Command line:' -e 'LSM' | grep -e 'rcu.*stall' -e 'blocked for more than' -e 'BUG' -e 'WARNING' \
	-e 'Call Trace' -e '[Ll]ockdown' -e 'bpf' -e 'BPF' -e 'sched: ' | tail -n 60
exit "$FAILED"
