//! The loop: a step (`Monitor::tick`) at a given moment looks at the run queues when a check
//! is due, hands what starves to the booster, and says when the next step is due; one sleep
//! between steps. Driven by a fake clock in its tests.
//!
//! The loop sleeps until the next moment something can happen: a boost needs attention, a known
//! waiting task reaches the threshold, or (for a backend that cannot see queue times) the next
//! poll.

mod checks;
mod culprit;
mod idle;

use std::cell::RefCell;
use std::time::Duration;

use super::log::Logger;
use super::observe::{health, notify, telemetry};
use super::process::signals;
use super::restore::guardian;
use crate::backend::Backend;
use crate::boost::eligibility::{self, Decision, Skip};
use crate::boost::{ActiveBoost, Booster, Inspection, Restore, Step, RESTORE_ATTEMPTS};
use crate::clock::Clock;
use crate::config::Config;
use crate::detect::{Detector, Starving};
use crate::event::{Event, Ignored, TaskName};
use crate::procfs;
use crate::task::{Comm, MonoTime, Pid, RunQueue, WaitingTask};

/// Longest pause between retries when the backend keeps failing.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);

/// When to look at the run queues (see `checks`): every granularity for a polling backend, and
/// before the first possible threshold crossing (the earlier detector's) with exact stamps.
fn check_cadence(config: &Config, exact: bool) -> checks::Checks {
    let detection = &config.detection;
    let cadence = if exact {
        checks::Cadence::exact(detection.first_report())
    } else {
        checks::Cadence::polling(detection.granularity)
    };
    checks::Checks::new(config.cpus.clone(), cadence, detection.idle_detection)
}

pub(super) struct Monitor<'a> {
    config: &'a Config,
    logger: &'a Logger,
    /// Owned by `run`, which the logger also hands every event.
    telemetry: &'a RefCell<telemetry::Telemetry>,
    /// Read inside a step only where a later moment matters (a snapshot's time, a check's
    /// duration); the step itself is given its `now`.
    clock: &'a dyn Clock,
    guardian: Option<guardian::Guardian>,
    detector: Detector,
    early: Option<Detector>,
    checks: checks::Checks,
    own_pid: Pid,
    notifier: notify::Notifier,
    /// Snapshots that failed in a row.
    failures: u32,
    /// When a check last succeeded; too long ago, and the watchdog is no longer pinged.
    health: health::Health,
    /// Reused from step to step.
    run_queues: Vec<RunQueue>,
    starving: Vec<Starving>,
}

impl<'a> Monitor<'a> {
    pub(super) fn new(
        config: &'a Config,
        logger: &'a Logger,
        telemetry: &'a RefCell<telemetry::Telemetry>,
        clock: &'a dyn Clock,
        guardian: Option<guardian::Guardian>,
        exact: bool,
    ) -> Monitor<'a> {
        let checks = check_cadence(config, exact);
        let notifier = notify::Notifier::from_environment();
        let bound = health::bound(notifier.watchdog(), checks.cadence().longest_gap());
        let health = health::Health::new(clock.now(), bound);
        telemetry.borrow_mut().set_health(health);
        Monitor {
            config,
            logger,
            telemetry,
            clock,
            guardian,
            detector: Detector::new(config.detection.threshold)
                .repeating_every(config.detection.report_interval(config.boost_mode)),
            early: config.detection.early_threshold().map(Detector::new),
            checks,
            own_pid: std::process::id() as Pid,
            notifier,
            failures: 0,
            health,
            run_queues: Vec::new(),
            starving: Vec::new(),
        }
    }

    /// Steps until a shutdown is requested, sleeping in between: the loop's one sleep.
    pub(super) fn run(
        &mut self,
        backend: &mut dyn Backend,
        booster: &mut Booster,
        shutdown: &mut signals::Shutdown,
    ) {
        while !shutdown.requested() {
            let wake = self.tick(self.clock.now(), backend, booster);
            self.sleep_until(shutdown, wake);
        }
    }

    /// One step of the loop at `now`: pings the watchdog, moves boosts on, and checks the run
    /// queues when a check or a report is due (boosting what starves). Returns the moment the
    /// next step is due.
    fn tick(
        &mut self,
        now: MonoTime,
        backend: &mut dyn Backend,
        booster: &mut Booster,
    ) -> MonoTime {
        match self.health.stale(now) {
            None => self.notifier.tick(now),
            // systemd restarts a daemon that cannot check (see `health`).
            Some(since) => self.notifier.withhold(|| {
                format!(
                    "no successful check for {} s (bound {} s): watchdog pings withheld",
                    since.as_secs(),
                    self.health.bound().as_secs()
                )
            }),
        }
        booster.advance(now, |boost, step| self.report(boost, step));
        if self.next_check_or_report(now) > now {
            // A wakeup for a boost alone (a FIFO phase is looked at every few tens of µs
            // until its task has run) does only that: no /proc/stat sample, no check.
            return self.next_wakeup(booster, now);
        }
        let skip = match self.plan(now) {
            checks::Plan::Look { skip } => skip,
            checks::Plan::AllIdle => {
                checks::print_all_idle(self.logger);
                // Nothing has waited through the check: known waits are over.
                self.run_queues.clear();
                self.observe_quietly(now);
                // Its /proc/stat sample (in `plan`) was the check.
                self.checked(now, self.clock.now().saturating_since(now));
                return self.next_wakeup(booster, now);
            }
            checks::Plan::Wait => return self.next_wakeup(booster, now),
        };
        // Measured from here: the check's duration is the snapshot's and what follows.
        let check_started = self.clock.now();
        if let Err(error) = backend.snapshot(&mut self.run_queues) {
            return self.snapshot_failed(now, &error, booster);
        }
        self.failures = 0;
        // The waits are as of the snapshot, which may have taken a while (sched_debug).
        let taken = self.clock.now();
        self.checks.looked(taken, &skip);
        self.run_queues
            .retain(|run_queue| !skip.contains(&run_queue.cpu));
        let mut starving = std::mem::take(&mut self.starving);
        if let Some(early) = &mut self.early {
            starving.clear();
            early.observe(taken, &self.run_queues, &mut starving);
            let threshold = self.config.detection.threshold;
            for task in starving.iter().filter(|s| s.waited < threshold) {
                self.logger.event(&Event::MightStarve {
                    cpu: task.cpu,
                    task: task_name(&task.task),
                    waited: task.waited,
                });
            }
        }
        starving.clear();
        self.detector
            .observe(taken, &self.run_queues, &mut starving);
        if self
            .config
            .detection
            .longest_per_cpu_every_poll(self.config.boost_mode)
        {
            crate::detect::keep_longest_per_cpu(&mut starving);
        }
        checks::print_look(
            self.logger,
            self.config.detection.per_cpu_tables(),
            self.checks.idle_detection(),
            &self.run_queues,
            &skip,
            |pid| self.detector.waited(pid, taken),
        );
        let run_queues = std::mem::take(&mut self.run_queues);
        for task in &starving {
            let run_queue = run_queues.iter().find(|rq| rq.cpu == task.cpu);
            self.handle(task, run_queue, booster, taken);
        }
        self.run_queues = run_queues;
        self.starving = starving;
        let done = self.clock.now();
        self.checked(taken, done.saturating_since(check_started));
        self.next_wakeup(booster, done)
    }

    /// The snapshot failed: said, and retried after a pause that grows with each failure in
    /// a row (sooner if a boost needs attention, or the watchdog a ping).
    fn snapshot_failed(
        &mut self,
        now: MonoTime,
        error: &anyhow::Error,
        booster: &Booster,
    ) -> MonoTime {
        self.failures += 1;
        let delay = retry_delay(self.failures);
        self.logger.event(&Event::CheckFailed {
            error: format!("{error:#}"),
            failures: self.failures,
            retry: delay,
        });
        let retry = now.after(delay);
        let retry = booster.next_event().map_or(retry, |event| event.min(retry));
        self.watchdog_bound(retry)
    }

    /// One check ran (as of `at`): measured, and systemd told (READY=1 the first time).
    fn checked(&mut self, at: MonoTime, took: Duration) {
        self.health.ok(at);
        let mut telemetry = self.telemetry.borrow_mut();
        telemetry.checked(took);
        telemetry.check_succeeded(self.health);
        self.notifier.checked(|| telemetry.current().summary());
    }

    /// `deadline`, or earlier if the watchdog must be pinged before.
    fn watchdog_bound(&self, deadline: MonoTime) -> MonoTime {
        self.notifier
            .deadline()
            .map_or(deadline, |ping| ping.min(deadline))
    }

    /// Sleeps until `deadline` or a shutdown signal; a guardian that dies meanwhile is
    /// respawned at once.
    fn sleep_until(&mut self, shutdown: &mut signals::Shutdown, deadline: MonoTime) {
        // What this wakeup counted becomes visible to metrics and `stalld status` now.
        self.telemetry.borrow_mut().publish_changes();
        let watched = self.guardian.as_ref().and_then(guardian::Guardian::watched);
        if shutdown.sleep_until_or(deadline, watched) {
            if let Some(guardian) = &mut self.guardian {
                guardian.tend(true, self.logger);
            }
        }
    }

    /// The loop has ended: systemd is told the daemon is stopping.
    pub(super) fn stopping(&mut self) {
        self.notifier.stopping();
    }

    /// Something happened to a boost: say it.
    pub(super) fn report(&mut self, boost: &ActiveBoost, step: Step) {
        self.logger.event(&step_event(boost, step));
    }

    /// Samples idle time and decides what this wakeup does. A known wait due for a report
    /// wants a fresh snapshot whatever idle detection says. (Boosts need none: they are
    /// verified from the kernel's accounting of the boosted task.)
    fn plan(&mut self, now: MonoTime) -> checks::Plan {
        if let Err(error) = self.checks.sample(now) {
            self.logger
                .warn(&format!("fail reading sched stat file: {error}"));
            self.logger.warn("disabling idle detection");
        }
        let forced = [
            self.detector.next_report(),
            self.early.as_ref().and_then(Detector::next_report),
        ]
        .into_iter()
        .flatten()
        .any(|at| at <= now);
        self.checks.plan(now, forced)
    }

    /// Feeds the last snapshot to the detectors without acting on it (nothing in it can be
    /// due).
    fn observe_quietly(&mut self, now: MonoTime) {
        let mut none = Vec::new();
        self.detector.observe(now, &self.run_queues, &mut none);
        if let Some(early) = &mut self.early {
            early.observe(now, &self.run_queues, &mut none);
        }
    }

    /// `run_queue` is the CPU's, in which the culprit is found. Whether the task is boosted
    /// is [`eligibility::decide`]'s answer; here it is only said and done.
    fn handle(
        &mut self,
        starving: &Starving,
        run_queue: Option<&RunQueue>,
        booster: &mut Booster,
        now: MonoTime,
    ) {
        let task = &starving.task;
        let cpu = starving.cpu;
        let rules = self.rules();
        // Read before the decision only if `-I` needs it, else after the boost (for its line).
        let process = rules
            .needs_process()
            .then(|| process_name(task.pid, task.tgid))
            .flatten();
        let inspection = booster.inspect(task.pid);
        let candidate = eligibility::Candidate {
            pid: task.pid,
            comm: task.comm,
            process: process.as_ref(),
            standing: inspection.standing(),
        };
        let decision = eligibility::decide(&candidate, &rules);
        if let Decision::Skip(skip) = &decision {
            if !skip.reports_starvation() {
                return;
            }
        }
        self.logger.event(&Event::Starved {
            cpu,
            task: task_name(task),
            waited: starving.waited,
            culprit: run_queue.and_then(|rq| culprit::on(rq, task.pid)),
        });
        let thread_ignored = decision == Decision::Skip(Skip::Ignored(Ignored::Thread));
        if rules.needs_process() && process.is_none() && !thread_ignored {
            self.logger.warn("Ran into a tgid without process name");
        }
        let outcome = match decision {
            Decision::Skip(Skip::Ignored(ignored)) => Some(Event::BoostSkipped {
                cpu,
                task: task_name(task),
                ignored,
            }),
            Decision::Skip(Skip::AlreadyDeadline) => Some(Event::AlreadyDeadline {
                cpu,
                task: task_name(task),
            }),
            Decision::Skip(Skip::Kept) => Some(Event::BoostFailed {
                cpu,
                task: task_name(task),
                policy: self.config.boost.policy,
                error: crate::boost::STILL_BOOSTED.to_owned(),
            }),
            Decision::Skip(_) => None,
            Decision::Boost => Some(self.boost(booster, inspection, starving, process, now)),
        };
        if let Some(outcome) = outcome {
            self.logger.event(&outcome);
        }
    }

    /// The rules of [`eligibility::decide`], from the configuration.
    fn rules(&self) -> eligibility::Rules<'_> {
        eligibility::Rules::of(self.config, self.own_pid)
    }

    /// Boosts the task the rule chose: the event that says how it went.
    fn boost(
        &mut self,
        booster: &mut Booster,
        inspection: Inspection,
        starving: &Starving,
        process: Option<Comm>,
        now: MonoTime,
    ) -> Event {
        let (task, cpu) = (&starving.task, starving.cpu);
        if let Some(guardian) = &mut self.guardian {
            guardian.prepare(self.logger);
        }
        match booster.apply(inspection, cpu, now) {
            Ok(boost) => Event::Boosted {
                cpu,
                task: task_name(task),
                process: process.or_else(|| process_name(task.pid, task.tgid)),
                policy: boost.policy,
            },
            Err(error) => Event::BoostFailed {
                cpu,
                task: task_name(task),
                policy: self.config.boost.policy,
                error: error.to_string(),
            },
        }
    }

    /// The next moment worth waking for: the next check or report, or a boost's next event.
    fn next_wakeup(&self, booster: &Booster, now: MonoTime) -> MonoTime {
        booster
            .next_event()
            .map_or(self.next_check_or_report(now), |boost| {
                boost.min(self.next_check_or_report(now))
            })
    }

    /// The next moment the loop has more to do than boosts: the next check (see `checks`), a
    /// known wait's next report, the watchdog.
    fn next_check_or_report(&self, now: MonoTime) -> MonoTime {
        [
            Some(self.checks.next_wakeup(now)),
            self.detector.next_report(),
            self.early.as_ref().and_then(Detector::next_report),
            self.notifier.deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(now)
    }
}

/// The event that says `step` of `boost`: how a boost ended is told by what it gave the task.
fn step_event(boost: &ActiveBoost, step: Step) -> Event {
    let (cpu, tid) = (boost.cpu, boost.pid);
    let cpu_time = boost.received();
    match step {
        Step::FifoFallback => Event::FifoFallback { cpu, tid },
        Step::Escalated { hold } => Event::FifoPhaseExtended { cpu, tid, hold },
        Step::Restore(Restore::Restored | Restore::Undone { .. }) if boost.gave_nothing() => {
            Event::BoostWithoutCpu {
                cpu,
                tid,
                policy: boost.saved.policy,
            }
        }
        Step::Restore(Restore::Restored) => Event::Restored {
            cpu,
            tid,
            policy: boost.saved.policy,
            cpu_time,
            undone: None,
        },
        Step::Restore(Restore::Undone { policy }) => Event::Restored {
            cpu,
            tid,
            policy: boost.saved.policy,
            cpu_time,
            undone: Some(policy),
        },
        Step::Restore(Restore::Exited) => Event::ExitedWhileBoosted { cpu, tid, cpu_time },
        Step::Restore(Restore::ChangedMeanwhile { policy }) => Event::ChangedMeanwhile {
            cpu,
            tid,
            policy,
            cpu_time,
        },
        Step::Restore(Restore::Retry {
            attempt,
            delay,
            error,
        }) => Event::RestoreRetry {
            cpu,
            tid,
            attempt,
            attempts: RESTORE_ATTEMPTS,
            delay,
            error: error.to_string(),
        },
        Step::Restore(Restore::Held { delay, error }) => Event::RestoreFailed {
            cpu,
            tid,
            error: error.to_string(),
            retry: Some(delay),
            cpu_time: None,
        },
        Step::Restore(Restore::Failed(error)) => Event::RestoreFailed {
            cpu,
            tid,
            error: error.to_string(),
            retry: None,
            cpu_time,
        },
    }
}

fn retry_delay(failures: u32) -> Duration {
    Duration::from_millis(100)
        .saturating_mul(1 << failures.min(16))
        .min(MAX_RETRY_DELAY)
}

fn task_name(task: &WaitingTask) -> TaskName {
    TaskName {
        tid: task.pid,
        tgid: task.tgid,
        comm: task.comm,
    }
}

/// The name of the process a thread belongs to (`/proc/<tgid>/comm`), as upstream prints it.
fn process_name(pid: Pid, tgid: Option<Pid>) -> Option<Comm> {
    let tgid = tgid.or_else(|| {
        let status = procfs::read_thread_status(pid)?;
        Pid::try_from(procfs::status_number(&status, "Tgid:")?).ok()
    })?;
    procfs::read_comm(tgid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boost::fake::{world, FakeLedger, FakeSched};
    use crate::sys::{self, SchedAttr};
    use std::cell::Cell;
    use std::rc::Rc;

    const SECOND: u64 = 1_000_000_000;

    /// The loop's clock in a test: it moves only when the test moves it (to the wakeup a
    /// step asked for), or when a fake snapshot takes time.
    struct FakeClock(Cell<MonoTime>);

    /// Where the fake clock starts.
    const T0: MonoTime = MonoTime(1_000 * SECOND);

    impl FakeClock {
        fn at(start: MonoTime) -> FakeClock {
            FakeClock(Cell::new(start))
        }
    }

    impl Clock for FakeClock {
        fn now(&self) -> MonoTime {
            self.0.get()
        }
    }

    /// A backend that shows one victim waiting since `queued_at` on CPU 1, fails every
    /// snapshot after the first `good` ones, and takes `takes` of the fake clock per snapshot.
    struct Scripted<'a> {
        clock: &'a FakeClock,
        queued_at: MonoTime,
        good: u32,
        takes: Duration,
        /// When each snapshot was asked for.
        calls: Vec<MonoTime>,
    }

    impl Scripted<'_> {
        /// Every snapshot good, taking no time.
        fn new(clock: &FakeClock, queued_at: MonoTime) -> Scripted<'_> {
            Scripted {
                clock,
                queued_at,
                good: u32::MAX,
                takes: Duration::ZERO,
                calls: Vec::new(),
            }
        }
    }

    impl Backend for Scripted<'_> {
        fn name(&self) -> &'static str {
            "fake"
        }

        fn knows_queue_times(&self) -> bool {
            true
        }

        fn snapshot(&mut self, out: &mut Vec<RunQueue>) -> anyhow::Result<()> {
            self.calls.push(self.clock.now());
            self.clock.0.set(self.clock.now().after(self.takes));
            if self.calls.len() as u32 > self.good {
                anyhow::bail!("injected backend failure");
            }
            out.clear();
            out.push(RunQueue {
                cpu: 1,
                current: Some(1),
                nr_rt_running: 1,
                waiting: vec![WaitingTask {
                    pid: 87,
                    tgid: Some(87),
                    comm: Comm::new(b"victim"),
                    prio: 94,
                    switches: 7,
                    queued_at: Some(self.queued_at),
                }],
            });
            Ok(())
        }
    }

    fn parse(args: &[&str]) -> Config {
        match crate::cli::parse(args.iter().copied()) {
            Ok(crate::cli::Command::Run(config)) => *config,
            other => panic!("test options rejected: {other:?}"),
        }
    }

    /// A booster of `config` on a fake kernel where the victim, pid 87, runs at FIFO 5.
    fn fake_booster(config: &Config) -> (Booster, crate::boost::fake::Shared) {
        let world = world();
        world.borrow_mut().spawn(87, 1, fifo5());
        let booster = Booster::with(
            config.boost,
            Box::new(FakeSched(world.clone())),
            Box::new(FakeLedger(world.clone())),
        );
        (booster, world)
    }

    /// A logger whose events reach a telemetry the test reads.
    fn observed(config: &Config) -> (Logger, Rc<RefCell<telemetry::Telemetry>>) {
        let logger = Logger::new(false);
        let telemetry = Rc::new(RefCell::new(telemetry::Telemetry::new(
            config,
            Default::default(),
        )));
        logger.subscribe(&telemetry);
        (logger, telemetry)
    }

    fn fifo5() -> SchedAttr {
        SchedAttr {
            rt_priority: 5,
            ..SchedAttr::new(sys::SCHED_FIFO)
        }
    }

    /// Runs the loop's steps from the clock's reading until `end`, each at the wakeup the
    /// previous one asked for, the fake kernel's clock kept in step: the wakeups.
    fn drive(
        monitor: &mut Monitor<'_>,
        clock: &FakeClock,
        backend: &mut dyn Backend,
        booster: &mut Booster,
        world: &crate::boost::fake::Shared,
        end: MonoTime,
    ) -> Vec<MonoTime> {
        let mut wakeups = Vec::new();
        while clock.now() < end && wakeups.len() < 1_000 {
            world.borrow_mut().clock = clock.now();
            let wake = monitor.tick(clock.now(), backend, booster);
            wakeups.push(wake);
            clock.0.set(wake.max(clock.now()));
        }
        wakeups
    }

    /// With exact queue times the loop sleeps until the victim can cross the threshold, and
    /// boosts it in the step at that very moment: no step before, none polling.
    #[test]
    fn a_step_wakes_at_the_threshold_crossing_and_boosts_there() {
        let config = parse(&["-f", "-N", "-t", "1", "-d", "1", "-c", "1"]);
        let (logger, telemetry) = observed(&config);
        let (mut booster, world) = fake_booster(&config);
        let (t0, clock) = (T0, FakeClock::at(T0));
        let mut backend = Scripted::new(&clock, MonoTime(t0.0 - SECOND / 4));
        let mut monitor = Monitor::new(&config, &logger, &telemetry, &clock, None, true);
        let first = monitor.tick(t0, &mut backend, &mut booster);
        assert_eq!(first, t0.after(Duration::from_millis(750)), "the crossing");
        assert!(world.borrow().sets().is_empty(), "nothing starves yet");
        clock.0.set(first);
        world.borrow_mut().clock = first;
        let next = monitor.tick(first, &mut backend, &mut booster);
        assert_eq!(backend.calls, [t0, first]);
        let sets = world.borrow().sets();
        assert_eq!(sets.len(), 1, "{sets:?}");
        assert_eq!(sets[0].1.policy, sys::SCHED_DEADLINE);
        // Next: the boost's check that it ran its task.
        assert_eq!(next, first.after(crate::boost::VERIFY_AFTER));
    }

    /// A denylisted victim is reported starving, not boosted, and its skip is an event that
    /// the metrics count (`stalld_events_total{event="boost_skipped"}`).
    #[test]
    fn a_denylisted_victim_is_a_counted_skip_not_a_boost() {
        let config = parse(&["-f", "-N", "-t", "1", "-d", "1", "-c", "1", "-i", "^vic"]);
        let (logger, telemetry) = observed(&config);
        let (mut booster, world) = fake_booster(&config);
        let (t0, clock) = (T0, FakeClock::at(T0));
        let mut backend = Scripted::new(&clock, MonoTime(t0.0 - 2 * SECOND));
        let mut monitor = Monitor::new(&config, &logger, &telemetry, &clock, None, true);
        monitor.tick(t0, &mut backend, &mut booster);
        assert!(world.borrow().sets().is_empty());
        let telemetry = telemetry.borrow();
        let events = &telemetry.current().events;
        assert_eq!(events.get("starved"), Some(&1), "{events:?}");
        assert_eq!(events.get("boost_skipped"), Some(&1), "{events:?}");
        assert_eq!(events.get("boosted"), Some(&0), "{events:?}");
        let last = telemetry.current().recent.back().unwrap();
        assert_eq!(last["ignored_by"], "thread");
        assert_eq!(
            last["message"],
            "Ignoring the thread victim from consideration for boosting"
        );
    }

    /// The backend fails while a DEADLINE boost runs: the loop retries at pauses that double
    /// (it neither spins nor stops), and the boost still ends on time.
    #[test]
    fn a_failing_backend_during_a_boost_neither_spins_nor_keeps_the_boost() {
        let config = parse(&["-f", "-N", "-t", "1", "-d", "1", "-c", "1"]);
        let (logger, telemetry) = observed(&config);
        let (mut booster, world) = fake_booster(&config);
        let (t0, clock) = (T0, FakeClock::at(T0));
        let mut backend = Scripted::new(&clock, MonoTime(t0.0 - 5 * SECOND));
        backend.good = 1;
        backend.takes = Duration::from_millis(1);
        let mut monitor = Monitor::new(&config, &logger, &telemetry, &clock, None, true);
        let end = t0.after(Duration::from_secs(8));
        let wakeups = drive(
            &mut monitor,
            &clock,
            &mut backend,
            &mut booster,
            &world,
            end,
        );
        let ms = |at: &MonoTime| (at.0 - t0.0) / 1_000_000;
        let world = world.borrow();
        let sets = world.sets();
        assert_eq!(
            sets.first().map(|(_, a)| a.policy),
            Some(sys::SCHED_DEADLINE)
        );
        assert_eq!(world.attr(87), fifo5(), "the boost ended: {sets:?}");
        // Boosted at 1 ms (when the snapshot was taken): its check at 101 ms, its end at
        // 1.001 s, when the next check is due too.
        assert_eq!(wakeups[..2].iter().map(ms).collect::<Vec<_>>(), [101, 1001]);
        // That check fails, and the retries come 0.2, 0.4, 0.8, 1.6, 3.2 s after each
        // failed attempt began.
        let calls: Vec<u64> = backend.calls.iter().map(ms).collect();
        assert_eq!(calls, [0, 1001, 1201, 1601, 2401, 4001, 7201]);
        assert_eq!(monitor.failures, 6);
    }

    /// A backend that keeps failing: every failure is a counted `check_failed` event; once
    /// no check has succeeded for the bound (here the 10 s watchdog: the polling gap is
    /// shorter), the watchdog is no longer pinged (systemd restarts the daemon), and the loop
    /// still wakes only for its retries (it does not spin on the ping it withholds).
    #[test]
    fn a_backend_that_keeps_failing_is_counted_and_stops_the_watchdog() {
        let config = parse(&["-f", "-N", "-l", "-g", "1", "-c", "1"]);
        let (logger, telemetry) = observed(&config);
        let (mut booster, world) = fake_booster(&config);
        let (t0, clock) = (T0, FakeClock::at(T0));
        let mut backend = Scripted::new(&clock, t0);
        backend.good = 1;
        let mut monitor = Monitor::new(&config, &logger, &telemetry, &clock, None, false);
        monitor.notifier = notify::Notifier::with_watchdog(Duration::from_secs(10));
        let bound = health::bound(
            Some(Duration::from_secs(10)),
            monitor.checks.cadence().longest_gap(),
        );
        monitor.health = health::Health::new(t0, bound);
        assert_eq!(bound, Duration::from_secs(10));
        let wakeups = drive(
            &mut monitor,
            &clock,
            &mut backend,
            &mut booster,
            &world,
            t0.after(Duration::from_secs(30)),
        );
        let failed = backend.calls.len() as u64 - 1;
        let state = telemetry.borrow().current().clone();
        assert_eq!(state.checks_failed, failed);
        assert_eq!(state.events.get("check_failed"), Some(&failed));
        assert!(state.last_check_error.is_some());
        assert_eq!(state.health.stale(t0.after(Duration::from_secs(10))), None);
        assert!(state
            .health
            .stale(t0.after(Duration::from_secs(11)))
            .is_some());
        // Pinged every 5 s while healthy; withheld from the first wakeup past the bound.
        assert_eq!(monitor.notifier.deadline(), None);
        assert!(monitor.health.stale(clock.now()).is_some());
        // Retries at most 5 s apart, and nothing in between.
        let after: Vec<u64> = wakeups
            .iter()
            .filter(|at| **at > t0.after(Duration::from_secs(15)))
            .map(|at| (at.0 - t0.0) / 100_000_000)
            .collect();
        for pair in after.windows(2) {
            assert_eq!(pair[1] - pair[0], 50, "{after:?}");
        }
        // A check that succeeds again: healthy, pinged again.
        backend.good = u32::MAX;
        let now = clock.now();
        let next = monitor.tick(now, &mut backend, &mut booster);
        assert!(monitor.health.stale(next).is_none());
        monitor.tick(next, &mut backend, &mut booster);
        assert!(monitor.notifier.deadline().is_some());
    }

    /// The events a boost's steps become, driven through a booster on a fake kernel.
    #[test]
    fn how_a_boost_ended_is_told_by_what_it_gave_the_task() {
        let Ok(crate::cli::Command::Run(config)) =
            crate::cli::parse(["-f", "-t", "1", "-d", "1", "-c", "1"])
        else {
            panic!("test options rejected");
        };
        let fifo5 = SchedAttr {
            rt_priority: 5,
            ..SchedAttr::new(sys::SCHED_FIFO)
        };
        let ended = |runs: bool| {
            let world = world();
            world.borrow_mut().spawn(87, 1, fifo5);
            world.borrow_mut().measure(87, 1_000, 3);
            let mut booster = Booster::with(
                config.boost,
                Box::new(FakeSched(world.clone())),
                Box::new(FakeLedger(world.clone())),
            );
            let start = MonoTime(1_000_000_000_000);
            booster.boost(87, 1, start).unwrap();
            if runs {
                world.borrow_mut().switch_in(87);
                world.borrow_mut().run_for(87, 30_000);
            }
            let mut events = Vec::new();
            let mut now = start;
            while let Some(next) = booster.next_event() {
                now = next.max(now);
                booster.advance(now, |boost, step| events.push(step_event(boost, step)));
            }
            events
        };
        assert_eq!(
            ended(true),
            [Event::Restored {
                cpu: 1,
                tid: 87,
                policy: sys::SCHED_FIFO,
                cpu_time: Some(Duration::from_micros(30)),
                undone: None,
            }]
        );
        let nothing = ended(false);
        assert_eq!(nothing[0], Event::FifoFallback { cpu: 1, tid: 87 });
        assert!(matches!(
            nothing[1],
            Event::FifoPhaseExtended {
                cpu: 1,
                tid: 87,
                ..
            }
        ));
        assert_eq!(
            nothing.last(),
            Some(&Event::BoostWithoutCpu {
                cpu: 1,
                tid: 87,
                policy: sys::SCHED_FIFO
            })
        );
    }

    #[test]
    fn retries_back_off_up_to_a_cap() {
        assert_eq!(retry_delay(1), Duration::from_millis(200));
        assert_eq!(retry_delay(3), Duration::from_millis(800));
        assert_eq!(retry_delay(40), MAX_RETRY_DELAY);
    }

    #[test]
    fn process_name_of_ourselves() {
        let me = std::process::id() as Pid;
        let expected = std::fs::read_to_string("/proc/self/comm").unwrap();
        assert_eq!(
            process_name(me, None).map(|name| name.to_string()),
            Some(expected.trim_end().to_string())
        );
        assert_eq!(process_name(-5, None), None);
    }
}
