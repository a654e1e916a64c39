//! Where log lines go. Message texts stay upstream's, because operators' scripts grep them.
//!
//! `-v` sends them to stderr with the `stalld: ` prefix. Warnings always reach stderr.

use std::io::Write;

#[derive(Clone, Debug)]
pub struct Logger {
    verbose: bool,
}

impl Logger {
    pub fn new(verbose: bool) -> Logger {
        Logger { verbose }
    }

    /// A log line: goes to every configured sink.
    pub fn log(&self, message: &str) {
        if self.verbose {
            write_stderr(message);
        }
    }

    /// Something the operator should see even without `-v`.
    pub fn warn(&self, message: &str) {
        write_stderr(message);
    }
}

fn write_stderr(message: &str) {
    // One write per line keeps lines whole when several processes share the terminal.
    let line = format!("stalld: {message}\n");
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}
