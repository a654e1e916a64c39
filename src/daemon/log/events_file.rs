//! `--events FILE|-`: one JSON object per event and line, for log shippers. Writes never
//! block the loop: a pipe or FIFO is written non-blocking (stdout's pipe through a file
//! description of our own, so the shell's is untouched); the rest of a line the reader had no
//! room for is kept and written first next time (lines stay whole), and a line that finds that
//! rest still unwritten is dropped and counted.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

#[derive(Debug)]
pub struct EventsFile {
    file: File,
    pending: Vec<u8>,
}

impl EventsFile {
    /// `-` is stdout. A file is appended to (created 0640).
    pub fn open(target: &Path) -> io::Result<EventsFile> {
        let file = if target == Path::new("-") {
            let stdout = io::stdout().as_fd().try_clone_to_owned()?;
            let stdout = File::from(stdout);
            if stdout.metadata()?.file_type().is_fifo() {
                // A new open file description of the same pipe: O_NONBLOCK on it stays ours.
                OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_NONBLOCK)
                    .open("/proc/self/fd/1")?
            } else {
                stdout
            }
        } else {
            OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o640)
                .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
                .open(target)?
        };
        Ok(EventsFile {
            file,
            pending: Vec::new(),
        })
    }

    /// Writes `line` and a newline; false when it had to be dropped.
    pub fn write_line(&mut self, line: &str) -> bool {
        if !self.flush_pending() {
            return false;
        }
        self.pending.extend_from_slice(line.as_bytes());
        self.pending.push(b'\n');
        // What is left is part of this line: written first next time.
        self.flush_pending();
        true
    }

    /// Writes as much of the backlog as the file takes now; true when it is all out.
    fn flush_pending(&mut self) -> bool {
        while !self.pending.is_empty() {
            match self.file.write(&self.pending) {
                Ok(0) => return false,
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_appended_to_a_file() {
        let path = std::env::temp_dir().join(format!("stalld-events-{}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let mut events = EventsFile::open(&path).unwrap();
        assert!(events.write_line(r#"{"event":"a"}"#));
        assert!(events.write_line(r#"{"event":"b"}"#));
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"event\":\"a\"}\n{\"event\":\"b\"}\n"
        );
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_pipe_nobody_reads_drops_lines_instead_of_blocking() {
        let (reader, writer) = std::io::pipe().unwrap();
        let writer = File::from(std::os::fd::OwnedFd::from(writer));
        // As `open` does for stdout's pipe.
        let flags = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(format!(
                "/proc/self/fd/{}",
                std::os::fd::AsRawFd::as_raw_fd(&writer)
            ))
            .unwrap();
        let mut events = EventsFile {
            file: flags,
            pending: Vec::new(),
        };
        let line = "x".repeat(1000);
        let written = (0..1000).take_while(|_| events.write_line(&line)).count();
        // A pipe holds 64 KiB, plus the one line kept back: then lines are dropped.
        assert!((64..70).contains(&written), "{written} lines accepted");
        drop(reader);
        drop(writer);
    }
}
