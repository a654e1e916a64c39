//! Idle detection from /proc/stat. A CPU whose idle time grew between two samples had an empty
//! run queue at some moment in between, so no task waiting on it now can have been queued
//! before the earlier sample: that moment is the CPU's *wait floor*. [`super::checks`] turns
//! floors into "this CPU need not be looked at yet".
//!
//! A real-time task throttled by RT throttling also lets the idle task run; stalld turns RT
//! throttling off unless `-l`, as the C stalld does, and shares its blind spot otherwise.

use std::fs::File;
use std::io::Read;

use crate::cpuset::CpuSet;
use crate::task::MonoTime;

#[derive(Clone, Copy, Debug, Default)]
struct CpuIdle {
    /// Idle ticks at the last sample; `None` until first read, so the first sample counts the
    /// CPU as busy.
    ticks: Option<u64>,
    /// Nothing waiting on the CPU now was queued before this moment (`None`: no idle time seen
    /// yet, so a wait may be arbitrarily old).
    floor: Option<MonoTime>,
    /// Had idle time between the last two samples.
    idled_last: bool,
    /// Had idle time since [`IdleTracker::start_check`].
    idled_since_check: bool,
}

pub struct IdleTracker {
    buffer: Vec<u8>,
    /// Indexed by CPU number; only monitored CPUs are kept up to date.
    cpus: Vec<CpuIdle>,
    monitored: CpuSet,
    last_sample: Option<MonoTime>,
}

impl IdleTracker {
    pub fn new(monitored: CpuSet) -> IdleTracker {
        let slots = monitored.max().map_or(0, |max| max as usize + 1);
        IdleTracker {
            buffer: Vec::with_capacity(16 * 1024),
            cpus: vec![CpuIdle::default(); slots],
            monitored,
            last_sample: None,
        }
    }

    /// Reads /proc/stat as of `now`.
    pub fn sample(&mut self, now: MonoTime) -> std::io::Result<()> {
        let mut buffer = std::mem::take(&mut self.buffer);
        buffer.clear();
        let read = File::open("/proc/stat").and_then(|mut file| file.read_to_end(&mut buffer));
        if read.is_ok() {
            self.update(now, &String::from_utf8_lossy(&buffer));
        }
        self.buffer = buffer;
        read.map(drop)
    }

    /// Takes the text of /proc/stat read at `now`.
    pub fn update(&mut self, now: MonoTime, stat: &str) {
        let previous = self.last_sample.replace(now);
        let mut present = vec![false; self.cpus.len()];
        for (cpu, ticks) in stat.lines().filter_map(parse_cpu_line) {
            let index = cpu as usize;
            if index >= self.cpus.len() || !self.monitored.contains(cpu) {
                continue;
            }
            present[index] = true;
            let slot = &mut self.cpus[index];
            // Strictly more: a counter that went backwards (a kernel accounting glitch) proves
            // nothing, and busy is the safe guess.
            let idled = slot.ticks.is_some_and(|before| ticks > before);
            slot.ticks = Some(ticks);
            slot.idled_last = idled;
            if idled {
                slot.floor = previous;
                slot.idled_since_check = true;
            }
        }
        // A monitored CPU missing from /proc/stat is offline: nothing waits there.
        for cpu in self.monitored.iter() {
            if let Some(slot) = self.cpus.get_mut(cpu as usize) {
                if !present[cpu as usize] {
                    *slot = CpuIdle {
                        ticks: None,
                        floor: Some(now),
                        idled_last: true,
                        idled_since_check: true,
                    };
                }
            }
        }
    }

    pub fn last_sample(&self) -> Option<MonoTime> {
        self.last_sample
    }

    /// Whether `cpu` had idle time between the last two samples.
    pub fn idled_last(&self, cpu: u32) -> bool {
        self.slot(cpu).idled_last
    }

    /// The earliest moment anything now waiting on `cpu` can have been queued, if known.
    pub fn floor(&self, cpu: u32) -> Option<MonoTime> {
        self.slot(cpu).floor
    }

    /// Whether every monitored CPU had idle time since the last [`start_check`](Self::start_check).
    pub fn all_idled_since_check(&self) -> bool {
        !self.monitored.is_empty()
            && self
                .monitored
                .iter()
                .all(|cpu| self.slot(cpu).idled_since_check)
    }

    pub fn start_check(&mut self) {
        for slot in &mut self.cpus {
            slot.idled_since_check = false;
        }
    }

    fn slot(&self, cpu: u32) -> CpuIdle {
        self.cpus.get(cpu as usize).copied().unwrap_or_default()
    }
}

/// `cpuN user nice system idle ...` → (N, idle). The aggregate `cpu` line has no number.
fn parse_cpu_line(line: &str) -> Option<(u32, u64)> {
    let mut fields = line.split_ascii_whitespace();
    let cpu = fields.next()?.strip_prefix("cpu")?.parse().ok()?;
    let idle = fields.nth(3)?.parse().ok()?;
    Some((cpu, idle))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    fn stat(idle0: u64, idle1: u64) -> String {
        format!("cpu  1 2 3 4 5\ncpu0 10 0 5 {idle0} 0 0\ncpu1 10 0 5 {idle1} 0 0\nintr 5\n")
    }

    #[test]
    fn first_sample_is_busy_then_idle_growth_sets_the_floor() {
        let mut idle = IdleTracker::new(CpuSet::first_n(2));
        idle.update(MonoTime(0), &stat(100, 200));
        assert!(!idle.idled_last(0) && idle.floor(0).is_none());
        idle.update(MonoTime(SECOND), &stat(101, 200));
        assert!(idle.idled_last(0) && !idle.idled_last(1));
        assert_eq!(idle.floor(0), Some(MonoTime(0)));
        assert_eq!(idle.floor(1), None);
        idle.update(MonoTime(2 * SECOND), &stat(101, 199));
        assert!(!idle.idled_last(0), "no growth: busy");
        assert!(
            !idle.idled_last(1),
            "a counter going backwards is not idle time"
        );
        assert_eq!(idle.floor(0), Some(MonoTime(0)), "the floor stays");
    }

    #[test]
    fn all_idled_since_check_needs_every_monitored_cpu() {
        let mut idle = IdleTracker::new(CpuSet::parse_list("1", 2).unwrap());
        idle.update(MonoTime(0), &stat(100, 200));
        idle.start_check();
        idle.update(MonoTime(SECOND), &stat(100, 201));
        idle.update(MonoTime(2 * SECOND), &stat(105, 201));
        assert!(idle.all_idled_since_check(), "cpu0 is not monitored");
        idle.start_check();
        idle.update(MonoTime(3 * SECOND), &stat(106, 201));
        assert!(!idle.all_idled_since_check());
    }

    #[test]
    fn an_offline_cpu_counts_as_idle() {
        let mut idle = IdleTracker::new(CpuSet::first_n(3));
        idle.update(MonoTime(SECOND), &stat(100, 200));
        assert!(idle.idled_last(2));
        assert_eq!(idle.floor(2), Some(MonoTime(SECOND)));
    }

    #[test]
    fn the_live_file_parses() {
        let mut idle = IdleTracker::new(CpuSet::first_n(1));
        idle.sample(MonoTime(1)).unwrap();
        assert_eq!(idle.last_sample(), Some(MonoTime(1)));
        assert!(!idle.idled_last(0));
    }
}
