//! The pid file: locked before daemonizing, so a second instance refuses to start while it
//! can still say so on the terminal with a non-zero exit; written with the final daemon's pid
//! once daemonizing is done; removed at exit.
//!
//! The lock is an `flock`, which belongs to the open file description: the forks of
//! daemonizing share that description, and the parents leave with `_exit`, so the lock passes
//! to the final daemon and nothing in between releases it (the file is never closed by a
//! destructor in a parent). The file is opened as [`shared_dir`] opens files (never through a
//! symlink, a new one with `O_EXCL`), with close-on-exec, and is always mode 0644, whatever
//! the umask.
//!
//! In a directory others can write (a pid file in /tmp), what another user put at the path
//! (a file of theirs, maybe locked so that stalld would refuse to start, or a link) is not
//! taken over: a new file of ours is made next to it, locked, and renamed over it (the sticky
//! bit lets root do that, and nobody else undo it). A directory others can write without the
//! sticky bit is refused: anyone could replace the pid file there at any time.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::instances::AnotherInstance;
use super::shared_dir::{self, Found};
use crate::task::escape_name;

const MODE: u32 = 0o644;

/// Tries before giving up when the path keeps changing under us (someone racing to plant
/// files, or a second stalld starting at the same moment).
const ATTEMPTS: usize = 8;

pub struct PidFile {
    path: PathBuf,
    // Holding the file keeps the lock.
    file: File,
}

fn read_write() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.read(true).write(true);
    options
}

impl PidFile {
    /// Opens and locks `path`, truncating what a dead instance left; fails if another
    /// instance holds the lock, or if `path` is a symlink or not a regular file (except where
    /// another user may have planted it, see the module's documentation).
    pub fn lock(path: &Path, warn: impl FnOnce(&str)) -> Result<PidFile> {
        let refuse =
            |why: String| anyhow::anyhow!("unable to open pidfile {}: {why}", path.display());
        let directory = std::fs::metadata(shared_dir::parent(path))
            .with_context(|| format!("unable to open pidfile {}", path.display()))?;
        if shared_dir::shared(&directory) && !shared_dir::sticky(&directory) {
            return Err(refuse(
                "its directory can be written by others and has no sticky bit: anyone could replace the file (refused)".into(),
            ));
        }
        for _ in 0..ATTEMPTS {
            let mut file = match shared_dir::inspect(path).map_err(|e| refuse(e.to_string()))? {
                None => match shared_dir::create_new(path, &mut read_write(), MODE) {
                    Ok(file) => file,
                    Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => continue,
                    Err(error) => return Err(refuse(error.to_string())),
                },
                Some((handle, Found::Usable)) => {
                    shared_dir::reopen(&handle, &read_write()).map_err(|e| refuse(e.to_string()))?
                }
                // Whatever another user may have put there is not the operator's: replaced.
                Some((_, found)) if shared_dir::shared(&directory) => {
                    match replace(path).map_err(|e| refuse(e.to_string()))? {
                        Some(file) => {
                            warn(&format!(
                                "pidfile {} was {}: replaced by a file of ours",
                                path.display(),
                                found.describe()
                            ));
                            return PidFile::ready(path, file);
                        }
                        None => continue,
                    }
                }
                Some((_, found)) => return Err(refuse(found.refusal())),
            };
            if file.try_lock().is_err() {
                return Err(AnotherInstance(format!(
                    "another stalld (pid {}) holds the pidfile {}",
                    holder(&mut file),
                    path.display()
                ))
                .into());
            }
            // Replaced meanwhile (this one is no longer at the path): look again.
            if shared_dir::still_names(path, &file) {
                return PidFile::ready(path, file);
            }
        }
        Err(refuse(
            "it kept changing while it was opened (refused)".into(),
        ))
    }

    /// The locked `file` at `path`, mode 0644 (a file created with the umask's bits off, or
    /// left by a dead instance with another mode), emptied.
    fn ready(path: &Path, file: File) -> Result<PidFile> {
        let pidfile = PidFile {
            path: path.to_path_buf(),
            file,
        };
        pidfile
            .file
            .set_permissions(std::fs::Permissions::from_mode(MODE))
            .with_context(|| format!("chmod 0644 {}", path.display()))?;
        pidfile.file.set_len(0)?;
        Ok(pidfile)
    }

    /// Writes the calling process's pid: call it in the final daemon, after daemonizing.
    pub fn write_pid(&mut self) -> Result<()> {
        self.file.set_len(0)?;
        self.file.seek(SeekFrom::Start(0))?;
        writeln!(self.file, "{}", std::process::id())
            .with_context(|| format!("writing pidfile {}", self.path.display()))
    }
}

/// What the holder wrote, made safe to print: the file is anyone's who can write it.
fn holder(file: &mut File) -> String {
    let mut content = Vec::new();
    let _ = file.take(32).read_to_end(&mut content);
    let text = escape_name(content.trim_ascii());
    if text.is_empty() {
        "unknown".into()
    } else {
        text
    }
}

/// A new file of ours, locked, renamed over `path`: `None` if it lost a race (something else
/// was renamed there right after).
fn replace(path: &Path) -> std::io::Result<Option<File>> {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let directory = shared_dir::parent(path);
    for attempt in 0..ATTEMPTS {
        // Unpredictable enough that nobody plants it first; O_EXCL refuses it if they do.
        let temporary = directory.join(format!(
            ".{name}.{}.{attempt}.{}",
            std::process::id(),
            crate::clock::now().0
        ));
        let file = match shared_dir::create_new(&temporary, &mut read_write(), MODE) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(error) => return Err(error),
        };
        let renamed = file
            .try_lock()
            .map_err(std::io::Error::from)
            .and_then(|()| std::fs::rename(&temporary, path));
        if let Err(error) = renamed {
            let _ = std::fs::remove_file(&temporary);
            return Err(error);
        }
        return Ok(shared_dir::still_names(path, &file).then_some(file));
    }
    Err(std::io::ErrorKind::AlreadyExists.into())
}

impl Drop for PidFile {
    fn drop(&mut self) {
        // Only our own file: the path may name another's by now.
        if shared_dir::still_names(&self.path, &self.file) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::process::shared_dir::scratch;
    use std::os::unix::fs::MetadataExt;

    /// What a test does with the warning about a replaced file.
    fn quiet(_: &str) {}

    #[test]
    fn locks_writes_and_refuses_a_second_holder() {
        let dir = scratch("pidfile-lock");
        let path = dir.join("stalld.pid");
        let mut first = PidFile::lock(&path, quiet).unwrap();
        first.write_pid().unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{}\n", std::process::id())
        );
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o7777, MODE);
        let error = PidFile::lock(&path, quiet)
            .err()
            .expect("second lock refused");
        assert_eq!(
            error.to_string(),
            format!(
                "another stalld (pid {}) holds the pidfile {}",
                std::process::id(),
                path.display()
            )
        );
        drop(first);
        assert!(!path.exists());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn refuses_symlinks_and_other_file_types_and_escapes_what_it_quotes() {
        let dir = scratch("pidfile-hostile");
        let target = dir.join("target");
        let link = dir.join("link.pid");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let error = PidFile::lock(&link, quiet).err().expect("symlink refused");
        assert!(error.to_string().contains("symbolic link"), "{error}");
        assert!(!target.exists(), "the symlink was followed");
        let error = PidFile::lock(&dir, quiet)
            .err()
            .expect("a directory refused");
        assert!(
            error.to_string().contains("unable to open pidfile"),
            "{error:#}"
        );

        // A holder's file content reaches the error line escaped.
        let path = dir.join("held.pid");
        let held = PidFile::lock(&path, quiet).unwrap();
        std::fs::write(&path, "1\n<0>FAKE\n").unwrap();
        let error = PidFile::lock(&path, quiet).err().unwrap().to_string();
        assert!(error.contains("(pid 1\\x0a<0>FAKE)"), "{error}");
        drop(held);
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// In a directory others can write (/tmp), what another user put at the path is replaced
    /// by a file of ours, never opened: a file of `nobody` that it keeps locked (a stalld that
    /// honoured it would refuse to start), a hard link to a file that must not be emptied, a
    /// symbolic link. Without the sticky bit, anyone could replace ours too: refused.
    #[test]
    fn what_others_planted_in_a_shared_directory_is_replaced_not_taken_over() {
        use std::os::unix::fs::PermissionsExt;
        let Some((dir, planted)) =
            shared_dir::planted_by_another_user("pidfile-shared", "planted.pid", "1\n")
        else {
            return;
        };
        let theirs = File::open(&planted).unwrap();
        theirs.lock().unwrap();
        let check = |path: &Path, pidfile: &PidFile| {
            let metadata = std::fs::symlink_metadata(path).unwrap();
            assert_eq!(metadata.uid(), crate::sys::euid());
            assert_eq!(metadata.mode() & 0o7777, MODE);
            assert!(shared_dir::still_names(path, &pidfile.file));
        };
        let ours = PidFile::lock(&planted, quiet).expect("planted file replaced");
        check(&planted, &ours);
        assert_eq!(
            theirs.metadata().unwrap().nlink(),
            0,
            "theirs is gone from the path"
        );
        // A second stalld is still refused by ours.
        let error = PidFile::lock(&planted, quiet).err().expect("ours holds");
        assert!(error.to_string().contains("another stalld"), "{error}");

        let elsewhere = scratch("pidfile-elsewhere").join("precious");
        std::fs::write(&elsewhere, "keep me").unwrap();
        let linked = dir.join("linked.pid");
        std::fs::hard_link(&elsewhere, &linked).unwrap();
        let ours_too = PidFile::lock(&linked, quiet).expect("hard link replaced");
        check(&linked, &ours_too);
        assert_eq!(std::fs::read_to_string(&elsewhere).unwrap(), "keep me");

        let symlink = dir.join("symlink.pid");
        let target = dir.join("target");
        std::os::unix::fs::symlink(&target, &symlink).unwrap();
        let third = PidFile::lock(&symlink, quiet).expect("symlink replaced");
        check(&symlink, &third);
        assert!(!target.exists(), "the symlink was followed");

        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let error = PidFile::lock(&dir.join("other.pid"), quiet)
            .err()
            .expect("no sticky bit: refused");
        assert!(error.to_string().contains("no sticky bit"), "{error}");
        drop((ours, ours_too, third));
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::remove_dir_all(elsewhere.parent().unwrap()).unwrap();
    }
}
