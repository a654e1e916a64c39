#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Runs inside the systemd guest (tests/systemd-guest.sh), started by stalld-guest-test.service
# on CPU 0 once the system is up. Does what a user does with the package (dpkg -i, edit
# /etc/default/stalld, systemctl, journalctl, a drop-in) and prints one line per step:
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

# policy_of TID: the scheduling policy number (field 41 of /proc/TID/stat; the comm may
# contain blanks), or "gone". Shell builtins only: under TCG every fork costs milliseconds,
# and step 3 must act within the boost.
policy_of() {
	local stat fields
	read -r stat 2>/dev/null <"/proc/$1/stat" || { echo gone; return; }
	read -ra fields <<<"${stat##*) }"
	echo "${fields[38]}"
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
	elif [ "${package%-*}" != "$binary" ]; then
		why="stalld --version says '$binary', the package is $package"
	fi
	detail="package $package, stalld --version $binary, service $state and $enabled"
fi
result install "$why" "$detail"
[ -z "$why" ] || finish

# As a user tunes it for this machine: a short threshold, and (under TCG's slow emulation) a
# 1 ms runtime (see tests/kernel-matrix.md) and a boost as long as stalld allows (the
# threshold), so that step 3 can kill the unit during it.
sed -i -e "s/^THRESH=.*/THRESH=\"-t $THRESHOLD\"/" -e 's/^BR=.*/BR="-r 1ms"/' -e "s/^BD=.*/BD=\"-d $THRESHOLD\"/" \
	/etc/default/stalld
log "/etc/default/stalld: $(grep -E '^(THRESH|BR|BD|BE)=' /etc/default/stalld | tr '\n' ' ')"
RT_BEFORE=$(rt_runtime)

# ---------------------------------------------------------------- 1: systemctl start
save_cursor "$CURSOR"
why=""
detail=""
systemctl start stalld
if [ "$(systemctl is-active stalld)" != active ]; then
	why="systemctl start stalld: the service is $(systemctl is-active stalld)"
elif ! wait_journal "$CURSOR" 'using queue_track backend' 60; then
	why="journalctl -u stalld has no 'using queue_track backend' within 60 s"
else
	detail="active, journal: $(journal_since "$CURSOR" | grep -m 1 -E 'using .* backend')"
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
start_starvation 40 $((THRESHOLD + 5))
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
	start_starvation 90 60
	if [ -z "$VICTIM" ]; then
		WHY="stalld-starve reported no victim: $(cat /tmp/starve.err)"
		return
	fi
	# The kill must land inside the boost: watch the victim's policy itself (no forks).
	pids=$(stalld_pids)
	for ((i = 0; i < 300; i++)); do
		at_kill=$(policy_of "$VICTIM")
		[ "$at_kill" = 6 ] && break
		sleep 0.1
	done
	if [ "$at_kill" != 6 ]; then
		WHY="stalld did not boost victim $VICTIM within 30 s (policy $at_kill), nothing to kill during"
		stop_starvation
		return
	fi
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

finish
