//! Where log lines go. Message texts stay upstream's, because operators' scripts grep them.
//! Typed [`Event`]s are rendered here; the remaining free-text lines are configuration and
//! diagnostics that no tool keys on.
//!
//! `-v`: stderr with the `stalld: ` prefix. `-k`: /dev/kmsg. `-s`: syslog (ident `stalld`,
//! facility daemon) through /dev/log. Started by systemd (JOURNAL_STREAM names our stderr):
//! stderr with `<priority>` prefixes, which journald turns into message priorities.
//! Warnings always reach stderr.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::sync::Arc;

use crate::event::{Event, Severity};

const SYSLOG_SOCKET: &str = "/dev/log";
const KMSG: &str = "/dev/kmsg";
const LOG_DAEMON: u8 = 3 << 3;

#[derive(Clone, Debug, Default)]
pub struct Logger {
    verbose: bool,
    journal: bool,
    kmsg: bool,
    syslog: Option<Arc<UnixDatagram>>,
}

impl Logger {
    /// Stderr only, for `-v`.
    pub fn new(verbose: bool) -> Logger {
        Logger {
            verbose,
            journal: stderr_is_journal(),
            ..Logger::default()
        }
    }

    /// Adds /dev/kmsg and syslog as configured. A sink that cannot be opened is a warning.
    pub fn with_sinks(mut self, kmsg: bool, syslog: bool) -> Logger {
        if kmsg {
            match OpenOptions::new().write(true).open(KMSG) {
                Ok(_) => self.kmsg = true,
                Err(error) => self.warn(&format!("cannot open {KMSG}: {error}")),
            }
        }
        if syslog {
            match UnixDatagram::unbound() {
                Ok(socket) => self.syslog = Some(Arc::new(socket)),
                Err(error) => self.warn(&format!("cannot create a syslog socket: {error}")),
            }
        }
        self
    }

    /// Something that happened: its text line goes to every configured sink; warnings reach
    /// stderr even without `-v`.
    pub fn event(&self, event: &Event) {
        let severity = event.severity();
        self.emit(
            severity,
            &event.text(),
            severity == Severity::Warning || self.verbose || self.journal,
        );
    }

    /// A log line: goes to every configured sink.
    pub fn log(&self, message: &str) {
        self.emit(Severity::Info, message, self.verbose || self.journal);
    }

    /// Something the operator should see even without `-v`.
    pub fn warn(&self, message: &str) {
        self.emit(Severity::Warning, message, true);
    }

    /// A `-v` diagnostic, such as the per-check lines: stderr only, and only with `-v`, like
    /// the C stalld's `info()`; never kmsg, syslog or (without `-v`) the journal.
    pub fn verbose(&self, message: &str) {
        if self.verbose {
            self.write_stderr(Severity::Info, message);
        }
    }

    /// `-v` output the C stalld prints on stdout (the per-CPU task tables), in one write.
    pub fn verbose_stdout(&self, text: &str) {
        if self.verbose {
            let mut stdout = std::io::stdout().lock();
            let _ = stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush());
        }
    }

    fn write_stderr(&self, severity: Severity, message: &str) {
        let level = severity as u8;
        // One write per line keeps lines whole when several processes share the terminal.
        let line = if self.journal {
            format!("<{level}>stalld: {message}\n")
        } else {
            format!("stalld: {message}\n")
        };
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn emit(&self, severity: Severity, message: &str, to_stderr: bool) {
        let level = severity as u8;
        if to_stderr {
            self.write_stderr(severity, message);
        }
        if self.kmsg {
            // The kernel rate-limits each open file to 10 records per 5 s: a fresh open per
            // line keeps a burst of boosts from being dropped.
            if let Ok(mut kmsg) = OpenOptions::new().write(true).open(KMSG) {
                let _ = kmsg.write_all(format!("<{level}>stalld: {message}").as_bytes());
            }
        }
        if let Some(socket) = &self.syslog {
            // The socket is looked up per message, so a syslog daemon (re)started later is found.
            let packet = format!(
                "<{}>stalld[{}]: {message}",
                LOG_DAEMON | level,
                std::process::id()
            );
            let _ = socket.send_to(packet.as_bytes(), SYSLOG_SOCKET);
        }
    }
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
