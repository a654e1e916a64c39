/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What stalld's BPF programs and the Rust loader agree on: the CPU bitmap size and the
 * fixed-size records the task iterator writes. The Rust side uses the types libbpf-cargo
 * generates from these definitions, so a change here cannot drift silently.
 */
#ifndef STALLD_INTF_H
#define STALLD_INTF_H

/* The kernel's NR_CPUS ceiling (x86 MAXSMP); one bit per CPU. */
#define QT_MAX_CPUS 8192
#define QT_BITMAP_WORDS (QT_MAX_CPUS / 64)

enum qt_kind {
	/* A task on a monitored CPU's run queue that is not running. */
	QT_WAITING = 1,
	/* The task running on a monitored CPU. */
	QT_CURRENT = 2,
};

enum qt_flags {
	/* queued_at was set by the scan, not by an event: the wait began before stalld looked. */
	QT_SEEDED = 1,
};

struct qt_record {
	u32 kind;
	u32 cpu;
	s32 pid;
	s32 tgid;
	s32 prio;
	u32 policy;
	u32 flags;
	u32 _pad;
	/* nvcsw + nivcsw: constant while the task waits. */
	u64 switches;
	/* bpf_ktime_get_ns() (CLOCK_MONOTONIC) when the task became runnable; 0 for QT_CURRENT. */
	u64 queued_at;
	char comm[16];
};

#endif /* STALLD_INTF_H */
