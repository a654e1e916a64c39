//! Where log lines and events go. Message texts stay upstream's, because operators' scripts
//! grep them. Typed [`Event`]s are rendered here, once, into every sink; the remaining
//! free-text lines are configuration and diagnostics that no tool keys on.
//!
//! A sink is one type implementing [`Sink`] (as tracing-journald's `Layer` is one type
//! implementing `Layer`): it says which [`Record`]s it takes and writes them. [`Sinks`] is the
//! list of them, built from the configuration's [`SinkOptions`], counting what each drops
//! ([`Drops`], exposed as `stalld_log_dropped_total{sink}`):
//! - text: stderr with the `stalld: ` prefix (`-v`; warnings always) and the `-v` tables on
//!   stdout ([`console`]), /dev/kmsg (`-k`, [`kmsg`]), syslog (`-s`, ident `stalld`, facility
//!   daemon, [`syslog`]);
//! - structured, rendering any event generically from [`Event::fields`]: journald's native
//!   protocol ([`journal`]) when stalld runs under journald (it then replaces the
//!   `<priority>`-prefixed stderr lines systemd would otherwise store), and the `--events`
//!   JSON lines ([`events_file`]).
//!
//! Adding a sink: a file here with its type and `impl Sink`, a line in [`Sinks::open`], its
//! option in [`SinkOptions`] (a field, which `stalld status` shows under its name, and its
//! flag in `text_sink_args` if the guardian should write there too) and its flag in `cli/args.rs`, read in `cli::parse`.
//! Its drops are counted, exposed and listed in `stalld status` without more.
//!
//! The daemon's telemetry (metrics, `stalld status`) is no sink: it is a [`Subscriber`] the
//! loop owns, which the main thread's [`Logger`] hands every event after the sinks. The
//! logger holds it weakly and is not `Send`; listener threads log through [`Sinks`], which
//! has no way to it.
//!
//! No sink blocks the loop: syslog and journal datagrams are sent non-blocking, and stderr,
//! stdout and the events file or pipe are written without waiting ([`stream`]); what cannot
//! be written at once is dropped and counted.

pub mod console;
pub mod events_file;
pub mod journal;
pub mod kmsg;
pub mod stream;
pub mod syslog;

use std::cell::RefCell;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use serde_json::{Map, Value};

use crate::config::{EventsTarget, SinkOptions};
use crate::event::{Event, FieldValue, Fields, Severity, JSON_SCHEMA_VERSION};
pub use syslog::SOCKET_ENV as SYSLOG_SOCKET_ENV;

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

    /// A line written to a [`stream::LineWriter`] (`false`: dropped).
    fn written(written: bool) -> Delivery {
        if written {
            Delivery::Sent
        } else {
            Delivery::Dropped
        }
    }
}

/// What a message is, which decides the sinks it goes to.
#[derive(Clone, Copy, Debug)]
pub enum Class<'a> {
    /// A `-v` diagnostic, such as the per-check lines: stderr only, like the C stalld's
    /// `info()`.
    Verbose,
    /// `-v` output the C stalld prints on stdout (the per-CPU task tables), already lines.
    Table,
    /// A configuration or diagnostic line, or a warning: every text sink and journald.
    Line,
    /// An event: every sink.
    Event(&'a EventRecord<'a>),
}

/// One message on its way to the sinks.
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    pub severity: Severity,
    /// The text line (without the `stalld: ` prefix), or the table.
    pub message: &'a str,
    pub class: Class<'a>,
}

impl Record<'_> {
    /// Whether the record is one the logs keep (a line, a warning or an event), not a `-v`
    /// diagnostic or table: what kmsg, syslog and journald take.
    pub fn is_logged(&self) -> bool {
        matches!(self.class, Class::Line | Class::Event(_))
    }
}

/// An event as the structured sinks and subscribers take it: its fields (with the daemon's
/// backend), when it happened, and its JSON object, made once for all of them.
#[derive(Debug)]
pub struct EventRecord<'a> {
    pub event: &'a Event,
    pub text: &'a str,
    pub fields: Fields,
    pub at: SystemTime,
    json: OnceLock<Arc<Value>>,
}

impl EventRecord<'_> {
    /// The `--events` line's object, which `stalld status` also lists.
    pub fn json(&self) -> &Arc<Value> {
        self.json
            .get_or_init(|| Arc::new(event_json(self.event, self.text, &self.fields, self.at)))
    }
}

/// One place log lines and events go.
pub trait Sink: Send + Sync {
    /// Its `sink` label in `stalld_log_dropped_total`.
    fn name(&self) -> &'static str;
    /// Whether `record` is one for this sink.
    fn takes(&self, record: &Record) -> bool;
    /// Writes `record` without waiting; anything but [`Delivery::Sent`] counts as dropped.
    fn write(&self, record: &Record) -> Delivery;
}

/// Who gets every event after the sinks: the daemon's telemetry.
pub trait Subscriber {
    fn on_event(&mut self, event: &EventRecord);
}

struct Slot {
    sink: Box<dyn Sink>,
    dropped: Arc<AtomicU64>,
}

/// Messages each sink could not take without blocking, since the start.
#[derive(Debug, Default)]
pub struct Drops(Vec<(&'static str, Arc<AtomicU64>)>);

impl Drops {
    /// `(sink, count)` for every sink, in the order they are written.
    pub fn counts(&self) -> Vec<(&'static str, u64)> {
        self.0
            .iter()
            .map(|(sink, dropped)| (*sink, dropped.load(Ordering::Relaxed)))
            .collect()
    }
}

/// The sinks: what any thread may log with. Cloning shares them.
#[derive(Clone, Default)]
pub struct Sinks {
    verbose: bool,
    sinks: Arc<Vec<Arc<Slot>>>,
    /// The backend in use, once chosen: a field of every structured event.
    backend: Arc<OnceLock<&'static str>>,
}

impl Sinks {
    /// The text sinks `options` asks for (stderr, and `-v`'s stdout tables; /dev/kmsg and
    /// syslog as configured), and journald's native protocol when stalld runs under
    /// journald. A sink that cannot be opened is a warning.
    pub fn open(options: &SinkOptions) -> Sinks {
        let mut sinks = Sinks {
            verbose: options.verbose,
            ..Sinks::default()
        };
        let journal = journal::JournalSink::from_environment();
        let journal_owns_stream = journal
            .as_ref()
            .is_some_and(journal::JournalSink::owns_stream);
        sinks.add(console::Stderr::new(options, journal_owns_stream));
        if let Some(stdout) = console::Stdout::wanted(options) {
            sinks.add(stdout);
        }
        if options.kmsg {
            match kmsg::Kmsg::open() {
                Ok(kmsg) => sinks.add(kmsg),
                Err(error) => sinks.warn(&format!("cannot open {}: {error}", kmsg::PATH)),
            }
        }
        let mut syslog = None;
        if options.syslog {
            match syslog::Syslog::open() {
                Ok(opened) => syslog = Some(opened),
                Err(error) => sinks.warn(&format!("cannot create a syslog socket: {error}")),
            }
        }
        if let Some(journal) = journal {
            if syslog.as_ref().is_some_and(syslog::Syslog::is_journald) {
                // systemd's /dev/log is journald's own socket: every message would be stored
                // twice (the native entry and the syslog one). journald forwards native
                // entries to a syslog daemon when one runs (ForwardToSyslog), so nothing is
                // lost.
                syslog = None;
                sinks.verbose(
                    "syslog: /dev/log is journald's, which gets every message natively: not sent twice",
                );
            }
            sinks.add(journal);
        }
        if let Some(syslog) = syslog {
            sinks.add(syslog);
        }
        sinks
    }

    /// Adds `--events` (`options.events`): every event as a JSON line.
    pub fn with_events_file(mut self, target: &EventsTarget) -> io::Result<Sinks> {
        self.add(events_file::EventsFile::open(target)?);
        Ok(self)
    }

    fn add(&mut self, sink: impl Sink + 'static) {
        let slot = Arc::new(Slot {
            sink: Box::new(sink),
            dropped: Arc::default(),
        });
        let mut sinks = Vec::clone(&self.sinks);
        sinks.push(slot);
        self.sinks = Arc::new(sinks);
    }

    /// What each sink dropped: the counters themselves, which go on counting.
    pub fn drops(&self) -> Arc<Drops> {
        Arc::new(Drops(
            self.sinks
                .iter()
                .map(|slot| (slot.sink.name(), Arc::clone(&slot.dropped)))
                .collect(),
        ))
    }

    /// The backend in use: added to every later event.
    pub fn set_backend(&self, name: &'static str) {
        let _ = self.backend.set(name);
    }

    /// Sends `record` to every sink that takes it.
    fn emit(&self, record: &Record) {
        for slot in self.sinks.iter() {
            if slot.sink.takes(record) && slot.sink.write(record) != Delivery::Sent {
                slot.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// A log line: goes to every configured sink.
    pub fn log(&self, message: &str) {
        self.line(Severity::Info, message);
    }

    /// Something the operator should see even without `-v`.
    pub fn warn(&self, message: &str) {
        self.line(Severity::Warning, message);
    }

    fn line(&self, severity: Severity, message: &str) {
        self.emit(&Record {
            severity,
            message,
            class: Class::Line,
        });
    }

    /// Whether `-v` is on: lets a caller skip building lines nobody will see.
    pub fn is_verbose(&self) -> bool {
        self.verbose
    }

    /// A `-v` diagnostic, such as the per-check lines: stderr only, and only with `-v`, like
    /// the C stalld's `info()`; never kmsg, syslog, the event stream or the native journal.
    pub fn verbose(&self, message: &str) {
        if self.verbose {
            self.emit(&Record {
                severity: Severity::Info,
                message,
                class: Class::Verbose,
            });
        }
    }

    /// `-v` output the C stalld prints on stdout (the per-CPU task tables), in one write; on
    /// stderr when `--events -` owns stdout, so that a JSON reader sees only JSON.
    pub fn verbose_stdout(&self, text: &str) {
        if self.verbose {
            self.emit(&Record {
                severity: Severity::Info,
                message: text,
                class: Class::Table,
            });
        }
    }
}

/// A subscriber as the logger holds it: weakly, its owner keeps it.
type Subscription = Weak<RefCell<dyn Subscriber>>;

/// The main thread's logger: the sinks, and the subscribers the loop owns. Not `Send` (it
/// holds them with `Rc`): threads log through [`Logger::sinks`], which cannot reach them.
#[derive(Clone, Default)]
pub struct Logger {
    sinks: Sinks,
    subscribers: Rc<RefCell<Vec<Subscription>>>,
}

impl std::ops::Deref for Logger {
    type Target = Sinks;

    fn deref(&self) -> &Sinks {
        &self.sinks
    }
}

impl Logger {
    /// Stderr only, for `-v`.
    pub fn new(verbose: bool) -> Logger {
        Logger::open(&SinkOptions {
            verbose,
            ..SinkOptions::default()
        })
    }

    /// The text sinks of `options` (see [`Sinks::open`]); `--events` is added later by
    /// [`Logger::with_events_file`].
    pub fn open(options: &SinkOptions) -> Logger {
        Logger {
            sinks: Sinks::open(options),
            subscribers: Rc::default(),
        }
    }

    /// `--events FILE|fifo:PATH|-`: every event as a JSON line.
    pub fn with_events_file(mut self, target: &EventsTarget) -> io::Result<Logger> {
        self.sinks = self.sinks.with_events_file(target)?;
        Ok(self)
    }

    /// The sinks alone, for another thread.
    pub fn sinks(&self) -> Sinks {
        self.sinks.clone()
    }

    /// Hands every later event to `subscriber` (after the sinks) for as long as its owner
    /// keeps it.
    pub fn subscribe(&self, subscriber: &Rc<RefCell<impl Subscriber + 'static>>) {
        let subscriber: Rc<RefCell<dyn Subscriber>> = subscriber.clone();
        self.subscribers
            .borrow_mut()
            .push(Rc::downgrade(&subscriber));
    }

    /// Something that happened: its text line goes to every text sink (warnings reach
    /// stderr even without `-v`), its fields to every structured sink and subscriber.
    pub fn event(&self, event: &Event) {
        let text = event.text();
        let mut fields = event.fields();
        if let Some(backend) = self.backend.get() {
            if !fields.iter().any(|(name, _)| *name == "backend") {
                fields.push(("backend", FieldValue::Text((*backend).to_owned())));
            }
        }
        let record = EventRecord {
            event,
            text: &text,
            fields,
            at: SystemTime::now(),
            json: OnceLock::new(),
        };
        self.emit(&Record {
            severity: event.severity(),
            message: &text,
            class: Class::Event(&record),
        });
        for subscriber in self.subscribers.borrow().iter() {
            if let Some(subscriber) = subscriber.upgrade() {
                subscriber.borrow_mut().on_event(&record);
            }
        }
    }
}

/// One event as a JSON object: the `--events` line, and an entry of `stalld status` (its
/// layout is `schema/stalld-events.schema.json`).
fn event_json(event: &Event, text: &str, fields: &Fields, at: SystemTime) -> Value {
    let kind = event.kind();
    let mut object = Map::new();
    object.insert("schema".into(), JSON_SCHEMA_VERSION.into());
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

pub fn unix_seconds(at: SystemTime) -> f64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64())
}

/// Whether `a` and `b` name the same existing file, through symbolic links (systemd links
/// /dev/log to journald's syslog socket).
fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    let identity =
        |path: &std::path::Path| std::fs::metadata(path).map(|m| (m.dev(), m.ino())).ok();
    identity(a).is_some_and(|id| identity(b) == Some(id))
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
    use std::os::unix::net::UnixDatagram;
    use std::sync::Mutex;

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

    /// A sink that keeps what it takes, and drops every other message.
    struct Keeper {
        kept: Arc<Mutex<Vec<String>>>,
        calls: AtomicU64,
    }

    impl Sink for Keeper {
        fn name(&self) -> &'static str {
            "keeper"
        }
        fn takes(&self, record: &Record) -> bool {
            matches!(record.class, Class::Event(_))
        }
        fn write(&self, record: &Record) -> Delivery {
            let Class::Event(event) = record.class else {
                unreachable!("takes events only");
            };
            self.kept.lock().unwrap().push(event.json().to_string());
            match self.calls.fetch_add(1, Ordering::Relaxed) % 2 {
                0 => Delivery::Sent,
                _ => Delivery::Dropped,
            }
        }
    }

    #[derive(Default)]
    struct Counter(Vec<&'static str>);

    impl Subscriber for Counter {
        fn on_event(&mut self, event: &EventRecord) {
            self.0.push(event.event.kind().name());
        }
    }

    /// A sink is one type behind the trait: events reach it with their schema'd JSON, its
    /// drops are counted under its name, and a subscriber gets events only while its owner
    /// keeps it.
    #[test]
    fn sinks_take_what_they_want_drops_are_counted_per_sink_and_subscribers_are_owned() {
        let kept = Arc::new(Mutex::new(Vec::new()));
        let mut logger = Logger::new(false);
        logger.sinks.add(Keeper {
            kept: kept.clone(),
            calls: AtomicU64::new(0),
        });
        let drops = logger.drops();
        let counter = Rc::new(RefCell::new(Counter::default()));
        logger.subscribe(&counter);
        logger.set_backend("fake");
        logger.log("not an event");
        logger.event(&Event::Stopping);
        logger.event(&Event::Stopping);
        let kept = kept.lock().unwrap().clone();
        assert_eq!(kept.len(), 2, "{kept:?}");
        let json: Value = serde_json::from_str(&kept[0]).unwrap();
        assert_eq!(json["schema"], JSON_SCHEMA_VERSION);
        assert_eq!(json["event"], "stopping");
        assert_eq!(json["backend"], "fake");
        assert_eq!(json["message"], "stalld shutting down");
        assert!(
            drops.counts().contains(&("keeper", 1)),
            "{:?}",
            drops.counts()
        );
        assert_eq!(counter.borrow().0, ["stopping", "stopping"]);
        drop(counter);
        // Its owner let it go: nothing to deliver to, nothing kept alive.
        logger.event(&Event::Stopping);
    }

    /// Threads get the sinks; the logger, which reaches the loop's telemetry, cannot be sent
    /// to one: this does not compile once `Logger` is `Send` (the `u8` impl would apply too,
    /// and the call below would be ambiguous).
    #[test]
    fn the_sinks_a_thread_gets_are_send_and_the_logger_is_not() {
        fn send<T: Send + Sync>(_: &T) {}
        send(&Logger::new(false).sinks());
        trait NotSend<Proof> {
            fn holds() -> bool {
                true
            }
        }
        impl<T: ?Sized> NotSend<()> for T {}
        impl<T: ?Sized + Send> NotSend<u8> for T {}
        assert!(<Logger as NotSend<_>>::holds());
    }
}
