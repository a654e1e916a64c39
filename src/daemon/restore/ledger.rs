//! The ledger: what stalld has changed on the machine, written down in `/run/stalld` *before*
//! each change and struck out after it is undone, so that whatever kills stalld (SIGKILL of
//! the whole cgroup, the OOM killer, a crash of the daemon and its guardian together), the
//! next stalld, `stalld restore` or `throttlectl on` can put the machine back.
//!
//! ```text
//! /run/stalld/                        0700, root's
//!   ledger.lock                       flock: one reader or writer of the ledger at a time
//!   sched_rt_runtime_us               the original RT runtime ("950000", then "owner NAME"
//!                                     when a daemon saved it; no owner: `throttlectl off`)
//!   rtthrottle-XXXXXXX                the C stalld's `throttlectl off` save (period=, runtime=):
//!                                     adopted, then removed, by ours when it has none
//!   instance.PID.START/               one per daemon that boosts (PID and start time of its
//!     lock                            first process), flock-held by it for its whole life:
//!     boost.TID.START                 free means it is gone; one record per boost (rewritten
//!                                     when a DEADLINE boost falls back to SCHED_FIFO)
//! ```
//!
//! Files are opened with O_NOFOLLOW and replaced by rename, so a record is whole or absent.
//! A daemon never touches another live daemon's records; it replays the dead ones' at start.

use std::collections::HashMap;
use std::fs::{self, DirBuilder, File, OpenOptions, TryLockError};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::boost::{self, BoostLedger, BoostRecord, Restore, SchedOps, RESTORE_ATTEMPTS};
use crate::config::BoostPolicy;
use crate::daemon::log::Logger;
use crate::daemon::process::rundir;
use crate::event::Event;
use crate::rt_runtime;
use crate::sys::{self, SchedAttr};

pub const RUN_DIR: &str = rundir::RUNTIME_DIR;
const GLOBAL_LOCK: &str = "ledger.lock";
/// The same file `throttlectl off` has always saved the value in.
const RT_RECORD: &str = "sched_rt_runtime_us";
const INSTANCE_PREFIX: &str = "instance.";
const INSTANCE_LOCK: &str = "lock";
const BOOST_PREFIX: &str = "boost.";
/// A new file is written here first, then renamed over its name.
const TEMPORARY_PREFIX: &str = ".tmp.";
/// A new instance directory is made here first, then renamed once its lock is held.
const NEW_INSTANCE_PREFIX: &str = ".new.";
/// No record is longer; anything longer is not ours.
const RECORD_LIMIT: u64 = 4096;
/// The C stalld's `throttlectl off` saves the RT period and runtime it found in a file of
/// this name (`mktemp rtthrottle-XXXXXXX`) in the same directory, as `period=` and `runtime=`
/// lines, mode 0600 (its `on` never reads it back: upstream-spec §2).
const C_RT_SAVE_PREFIX: &str = "rtthrottle";
/// Two lines of at most 11 characters each: anything longer is not the C tool's.
const C_RT_SAVE_LIMIT: u64 = 64;

/// Whether a replay puts RT throttling back when the dead daemon had turned it off. A `-S`
/// daemon leaves RT throttling to the unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RtReplay {
    Restore,
    Leave,
}

/// What a replay did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Tasks given their own attributes back.
    pub restored: usize,
    /// Tasks that could not be restored; their records stay.
    pub kept: usize,
}

impl std::ops::AddAssign for Summary {
    fn add_assign(&mut self, other: Summary) {
        self.restored += other.restored;
        self.kept += other.kept;
    }
}

/// The saved `sched_rt_runtime_us`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtRecord {
    pub runtime: i64,
    /// The instance that turned throttling off and puts it back; `None`: `throttlectl off`.
    pub owner: Option<String>,
}

impl RtRecord {
    fn to_text(&self) -> String {
        match &self.owner {
            Some(owner) => format!("{}\nowner {owner}\n", self.runtime),
            None => format!("{}\n", self.runtime),
        }
    }

    fn parse(text: &str) -> Option<RtRecord> {
        let mut lines = text.lines();
        let runtime = lines.next()?.trim().parse().ok()?;
        let owner = match lines.next() {
            None => None,
            Some(line) => Some(valid_name(line.strip_prefix("owner ")?.trim())?.to_owned()),
        };
        Some(RtRecord { runtime, owner })
    }
}

/// What the C stalld's `throttlectl off` saved in one of its `rtthrottle-XXXXXXX` files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CRtSave {
    /// The file's name in the ledger's directory.
    pub name: String,
    pub period: i64,
    pub runtime: i64,
}

impl CRtSave {
    /// The file's text, strictly: a `period=N` and a `runtime=N` line, each once, in either
    /// order, each ending with a newline, nothing else; the values as the kernel takes them
    /// (period 1..=INT_MAX us, runtime -1 or 0..=period).
    fn parse(name: &str, text: &str) -> Result<CRtSave, String> {
        let number = |value: &str| {
            let digits = value.strip_prefix('-').unwrap_or(value);
            let plain = !digits.is_empty() && digits.len() <= 10;
            plain
                .then_some(digits)
                .filter(|digits| digits.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|_| value.parse::<i64>().ok())
        };
        let body = text
            .strip_suffix('\n')
            .ok_or("does not end with a newline")?;
        let (mut period, mut runtime) = (None, None);
        for line in body.split('\n') {
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| format!("has a line that is not key=value: {line:?}"))?;
            let slot = match key {
                "period" => &mut period,
                "runtime" => &mut runtime,
                _ => return Err(format!("has an unknown key {key:?}")),
            };
            if slot.is_some() {
                return Err(format!("names {key} twice"));
            }
            *slot = Some(number(value).ok_or_else(|| format!("{key} is not a number: {value:?}"))?);
        }
        let period = period.ok_or("has no period")?;
        let runtime = runtime.ok_or("has no runtime")?;
        if !(1..=i64::from(i32::MAX)).contains(&period) {
            return Err(format!("period {period} is not one the kernel takes"));
        }
        if runtime != -1 && !(0..=period).contains(&runtime) {
            return Err(format!(
                "runtime {runtime} is neither -1 nor within the period {period}"
            ));
        }
        Ok(CRtSave {
            name: name.to_owned(),
            period,
            runtime,
        })
    }
}

/// Whether `name` is one `mktemp rtthrottle-XXXXXXX` makes.
fn is_c_rt_save_name(name: &str) -> bool {
    name.strip_prefix(C_RT_SAVE_PREFIX)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|suffix| {
            (1..=32).contains(&suffix.len()) && suffix.bytes().all(|b| b.is_ascii_alphanumeric())
        })
}

/// The text of a C tool's save file, read as hostile input: never through a link
/// (O_NOFOLLOW), never blocking (a FIFO), only a regular file of ours (root's, for the daemon)
/// with one name, that nobody else may write, and short.
fn read_c_rt_save(path: &Path) -> Result<String, String> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|error| match error.raw_os_error() {
            Some(libc::ELOOP) => "is a symbolic link".to_owned(),
            _ => error.to_string(),
        })?;
    let meta = file.metadata().map_err(|error| error.to_string())?;
    if !meta.file_type().is_file() {
        return Err("is not a regular file".into());
    }
    if meta.uid() != sys::euid() {
        return Err(format!(
            "is owned by uid {}, not by us (uid {})",
            meta.uid(),
            sys::euid()
        ));
    }
    if meta.nlink() != 1 {
        return Err(format!("has {} hard links", meta.nlink()));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "is writable by others (mode {:o})",
            meta.mode() & 0o7777
        ));
    }
    let mut bytes = Vec::new();
    file.take(C_RT_SAVE_LIMIT + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| error.to_string())?;
    if bytes.len() as u64 > C_RT_SAVE_LIMIT {
        return Err(format!("is longer than {C_RT_SAVE_LIMIT} bytes"));
    }
    String::from_utf8(bytes).map_err(|_| "is not text".to_owned())
}

/// An instance name as the ledger writes them (nothing that could walk out of the directory).
fn valid_name(name: &str) -> Option<&str> {
    let ok = name.starts_with(INSTANCE_PREFIX)
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_');
    ok.then_some(name)
}

fn record_name(record: &BoostRecord) -> String {
    record_file(record.tid, record.start)
}

/// The file of the record of task `tid` started at `start`.
fn record_file(tid: crate::task::Pid, start: u64) -> String {
    format!("{BOOST_PREFIX}{tid}.{start}")
}

fn record_text(r: &BoostRecord) -> String {
    let a = &r.saved;
    let boost_policy = match r.policy {
        BoostPolicy::Deadline => "deadline",
        BoostPolicy::Fifo => "fifo",
    };
    format!(
        "tid={} start={} cpu={} boost_runtime={} boost_period={} boost_policy={boost_policy} \
         policy={} flags={} nice={} rt_priority={} runtime={} deadline={} period={} \
         util_min={} util_max={}\n",
        r.tid,
        r.start,
        r.cpu,
        r.runtime_ns,
        r.period_ns,
        a.policy,
        a.flags,
        a.nice,
        a.rt_priority,
        a.runtime,
        a.deadline,
        a.period,
        a.util_min,
        a.util_max
    )
}

fn parse_record(text: &str) -> Option<BoostRecord> {
    let fields: HashMap<&str, &str> = text
        .split_ascii_whitespace()
        .map(|word| word.split_once('='))
        .collect::<Option<_>>()?;
    let get = |key: &str| fields.get(key)?.parse::<i64>().ok();
    let unsigned = |key: &str| u64::try_from(get(key)?).ok();
    let small = |key: &str| u32::try_from(get(key)?).ok();
    Some(BoostRecord {
        tid: i32::try_from(get("tid")?).ok().filter(|&tid| tid > 0)?,
        start: unsigned("start")?,
        cpu: small("cpu")?,
        runtime_ns: unsigned("boost_runtime")?,
        period_ns: unsigned("boost_period")?,
        // Anything but `deadline` (a record written before the field existed) reads as
        // FIFO 98 possible, the wider reading.
        policy: match fields.get("boost_policy").copied() {
            Some("deadline") => BoostPolicy::Deadline,
            _ => BoostPolicy::Fifo,
        },
        saved: SchedAttr {
            flags: unsigned("flags")?,
            nice: i32::try_from(get("nice")?).ok()?,
            rt_priority: small("rt_priority")?,
            runtime: unsigned("runtime")?,
            deadline: unsigned("deadline")?,
            period: unsigned("period")?,
            util_min: small("util_min")?,
            util_max: small("util_max")?,
            ..SchedAttr::new(small("policy")?)
        },
    })
}

fn open_nofollow(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Opens (creating) a lock file.
fn open_lock(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

fn read_small(path: &Path) -> io::Result<String> {
    let mut text = String::new();
    open_nofollow(path)?
        .take(RECORD_LIMIT)
        .read_to_string(&mut text)?;
    Ok(text)
}

/// Writes `text` to `dir/name` whole or not at all: a temporary file renamed over the name.
fn write_atomically(dir: &Path, name: &str, text: &str) -> io::Result<()> {
    let temporary = dir.join(format!("{TEMPORARY_PREFIX}{name}"));
    let _ = fs::remove_file(&temporary);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&temporary)?;
    file.write_all(text.as_bytes())?;
    drop(file);
    fs::rename(&temporary, dir.join(name))
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

fn names_in(dir: &Path) -> io::Result<Vec<String>> {
    let mut names: Vec<String> = fs::read_dir(dir)?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    Ok(names)
}

/// `/run/stalld`, checked to be a root-only directory.
#[derive(Clone, Debug)]
pub struct Ledger {
    dir: PathBuf,
}

impl Ledger {
    /// Opens the ledger at `dir` ([`rundir::ensure`]: created 0700 if missing; a symbolic link
    /// or a directory not ours is refused, a too open one made 0700).
    pub fn open(dir: &Path) -> io::Result<Ledger> {
        rundir::ensure(dir)?;
        Ok(Ledger {
            dir: dir.to_owned(),
        })
    }

    /// The ledger at `dir` if it exists and is ours, for looking only (nothing is created).
    pub fn open_existing(dir: &Path) -> io::Result<Ledger> {
        let meta = fs::symlink_metadata(dir)?;
        if !meta.file_type().is_dir() || meta.uid() != sys::euid() {
            return Err(io::ErrorKind::PermissionDenied.into());
        }
        Ok(Ledger {
            dir: dir.to_owned(),
        })
    }

    /// Takes the ledger's lock (blocking): every change of the ledger holds it.
    pub fn lock(&self) -> io::Result<File> {
        let file = open_lock(&self.dir.join(GLOBAL_LOCK))?;
        file.lock()?;
        Ok(file)
    }

    /// Starts the records of this process (a daemon that boosts): a directory whose lock it
    /// holds until it exits.
    pub fn begin_instance(&self) -> io::Result<Instance> {
        let pid = std::process::id() as crate::task::Pid;
        let start = boost::start_time(pid).unwrap_or(0);
        self.begin_instance_named(&format!("{INSTANCE_PREFIX}{pid}.{start}"))
    }

    fn begin_instance_named(&self, name: &str) -> io::Result<Instance> {
        let name = name.to_owned();
        // Made and locked under a name replays skip, then renamed: a replay never sees an
        // instance directory whose lock nobody holds yet.
        let new = self.dir.join(format!("{NEW_INSTANCE_PREFIX}{name}"));
        let _ = fs::remove_dir_all(&new);
        DirBuilder::new().mode(0o700).create(&new)?;
        let lock = open_lock(&new.join(INSTANCE_LOCK))?;
        lock.try_lock().map_err(io::Error::from)?;
        fs::rename(&new, self.dir.join(&name))?;
        Ok(Instance {
            ledger: self.clone(),
            name,
            lock: Some(lock),
        })
    }

    /// The saved RT runtime, if any.
    pub fn rt_record(&self) -> io::Result<Option<RtRecord>> {
        match read_small(&self.dir.join(RT_RECORD)) {
            Ok(text) => Ok(RtRecord::parse(&text)),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }

    pub fn save_rt_record(&self, record: &RtRecord) -> io::Result<()> {
        write_atomically(&self.dir, RT_RECORD, &record.to_text())
    }

    pub fn remove_rt_record(&self) -> io::Result<()> {
        remove_if_present(&self.dir.join(RT_RECORD))
    }

    /// What the C stalld's `throttlectl off` saved here: every valid `rtthrottle-*` file, and
    /// for each other file of that name why it was not taken (left where it is).
    pub fn c_rt_saves(&self) -> io::Result<(Vec<CRtSave>, Vec<String>)> {
        let (mut saves, mut refused) = (Vec::new(), Vec::new());
        for name in names_in(&self.dir)? {
            if !name.starts_with(C_RT_SAVE_PREFIX) {
                continue;
            }
            let path = self.dir.join(&name);
            let found = if is_c_rt_save_name(&name) {
                read_c_rt_save(&path).and_then(|text| CRtSave::parse(&name, &text))
            } else {
                Err("is not a name the C stalld's throttlectl writes".into())
            };
            match found {
                Ok(save) => saves.push(save),
                Err(why) => refused.push(format!(
                    "{} {why}",
                    crate::task::escape_name(path.as_os_str().as_encoded_bytes())
                )),
            }
        }
        Ok((saves, refused))
    }

    /// Removes a C tool's save file once its value is ours (or stale), as its own `on` and
    /// `off` remove it.
    pub fn remove_c_rt_save(&self, save: &CRtSave) -> io::Result<()> {
        remove_if_present(&self.dir.join(&save.name))
    }

    /// Instance directories, live or dead.
    fn instances(&self) -> io::Result<Vec<String>> {
        Ok(names_in(&self.dir)?
            .into_iter()
            .filter(|name| valid_name(name).is_some())
            .collect())
    }

    /// The lock of instance `name`, taken: `Ok(None)` while its daemon lives.
    fn take_instance(&self, name: &str) -> io::Result<Option<Option<File>>> {
        let lock = match open_nofollow(&self.dir.join(name).join(INSTANCE_LOCK)) {
            Ok(lock) => lock,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Some(None)),
            Err(error) => return Err(error),
        };
        match lock.try_lock() {
            Ok(()) => Ok(Some(Some(lock))),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(error)) => Err(error),
        }
    }

    /// Undoes what every dead instance left: its boosts, and with [`RtReplay::Restore`] the RT
    /// runtime it saved. Live instances (another stalld running) are not touched.
    pub fn replay_dead(
        &self,
        sched: &mut dyn SchedOps,
        rt: RtReplay,
        logger: &Logger,
    ) -> io::Result<Summary> {
        let _lock = self.lock()?;
        let mut summary = Summary::default();
        for name in self.instances()? {
            match self.take_instance(&name) {
                Ok(Some(_held)) => summary += self.replay_instance(&name, sched, rt, logger),
                Ok(None) => {}
                Err(error) => logger.warn(&format!("ledger: {name}: {error}")),
            }
        }
        // An owner that is gone without a directory was killed between removing its
        // directory and putting the value back.
        if let (
            RtReplay::Restore,
            Ok(Some(RtRecord {
                owner: Some(owner), ..
            })),
        ) = (rt, self.rt_record())
        {
            if !self.dir.join(&owner).exists() {
                self.put_rt_runtime_back(&owner, logger, false);
            }
        }
        Ok(summary)
    }

    /// The guardian's part: waits until the daemon of instance `name` is gone (its lock is
    /// free), then undoes what it left, RT throttling included.
    pub fn replay_after_death(
        &self,
        name: &str,
        sched: &mut dyn SchedOps,
        logger: &Logger,
    ) -> io::Result<Summary> {
        let name = valid_name(name)
            .ok_or_else(|| io::Error::other(format!("{name}: not an instance of the ledger")))?;
        match open_nofollow(&self.dir.join(name).join(INSTANCE_LOCK)) {
            // Blocks while the daemon lives. Released at once: under the ledger's lock it is
            // taken again, so a replay by someone else meanwhile is seen, not repeated.
            Ok(lock) => {
                lock.lock()?;
                drop(lock);
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Summary::default()),
            Err(error) => return Err(error),
        }
        let _lock = self.lock()?;
        if !self.dir.join(name).exists() {
            return Ok(Summary::default());
        }
        match self.take_instance(name)? {
            Some(_held) => Ok(self.replay_instance(name, sched, RtReplay::Restore, logger)),
            None => Ok(Summary::default()),
        }
    }

    /// Restores the records of dead instance `name` (retrying failures a few times), puts
    /// its RT runtime back, and removes the directory unless records had to be kept. Called
    /// with the ledger's lock and the instance's lock held.
    fn replay_instance(
        &self,
        name: &str,
        sched: &mut dyn SchedOps,
        rt: RtReplay,
        logger: &Logger,
    ) -> Summary {
        let dir = self.dir.join(name);
        let mut pending = Vec::new();
        // Records that could not be read now: they stay, and so does the directory.
        let mut unread = 0;
        for file in names_in(&dir).unwrap_or_default() {
            if !file.starts_with(BOOST_PREFIX) {
                continue;
            }
            let path = dir.join(&file);
            match read_small(&path).map(|text| parse_record(&text)) {
                Ok(Some(record)) => pending.push((path, record)),
                Ok(None) => {
                    logger.warn(&format!(
                        "ledger: {name}/{file} is not a boost record; removed"
                    ));
                    let _ = fs::remove_file(&path);
                }
                Err(error) => {
                    logger.warn(&format!("ledger: {name}/{file}: {error}; kept"));
                    unread += 1;
                }
            }
        }
        let records = pending.len();
        let mut summary = Summary::default();
        let mut attempt = 1;
        loop {
            let mut failed = Vec::new();
            for (path, record) in pending {
                match boost::restore(sched, &record) {
                    Restore::Failed(error) => failed.push((path, record, error)),
                    outcome => {
                        let _ = fs::remove_file(&path);
                        report_leftover(&record, &outcome, logger);
                        summary.restored += usize::from(matches!(
                            outcome,
                            Restore::Restored | Restore::Undone { .. }
                        ));
                    }
                }
            }
            if failed.is_empty() || attempt == RESTORE_ATTEMPTS {
                for (_, record, error) in &failed {
                    logger.event(&Event::LeftoverKept {
                        cpu: record.cpu,
                        tid: record.tid,
                        error: error.to_string(),
                    });
                }
                summary.kept = failed.len() + unread;
                break;
            }
            std::thread::sleep(boost::retry_delay(attempt));
            attempt += 1;
            pending = failed
                .into_iter()
                .map(|(path, record, _)| (path, record))
                .collect();
        }
        if rt == RtReplay::Restore {
            self.put_rt_runtime_back(name, logger, false);
        }
        if summary.kept == 0 {
            remove_instance_dir(&dir);
        }
        if records > 0 {
            logger.event(&Event::LedgerReplayed {
                instance: name.to_owned(),
                restored: summary.restored,
                kept: summary.kept,
            });
        }
        summary
    }

    /// Writes back the RT runtime `owner` saved (`always`: whatever the runtime is now, as the
    /// owner itself does at exit; else only while throttling is still off) and strikes the
    /// record; a failed write keeps it for the next try. Called with the ledger's lock held.
    pub fn put_rt_runtime_back(&self, owner: &str, logger: &Logger, always: bool) {
        let Ok(Some(record)) = self.rt_record() else {
            return;
        };
        if record.owner.as_deref() != Some(owner) {
            return;
        }
        if always || matches!(rt_runtime::read(), Ok(-1)) {
            let runtime = record.runtime;
            if let Err(error) = rt_runtime::write(runtime) {
                logger.event(&Event::RtThrottlingRestoreFailed {
                    runtime,
                    error: error.to_string(),
                });
                return;
            }
            logger.event(&Event::RtThrottlingRestored { runtime });
        }
        let _ = self.remove_rt_record();
    }

    /// Whether any instance keeps a record of task `tid` started at `start` (a boost whose
    /// restore failed; this daemon's own records included).
    pub fn keeps(&self, tid: crate::task::Pid, start: u64) -> bool {
        let name = record_file(tid, start);
        self.instances()
            .unwrap_or_default()
            .iter()
            .any(|instance| fs::symlink_metadata(self.dir.join(instance).join(&name)).is_ok())
    }

    /// Dead instances that left boosts, without touching anything (for `-l`).
    pub fn leftovers(&self) -> usize {
        self.instances()
            .unwrap_or_default()
            .iter()
            .filter(|name| matches!(self.take_instance(name), Ok(Some(_))))
            .map(|name| {
                names_in(&self.dir.join(name))
                    .unwrap_or_default()
                    .iter()
                    .filter(|file| file.starts_with(BOOST_PREFIX))
                    .count()
            })
            .sum()
    }
}

fn report_leftover(record: &BoostRecord, outcome: &Restore, logger: &Logger) {
    let (cpu, tid) = (record.cpu, record.tid);
    match outcome {
        Restore::Restored | Restore::Undone { .. } => logger.event(&Event::LeftoverRestored {
            cpu,
            tid,
            policy: record.saved.policy,
        }),
        Restore::Exited => logger.log(&format!(
            "pid {tid}, left boosted by a stalld that is gone, has exited since"
        )),
        Restore::ChangedMeanwhile { policy } => logger.log(&format!(
            "pid {tid}, left boosted by a stalld that is gone, no longer holds the boost ({}): left so",
            sys::policy_name(*policy)
        )),
        Restore::Retry { .. } | Restore::Held { .. } | Restore::Failed(_) => {}
    }
}

/// Removes an instance directory: its lock, stray temporary files, then the directory.
fn remove_instance_dir(dir: &Path) {
    for name in names_in(dir).unwrap_or_default() {
        let _ = fs::remove_file(dir.join(name));
    }
    let _ = fs::remove_dir(dir);
}

/// What a log-only daemon (`-l`) says of the ledger: it touches nothing, only says if a
/// stalld that is gone left something boosted.
pub fn report_leftovers(logger: &Logger) {
    let left = Ledger::open_existing(Path::new(RUN_DIR)).map_or(0, |ledger| ledger.leftovers());
    if left > 0 {
        logger.warn(&format!(
            "a stalld that is gone left {left} task(s) boosted (see {RUN_DIR}): run `stalld restore`"
        ));
    }
}

/// The ledger of a daemon that boosts: what dead instances left is undone (RT throttling too,
/// unless `-S` leaves it to the unit), then this one's records begin.
pub fn for_daemon(systemd: bool, logger: &Logger) -> anyhow::Result<Instance> {
    use anyhow::Context;
    let dir = Path::new(RUN_DIR);
    let ledger = Ledger::open(dir).with_context(|| format!("opening the ledger in {RUN_DIR}"))?;
    let rt = if systemd {
        RtReplay::Leave
    } else {
        RtReplay::Restore
    };
    ledger
        .replay_dead(&mut crate::boost::Kernel, rt, logger)
        .context("replaying the ledger")?;
    let instance = ledger
        .begin_instance()
        .with_context(|| format!("starting this stalld's records in {RUN_DIR}"))?;
    Ok(instance)
}

/// This daemon's records. Dropped (or [`close`](Instance::close)d) on the way out, it removes
/// its directory when every boost was undone; otherwise the directory stays, and the guardian
/// (woken by the released lock), the next stalld or `stalld restore` retries what is left.
pub struct Instance {
    ledger: Ledger,
    name: String,
    lock: Option<File>,
}

impl Instance {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn dir(&self) -> PathBuf {
        self.ledger.dir.join(&self.name)
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Where the booster writes its records.
    pub fn records(&self) -> InstanceRecords {
        InstanceRecords {
            dir: self.dir(),
            ledger: self.ledger.clone(),
        }
    }

    /// The end of the daemon: closes, saying so if records had to stay.
    pub fn finish(mut self, logger: &Logger) {
        let left = self.close();
        if left > 0 {
            logger.warn(&format!(
                "{left} task(s) could not be restored; their records stay in {RUN_DIR} for the guardian, the next stalld or `stalld restore`"
            ));
        }
    }

    /// Removes the directory if no record is left; returns how many are left.
    pub fn close(&mut self) -> usize {
        let Some(lock) = self.lock.take() else {
            return 0;
        };
        let _ledger = self.ledger.lock();
        let dir = self.dir();
        let left = names_in(&dir)
            .unwrap_or_default()
            .iter()
            .filter(|name| name.starts_with(BOOST_PREFIX))
            .count();
        if left == 0 {
            remove_instance_dir(&dir);
        }
        drop(lock);
        left
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.close();
    }
}

/// The booster's ledger: one file per boost in the instance directory.
pub struct InstanceRecords {
    dir: PathBuf,
    ledger: Ledger,
}

impl BoostLedger for InstanceRecords {
    fn record(&mut self, record: &BoostRecord) -> io::Result<()> {
        write_atomically(&self.dir, &record_name(record), &record_text(record))
    }

    fn forget(&mut self, record: &BoostRecord) {
        let _ = remove_if_present(&self.dir.join(record_name(record)));
    }

    fn kept(&self, tid: crate::task::Pid, start: u64) -> bool {
        self.ledger.keeps(tid, start)
    }
}

#[cfg(test)]
mod tests;
