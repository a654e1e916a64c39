//! The guardian: a small process that puts the machine back the moment the daemon dies
//! without doing it itself (SIGKILL, a crash, the OOM killer).
//!
//! It waits for the daemon's instance lock in the ledger (free once the daemon is gone,
//! however it went) and then replays that instance: every boost still held, checked to be the
//! same task, and RT throttling if the daemon turned it off. It knows nothing the ledger does
//! not, so a guardian started later (a respawn) is as good as the first.
//!
//! It is the same executable run under another name, `stalld-guardian`, so that `pidof stalld`
//! and `pgrep -x stalld` name only the daemon (both pidof implementations match the basename
//! of argv[0]; procps-ng's also that of /proc/PID/exe). It is executed, never forked, so a
//! daemon with threads can respawn it, from the first of:
//! - `stalld-guardian` next to `stalld`, if it is the same file (a hard link, installed by
//!   `make install`): no copy, the pages are shared with the daemon;
//! - a sealed in-memory copy of the executable named `stalld-guardian` (memfd), for a stalld
//!   copied alone somewhere;
//! - stalld itself, with a warning that `pidof stalld` lists the guardian too.
//!
//! The daemon watches a pipe whose other end only the guardian holds: a hang-up means it died,
//! and it is respawned. Before each boost the daemon gives it its own scheduling policy and
//! CPU affinity (the unit makes the daemon SCHED_FIFO after start), so the guardian gets CPU
//! whenever the daemon would have.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, PipeWriter};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

use super::ledger::Ledger;
use crate::boost::{self, Kernel};
use crate::config::SinkOptions;
use crate::daemon::log::Logger;
use crate::event::Event;
use crate::sys::{self, SchedAttr};
use crate::task::Pid;

/// Its `argv[0]`, its `/proc/PID/comm`, and the name of the hard link it is executed from
/// (defined with the daemon's own name, which tells the two apart in the process table).
pub use crate::daemon::process::instances::GUARDIAN_NAME as NAME;

/// A guardian that dies sooner than this after its start is not respawned at once (it would
/// only die again); the next boost tries again.
const RESPAWN_PAUSE: Duration = Duration::from_secs(1);

/// What the guardian is executed from.
enum Image {
    HardLink(File),
    Memory(File),
    Itself,
}

impl Image {
    fn find(logger: &Logger) -> Image {
        if let Some(file) = hard_link() {
            return Image::HardLink(file);
        }
        match memory_copy() {
            Ok(file) => Image::Memory(file),
            Err(error) => {
                logger.warn(&format!(
                    "cannot copy stalld into memory for its guardian ({error}): the guardian runs as stalld itself, and `pidof stalld` lists it too"
                ));
                Image::Itself
            }
        }
    }

    fn path(&self) -> PathBuf {
        match self {
            // Executing /proc/self/fd/N runs that very file: no path can be swapped meanwhile.
            Image::HardLink(file) | Image::Memory(file) => {
                PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()))
            }
            Image::Itself => PathBuf::from("/proc/self/exe"),
        }
    }

    fn describe(&self) -> &'static str {
        match self {
            Image::HardLink(_) => "stalld-guardian next to stalld",
            Image::Memory(_) => "an in-memory copy named stalld-guardian",
            Image::Itself => "stalld itself",
        }
    }
}

/// `stalld-guardian` next to our executable, if it is our executable (a hard link).
fn hard_link() -> Option<File> {
    let exe = fs::read_link("/proc/self/exe").ok()?;
    let file = File::open(exe.with_file_name(NAME)).ok()?;
    let (link, us) = (file.metadata().ok()?, fs::metadata("/proc/self/exe").ok()?);
    (link.dev() == us.dev() && link.ino() == us.ino()).then_some(file)
}

/// A sealed anonymous copy of our executable.
fn memory_copy() -> io::Result<File> {
    let mut memory = sys::memfd_create(NAME, true)?;
    io::copy(&mut File::open("/proc/self/exe")?, &mut memory)?;
    sys::seal_contents(&memory)?;
    // A file open for writing cannot be executed (ETXTBSY): keep a read-only descriptor.
    File::open(format!("/proc/self/fd/{}", memory.as_raw_fd()))
}

struct Running {
    child: Child,
    /// The write end of a pipe whose read end only the guardian holds (its stdin).
    watch: PipeWriter,
}

pub struct Guardian {
    image: Image,
    args: Vec<OsString>,
    running: Option<Running>,
    started_at: Instant,
    /// The daemon's policy and affinity as last given to the running guardian.
    given: Option<(SchedAttr, Vec<libc::c_ulong>)>,
}

impl Guardian {
    /// Starts the guardian of ledger instance `instance`, with the daemon's text `sinks`.
    pub fn spawn(instance: &Path, sinks: &SinkOptions, logger: &Logger) -> io::Result<Guardian> {
        let mut args = vec![instance.as_os_str().to_owned()];
        args.extend(sinks.text_sink_args().into_iter().map(OsString::from));
        let mut guardian = Guardian {
            image: Image::find(logger),
            args,
            running: None,
            started_at: Instant::now(),
            given: None,
        };
        let pid = match guardian.start() {
            Err(error) if !matches!(guardian.image, Image::Itself) => {
                // E.g. a security policy that refuses to execute the memory copy.
                logger.warn(&format!(
                    "cannot execute the guardian from {} ({error}): it runs as stalld itself, and `pidof stalld` lists it too",
                    guardian.image.describe()
                ));
                guardian.image = Image::Itself;
                guardian.start()?
            }
            started => started?,
        };
        logger.log(&format!(
            "guardian process {pid} started from {}",
            guardian.image.describe()
        ));
        guardian.follow(logger);
        Ok(guardian)
    }

    fn start(&mut self) -> io::Result<Pid> {
        let (reader, writer) = io::pipe()?;
        let child = Command::new(self.image.path())
            .arg0(NAME)
            .args(&self.args)
            .stdin(Stdio::from(reader))
            .stdout(Stdio::null())
            .spawn()?;
        let pid = child.id() as Pid;
        self.started_at = Instant::now();
        self.given = None;
        self.running = Some(Running {
            child,
            watch: writer,
        });
        Ok(pid)
    }

    /// What the daemon's poll watches: reports a hang-up when the guardian dies.
    pub fn watched(&self) -> Option<BorrowedFd<'_>> {
        self.running.as_ref().map(|running| running.watch.as_fd())
    }

    /// Checks on the guardian (`hung_up`: its pipe said it died): a dead one is reaped,
    /// reported and respawned.
    pub fn tend(&mut self, hung_up: bool, logger: &Logger) {
        if let Some(running) = &mut self.running {
            let status = if hung_up {
                running.child.wait().map(Some)
            } else {
                running.child.try_wait()
            };
            let status = match status {
                Ok(None) => return,
                Ok(Some(status)) => describe_exit(status),
                Err(error) => error.to_string(),
            };
            logger.event(&Event::GuardianDied {
                pid: running.child.id() as Pid,
                status,
            });
            self.running = None;
        }
        if self.started_at.elapsed() < RESPAWN_PAUSE {
            return;
        }
        match self.start() {
            Ok(pid) => {
                logger.event(&Event::GuardianRespawned { pid });
                self.follow(logger);
            }
            Err(error) => logger.event(&Event::GuardianRespawnFailed {
                error: error.to_string(),
            }),
        }
    }

    /// Before a boost: the guardian runs (respawned if it died) with the daemon's current
    /// policy and affinity. Two system calls when nothing changed.
    pub fn prepare(&mut self, logger: &Logger) {
        self.tend(false, logger);
        self.follow(logger);
    }

    fn follow(&mut self, logger: &Logger) {
        let Some(running) = &self.running else {
            return;
        };
        let (Ok(attr), Ok(mask)) = (sys::sched_getattr(0), sys::affinity_words(0)) else {
            return;
        };
        let ours = (boost::restorable(attr), mask);
        if self.given.as_ref() == Some(&ours) {
            return;
        }
        // Our child, not yet reaped: its pid cannot name another process.
        let pid = running.child.id() as Pid;
        if let Err(error) = sys::sched_setattr(pid, &ours.0) {
            logger.warn(&format!(
                "cannot give the guardian process {pid} stalld's {} policy: {error}",
                sys::policy_name(ours.0.policy)
            ));
        }
        if let Err(error) = sys::set_affinity_words(pid, &ours.1) {
            logger.warn(&format!(
                "cannot give the guardian process {pid} stalld's CPU affinity: {error}"
            ));
        }
        self.given = Some(ours);
    }
}

fn describe_exit(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => status.to_string(),
    }
}

/// `stalld-guardian INSTANCE-DIR [-k] [-s]`, as the daemon starts it. Returns the exit status.
/// Nothing here may panic or stop at a failed write: a closed terminal must not cost a restore.
pub fn main(args: &[OsString]) -> i32 {
    let _ = fs::write("/proc/self/comm", NAME);
    // Out of the daemon's session and process group: a signal to the whole group (a
    // terminal's Ctrl-C, `kill -- -PGID`) is not for it.
    let _ = sys::new_session();
    for signal in [SIGHUP, SIGINT, SIGTERM] {
        let _ = sys::ignore_signal(signal);
    }
    let logger = Logger::open(&SinkOptions {
        verbose: true,
        ..SinkOptions::from_text_sink_args(args.get(1..).unwrap_or_default())
    });
    let instance = args.first().map(PathBuf::from);
    let (Some(dir), Some(name)) = (
        instance.as_deref().and_then(Path::parent),
        instance
            .as_deref()
            .and_then(Path::file_name)
            .and_then(|name| name.to_str()),
    ) else {
        logger.warn("usage: stalld-guardian INSTANCE-DIR [-k] [-s] (stalld starts it)");
        return 2;
    };
    let replayed =
        Ledger::open(dir).and_then(|ledger| ledger.replay_after_death(name, &mut Kernel, &logger));
    match replayed {
        Ok(summary) if summary.kept == 0 => 0,
        Ok(_) => 1,
        Err(error) => {
            logger.warn(&format!("guardian: {}: {error}", dir.display()));
            1
        }
    }
}
