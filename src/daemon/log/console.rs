//! The sinks on stalld's own stderr and stdout: `stalld: ` lines on stderr (`-v`, and
//! warnings always), `<priority>`-prefixed when stderr is journald's stream; the `-v` task
//! tables on stdout, or on stderr when `--events -` owns stdout. Written without waiting
//! ([`stream`]).

use super::{stream, Class, Delivery, Record, Sink};
use crate::config::{EventsTarget, SinkOptions};
use crate::event::Severity;

/// One line on stderr: `<level>` first when journald reads the stream. One write per line
/// keeps lines whole when several processes share the terminal.
pub fn stderr_line(severity: Severity, message: &str, journal_stream: bool) -> Delivery {
    let line = if journal_stream {
        format!("<{}>stalld: {message}\n", severity as u8)
    } else {
        format!("stalld: {message}\n")
    };
    Delivery::written(stream::stderr(line.as_bytes()))
}

pub struct Stderr {
    verbose: bool,
    /// Stderr is connected to journald (JOURNAL_STREAM names it).
    journal_stream: bool,
    /// The native journal takes the lines the stream would carry (falling back to the
    /// stream itself when journald is not there after all): only `-v` diagnostics come here.
    journal_owns_stream: bool,
    /// `--events -`: stdout carries only JSON lines, so the `-v` tables come here.
    tables: bool,
}

impl Stderr {
    /// `journal_owns_stream`: a native journal sink replaces the stream's lines.
    pub fn new(options: &SinkOptions, journal_owns_stream: bool) -> Stderr {
        Stderr {
            verbose: options.verbose,
            journal_stream: super::stderr_is_journal(),
            journal_owns_stream,
            tables: options.events == Some(EventsTarget::Stdout),
        }
    }
}

impl Sink for Stderr {
    fn name(&self) -> &'static str {
        "stderr"
    }

    fn takes(&self, record: &Record) -> bool {
        match record.class {
            Class::Verbose => true,
            Class::Table => self.tables,
            Class::Line | Class::Event(_) => {
                !self.journal_owns_stream
                    && (record.severity == Severity::Warning || self.verbose || self.journal_stream)
            }
        }
    }

    fn write(&self, record: &Record) -> Delivery {
        match record.class {
            Class::Table => Delivery::written(stream::stderr(record.message.as_bytes())),
            _ => stderr_line(record.severity, record.message, self.journal_stream),
        }
    }
}

/// `-v`'s task tables on stdout, where the C stalld prints them.
pub struct Stdout;

impl Stdout {
    /// With `-v`, unless `--events -` owns stdout.
    pub fn wanted(options: &SinkOptions) -> Option<Stdout> {
        (options.verbose && options.events != Some(EventsTarget::Stdout)).then_some(Stdout)
    }
}

impl Sink for Stdout {
    fn name(&self) -> &'static str {
        "stdout"
    }

    fn takes(&self, record: &Record) -> bool {
        matches!(record.class, Class::Table)
    }

    fn write(&self, record: &Record) -> Delivery {
        Delivery::written(stream::stdout(record.message.as_bytes()))
    }
}
