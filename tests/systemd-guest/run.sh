#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Runs inside the systemd guest (tests/systemd-guest.sh), started by stalld-guest-test.service
# on CPU 0 once the system is up. Does what a user does with the package (dpkg -i, upgrade
# from and downgrade to the distribution's stalld, edit /etc/default/stalld, systemctl,
# journalctl, a drop-in, the DaemonSet's preStop hook) and prints one line per step:
#   systemd: <step> PASS|FAIL[: what was found]
# then hands the number of failed steps to the host through qexit and powers off.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:/test
FAILED=0
CPU=1
THRESHOLD=5

# log MESSAGE: an indented detail line, stamped with the guest's uptime (TCG on a loaded host
# can be slow; the stamps show where the time went).
log() {
	local up rest
	read -r up rest </proc/uptime
	echo "    [$up] $*"
}

result() {
	local step=$1 why=$2 detail=$3
	if [ -z "$why" ]; then
		echo "systemd: $step PASS${detail:+: $detail}"
	else
		echo "systemd: $step FAIL: $why${detail:+ -- details: $detail}"
		FAILED=$((FAILED + 1))
	fi
}

finish() {
	echo "=== RESULT rc=$FAILED"
	qexit "$FAILED"
	systemctl poweroff --force --force
}

rt_runtime() {
	cat /proc/sys/kernel/sched_rt_runtime_us
}

# sched_fields TID: the fields of /proc/TID/stat after the comm (which may contain blanks)
# in FIELDS (field 40 rt_priority is FIELDS[37], 41 policy FIELDS[38]); false when the task
# is gone. Shell builtins only: under TCG every fork costs milliseconds, and step 3 must act
# within the boost.
sched_fields() {
	local stat
	read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
	read -ra FIELDS <<<"${stat##*) }"
}

# policy_of TID: the scheduling policy number, or "gone".
policy_of() {
	sched_fields "$1" && echo "${FIELDS[38]}" || echo gone
}

# sched_of TID: "policy priority", or "gone".
sched_of() {
	sched_fields "$1" && echo "${FIELDS[38]} ${FIELDS[37]}" || echo gone
}

# deadline_tasks: every thread of the system that is SCHED_DEADLINE now, as "tid(comm)".
deadline_tasks() {
	local stat line comm fields
	for stat in /proc/[0-9]*/task/[0-9]*/stat; do
		read -r line 2>/dev/null <"$stat" || continue
		comm=${line#*(}
		comm=${comm%)*}
		read -ra fields <<<"${line##*) }"
		[ "${fields[38]}" = 6 ] && printf '%s(%s) ' "${line%% *}" "$comm"
	done
}

# main_pid: the service's main pid (0 when none).
main_pid() {
	systemctl show -p MainPID --value stalld
}

# stalld_pids: every process running /usr/bin/stalld (the daemon and its guardian).
stalld_pids() {
	local proc
	for proc in /proc/[0-9]*; do
		[ "$proc/exe" -ef /usr/bin/stalld ] && printf '%s ' "${proc#/proc/}"
	done
}

# journal_since CURSOR_FILE: stalld's journal lines after the cursor saved in CURSOR_FILE.
journal_since() {
	journalctl -u stalld --no-pager -o cat --after-cursor="$(cat "$1")" 2>/dev/null
}

save_cursor() {
	journalctl --no-pager -n 0 --show-cursor 2>/dev/null | sed -n 's/^-- cursor: //p' >"$1"
	# An empty journal has no cursor yet: then everything is "after" it.
	[ -s "$1" ] || echo "s=0" >"$1"
}

# wait_journal CURSOR_FILE REGEX SECONDS: until stalld's journal after the cursor matches.
wait_journal() {
	local i=0
	while [ "$i" -lt $(($3 * 5)) ]; do
		journal_since "$1" | grep -qE "$2" && return 0
		sleep 0.2
		i=$((i + 1))
	done
	return 1
}

show_journal() {
	echo "    ----- journalctl -u stalld (since the step began):"
	journal_since "$1" | sed 's/^/    | /' | tail -n 60
}

# start_starvation DURATION LINGER: stalld-starve in the background (a SCHED_FIFO 5 victim
# behind a SCHED_FIFO 10 busy loop on CPU 1; RT throttling is stalld's to manage); sets
# STARVE_PID and VICTIM (its tid) once the victim is ready.
start_starvation() {
	STARVE_OUT=/tmp/starve-$1.json
	stalld-starve --cpu "$CPU" --victims 1 --victim-prio 5 --victim-policy fifo \
		--starve-after-ms 200 --duration "$1" --linger "$2" --no-throttle-change \
		>"$STARVE_OUT" 2>/tmp/starve.err &
	STARVE_PID=$!
	VICTIM=""
	local i=0
	while [ -z "$VICTIM" ] && [ "$i" -lt 100 ]; do
		VICTIM=$(sed -n 's/.*"event":"victim_ready".*"pid":\([0-9]*\).*/\1/p' "$STARVE_OUT" | head -n 1)
		sleep 0.1
		i=$((i + 1))
	done
}

# stop_starvation: SIGTERM (the generator stops its hog and restores everything), then, if
# it is still there after 15 s, SIGKILL.
stop_starvation() {
	local i
	kill -TERM "$STARVE_PID" 2>/dev/null
	for ((i = 0; i < 150; i++)); do
		kill -0 "$STARVE_PID" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$STARVE_PID" 2>/dev/null; then
		log "stalld-starve $STARVE_PID still runs 15 s after SIGTERM: killing it"
		kill -KILL "$STARVE_PID" 2>/dev/null
	fi
	wait "$STARVE_PID" 2>/dev/null
}

echo "=== systemd guest: $(uname -r), $(systemctl --version | head -n 1)"
echo "    sched_rt_runtime_us at boot: $(rt_runtime); system state: $(systemctl is-system-running)"

# ---------------------------------------------------------------- install: dpkg -i
CURSOR=/tmp/cursor
save_cursor "$CURSOR"
why=""
deb=$(ls /test/stalld_*.deb)
if ! dpkg -i "$deb" >/tmp/dpkg.log 2>&1; then
	why="dpkg -i $(basename "$deb") failed: $(tail -n 5 /tmp/dpkg.log | tr '\n' ' ')"
else
	state=$(systemctl is-active stalld)
	enabled=$(systemctl is-enabled stalld)
	package=$(dpkg-query -W -f='${Version}' stalld)
	binary=$(stalld --version)
	if ! systemctl cat stalld >/dev/null 2>&1; then
		why="systemd does not know stalld.service after dpkg -i (no daemon-reload?)"
	elif [ "$state" != inactive ]; then
		why="the service is '$state' right after dpkg -i: it must not be started on install"
	elif [ "$enabled" != disabled ]; then
		why="the service is '$enabled' after dpkg -i: it must not be enabled on install"
	elif upstream=${package#*:} && [ "${upstream%-*}" != "$binary" ]; then
		why="stalld --version says '$binary', the package is $package"
	fi
	detail="package $package, stalld --version $binary, service $state and $enabled"
fi
result install "$why" "$detail"
[ -z "$why" ] || finish

# Removed and purged, as a user going back would: nothing of ours is left.
why=""
dpkg --purge stalld >/tmp/dpkg.log 2>&1 || why="dpkg --purge stalld failed: $(tail -n 3 /tmp/dpkg.log | tr '\n' ' ')"
left=$(ls /usr/bin/stalld /usr/bin/throttlectl /usr/bin/stalld-guardian /etc/default/stalld \
	/lib/systemd/system/stalld.service 2>/dev/null | tr '\n' ' ')
[ -z "$left" ] || why="${why:+$why; }left after the purge: $left"
systemctl cat stalld >/dev/null 2>&1 && why="${why:+$why; }systemd still knows stalld.service after the purge"
result purge "$why" ""

# ---------------------------------------------------------------- 0: upgrade from the distribution's
# The distribution's stalld 1.28 (a stand-in with its paths, unit and conffile), tuned by the
# administrator for this machine (a short threshold and, under TCG's slow emulation, a 1 ms
# runtime (tests/kernel-matrix.md) and a boost as long as stalld allows, so that step 3 can
# kill the unit during it), enabled and running. Then ours installed over it as an update
# would be: the edits must be kept and used, the service restarted as ours.
save_cursor "$CURSOR"
why=""
detail=""
RT_ORIGINAL=$(rt_runtime)
SOURCE_EDITS=(-e "s/^THRESH=.*/THRESH=\"-t $THRESHOLD\"/" -e 's/^BR=.*/BR="-r 1ms"/' -e "s/^BD=.*/BD=\"-d $THRESHOLD\"/")
if ! dpkg -i /test/standin/stalld_1.28-1_*.deb >/tmp/dpkg.log 2>&1; then
	why="dpkg -i of the distribution's stalld 1.28 failed: $(tail -n 3 /tmp/dpkg.log | tr '\n' ' ')"
else
	sed -i "${SOURCE_EDITS[@]}" /etc/default/stalld
	systemctl enable --now stalld >/dev/null 2>&1
	old_main=$(main_pid)
	old_cmd=$(tr '\0' ' ' <"/proc/$old_main/cmdline" 2>/dev/null)
	log "distribution's 1.28 running: pid $old_main: $old_cmd"
	grep -q -- "-t $THRESHOLD " <<<"$old_cmd" || why="the distribution's stalld does not run with the edited threshold: $old_cmd"
	# An unattended upgrade keeps a changed configuration file (--force-confold), as apt does.
	if [ -n "$why" ]; then :
	elif ! dpkg --force-confold -i "$deb" >/tmp/dpkg.log 2>&1; then
		why="dpkg -i of ours over 1.28 failed: $(tail -n 5 /tmp/dpkg.log | tr '\n' ' ')"
	else
		package=$(dpkg-query -W -f='${Version}' stalld)
		new_main=""
		for ((i = 0; i < 150; i++)); do
			new_main=$(main_pid)
			[ "$new_main" != 0 ] && [ "$new_main" != "$old_main" ] && [ "$(systemctl is-active stalld)" = active ] && break
			sleep 0.2
		done
		new_cmd=$(tr '\0' ' ' <"/proc/$new_main/cmdline" 2>/dev/null)
		if [ "$package" != "$(dpkg-deb -f "$deb" Version)" ]; then
			why="dpkg-query says $package after the upgrade"
		elif ! [ "/proc/$new_main/exe" -ef /usr/bin/stalld ] || grep -q stand-in /usr/bin/stalld; then
			why="the service's main process ($new_main: $new_cmd) is not our stalld: not restarted by the upgrade"
		elif ! grep -qx "THRESH=\"-t $THRESHOLD\"" /etc/default/stalld; then
			why="the administrator's edit of /etc/default/stalld is lost: $(grep '^THRESH' /etc/default/stalld)"
		elif ! grep -q -- "-t $THRESHOLD " <<<"$new_cmd"; then
			why="ours does not run with the edited threshold: $new_cmd"
		elif [ ! -f /etc/default/stalld.dpkg-dist ]; then
			why="no /etc/default/stalld.dpkg-dist with our defaults beside the kept file"
		fi
		detail="1.28 -> $package, restarted as ours (pid $new_main: $new_cmd), edit kept"
	fi
fi
# The distribution's next update (1.29) is not taken over ours.
if [ -z "$why" ]; then
	apt_local=(-o Dir::Etc::SourceList=/test/repo.list -o Dir::Etc::SourceParts=/dev/null -o APT::Get::List-Cleanup=0)
	if ! apt-get "${apt_local[@]}" update >/tmp/apt.log 2>&1; then
		why="apt-get update of the local repository failed: $(tail -n 3 /tmp/apt.log | tr '\n' ' ')"
	else
		candidate=$(apt-cache "${apt_local[@]}" policy stalld | sed -n 's/^ *Candidate: //p')
		upgrades=$(apt-get "${apt_local[@]}" -s upgrade 2>&1 | grep -c '^Inst stalld')
		[ "$candidate" = "$package" ] && [ "$upgrades" = 0 ] ||
			why="apt would replace ours with the distribution's 1.29: candidate $candidate, $upgrades upgrade(s) of stalld"
		detail="$detail; apt upgrade keeps it over the distribution's 1.29 (candidate $candidate)"
	fi
fi
# The distribution's stalld turned RT throttling off and saved the value it found in its own
# file (/run/stalld/rtthrottle-XXXXXXX); the upgrade's restart ran our ExecStopPost
# (`throttlectl on`) and ExecStartPre (`throttlectl off`): ours adopted that file, so once
# ours stops, the value from before the distribution's stalld started is back.
if [ -z "$why" ]; then
	systemctl stop stalld
	rt_after=$(rt_runtime)
	left=$(ls /run/stalld/rtthrottle-* 2>/dev/null | tr '\n' ' ')
	if [ "$rt_after" != "$RT_ORIGINAL" ]; then
		why="sched_rt_runtime_us is $rt_after after the upgrade and the stop of ours, was $RT_ORIGINAL before the distribution's stalld started"
	elif [ -n "$left" ]; then
		why="the distribution's save file is still there after the upgrade: $left"
	fi
	detail="$detail; stopped after the upgrade: sched_rt_runtime_us $rt_after (was $RT_ORIGINAL before theirs started), their save file adopted and removed"
fi
[ -z "$why" ] || show_journal "$CURSOR"
result 0-upgrade "$why" "$detail"
[ -z "$why" ] || finish
log "/etc/default/stalld: $(grep -E '^(THRESH|BR|BD|BE)=' /etc/default/stalld | tr '\n' ' ')"
RT_BEFORE=$(rt_runtime)

# ---------------------------------------------------------------- 1: systemctl start
save_cursor "$CURSOR"
why=""
detail=""
# stalld's own priority from exec on, from the scheduler's own record: every switch to or
# from stalld's main thread (sched:sched_switch, comm stalld, CLOCK_MONOTONIC stamps) from
# its exec until READY (ActiveEnterTimestampMonotonic: under Type=notify after the BPF load
# and the first check, where the C unit's ExecStartPost chrt had not run yet) must carry
# prio 89, i.e. SCHED_FIFO 10 (a SCHED_OTHER task is 120), the last one before its first
# journal line included.
T=/sys/kernel/tracing
[ -e $T/trace ] || mount -t tracefs nodev $T
echo 0 >$T/tracing_on
echo mono >$T/trace_clock
echo 16384 >$T/buffer_size_kb
: >$T/trace
echo 'next_comm == "stalld" || prev_comm == "stalld"' >$T/events/sched/sched_switch/filter
echo 1 >$T/events/sched/sched_switch/enable
echo 1 >$T/tracing_on
systemctl start stalld
echo 0 >$T/tracing_on
echo 0 >$T/events/sched/sched_switch/enable
pid=$(main_pid)
ready=$(systemctl show -p ActiveEnterTimestampMonotonic --value stalld)
# journald may write stalld's first entry a little after READY: waited for (30 s at most).
first_line=""
for ((i = 0; i < 150; i++)); do
	first_line=$(journalctl -u stalld -o json --no-pager --after-cursor="$(cat "$CURSOR")" _PID="$pid" 2>/dev/null |
		head -n 1 | sed -n 's/.*"__MONOTONIC_TIMESTAMP":"\([0-9]*\)".*/\1/p')
	[ -n "$first_line" ] && break
	sleep 0.2
done
# "<ts>: sched_switch: ... next_pid=N next_prio=P": the prios before READY, and the one at the
# first log line.
# A switch to stalld (next_prio) or from it (prev_prio): its prio then.
read -r switches wrong at_line < <(awk -v pid="$pid" -v ready="${ready:-0}" -v line="${first_line:-0}" '
	/sched_switch:/ && ($0 ~ ("next_pid=" pid " ") || $0 ~ ("prev_pid=" pid " ")) {
		ts = $0; sub(/: sched_switch:.*/, "", ts); sub(/.* /, "", ts); ts *= 1000000
		prio = $0
		if ($0 ~ ("next_pid=" pid " ")) sub(/.*next_prio=/, "", prio); else { sub(/.*prev_prio=/, "", prio); sub(/ .*/, "", prio) }
		prio += 0
		if (ts <= ready) { n++; if (prio != 89) bad++ }
		# The prio around the first journal line: the last switch before it, else the first after.
		if (ts <= line || last == "") last = prio
	}
	END { printf "%d %d %s\n", n, bad, (last == "" ? "none" : last) }' $T/trace)
log "stalld $pid: $switches switches to it before READY, $wrong of them not at prio 89 (SCHED_FIFO 10); prio $at_line at its first journal line"
if [ "${switches:-0}" = 0 ]; then
	why="the trace has no switch to stalld $pid before READY (ready at ${ready:-?} us)"
elif [ "$wrong" != 0 ]; then
	why="$wrong of $switches switches to stalld $pid before READY ran it below SCHED_FIFO 10 (prio 89)"
elif [ "$at_line" != 89 ]; then
	why="stalld $pid ran at prio $at_line at its first journal line, not 89 (SCHED_FIFO 10)"
fi
# What OpenShift's tests check: `pidof stalld` is one pid, SCHED_FIFO 10 (chrt -ap); its
# listener threads (stalld-status, stalld-metrics) are SCHED_OTHER by design.
pids=$(pidof stalld)
threads=$(chrt -ap "$pids" 2>&1)
count=0
for task in /proc/"$pids"/task/*; do
	read -r comm <"$task/comm"
	case "$comm" in stalld-status | stalld-metrics) continue ;; esac
	count=$((count + 1))
	tid=${task##*/}
	grep -q "pid $tid's current scheduling policy: SCHED_FIFO" <<<"$threads" &&
		grep -q "pid $tid's current scheduling priority: 10$" <<<"$threads" ||
		why="${why:+$why; }chrt -ap $pids: thread $tid ($comm) is not SCHED_FIFO 10: $(tr '\n' ' ' <<<"$threads")"
done
[ "$pids" = "$pid" ] || why="${why:+$why; }pidof stalld says '$pids', the main pid is $pid"
detail="$switches switches to stalld before READY all at SCHED_FIFO 10, also at its first log line; pidof stalld = $pids, chrt -ap: its $count threads but the listeners SCHED_FIFO 10"
if [ -n "$why" ]; then :
elif [ "$(systemctl is-active stalld)" != active ]; then
	why="systemctl start stalld: the service is $(systemctl is-active stalld)"
elif ! wait_journal "$CURSOR" 'using queue_track backend' 60; then
	why="journalctl -u stalld has no 'using queue_track backend' within 60 s"
else
	detail="$detail; active, journal: $(journal_since "$CURSOR" | grep -m 1 -E 'using .* backend')"
	rt_running=$(rt_runtime)
	[ "$rt_running" = -1 ] || why="sched_rt_runtime_us is $rt_running while stalld runs, not -1"
	# Each message once: the native entry, not also the stderr stream's or /dev/log's twin
	# (LOGGING="--log_syslog" is the shipped default, and /dev/log is journald's).
	copies=$(journal_since "$CURSOR" | grep -c -E -x '(stalld: )?using queue_track backend')
	[ "$copies" = 1 ] || why="${why:+$why; }the journal has 'using queue_track backend' $copies times, not once"
fi
# The structured fields, once stalld's events carry them (STALLD_EVENT, STALLD_BACKEND, ...).
if journalctl -u stalld -o json --no-pager --after-cursor="$(cat "$CURSOR")" | grep -q '"STALLD_EVENT"'; then
	if ! journalctl -u stalld -o json --no-pager --after-cursor="$(cat "$CURSOR")" | grep '"STALLD_EVENT"' |
		grep -q '"STALLD_BACKEND":"queue_track"'; then
		why="${why:+$why; }the journal has STALLD_EVENT fields but none with STALLD_BACKEND=queue_track"
	fi
	detail="$detail; structured fields present"
else
	log "structured journal fields: SKIPPED (no STALLD_EVENT field in stalld's journal entries yet)"
fi
[ -z "$why" ] || show_journal "$CURSOR"
result 1-start "$why" "$detail"

# ---------------------------------------------------------------- 2: a starving victim
save_cursor "$CURSOR"
why=""
start_starvation 40 $((THRESHOLD + 15))
policy_after=""
if [ -z "$VICTIM" ]; then
	why="stalld-starve reported no victim: $(cat /tmp/starve.err)"
else
	while kill -0 "$STARVE_PID" 2>/dev/null; do
		if [ -z "$policy_after" ] && journal_since "$CURSOR" | grep -q "restored pid $VICTIM "; then
			policy_after=$(policy_of "$VICTIM")
		fi
		sleep 0.3
	done
	wait "$STARVE_PID"
	starve_rc=$?
	ran=$(grep '"event":"victim_ran"' "$STARVE_OUT")
	lines=$(journal_since "$CURSOR")
	if ! grep -q -- "-$VICTIM starved on CPU $CPU for " <<<"$lines"; then
		why="the journal has no '<comm>-$VICTIM starved on CPU $CPU' line"
	elif ! grep -q "boosted pid $VICTIM (.*) (cpu $CPU) using SCHED_DEADLINE" <<<"$lines"; then
		why="the journal has no 'boosted pid $VICTIM ... using SCHED_DEADLINE' line"
	elif ! grep -q '"policy_when_ran":"SCHED_DEADLINE"' <<<"$ran"; then
		why="victim $VICTIM did not run under the boost: ${ran:-it never ran}"
	elif ! grep -q "restored pid $VICTIM to SCHED_FIFO" <<<"$lines"; then
		why="the journal has no 'restored pid $VICTIM to SCHED_FIFO' line"
	elif [ "$policy_after" != 1 ]; then
		why="victim $VICTIM has policy '$policy_after' after the restore, not 1 (SCHED_FIFO)"
	elif [ "$starve_rc" != 0 ]; then
		why="stalld-starve exited with $starve_rc: $(cat /tmp/starve.err)"
	fi
	wait_s=$(sed -n 's/.*"wait_s":\([0-9.]*\).*/\1/p' <<<"$ran")
	detail="victim $VICTIM waited ${wait_s:-?} s (threshold $THRESHOLD s), ran under SCHED_DEADLINE, policy $policy_after after the restore"
	grep -e "-$VICTIM starved" -e "pid $VICTIM " <<<"$lines" | sed 's/^/    journal: /'
fi
[ -z "$why" ] || show_journal "$CURSOR"
result 2-boost "$why" "$detail"

# starve_until_boosted: start_starvation 90 60 (the victim lingers 60 s after it ran, so
# nothing boosts it again later), then waits until stalld has boosted the victim, watching
# its policy itself (no forks); BOOSTED is its policy then. False, with WHY set and the
# starvation stopped, when that did not happen within 30 s.
starve_until_boosted() {
	local i
	start_starvation 90 60
	if [ -z "$VICTIM" ]; then
		WHY="stalld-starve reported no victim: $(cat /tmp/starve.err)"
		return 1
	fi
	for ((i = 0; i < 300; i++)); do
		BOOSTED=$(policy_of "$VICTIM")
		[ "$BOOSTED" = 6 ] && return 0
		sleep 0.1
	done
	WHY="stalld did not boost victim $VICTIM within 30 s (policy $BOOSTED)"
	stop_starvation
	return 1
}

# ---------------------------------------------------------------- 3: SIGKILL of the whole unit
# kill_during_boost HOW: starves a victim, kills every process of the unit with HOW while the
# victim is boosted, waits for systemd's automatic restart, and checks that nothing is left
# SCHED_DEADLINE and that RT throttling is off while the restarted stalld runs. Sets WHY
# (empty on success) and DETAIL.
#   systemctl   systemctl kill -s KILL stalld (systemd signals the processes one by one)
#   cgroup      1 > the unit's cgroup.kill: the kernel kills them all at once, as an OOM kill
#               of the cgroup does; no process of the unit runs between the first and the last
kill_during_boost() {
	local how=$1 old_main restarts_before restarts new_main pids at_kill after_kill i restarted
	local policy left rt_running cgroup
	WHY=""
	DETAIL=""
	save_cursor "$CURSOR"
	old_main=$(systemctl show -p MainPID --value stalld)
	restarts_before=$(systemctl show -p NRestarts --value stalld)
	cgroup=/sys/fs/cgroup$(systemctl show -p ControlGroup --value stalld)
	# The victim lingers (asleep) for 60 s after it ran, so nothing re-boosts it after the
	# restart: whatever policy it has then is what the killed instance left.
	# The kill must land inside the boost.
	starve_until_boosted || return
	at_kill=$BOOSTED
	pids=$(stalld_pids)
	case "$how" in
	systemctl) systemctl kill -s KILL stalld ;;
	cgroup) echo 1 >"$cgroup/cgroup.kill" ;;
	esac
	after_kill=$(policy_of "$VICTIM")
	log "$how: killed stalld (pids $pids) during the boost of victim $VICTIM: policy $at_kill before, $after_kill right after"
	restarted=0
	for ((i = 0; i < 120; i++)); do
		sleep 0.5
		new_main=$(systemctl show -p MainPID --value stalld)
		restarts=$(systemctl show -p NRestarts --value stalld)
		if [ "$restarts" -le "$restarts_before" ] || [ "$new_main" = 0 ] || [ "$new_main" = "$old_main" ] ||
			[ "$(systemctl is-active stalld)" != active ]; then
			continue
		fi
		# Type=notify: the new instance logs its backend line before systemd says "Started".
		if journal_since "$CURSOR" | sed -n '/Starting stalld.service/,$p' | grep -q 'using .* backend'; then
			restarted=1
			break
		fi
	done
	if [ "$restarted" = 0 ]; then
		WHY="stalld was not restarted within 60 s of the kill (NRestarts $restarts_before -> $restarts, $(systemctl is-active stalld))"
	else
		log "$how: systemd restarted stalld (main pid $new_main, NRestarts $restarts)"
		# Give a starting stalld the time to restore what the dead one left.
		sleep 3
		policy=$(policy_of "$VICTIM")
		left=$(deadline_tasks)
		rt_running=$(rt_runtime)
		DETAIL="$how: restarted (main pid $new_main), victim $VICTIM policy $at_kill at the kill, $policy 3 s after the restart, sched_rt_runtime_us $rt_running"
		if [ "$policy" = 6 ] || [ -n "$left" ]; then
			WHY="$how: after the restart these tasks are still SCHED_DEADLINE: ${left:-none} (victim $VICTIM boosted by the killed stalld: policy $policy); sched_rt_runtime_us $rt_running while the restarted stalld runs"
			journal_since "$CURSOR" | grep -e "pid $VICTIM " -e "already runs" | sed 's/^/    journal: /'
		elif [ "$policy" != 1 ]; then
			WHY="$how: victim $VICTIM has policy $policy after the restart, not 1 (SCHED_FIFO)"
		elif [ "$rt_running" != -1 ]; then
			WHY="$how: sched_rt_runtime_us is $rt_running while the restarted stalld runs, not -1"
		fi
	fi
	stop_starvation
	[ -z "$WHY" ] || show_journal "$CURSOR"
}

why=""
detail=""
for how in systemctl cgroup; do
	kill_during_boost "$how"
	[ -z "$WHY" ] || why="${why:+$why; }$WHY"
	detail="${detail:+$detail; }$DETAIL"
done
log "step 3 done"
result 3-kill "$why" "$detail"

# ---------------------------------------------------------------- 4: systemctl stop
save_cursor "$CURSOR"
why=""
systemctl stop stalld
state=$(systemctl is-active stalld)
rt_after=$(rt_runtime)
left=$(stalld_pids)
cgroup=$(systemctl show -p ControlGroup --value stalld)
if [ "$state" != inactive ]; then
	why="the service is $state after systemctl stop"
elif [ "$rt_after" != "$RT_BEFORE" ]; then
	why="sched_rt_runtime_us is $rt_after after the stop, was $RT_BEFORE before the start"
elif [ -n "$left" ]; then
	why="stalld processes left after the stop: $left"
fi
detail="inactive, sched_rt_runtime_us $rt_after (before the start: $RT_BEFORE), no stalld process${cgroup:+, cgroup $cgroup}"
[ -z "$why" ] || show_journal "$CURSOR"
result 4-stop "$why" "$detail"

# ---------------------------------------------------------------- 5: a drop-in sets the backend
save_cursor "$CURSOR"
why=""
mkdir -p /etc/systemd/system/stalld.service.d /etc/stalld
echo 'BE="-b sched_debug"' >/etc/stalld/backend.env
printf '[Service]\nEnvironmentFile=/etc/stalld/backend.env\n' >/etc/systemd/system/stalld.service.d/backend.conf
systemctl daemon-reload
systemctl start stalld
dropins=$(systemctl show -p DropInPaths --value stalld)
if [ "$(systemctl is-active stalld)" != active ]; then
	why="the service is $(systemctl is-active stalld) after the start with the drop-in"
elif ! wait_journal "$CURSOR" 'using sched_debug backend' 60; then
	why="no 'using sched_debug backend' in the journal within 60 s (drop-ins: ${dropins:-none}; command: $(tr '\0' ' ' </proc/"$(systemctl show -p MainPID --value stalld)"/cmdline))"
fi
detail="drop-in $dropins; $(journal_since "$CURSOR" | grep -m 1 'using .* backend')"
systemctl stop stalld
rm -rf /etc/systemd/system/stalld.service.d
systemctl daemon-reload
[ "$(rt_runtime)" = "$RT_BEFORE" ] || why="${why:+$why; }sched_rt_runtime_us is $(rt_runtime) after the stop, not $RT_BEFORE"
[ -z "$why" ] || show_journal "$CURSOR"
result 5-drop-in "$why" "$detail"

# ---------------------------------------------------------------- 6: the pod's preStop hook
# stalld as the DaemonSet's container runs it (its arguments: no systemd, JSON events on
# stdout, the pid file in /run/stalld), a victim boosted, then the manifest's preStop hook
# (/test/prestop.sh, extracted from deploy/kubernetes/daemonset.yaml):
#   graceful  the hook stops stalld; the victim and RT throttling are restored
#   stuck     stalld and its guardian stopped (SIGSTOP: a daemon that cannot act on SIGTERM):
#             the hook kills stalld after its 20 s and restores from the ledger itself
# Sets WHY and DETAIL.
mapfile -t POD_ARGS </test/pod-args
POD_PORT=$(printf '%s\n' "${POD_ARGS[@]}" | sed -n 's/^--metrics=.*:\([0-9]*\)$/\1/p')
log "the DaemonSet's container arguments: ${POD_ARGS[*]}"

# start_pod NAME: stalld as the DaemonSet's container runs it (the image's entrypoint is
# chrt --fifo 10 stalld), with the test's threshold; POD is its pid, its stdout and stderr go
# to /tmp/pod-NAME.json and .err.
start_pod() {
	chrt --fifo 10 stalld "${POD_ARGS[@]}" -t "$THRESHOLD" -r 1ms -d "$THRESHOLD" \
		>/tmp/pod-$1.json 2>/tmp/pod-$1.err &
	POD=$!
}

# pod_ready: the status line and the body of the pod's GET /ready (bash's /dev/tcp: no
# HTTP client in the guest).
pod_ready() {
	local answer
	exec 3<>"/dev/tcp/127.0.0.1/$POD_PORT" || return 1
	printf 'GET /ready HTTP/1.1\r\nHost: probe\r\n\r\n' >&3
	answer=$(timeout 10 cat <&3)
	exec 3>&-
	tr -d '\r' <<<"$answer" | sed -n -e '1p' -e '$p' | tr '\n' ' '
}

prestop_case() {
	local how=$1 pod guardian at_hook after rt i took json
	WHY=""
	DETAIL=""
	start_pod "$how"
	pod=$POD
	pod=$!
	if ! starve_until_boosted; then
		WHY="$how: $WHY"
		kill -TERM "$pod"
		return
	fi
	at_hook=$BOOSTED
	guardian=$(for p in $(stalld_pids); do [ "$p" != "$pod" ] && echo "$p"; done)
	[ "$how" = stuck ] && kill -STOP "$pod" $guardian
	log "$how: victim $VICTIM boosted by stalld $pod (guardian ${guardian:-none}); running the preStop hook"
	took=$SECONDS
	timeout 90 sh -x /test/prestop.sh >/tmp/prestop-$how.log 2>&1
	took=$((SECONDS - took))
	after=$(policy_of "$VICTIM")
	rt=$(rt_runtime)
	[ "$how" = stuck ] && kill -CONT $guardian 2>/dev/null
	# Still there and not a zombie: the hook did not stop it (then killed here, bounded).
	sched_fields "$pod" && [ "$(cut -d' ' -f3 "/proc/$pod/stat" 2>/dev/null)" != Z ] && left=1 || left=0
	[ "$left" = 0 ] || kill -KILL "$pod" $guardian 2>/dev/null
	wait "$pod" 2>/dev/null
	DETAIL="$how: hook took $took s, victim $VICTIM policy $at_hook -> $after, sched_rt_runtime_us $rt"
	if [ "$left" = 1 ]; then
		WHY="$how: stalld $pod still ran after the hook"
	elif [ "$after" != 1 ]; then
		WHY="$how: victim $VICTIM has policy $after after the hook, not 1 (SCHED_FIFO)"
	elif [ "$rt" != "$RT_BEFORE" ]; then
		WHY="$how: sched_rt_runtime_us is $rt after the hook, was $RT_BEFORE"
	elif [ "$(stalld restore 2>&1)" != "nothing left to restore" ]; then
		WHY="$how: the ledger still holds something after the hook: $(stalld restore 2>&1)"
	fi
	# The container's log: JSON lines only on stdout, the boost among them.
	json=$(grep -vc '^{.*}$' /tmp/pod-$how.json)
	if [ -z "$WHY" ] && { [ "$json" != 0 ] || ! grep -q '"event":"boosted"' /tmp/pod-$how.json; }; then
		WHY="$how: stdout has $json lines that are not JSON, or no boosted event: $(head -c 300 /tmp/pod-$how.json)"
	fi
	stop_starvation
	[ -z "$WHY" ] || sed 's/^/    hook: /' /tmp/prestop-$how.log
}
# aside_case: the host's unit runs stalld; the pod started beside it stands aside (its event
# names the unit's stalld, its readiness fails), and its preStop hook stops it and leaves the
# host's stalld, RT throttling and the value the unit saved alone. Sets WHY and DETAIL.
aside_case() {
	local host saved event ready i hook_rc pod_rc rt_aside left
	WHY=""
	DETAIL=""
	save_cursor "$CURSOR"
	systemctl start stalld
	host=$(main_pid)
	if ! wait_journal "$CURSOR" 'using .* backend' 60; then
		WHY="aside: the host's unit did not start stalld: $(systemctl is-active stalld)"
		return
	fi
	saved=$(throttlectl show)
	start_pod aside
	event=""
	for ((i = 0; i < 300; i++)); do
		event=$(grep -m 1 '"event":"standing_aside"' /tmp/pod-aside.json 2>/dev/null)
		[ -n "$event" ] && break
		kill -0 "$POD" 2>/dev/null || break
		sleep 0.1
	done
	for ((i = 0; i < 100; i++)); do
		ready=$(pod_ready 2>/dev/null) && [ -n "$ready" ] && break
		sleep 0.1
	done
	log "aside: the unit's stalld $host; the pod $POD said: $event; GET /ready: $ready"
	timeout 90 sh -x /test/prestop.sh >/tmp/prestop-aside.log 2>&1
	hook_rc=$?
	for ((i = 0; i < 100; i++)); do
		kill -0 "$POD" 2>/dev/null || break
		sleep 0.1
	done
	left=0
	kill -0 "$POD" 2>/dev/null && { left=1; kill -KILL "$POD"; }
	wait "$POD"
	pod_rc=$?
	rt_aside=$(rt_runtime)
	DETAIL="aside: the pod named the unit's stalld ($(sed -n 's/.*"other_instances":"\([^"]*\)".*/\1/p' <<<"$event")), GET /ready '$ready', hook exit $hook_rc, pod exit $pod_rc; the unit's stalld $(systemctl is-active stalld) with pid $(main_pid), sched_rt_runtime_us $rt_aside, $(throttlectl show)"
	if [ -z "$event" ] || ! grep -q "\"other_instances\":\"pid $host: " <<<"$event"; then
		WHY="aside: the pod's stdout has no standing_aside event naming the unit's stalld $host: $(head -c 400 /tmp/pod-aside.json) $(head -c 400 /tmp/pod-aside.err)"
	elif ! grep -q "^HTTP/1.1 503 .* standing aside: another stalld boosts on this host (pid $host: " <<<"$ready"; then
		WHY="aside: GET /ready answered '$ready', not 503 naming the unit's stalld"
	elif grep -q '"event":"started"' /tmp/pod-aside.json; then
		WHY="aside: the pod started boosting beside the unit's stalld"
	elif [ "$left" = 1 ] || [ "$pod_rc" != 0 ]; then
		WHY="aside: the pod did not stop with exit 0 after the hook (still running: $left, exit $pod_rc)"
	elif [ "$(systemctl is-active stalld)" != active ] || [ "$(main_pid)" != "$host" ]; then
		WHY="aside: the unit's stalld did not survive the pod's hook: $(systemctl is-active stalld), pid $(main_pid)"
	elif [ "$rt_aside" != -1 ]; then
		WHY="aside: the hook turned RT throttling on under the unit's stalld (sched_rt_runtime_us $rt_aside)"
	elif [ "$(throttlectl show)" != "$saved" ]; then
		WHY="aside: the hook changed what the unit saved: '$saved' before, '$(throttlectl show)' after"
	fi
	systemctl stop stalld
	[ "$(rt_runtime)" = "$RT_BEFORE" ] ||
		WHY="${WHY:+$WHY; }aside: sched_rt_runtime_us is $(rt_runtime) after the unit stopped, not $RT_BEFORE"
	[ -z "$WHY" ] || { sed 's/^/    hook: /' /tmp/prestop-aside.log; show_journal "$CURSOR"; }
}

why=""
detail=""
for how in graceful stuck; do
	prestop_case "$how"
	[ -z "$WHY" ] || why="${why:+$why; }$WHY"
	detail="${detail:+$detail; }$DETAIL"
done
aside_case
[ -z "$WHY" ] || why="${why:+$why; }$WHY"
detail="$detail; $DETAIL"
result 6-prestop "$why" "$detail"

# ---------------------------------------------------------------- 7: back to the distribution's
# Going back: the distribution's 1.28 installed over ours while ours runs, as a downgrade;
# the edits kept, the service restarted as theirs, nothing of ours left.
save_cursor "$CURSOR"
why=""
systemctl start stalld
if ! dpkg --force-confold -i /test/standin/stalld_1.28-1_*.deb >/tmp/dpkg.log 2>&1; then
	why="dpkg -i of the distribution's 1.28 over ours failed: $(tail -n 5 /tmp/dpkg.log | tr '\n' ' ')"
else
	for ((i = 0; i < 150; i++)); do
		main=$(main_pid)
		cmd=$(tr '\0' ' ' <"/proc/$main/cmdline" 2>/dev/null)
		grep -q '/bin/sh /usr/bin/stalld' <<<"$cmd" && break
		sleep 0.2
	done
	package=$(dpkg-query -W -f='${Version}' stalld)
	if [ "$package" != 1.28-1 ]; then
		why="dpkg-query says $package after the downgrade"
	elif [ "$(systemctl is-active stalld)" != active ] || ! grep -q '/bin/sh /usr/bin/stalld' <<<"$cmd"; then
		why="the service does not run the distribution's stalld after the downgrade: $(systemctl is-active stalld), pid $main: $cmd"
	elif ! grep -q -- "-t $THRESHOLD " <<<"$cmd"; then
		why="the distribution's stalld does not run with the edited threshold: $cmd"
	elif [ -e /usr/bin/stalld-guardian ]; then
		why="our /usr/bin/stalld-guardian is left behind"
	elif [ -n "$(deadline_tasks)" ]; then
		why="tasks left SCHED_DEADLINE: $(deadline_tasks)"
	fi
	detail="$package running (pid $main: $cmd), edit kept"
fi
systemctl disable --now stalld >/dev/null 2>&1
[ "$(rt_runtime)" = "$RT_BEFORE" ] || why="${why:+$why; }sched_rt_runtime_us is $(rt_runtime) after the distribution's stalld stopped, not $RT_BEFORE"
[ -z "$why" ] || show_journal "$CURSOR"
result 7-downgrade "$why" "$detail"

finish
