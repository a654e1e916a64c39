/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The few kernel types stalld's BPF programs touch, written by hand instead of a full
 * vmlinux.h so the build does not depend on the build host's kernel. Every record is
 * preserve_access_index: libbpf relocates each field against the running kernel's BTF,
 * so only the names and types used here must exist there, not the layout.
 *
 * Flavors (struct foo___bar) name fields that moved between kernel versions; libbpf
 * matches them to `struct foo` and bpf_core_field_exists() picks the one present.
 */
#ifndef STALLD_VMLINUX_MIN_H
#define STALLD_VMLINUX_MIN_H

typedef signed char __s8;
typedef unsigned char __u8;
typedef short __s16;
typedef unsigned short __u16;
typedef int __s32;
typedef unsigned int __u32;
typedef long long __s64;
typedef unsigned long long __u64;
typedef __u8 u8;
typedef __u16 u16;
typedef __s32 s32;
typedef __u32 u32;
typedef __s64 s64;
typedef __u64 u64;
typedef int pid_t;
typedef _Bool bool;
enum { false = 0, true = 1 };
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;

/* Map types and flags are UAPI: their values never change, so they need no relocation. */
enum bpf_map_type {
	BPF_MAP_TYPE_TASK_STORAGE = 29,
};

enum {
	BPF_F_NO_PREALLOC = 1U << 0,
};

enum {
	BPF_LOCAL_STORAGE_GET_F_CREATE = 1ULL << 0,
};

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

/* The CPU a task is on lives here on kernels >= 5.16 (THREAD_INFO_IN_TASK arches). */
struct thread_info {
	u32 cpu;
};

/* 6.12+ (EEVDF delayed dequeue): a fair task that blocked may stay on_rq with this set. */
struct sched_entity {
	u8 sched_delayed;
};

/*
 * CONFIG_SCHED_INFO (selected by SCHEDSTATS or TASK_DELAY_ACCT). Without it the struct is
 * empty in the kernel's BTF, and user space picks the tracepoint stamps instead.
 */
struct sched_info {
	unsigned long long last_arrival;
	unsigned long long last_queued;
};

struct task_struct {
	struct thread_info thread_info;
	int on_cpu;
	int on_rq;
	int prio;
	struct sched_entity se;
	struct sched_info sched_info;
	pid_t pid;
	pid_t tgid;
	unsigned long nvcsw;
	unsigned long nivcsw;
	char comm[16];
};

/* Before 5.16 the CPU was a task_struct field. */
struct task_struct___pre_5_16 {
	unsigned int cpu;
};

struct seq_file;

struct bpf_iter_meta {
	struct seq_file *seq;
	u64 session_id;
	u64 seq_num;
};

struct bpf_iter__task {
	struct bpf_iter_meta *meta;
	struct task_struct *task;
};

#pragma clang attribute pop

#endif /* STALLD_VMLINUX_MIN_H */
