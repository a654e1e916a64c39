//! What the daemon knows about itself, for the metrics and status listeners.
//!
//! The loop owns a [`Telemetry`] and updates it from every event and check; after each update
//! it publishes an immutable [`Snapshot`] through an [`ArcSwap`], whose stores and loads are
//! lock-free. Listener threads only load snapshots, so a listener that is slow, flooded or
//! preempted (it is SCHED_OTHER, and may share a CPU with the very hog stalld fights) can never
//! hold anything the loop waits for. prometheus-client's own metric types are not used for the
//! state because their histograms and families sit behind locks that a scrape holds while it
//! encodes; its encoder is used for the exposition ([`super::metrics`]).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use serde_json::Value;

use super::health::Health;
use crate::config::{BoostPolicy, Config};
pub use crate::daemon::log::unix_seconds;
use crate::daemon::log::{Drops, EventRecord, Subscriber};
use crate::event::{Event, EventKind};
use crate::task::Pid;

/// How many events `stalld status` shows.
pub const RECENT_EVENTS: usize = 100;

/// Upper bounds of `stalld_starvation_wait_seconds`: from sub-second thresholds to minutes.
pub const WAIT_BUCKETS: &[f64] = &[
    0.01, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];
/// Upper bounds of `stalld_detection_delay_seconds`, the wait beyond the threshold: from the
/// tenth of a millisecond queue_track detects in to the seconds a polling backend may take.
pub const DELAY_BUCKETS: &[f64] = &[
    1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Upper bounds of `stalld_check_duration_seconds`: a queue_track check takes tens of
/// microseconds, a sched_debug one on a large machine up to a second.
pub const CHECK_BUCKETS: &[f64] = &[
    1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0,
];

/// A classic histogram: a count per bucket (the last is +Inf), the sum and the count.
#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    pub bounds: &'static [f64],
    pub counts: Vec<u64>,
    pub sum: f64,
    pub count: u64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
            count: 0,
        }
    }

    pub fn observe(&mut self, value: f64) {
        let bucket = self
            .bounds
            .iter()
            .position(|&bound| value <= bound)
            .unwrap_or(self.bounds.len());
        self.counts[bucket] += 1;
        self.sum += value;
        self.count += 1;
    }

    /// `(upper bound, count in that bucket)`, the last bound infinite.
    pub fn buckets(&self) -> Vec<(f64, u64)> {
        self.bounds
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(self.counts.iter().copied())
            .collect()
    }
}

/// A task holding a boost right now.
#[derive(Clone, Debug, PartialEq)]
pub struct BoostedTask {
    pub pid: Pid,
    pub comm: String,
    pub cpu: u32,
    pub policy: &'static str,
    /// Wall-clock seconds since the epoch.
    pub since: f64,
    pub until: f64,
}

/// A task whose restore failed [`crate::boost::RESTORE_ATTEMPTS`] times: it may hold the
/// boost still, and the daemon keeps retrying.
#[derive(Clone, Debug, PartialEq)]
pub struct HeldTask {
    pub pid: Pid,
    pub comm: String,
    pub cpu: u32,
    /// The boost policy it may still hold.
    pub policy: &'static str,
    /// Wall-clock seconds since the epoch: when it was boosted, and when it was found held.
    pub boosted_at: f64,
    pub held_since: f64,
    /// Why the last attempt failed.
    pub error: String,
}

/// Everything the listeners may show, as of one moment of the loop.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub version: &'static str,
    pub pid: u32,
    pub started_at: f64,
    pub backend: Option<&'static str>,
    pub stamps: Option<&'static str>,
    /// `stalld_mode_info`'s `boost`: the boost policy, or `log_only` (`-l`: never boosts).
    pub boost_mode: &'static str,
    /// The starvation threshold, in seconds.
    pub threshold: f64,
    pub config: Arc<Value>,
    /// `stalld_starving_events_total{cpu}`.
    pub starving: BTreeMap<u32, u64>,
    /// `stalld_boosts_total{cpu,policy,result}`.
    pub boosts: BTreeMap<(u32, &'static str, &'static str), u64>,
    /// `stalld_restores_total{result}`.
    pub restores: BTreeMap<&'static str, u64>,
    /// Every event by kind.
    pub events: BTreeMap<&'static str, u64>,
    pub waits: BTreeMap<u32, Histogram>,
    /// `stalld_detection_delay_seconds{cpu}`: how long past the threshold starving tasks were
    /// found.
    pub delays: BTreeMap<u32, Histogram>,
    pub checks: Histogram,
    pub boosted: BTreeMap<Pid, BoostedTask>,
    /// Tasks whose restore keeps failing (`stalld_held_tasks`).
    pub held: BTreeMap<Pid, HeldTask>,
    /// `stalld_boosted_cpu_seconds_total{cpu}`: the CPU time boosted tasks received, by the
    /// CPU they starved on.
    pub boosted_cpu: BTreeMap<u32, f64>,
    pub rt_throttling_disabled: bool,
    /// `--stand_aside` found these other stallds boosting: this one boosts nothing.
    pub standing_aside: Option<String>,
    pub last_event_at: Option<f64>,
    /// `stalld_checks_failed_total`: checks whose snapshot failed (`check_failed`).
    pub checks_failed: u64,
    /// The last successful check, in Unix time (`stalld_last_check_timestamp_seconds`).
    pub last_check_at: Option<f64>,
    /// Why the last check failed, while no check has succeeded since.
    pub last_check_error: Option<String>,
    /// The last successful check on CLOCK_MONOTONIC, and the bound: the listeners compare
    /// it with their own reading (no step of the wall clock makes a stale loop look live).
    pub health: Health,
    /// The last [`RECENT_EVENTS`] events, as their JSON lines.
    pub recent: VecDeque<Arc<Value>>,
    pub drops: Arc<Drops>,
}

impl Snapshot {
    /// A boost is over: counted by `result` (unless it was already), with the CPU time it
    /// gave its task.
    fn ended(
        &mut self,
        result: Option<&'static str>,
        cpu: u32,
        tid: Pid,
        cpu_time: Option<Duration>,
    ) {
        if let Some(result) = result {
            debug_assert!(RESTORE_RESULTS.contains(&result), "{result} is not seeded");
            *self.restores.entry(result).or_default() += 1;
        }
        self.boosted.remove(&tid);
        self.held.remove(&tid);
        if let Some(cpu_time) = cpu_time {
            *self.boosted_cpu.entry(cpu).or_default() += cpu_time.as_secs_f64();
        }
    }

    /// Boosts with `result` (`ok`, `failed`, `fifo_fallback`) on every CPU.
    pub fn boosts_with(&self, result: &str) -> u64 {
        self.boosts
            .iter()
            .filter(|((_, _, r), _)| *r == result)
            .map(|(_, n)| n)
            .sum()
    }

    /// The one-line summary for systemd's `STATUS=` and the text status.
    pub fn summary(&self) -> String {
        let total = |result: &str| self.boosts_with(result);
        format!(
            "{} backend ({} stamps); {} boosted now{}; {} starving events, {} boosts, {} failed",
            self.backend.unwrap_or("no"),
            self.stamps.unwrap_or("no"),
            self.boosted.len(),
            match self.held.len() {
                0 => String::new(),
                held => format!(", {held} held (restore failing)"),
            },
            self.starving.values().sum::<u64>(),
            total("ok"),
            total("failed"),
        )
    }
}

#[derive(Debug)]
pub struct Telemetry {
    state: Snapshot,
    boost_duration: Duration,
    published: Arc<ArcSwap<Snapshot>>,
    /// Counted since the last publication.
    changed: bool,
}

impl Telemetry {
    /// Every label set the counters and histograms can take for `config` exists from the
    /// start, at 0 (each monitored CPU, each result, each event kind): a rate or an
    /// `increase()` then sees the first starvation or failure, not only the second.
    pub fn new(config: &Config, drops: Arc<Drops>) -> Telemetry {
        let state = Snapshot {
            version: env!("CARGO_PKG_VERSION"),
            pid: std::process::id(),
            started_at: unix_seconds(SystemTime::now()),
            backend: None,
            stamps: None,
            boost_mode: config
                .boosting()
                .map_or("log_only", |boost| policy_label(boost.policy)),
            threshold: config.detection.threshold.as_secs_f64(),
            config: Arc::new(config.to_json()),
            starving: per_cpu(config, || 0),
            boosts: config
                .cpus
                .iter()
                .flat_map(|cpu| {
                    boost_label_sets(config.boost.policy)
                        .iter()
                        .map(move |&(policy, result)| ((cpu, policy, result), 0))
                })
                .collect(),
            restores: RESTORE_RESULTS.iter().map(|&result| (result, 0)).collect(),
            events: EventKind::ALL.iter().map(|kind| (kind.name(), 0)).collect(),
            waits: per_cpu(config, || Histogram::new(WAIT_BUCKETS)),
            delays: per_cpu(config, || Histogram::new(DELAY_BUCKETS)),
            checks: Histogram::new(CHECK_BUCKETS),
            boosted: BTreeMap::new(),
            held: BTreeMap::new(),
            boosted_cpu: per_cpu(config, || 0.0),
            rt_throttling_disabled: false,
            standing_aside: None,
            last_event_at: None,
            checks_failed: 0,
            last_check_at: None,
            last_check_error: None,
            health: Health::new(crate::clock::now(), super::health::DEFAULT_BOUND),
            recent: VecDeque::with_capacity(RECENT_EVENTS),
            drops,
        };
        Telemetry {
            published: Arc::new(ArcSwap::from_pointee(state.clone())),
            state,
            boost_duration: config.boost.duration,
            changed: false,
        }
    }

    /// What the listeners read.
    pub fn published(&self) -> Arc<ArcSwap<Snapshot>> {
        Arc::clone(&self.published)
    }

    pub fn current(&self) -> &Snapshot {
        &self.state
    }

    /// After daemonizing the pid is the daemon's.
    pub fn set_pid(&mut self, pid: u32) {
        self.state.pid = pid;
        self.publish();
    }

    pub fn set_backend(&mut self, backend: &'static str, stamps: &'static str) {
        self.state.backend = Some(backend);
        self.state.stamps = Some(stamps);
        self.publish();
    }

    /// One check of the run queues took `took`.
    pub fn checked(&mut self, took: Duration) {
        self.state.checks.observe(took.as_secs_f64());
        self.changed = true;
    }

    /// A check succeeded; `health` is the loop's record with it.
    pub fn check_succeeded(&mut self, health: Health) {
        self.state.last_check_at = Some(unix_seconds(SystemTime::now()));
        self.state.last_check_error = None;
        self.state.health = health;
        self.changed = true;
    }

    /// The loop's record of its checks, before its first.
    pub fn set_health(&mut self, health: Health) {
        self.state.health = health;
        self.publish();
    }

    /// Counts `event` (rendered as `json`, at `at`); published by the next
    /// [`Telemetry::publish_changes`].
    pub fn record(&mut self, event: &Event, json: Arc<Value>, at: SystemTime) {
        let now = unix_seconds(at);
        let state = &mut self.state;
        *state.events.entry(event.kind().name()).or_default() += 1;
        state.last_event_at = Some(now);
        if state.recent.len() == RECENT_EVENTS {
            state.recent.pop_front();
        }
        state.recent.push_back(json);
        match event {
            Event::Starved { cpu, waited, .. } => {
                *state.starving.entry(*cpu).or_default() += 1;
                state
                    .waits
                    .entry(*cpu)
                    .or_insert_with(|| Histogram::new(WAIT_BUCKETS))
                    .observe(waited.as_secs_f64());
                state
                    .delays
                    .entry(*cpu)
                    .or_insert_with(|| Histogram::new(DELAY_BUCKETS))
                    .observe((waited.as_secs_f64() - state.threshold).max(0.0));
            }
            Event::Boosted {
                cpu, task, policy, ..
            } => {
                *state
                    .boosts
                    .entry((*cpu, policy_label(*policy), "ok"))
                    .or_default() += 1;
                state.boosted.insert(
                    task.tid,
                    BoostedTask {
                        pid: task.tid,
                        comm: task.comm.to_string(),
                        cpu: *cpu,
                        policy: policy.sched_name(),
                        since: now,
                        until: now + self.boost_duration.as_secs_f64(),
                    },
                );
            }
            Event::BoostFailed { cpu, policy, .. } => {
                *state
                    .boosts
                    .entry((*cpu, policy_label(*policy), "failed"))
                    .or_default() += 1;
            }
            Event::FifoFallback { cpu, tid } => {
                *state
                    .boosts
                    .entry((*cpu, policy_label(BoostPolicy::Deadline), "fifo_fallback"))
                    .or_default() += 1;
                if let Some(boosted) = state.boosted.get_mut(tid) {
                    boosted.policy = BoostPolicy::Fifo.sched_name();
                }
            }
            Event::Restored {
                cpu, tid, cpu_time, ..
            } => state.ended(Some("restored"), *cpu, *tid, *cpu_time),
            Event::BoostWithoutCpu { cpu, tid, .. } => {
                state.ended(Some("no_cpu"), *cpu, *tid, Some(Duration::ZERO))
            }
            Event::ExitedWhileBoosted { cpu, tid, cpu_time } => {
                state.ended(Some("exited"), *cpu, *tid, *cpu_time)
            }
            Event::ChangedMeanwhile {
                cpu, tid, cpu_time, ..
            } => state.ended(Some("changed_meanwhile"), *cpu, *tid, *cpu_time),
            Event::RestoreFailed {
                cpu,
                tid,
                error,
                retry: Some(_),
                ..
            } => {
                *state.restores.entry("failed").or_default() += 1;
                let boosted = state.boosted.remove(tid);
                state.held.insert(
                    *tid,
                    HeldTask {
                        pid: *tid,
                        comm: boosted.as_ref().map(|b| b.comm.clone()).unwrap_or_default(),
                        cpu: *cpu,
                        policy: boosted.as_ref().map_or("", |b| b.policy),
                        boosted_at: boosted.as_ref().map_or(now, |b| b.since),
                        held_since: now,
                        error: error.clone(),
                    },
                );
            }
            Event::RestoreFailed {
                cpu,
                tid,
                retry: None,
                cpu_time,
                ..
            } => {
                // The last attempt, at exit: a held task was counted when it was found held.
                let result = (!state.held.contains_key(tid)).then_some("failed");
                state.ended(result, *cpu, *tid, *cpu_time);
            }
            Event::RtThrottlingDisabled { .. } => state.rt_throttling_disabled = true,
            Event::RtThrottlingRestored { .. } => state.rt_throttling_disabled = false,
            Event::StandingAside { others } => state.standing_aside = Some(others.clone()),
            Event::CheckFailed { error, .. } => {
                state.checks_failed += 1;
                state.last_check_error = Some(error.clone());
            }
            _ => {}
        }
        self.changed = true;
    }

    /// Publishes the state if it changed since the last time: a copy of it, so once per
    /// wakeup of the loop, not per event.
    pub fn publish_changes(&mut self) {
        if std::mem::take(&mut self.changed) {
            self.publish();
        }
    }

    fn publish(&self) {
        self.published.store(Arc::new(self.state.clone()));
    }
}

/// A series per monitored CPU, each starting at `zero()`.
fn per_cpu<T>(config: &Config, zero: impl Fn() -> T) -> BTreeMap<u32, T> {
    config.cpus.iter().map(|cpu| (cpu, zero())).collect()
}

/// `stalld_restores_total`'s `result` values.
pub const RESTORE_RESULTS: &[&str] = &[
    "restored",
    "no_cpu",
    "exited",
    "changed_meanwhile",
    "failed",
];

/// The `(policy, result)` label pairs of `stalld_boosts_total` under the configured `policy`:
/// a DEADLINE boost fails as DEADLINE, falls back to FIFO, or (a task whose DEADLINE boost
/// gave it no CPU before) is boosted FIFO at once; a FIFO one (`-F`) is FIFO throughout.
fn boost_label_sets(policy: BoostPolicy) -> &'static [(&'static str, &'static str)] {
    match policy {
        BoostPolicy::Deadline => &[
            ("deadline", "ok"),
            ("deadline", "failed"),
            ("deadline", "fifo_fallback"),
            ("fifo", "ok"),
        ],
        BoostPolicy::Fifo => &[("fifo", "ok"), ("fifo", "failed")],
    }
}

/// The loop's telemetry hears every event from the main thread's logger.
impl Subscriber for Telemetry {
    fn on_event(&mut self, event: &EventRecord) {
        self.record(event.event, Arc::clone(event.json()), event.at);
    }
}

/// The `policy` label of the boost metrics.
fn policy_label(policy: BoostPolicy) -> &'static str {
    match policy {
        BoostPolicy::Deadline => "deadline",
        BoostPolicy::Fifo => "fifo",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::TaskName;
    use crate::task::Comm;

    fn config() -> Config {
        match crate::cli::parse(["-t", "5", "-d", "2"]) {
            Ok(crate::cli::Command::Run(config)) => *config,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn histogram_buckets_count_and_sum() {
        let mut histogram = Histogram::new(&[1.0, 2.0]);
        for value in [0.5, 1.0, 1.5, 9.0] {
            histogram.observe(value);
        }
        assert_eq!(
            histogram.buckets(),
            vec![(1.0, 2), (2.0, 1), (f64::INFINITY, 1)]
        );
        assert_eq!((histogram.count, histogram.sum), (4, 12.0));
    }

    #[test]
    fn boosts_are_listed_until_they_end_and_counted_by_outcome() {
        let mut telemetry = Telemetry::new(&config(), Arc::default());
        let published = telemetry.published();
        let task = TaskName {
            tid: 42,
            tgid: Some(40),
            comm: Comm::new(b"victim"),
        };
        let json = Arc::new(Value::Null);
        telemetry.record(
            &Event::Starved {
                cpu: 1,
                task,
                waited: Duration::from_millis(5_100),
                culprit: None,
            },
            json.clone(),
            SystemTime::now(),
        );
        telemetry.record(
            &Event::Boosted {
                cpu: 1,
                task,
                process: None,
                policy: BoostPolicy::Deadline,
            },
            json.clone(),
            SystemTime::now(),
        );
        telemetry.record(
            &Event::FifoFallback { cpu: 1, tid: 42 },
            json.clone(),
            SystemTime::now(),
        );
        // Nothing is visible before the loop publishes.
        assert!(published.load_full().boosted.is_empty());
        telemetry.publish_changes();
        let during = published.load_full();
        assert_eq!(during.starving.get(&1), Some(&1));
        assert_eq!(during.boosts.get(&(1, "deadline", "ok")), Some(&1));
        assert_eq!(
            during.boosts.get(&(1, "deadline", "fifo_fallback")),
            Some(&1)
        );
        let boosted = &during.boosted[&42];
        assert_eq!((boosted.cpu, boosted.policy), (1, "SCHED_FIFO"));
        assert!((boosted.until - boosted.since - 2.0).abs() < 1e-6);
        assert_eq!(during.waits[&1].count, 1);
        assert_eq!(
            during.summary(),
            "no backend (no stamps); 1 boosted now; 1 starving events, 1 boosts, 0 failed"
        );

        telemetry.record(
            &Event::Restored {
                cpu: 1,
                tid: 42,
                policy: 0,
                cpu_time: Some(Duration::from_micros(25)),
                undone: None,
            },
            json,
            SystemTime::now(),
        );
        telemetry.publish_changes();
        let after = published.load_full();
        assert!(after.boosted.is_empty());
        assert_eq!(after.restores.get("restored"), Some(&1));
        assert_eq!(after.events.get("boosted"), Some(&1));
        assert_eq!(after.recent.len(), 4);
        // The earlier snapshot is unchanged: readers keep a consistent view.
        assert_eq!(during.boosted.len(), 1);
    }

    #[test]
    fn only_the_last_events_are_kept() {
        let mut telemetry = Telemetry::new(&config(), Arc::default());
        for i in 0..RECENT_EVENTS + 5 {
            telemetry.record(
                &Event::Stopping,
                Arc::new(Value::from(i)),
                SystemTime::now(),
            );
        }
        let recent = &telemetry.current().recent;
        assert_eq!(recent.len(), RECENT_EVENTS);
        assert_eq!(*recent[0], Value::from(5));
    }

    #[test]
    fn a_held_task_is_listed_until_its_restore_works_and_cpu_time_is_summed_per_cpu() {
        let mut telemetry = Telemetry::new(&config(), Arc::default());
        let task = |tid| TaskName {
            tid,
            tgid: Some(tid),
            comm: Comm::new(b"victim"),
        };
        let json = Arc::new(Value::Null);
        let mut record = |event: Event| telemetry.record(&event, json.clone(), SystemTime::now());
        for tid in [42, 43, 44] {
            record(Event::Boosted {
                cpu: 1,
                task: task(tid),
                process: None,
                policy: BoostPolicy::Deadline,
            });
        }
        record(Event::RestoreFailed {
            cpu: 1,
            tid: 42,
            error: "e".into(),
            retry: Some(Duration::from_millis(1_600)),
            cpu_time: None,
        });
        record(Event::BoostWithoutCpu {
            cpu: 1,
            tid: 43,
            policy: 1,
        });
        record(Event::Restored {
            cpu: 1,
            tid: 44,
            policy: 1,
            cpu_time: Some(Duration::from_micros(20)),
            undone: None,
        });
        let state = telemetry.current().clone();
        assert_eq!(state.held.keys().collect::<Vec<_>>(), [&42]);
        assert_eq!(state.held[&42].comm, "victim");
        assert!(state.boosted.is_empty());
        assert_eq!(state.restores.get("failed"), Some(&1));
        assert_eq!(state.restores.get("no_cpu"), Some(&1));
        assert!(state
            .summary()
            .contains("0 boosted now, 1 held (restore failing)"));
        // Restored at last: no longer held, its CPU time counted, not a second failure.
        let mut record = |event: Event| telemetry.record(&event, json.clone(), SystemTime::now());
        record(Event::Restored {
            cpu: 1,
            tid: 42,
            policy: 1,
            cpu_time: Some(Duration::from_micros(30)),
            undone: None,
        });
        let state = telemetry.current();
        assert!(state.held.is_empty());
        assert_eq!(state.restores.get("restored"), Some(&2));
        assert!((state.boosted_cpu[&1] - 50e-6).abs() < 1e-12);
        // At exit, a held task's last failure is not counted twice.
        let mut telemetry = Telemetry::new(&config(), Arc::default());
        let mut record = |event: Event| telemetry.record(&event, json.clone(), SystemTime::now());
        for retry in [Some(Duration::from_secs(1)), None] {
            record(Event::RestoreFailed {
                cpu: 1,
                tid: 42,
                error: "e".into(),
                retry,
                cpu_time: Some(Duration::from_micros(7)),
            });
        }
        assert_eq!(telemetry.current().restores.get("failed"), Some(&1));
        assert!(telemetry.current().held.is_empty());
    }
}
