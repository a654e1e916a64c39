//! journald's native protocol: one datagram per entry to `/run/systemd/journal/socket`, each
//! field `NAME=value\n`, or `NAME\n` + little-endian 64-bit length + value + `\n` when the
//! value holds a newline; an entry too large for a datagram travels as a sealed memfd.
//!
//! Written here rather than taken from a crate: the crates that speak it are front ends of
//! the `log`/`tracing` facades (systemd-journal-logger, tracing-journald) with a fixed socket
//! path and blocking sends, while stalld needs typed fields of its own, sends that never block
//! the loop (a stalled journald drops entries, counted, instead of stopping restores), and a
//! socket path tests can point at ([`SOCKET_ENV`]). The encoder is twenty lines.

use std::io;
use std::os::fd::AsFd;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

use super::{console, Class, Delivery, Record, Sink};
use crate::event::docs::journal_field;
use crate::sys;

pub const DEFAULT_SOCKET: &str = "/run/systemd/journal/socket";

/// For tests only: the socket to send to instead of [`DEFAULT_SOCKET`] (a journald namespace
/// instance's, or one the test reads itself). Setting it also turns the sink on.
pub const SOCKET_ENV: &str = "STALLD_JOURNAL_SOCKET";

pub struct Journal {
    socket: UnixDatagram,
    path: PathBuf,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Journal({})", self.path.display())
    }
}

impl Journal {
    /// The sink when stalld runs under journald: `JOURNAL_STREAM` is set (systemd started
    /// us), the socket exists, or a test named one.
    pub fn from_environment() -> Option<Journal> {
        let (path, wanted) = match std::env::var_os(SOCKET_ENV) {
            Some(path) => (PathBuf::from(path), true),
            None => (
                PathBuf::from(DEFAULT_SOCKET),
                std::env::var_os("JOURNAL_STREAM").is_some(),
            ),
        };
        (wanted || path.exists())
            .then(|| Journal::open(&path).ok())
            .flatten()
    }

    pub fn open(path: &Path) -> io::Result<Journal> {
        let socket = UnixDatagram::unbound()?;
        socket.set_nonblocking(true)?;
        Ok(Journal {
            socket,
            path: path.to_owned(),
        })
    }

    /// Sends one entry without blocking.
    pub fn send(&self, fields: &[(&str, &[u8])]) -> Delivery {
        let mut entry = Vec::with_capacity(512);
        encode(fields, &mut entry);
        let sent = match self.socket.send_to(&entry, &self.path) {
            Err(error) if error.raw_os_error() == Some(libc::EMSGSIZE) => self.send_large(&entry),
            other => other.map(drop),
        };
        Delivery::of(sent)
    }

    /// What does not fit a datagram goes as a sealed memfd, which journald reads instead.
    fn send_large(&self, entry: &[u8]) -> io::Result<()> {
        let memfd = sys::sealed_memfd("stalld-journal", entry)?;
        sys::send_fd_nonblocking(&self.socket, &self.path, memfd.as_fd())
    }
}

/// Appends the native-protocol encoding of `fields` to `out`. Names must be journald field
/// names (upper case, digits, `_`); values may be any bytes.
pub fn encode(fields: &[(&str, &[u8])], out: &mut Vec<u8>) {
    for (name, value) in fields {
        out.extend_from_slice(name.as_bytes());
        if value.contains(&b'\n') {
            out.push(b'\n');
            out.extend_from_slice(&(value.len() as u64).to_le_bytes());
        } else {
            out.push(b'=');
        }
        out.extend_from_slice(value);
        out.push(b'\n');
    }
}

/// The sink: every line, warning and event as a journal entry, with the event's fields.
pub struct JournalSink {
    journal: Journal,
    /// Stderr is journald's stream: the native entry replaces the stream's line, and a line
    /// journald does not take natively (not there after all) goes to the stream instead.
    stream: bool,
}

impl JournalSink {
    /// See [`Journal::from_environment`].
    pub fn from_environment() -> Option<JournalSink> {
        Some(JournalSink {
            journal: Journal::from_environment()?,
            stream: super::stderr_is_journal(),
        })
    }

    /// Whether it takes over the lines of stderr, journald's stream.
    pub fn owns_stream(&self) -> bool {
        self.stream
    }
}

impl Sink for JournalSink {
    fn name(&self) -> &'static str {
        "journal"
    }

    fn takes(&self, record: &Record) -> bool {
        record.is_logged()
    }

    fn write(&self, record: &Record) -> Delivery {
        let priority = (record.severity as u8).to_string();
        let mut fields: Vec<(String, Vec<u8>)> = Vec::new();
        if let Class::Event(event) = record.class {
            let kind = event.event.kind();
            fields.push(("MESSAGE_ID".into(), kind.message_id().into()));
            fields.push(("STALLD_EVENT".into(), kind.name().into()));
            if let Some(tid) = event.event.tid() {
                // journald adds the victim's own unit, cgroup and command line (OBJECT_*).
                fields.push(("OBJECT_PID".into(), tid.to_string().into()));
            }
            fields.extend(
                event
                    .fields
                    .iter()
                    .map(|(name, value)| (journal_field(name), value.to_string().into())),
            );
        }
        let mut entry: Vec<(&str, &[u8])> = vec![
            ("MESSAGE", record.message.as_bytes()),
            ("PRIORITY", priority.as_bytes()),
            ("SYSLOG_IDENTIFIER", b"stalld"),
        ];
        entry.extend(fields.iter().map(|(n, v)| (n.as_str(), v.as_slice())));
        match self.journal.send(&entry) {
            // No journald after all: the stream it would have replaced carries the line.
            Delivery::Unavailable if self.stream => {
                console::stderr_line(record.severity, record.message, true)
            }
            delivery => delivery,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes the native protocol, as journald does (the test's view of the wire).
    pub(crate) fn decode(mut bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut fields = Vec::new();
        while !bytes.is_empty() {
            let end = bytes.iter().position(|&b| b == b'=' || b == b'\n').unwrap();
            let name = String::from_utf8(bytes[..end].to_vec()).unwrap();
            if bytes[end] == b'=' {
                let stop = end + 1 + bytes[end + 1..].iter().position(|&b| b == b'\n').unwrap();
                fields.push((name, bytes[end + 1..stop].to_vec()));
                bytes = &bytes[stop + 1..];
            } else {
                let len = u64::from_le_bytes(bytes[end + 1..end + 9].try_into().unwrap()) as usize;
                fields.push((name, bytes[end + 9..end + 9 + len].to_vec()));
                assert_eq!(bytes[end + 9 + len], b'\n');
                bytes = &bytes[end + 10 + len..];
            }
        }
        fields
    }

    #[test]
    fn values_with_newlines_are_length_prefixed() {
        let mut out = Vec::new();
        encode(
            &[("MESSAGE", b"one line"), ("STALLD_X", b"two\nlines")],
            &mut out,
        );
        assert!(out.starts_with(b"MESSAGE=one line\nSTALLD_X\n"));
        assert_eq!(
            decode(&out),
            vec![
                ("MESSAGE".to_owned(), b"one line".to_vec()),
                ("STALLD_X".to_owned(), b"two\nlines".to_vec()),
            ]
        );
        assert_eq!(journal_field("wait_ns"), "STALLD_WAIT_NS");
    }

    #[test]
    fn entries_reach_a_socket_and_a_full_queue_drops_instead_of_blocking() {
        let dir = std::env::temp_dir().join(format!("stalld-journal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("socket");
        let _ = std::fs::remove_file(&path);
        let receiver = UnixDatagram::bind(&path).unwrap();
        let journal = Journal::open(&path).unwrap();
        assert_eq!(journal.send(&[("MESSAGE", b"hello")]), Delivery::Sent);
        let mut buf = [0u8; 64];
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"MESSAGE=hello\n");
        // Nobody reads any more: the queue fills and sends are dropped, never waited for.
        let mut outcomes = Vec::new();
        for _ in 0..5000 {
            outcomes.push(journal.send(&[("MESSAGE", &[b'x'; 200])]));
            if outcomes.last() == Some(&Delivery::Dropped) {
                break;
            }
        }
        assert_eq!(outcomes.last(), Some(&Delivery::Dropped));
        drop(receiver);
        assert_eq!(journal.send(&[("MESSAGE", b"x")]), Delivery::Unavailable);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
