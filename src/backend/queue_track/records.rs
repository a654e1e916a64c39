//! Turns the task iterator's output (a packed array of `struct qt_record`, see `bpf/intf.h`)
//! into run-queue snapshots. Pure: no BPF needed, so it is unit-tested on its own.

use std::mem::{offset_of, size_of};

use super::skel::types::qt_record as Record;
use crate::cpuset::CpuSet;
use crate::task::{Comm, MonoTime, RunQueue, WaitingTask};

// Mirrors `enum qt_kind` in intf.h (enums do not reach the skeleton's types).
const KIND_WAITING: u32 = 1;
const KIND_CURRENT: u32 = 2;

pub(super) const RECORD_SIZE: usize = size_of::<Record>();

/// Replaces `out` with one entry per CPU of `monitored`, in CPU order, filled from `bytes`.
/// Records for CPUs outside `monitored` (none are emitted, but the kernel side is not trusted
/// to be perfect) are dropped; a trailing partial record is ignored.
pub(super) fn fill(bytes: &[u8], monitored: &CpuSet, out: &mut Vec<RunQueue>) {
    let mut reuse = std::mem::take(out);
    for cpu in monitored.iter() {
        let mut rq = reuse.pop().unwrap_or_default();
        rq.cpu = cpu;
        rq.current = None;
        rq.nr_rt_running = 0;
        rq.waiting.clear();
        out.push(rq);
    }
    // `out` is sorted by CPU, so a binary search finds the slot without a map.
    for rec in bytes.chunks_exact(RECORD_SIZE) {
        let cpu = u32_at(rec, offset_of!(Record, cpu));
        let Ok(slot) = out.binary_search_by_key(&cpu, |rq| rq.cpu) else {
            continue;
        };
        let rq = &mut out[slot];
        let pid = i32_at(rec, offset_of!(Record, pid));
        let prio = i32_at(rec, offset_of!(Record, prio));
        // Kernel prio 0..99 is SCHED_FIFO/SCHED_RR, as sched_debug's rt_nr_running counts.
        if (0..100).contains(&prio) {
            rq.nr_rt_running += 1;
        }
        match u32_at(rec, offset_of!(Record, kind)) {
            // During a context switch both prev and next are on_cpu; either is right.
            KIND_CURRENT => {
                rq.current.get_or_insert(pid);
            }
            KIND_WAITING => {
                let queued_at = u64_at(rec, offset_of!(Record, queued_at));
                let comm_at = offset_of!(Record, comm);
                rq.waiting.push(WaitingTask {
                    pid,
                    tgid: Some(i32_at(rec, offset_of!(Record, tgid))),
                    comm: Comm::new(&rec[comm_at..comm_at + 16]),
                    prio,
                    switches: u64_at(rec, offset_of!(Record, switches)),
                    // 0: the kernel could not store a stamp (out of memory); let the detector
                    // count from the first snapshot instead of from boot.
                    queued_at: (queued_at != 0).then_some(MonoTime(queued_at)),
                });
            }
            _ => {}
        }
    }
}

fn u32_at(rec: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(rec[at..at + 4].try_into().expect("4 bytes"))
}

fn i32_at(rec: &[u8], at: usize) -> i32 {
    i32::from_ne_bytes(rec[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(rec: &[u8], at: usize) -> u64 {
    u64::from_ne_bytes(rec[at..at + 8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: u32, cpu: u32, pid: i32, queued_at: u64, comm: &str) -> Vec<u8> {
        let mut rec = vec![0u8; RECORD_SIZE];
        let mut put = |at: usize, bytes: &[u8]| rec[at..at + bytes.len()].copy_from_slice(bytes);
        put(offset_of!(Record, kind), &kind.to_ne_bytes());
        put(offset_of!(Record, cpu), &cpu.to_ne_bytes());
        put(offset_of!(Record, pid), &pid.to_ne_bytes());
        put(offset_of!(Record, tgid), &(pid - 1).to_ne_bytes());
        put(offset_of!(Record, prio), &120i32.to_ne_bytes());
        put(offset_of!(Record, switches), &7u64.to_ne_bytes());
        put(offset_of!(Record, queued_at), &queued_at.to_ne_bytes());
        put(offset_of!(Record, comm), comm.as_bytes());
        rec
    }

    #[test]
    fn record_layout_matches_intf_h() {
        assert_eq!(RECORD_SIZE, 64);
        assert_eq!(offset_of!(Record, comm), 48);
    }

    #[test]
    fn fills_every_monitored_cpu_in_order_and_drops_others() {
        let monitored = CpuSet::parse_list("1,3", 4).unwrap();
        let mut bytes = record(KIND_WAITING, 3, 42, 1_000, "victim");
        bytes.extend(record(KIND_CURRENT, 3, 41, 0, "hog"));
        bytes.extend(record(KIND_CURRENT, 3, 40, 0, "second"));
        bytes.extend(record(KIND_WAITING, 2, 50, 5, "elsewhere"));
        bytes.extend(record(KIND_WAITING, 1, 60, 0, "nostamp"));
        bytes.extend([0u8; 10]);
        let mut out = vec![RunQueue {
            cpu: 9,
            current: Some(1),
            nr_rt_running: 5,
            waiting: Vec::new(),
        }];
        fill(&bytes, &monitored, &mut out);

        assert_eq!(out.len(), 2);
        assert_eq!((out[0].cpu, out[0].current), (1, None));
        assert_eq!(out[0].waiting[0].queued_at, None);
        assert_eq!(out[1].cpu, 3);
        assert_eq!(out[1].current, Some(41));
        let victim = &out[1].waiting[0];
        assert_eq!(victim.pid, 42);
        assert_eq!(victim.tgid, Some(41));
        assert_eq!(victim.comm.to_string(), "victim");
        assert_eq!((victim.prio, victim.switches), (120, 7));
        assert_eq!(victim.queued_at, Some(MonoTime(1_000)));
    }

    #[test]
    fn counts_real_time_tasks_running_or_waiting() {
        let with_prio = |mut rec: Vec<u8>, prio: i32| {
            let at = offset_of!(Record, prio);
            rec[at..at + 4].copy_from_slice(&prio.to_ne_bytes());
            rec
        };
        let mut bytes = with_prio(record(KIND_CURRENT, 0, 10, 0, "hog"), 89);
        bytes.extend(with_prio(record(KIND_WAITING, 0, 11, 5, "victim"), 94));
        bytes.extend(record(KIND_WAITING, 0, 12, 5, "fair"));
        bytes.extend(with_prio(record(KIND_WAITING, 0, 13, 5, "deadline"), -1));
        let mut out = Vec::new();
        fill(&bytes, &CpuSet::first_n(1), &mut out);
        assert_eq!((out[0].nr_rt_running, out[0].waiting.len()), (2, 3));
    }
}
