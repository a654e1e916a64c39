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
	/* The reading thread's rq clock and CLOCK_MONOTONIC (struct qt_clock; sched_info scan). */
	QT_CLOCK = 3,
	/* CLOCK_MONOTONIC when a sched_info scan starts, first in it (struct qt_clock). */
	QT_SCAN_START = 4,
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
	 * kernel's sched_info.last_queued (run-queue clock, converted in user space with the
	 * scan's clock records); the tracepoint scan reports bpf_ktime_get_ns()
	 * (CLOCK_MONOTONIC) from stalld's own stamps.
	 */
	u64 queued_at;
	char comm[16];
};

/*
 * The clock records of a sched_info scan, from which user space pairs the run-queue clock with
 * CLOCK_MONOTONIC. Same size as struct qt_record, so the stream stays an array of equal
 * records told apart by their first field.
 */
struct qt_clock {
	enum qt_kind kind;
	u32 _pad;
	/* QT_CLOCK: the reading thread's sched_info.last_arrival (the rq clock at its switch-in). */
	u64 rq_clock;
	/* bpf_ktime_get_ns(): at the scan's start (QT_SCAN_START), after rq_clock (QT_CLOCK). */
	u64 monotonic;
	/* QT_CLOCK: the reading thread's nvcsw + nivcsw, read after rq_clock. */
	u64 switches;
	u8 _unused[24];
};

#endif /* STALLD_INTF_H */
