//! Writing lines without ever waiting for the reader: what the stderr and stdout sinks (`-v`,
//! warnings, the `-M` tables) and the `--events` file or pipe share. A reader that stopped
//! (a container log reader that hangs, a terminal scrolled with Ctrl-S, a shell pipeline that
//! stopped reading) must never stop the detect-and-boost loop.
//!
//! Each writer has a file description of its own where the kernel needs one for non-blocking
//! writes: a pipe, FIFO or terminal is opened again through `/proc/self/fd/N` with
//! `O_NONBLOCK` (setting it on the inherited description would change it for every process
//! that shares it, the shell's terminal included); a socket (systemd's stream to journald) is
//! written with `MSG_DONTWAIT`; a regular file never waits and shares the inherited
//! description (and its offset and `O_APPEND`). When none of that works, a write is made only
//! when `poll` says the descriptor can take it, and never more than `PIPE_BUF` bytes at once.
//!
//! The rest of a line the reader had no room for is kept and written first next time (lines
//! stay whole); a line that finds that rest still unwritten is dropped, and the caller counts
//! it (`stalld_log_dropped_total{sink}`).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::sys;

/// Where the bytes go, and how they get there without blocking.
#[derive(Debug)]
enum Output {
    /// A description that never blocks: its own with `O_NONBLOCK`, or a regular file's.
    File(File),
    /// A socket: `send` with `MSG_DONTWAIT`.
    Socket(OwnedFd),
    /// Anything else: written only when `poll` says it can take `PIPE_BUF` bytes.
    Polled(OwnedFd),
    /// No descriptor (stdout or stderr closed): everything is dropped.
    Closed,
}

#[derive(Debug)]
pub struct LineWriter {
    output: Output,
    pending: Vec<u8>,
}

impl LineWriter {
    /// Writes to `file`, whose description must not block (opened with `O_NONBLOCK`, or a
    /// regular file).
    pub fn file(file: File) -> LineWriter {
        LineWriter::with(Output::File(file))
    }

    /// Writes to what `fd` (stdout or stderr) leads to, without blocking and without changing
    /// the inherited description.
    pub fn inherited(fd: BorrowedFd<'_>) -> LineWriter {
        LineWriter::with(Self::output_for(fd).unwrap_or(Output::Closed))
    }

    fn with(output: Output) -> LineWriter {
        LineWriter {
            output,
            pending: Vec::new(),
        }
    }

    fn output_for(fd: BorrowedFd<'_>) -> io::Result<Output> {
        let own = fd.try_clone_to_owned()?;
        let kind = File::from(own.try_clone()?).metadata()?.file_type();
        if kind.is_socket() {
            return Ok(Output::Socket(own));
        }
        if kind.is_file() || kind.is_block_device() || kind.is_dir() {
            return Ok(Output::File(File::from(own)));
        }
        // A pipe, a FIFO, a terminal or another character device: a description of our own.
        use std::os::fd::AsRawFd;
        match OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(format!("/proc/self/fd/{}", own.as_raw_fd()))
        {
            Ok(file) => Ok(Output::File(file)),
            Err(_) => Ok(Output::Polled(own)),
        }
    }

    /// Writes `text` (whole lines, each ending in a newline); false when it had to be dropped
    /// because the reader has not taken what came before, or the output is gone.
    pub fn write(&mut self, text: &[u8]) -> bool {
        if !self.flush_pending() {
            return false;
        }
        self.pending.extend_from_slice(text);
        // What is left is part of these lines: written first next time.
        self.flush_pending();
        true
    }

    /// Writes as much of the backlog as the output takes now; true when it is all out.
    fn flush_pending(&mut self) -> bool {
        while !self.pending.is_empty() {
            match self.write_some() {
                Ok(0) => return false,
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    if matches!(self.output, Output::Closed) {
                        // Nothing will ever take it.
                        self.pending.clear();
                    }
                    return false;
                }
            }
        }
        true
    }

    fn write_some(&mut self) -> io::Result<usize> {
        let pending = &self.pending[..];
        match &mut self.output {
            Output::File(file) => file.write(pending),
            Output::Socket(socket) => sys::send_nonblocking(socket.as_fd(), pending),
            Output::Polled(fd) => {
                match sys::wait_any([(Some(fd.as_fd()), libc::POLLOUT)], Duration::ZERO)? {
                    Some(_) => {
                        let chunk = &pending[..pending.len().min(libc::PIPE_BUF)];
                        let mut file = File::from(fd.try_clone()?);
                        file.write(chunk)
                    }
                    None => Err(io::ErrorKind::WouldBlock.into()),
                }
            }
            Output::Closed => Err(io::ErrorKind::BrokenPipe.into()),
        }
    }
}

static STDERR: OnceLock<Mutex<LineWriter>> = OnceLock::new();
static STDOUT: OnceLock<Mutex<LineWriter>> = OnceLock::new();

fn write_to(writer: &'static OnceLock<Mutex<LineWriter>>, fd: BorrowedFd<'_>, text: &[u8]) -> bool {
    let writer = writer.get_or_init(|| Mutex::new(LineWriter::inherited(fd)));
    writer
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .write(text)
}

/// Writes whole lines to the process's stderr without blocking; false when they were dropped.
/// One writer for the process: lines from every thread stay whole.
pub fn stderr(text: &[u8]) -> bool {
    write_to(&STDERR, io::stderr().as_fd(), text)
}

/// The same for stdout.
pub fn stdout(text: &[u8]) -> bool {
    write_to(&STDOUT, io::stdout().as_fd(), text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pipe nobody reads, as stdout or stderr of a daemon whose log reader hangs: lines are
    /// dropped once it is full, never waited for, and the description the pipe's writer had
    /// stays blocking.
    #[test]
    fn a_pipe_nobody_reads_drops_lines_instead_of_blocking() {
        let (reader, writer) = std::io::pipe().unwrap();
        let writer = OwnedFd::from(writer);
        let mut lines = LineWriter::inherited(writer.as_fd());
        assert!(
            matches!(lines.output, Output::File(_)),
            "{:?}",
            lines.output
        );
        let line = "x".repeat(999) + "\n";
        let started = std::time::Instant::now();
        let written = (0..1000)
            .take_while(|_| lines.write(line.as_bytes()))
            .count();
        // A pipe holds 64 KiB, plus the one line kept back: then lines are dropped.
        assert!((64..70).contains(&written), "{written} lines accepted");
        assert!(started.elapsed() < Duration::from_secs(5));
        // The status flags of the writer's own description (octal in fdinfo): still blocking.
        let fdinfo = std::fs::read_to_string(format!(
            "/proc/self/fdinfo/{}",
            std::os::fd::AsRawFd::as_raw_fd(&writer)
        ))
        .unwrap();
        let flags = fdinfo
            .lines()
            .find_map(|line| line.strip_prefix("flags:"))
            .and_then(|octal| i32::from_str_radix(octal.trim(), 8).ok())
            .unwrap();
        assert_eq!(flags & libc::O_NONBLOCK, 0);
        // Once the reader catches up, the kept rest goes first and lines flow again.
        let mut reader = reader;
        let mut sink = vec![0u8; 1 << 20];
        let _ = io::Read::read(&mut reader, &mut sink);
        assert!(lines.write(b"again\n"));
    }

    #[test]
    fn a_socket_nobody_reads_drops_lines_instead_of_blocking() {
        let (ours, _theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut lines = LineWriter::inherited(ours.as_fd());
        assert!(matches!(lines.output, Output::Socket(_)));
        let line = "y".repeat(999) + "\n";
        let written = (0..100_000)
            .take_while(|_| lines.write(line.as_bytes()))
            .count();
        assert!(written < 100_000, "never dropped");
    }

    #[test]
    fn a_regular_file_is_appended_to_through_the_inherited_description() {
        let path = std::env::temp_dir().join(format!("stalld-stream-{}", std::process::id()));
        let mut file = File::create(&path).unwrap();
        file.write_all(b"before\n").unwrap();
        let mut lines = LineWriter::inherited(file.as_fd());
        assert!(lines.write(b"line\n"));
        file.write_all(b"after\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "before\nline\nafter\n"
        );
        let _ = std::fs::remove_file(&path);
    }
}
