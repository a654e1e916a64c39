//! The detector: pure logic that turns run-queue snapshots and the time into starving tasks.
//!
//! A task is starving once it has waited on a run queue for the threshold without running.
//! Where the backend knows when the task was queued, that is the start of the wait; otherwise
//! the wait starts at the first snapshot that showed the task waiting, and lasts while later
//! snapshots show it with the same switch count (a changed count proves it ran). Every
//! starving task of every CPU is reported, then again every repeat interval of the same wait
//! (the threshold unless [`Detector::repeating_every`] says otherwise), so a task that stays
//! stuck is reported again, but not at every poll.

use std::collections::HashMap;
use std::time::Duration;

use crate::task::{MonoTime, Pid, RunQueue, WaitingTask};

/// A task that has waited at least the threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Starving {
    pub cpu: u32,
    pub task: WaitingTask,
    pub waited: Duration,
}

/// One wait of one task: identified by the switch count it had while waiting.
#[derive(Clone, Copy, Debug)]
struct Wait {
    switches: u64,
    since: MonoTime,
    /// The next moment this wait is worth reporting: `since + threshold`, then one repeat
    /// interval after each report.
    report_at: MonoTime,
}

pub struct Detector {
    threshold: Duration,
    repeat: Duration,
    waits: HashMap<Pid, Wait>,
    /// The previous poll's map, kept to reuse its allocation.
    spare: HashMap<Pid, Wait>,
}

impl Detector {
    pub fn new(threshold: Duration) -> Detector {
        Detector {
            threshold,
            repeat: threshold,
            waits: HashMap::new(),
            spare: HashMap::new(),
        }
    }

    /// Reports a task that keeps waiting again every `repeat` instead of every threshold: the
    /// C stalld's log-only power mode reports a stuck task at every poll with its growing wait,
    /// and scripts measure that growth.
    pub fn repeating_every(self, repeat: Duration) -> Detector {
        Detector {
            repeat: repeat.max(Duration::from_millis(1)),
            ..self
        }
    }

    /// How long `pid` has been waiting as of `now`, if the last snapshot showed it waiting.
    pub fn waited(&self, pid: Pid, now: MonoTime) -> Option<Duration> {
        self.waits
            .get(&pid)
            .map(|wait| now.saturating_since(wait.since))
    }

    /// Takes the snapshot taken at `now` and appends the tasks due for a report to `starving`.
    pub fn observe(
        &mut self,
        now: MonoTime,
        run_queues: &[RunQueue],
        starving: &mut Vec<Starving>,
    ) {
        std::mem::swap(&mut self.waits, &mut self.spare);
        self.waits.clear();
        for run_queue in run_queues {
            for task in &run_queue.waiting {
                let since = task.queued_at.unwrap_or(now);
                let wait = match self.spare.get(&task.pid) {
                    // The same wait as before: same switch count and, when known, same stamp.
                    Some(old)
                        if old.switches == task.switches
                            && task.queued_at.is_none_or(|at| at == old.since) =>
                    {
                        *old
                    }
                    _ => Wait {
                        switches: task.switches,
                        since,
                        report_at: since.after(self.threshold),
                    },
                };
                let wait = if now >= wait.report_at {
                    starving.push(Starving {
                        cpu: run_queue.cpu,
                        task: *task,
                        waited: now.saturating_since(wait.since),
                    });
                    Wait {
                        report_at: now.after(self.repeat),
                        ..wait
                    }
                } else {
                    wait
                };
                self.waits.insert(task.pid, wait);
            }
        }
    }

    /// The earliest moment a task of the last snapshot becomes due for a report, if it stays
    /// waiting. A task queued after the snapshot cannot be due before `now + threshold`.
    pub fn next_report(&self) -> Option<MonoTime> {
        self.waits.values().map(|wait| wait.report_at).min()
    }
}

/// Keeps, of the starving tasks of each CPU, the one that has waited longest (on a tie, the
/// lowest pid, so that tasks that started waiting together give the same one every time):
/// what the C stalld reports per CPU and check in its power mode.
pub fn keep_longest_per_cpu(starving: &mut Vec<Starving>) {
    starving.sort_by(|a, b| {
        a.cpu
            .cmp(&b.cpu)
            .then(b.waited.cmp(&a.waited))
            .then(a.task.pid.cmp(&b.task.pid))
    });
    starving.dedup_by_key(|task| task.cpu);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::Comm;

    const SECOND: u64 = 1_000_000_000;

    fn task(pid: Pid, switches: u64, queued_at: Option<u64>) -> WaitingTask {
        WaitingTask {
            pid,
            tgid: None,
            comm: Comm::new(b"victim"),
            prio: 94,
            switches,
            queued_at: queued_at.map(MonoTime),
        }
    }

    fn queue(cpu: u32, waiting: Vec<WaitingTask>) -> RunQueue {
        RunQueue {
            cpu,
            current: Some(1),
            nr_rt_running: 1,
            waiting,
        }
    }

    /// A fake backend: a script of snapshots, each with the fake clock's reading.
    fn run(detector: &mut Detector, script: &[(u64, Vec<RunQueue>)]) -> Vec<(u64, Pid, Duration)> {
        let mut reports = Vec::new();
        for (now, snapshot) in script {
            let mut starving = Vec::new();
            detector.observe(MonoTime(*now), snapshot, &mut starving);
            reports.extend(starving.iter().map(|s| (*now, s.task.pid, s.waited)));
        }
        reports
    }

    #[test]
    fn unknown_queue_time_counts_from_first_sighting_at_sub_second_resolution() {
        let mut detector = Detector::new(Duration::from_millis(2500));
        let seen = |now| (now, vec![queue(1, vec![task(42, 7, None)])]);
        let reports = run(
            &mut detector,
            &[
                seen(SECOND),
                seen(2 * SECOND),
                seen(3 * SECOND + SECOND / 2 - 1),
                seen(3 * SECOND + SECOND / 2),
            ],
        );
        assert_eq!(
            reports,
            vec![(3 * SECOND + SECOND / 2, 42, Duration::from_millis(2500))]
        );
    }

    #[test]
    fn a_changed_switch_count_restarts_the_wait() {
        let mut detector = Detector::new(Duration::from_secs(2));
        let reports = run(
            &mut detector,
            &[
                (0, vec![queue(1, vec![task(42, 7, None)])]),
                (SECOND, vec![queue(1, vec![task(42, 8, None)])]),
                (2 * SECOND, vec![queue(1, vec![task(42, 8, None)])]),
                (3 * SECOND, vec![queue(1, vec![task(42, 8, None)])]),
            ],
        );
        assert_eq!(reports, vec![(3 * SECOND, 42, Duration::from_secs(2))]);
    }

    #[test]
    fn a_task_missing_from_one_snapshot_starts_over() {
        let mut detector = Detector::new(Duration::from_secs(2));
        let reports = run(
            &mut detector,
            &[
                (0, vec![queue(1, vec![task(42, 7, None)])]),
                (SECOND, vec![queue(1, vec![])]),
                (2 * SECOND, vec![queue(1, vec![task(42, 7, None)])]),
                (3 * SECOND, vec![queue(1, vec![task(42, 7, None)])]),
            ],
        );
        assert!(reports.is_empty(), "{reports:?}");
    }

    #[test]
    fn exact_queue_times_are_used_as_given() {
        let mut detector = Detector::new(Duration::from_secs(3));
        let queued = 10 * SECOND + 123;
        let reports = run(
            &mut detector,
            &[
                (
                    queued + 3 * SECOND - 1,
                    vec![queue(0, vec![task(7, 1, Some(queued))])],
                ),
                (
                    queued + 3 * SECOND + 4_000_000,
                    vec![queue(0, vec![task(7, 1, Some(queued))])],
                ),
            ],
        );
        assert_eq!(
            reports,
            vec![(
                queued + 3 * SECOND + 4_000_000,
                7,
                Duration::from_millis(3004)
            )]
        );
    }

    #[test]
    fn a_new_queue_stamp_is_a_new_wait_even_with_the_same_switch_count() {
        let mut detector = Detector::new(Duration::from_secs(1));
        let reports = run(
            &mut detector,
            &[
                (0, vec![queue(0, vec![task(7, 1, Some(0))])]),
                (
                    SECOND / 2,
                    vec![queue(0, vec![task(7, 1, Some(SECOND / 2))])],
                ),
                (SECOND, vec![queue(0, vec![task(7, 1, Some(SECOND / 2))])]),
            ],
        );
        assert!(reports.is_empty(), "{reports:?}");
    }

    #[test]
    fn every_starving_task_of_every_cpu_is_reported_once_per_threshold() {
        let mut detector = Detector::new(Duration::from_secs(2));
        let snapshot = vec![
            queue(0, vec![task(1, 0, Some(0)), task(2, 0, Some(0))]),
            queue(1, vec![task(3, 0, Some(0))]),
        ];
        let reports = run(
            &mut detector,
            &[
                (2 * SECOND, snapshot.clone()),
                (3 * SECOND, snapshot.clone()),
                (4 * SECOND, snapshot.clone()),
            ],
        );
        let pids_at = |t| {
            let mut pids: Vec<Pid> = reports.iter().filter(|r| r.0 == t).map(|r| r.1).collect();
            pids.sort();
            pids
        };
        assert_eq!(pids_at(2 * SECOND), vec![1, 2, 3]);
        assert_eq!(pids_at(3 * SECOND), Vec::<Pid>::new());
        assert_eq!(pids_at(4 * SECOND), vec![1, 2, 3]);
        assert!(reports
            .iter()
            .filter(|r| r.0 == 4 * SECOND)
            .all(|r| r.2 == Duration::from_secs(4)));
    }

    #[test]
    fn next_report_is_the_earliest_due_time_of_the_last_snapshot() {
        let mut detector = Detector::new(Duration::from_secs(5));
        assert_eq!(detector.next_report(), None);
        let mut starving = Vec::new();
        detector.observe(
            MonoTime(10 * SECOND),
            &[queue(
                0,
                vec![task(1, 0, Some(7 * SECOND)), task(2, 0, Some(9 * SECOND))],
            )],
            &mut starving,
        );
        assert!(starving.is_empty());
        assert_eq!(detector.next_report(), Some(MonoTime(12 * SECOND)));
        detector.observe(
            MonoTime(11 * SECOND),
            &[queue(0, vec![task(2, 0, Some(9 * SECOND))])],
            &mut starving,
        );
        assert_eq!(detector.next_report(), Some(MonoTime(14 * SECOND)));
    }

    #[test]
    fn a_task_that_moved_cpu_keeps_its_wait() {
        let mut detector = Detector::new(Duration::from_secs(2));
        let reports = run(
            &mut detector,
            &[
                (0, vec![queue(0, vec![task(5, 3, None)])]),
                (2 * SECOND, vec![queue(1, vec![task(5, 3, None)])]),
            ],
        );
        assert_eq!(reports, vec![(2 * SECOND, 5, Duration::from_secs(2))]);
    }

    /// `-l` in power mode: a stuck task is reported at every poll (here every second, the
    /// granularity) with its growing wait, as the C stalld does, and not at polls in between.
    #[test]
    fn a_repeat_interval_reports_a_stuck_task_with_its_growing_wait() {
        let mut detector =
            Detector::new(Duration::from_secs(3)).repeating_every(Duration::from_secs(1));
        let stuck = |now| (now, vec![queue(1, vec![task(42, 7, None)])]);
        let script: Vec<_> = (0..=12).map(|half| stuck(half * SECOND / 2)).collect();
        let reports = run(&mut detector, &script);
        let waits: Vec<(u64, u64)> = reports
            .iter()
            .map(|(now, _, waited)| (now / (SECOND / 2), waited.as_secs()))
            .collect();
        assert_eq!(waits, vec![(6, 3), (8, 4), (10, 5), (12, 6)]);
        assert_eq!(
            detector.waited(42, MonoTime(13 * SECOND / 2)),
            Some(Duration::from_millis(6500))
        );
        assert_eq!(detector.next_report(), Some(MonoTime(7 * SECOND)));
        assert_eq!(detector.waited(7, MonoTime(0)), None);
    }

    /// Without a repeat interval, the same stuck task is reported once per threshold.
    #[test]
    fn by_default_a_stuck_task_is_reported_once_per_threshold() {
        let mut detector = Detector::new(Duration::from_secs(3));
        let script: Vec<_> = (0..=9)
            .map(|s| (s * SECOND, vec![queue(1, vec![task(42, 7, None)])]))
            .collect();
        let at: Vec<u64> = run(&mut detector, &script)
            .iter()
            .map(|r| r.0 / SECOND)
            .collect();
        assert_eq!(at, vec![3, 6, 9]);
    }

    #[test]
    fn per_cpu_only_the_longest_wait_is_kept_ties_by_lowest_pid() {
        let starving = |cpu, pid, ms| Starving {
            cpu,
            task: task(pid, 1, None),
            waited: Duration::from_millis(ms),
        };
        let mut found = vec![
            starving(1, 50, 3_000),
            starving(2, 60, 4_000),
            starving(1, 40, 3_500),
            starving(1, 30, 3_500),
            starving(2, 61, 4_100),
        ];
        keep_longest_per_cpu(&mut found);
        let kept: Vec<(u32, Pid)> = found.iter().map(|s| (s.cpu, s.task.pid)).collect();
        assert_eq!(kept, [(1, 30), (2, 61)]);
        let mut none = Vec::new();
        keep_longest_per_cpu(&mut none);
        assert!(none.is_empty());
    }

    #[test]
    fn two_tasks_that_wait_together_give_one_report_per_check_with_a_growing_wait() {
        // `-l` in power mode: a report every poll (the repeat is the granularity).
        let mut detector =
            Detector::new(Duration::from_secs(3)).repeating_every(Duration::from_secs(1));
        let mut reports = Vec::new();
        for second in 0..7 {
            let snapshot = vec![queue(1, vec![task(42, 7, None), task(41, 3, None)])];
            let mut found = Vec::new();
            detector.observe(MonoTime(second * SECOND), &snapshot, &mut found);
            keep_longest_per_cpu(&mut found);
            reports.extend(found.iter().map(|s| (s.task.pid, s.waited.as_secs())));
        }
        assert_eq!(reports, [(41, 3), (41, 4), (41, 5), (41, 6)]);
    }
}
