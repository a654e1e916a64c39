//! RT throttling (`/proc/sys/kernel/sched_rt_runtime_us`): turned off while stalld runs, because
//! with it on the kernel refuses SCHED_DEADLINE to tasks pinned to fewer CPUs than their root
//! domain (per-CPU kthreads, the usual victims). The old value is written to the ledger before
//! it is changed, and comes back when the guard drops, or from whoever replays the ledger of a
//! stalld that died.

use std::io;
use std::path::Path;

use anyhow::{bail, Context, Result};

use super::ledger::{Instance, Ledger, RtRecord, RtReplay, RUN_DIR};
use super::log::Logger;
use crate::boost::{Kernel, SchedOps};
use crate::event::Event;
use crate::rt_runtime::{self, write as write_runtime, PATH as RT_RUNTIME};

/// Restores the saved runtime on drop, if this process changed it and nobody (`throttlectl
/// on`) took that over meanwhile.
pub struct RtThrottleGuard {
    saved: Option<i64>,
    ledger: Ledger,
    owner: String,
    logger: Logger,
}

fn read_runtime() -> Result<i64> {
    rt_runtime::read().with_context(|| format!("unable to read {RT_RUNTIME}"))
}

/// `-S`: systemd's unit turns throttling off before starting stalld; refuse to run otherwise.
pub fn require_disabled() -> Result<()> {
    if read_runtime()? != -1 {
        bail!("RT throttling is on! stalld cannot run...");
    }
    Ok(())
}

pub fn disable(logger: &Logger, instance: &Instance) -> Result<RtThrottleGuard> {
    let ledger = instance.ledger().clone();
    let _lock = ledger.lock().context("locking the ledger in /run/stalld")?;
    let runtime = read_runtime()?;
    let mut guard = RtThrottleGuard {
        saved: None,
        ledger: ledger.clone(),
        owner: instance.name().to_owned(),
        logger: logger.clone(),
    };
    if runtime == -1 {
        logger.event(&Event::RtThrottlingDisabled { saved: None });
        return Ok(guard);
    }
    // Written down first: whatever kills stalld from here on, the value can be put back.
    ledger
        .save_rt_record(&RtRecord {
            runtime,
            owner: Some(guard.owner.clone()),
        })
        .context("recording sched_rt_runtime_us in the ledger")?;
    if let Err(error) = write_runtime(-1) {
        let _ = ledger.remove_rt_record();
        return Err(error).with_context(|| format!("unable to write {RT_RUNTIME}"));
    }
    guard.saved = Some(runtime);
    logger.event(&Event::RtThrottlingDisabled {
        saved: Some(runtime),
    });
    if read_runtime()? != -1 {
        bail!("turning off RT throttling failed, stalld cannot run");
    }
    Ok(guard)
}

impl Drop for RtThrottleGuard {
    fn drop(&mut self) {
        if self.saved.take().is_none() {
            return;
        }
        let _lock = self.ledger.lock();
        self.ledger
            .put_rt_runtime_back(&self.owner, &self.logger, true);
    }
}

fn open_ledger() -> Result<Ledger> {
    Ledger::open(Path::new(RUN_DIR)).with_context(|| format!("opening the ledger in {RUN_DIR}"))
}

/// `sched_rt_runtime_us` as `throttlectl` reads and writes it: the kernel's file, or a fake in
/// the unit tests.
trait RtKnob {
    fn read(&self) -> io::Result<i64>;
    fn write(&mut self, value: i64) -> io::Result<()>;
}

struct Sysctl;

impl RtKnob for Sysctl {
    fn read(&self) -> io::Result<i64> {
        rt_runtime::read()
    }

    fn write(&mut self, value: i64) -> io::Result<()> {
        write_runtime(value)
    }
}

/// `stalld throttle off|on|show` (also run as `throttlectl`): what systemd's unit runs around
/// the daemon. `off` saves the value it finds, whatever it is (-1 too, as tuned's realtime
/// profiles leave it; the kernel's default, 950000 or on 7.x 1000000), once; `on` first
/// undoes what a stalld that died left (its boosts), then puts exactly that value back, and
/// touches nothing when nothing was saved (the C tool's `on` always wrote 950000, turning RT
/// throttling on under a workload whose host keeps it off).
pub fn throttlectl(command: &str) -> Result<String> {
    throttle(command, &open_ledger()?, &mut Sysctl, &mut Kernel)
}

fn throttle(
    command: &str,
    ledger: &Ledger,
    knob: &mut dyn RtKnob,
    sched: &mut dyn SchedOps,
) -> Result<String> {
    let read = |knob: &dyn RtKnob| {
        knob.read()
            .with_context(|| format!("unable to read {RT_RUNTIME}"))
    };
    let current = read(knob)?;
    let saved = |ledger: &Ledger| ledger.rt_record().ok().flatten().map(|r| r.runtime);
    let show = |value: Option<i64>| value.map_or("none".into(), |v| v.to_string());
    match command {
        "off" => {
            ledger.replay_dead(sched, RtReplay::Restore, &Logger::new(true))?;
            let _lock = ledger.lock()?;
            let current = read(knob)?;
            // A value saved earlier stands while throttling is still off: that is what the
            // first `off` found (a restart of the unit runs `off` again).
            if current != -1 || saved(ledger).is_none() {
                ledger
                    .save_rt_record(&RtRecord {
                        runtime: current,
                        owner: None,
                    })
                    .context("recording sched_rt_runtime_us in the ledger")?;
            }
            if current != -1 {
                knob.write(-1)
                    .with_context(|| format!("unable to write {RT_RUNTIME}"))?;
            }
            Ok(format!(
                "RT throttling off (saved runtime {})",
                show(saved(ledger))
            ))
        }
        "on" => {
            let summary = ledger.replay_dead(sched, RtReplay::Restore, &Logger::new(true))?;
            let _lock = ledger.lock()?;
            let now = read(knob)?;
            let outcome = match saved(ledger) {
                Some(value) => {
                    if value != now {
                        knob.write(value)
                            .with_context(|| format!("unable to write {RT_RUNTIME}"))?;
                    }
                    ledger.remove_rt_record()?;
                    format!("RT throttling restored: sched_rt_runtime_us={value} (saved)")
                }
                None => format!(
                    "RT throttling left as it is: sched_rt_runtime_us={now} (nothing was saved)"
                ),
            };
            if summary.kept > 0 {
                bail!(
                    "{outcome}, but {} task(s) left boosted by a stalld that is gone could not be restored",
                    summary.kept
                );
            }
            Ok(outcome)
        }
        "show" => Ok(format!(
            "sched_rt_runtime_us={current} ({}) saved={}",
            if current == -1 {
                "throttling off"
            } else {
                "throttling on"
            },
            show(saved(ledger))
        )),
        other => bail!("unknown throttle command '{other}': use off, on or show"),
    }
}

/// `stalld restore`: undoes what every stalld that is gone left behind (boosted tasks, RT
/// throttling it turned off), from the ledger. The unit runs it when the service stops, so
/// nothing is left however the daemon ended. Running daemons are not touched.
pub fn restore_leftovers() -> Result<String> {
    let ledger = open_ledger()?;
    let summary = ledger.replay_dead(&mut Kernel, RtReplay::Restore, &Logger::new(true))?;
    if summary.kept > 0 {
        bail!(
            "{} task(s) left boosted by a stalld that is gone could not be restored; their records stay in {RUN_DIR}",
            summary.kept
        );
    }
    Ok(match summary.restored {
        0 => "nothing left to restore".to_owned(),
        n => format!("restored {n} task(s) left boosted by a stalld that is gone"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boost::fake::{world, FakeSched};

    /// `sched_rt_runtime_us` in memory, with every write remembered.
    struct FakeKnob {
        value: i64,
        writes: Vec<i64>,
    }

    impl RtKnob for FakeKnob {
        fn read(&self) -> io::Result<i64> {
            Ok(self.value)
        }

        fn write(&mut self, value: i64) -> io::Result<()> {
            self.writes.push(value);
            self.value = value;
            Ok(())
        }
    }

    /// A ledger of its own under the temporary directory, removed when dropped.
    struct Scratch(std::path::PathBuf, Ledger);

    impl Scratch {
        fn new(test: &str) -> Scratch {
            let dir = std::env::temp_dir().join(format!(
                "stalld-throttle-test-{}-{test}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            let ledger = Ledger::open(&dir).unwrap();
            Scratch(dir, ledger)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn run(command: &str, scratch: &Scratch, knob: &mut FakeKnob) -> String {
        throttle(command, &scratch.1, knob, &mut FakeSched(world()))
            .unwrap_or_else(|error| panic!("throttle {command}: {error:#}"))
    }

    /// -1: a host that keeps RT throttling off (tuned's realtime profiles); 950000: the
    /// kernel's default; 1000000: 7.x's default (runtime = period).
    #[test]
    fn off_saves_what_it_finds_and_on_puts_exactly_that_back() {
        for found in [-1, 950_000, 1_000_000] {
            let scratch = Scratch::new(&format!("round-trip{found}"));
            let mut knob = FakeKnob {
                value: found,
                writes: Vec::new(),
            };
            run("off", &scratch, &mut knob);
            assert_eq!(knob.value, -1, "{found}");
            let saved = || scratch.1.rt_record().unwrap().map(|record| record.runtime);
            assert_eq!(saved(), Some(found));
            assert!(run("show", &scratch, &mut knob).ends_with(&format!("saved={found}")));
            // The unit restarts: `off` again keeps what the first one found.
            run("off", &scratch, &mut knob);
            assert_eq!(saved(), Some(found));
            let said = run("on", &scratch, &mut knob);
            assert_eq!(knob.value, found, "{said}");
            assert_eq!(
                said,
                format!("RT throttling restored: sched_rt_runtime_us={found} (saved)")
            );
            assert_eq!(saved(), None);
            let expected_writes = if found == -1 { vec![] } else { vec![-1, found] };
            assert_eq!(knob.writes, expected_writes, "{found}");
        }
    }

    /// Nothing saved (no `off` ran, or a daemon already put its own value back): `on` leaves
    /// the value alone instead of writing a default.
    #[test]
    fn on_with_nothing_saved_touches_nothing() {
        let scratch = Scratch::new("nothing-saved");
        for value in [-1, 1_000_000] {
            let mut knob = FakeKnob {
                value,
                writes: Vec::new(),
            };
            let said = run("on", &scratch, &mut knob);
            assert_eq!(
                said,
                format!(
                    "RT throttling left as it is: sched_rt_runtime_us={value} (nothing was saved)"
                )
            );
            assert!(knob.writes.is_empty(), "{:?}", knob.writes);
        }
    }

    /// Someone turned RT throttling back on after `off`: the next `off` saves that value.
    #[test]
    fn off_after_a_change_saves_the_new_value() {
        let scratch = Scratch::new("changed");
        let mut knob = FakeKnob {
            value: 950_000,
            writes: Vec::new(),
        };
        run("off", &scratch, &mut knob);
        knob.value = 800_000;
        run("off", &scratch, &mut knob);
        run("on", &scratch, &mut knob);
        assert_eq!(knob.value, 800_000);
    }
}
