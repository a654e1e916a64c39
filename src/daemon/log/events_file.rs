//! `--events FILE|fifo:PATH|-`: one JSON object per event and line, for log shippers,
//! written by a [`LineWriter`] (never blocking the loop; what a stalled reader cannot take is
//! dropped and counted).
//!
//! A file is opened as [`shared_dir`] opens files: never through a symbolic link, never a
//! FIFO, a device or a file with other hard links, never a file another user may have planted
//! (the C stalld's CVE-2024-54159 was a link planted in /tmp); a new one is created with
//! `O_EXCL` (mode 0640) and an existing one appended to. A named pipe is written only when
//! asked for by name, `fifo:PATH`, and is never created (its reader makes it, with `mkfifo`).

use std::fs::OpenOptions;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Mutex;

use super::stream::LineWriter;
use super::{Class, Delivery, Record, Sink};
use crate::config::EventsTarget;
use crate::daemon::process::shared_dir::{self, Found};

/// Tries before giving up when files keep appearing at the path as it is created.
const ATTEMPTS: usize = 8;

/// The sink: each event's JSON object on a line of its own.
pub struct EventsFile(Mutex<LineWriter>);

impl EventsFile {
    pub fn open(target: &EventsTarget) -> io::Result<EventsFile> {
        open(target).map(|writer| EventsFile(Mutex::new(writer)))
    }
}

impl Sink for EventsFile {
    fn name(&self) -> &'static str {
        "events"
    }

    fn takes(&self, record: &Record) -> bool {
        matches!(record.class, Class::Event(_))
    }

    fn write(&self, record: &Record) -> Delivery {
        let Class::Event(event) = record.class else {
            return Delivery::Unavailable;
        };
        let line = format!("{}\n", event.json());
        let mut writer = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Delivery::written(writer.write(line.as_bytes()))
    }
}

pub fn open(target: &EventsTarget) -> io::Result<LineWriter> {
    match target {
        EventsTarget::Stdout => Ok(LineWriter::inherited(io::stdout().as_fd())),
        EventsTarget::File(path) => open_file(path).map(LineWriter::file),
        EventsTarget::Fifo(path) => open_fifo(path).map(LineWriter::file),
    }
}

fn refused(why: String) -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, why)
}

fn append() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.append(true);
    options
}

fn open_file(path: &Path) -> io::Result<std::fs::File> {
    for _ in 0..ATTEMPTS {
        match shared_dir::inspect(path)? {
            None => match shared_dir::create_new(path, &mut append(), 0o640) {
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => continue,
                created => return created,
            },
            Some((handle, Found::Usable)) => {
                return shared_dir::reopen(
                    &handle,
                    append().custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY),
                )
            }
            Some((_, Found::Fifo)) => {
                return Err(refused(format!(
                    "{}; to write to a named pipe, say so: --events fifo:PATH",
                    Found::Fifo.refusal()
                )))
            }
            Some((_, found)) => return Err(refused(found.refusal())),
        }
    }
    Err(refused(
        "it kept changing while it was created (refused)".into(),
    ))
}

fn open_fifo(path: &Path) -> io::Result<std::fs::File> {
    match shared_dir::inspect(path)? {
        Some((handle, Found::Fifo)) => shared_dir::reopen(
            &handle,
            OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY),
        )
        .map_err(|error| match error.raw_os_error() {
            Some(libc::ENXIO) => io::Error::new(
                error.kind(),
                "nobody reads the FIFO yet (start its reader first)",
            ),
            _ => error,
        }),
        Some((_, Found::Usable | Found::Linked)) => Err(refused(
            "it is not a FIFO (refused: fifo: names an existing named pipe)".into(),
        )),
        Some((_, found)) => Err(refused(found.refusal())),
        None => Err(io::Error::new(
            io::ErrorKind::NotFound,
            "no such FIFO (it is not created: make it with mkfifo)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::process::shared_dir::scratch;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn mkfifo(path: &Path) {
        let status = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success());
    }

    #[test]
    fn lines_are_appended_to_a_file_created_new_or_found() {
        let dir = scratch("events-append");
        let path = dir.join("events.jsonl");
        let target = EventsTarget::File(path.clone());
        let mut events = open(&target).unwrap();
        assert!(events.write(b"{\"event\":\"a\"}\n"));
        // 0640, less the umask's bits: never more.
        assert_eq!(
            std::fs::metadata(&path).unwrap().mode() & 0o7777 & !0o640,
            0
        );
        drop(events);
        let mut events = open(&target).unwrap();
        assert!(events.write(b"{\"event\":\"b\"}\n"));
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"event\":\"a\"}\n{\"event\":\"b\"}\n"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// CVE-2024-54159's class: a link planted where the events file goes (here to a 0600 file
    /// that must stay untouched), a hard link, a FIFO not asked for: all refused, nothing
    /// written, nothing blocked.
    #[test]
    fn links_and_fifos_not_asked_for_are_refused() {
        let dir = scratch("events-hostile");
        let secret = dir.join("secret");
        std::fs::write(&secret, "secret\n").unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        let symlink = dir.join("symlink.jsonl");
        std::os::unix::fs::symlink(&secret, &symlink).unwrap();
        let hard = dir.join("hard.jsonl");
        std::fs::hard_link(&secret, &hard).unwrap();
        let fifo = dir.join("events.fifo");
        mkfifo(&fifo);
        for (path, says) in [
            (&symlink, "symbolic link"),
            (&hard, "other hard links"),
            (&fifo, "--events fifo:PATH"),
            (&dir, "not a regular file"),
        ] {
            let error = open(&EventsTarget::File(path.clone())).unwrap_err();
            assert!(
                error.to_string().contains(says),
                "{}: {error}",
                path.display()
            );
        }
        assert_eq!(std::fs::read_to_string(&secret).unwrap(), "secret\n");
        // fifo: names a FIFO, and only that.
        for path in [&symlink, &secret] {
            assert!(open(&EventsTarget::Fifo(path.clone())).is_err());
        }
        let error = open(&EventsTarget::Fifo(dir.join("missing"))).unwrap_err();
        assert!(error.to_string().contains("mkfifo"), "{error}");
        assert!(!dir.join("missing").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_fifo_asked_for_is_written_without_blocking() {
        let dir = scratch("events-fifo");
        let fifo = dir.join("events.fifo");
        mkfifo(&fifo);
        let target = EventsTarget::Fifo(fifo.clone());
        // Without a reader: refused at once, not waited for.
        let error = open(&target).unwrap_err();
        assert!(error.to_string().contains("nobody reads"), "{error}");
        let reader = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .unwrap();
        let mut events = open(&target).unwrap();
        assert!(events.write(b"{}\n"));
        let line = "z".repeat(1023) + "\n";
        // Nobody reads it: full after 64 KiB, then lines are dropped, never waited for.
        let written = (0..1000)
            .take_while(|_| events.write(line.as_bytes()))
            .count();
        assert!((60..70).contains(&written), "{written}");
        assert_eq!(reader.metadata().unwrap().nlink(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_file_of_another_user_in_a_shared_directory_is_refused() {
        let Some((dir, planted)) =
            shared_dir::planted_by_another_user("events-shared", "events.jsonl", "")
        else {
            return;
        };
        let error = open(&EventsTarget::File(planted.clone())).unwrap_err();
        assert!(error.to_string().contains("uid 65534"), "{error}");
        assert_eq!(std::fs::read_to_string(&planted).unwrap(), "");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
