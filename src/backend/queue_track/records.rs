//! Turns the task iterators' output (a packed array of equal-size records, `struct qt_record`
//! and `struct qt_clock` of `bpf/intf.h`, told apart by `enum qt_kind`) into run-queue
//! snapshots. Pure: no BPF needed, so it is unit-tested on its own. Layout, kinds and field
//! names all come from the types libbpf-cargo generates from intf.h.

use std::mem::{offset_of, size_of};

use super::rq_clock::{ReaderClock, ScanClocks, StableStamps};
use super::skel::types::{qt_clock as Clock, qt_kind as Kind, qt_record as Record};
use crate::backend::stamps::StampSource;
use crate::cpuset::CpuSet;
use crate::task::{Comm, MonoTime, RunQueue, WaitingTask};

pub(super) const RECORD_SIZE: usize = size_of::<Record>();
const _: () = assert!(size_of::<Clock>() == RECORD_SIZE);
// The layout the BPF programs write (the BPF target: 64-bit, u64 8-aligned), which the types
// generated for this target must match: on i686, u64 is 4-aligned, and only intf.h's explicit
// padding keeps the offsets equal. Checked at build time, so a cross build cannot drift. The
// byte order is the target's on both sides (build.rs compiles the object for it), hence
// `from_ne_bytes` below.
const _: () = assert!(
    RECORD_SIZE == 56
        && offset_of!(Record, switches) == 24
        && offset_of!(Record, queued_at) == 32
        && offset_of!(Record, comm) == 40
        && offset_of!(Clock, rq_clock) == 8
        && offset_of!(Clock, monotonic) == 16
        && offset_of!(Clock, switches) == 24
);

/// What a QT_WAITING record's `queued_at` means, which depends on the scan program loaded.
#[derive(Debug)]
pub(super) enum Stamps {
    /// CLOCK_MONOTONIC already (stalld's tracepoint stamps).
    Monotonic,
    /// The kernel's run-queue clock, converted with the scan's own QT_CLOCK record.
    RqClock(StableStamps),
}

impl Stamps {
    /// The stamp source whose scan writes stamps of this kind.
    pub(super) fn source(&self) -> StampSource {
        match self {
            Stamps::Monotonic => StampSource::Tracepoints,
            Stamps::RqClock(_) => StampSource::SchedInfo,
        }
    }
}

/// Replaces `out` with one entry per CPU of `monitored`, in CPU order, filled from `bytes`, a
/// scan that user space finished reading at `read_at`. `reader_switches` is the reading
/// thread's switch count read before the scan (for the kernel's stamps: see
/// [`ScanClocks::pair`]). Records for CPUs outside `monitored` (none are emitted, but the
/// kernel side is not trusted to be perfect) are dropped; a trailing partial record is
/// ignored.
pub(super) fn fill(
    bytes: &[u8],
    monitored: &CpuSet,
    stamps: &mut Stamps,
    reader_switches: Option<u64>,
    read_at: MonoTime,
    out: &mut Vec<RunQueue>,
) {
    let mut reuse = std::mem::take(out);
    for cpu in monitored.iter() {
        let mut rq = reuse.pop().unwrap_or_default();
        rq.cpu = cpu;
        rq.current = None;
        rq.nr_rt_running = 0;
        rq.waiting.clear();
        out.push(rq);
    }
    let mut reference = None;
    if let Stamps::RqClock(stable) = stamps {
        stable.begin_scan();
        // The reader's record comes where the iteration met its thread: find it first.
        reference = scan_clocks(bytes).pair(reader_switches);
    }
    for rec in bytes.chunks_exact(RECORD_SIZE) {
        let kind = Kind(u32_at(rec, offset_of!(Record, kind)));
        if kind == Kind::QT_CLOCK || kind == Kind::QT_SCAN_START {
            continue;
        }
        let cpu = u32_at(rec, offset_of!(Record, cpu));
        // `out` is sorted by CPU, so a binary search finds the slot without a map.
        let Ok(slot) = out.binary_search_by_key(&cpu, |rq| rq.cpu) else {
            continue;
        };
        let rq = &mut out[slot];
        let pid = i32_at(rec, offset_of!(Record, pid));
        let prio = i32_at(rec, offset_of!(Record, prio));
        // Kernel prio 0..99 is SCHED_FIFO/SCHED_RR, as sched_debug's rt_nr_running counts.
        if (0..100).contains(&prio) && (kind == Kind::QT_CURRENT || kind == Kind::QT_WAITING) {
            rq.nr_rt_running += 1;
        }
        match kind {
            // During a context switch both prev and next are on_cpu; either is right.
            Kind::QT_CURRENT => {
                rq.current.get_or_insert(pid);
            }
            Kind::QT_WAITING => {
                let stamp = u64_at(rec, offset_of!(Record, queued_at));
                let queued_at = match stamps {
                    // 0: the kernel could not store a stamp (out of memory); let the detector
                    // count from the first snapshot instead of from boot.
                    Stamps::Monotonic => (stamp != 0).then_some(MonoTime(stamp)),
                    // 0: the kernel had no stamp for it (preempted while going to sleep);
                    // the detector counts from the first snapshot.
                    Stamps::RqClock(stable) => stable.queued_at(pid, stamp, reference, read_at),
                };
                let comm_at = offset_of!(Record, comm);
                rq.waiting.push(WaitingTask {
                    pid,
                    tgid: Some(i32_at(rec, offset_of!(Record, tgid))),
                    comm: Comm::new(&rec[comm_at..comm_at + 16]),
                    prio,
                    switches: u64_at(rec, offset_of!(Record, switches)),
                    queued_at,
                });
            }
            _ => {}
        }
    }
}

/// The clock records of a sched_info scan (the last of each kind, should one be repeated).
fn scan_clocks(bytes: &[u8]) -> ScanClocks {
    let mut clocks = ScanClocks::default();
    for rec in bytes.chunks_exact(RECORD_SIZE) {
        let monotonic = MonoTime(u64_at(rec, offset_of!(Clock, monotonic)));
        match Kind(u32_at(rec, offset_of!(Clock, kind))) {
            Kind::QT_SCAN_START => clocks.start = Some(monotonic),
            Kind::QT_CLOCK => {
                clocks.reader = Some(ReaderClock {
                    last_arrival: u64_at(rec, offset_of!(Clock, rq_clock)),
                    switches: u64_at(rec, offset_of!(Clock, switches)),
                    monotonic,
                });
            }
            _ => {}
        }
    }
    clocks
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

    const SECOND: u64 = 1_000_000_000;

    fn put(rec: &mut [u8], at: usize, bytes: &[u8]) {
        rec[at..at + bytes.len()].copy_from_slice(bytes);
    }

    fn record(kind: Kind, cpu: u32, pid: i32, queued_at: u64, comm: &str) -> Vec<u8> {
        let mut rec = vec![0u8; RECORD_SIZE];
        put(&mut rec, offset_of!(Record, kind), &kind.0.to_ne_bytes());
        put(&mut rec, offset_of!(Record, cpu), &cpu.to_ne_bytes());
        put(&mut rec, offset_of!(Record, pid), &pid.to_ne_bytes());
        put(&mut rec, offset_of!(Record, tgid), &(pid - 1).to_ne_bytes());
        put(&mut rec, offset_of!(Record, prio), &120i32.to_ne_bytes());
        put(&mut rec, offset_of!(Record, switches), &7u64.to_ne_bytes());
        put(
            &mut rec,
            offset_of!(Record, queued_at),
            &queued_at.to_ne_bytes(),
        );
        put(&mut rec, offset_of!(Record, comm), comm.as_bytes());
        rec
    }

    /// A clock record of `kind` (the fields a scan-start record does not use stay 0).
    fn clock_record(kind: Kind, rq_clock: u64, monotonic: u64, switches: u64) -> Vec<u8> {
        let mut rec = vec![0u8; RECORD_SIZE];
        put(&mut rec, offset_of!(Clock, kind), &kind.0.to_ne_bytes());
        put(
            &mut rec,
            offset_of!(Clock, rq_clock),
            &rq_clock.to_ne_bytes(),
        );
        put(
            &mut rec,
            offset_of!(Clock, monotonic),
            &monotonic.to_ne_bytes(),
        );
        put(
            &mut rec,
            offset_of!(Clock, switches),
            &switches.to_ne_bytes(),
        );
        rec
    }

    /// The reading thread's clock record, with switch count `READER_SWITCHES`.
    fn clock(rq_clock: u64, monotonic: u64) -> Vec<u8> {
        clock_record(Kind::QT_CLOCK, rq_clock, monotonic, READER_SWITCHES)
    }

    fn scan_start(monotonic: u64) -> Vec<u8> {
        clock_record(Kind::QT_SCAN_START, 0, monotonic, 0)
    }

    const READER_SWITCHES: u64 = 77;

    fn waiting(out: &[RunQueue], pid: i32) -> WaitingTask {
        *out.iter()
            .flat_map(|rq| &rq.waiting)
            .find(|task| task.pid == pid)
            .unwrap_or_else(|| panic!("{pid} not in {out:?}"))
    }

    #[test]
    fn record_layout_matches_intf_h() {
        assert_eq!(RECORD_SIZE, 56);
        assert_eq!(offset_of!(Record, queued_at), 32);
        assert_eq!(offset_of!(Record, comm), 40);
        assert_eq!(offset_of!(Clock, monotonic), 16);
        assert_eq!(offset_of!(Clock, switches), 24);
    }

    #[test]
    fn fills_every_monitored_cpu_in_order_and_drops_others() {
        let monitored = CpuSet::parse_list("1,3", 4).unwrap();
        let mut bytes = record(Kind::QT_WAITING, 3, 42, 1_000, "victim");
        bytes.extend(record(Kind::QT_CURRENT, 3, 41, 0, "hog"));
        bytes.extend(record(Kind::QT_CURRENT, 3, 40, 0, "second"));
        bytes.extend(record(Kind::QT_WAITING, 2, 50, 5, "elsewhere"));
        bytes.extend(record(Kind::QT_WAITING, 1, 60, 0, "nostamp"));
        bytes.extend(record(Kind(99), 1, 70, 0, "unknown kind"));
        bytes.extend([0u8; 10]);
        let mut out = vec![RunQueue {
            cpu: 9,
            current: Some(1),
            nr_rt_running: 5,
            waiting: Vec::new(),
        }];
        fill(
            &bytes,
            &monitored,
            &mut Stamps::Monotonic,
            None,
            MonoTime(u64::MAX),
            &mut out,
        );

        assert_eq!(out.len(), 2);
        assert_eq!((out[0].cpu, out[0].current), (1, None));
        assert_eq!(out[0].waiting.len(), 1);
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
    fn kernel_stamps_are_converted_with_the_scans_clock_records() {
        let monitored = CpuSet::parse_list("0", 1).unwrap();
        let mut stamps = Stamps::RqClock(StableStamps::default());
        let read_at = MonoTime(30 * SECOND);
        // The rq clock runs 5 s behind CLOCK_MONOTONIC. The scan starts at monotonic 25 s and
        // meets the reading thread, not switched since (its count is the one read before),
        // 2 ms later, after the victim's record: the start pairs with its arrival.
        let mut bytes = scan_start(25 * SECOND);
        bytes.extend(record(Kind::QT_WAITING, 0, 42, 18 * SECOND, "victim"));
        bytes.extend(clock(20 * SECOND, 25 * SECOND + 2_000_000));
        bytes.extend(record(Kind::QT_WAITING, 0, 43, 0, "unstamped"));
        let mut out = Vec::new();
        fill(
            &bytes,
            &monitored,
            &mut stamps,
            Some(READER_SWITCHES),
            read_at,
            &mut out,
        );
        assert_eq!(
            waiting(&out, 42).queued_at,
            Some(MonoTime(23 * SECOND)),
            "18 s of rq clock is 23 s of CLOCK_MONOTONIC"
        );
        assert_eq!(waiting(&out, 43).queued_at, None);
        assert_eq!(out[0].waiting.len(), 2, "clock records are not tasks");

        // The next scan's pairing is a little off (later read after the switch-in); the
        // victim's wait keeps the time it had, so the detector sees the same wait.
        let mut bytes = scan_start(26 * SECOND + 40_000);
        bytes.extend(clock(21 * SECOND, 26 * SECOND + 90_000));
        bytes.extend(record(Kind::QT_WAITING, 0, 42, 18 * SECOND, "victim"));
        fill(
            &bytes,
            &monitored,
            &mut stamps,
            Some(READER_SWITCHES),
            read_at,
            &mut out,
        );
        assert_eq!(waiting(&out, 42).queued_at, Some(MonoTime(23 * SECOND)));
    }

    #[test]
    fn a_reader_switched_during_the_scan_pairs_with_its_own_reading() {
        let monitored = CpuSet::parse_list("0", 1).unwrap();
        let mut stamps = Stamps::RqClock(StableStamps::default());
        // Its count changed since it was read before the scan: the arrival (rq 20 s) may be
        // newer than the start, so it pairs with the reading at the record (monotonic 25 s).
        let mut bytes = scan_start(24 * SECOND);
        bytes.extend(clock(20 * SECOND, 25 * SECOND));
        bytes.extend(record(Kind::QT_WAITING, 0, 42, 18 * SECOND, "victim"));
        let mut out = Vec::new();
        fill(
            &bytes,
            &monitored,
            &mut stamps,
            Some(READER_SWITCHES - 1),
            MonoTime(30 * SECOND),
            &mut out,
        );
        assert_eq!(waiting(&out, 42).queued_at, Some(MonoTime(23 * SECOND)));
    }

    #[test]
    fn kernel_stamps_without_a_clock_record_count_from_the_first_snapshot() {
        let monitored = CpuSet::parse_list("0", 1).unwrap();
        let mut stamps = Stamps::RqClock(StableStamps::default());
        let mut bytes = scan_start(SECOND);
        bytes.extend(record(Kind::QT_WAITING, 0, 42, 18 * SECOND, "victim"));
        let mut out = Vec::new();
        fill(
            &bytes,
            &monitored,
            &mut stamps,
            Some(READER_SWITCHES),
            MonoTime(SECOND),
            &mut out,
        );
        assert_eq!(waiting(&out, 42).queued_at, None);
    }

    #[test]
    fn counts_real_time_tasks_running_or_waiting() {
        let with_prio = |mut rec: Vec<u8>, prio: i32| {
            let at = offset_of!(Record, prio);
            rec[at..at + 4].copy_from_slice(&prio.to_ne_bytes());
            rec
        };
        let mut bytes = with_prio(record(Kind::QT_CURRENT, 0, 10, 0, "hog"), 89);
        bytes.extend(with_prio(record(Kind::QT_WAITING, 0, 11, 5, "victim"), 94));
        bytes.extend(record(Kind::QT_WAITING, 0, 12, 5, "fair"));
        bytes.extend(with_prio(
            record(Kind::QT_WAITING, 0, 13, 5, "deadline"),
            -1,
        ));
        let mut out = Vec::new();
        fill(
            &bytes,
            &CpuSet::first_n(1),
            &mut Stamps::Monotonic,
            None,
            MonoTime(u64::MAX),
            &mut out,
        );
        assert_eq!((out[0].nr_rt_running, out[0].waiting.len()), (2, 3));
    }
}
