//! When to look at the run queues, and the `-v` lines each check prints.
//!
//! A *look* is one backend snapshot (a sched_debug parse, a queue_track scan). Without idle
//! detection (`-N`) each monitored CPU is looked at once every *horizon*: the granularity for
//! sched_debug, the shortest detector threshold for queue_track (its exact queue stamps make
//! one look per threshold enough: a task queued after a look cannot reach the threshold
//! before the next). Known waits add their own wakeups (the detector's next report).
//!
//! With idle detection (the default, as upstream) /proc/stat is sampled every *sample
//! interval*, and a CPU whose idle time grew between two samples cannot hold a task queued
//! before the first of them (its wait floor, see [`super::idle`]). A CPU is due for a look
//! when a task waiting on it may have waited a whole horizon, counted from the later of its
//! last look and its floor; while no CPU is due, nothing is read.
//!
//! Why skipping is safe for queue_track, whose loop sleeps until the next possible threshold
//! crossing: that sleep is only correct if every task that may cross is known. Skipping a
//! look because "every CPU had idle time since the last check" is *not* enough on its own: a
//! task queued just after the last look, behind a CPU that idled just before it, crosses the
//! threshold right after a skipped check one threshold later, and the next look would come a
//! whole threshold late. What makes it safe is the floor: an unknown task on CPU c was queued
//! after max(last look of c, floor of c), so it cannot cross before that moment + threshold,
//! and the daemon wakes exactly then if c stayed busy (a CPU that had idle time in the last
//! sample has a floor at most one sample interval old, and samples come every half horizon,
//! so its earliest crossing is always after the next sample). The look then reads the task's
//! exact stamp and the detector's own wakeup takes over: no crossing is missed or delayed, and
//! an idle machine costs two /proc/stat reads per threshold instead of a task-iterator scan.
//! With the kernel's stamps (queue_track's default) a task that migrates while queued is
//! queued anew on the CPU it moves to, so the floor holds for it too; with stalld's tracepoint
//! stamps it keeps its stamp and may defeat the floor of that CPU (the kernel moves queued
//! tasks mostly to run them at once, and upstream shares the assumption).
//!
//! For sched_debug, which counts a wait from the first look that shows the task, the horizon
//! is the granularity: a task is first seen within one granularity of being queued, and the
//! detector's wakeup reports it exactly one threshold after that, so the worst case is
//! threshold + granularity (plus up to one sample interval) instead of upstream's threshold +
//! 2 × granularity (a hog starting in an idle window made upstream skip the next poll).

use std::time::Duration;

use super::idle::IdleTracker;
use crate::cpuset::CpuSet;
use crate::daemon::log::Logger;
use crate::task::{MonoTime, Pid, RunQueue};

/// How often things happen; see the module documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cadence {
    /// A CPU is looked at once a task on it may have waited this long.
    pub horizon: Duration,
    /// How often /proc/stat is sampled (idle detection only).
    pub sample_every: Duration,
    /// How often a check that finds nothing to look at is reported (`-v`).
    pub check_every: Duration,
}

impl Cadence {
    /// sched_debug: look within a granularity, sample every second, report skips every
    /// granularity (as the C stalld's poll).
    pub fn polling(granularity: Duration) -> Cadence {
        Cadence {
            horizon: granularity,
            sample_every: Duration::from_secs(1).min(granularity),
            check_every: granularity,
        }
    }

    /// queue_track: look before any task can cross `threshold`; every sample is a check.
    pub fn exact(threshold: Duration) -> Cadence {
        let half = (threshold / 2).max(Duration::from_millis(1));
        Cadence {
            horizon: threshold,
            sample_every: half,
            check_every: half,
        }
    }

    /// The longest a healthy loop goes between two checks (see `observe::health`): a busy
    /// CPU is due once per horizon, an idle machine is checked every check interval (and
    /// sampled every sample interval, which adds to the first).
    pub fn longest_gap(&self) -> Duration {
        self.horizon
            .max(self.check_every)
            .saturating_add(self.sample_every)
    }
}

/// What a wakeup does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Take a snapshot; the CPUs in `skip` had idle time in the last sample and are left out.
    Look { skip: Vec<u32> },
    /// Every monitored CPU had idle time since the last check: nothing on any of them can
    /// have waited through it, so no snapshot is taken and known waits are over.
    AllIdle,
    /// Nothing to do now.
    Wait,
}

pub struct Checks {
    cadence: Cadence,
    cpus: Vec<u32>,
    /// `None` with `-N`, or after /proc/stat could not be read.
    idle: Option<IdleTracker>,
    /// When a snapshot last included each CPU of `cpus`.
    seen_at: Vec<Option<MonoTime>>,
    last_check: Option<MonoTime>,
}

impl Checks {
    pub fn new(monitored: CpuSet, cadence: Cadence, idle_detection: bool) -> Checks {
        let cpus: Vec<u32> = monitored.iter().collect();
        Checks {
            cadence,
            seen_at: vec![None; cpus.len()],
            cpus,
            idle: idle_detection.then(|| IdleTracker::new(monitored)),
            last_check: None,
        }
    }

    pub fn cadence(&self) -> Cadence {
        self.cadence
    }

    pub fn idle_detection(&self) -> bool {
        self.idle.is_some()
    }

    /// Samples /proc/stat if idle detection is on. If it cannot be read, idle detection is
    /// turned off (every CPU counts as busy from then on) and the error returned.
    pub fn sample(&mut self, now: MonoTime) -> std::io::Result<()> {
        let Some(idle) = &mut self.idle else {
            return Ok(());
        };
        let result = idle.sample(now);
        if result.is_err() {
            self.idle = None;
        }
        result
    }

    /// Decides what the wakeup at `now` does. `forced`: something needs a fresh snapshot
    /// anyway (a known wait is due for a report, a boost needs attention).
    pub fn plan(&mut self, now: MonoTime, forced: bool) -> Plan {
        if forced || (0..self.cpus.len()).any(|index| self.due(index, now)) {
            let skip: Vec<u32> = match &self.idle {
                Some(idle) => self
                    .cpus
                    .iter()
                    .copied()
                    .filter(|&c| idle.idled_last(c))
                    .collect(),
                None => Vec::new(),
            };
            if skip.len() < self.cpus.len() || self.cpus.is_empty() {
                return Plan::Look { skip };
            }
            // Every CPU had idle time since the previous sample, which is after the last look:
            // nothing is waiting since then.
            self.checked(now);
            return Plan::AllIdle;
        }
        let Some(idle) = &self.idle else {
            return Plan::Wait;
        };
        if self
            .last_check
            .is_some_and(|at| now < at.after(self.cadence.check_every))
        {
            return Plan::Wait;
        }
        let all_idle = idle.all_idled_since_check();
        self.checked(now);
        if all_idle {
            Plan::AllIdle
        } else {
            Plan::Wait
        }
    }

    /// A snapshot planned at `now` was taken, without the CPUs in `skip`.
    pub fn looked(&mut self, now: MonoTime, skip: &[u32]) {
        for (cpu, seen) in self.cpus.iter().zip(&mut self.seen_at) {
            if !skip.contains(cpu) {
                *seen = Some(now);
            }
        }
        self.checked(now);
    }

    /// The next moment [`plan`](Self::plan) may decide something new.
    pub fn next_wakeup(&self, now: MonoTime) -> MonoTime {
        let cpus = self.cpus.iter().enumerate().filter_map(|(index, &cpu)| {
            let idled = self.idle.as_ref().is_some_and(|idle| idle.idled_last(cpu));
            (!idled).then(|| self.due_at(index).unwrap_or(now))
        });
        let idle = self.idle.as_ref().into_iter().flat_map(|idle| {
            [
                Some(
                    idle.last_sample()
                        .unwrap_or(now)
                        .after(self.cadence.sample_every),
                ),
                self.last_check.map(|at| at.after(self.cadence.check_every)),
            ]
        });
        cpus.chain(idle.flatten())
            .min()
            .unwrap_or_else(|| now.after(self.cadence.horizon))
    }

    fn checked(&mut self, now: MonoTime) {
        self.last_check = Some(now);
        if let Some(idle) = &mut self.idle {
            idle.start_check();
        }
    }

    /// When a task on the CPU at `index` of `cpus` may first have waited a whole horizon;
    /// `None`: already may have. (By index: every wakeup asks this of every CPU.)
    fn due_at(&self, index: usize) -> Option<MonoTime> {
        let cpu = self.cpus[index];
        let floor = self.idle.as_ref().and_then(|idle| idle.floor(cpu));
        let since = self.seen_at[index].max(floor)?;
        Some(since.after(self.cadence.horizon))
    }

    fn due(&self, index: usize, now: MonoTime) -> bool {
        let cpu = self.cpus[index];
        if self.idle.as_ref().is_some_and(|idle| idle.idled_last(cpu)) {
            return false;
        }
        self.due_at(index).is_none_or(|at| at <= now)
    }
}

/// The per-check `-v` lines, in the C stalld's words: its power mode's `checking cpu` line, or
/// its per-CPU threads' table (`-M`, `-A`), for each CPU looked at; the idle-detection lines
/// for the others. `waited` tells how long a task has waited (the detector's view).
pub fn print_look(
    logger: &Logger,
    per_cpu_tables: bool,
    idle_detection: bool,
    run_queues: &[RunQueue],
    skip: &[u32],
    waited: impl Fn(Pid) -> Option<Duration>,
) {
    // Every check runs this: without -v, format nothing.
    if !logger.is_verbose() {
        return;
    }
    if idle_detection {
        logger.verbose("some cpus ran, so run-queues should be parsed");
    }
    for &cpu in skip {
        logger.verbose(&format!("cpu {cpu} had idle time! skipping next phase"));
    }
    for run_queue in run_queues {
        if per_cpu_tables {
            logger.verbose_stdout(&waiting_table(run_queue, &waited));
        } else {
            logger.verbose(&format!(
                "checking cpu {} - rt: {} - starving: {}",
                run_queue.cpu,
                run_queue.nr_rt_running,
                run_queue.waiting.len()
            ));
        }
    }
}

pub fn print_all_idle(logger: &Logger) {
    logger.verbose("all CPUs had idle time, skipping parse");
}

/// `CPU N has M waiting tasks`, then `%15s %9d %9d %9d %9ld` per task: name, pid, prio,
/// switches, whole seconds waited.
fn waiting_table(run_queue: &RunQueue, waited: impl Fn(Pid) -> Option<Duration>) -> String {
    use std::fmt::Write;
    let mut text = format!(
        "CPU {} has {} waiting tasks\n",
        run_queue.cpu,
        run_queue.waiting.len()
    );
    for task in &run_queue.waiting {
        let seconds = waited(task.pid).unwrap_or_default().as_secs();
        let _ = writeln!(
            text,
            "{:>15} {:>9} {:>9} {:>9} {:>9}",
            task.comm.to_string(),
            task.pid,
            task.prio,
            task.switches,
            seconds
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::observe::health;
    use crate::task::{Comm, WaitingTask};

    const SECOND: u64 = 1_000_000_000;

    fn at(seconds: f64) -> MonoTime {
        MonoTime((seconds * SECOND as f64) as u64)
    }

    /// /proc/stat for two CPUs with the given idle tick counts.
    fn stat(idle: [u64; 2]) -> String {
        format!("cpu0 1 0 1 {} 0\ncpu1 1 0 1 {} 0\n", idle[0], idle[1])
    }

    /// A fake machine: per second, whether each CPU had idle time. Drives `Checks` through
    /// its own wakeups with a fake clock and returns the moments of each plan.
    struct Machine {
        checks: Checks,
        ticks: [u64; 2],
        /// `busy_from[c]`: the CPU is busy (no idle time) from this second on.
        busy_from: [f64; 2],
    }

    impl Machine {
        fn new(cadence: Cadence, idle: bool, busy_from: [f64; 2]) -> Machine {
            Machine {
                checks: Checks::new(CpuSet::first_n(2), cadence, idle),
                ticks: [100, 100],
                busy_from,
            }
        }

        /// Runs until `end`, returning (time, plan) for every plan that is not `Wait`.
        fn run(&mut self, end: f64) -> Vec<(f64, Plan)> {
            let mut plans = Vec::new();
            let mut now = at(0.0);
            let mut last = at(0.0);
            while now <= at(end) {
                // Idle time accrues on a CPU for every bit of the interval before it got busy.
                for cpu in 0..2 {
                    let busy = at(self.busy_from[cpu]);
                    if last < busy && now > last {
                        self.ticks[cpu] += 1;
                    }
                }
                last = now;
                if let Some(idle) = self.checks.idle.as_mut() {
                    idle.update(now, &stat(self.ticks));
                }
                let plan = self.checks.plan(now, false);
                if let Plan::Look { skip } = &plan {
                    self.checks.looked(now, &skip.clone());
                }
                if plan != Plan::Wait {
                    plans.push((now.0 as f64 / SECOND as f64, plan));
                }
                let next = self.checks.next_wakeup(now);
                assert!(next > now, "no progress at {now:?}");
                now = next;
            }
            plans
        }
    }

    fn looks(plans: &[(f64, Plan)]) -> Vec<f64> {
        plans
            .iter()
            .filter(|(_, p)| matches!(p, Plan::Look { .. }))
            .map(|(t, _)| *t)
            .collect()
    }

    #[test]
    fn without_idle_detection_every_horizon_as_a_poll() {
        let mut machine = Machine::new(Cadence::polling(Duration::from_secs(5)), false, [0.0; 2]);
        assert_eq!(looks(&machine.run(16.0)), vec![0.0, 5.0, 10.0, 15.0]);
    }

    #[test]
    fn an_idle_machine_is_looked_at_once_then_skipped_every_granularity() {
        let never = f64::INFINITY;
        let mut machine = Machine::new(Cadence::polling(Duration::from_secs(5)), true, [never; 2]);
        let plans = machine.run(16.0);
        assert_eq!(
            looks(&plans),
            vec![0.0],
            "the first check looks at everything"
        );
        let skipped: Vec<f64> = plans
            .iter()
            .filter(|(_, p)| *p == Plan::AllIdle)
            .map(|(t, _)| *t)
            .collect();
        assert_eq!(skipped, vec![5.0, 10.0, 15.0]);
    }

    #[test]
    fn a_busy_cpu_is_looked_at_every_granularity_and_idle_ones_are_left_out() {
        let mut machine = Machine::new(
            Cadence::polling(Duration::from_secs(5)),
            true,
            [f64::INFINITY, 0.0],
        );
        let plans = machine.run(11.0);
        assert_eq!(looks(&plans), vec![0.0, 5.0, 10.0]);
        assert_eq!(plans[1].1, Plan::Look { skip: vec![0] });
    }

    /// The worst case of the C stalld: a CPU gets busy just after an idle check; it was
    /// skipped at the next poll and first seen two granularities later. Here it is seen one
    /// granularity after its last idle sample at the latest.
    #[test]
    fn a_cpu_that_gets_busy_mid_window_is_seen_within_a_granularity() {
        for start in [0.2, 1.5, 4.9, 5.1, 7.3, 9.99] {
            let mut machine = Machine::new(
                Cadence::polling(Duration::from_secs(5)),
                true,
                [f64::INFINITY, start],
            );
            let plans = machine.run(30.0);
            let first = plans
                .iter()
                .find(|(t, p)| *t > start && matches!(p, Plan::Look { skip } if !skip.contains(&1)))
                .map(|(t, _)| *t)
                .unwrap_or_else(|| panic!("never looked at after {start}: {plans:?}"));
            assert!(
                first - start <= 5.0 + 1e-9,
                "busy from {start}, first looked at {first}: {plans:?}"
            );
        }
    }

    /// queue_track: an idle machine is never scanned after the first check (two samples per
    /// threshold), and a CPU that gets busy is scanned before any task on it can cross.
    #[test]
    fn queue_track_scans_before_any_possible_crossing() {
        let threshold = Duration::from_secs(4);
        let mut machine = Machine::new(Cadence::exact(threshold), true, [f64::INFINITY; 2]);
        let plans = machine.run(20.0);
        assert_eq!(looks(&plans), vec![0.0]);
        assert_eq!(plans.len(), 1 + 10, "{plans:?}");
        for start in [0.5, 2.0, 3.7, 6.1] {
            let mut machine = Machine::new(Cadence::exact(threshold), true, [f64::INFINITY, start]);
            let plans = machine.run(30.0);
            let scans = looks(&plans);
            // A task queued at `start` + ε crosses at `start` + 4 s + ε: a scan must come
            // before, and the CPU keeps being scanned every threshold while busy.
            let first = scans.iter().copied().find(|&t| t > start).unwrap();
            assert!(first <= start + 4.0, "busy from {start}: scans {scans:?}");
            for pair in scans.windows(2).filter(|w| w[0] > start) {
                assert!(pair[1] - pair[0] <= 4.0 + 1e-9, "{scans:?}");
            }
        }
    }

    #[test]
    fn a_forced_look_skips_cpus_that_idled_and_clears_when_all_did() {
        let mut checks = Checks::new(
            CpuSet::first_n(2),
            Cadence::polling(Duration::from_secs(5)),
            true,
        );
        let sample = |checks: &mut Checks, t: f64, idle: [u64; 2]| {
            checks.idle.as_mut().unwrap().update(at(t), &stat(idle));
        };
        sample(&mut checks, 0.0, [1, 1]);
        assert_eq!(checks.plan(at(0.0), false), Plan::Look { skip: vec![] });
        checks.looked(at(0.0), &[]);
        sample(&mut checks, 1.0, [2, 1]);
        assert_eq!(checks.plan(at(1.0), false), Plan::Wait);
        assert_eq!(checks.plan(at(1.0), true), Plan::Look { skip: vec![0] });
        sample(&mut checks, 2.0, [3, 2]);
        assert_eq!(checks.plan(at(2.0), true), Plan::AllIdle);
    }

    #[test]
    fn the_table_is_upstreams_format() {
        let run_queue = RunQueue {
            cpu: 1,
            current: Some(9),
            nr_rt_running: 2,
            waiting: vec![WaitingTask {
                pid: 42,
                tgid: None,
                comm: Comm::new(b"kworker/1:2\n"),
                prio: 94,
                switches: 7,
                queued_at: None,
            }],
        };
        let table = waiting_table(&run_queue, |pid| {
            (pid == 42).then(|| Duration::from_millis(3900))
        });
        assert_eq!(
            table,
            "CPU 1 has 1 waiting tasks\n\
             kworker/1:2\\x0a        42        94         7         3\n"
        );
        let empty = RunQueue {
            waiting: Vec::new(),
            ..run_queue
        };
        assert_eq!(
            waiting_table(&empty, |_| None),
            "CPU 1 has 0 waiting tasks\n"
        );
    }

    #[test]
    fn the_bound_is_the_watchdog_or_twice_the_longest_gap() {
        let polling = Cadence::polling(Duration::from_secs(5));
        assert_eq!(polling.longest_gap(), Duration::from_secs(6));
        assert_eq!(
            health::bound(Some(Duration::from_secs(60)), polling.longest_gap()),
            Duration::from_secs(60)
        );
        assert_eq!(
            health::bound(None, polling.longest_gap()),
            health::DEFAULT_BOUND
        );
        // A one-hour threshold with exact stamps: checks may be an hour apart.
        let exact = Cadence::exact(Duration::from_secs(3600));
        assert_eq!(
            health::bound(Some(Duration::from_secs(60)), exact.longest_gap()),
            Duration::from_secs(2 * 5400)
        );
        // A watchdog longer than that: the operator's bound.
        assert_eq!(
            health::bound(Some(Duration::from_secs(600)), polling.longest_gap()),
            Duration::from_secs(600)
        );
    }
}
