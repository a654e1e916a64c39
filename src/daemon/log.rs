//! Where log lines and events go. Message texts stay upstream's, because operators' scripts
//! grep them. Typed [`Event`]s are rendered here, once, into every sink; the remaining
//! free-text lines are configuration and diagnostics that no tool keys on.
//!
//! Text sinks: `-v`: stderr with the `stalld: ` prefix. `-k`: /dev/kmsg. `-s`: syslog (ident
//! `stalld`, facility daemon) through /dev/log. Warnings always reach stderr.
//! Structured sinks, which render any event generically from [`Event::fields`]:
//! journald's native protocol ([`journal`]) when stalld runs under journald (it then replaces
//! the `<priority>`-prefixed stderr lines systemd would otherwise store), the `--events` JSON
//! lines ([`events_file`]), and the daemon's [`Telemetry`] (metrics, `stalld status`).
//!
//! No sink blocks the loop: syslog and journal datagrams are sent non-blocking, and stderr,
//! stdout and the events file or pipe are written without waiting ([`stream`]); what cannot
//! be written at once is dropped and counted ([`Drops`], exposed as
//! `stalld_log_dropped_total{sink}`).

pub mod events_file;
pub mod journal;
pub mod stream;

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::SystemTime;

use serde_json::{Map, Value};

use super::telemetry::{unix_seconds, Telemetry};
use crate::config::EventsTarget;
use crate::event::{Event, FieldValue, Severity};
use journal::Journal;
use stream::LineWriter;

const SYSLOG_SOCKET: &str = "/dev/log";
/// For tests only: the syslog socket to send to instead of /dev/log.
pub const SYSLOG_SOCKET_ENV: &str = "STALLD_SYSLOG_SOCKET";
/// Where systemd-journald receives syslog datagrams.
const JOURNALD_SYSLOG_SOCKET: &str = "/run/systemd/journal/dev-log";
const KMSG: &str = "/dev/kmsg";
const LOG_DAEMON: u8 = 3 << 3;

/// What became of one message in one sink.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    Sent,
    /// The receiver is not keeping up (its queue is full): dropped rather than waited for.
    Dropped,
    /// Nobody listens there (no such socket, connection refused, ...).
    Unavailable,
}

impl Delivery {
    fn of(result: io::Result<()>) -> Delivery {
        match result {
            Ok(()) => Delivery::Sent,
            Err(error)
                if error.kind() == io::ErrorKind::WouldBlock
                    || error.raw_os_error() == Some(libc::ENOBUFS) =>
            {
                Delivery::Dropped
            }
            Err(_) => Delivery::Unavailable,
        }
    }
}

/// Messages each sink could not take without blocking, since the start.
#[derive(Debug, Default)]
pub struct Drops {
    pub journal: AtomicU64,
    pub syslog: AtomicU64,
    pub kmsg: AtomicU64,
    pub events: AtomicU64,
    pub stderr: AtomicU64,
    pub stdout: AtomicU64,
}

impl Drops {
    /// `(sink, count)` for every sink.
    pub fn counts(&self) -> [(&'static str, u64); 6] {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        [
            ("journal", get(&self.journal)),
            ("syslog", get(&self.syslog)),
            ("kmsg", get(&self.kmsg)),
            ("events", get(&self.events)),
            ("stderr", get(&self.stderr)),
            ("stdout", get(&self.stdout)),
        ]
    }

    /// Counts a message `written` false (dropped) in `counter`.
    fn count_written(counter: &AtomicU64, written: bool) {
        if !written {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn count(counter: &AtomicU64, delivery: Delivery) -> Delivery {
        if delivery != Delivery::Sent {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        delivery
    }
}

#[derive(Clone, Debug, Default)]
pub struct Logger {
    verbose: bool,
    /// Stderr is connected to journald (JOURNAL_STREAM names it).
    journal_stream: bool,
    kmsg: bool,
    syslog: Option<Arc<(UnixDatagram, PathBuf)>>,
    journal: Option<Arc<Journal>>,
    events: Option<Arc<Mutex<LineWriter>>>,
    /// `--events -`: stdout carries only JSON lines, so the `-v` tables go to stderr.
    tables_on_stderr: bool,
    telemetry: Option<Arc<Mutex<Telemetry>>>,
    drops: Arc<Drops>,
    /// The backend in use, once chosen: a field of every structured event.
    backend: Arc<OnceLock<&'static str>>,
}

impl Logger {
    /// Stderr only, for `-v`.
    pub fn new(verbose: bool) -> Logger {
        Logger {
            verbose,
            journal_stream: stderr_is_journal(),
            ..Logger::default()
        }
    }

    /// Adds /dev/kmsg and syslog as configured, and journald's native protocol when stalld
    /// runs under journald. A sink that cannot be opened is a warning.
    pub fn with_sinks(mut self, kmsg: bool, syslog: bool) -> Logger {
        if kmsg {
            match OpenOptions::new().write(true).open(KMSG) {
                Ok(_) => self.kmsg = true,
                Err(error) => self.warn(&format!("cannot open {KMSG}: {error}")),
            }
        }
        if syslog {
            let path = std::env::var_os(SYSLOG_SOCKET_ENV)
                .map_or_else(|| PathBuf::from(SYSLOG_SOCKET), PathBuf::from);
            match UnixDatagram::unbound().and_then(|s| s.set_nonblocking(true).map(|()| s)) {
                Ok(socket) => self.syslog = Some(Arc::new((socket, path))),
                Err(error) => self.warn(&format!("cannot create a syslog socket: {error}")),
            }
        }
        self.journal = Journal::from_environment().map(Arc::new);
        if self.journal.is_some()
            && self
                .syslog
                .as_ref()
                .is_some_and(|s| same_file(&s.1, Path::new(JOURNALD_SYSLOG_SOCKET)))
        {
            // systemd's /dev/log is journald's own socket: every message would be stored twice
            // (the native entry and the syslog one). journald forwards native entries to a
            // syslog daemon when one runs (ForwardToSyslog), so nothing is lost.
            self.syslog = None;
            self.verbose(
                "syslog: /dev/log is journald's, which gets every message natively: not sent twice",
            );
        }
        self
    }

    /// `--events FILE|fifo:PATH|-`: every event as a JSON line.
    pub fn with_events_file(mut self, target: &EventsTarget) -> io::Result<Logger> {
        self.events = Some(Arc::new(Mutex::new(events_file::open(target)?)));
        self.tables_on_stderr = *target == EventsTarget::Stdout;
        Ok(self)
    }

    /// Feeds every event to `telemetry` (metrics, `stalld status`).
    pub fn with_telemetry(mut self, telemetry: Telemetry) -> Logger {
        self.telemetry = Some(Arc::new(Mutex::new(telemetry)));
        self
    }

    pub fn drops(&self) -> Arc<Drops> {
        Arc::clone(&self.drops)
    }

    /// The telemetry, for the loop's own measurements. Only the daemon's main thread takes
    /// this lock (listener threads read what it publishes), so it never waits.
    pub fn telemetry(&self) -> Option<MutexGuard<'_, Telemetry>> {
        let telemetry = self.telemetry.as_ref()?;
        Some(
            telemetry
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }

    /// The backend in use: added to every later event.
    pub fn set_backend(&self, name: &'static str) {
        let _ = self.backend.set(name);
    }

    /// Something that happened: its text line goes to every text sink (warnings reach
    /// stderr even without `-v`), its fields to every structured sink.
    pub fn event(&self, event: &Event) {
        let severity = event.severity();
        let text = event.text();
        let mut fields = event.fields();
        if let Some(backend) = self.backend.get() {
            if !fields.iter().any(|(name, _)| *name == "backend") {
                fields.push(("backend", FieldValue::Text((*backend).to_owned())));
            }
        }
        // Only a native journal reads them: no sink, nothing built.
        let mut journal: Vec<(String, Vec<u8>)> = Vec::new();
        if self.journal.is_some() {
            let kind = event.kind();
            journal.push(("MESSAGE_ID".into(), kind.message_id().into()));
            journal.push(("STALLD_EVENT".into(), kind.name().into()));
            if let Some(tid) = event.tid() {
                // journald adds the victim's own unit, cgroup and command line (OBJECT_*).
                journal.push(("OBJECT_PID".into(), tid.to_string().into()));
            }
            journal.extend(
                fields
                    .iter()
                    .map(|(name, value)| (journal::field_name(name), value.to_string().into())),
            );
        }
        self.emit(
            severity,
            &text,
            severity == Severity::Warning || self.verbose || self.journal_stream,
            &journal,
        );
        if self.events.is_none() && self.telemetry.is_none() {
            return;
        }
        let at = SystemTime::now();
        let json = Arc::new(event_json(event, &text, &fields, at));
        if let Some(events) = &self.events {
            let mut events = events.lock().unwrap_or_else(|p| p.into_inner());
            let line = format!("{json}\n");
            Drops::count_written(&self.drops.events, events.write(line.as_bytes()));
        }
        if let Some(mut telemetry) = self.telemetry() {
            telemetry.record(event, json, at);
        }
    }

    /// Publishes what the telemetry counted since the last call, for the listeners: once per
    /// wakeup of the loop rather than at every event.
    pub fn publish_telemetry(&self) {
        if let Some(mut telemetry) = self.telemetry() {
            telemetry.publish_changes();
        }
    }

    /// A log line: goes to every configured sink.
    pub fn log(&self, message: &str) {
        self.emit(
            Severity::Info,
            message,
            self.verbose || self.journal_stream,
            &[],
        );
    }

    /// Something the operator should see even without `-v`.
    pub fn warn(&self, message: &str) {
        self.emit(Severity::Warning, message, true, &[]);
    }

    /// Whether `-v` is on: lets a caller skip building lines nobody will see.
    pub fn is_verbose(&self) -> bool {
        self.verbose
    }

    /// A `-v` diagnostic, such as the per-check lines: stderr only, and only with `-v`, like
    /// the C stalld's `info()`; never kmsg, syslog, the event stream or the native journal.
    pub fn verbose(&self, message: &str) {
        if self.verbose {
            self.stderr_line(Severity::Info, message);
        }
    }

    /// `-v` output the C stalld prints on stdout (the per-CPU task tables), in one write; on
    /// stderr when `--events -` owns stdout, so that a JSON reader sees only JSON.
    pub fn verbose_stdout(&self, text: &str) {
        if !self.verbose {
            return;
        }
        if self.tables_on_stderr {
            Drops::count_written(&self.drops.stderr, stream::stderr(text.as_bytes()));
        } else {
            Drops::count_written(&self.drops.stdout, stream::stdout(text.as_bytes()));
        }
    }

    /// One line on stderr (`<level>` first when journald reads the stream), never waiting for
    /// its reader.
    fn stderr_line(&self, severity: Severity, message: &str) {
        // One write per line keeps lines whole when several processes share the terminal.
        let line = if self.journal_stream {
            format!("<{}>stalld: {message}\n", severity as u8)
        } else {
            format!("stalld: {message}\n")
        };
        Drops::count_written(&self.drops.stderr, stream::stderr(line.as_bytes()));
    }

    /// Sends one message to every sink; `extra` are journald fields beyond the message and
    /// its priority.
    fn emit(
        &self,
        severity: Severity,
        message: &str,
        to_stderr: bool,
        extra: &[(String, Vec<u8>)],
    ) {
        let level = severity as u8;
        let journaled = self.journal.as_ref().is_some_and(|journal| {
            let priority = level.to_string();
            let mut fields: Vec<(&str, &[u8])> = vec![
                ("MESSAGE", message.as_bytes()),
                ("PRIORITY", priority.as_bytes()),
                ("SYSLOG_IDENTIFIER", b"stalld"),
            ];
            fields.extend(extra.iter().map(|(n, v)| (n.as_str(), v.as_slice())));
            // Unavailable (no journald after all) falls back to the stream below, if stderr
            // is one; dropped is dropped: journald is there but not keeping up.
            let delivery = journal.send(&fields);
            if delivery == Delivery::Dropped || !self.journal_stream {
                Drops::count(&self.drops.journal, delivery);
            }
            delivery != Delivery::Unavailable
        });
        // The native entry replaces the stream line journald would store as a twin.
        if to_stderr && !(journaled && self.journal_stream) {
            self.stderr_line(severity, message);
        }
        if self.kmsg {
            // The kernel rate-limits each open file to 10 records per 5 s: a fresh open per
            // line keeps a burst of boosts from being dropped. Writes to the ring never wait.
            let written = OpenOptions::new()
                .write(true)
                .open(KMSG)
                .and_then(|mut kmsg| {
                    kmsg.write_all(format!("<{level}>stalld: {message}").as_bytes())
                });
            Drops::count(&self.drops.kmsg, Delivery::of(written));
        }
        if let Some(syslog) = &self.syslog {
            let (socket, path) = &**syslog;
            // Sent by path every time, so a syslog daemon (re)started later is found.
            let packet = format!(
                "<{}>stalld[{}]: {message}",
                LOG_DAEMON | level,
                std::process::id()
            );
            Drops::count(
                &self.drops.syslog,
                Delivery::of(socket.send_to(packet.as_bytes(), path).map(drop)),
            );
        }
    }
}

/// Whether `a` and `b` name the same existing file, through symbolic links (systemd links
/// /dev/log to journald's syslog socket).
fn same_file(a: &Path, b: &Path) -> bool {
    let identity = |path: &Path| std::fs::metadata(path).map(|m| (m.dev(), m.ino())).ok();
    identity(a).is_some_and(|id| identity(b) == Some(id))
}

/// One event as a JSON object: the `--events` line, and an entry of `stalld status`.
pub fn event_json(
    event: &Event,
    text: &str,
    fields: &[(&'static str, FieldValue)],
    at: SystemTime,
) -> Value {
    let kind = event.kind();
    let mut object = Map::new();
    object.insert("timestamp".into(), unix_seconds(at).into());
    object.insert("event".into(), kind.name().into());
    object.insert("message_id".into(), kind.message_id().into());
    object.insert("priority".into(), (event.severity() as u8).into());
    object.insert("message".into(), text.into());
    for (name, value) in fields {
        let value = match value {
            FieldValue::Int(number) => Value::from(*number),
            FieldValue::Text(text) => Value::from(text.as_str()),
        };
        object.insert((*name).into(), value);
    }
    Value::Object(object)
}

/// systemd sets JOURNAL_STREAM to the `device:inode` of the stream it connected to stderr.
fn stderr_is_journal() -> bool {
    let Ok(expected) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(stat) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    expected == format!("{}:{}", stat.dev(), stat.ino())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_file_follows_links_and_tells_sockets_apart() {
        let dir = std::env::temp_dir().join(format!("stalld-same-file-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let journald = dir.join("dev-log");
        let other = dir.join("other");
        let _journald = UnixDatagram::bind(&journald).unwrap();
        let _other = UnixDatagram::bind(&other).unwrap();
        let dev_log = dir.join("log");
        std::os::unix::fs::symlink(&journald, &dev_log).unwrap();
        assert!(same_file(&dev_log, &journald));
        assert!(same_file(&journald, &journald));
        assert!(!same_file(&other, &journald));
        assert!(!same_file(&dir.join("missing"), &journald));
        assert!(!same_file(&journald, &dir.join("missing")));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
