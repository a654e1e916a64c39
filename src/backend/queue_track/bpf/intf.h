/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What stalld's BPF programs and the Rust loader agree on: the CPU bitmap size and the
 * fixed-size records the task iterators write. The Rust side uses the types libbpf-cargo
 * generates from these definitions (records.rs), enums included, so a change here cannot
 * drift silently.
 */
#ifndef STALLD_INTF_H
#define STALLD_INTF_H

/* The kernel's NR_CPUS ceiling (x86 MAXSMP); one bit per CPU. */
#define QT_MAX_CPUS 8192
#define QT_BITMAP_WORDS (QT_MAX_CPUS / 64)

enum qt_kind {
	/* A task on a monitored CPU's run queue that is not running (struct qt_record). */
	QT_WAITING = 1,
	/* The task running on a monitored CPU (struct qt_record). */
	QT_CURRENT = 2,
	/* The two clocks read together, first in every sched_info scan (struct qt_clock). */
	QT_CLOCK = 3,
};

struct qt_record {
	enum qt_kind kind;
	u32 cpu;
	s32 pid;
	s32 tgid;
	/* The kernel's prio: 0..99 real-time, 100..139 fair, -1 deadline. */
	s32 prio;
	u32 _pad;
	/* nvcsw + nivcsw: constant while the task waits. */
	u64 switches;
	/*
	 * QT_WAITING: when the task was queued, 0 if unknown. The sched_info scan reports the
	 * kernel's sched_info.last_queued (run-queue clock, converted in user space against the
	 * scan's QT_CLOCK record); the tracepoint scan reports bpf_ktime_get_ns()
	 * (CLOCK_MONOTONIC) from stalld's own stamps.
	 */
	u64 queued_at;
	char comm[16];
};

/*
 * A pairing of the run-queue clock and CLOCK_MONOTONIC taken in the same program run: the
 * reading task's own sched_info.last_arrival (the rq clock when it was last switched in),
 * then bpf_ktime_get_ns(). Same size as struct qt_record, so the stream stays an array of
 * equal records told apart by their first field.
 */
struct qt_clock {
	enum qt_kind kind;
	u32 _pad;
	u64 rq_clock;
	u64 monotonic;
	u8 _unused[32];
};

#endif /* STALLD_INTF_H */
