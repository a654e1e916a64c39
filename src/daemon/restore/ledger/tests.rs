//! The ledger's files and replays, on a private directory with a fake kernel: no root needed.

use super::*;
use crate::boost::fake::{world, FakeSched, Shared};
use crate::sys::{SCHED_DEADLINE, SCHED_FIFO, SCHED_OTHER};
use crate::task::Pid;
use std::os::unix::fs::PermissionsExt;

/// A fresh ledger directory under the system's temporary directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("stalld-ledger-test-{}-{test}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn fifo(priority: u32) -> SchedAttr {
    SchedAttr {
        rt_priority: priority,
        ..SchedAttr::new(SCHED_FIFO)
    }
}

fn record(tid: Pid, saved: SchedAttr) -> BoostRecord {
    BoostRecord {
        tid,
        start: 1000 + tid as u64,
        cpu: 1,
        saved,
        runtime_ns: 20_000,
        period_ns: 1_000_000_000,
        policy: BoostPolicy::Deadline,
    }
}

/// Our DEADLINE boost, as the kernel reports it.
fn deadline_boost() -> SchedAttr {
    SchedAttr {
        flags: crate::sys::SCHED_FLAG_RESET_ON_FORK,
        runtime: 20_000,
        deadline: 1_000_000_000,
        period: 1_000_000_000,
        ..SchedAttr::new(SCHED_DEADLINE)
    }
}

/// The daemon dies: its lock is released, nothing is cleaned up.
fn crash(mut instance: Instance) {
    instance.lock.take();
    std::mem::forget(instance);
}

fn quiet() -> Logger {
    Logger::new(false)
}

#[test]
fn boost_records_round_trip_and_garbage_is_refused() {
    let record = BoostRecord {
        saved: SchedAttr {
            nice: -5,
            flags: 1,
            util_max: 1024,
            ..SchedAttr::new(SCHED_OTHER)
        },
        ..record(87, SchedAttr::default())
    };
    let text = record_text(&record);
    assert_eq!(parse_record(&text), Some(record));
    assert_eq!(text.lines().count(), 1);
    assert_eq!(parse_record(""), None);
    assert_eq!(parse_record(&text.replace("tid=87", "tid=-87")), None);
    assert_eq!(parse_record(&text.replace("tid=87 ", "")), None);
    assert_eq!(parse_record(&text.replace("cpu=1", "cpu=x")), None);
    assert_eq!(parse_record(&format!("{text} junk")), None);
}

#[test]
fn the_rt_record_reads_what_throttlectl_off_always_wrote() {
    assert_eq!(
        RtRecord::parse("950000"),
        Some(RtRecord {
            runtime: 950_000,
            owner: None
        })
    );
    let owned = RtRecord {
        runtime: 800_000,
        owner: Some("instance.12.34".into()),
    };
    assert_eq!(RtRecord::parse(&owned.to_text()), Some(owned));
    assert_eq!(RtRecord::parse("950000\nowner ../../etc\n"), None);
    assert_eq!(RtRecord::parse("on\n"), None);
}

#[test]
fn the_directory_is_made_private_and_a_symlink_is_refused() {
    let scratch = Scratch::new("private");
    let ledger = Ledger::open(&scratch.0).unwrap();
    let mode = |path: &Path| fs::metadata(path).unwrap().mode() & 0o777;
    assert_eq!(mode(&ledger.dir), 0o700);
    fs::set_permissions(&scratch.0, fs::Permissions::from_mode(0o755)).unwrap();
    Ledger::open(&scratch.0).unwrap();
    assert_eq!(mode(&scratch.0), 0o700);

    let link = Scratch::new("symlink");
    std::os::unix::fs::symlink(&scratch.0, &link.0).unwrap();
    let error = Ledger::open(&link.0).unwrap_err();
    assert!(
        error.to_string().contains(&link.0.display().to_string()),
        "{error}"
    );
}

#[test]
fn an_instance_keeps_its_records_and_removes_its_directory_when_done() {
    let scratch = Scratch::new("instance");
    let ledger = Ledger::open(&scratch.0).unwrap();
    let mut instance = ledger.begin_instance().unwrap();
    let dir = instance.dir();
    assert!(dir.join(INSTANCE_LOCK).exists());
    let mut records = instance.records();
    let boost = record(87, fifo(5));
    records.record(&boost).unwrap();
    let file = dir.join(record_name(&boost));
    assert_eq!(
        parse_record(&fs::read_to_string(&file).unwrap()),
        Some(boost)
    );
    assert_eq!(fs::metadata(&file).unwrap().mode() & 0o777, 0o600);
    // Live: a replay leaves it alone.
    let world = world();
    let summary = ledger
        .replay_dead(&mut FakeSched(world.clone()), RtReplay::Restore, &quiet())
        .unwrap();
    assert_eq!(summary, Summary::default());
    assert!(file.exists());
    assert!(world.borrow().calls.is_empty());
    // A record left at the end keeps the directory; none left removes it.
    assert_eq!(instance.close(), 1);
    assert!(file.exists());
    drop(instance);
    assert!(dir.exists());
    let mut instance = ledger.begin_instance_named("instance.1.2").unwrap();
    let mut records = instance.records();
    records.record(&boost).unwrap();
    records.forget(&boost);
    records.forget(&boost);
    let dir = instance.dir();
    assert_eq!(instance.close(), 0);
    assert!(!dir.exists());
}

/// Three boosts of a daemon that was killed: one task still boosted, one exited, one
/// re-prioritised by its owner meanwhile; and one that refuses every restore.
fn dead_instance(ledger: &Ledger, world: &Shared) -> (String, Vec<BoostRecord>) {
    let instance = ledger.begin_instance().unwrap();
    let mut records = instance.records();
    let boosts: Vec<BoostRecord> = (1..=4).map(|tid| record(tid, fifo(5))).collect();
    for boost in &boosts {
        records.record(boost).unwrap();
    }
    let mut world = world.borrow_mut();
    world.spawn(1, boosts[0].start, deadline_boost());
    world.spawn(3, boosts[2].start, fifo(50));
    world.spawn(4, boosts[3].start, deadline_boost());
    let name = instance.name().to_owned();
    crash(instance);
    (name, boosts)
}

#[test]
fn a_dead_instance_is_replayed_and_what_cannot_be_restored_is_kept() {
    let scratch = Scratch::new("replay");
    let ledger = Ledger::open(&scratch.0).unwrap();
    let world = world();
    let (name, boosts) = dead_instance(&ledger, &world);
    let mut sched = FailFor {
        inner: FakeSched(world.clone()),
        tid: 4,
    };
    assert_eq!(ledger.leftovers(), 4);
    let summary = ledger
        .replay_dead(&mut sched, RtReplay::Restore, &quiet())
        .unwrap();
    assert_eq!(
        summary,
        Summary {
            restored: 1,
            kept: 1
        }
    );
    let world = world.borrow();
    assert_eq!(world.attr(1), fifo(5), "restored");
    assert_eq!(world.attr(3), fifo(50), "their change is kept");
    assert_eq!(world.attr(4), deadline_boost(), "refused");
    let attempts = world.sets().iter().filter(|(tid, _)| *tid == 4).count();
    assert_eq!(attempts, RESTORE_ATTEMPTS as usize);
    // Only the record that could not be restored is left, and the directory with it.
    let dir = scratch.0.join(&name);
    let left: Vec<String> = names_in(&dir)
        .unwrap()
        .into_iter()
        .filter(|n| n.starts_with(BOOST_PREFIX))
        .collect();
    assert_eq!(left, [record_name(&boosts[3])]);
    drop(world);
    // The next replay tries again; once it succeeds the directory goes.
    let summary = ledger
        .replay_dead(
            &mut FakeSched(sched.inner.0.clone()),
            RtReplay::Restore,
            &quiet(),
        )
        .unwrap();
    assert_eq!(
        summary,
        Summary {
            restored: 1,
            kept: 0
        }
    );
    assert!(!dir.exists());
    assert_eq!(ledger.leftovers(), 0);
}

#[test]
fn a_record_that_cannot_be_read_is_kept_with_its_directory() {
    let scratch = Scratch::new("unreadable");
    let ledger = Ledger::open(&scratch.0).unwrap();
    let world = world();
    let (name, _) = dead_instance(&ledger, &world);
    // Reading it fails (a directory where a record should be), not parsing it.
    let unreadable = scratch.0.join(&name).join(format!("{BOOST_PREFIX}99.1"));
    fs::create_dir(&unreadable).unwrap();
    let summary = ledger
        .replay_dead(&mut FakeSched(world.clone()), RtReplay::Restore, &quiet())
        .unwrap();
    assert_eq!(summary.kept, 1, "{summary:?}");
    assert!(unreadable.exists(), "what could not be read is not deleted");
}

#[test]
fn the_guardian_replays_its_daemons_instance_once_the_daemon_is_gone() {
    let scratch = Scratch::new("guardian");
    let ledger = Ledger::open(&scratch.0).unwrap();
    let world = world();
    let (name, _) = dead_instance(&ledger, &world);
    let summary = ledger
        .replay_after_death(&name, &mut FakeSched(world.clone()), &quiet())
        .unwrap();
    assert_eq!(
        summary,
        Summary {
            restored: 2,
            kept: 0
        }
    );
    assert!(!scratch.0.join(&name).exists());
    // Gone already (the daemon cleaned up, or someone replayed it first): nothing to do.
    let summary = ledger
        .replay_after_death(&name, &mut FakeSched(world.clone()), &quiet())
        .unwrap();
    assert_eq!(summary, Summary::default());
    assert!(ledger
        .replay_after_death("../etc", &mut FakeSched(world), &quiet())
        .is_err());
}

#[test]
fn a_record_that_is_not_ours_is_dropped_and_a_half_made_instance_is_skipped() {
    let scratch = Scratch::new("garbage");
    let ledger = Ledger::open(&scratch.0).unwrap();
    let instance = ledger.begin_instance().unwrap();
    let dir = instance.dir();
    fs::write(dir.join("boost.9.9"), "nonsense").unwrap();
    crash(instance);
    fs::create_dir(scratch.0.join(".new.instance.5.5")).unwrap();
    let summary = ledger
        .replay_dead(&mut FakeSched(world()), RtReplay::Restore, &quiet())
        .unwrap();
    assert_eq!(summary, Summary::default());
    assert!(!dir.exists());
    assert!(scratch.0.join(".new.instance.5.5").exists());
}

/// The fake kernel, except that every setattr of `tid` fails.
struct FailFor {
    inner: FakeSched,
    tid: Pid,
}

impl SchedOps for FailFor {
    fn getattr(&self, pid: Pid) -> io::Result<SchedAttr> {
        self.inner.getattr(pid)
    }

    fn setattr(&mut self, pid: Pid, attr: &SchedAttr) -> io::Result<()> {
        if pid == self.tid {
            self.inner
                .0
                .borrow_mut()
                .calls
                .push(crate::boost::fake::Call::Set(pid, *attr));
            return Err(io::Error::from_raw_os_error(libc::EPERM));
        }
        self.inner.setattr(pid, attr)
    }

    fn start_time(&self, pid: Pid) -> Option<u64> {
        self.inner.start_time(pid)
    }

    fn now(&self) -> crate::task::MonoTime {
        self.inner.now()
    }

    fn run_stats(&self, pid: Pid) -> Option<crate::boost::RunStats> {
        self.inner.run_stats(pid)
    }

    fn limits(&self, pid: Pid) -> crate::boost::SelfLimits {
        self.inner.limits(pid)
    }

    fn runnable(&self, pid: Pid) -> Option<bool> {
        self.inner.runnable(pid)
    }
}
