//! Idle detection from /proc/stat: a CPU whose idle time grew since the last poll had an empty
//! run queue in between, so nothing on it can have waited through the whole interval. When
//! every monitored CPU had idle time, a polling backend can skip reading the run queues.

use std::fs::File;
use std::io::Read;

use crate::cpuset::CpuSet;

pub struct IdleDetector {
    buffer: Vec<u8>,
    /// Idle ticks per monitored CPU at the last poll; `None` until first read, so the first
    /// poll counts every CPU as busy.
    last: Vec<Option<u64>>,
    monitored: CpuSet,
}

impl IdleDetector {
    pub fn new(monitored: CpuSet) -> IdleDetector {
        let slots = monitored.max().map_or(0, |max| max as usize + 1);
        IdleDetector {
            buffer: Vec::with_capacity(16 * 1024),
            last: vec![None; slots],
            monitored,
        }
    }

    /// Whether every monitored CPU had idle time since the previous call.
    pub fn all_idle(&mut self) -> std::io::Result<bool> {
        let mut buffer = std::mem::take(&mut self.buffer);
        buffer.clear();
        let read = File::open("/proc/stat").and_then(|mut file| file.read_to_end(&mut buffer));
        let all_idle = read.map(|_| self.update(&String::from_utf8_lossy(&buffer)));
        self.buffer = buffer;
        all_idle
    }

    fn update(&mut self, stat: &str) -> bool {
        // A monitored CPU missing from /proc/stat is offline and has nothing to run.
        let mut all_idle = !self.monitored.is_empty();
        for (cpu, idle) in stat.lines().filter_map(parse_cpu_line) {
            let Some(slot) = self
                .last
                .get_mut(cpu as usize)
                .filter(|_| self.monitored.contains(cpu))
            else {
                continue;
            };
            all_idle &= slot.is_some_and(|before| before != idle);
            *slot = Some(idle);
        }
        all_idle
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

    fn stat(idle0: u64, idle1: u64) -> String {
        format!("cpu  1 2 3 4 5\ncpu0 10 0 5 {idle0} 0 0\ncpu1 10 0 5 {idle1} 0 0\nintr 5\n")
    }

    #[test]
    fn first_poll_is_busy_then_idle_growth_counts() {
        let mut detector = IdleDetector::new(CpuSet::first_n(2));
        assert!(!detector.update(&stat(100, 200)));
        assert!(detector.update(&stat(101, 201)));
        assert!(!detector.update(&stat(102, 201)), "cpu1 ran without idling");
    }

    #[test]
    fn only_monitored_cpus_matter() {
        let mut detector = IdleDetector::new(CpuSet::parse_list("1", 2).unwrap());
        assert!(!detector.update(&stat(100, 200)));
        assert!(detector.update(&stat(100, 201)));
        assert!(!detector.update(&stat(105, 201)));
    }

    #[test]
    fn the_live_file_parses() {
        let mut detector = IdleDetector::new(CpuSet::first_n(1));
        assert!(!detector.all_idle().unwrap());
    }
}
