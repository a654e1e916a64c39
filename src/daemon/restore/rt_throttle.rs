//! RT throttling (`/proc/sys/kernel/sched_rt_runtime_us`): turned off while stalld runs, because
//! with it on the kernel refuses SCHED_DEADLINE to tasks pinned to fewer CPUs than their root
//! domain (per-CPU kthreads, the usual victims). The old value is written to the ledger before
//! it is changed, and comes back when the guard drops, or from whoever replays the ledger of a
//! stalld that died.

use std::io;
use std::path::Path;

use anyhow::{bail, Context, Result};

use super::ledger::{CRtSave, Instance, Ledger, RtRecord, RtReplay, RUN_DIR};
use crate::boost::{Kernel, SchedOps};
use crate::daemon::log::Logger;
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
///
/// The C stalld's `off` saved its value in a file of its own (`rtthrottle-XXXXXXX`): when ours
/// has none, that one is adopted, so that upgrading from a running C stalld (whose unit is
/// stopped by ours, `on`, and started again, `off`) puts back what the C tool found instead
/// of keeping RT throttling off for good. While another stalld boosts (a DaemonSet's pod
/// beside the host's, or the host's beside a pod that stood aside), `on` leaves RT throttling
/// and the saved value alone: that stalld needs throttling off, and its own stop puts it back.
pub fn throttlectl(command: &str) -> Result<String> {
    let others = if command == "on" {
        crate::daemon::process::instances::boosting_instances(&[])
            .iter()
            .map(ToString::to_string)
            .collect()
    } else {
        Vec::new()
    };
    throttle(command, &open_ledger()?, &mut Sysctl, &mut Kernel, &others)
}

/// The RT runtime the C stalld's `throttlectl off` saved, as far as its files can be
/// trusted: `runtime` when every valid file agrees, the files that say it (to remove once
/// the value is ours), and a note on each file that was not taken.
struct CToolSave {
    runtime: Option<i64>,
    files: Vec<CRtSave>,
    notes: Vec<String>,
}

impl CToolSave {
    fn find(ledger: &Ledger) -> CToolSave {
        let (saves, refused) = ledger
            .c_rt_saves()
            .unwrap_or_else(|error| (Vec::new(), vec![format!("{RUN_DIR}: {error}")]));
        let mut notes: Vec<String> = refused
            .into_iter()
            .map(|why| format!("ignored {why}"))
            .collect();
        let mut values: Vec<i64> = saves.iter().map(|save| save.runtime).collect();
        values.sort_unstable();
        values.dedup();
        let runtime = match values[..] {
            [] => None,
            [value] => Some(value),
            _ => {
                notes.push(format!(
                    "ignored the C stalld's {} save files in {RUN_DIR}: they disagree ({values:?})",
                    saves.len()
                ));
                None
            }
        };
        CToolSave {
            runtime,
            files: if runtime.is_some() { saves } else { Vec::new() },
            notes,
        }
    }

    /// Where the value came from, for the tool's answer.
    fn source(&self) -> String {
        let names: Vec<&str> = self.files.iter().map(|save| save.name.as_str()).collect();
        format!("the C stalld's {RUN_DIR}/{}", names.join(", "))
    }

    /// The value is ours now (or stale): the C tool's files go, as its own `on` and `off`
    /// remove them.
    fn remove(&self, ledger: &Ledger) -> Result<()> {
        for save in &self.files {
            ledger
                .remove_c_rt_save(save)
                .with_context(|| format!("removing {RUN_DIR}/{}", save.name))?;
        }
        Ok(())
    }

    /// The answer with the notes on ignored files appended.
    fn annotate(&self, answer: String) -> String {
        self.notes
            .iter()
            .fold(answer, |answer, note| format!("{answer}; {note}"))
    }
}

fn throttle(
    command: &str,
    ledger: &Ledger,
    knob: &mut dyn RtKnob,
    sched: &mut dyn SchedOps,
    other_instances: &[String],
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
            let ours = saved(ledger);
            let theirs = CToolSave::find(ledger);
            let mut adopted = None;
            // A value saved earlier stands while throttling is still off: that is what the
            // first `off` found (a restart of the unit runs `off` again).
            if current != -1 || ours.is_none() {
                // Off, with nothing of ours saved, and the C tool's value there: its `off`
                // turned throttling off (the C stalld ran before ours), and found that value.
                let runtime = match theirs.runtime {
                    Some(value) if current == -1 => {
                        adopted = Some(theirs.source());
                        value
                    }
                    _ => current,
                };
                ledger
                    .save_rt_record(&RtRecord {
                        runtime,
                        owner: None,
                    })
                    .context("recording sched_rt_runtime_us in the ledger")?;
            }
            // Adopted, or stale (throttling was back on, or ours was saved first).
            theirs.remove(ledger)?;
            if current != -1 {
                knob.write(-1)
                    .with_context(|| format!("unable to write {RT_RUNTIME}"))?;
            }
            let from = adopted.map_or(String::new(), |source| format!(", from {source}"));
            Ok(theirs.annotate(format!(
                "RT throttling off (saved runtime {}{from})",
                show(saved(ledger))
            )))
        }
        "on" if !other_instances.is_empty() => {
            // Boosts of stallds that are gone are undone; the RT runtime is the running one's.
            let summary = ledger.replay_dead(sched, RtReplay::Leave, &Logger::new(true))?;
            let outcome = format!(
                "RT throttling left as it is: sched_rt_runtime_us={current}, saved {}: a stalld boosts on this host ({}); it needs RT throttling off, and its stop puts the saved value back",
                show(saved(ledger)),
                other_instances.join("; ")
            );
            if summary.kept > 0 {
                bail!(
                    "{outcome}; {} task(s) left boosted by a stalld that is gone could not be restored",
                    summary.kept
                );
            }
            Ok(outcome)
        }
        "on" => {
            let summary = ledger.replay_dead(sched, RtReplay::Restore, &Logger::new(true))?;
            let _lock = ledger.lock()?;
            let now = read(knob)?;
            let theirs = CToolSave::find(ledger);
            let (value, source) = match (saved(ledger), theirs.runtime) {
                (Some(value), _) => (Some(value), "saved".to_owned()),
                (None, Some(value)) => (Some(value), format!("saved in {}", theirs.source())),
                (None, None) => (None, String::new()),
            };
            let outcome = match value {
                Some(value) => {
                    if value != now {
                        knob.write(value)
                            .with_context(|| format!("unable to write {RT_RUNTIME}"))?;
                    }
                    ledger.remove_rt_record()?;
                    theirs.remove(ledger)?;
                    format!("RT throttling restored: sched_rt_runtime_us={value} ({source})")
                }
                None => format!(
                    "RT throttling left as it is: sched_rt_runtime_us={now} (nothing was saved)"
                ),
            };
            let outcome = theirs.annotate(outcome);
            if summary.kept > 0 {
                bail!(
                    "{outcome}, but {} task(s) left boosted by a stalld that is gone could not be restored",
                    summary.kept
                );
            }
            Ok(outcome)
        }
        "show" => {
            let ours = saved(ledger);
            let theirs = CToolSave::find(ledger);
            let saved = match (ours, theirs.runtime) {
                (None, Some(value)) => format!("{value} ({})", theirs.source()),
                _ => show(ours),
            };
            Ok(theirs.annotate(format!(
                "sched_rt_runtime_us={current} ({}) saved={saved}",
                if current == -1 {
                    "throttling off"
                } else {
                    "throttling on"
                }
            )))
        }
        other => bail!("unknown throttle command '{other}': use off, on or show"),
    }
}

/// `stalld restore`: undoes what every stalld that is gone left behind (boosted tasks, RT
/// throttling it turned off), from the ledger. The unit runs it when the service stops, so
/// nothing is left however the daemon ended. Running daemons are not touched.
///
/// While another stalld boosts, the RT runtime a dead one saved is left to it (it needs RT
/// throttling off; the C stalld and `throttlectl off` kept that value as the original).
pub fn restore_leftovers() -> Result<String> {
    let ledger = open_ledger()?;
    let rt = if crate::daemon::process::instances::boosting_instances(&[]).is_empty() {
        RtReplay::Restore
    } else {
        RtReplay::Leave
    };
    let summary = ledger.replay_dead(&mut Kernel, rt, &Logger::new(true))?;
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
        throttle(command, &scratch.1, knob, &mut FakeSched(world()), &[])
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

    /// A file as the C stalld's `throttlectl off` writes it (mktemp: mode 0600, ours).
    fn c_tool_saved(scratch: &Scratch, name: &str, text: &str) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = scratch.0.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path
    }

    fn knob(value: i64) -> FakeKnob {
        FakeKnob {
            value,
            writes: Vec::new(),
        }
    }

    /// The package upgrade from a running C stalld: its `off` saved 950000 in its own file and
    /// left -1; the restart of the unit is ours: `on` (ExecStopPost) then `off`
    /// (ExecStartPre); then the service stops (`on`). The original comes back, and the C
    /// tool's file is gone once adopted. Also with `off` first (the unit started again
    /// without a stop of ours), and with the C stalld's `off` having found -1 (a host that
    /// keeps RT throttling off: nothing is written).
    #[test]
    fn the_c_tools_save_is_adopted_when_ours_has_none() {
        for (first, found) in [
            ("on", 950_000),
            ("off", 950_000),
            ("on", -1),
            ("off", 1_000_000),
        ] {
            let scratch = Scratch::new(&format!("c-tool-{first}{found}"));
            let file = c_tool_saved(
                &scratch,
                "rtthrottle-Ab3xY9q",
                &format!("period=1000000\nruntime={found}\n"),
            );
            let mut knob = knob(-1);
            let said = run(first, &scratch, &mut knob);
            assert!(
                said.contains("the C stalld's /run/stalld/rtthrottle-Ab3xY9q"),
                "{first}: {said}"
            );
            assert!(!file.exists(), "{first}: the C tool's file is still there");
            if first == "on" {
                assert_eq!(knob.value, found, "{said}");
                run("off", &scratch, &mut knob);
            } else {
                assert_eq!(knob.value, -1, "{said}");
                let saved = scratch.1.rt_record().unwrap().map(|record| record.runtime);
                assert_eq!(saved, Some(found), "{said}");
            }
            let said = run("on", &scratch, &mut knob);
            assert_eq!(knob.value, found, "{said}");
            let expected_writes = if found == -1 {
                vec![]
            } else if first == "on" {
                vec![found, -1, found]
            } else {
                vec![found]
            };
            assert_eq!(knob.writes, expected_writes, "{first} {found}");
        }
    }

    /// Ours saved first stands; a C tool's file beside it is stale and goes. With throttling
    /// on, `off` saves what it finds, not the C tool's older value.
    #[test]
    fn ours_or_the_current_value_wins_over_a_stale_c_tool_save() {
        let scratch = Scratch::new("c-tool-stale");
        let mut knob = knob(800_000);
        run("off", &scratch, &mut knob);
        let file = c_tool_saved(
            &scratch,
            "rtthrottle-0000001",
            "period=1000000\nruntime=950000\n",
        );
        let said = run("on", &scratch, &mut knob);
        assert_eq!(knob.value, 800_000, "{said}");
        assert!(!file.exists());
        let file = c_tool_saved(
            &scratch,
            "rtthrottle-0000002",
            "runtime=950000\nperiod=1000000\n",
        );
        run("off", &scratch, &mut knob);
        assert!(!file.exists());
        assert_eq!(
            scratch.1.rt_record().unwrap().map(|record| record.runtime),
            Some(800_000)
        );
    }

    /// Whatever is in /run/stalld under the C tool's name is hostile input: a link, a FIFO
    /// (which must not block), a directory, a hard link, a file others may write, one too
    /// long, or text that is not exactly the two lines with values the kernel takes, is not
    /// adopted, stays where it is, and the answer says why. Several files that disagree are
    /// not adopted either; several that agree are.
    #[test]
    fn a_c_tool_save_that_is_not_exactly_one_is_ignored() {
        use std::os::unix::fs::PermissionsExt;
        let good = "period=1000000\nruntime=950000\n";
        type Plant = Box<dyn Fn(&Scratch, &str)>;
        let text = |body: &'static str| -> Plant {
            Box::new(move |scratch, name| {
                c_tool_saved(scratch, name, body);
            })
        };
        let cases: Vec<(&str, Plant, &str)> = vec![
            ("no final newline", text("period=1000000\nruntime=950000"), "does not end with a newline"),
            ("unknown key", text("period=1000000\nruntime=950000\nowner=x\n"), "unknown key"),
            ("twice", text("period=1000000\nruntime=950000\nruntime=1\n"), "names runtime twice"),
            ("no period", text("runtime=950000\n"), "has no period"),
            ("blank line", text("period=1000000\n\nruntime=950000\n"), "not key=value"),
            ("spaces", text("period=1000000\nruntime= 950000\n"), "not a number"),
            ("sign", text("period=1000000\nruntime=+950000\n"), "not a number"),
            ("huge", text("period=1000000\nruntime=99999999999\n"), "not a number"),
            ("above the period", text("period=1000000\nruntime=1000001\n"), "within the period"),
            ("below -1", text("period=1000000\nruntime=-2\n"), "within the period"),
            ("period 0", text("period=0\nruntime=-1\n"), "period 0"),
            ("too long", text("period=1000000\nruntime=950000\n#############################################\n"), "longer than"),
            ("not text", Box::new(|scratch: &Scratch, name: &str| {
                let path = scratch.0.join(name);
                std::fs::write(&path, b"period=1\xff\nruntime=1\n").unwrap();
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            }), "not text"),
            ("link", Box::new(move |scratch: &Scratch, name: &str| {
                let target = c_tool_saved(scratch, "target", good);
                std::os::unix::fs::symlink(target, scratch.0.join(name)).unwrap();
            }), "symbolic link"),
            ("fifo", Box::new(|scratch: &Scratch, name: &str| {
                let path = std::ffi::CString::new(scratch.0.join(name).into_os_string().into_encoded_bytes()).unwrap();
                // SAFETY: a valid NUL-terminated path; mkfifo only creates a file.
                assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
            }), "not a regular file"),
            ("directory", Box::new(|scratch: &Scratch, name: &str| {
                std::fs::create_dir(scratch.0.join(name)).unwrap();
            }), "not a regular file"),
            ("hard link", Box::new(move |scratch: &Scratch, name: &str| {
                let other = c_tool_saved(scratch, "elsewhere", good);
                std::fs::hard_link(other, scratch.0.join(name)).unwrap();
            }), "2 hard links"),
            ("writable by others", Box::new(move |scratch: &Scratch, name: &str| {
                let path = c_tool_saved(scratch, name, good);
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
            }), "writable by others"),
        ];
        let name = "rtthrottle-Xq81zzA";
        for (what, plant, why) in cases {
            let scratch = Scratch::new(&format!("c-tool-bad-{}", what.replace(' ', "-")));
            plant(&scratch, name);
            let mut knob = knob(-1);
            let said = run("on", &scratch, &mut knob);
            assert!(
                said.starts_with("RT throttling left as it is"),
                "{what}: {said}"
            );
            assert!(said.contains("; ignored /"), "{what}: {said}");
            assert!(said.contains(why), "{what}: expected '{why}' in: {said}");
            assert!(knob.writes.is_empty(), "{what}: {:?}", knob.writes);
            assert!(
                std::fs::symlink_metadata(scratch.0.join(name)).is_ok(),
                "{what}: removed"
            );
        }
        // A name mktemp does not make.
        let scratch = Scratch::new("c-tool-bad-name");
        c_tool_saved(&scratch, "rtthrottle.old", good);
        let said = run("on", &scratch, &mut knob(-1));
        assert!(
            said.contains("not a name the C stalld's throttlectl writes"),
            "{said}"
        );
        // Several: they agree (adopted, all removed), or not (neither).
        let scratch = Scratch::new("c-tool-several");
        c_tool_saved(&scratch, "rtthrottle-aaaaaaa", good);
        c_tool_saved(
            &scratch,
            "rtthrottle-bbbbbbb",
            "period=1000000\nruntime=900000\n",
        );
        let mut disagree = knob(-1);
        let said = run("on", &scratch, &mut disagree);
        assert!(said.contains("they disagree"), "{said}");
        assert!(disagree.writes.is_empty());
        c_tool_saved(&scratch, "rtthrottle-bbbbbbb", good);
        let mut agree = knob(-1);
        let said = run("on", &scratch, &mut agree);
        assert_eq!(agree.value, 950_000, "{said}");
        assert!(
            !scratch.0.join("rtthrottle-aaaaaaa").exists()
                && !scratch.0.join("rtthrottle-bbbbbbb").exists()
        );
    }

    /// A file of another user is not adopted (root only: giving a file away needs it).
    #[test]
    fn a_c_tool_save_of_another_user_is_ignored() {
        if !crate::sys::is_root() {
            eprintln!("SKIPPED (not root): a C tool's save file of another user being ignored");
            return;
        }
        let scratch = Scratch::new("c-tool-other-user");
        let path = c_tool_saved(
            &scratch,
            "rtthrottle-Nobody1",
            "period=1000000\nruntime=950000\n",
        );
        std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
        let mut knob = knob(-1);
        let said = run("on", &scratch, &mut knob);
        assert!(said.contains("is owned by uid 65534"), "{said}");
        assert!(knob.writes.is_empty() && path.exists());
    }

    /// While another stalld boosts, `on` leaves RT throttling off and the saved value (ours
    /// and the C tool's) for that one's own stop.
    #[test]
    fn on_leaves_rt_throttling_to_a_stalld_that_boosts() {
        let scratch = Scratch::new("other-boosts");
        let mut knob = knob(950_000);
        run("off", &scratch, &mut knob);
        let file = c_tool_saved(
            &scratch,
            "rtthrottle-Other11",
            "period=1000000\nruntime=950000\n",
        );
        let others = ["pid 42: /usr/bin/stalld --systemd".to_owned()];
        let said = throttle(
            "on",
            &scratch.1,
            &mut knob,
            &mut FakeSched(world()),
            &others,
        )
        .unwrap();
        assert!(
            said.contains("a stalld boosts on this host (pid 42: /usr/bin/stalld --systemd)"),
            "{said}"
        );
        assert_eq!(knob.value, -1);
        assert_eq!(
            scratch.1.rt_record().unwrap().map(|record| record.runtime),
            Some(950_000)
        );
        assert!(file.exists());
        run("on", &scratch, &mut knob);
        assert_eq!(knob.value, 950_000);
    }
}
