// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * stalld's kernel half: stamps every task with the moment it became runnable on a monitored
 * CPU, and a task iterator that user space runs at each check to list the waiting tasks and
 * the running ones.
 *
 * The stamp lives in task-local storage (freed with the task, no global hash to contend on)
 * together with the task's context-switch count at that moment. The kernel increments a
 * task's count when it is switched *out*, before sched_switch fires, so the count stays
 * constant while the task waits; if it changed, the task ran since and the stamp is stale.
 * Nothing therefore has to be cleared when a task is switched in, which keeps the common
 * path of sched_switch (prev blocked) to a couple of loads.
 *
 * Pointers are read directly (BTF-typed), never with bpf_probe_read_kernel(), so this works
 * under lockdown=confidentiality.
 */
#include "vmlinux_min.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "intf.h"

char LICENSE[] SEC("license") = "GPL";

/* Set by user space before load; read-only afterwards (the map is frozen). */
const volatile u64 monitored[QT_BITMAP_WORDS] = {};

struct stamp {
	u64 queued_at;
	u64 switches;
	u32 flags;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct stamp);
} stamps SEC(".maps");

/* Makes libbpf-cargo emit the record type into the skeleton's `types` module. */
struct qt_record _qt_record_type = {};

static __always_inline u32 task_cpu(const struct task_struct *p)
{
	if (bpf_core_field_exists(p->thread_info.cpu))
		return p->thread_info.cpu;
	return ((const struct task_struct___pre_5_16 *)p)->cpu;
}

static __always_inline bool cpu_monitored(s64 cpu)
{
	/*
	 * 64-bit and behind a barrier so clang bounds-checks the same register it indexes
	 * with; otherwise it checks a zero-extended copy and the verifier rejects the access.
	 * A negative CPU wraps to a huge value and fails the check.
	 */
	u64 idx = cpu;

	barrier_var(idx);
	if (idx >= QT_MAX_CPUS)
		return false;
	return monitored[idx / 64] & (1ULL << (idx % 64));
}

/*
 * On a run queue and able to run. Since 6.12 a fair task that blocks can stay on_rq with
 * se.sched_delayed set until it is picked; it is sleeping, not waiting. A task preempted
 * between set_current_state() and schedule() stays queued with a non-zero __state, so
 * on_rq rather than __state is what says "waiting".
 */
static __always_inline bool queued(const struct task_struct *p)
{
	if (!p->on_rq)
		return false;
	if (bpf_core_field_exists(p->se.sched_delayed) && p->se.sched_delayed)
		return false;
	return true;
}

static __always_inline u64 switches(const struct task_struct *p)
{
	return p->nvcsw + p->nivcsw;
}

static __always_inline bool stamp_valid(const struct stamp *s, const struct task_struct *p)
{
	return s->queued_at && s->switches == switches(p);
}

static __always_inline void stamp_now(struct stamp *s, const struct task_struct *p, u32 flags)
{
	s->queued_at = bpf_ktime_get_ns();
	s->switches = switches(p);
	s->flags = flags;
}

/*
 * A wakeup usually follows a block (which changed the switch count). The exception is a
 * task that was preempted while going to sleep and is woken while still queued: its stamp
 * from the preemption is valid and its wait began then, so keep it.
 */
static __always_inline void on_enqueue(struct task_struct *p)
{
	struct stamp *s;

	if (!cpu_monitored(task_cpu(p)))
		return;
	s = bpf_task_storage_get(&stamps, p, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!s || stamp_valid(s, p))
		return;
	stamp_now(s, p, 0);
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(qt_wakeup, struct task_struct *p)
{
	on_enqueue(p);
	return 0;
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(qt_wakeup_new, struct task_struct *p)
{
	on_enqueue(p);
	return 0;
}

/*
 * Only the first three arguments are declared: 5.18 appended prev_state, and a program
 * reading fewer arguments than the tracepoint has loads on both sides of that change.
 * prev_state is not needed anyway: at this point a prev that blocked has been dequeued
 * (on_rq == 0) and one that is still queued was preempted or yielded, whatever its
 * __state, and on_rq is stable under the rq lock held here.
 */
SEC("tp_btf/sched_switch")
int BPF_PROG(qt_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct stamp *s;

	/* The idle task counts as queued; it never waits. */
	if (!prev->on_rq || !prev->pid)
		return 0;
	if (!cpu_monitored(task_cpu(prev)) || !queued(prev))
		return 0;
	/* The count was just incremented, so any previous stamp is stale: no need to check. */
	s = bpf_task_storage_get(&stamps, prev, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (s)
		stamp_now(s, prev, 0);
	return 0;
}

/*
 * A queued task moving to a monitored CPU keeps its stamp if it has one (the wait goes on;
 * the CPU is read at scan time). Without one it was waiting on a CPU nobody watches, so its
 * wait starts counting now. Waking tasks (not yet on_rq) are stamped by sched_wakeup.
 */
SEC("tp_btf/sched_migrate_task")
int BPF_PROG(qt_migrate, struct task_struct *p, int dest_cpu)
{
	struct stamp *s;

	if (!queued(p) || !cpu_monitored(dest_cpu))
		return 0;
	s = bpf_task_storage_get(&stamps, p, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!s || stamp_valid(s, p))
		return 0;
	stamp_now(s, p, 0);
	return 0;
}

/* The storage would go with the task_struct anyway; deleting it now makes exits visible at once. */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(qt_exit, struct task_struct *p)
{
	bpf_task_storage_delete(&stamps, p);
	return 0;
}

/*
 * Run by user space at every check. Emits one QT_CURRENT record per task running on a
 * monitored CPU and one QT_WAITING record per task queued there. A queued task without a
 * valid stamp was queued before stalld started (or its stamp could not be stored): it is
 * stamped now and flagged QT_SEEDED, so its wait counts from the first scan that saw it.
 */
SEC("iter/task")
int qt_scan(struct bpf_iter__task *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct task_struct *p = ctx->task;
	struct qt_record rec = {};
	struct stamp *s;
	u32 cpu;

	if (!p || !p->pid)
		return 0;
	cpu = task_cpu(p);
	if (!cpu_monitored(cpu))
		return 0;

	rec.cpu = cpu;
	rec.pid = p->pid;
	rec.tgid = p->tgid;
	rec.prio = p->prio;
	rec.policy = p->policy;

	if (p->on_cpu) {
		rec.kind = QT_CURRENT;
		bpf_seq_write(seq, &rec, sizeof(rec));
		return 0;
	}
	if (!queued(p))
		return 0;

	rec.kind = QT_WAITING;
	rec.switches = switches(p);
	__builtin_memcpy(rec.comm, p->comm, sizeof(rec.comm));
	s = bpf_task_storage_get(&stamps, p, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (s) {
		if (!stamp_valid(s, p))
			stamp_now(s, p, QT_SEEDED);
		rec.queued_at = s->queued_at;
		rec.flags = s->flags;
	}
	bpf_seq_write(seq, &rec, sizeof(rec));
	return 0;
}
