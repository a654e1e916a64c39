//! RT throttling (`/proc/sys/kernel/sched_rt_runtime_us`): turned off while stalld runs, because
//! with it on the kernel refuses SCHED_DEADLINE to tasks pinned to fewer CPUs than their root
//! domain (per-CPU kthreads, the usual victims). The old value is written to the ledger before
//! it is changed, and comes back when the guard drops, or from whoever replays the ledger of a
//! stalld that died.

use std::path::Path;

use anyhow::{bail, Context, Result};

use super::ledger::{Instance, Ledger, RtRecord, RtReplay, RUN_DIR};
use super::log::Logger;
use crate::boost::Kernel;
use crate::event::Event;
use crate::rt_runtime::{self, write as write_runtime, PATH as RT_RUNTIME};

/// The kernel's default, used by `throttle on` when nothing was saved.
const DEFAULT_RUNTIME: i64 = 950_000;

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

/// `stalld throttle off|on|show` (also run as `throttlectl`): what systemd's unit runs around
/// the daemon. `off` saves the current value once; `on` first undoes what a stalld that died
/// left (its boosts), then puts the saved value back (the C tool's `on` always wrote the
/// kernel default).
pub fn throttlectl(command: &str) -> Result<String> {
    let current = read_runtime()?;
    let ledger = open_ledger()?;
    let saved = |ledger: &Ledger| ledger.rt_record().ok().flatten().map(|r| r.runtime);
    let show = |value: Option<i64>| value.map_or("none".into(), |v| v.to_string());
    match command {
        "off" => {
            ledger.replay_dead(&mut Kernel, RtReplay::Restore, &Logger::new(true))?;
            let _lock = ledger.lock()?;
            let current = read_runtime()?;
            if current != -1 {
                ledger
                    .save_rt_record(&RtRecord {
                        runtime: current,
                        owner: None,
                    })
                    .context("recording sched_rt_runtime_us in the ledger")?;
                write_runtime(-1).with_context(|| format!("unable to write {RT_RUNTIME}"))?;
            }
            Ok(format!(
                "RT throttling off (saved runtime {})",
                show(saved(&ledger))
            ))
        }
        "on" => {
            let summary = ledger.replay_dead(&mut Kernel, RtReplay::Restore, &Logger::new(true))?;
            let _lock = ledger.lock()?;
            let (value, source) = match saved(&ledger) {
                Some(value) => (value, "saved"),
                None => (DEFAULT_RUNTIME, "kernel default, nothing was saved"),
            };
            write_runtime(value).with_context(|| format!("unable to write {RT_RUNTIME}"))?;
            ledger.remove_rt_record()?;
            if summary.kept > 0 {
                bail!(
                    "RT throttling on: sched_rt_runtime_us={value}, but {} task(s) left boosted by a stalld that is gone could not be restored",
                    summary.kept
                );
            }
            Ok(format!(
                "RT throttling on: sched_rt_runtime_us={value} ({source})"
            ))
        }
        "show" => Ok(format!(
            "sched_rt_runtime_us={current} ({}) saved={}",
            if current == -1 {
                "throttling off"
            } else {
                "throttling on"
            },
            show(saved(&ledger))
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
