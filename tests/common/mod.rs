//! The end-to-end test harness shared by every `tests/e2e_*.rs` file (`mod common;`).
//!
//! It owns the rules that keep starvation tests safe on a shared machine: one starvation at a
//! time ([`StarvationLock`], an flock other engineers' runs take too), `sched_rt_runtime_us`
//! restored whatever happens ([`RtRuntimeGuard`]), every child bounded by `timeout` and killed
//! when its handle drops ([`Starver`] for `stalld-starve`, [`Daemon`] for `stalld`), and a loud
//! skip without root that becomes a failure under CI ([`require_root_or_skip`]).

// Each test file uses its own subset of the harness.
#![allow(dead_code)]

pub mod unit_file;

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixDatagram;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use stalld::rt_runtime;
use stalld::sys::{self, policy_name, sched_getattr, SchedAttr};
use stalld::task::Pid;

pub const STARVATION_LOCK: &str = "/tmp/stalld-starvation.lock";

/// `stalld-starve --linger` for a victim whose restore a test checks: alive (asleep) long
/// after its boost ends, so that the daemon restores a live task and the test reads its
/// policy back even when a busy machine makes it seconds late (with 3 s, a victim once exited
/// before the test read it, and `sched_getattr` failed). The test ends the starver when done.
pub const LINGER: &str = "10";

/// `stalld -r` for a test that bounds a victim's wait: on this virtual machine under load a
/// victim sometimes needed more than the default 20 µs to get back from its sleep to user
/// space (stalld measured 33 µs given), and with one period per boost its report then came a
/// whole threshold later, with the C stalld's boost as with ours. Such a test is about when
/// the boost comes, not about how much it lends.
pub const BOOST_RUNTIME: &str = "100us";

/// How long a child may live past what the test expects before `timeout` ends it anyway.
const STARVER_GRACE: Duration = Duration::from_secs(10);
const DAEMON_BOUND: Duration = Duration::from_secs(300);
/// Between SIGTERM and SIGKILL when a handle is dropped with its child still running.
const KILL_AFTER: Duration = Duration::from_secs(3);
/// How long the output of a child that exited may take to be read to its end: the reader
/// threads can lag behind under load, and the daemon's guardian holds its stderr until it has
/// seen the daemon go. Only a child that left a daemon behind holding the pipes waits it out.
const OUTPUT_AFTER_EXIT: Duration = Duration::from_secs(5);

pub fn is_root() -> bool {
    sys::is_root()
}

/// True when the test may go on. Without root it says so loudly on stderr and returns false,
/// except under CI (`CI` set), where a skipped end-to-end test would hide a broken set-up.
pub fn require_root_or_skip(test: &str) -> bool {
    if is_root() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{test} needs root, and CI is set: end-to-end tests must run in CI");
    }
    // Straight to fd 2: libtest captures eprintln! of passing tests, and a skip must show.
    let _ = writeln!(std::io::stderr(), "SKIPPED: {test} needs root");
    false
}

/// The machine-wide exclusive flock that serialises starvation runs, held until dropped.
pub struct StarvationLock {
    _file: File,
}

impl StarvationLock {
    /// Blocks until no other starvation run (ours or another engineer's) holds the lock.
    pub fn acquire() -> StarvationLock {
        // flock needs no write access: read-only lets a non-root test share root's lock file.
        let file = File::open(STARVATION_LOCK)
            .or_else(|_| {
                File::options()
                    .create(true)
                    .append(true)
                    .open(STARVATION_LOCK)
            })
            .unwrap_or_else(|err| panic!("opening {STARVATION_LOCK}: {err}"));
        if file.try_lock().is_err() {
            eprintln!("waiting for {STARVATION_LOCK}: another starvation run is in progress");
            file.lock()
                .unwrap_or_else(|err| panic!("flock {STARVATION_LOCK}: {err}"));
        }
        StarvationLock { _file: file }
    }
}

pub fn read_rt_runtime() -> i64 {
    rt_runtime::read().unwrap_or_else(|err| panic!("reading {}: {err}", rt_runtime::PATH))
}

/// Saves `sched_rt_runtime_us` when created and puts it back when dropped, also when the test
/// panics, so a killed tool or daemon cannot leave RT throttling off.
pub struct RtRuntimeGuard {
    saved: i64,
}

impl RtRuntimeGuard {
    pub fn save() -> RtRuntimeGuard {
        RtRuntimeGuard {
            saved: read_rt_runtime(),
        }
    }

    pub fn saved(&self) -> i64 {
        self.saved
    }
}

impl Drop for RtRuntimeGuard {
    fn drop(&mut self) {
        // Written only when changed, so that a test without root can hold the guard too.
        if rt_runtime::read().is_ok_and(|now| now != self.saved) {
            if let Err(err) = rt_runtime::write(self.saved) {
                eprintln!(
                    "could not restore {} to {}: {err}",
                    rt_runtime::PATH,
                    self.saved
                );
            }
        }
    }
}

/// Everything a starvation test holds for its whole life: the lock, then the saved value.
/// Fields drop in order, so the value is restored before the next run may start.
pub struct StarvationSession {
    pub rt_runtime: RtRuntimeGuard,
    pub lock: StarvationLock,
}

impl StarvationSession {
    /// `None` when the test is skipped for want of root (see [`require_root_or_skip`]).
    pub fn begin(test: &str) -> Option<StarvationSession> {
        if !require_root_or_skip(test) {
            return None;
        }
        let lock = StarvationLock::acquire();
        // Saved under the lock: no other run can have changed it in the meantime.
        Some(StarvationSession {
            rt_runtime: RtRuntimeGuard::save(),
            lock,
        })
    }
}

pub fn sched_attr_of(pid: Pid) -> SchedAttr {
    sched_getattr(pid).unwrap_or_else(|err| panic!("sched_getattr({pid}): {err}"))
}

/// A thread's policy name (as `stalld::sys::policy_name` spells it) and RT priority.
pub fn policy_of(pid: Pid) -> (String, u32) {
    let attr = sched_attr_of(pid);
    (policy_name(attr.policy).to_owned(), attr.rt_priority)
}

/// Processes named `stalld-starve` still alive: after a test there must be none, since every
/// run holds the lock we hold.
pub fn starvers_left() -> Vec<Pid> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<Pid>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim() == "stalld-starve")
        })
        .collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

#[derive(Default)]
struct Output {
    lines: Vec<(Stream, String)>,
    /// Readers still running; 0 means the child closed both streams.
    open_streams: usize,
}

type SharedOutput = Arc<(Mutex<Output>, Condvar)>;

/// A child run under `timeout` whose stdout and stderr lines are collected as they come.
/// Dropping it ends the child: SIGTERM (which `timeout` forwards), then SIGKILL to the group.
pub struct Supervised {
    child: Child,
    what: String,
    output: SharedOutput,
}

impl Supervised {
    pub fn spawn(program: &str, args: &[&str], bound: Duration) -> Supervised {
        let mut command = Command::new("timeout");
        command
            .arg("--kill-after")
            .arg(format!("{}s", KILL_AFTER.as_secs()))
            .arg(format!("{}s", bound.as_secs_f64()))
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let what = format!("{program} {}", args.join(" "));
        let mut child = command
            .spawn()
            .unwrap_or_else(|err| panic!("starting timeout {what}: {err}"));
        let output: SharedOutput = Arc::new((Mutex::new(Output::default()), Condvar::new()));
        // Detached: they end when the pipes close, which a forked daemon may delay.
        Self::reader(
            child.stdout.take().expect("piped"),
            Stream::Stdout,
            Arc::clone(&output),
        );
        Self::reader(
            child.stderr.take().expect("piped"),
            Stream::Stderr,
            Arc::clone(&output),
        );
        Supervised {
            child,
            what,
            output,
        }
    }

    fn reader(stream: impl Read + Send + 'static, which: Stream, output: SharedOutput) {
        output.0.lock().unwrap().open_streams += 1;
        thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                let (lock, changed) = &*output;
                lock.lock().unwrap().lines.push((which, line));
                changed.notify_all();
            }
            let (lock, changed) = &*output;
            lock.lock().unwrap().open_streams -= 1;
            changed.notify_all();
        });
    }

    /// The pid of `timeout`, the process signals go to (it forwards them to the program).
    pub fn pid(&self) -> Pid {
        self.child.id() as Pid
    }

    /// The pid of the supervised program itself (the child of `timeout`), once it runs.
    pub fn program_pid(&self) -> Pid {
        let children = format!("/proc/{0}/task/{0}/children", self.pid());
        for _ in 0..100 {
            let first = std::fs::read_to_string(&children)
                .ok()
                .and_then(|text| text.split_ascii_whitespace().next()?.parse().ok());
            if let Some(pid) = first {
                return pid;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("{} has no child process", self.pid());
    }

    pub fn lines(&self) -> Vec<String> {
        self.output
            .0
            .lock()
            .unwrap()
            .lines
            .iter()
            .map(|(_, line)| line.clone())
            .collect()
    }

    pub fn lines_of(&self, stream: Stream) -> Vec<String> {
        let output = self.output.0.lock().unwrap();
        output
            .lines
            .iter()
            .filter(|(s, _)| *s == stream)
            .map(|(_, line)| line.clone())
            .collect()
    }

    /// Calls `found` (under the output lock: it must not call back into this handle) on the
    /// lines collected so far, then again whenever more arrive, until it
    /// returns `Some`, the child has closed its output, or `timeout` passes.
    pub fn wait_until<T>(
        &self,
        timeout: Duration,
        mut found: impl FnMut(&[(Stream, String)]) -> Option<T>,
    ) -> Option<T> {
        let end = Instant::now() + timeout;
        let (lock, changed) = &*self.output;
        let mut output = lock.lock().unwrap();
        loop {
            if let Some(result) = found(&output.lines) {
                return Some(result);
            }
            let left = end.saturating_duration_since(Instant::now());
            if output.open_streams == 0 || left.is_zero() {
                return None;
            }
            output = changed.wait_timeout(output, left).unwrap().0;
        }
    }

    pub fn wait_for_line(
        &self,
        timeout: Duration,
        predicate: impl Fn(&str) -> bool,
    ) -> Option<String> {
        self.wait_until(timeout, |lines| {
            lines.iter().map(|(_, l)| l).find(|l| predicate(l)).cloned()
        })
    }

    pub fn signal(&self, signal: i32) {
        if let Err(err) = sys::kill(self.pid(), signal) {
            // Already reaped or gone: nothing left to signal.
            if err.raw_os_error() != Some(libc::ESRCH) {
                panic!("kill({}, {signal}): {err}", self.pid());
            }
        }
    }

    /// Waits at most `timeout` for the child to exit; `None` if it is still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    // Collect the last lines. Bounded: a daemon that forked may keep the pipes.
                    self.wait_until(OUTPUT_AFTER_EXIT, |_| None::<()>);
                    return Some(status);
                }
                Ok(None) if Instant::now() < end => thread::sleep(Duration::from_millis(10)),
                Ok(None) => return None,
                Err(err) => panic!("waiting for {}: {err}", self.what),
            }
        }
    }

    /// SIGTERM, then waits up to `timeout` for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(status);
        }
        self.signal(libc::SIGTERM);
        self.wait_exit(timeout)
    }

    /// Everything the child printed, for assertion messages.
    pub fn transcript(&self) -> String {
        let output = self.output.0.lock().unwrap();
        let mut text = format!("--- output of {} ---\n", self.what);
        for (stream, line) in &output.lines {
            text.push_str(if *stream == Stream::Stderr {
                "[err] "
            } else {
                "[out] "
            });
            text.push_str(line);
            text.push('\n');
        }
        text
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        if self.terminate(KILL_AFTER).is_none() {
            // `timeout` made itself a process-group leader: this reaches the program too.
            let _ = sys::kill(-self.pid(), libc::SIGKILL);
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A running `stalld-starve`, its JSON events parsed as they arrive.
pub struct Starver {
    pub process: Supervised,
    /// Indexes (among stdout lines) of the events `wait_event` has already handed out.
    taken: Mutex<Vec<usize>>,
    /// The events parsed so far. Each line is parsed once: parsing every line at every look
    /// (under the output lock, which the reader threads wait for) was quadratic, and with the
    /// 60 KB `started` event of 10,000 idle threads reading 100 victims' reports took 20 s of
    /// a busy CPU, longer than the victims lingered.
    parsed: Mutex<ParsedEvents>,
}

/// The JSON events among the lines of a [`Starver`] read so far.
#[derive(Default)]
struct ParsedEvents {
    /// Lines of both streams looked at.
    looked_at: usize,
    /// Stdout lines among them.
    stdout_lines: usize,
    /// (index among stdout lines, event).
    events: Vec<(usize, Value)>,
}

impl ParsedEvents {
    /// Parses the lines that came since the last call.
    fn update(&mut self, lines: &[(Stream, String)]) -> &[(usize, Value)] {
        for (stream, line) in &lines[self.looked_at..] {
            if *stream == Stream::Stdout {
                if let Ok(event) = serde_json::from_str::<Value>(line) {
                    self.events.push((self.stdout_lines, event));
                }
                self.stdout_lines += 1;
            }
        }
        self.looked_at = lines.len();
        &self.events
    }
}

impl Starver {
    /// Runs `stalld-starve` with `args` under `timeout` (its `--duration` plus a grace period).
    pub fn spawn(args: &[&str]) -> Starver {
        let duration = args
            .iter()
            .position(|a| *a == "--duration")
            .and_then(|i| args.get(i + 1)?.parse::<f64>().ok())
            .unwrap_or(30.0);
        let bound = Duration::from_secs_f64(duration.clamp(0.0, 3600.0)) + STARVER_GRACE;
        Starver {
            process: Supervised::spawn(env!("CARGO_BIN_EXE_stalld-starve"), args, bound),
            taken: Mutex::new(Vec::new()),
            parsed: Mutex::new(ParsedEvents::default()),
        }
    }

    /// The first event (with its index among stdout lines) that `wanted` accepts, waiting up
    /// to `timeout`.
    fn find_event(
        &self,
        timeout: Duration,
        wanted: impl Fn(usize, &Value) -> bool,
    ) -> Option<(usize, Value)> {
        let mut parsed = self.parsed.lock().unwrap();
        self.process.wait_until(timeout, |lines| {
            parsed
                .update(lines)
                .iter()
                .find(|(i, event)| wanted(*i, event))
                .cloned()
        })
    }

    /// Every event printed so far.
    pub fn events(&self) -> Vec<Value> {
        let mut parsed = self.parsed.lock().unwrap();
        self.process
            .wait_until(Duration::ZERO, |lines| {
                Some(
                    parsed
                        .update(lines)
                        .iter()
                        .map(|(_, v)| v.clone())
                        .collect(),
                )
            })
            .unwrap()
    }

    /// The next event of `kind` that no earlier call returned, waiting up to `timeout`.
    pub fn try_wait_event(&self, kind: &str, timeout: Duration) -> Option<Value> {
        self.try_wait_any(&[kind], timeout)
    }

    /// The next unreturned event of any of `kinds` (e.g. a victim's outcome, ran or starved).
    pub fn try_wait_any(&self, kinds: &[&str], timeout: Duration) -> Option<Value> {
        let mut taken = self.taken.lock().unwrap();
        let (index, event) = self.find_event(timeout, |i, event| {
            kinds.iter().any(|k| event["event"] == *k) && !taken.contains(&i)
        })?;
        taken.push(index);
        Some(event)
    }

    /// Like [`Starver::try_wait_event`], but a missing event fails the test with the transcript.
    pub fn wait_event(&self, kind: &str, timeout: Duration) -> Value {
        self.try_wait_event(kind, timeout).unwrap_or_else(|| {
            panic!(
                "no {kind:?} event within {timeout:?}\n{}",
                self.process.transcript()
            )
        })
    }

    /// The victims' thread ids, from the `started` event (waited for up to 30 s: 10,000 idle
    /// threads took more than 10 s to start on this 2-CPU machine at a load average of 10).
    pub fn victim_pids(&self) -> Vec<Pid> {
        let (_, started) = self
            .find_event(Duration::from_secs(30), |_, event| {
                event["event"] == "started"
            })
            .unwrap_or_else(|| {
                panic!("stalld-starve never started\n{}", self.process.transcript())
            });
        started["victims"]
            .as_array()
            .expect("victims list")
            .iter()
            .map(|v| v.as_i64().expect("pid") as Pid)
            .collect()
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.process.wait_exit(timeout)
    }

    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.process.terminate(timeout)
    }
}

/// A running `stalld` (or, for checking the harness itself, any program).
pub struct Daemon {
    pub process: Supervised,
}

impl Daemon {
    /// Runs the built `stalld` with `args`, bounded by `timeout` at five minutes.
    pub fn spawn(args: &[&str]) -> Daemon {
        Daemon::spawn_program(env!("CARGO_BIN_EXE_stalld"), args)
    }

    pub fn spawn_program(program: &str, args: &[&str]) -> Daemon {
        Daemon {
            process: Supervised::spawn(program, args, DAEMON_BOUND),
        }
    }

    /// Runs `stalld` with `args` to its end (e.g. a usage error): exit status and all lines.
    pub fn run(args: &[&str], timeout: Duration) -> (ExitStatus, Vec<String>) {
        Daemon::run_program(env!("CARGO_BIN_EXE_stalld"), args, timeout)
    }

    /// [`Daemon::run`] for another program (a wrapper that execs `stalld`).
    pub fn run_program(
        program: &str,
        args: &[&str],
        timeout: Duration,
    ) -> (ExitStatus, Vec<String>) {
        let mut daemon = Daemon::spawn_program(program, args);
        let status = daemon.wait_exit(timeout).unwrap_or_else(|| {
            panic!(
                "stalld still running after {timeout:?}\n{}",
                daemon.process.transcript()
            )
        });
        (status, daemon.lines())
    }

    /// The first line, stdout or stderr, that satisfies `predicate`, waiting up to `timeout`.
    pub fn wait_for_line(
        &self,
        predicate: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> Option<String> {
        self.process.wait_for_line(timeout, predicate)
    }

    /// The first line containing `needle`, waiting up to 15 s; panics with the output if none.
    pub fn wait_line(&self, needle: &str) -> String {
        self.wait_for_line(|line| line.contains(needle), Duration::from_secs(15))
            .unwrap_or_else(|| panic!("no line containing {needle:?}: {:#?}", self.lines()))
    }

    pub fn wait_for_regex(&self, pattern: &str, timeout: Duration) -> Option<String> {
        let re =
            regex::Regex::new(pattern).unwrap_or_else(|err| panic!("bad regex {pattern:?}: {err}"));
        self.wait_for_line(|line| re.is_match(line), timeout)
    }

    /// Stdout and stderr lines in the order they were read.
    pub fn lines(&self) -> Vec<String> {
        self.process.lines()
    }

    pub fn stderr_lines(&self) -> Vec<String> {
        self.process.lines_of(Stream::Stderr)
    }

    /// SIGTERM, then up to 10 s for the exit status (`None`: still running, and then where
    /// each of its threads is stuck is printed, with its output, for the failure to explain).
    pub fn terminate(&mut self) -> Option<ExitStatus> {
        let status = self.process.terminate(Duration::from_secs(10));
        if status.is_none() {
            eprintln!(
                "the daemon did not exit within 10 s of SIGTERM\n{}\n{}",
                threads_report(self.process.pid()),
                self.process.transcript()
            );
        }
        status
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.process.wait_exit(timeout)
    }
}

/// Every thread of `pid`: name, state, CPU, policy, wait channel and kernel stack.
fn threads_report(pid: Pid) -> String {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return format!("/proc/{pid} is gone");
    };
    let mut report = String::new();
    for task in tasks.flatten() {
        let dir = task.path();
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        let stat = read("stat");
        // After the name's closing parenthesis: state is field 3, processor 39, policy 41.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
        let field = |n: usize| fields.get(n - 3).copied().unwrap_or("?");
        report.push_str(&format!(
            "thread {} {}: state {} cpu {} policy {} wchan {}\n{}",
            task.file_name().to_string_lossy(),
            read("comm").trim(),
            field(3),
            field(39),
            field(41),
            read("wchan"),
            read("stack"),
        ));
    }
    report
}

/// Reads the kernel log records written from now on (`/dev/kmsg`, as root).
pub struct KmsgReader {
    kmsg: File,
}

impl KmsgReader {
    pub fn open() -> KmsgReader {
        let mut kmsg = File::options()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open("/dev/kmsg")
            .expect("open /dev/kmsg");
        // Only records written from now on.
        kmsg.seek(std::io::SeekFrom::End(0))
            .expect("seek /dev/kmsg");
        KmsgReader { kmsg }
    }

    /// Collects records (`prio,seq,time,flags;text`, as the kernel escapes them) into
    /// `records` until one satisfies `done` or `timeout` passes.
    pub fn read_until(
        &mut self,
        records: &mut Vec<String>,
        timeout: Duration,
        done: impl Fn(&str) -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline && !records.iter().any(|r| done(r)) {
            let mut record = vec![0u8; 8192];
            match self.kmsg.read(&mut record) {
                Ok(n) => records.push(String::from_utf8_lossy(&record[..n]).into_owned()),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

const DEV_LOG: &str = "/dev/log";
const DEV_LOG_ASIDE: &str = "/dev/log.stalld-test";

/// Binds a syslog receiver at /dev/log for the test, moving a real one aside meanwhile.
///
/// A thread drains the socket from the moment it is bound: a unix datagram socket queues only
/// `net.unix.max_dgram_qlen` (10 by default) messages, stalld's syslog sink never blocks, so a
/// reader that starts late would see the start-up burst and lose what follows it (counted in
/// `stalld_log_dropped_total`).
pub struct SyslogReceiver {
    received: std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    drainer: Option<std::thread::JoinHandle<()>>,
    moved_aside: bool,
}

impl SyslogReceiver {
    pub fn bind() -> SyslogReceiver {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{Arc, Mutex};
        let moved_aside = std::fs::symlink_metadata(DEV_LOG).is_ok();
        if moved_aside {
            std::fs::rename(DEV_LOG, DEV_LOG_ASIDE).expect("moving /dev/log aside");
        }
        let socket = UnixDatagram::bind(DEV_LOG).expect("binding /dev/log");
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let drainer = {
            let (received, stop) = (Arc::clone(&received), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let mut packet = vec![0u8; 2048];
                    if let Ok(n) = socket.recv(&mut packet) {
                        packet.truncate(n);
                        received.lock().unwrap().push(packet);
                    }
                }
            })
        };
        SyslogReceiver {
            received,
            stop,
            drainer: Some(drainer),
            moved_aside,
        }
    }

    /// Collects the datagrams received so far, as raw bytes, waiting until one satisfies
    /// `done` or `timeout` passes.
    pub fn receive_until(
        &self,
        packets: &mut Vec<Vec<u8>>,
        timeout: Duration,
        done: impl Fn(&[u8]) -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        loop {
            packets.append(&mut self.received.lock().unwrap());
            if packets.iter().any(|p| done(p)) || Instant::now() >= deadline {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for SyslogReceiver {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(drainer) = self.drainer.take() {
            let _ = drainer.join();
        }
        let _ = std::fs::remove_file(DEV_LOG);
        if self.moved_aside {
            let _ = std::fs::rename(DEV_LOG_ASIDE, DEV_LOG);
        }
    }
}

/// The CPU starvation tests use: the last one, never CPU 0.
pub fn last_cpu() -> String {
    (stalld::cpuset::configured_cpus() - 1).to_string()
}

/// The victim of a `stalld-starve` run with one victim.
pub fn only_victim(starver: &Starver) -> Pid {
    let pids = starver.victim_pids();
    assert_eq!(pids.len(), 1, "one victim expected");
    pids[0]
}

impl Daemon {
    /// Runs `stalld -f -v -b <backend> <args>` with `env` added to its environment, and waits
    /// until it has chosen its backend, so that it sees a starvation started next from the
    /// start.
    pub fn start(env: &[(&str, &str)], backend: &str, args: &[&str]) -> Daemon {
        let mut argv: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        argv.push(env!("CARGO_BIN_EXE_stalld").into());
        argv.extend(["-f", "-v", "-b", backend].map(String::from));
        argv.extend(args.iter().map(|a| a.to_string()));
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let daemon = Daemon::spawn_program("env", &argv);
        let ready = format!("using {backend} backend");
        daemon
            .wait_for_line(|line| line.contains(&ready), Duration::from_secs(15))
            .unwrap_or_else(|| panic!("daemon did not start: {:?}", daemon.lines()));
        daemon
    }
}

/// A [`StarvationSession`] for a test that also needs a tool: the first of `candidates` (see
/// [`tool_or_skip`]). `None` when the test is skipped.
pub fn session_with_tool(
    test: &str,
    candidates: &[&'static str],
    hint: &str,
) -> Option<(StarvationSession, &'static str)> {
    let session = StarvationSession::begin(test)?;
    let tool = tool_or_skip(test, candidates, hint)?;
    Some((session, tool))
}

/// The first of `candidates` that exists. When none does, the test is skipped loudly, except
/// under CI, where `hint` (how the tool gets installed) must have been followed.
pub fn tool_or_skip(test: &str, candidates: &[&'static str], hint: &str) -> Option<&'static str> {
    let found = candidates
        .iter()
        .copied()
        .find(|path| std::path::Path::new(path).exists());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{test}: CI must have {candidates:?} ({hint})"
        );
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: {test}: none of {candidates:?} ({hint})"
        );
    }
    found
}

/// The `link_type` of every BPF link `pid` holds open (`iter`, `raw_tracepoint`, ...), from
/// /proc/PID/fdinfo: what a process really has attached to the kernel.
pub fn bpf_link_types(pid: Pid) -> Vec<String> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    fds.filter_map(|fd| {
        let fd = fd.ok()?;
        let target = std::fs::read_link(fd.path()).ok()?;
        if target.to_str()? != "anon_inode:bpf_link" {
            return None;
        }
        let info =
            std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{}", fd.file_name().to_str()?))
                .ok()?;
        info.lines()
            .find_map(|line| line.strip_prefix("link_type:"))
            .map(|kind| kind.trim().to_owned())
    })
    .collect()
}

/// A minimal HTTP GET against localhost (the metrics listener): status code and body.
pub fn http_get(address: &str, target: &str) -> std::io::Result<(u32, String)> {
    http_get_accepting(address, target, None).map(|(code, _, body)| (code, body))
}

/// [`http_get`] with an `Accept` header when `accept` is given: status code, content type
/// and body.
pub fn http_get_accepting(
    address: &str,
    target: &str,
    accept: Option<&str>,
) -> std::io::Result<(u32, String, String)> {
    let mut stream = std::net::TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let accept = accept.map_or(String::new(), |accept| format!("Accept: {accept}\r\n"));
    write!(
        stream,
        "GET {target} HTTP/1.1\r\nHost: {address}\r\n{accept}Connection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let code = head
        .split_ascii_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let content_type = head
        .lines()
        .find_map(|line| line.strip_prefix("Content-Type: "))
        .unwrap_or_default();
    Ok((code, content_type.to_owned(), body.to_owned()))
}

/// `GET target` once the listener answers (the daemon is up), for at most `timeout`.
pub fn http_get_once_up(address: &str, target: &str, timeout: Duration) -> (u32, String) {
    poll_until(timeout, || http_get(address, target), Result::is_ok)
        .unwrap_or_else(|error| panic!("{address} never answered {target}: {error}"))
}

/// Calls `probe` until `done` holds of what it returns, or `timeout` has passed: the last
/// result. For what a test can only look at, not be told of (a scrape, `stalld status`, a
/// thread's policy): the daemon makes such state visible when a wakeup of its loop ends,
/// after the lines it logged meanwhile, and threads set themselves up after they start.
pub fn poll_until<T>(
    timeout: Duration,
    mut probe: impl FnMut() -> T,
    done: impl Fn(&T) -> bool,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        let value = probe();
        if done(&value) || Instant::now() >= deadline {
            return value;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A scratch directory under the temporary directory, removed when dropped.
pub struct Scratch(pub std::path::PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let path = std::env::temp_dir().join(format!("stalld-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Scratch(path)
    }

    pub fn join(&self, name: &str) -> std::path::PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The address the daemon serves metrics on (`host:port`), from its `metrics: serving` line.
pub fn metrics_address(daemon: &Daemon) -> String {
    let line = daemon
        .wait_for_line(
            |line| line.starts_with("stalld: ") && line.contains("metrics: serving http://"),
            Duration::from_secs(15),
        )
        .unwrap_or_else(|| panic!("no metrics line\n{}", daemon.process.transcript()));
    let url = line.split("http://").nth(1).unwrap();
    url.trim_end_matches("/metrics").to_owned()
}

/// A real Prometheus server (`binary`, Debian's) scraping `target` every second as job
/// `stalld`, with `labels` on its series, its data in `scratch`, for at most `bound`: the
/// process and the address of its HTTP API.
pub fn prometheus(
    binary: &str,
    scratch: &Scratch,
    target: &str,
    labels: &[(&str, &str)],
    bound: Duration,
) -> (Supervised, String) {
    let config = scratch.join("prometheus.yml");
    let mut text = format!("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: stalld\n    static_configs:\n      - targets: ['{target}']\n");
    if !labels.is_empty() {
        text += "        labels:\n";
        for (name, value) in labels {
            text += &format!("          {name}: '{value}'\n");
        }
    }
    std::fs::write(&config, text).unwrap();
    let web = format!("127.0.0.1:{}", free_port());
    let process = Supervised::spawn(
        binary,
        &[
            &format!("--config.file={}", config.display()),
            &format!("--storage.tsdb.path={}", scratch.join("data").display()),
            &format!("--web.listen-address={web}"),
            "--log.level=warn",
        ],
        bound,
    );
    (process, web)
}
