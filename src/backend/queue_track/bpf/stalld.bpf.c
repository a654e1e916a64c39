// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * stalld's kernel half: a task iterator that user space runs at each check to list, for the
 * monitored CPUs, the running task and every queued one with the moment it was queued.
 *
 * Where that moment comes from (user space loads one of the two scans, never both):
 *
 * 1. qt_scan_sched_info (the default): the kernel's own stamp, task_struct.sched_info.last_queued.
 *    Nothing is attached to any scheduler tracepoint, so the scheduler's hot path pays
 *    nothing for stalld. What the kernel guarantees (kernel/sched/stats.h, kernel/sched/core.c):
 *
 *    - The stamp exists with CONFIG_SCHED_INFO (selected by SCHEDSTATS or TASK_DELAY_ACCT; on
 *      in the Debian, RHEL, Fedora, Ubuntu and SUSE kernels). Without it struct sched_info is
 *      empty in the BTF; user space checks the field in the kernel's BTF before load and falls
 *      back to the tracepoint scan, whatever the kernel's version.
 *    - Since 5.14 ("sched: Simplify sched_info_on()") it is kept whenever CONFIG_SCHED_INFO=y.
 *      Before, a kernel with SCHEDSTATS=n but TASK_DELAY_ACCT=y kept it only while delay
 *      accounting was on (the default then, `nodelayacct` turns it off); the stamps then stay
 *      0 and every wait counts from the first scan that sees it, as for sched_debug.
 *    - sched_info_enqueue() (enqueue_task() without ENQUEUE_RESTORE: wakeups, new tasks,
 *      migrations) sets it to rq_clock() if it is 0. sched_info_switch() runs only when
 *      prev != next: sched_info_depart() stamps a prev that is still TASK_RUNNING (preempted,
 *      or yielding), and sched_info_arrive() clears next's. sched_info_dequeue()
 *      (dequeue_task() without DEQUEUE_SAVE: blocking, migrations) clears it.
 *    - So a migrated task's wait starts again on its new CPU (deactivate_task() and
 *      activate_task() carry neither SAVE nor RESTORE), while a priority or policy change,
 *      stalld's own boost included (DEQUEUE_SAVE/ENQUEUE_RESTORE), keeps the stamp.
 *    - A task preempted between set_current_state() and schedule() departs with a non-running
 *      __state: it stays queued with last_queued == 0 (also if it is woken meanwhile, which
 *      only sets it running again). User space counts such a wait from the first scan that
 *      saw it.
 *    - 6.12+ (EEVDF delayed dequeue): a fair task that blocks may stay on_rq with
 *      se.sched_delayed set; dequeue_task() has already cleared its stamp, and it is sleeping,
 *      not waiting, so it is skipped here. A wakeup re-enqueues it (ENQUEUE_DELAYED, not
 *      RESTORE), which stamps it.
 *    - The clock is rq_clock(): sched_clock_cpu() of the task's CPU, read at the last
 *      update_rq_clock(), which the enqueue and switch paths do just before stamping. It is
 *      not CLOCK_MONOTONIC (NTP slews only the latter), so every scan pairs the two: it
 *      starts with a QT_SCAN_START record (bpf_ktime_get_ns()), and when the iteration
 *      reaches the thread that reads it (stalld's: its thread id is the lower half of
 *      bpf_get_current_pid_tgid()) it writes a QT_CLOCK record with that thread's
 *      sched_info.last_arrival (the rq clock when it was last switched in), its switch count
 *      and bpf_ktime_get_ns() again, read in that order. User space sleeps 50 us before each
 *      scan, so that switch-in is microseconds old, and reads its own switch count before
 *      the scan: unchanged, the switch-in came before the scan and pairs with the scan's
 *      start; changed, with the second reading. rq_clock.rs converts and states the error
 *      bound.
 *    This holds, unchanged in meaning, from 5.8 (the first iter/task) to 7.2 (checked here).
 *
 *    No program here calls bpf_get_current_task_btf() (which would give stalld's own task at
 *    once), bpf_get_current_task() or bpf_get_smp_processor_id(): a kernel built with the JIT
 *    of arm64, powerpc, riscv, s390 or loongarch has that JIT inline them
 *    (bpf_jit_inlines_helper_call()), and the verifier then marks every program calling one
 *    as requiring the JIT (kernel/bpf/fixups.c, 7.2), even while the JIT is off. Where it is
 *    off by default (riscv selects no ARCH_WANT_DEFAULT_BPF_JIT, so bpf_jit_enable starts at
 *    0) such a program is refused: "program requires BPF JIT compiler but it is not
 *    available". bpf_get_current_pid_tgid() and bpf_ktime_get_ns() run in the interpreter.
 *
 * 2. qt_scan_tracepoints (forced with STALLD_QUEUE_TRACK_STAMPS=tracepoints, and the fallback
 *    where the kernel has no sched_info.last_queued or scan 1 does not load): stalld's own
 *    stamps, set by programs on sched_wakeup, sched_wakeup_new, sched_switch and
 *    sched_migrate_task and kept in task-local storage with the task's context-switch count
 *    at that moment. The kernel increments a task's count when it is switched *out*, before
 *    sched_switch fires, so the count stays constant while the task waits; if it changed,
 *    the task ran since and the stamp is stale. Nothing therefore has to be cleared when a
 *    task is switched in. A task migrating onto a monitored CPU keeps its stamp (its wait
 *    goes on). A queued task without a valid stamp (queued before stalld started) is stamped
 *    at the first scan that sees it.
 *
 * Pointers are read directly (BTF-typed), never with bpf_probe_read_kernel(), so both work
 * under lockdown=confidentiality.
 */
#include "vmlinux_min.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "intf.h"

char LICENSE[] SEC("license") = "GPL";

_Static_assert(sizeof(struct qt_clock) == sizeof(struct qt_record),
	       "records in one stream must have one size");

/* Set by user space before load; read-only afterwards (the map is frozen). */
const volatile u64 monitored[QT_BITMAP_WORDS] = {};

/* Make libbpf-cargo emit the record types (and enum qt_kind) into the skeleton's `types`. */
struct qt_record _qt_record_type = {};
struct qt_clock _qt_clock_type = {};

/*
 * An integer field of a kernel struct, read directly (the pointer is BTF-typed, so this works
 * under lockdown=confidentiality too) with the size, offset and signedness the running kernel's
 * BTF gives it, not the ones declared in vmlinux_min.h. A plain `p->field` is relocated in
 * offset only: libbpf narrows its load for unsigned fields but refuses a signed one whose size
 * changed, and Linux 7.2 turned task_struct.on_cpu and on_rq from int into u8 ("accesses field
 * incorrectly"). Every integer the programs read goes through this, so a field that shrinks,
 * grows or changes signedness in a later kernel still loads. (libbpf's BITFIELD macro reads
 * plain integer fields as well: a whole field is a bitfield that starts at bit 0.)
 */
#define READ_INT(obj, field)                                                                \
	({                                                                                  \
		/* The library macro's own locals include `p`: no argument may be named so. */ \
		typeof(obj) qt_obj_ = (obj);                                                \
		BPF_CORE_READ_BITFIELD(qt_obj_, field);                                     \
	})

static __always_inline u32 task_cpu(const struct task_struct *p)
{
	if (bpf_core_field_exists(p->thread_info.cpu))
		return READ_INT(p, thread_info.cpu);
	return READ_INT((const struct task_struct___pre_5_16 *)p, cpu);
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
	if (!READ_INT(p, on_rq))
		return false;
	if (bpf_core_field_exists(p->se.sched_delayed) && READ_INT(p, se.sched_delayed))
		return false;
	return true;
}

/*
 * The thread running this iterator (stalld's), known by its thread id: the lower half of
 * bpf_get_current_pid_tgid(), in the initial pid namespace like task_struct.pid. See the top
 * of this file for why not bpf_get_current_task_btf().
 */
static __always_inline bool is_reader(const struct task_struct *p)
{
	return (s32)READ_INT(p, pid) == (s32)bpf_get_current_pid_tgid();
}

/*
 * Running on its CPU now (or being switched there or away). task_struct.on_cpu existed only
 * with CONFIG_SMP before it became unconditional; on a uniprocessor kernel without it, the
 * task on the one CPU is the one running this iterator.
 */
static __always_inline bool running_now(const struct task_struct *p)
{
	if (bpf_core_field_exists(p->on_cpu))
		return READ_INT(p, on_cpu);
	return is_reader(p);
}

static __always_inline u64 switches(const struct task_struct *p)
{
	return READ_INT(p, nvcsw) + READ_INT(p, nivcsw);
}

/*
 * What both scans report of a task: the QT_CURRENT record of a task running on a monitored
 * CPU (emitted here), or, for a task queued there, the QT_WAITING record without its stamp
 * (returns true: the caller adds queued_at and emits it). Everything else returns false.
 */
static __always_inline bool describe(struct seq_file *seq, struct task_struct *p,
				     struct qt_record *rec)
{
	u32 cpu;

	if (!READ_INT(p, pid))
		return false;
	cpu = task_cpu(p);
	if (!cpu_monitored(cpu))
		return false;

	rec->cpu = cpu;
	rec->pid = READ_INT(p, pid);
	rec->tgid = READ_INT(p, tgid);
	rec->prio = READ_INT(p, prio);
	if (running_now(p)) {
		rec->kind = QT_CURRENT;
		bpf_seq_write(seq, rec, sizeof(*rec));
		return false;
	}
	if (!queued(p))
		return false;
	rec->kind = QT_WAITING;
	rec->switches = switches(p);
	__builtin_memcpy(rec->comm, p->comm, sizeof(rec->comm));
	return true;
}

/* ---------------------------------------------------------------- 1. the kernel's stamps */

SEC("iter/task")
int qt_scan_sched_info(struct bpf_iter__task *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct task_struct *p = ctx->task;
	struct qt_record rec = {};

	/* Until something is written (seq_num counts objects that wrote, from 0). */
	if (ctx->meta->seq_num == 0) {
		struct qt_clock start = { .kind = QT_SCAN_START };

		start.monotonic = bpf_ktime_get_ns();
		bpf_seq_write(seq, &start, sizeof(start));
	}
	if (p && is_reader(p)) {
		struct qt_clock clock = { .kind = QT_CLOCK };

		/*
		 * In this order: the arrival, then the count that says whether it is still the one
		 * from before the scan, then the monotonic reading, which must follow the arrival.
		 */
		clock.rq_clock = READ_INT(p, sched_info.last_arrival);
		clock.switches = switches(p);
		clock.monotonic = bpf_ktime_get_ns();
		bpf_seq_write(seq, &clock, sizeof(clock));
	}
	if (!p || !describe(seq, p, &rec))
		return 0;
	rec.queued_at = READ_INT(p, sched_info.last_queued);
	bpf_seq_write(seq, &rec, sizeof(rec));
	return 0;
}

/* ------------------------------------------------------------ 2. stalld's own stamps */

struct stamp {
	u64 queued_at;
	u64 switches;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct stamp);
} stamps SEC(".maps");

static __always_inline bool stamp_valid(const struct stamp *s, const struct task_struct *p)
{
	return s->queued_at && s->switches == switches(p);
}

static __always_inline void stamp_now(struct stamp *s, const struct task_struct *p)
{
	s->queued_at = bpf_ktime_get_ns();
	s->switches = switches(p);
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
	stamp_now(s, p);
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
	if (!READ_INT(prev, on_rq) || !READ_INT(prev, pid))
		return 0;
	if (!cpu_monitored(task_cpu(prev)) || !queued(prev))
		return 0;
	/* The count was just incremented, so any previous stamp is stale: no need to check. */
	s = bpf_task_storage_get(&stamps, prev, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (s)
		stamp_now(s, prev);
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
	stamp_now(s, p);
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
 * A queued task without a valid stamp was queued before stalld started (or its stamp could
 * not be stored): it is stamped now, so its wait counts from the first scan that saw it.
 */
SEC("iter/task")
int qt_scan_tracepoints(struct bpf_iter__task *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct task_struct *p = ctx->task;
	struct qt_record rec = {};
	struct stamp *s;

	if (!p || !describe(seq, p, &rec))
		return 0;
	s = bpf_task_storage_get(&stamps, p, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (s) {
		if (!stamp_valid(s, p))
			stamp_now(s, p);
		rec.queued_at = s->queued_at;
	}
	bpf_seq_write(seq, &rec, sizeof(rec));
	return 0;
}
