//! The pid file: locked before daemonizing, so a second instance refuses to start while it
//! can still say so on the terminal with a non-zero exit; written with the final daemon's pid
//! once daemonizing is done; removed at exit.
//!
//! The lock is an `flock`, which belongs to the open file description: the forks of
//! daemonizing share that description, and the parents leave with `_exit`, so the lock passes
//! to the final daemon and nothing in between releases it (the file is never closed by a
//! destructor in a parent). The file is opened without following a symlink at its last
//! component (a symlink planted in a shared directory must not let root write elsewhere), with
//! close-on-exec, and is always mode 0644, whatever the umask.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::task::escape_name;

const MODE: u32 = 0o644;

pub struct PidFile {
    path: PathBuf,
    // Holding the file keeps the lock.
    file: File,
}

impl PidFile {
    /// Opens and locks `path`, truncating what a dead instance left; fails if another
    /// instance holds the lock, or if `path` is a symlink or not a regular file.
    pub fn lock(path: &Path) -> Result<PidFile> {
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .mode(MODE)
            // O_NONBLOCK: a FIFO planted at the path must not hang the start.
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
            .open(path)
            .map_err(|error| {
                if error.raw_os_error() == Some(libc::ELOOP) {
                    anyhow::anyhow!(
                        "unable to open pidfile {}: it is a symbolic link (refused)",
                        path.display()
                    )
                } else {
                    anyhow::Error::new(error)
                        .context(format!("unable to open pidfile {}", path.display()))
                }
            })?;
        let metadata = file.metadata()?;
        if !metadata.is_file() {
            bail!(
                "unable to open pidfile {}: not a regular file",
                path.display()
            );
        }
        if file.try_lock().is_err() {
            bail!(
                "another stalld (pid {}) holds the pidfile {}",
                holder(&mut file),
                path.display()
            );
        }
        // Created with 0644 minus the umask, or left by someone else with another mode.
        file.set_permissions(std::fs::Permissions::from_mode(MODE))
            .with_context(|| format!("chmod 0644 {}", path.display()))?;
        file.set_len(0)?;
        Ok(PidFile {
            path: path.to_path_buf(),
            file,
        })
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

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("stalld-pidfile-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        dir
    }

    #[test]
    fn locks_writes_and_refuses_a_second_holder() {
        let dir = scratch("lock");
        let path = dir.join("stalld.pid");
        let mut first = PidFile::lock(&path).unwrap();
        first.write_pid().unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{}\n", std::process::id())
        );
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o7777, MODE);
        let error = PidFile::lock(&path).err().expect("second lock refused");
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
        let dir = scratch("hostile");
        let target = dir.join("target");
        let link = dir.join("link.pid");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let error = PidFile::lock(&link).err().expect("symlink refused");
        assert!(error.to_string().contains("symbolic link"), "{error}");
        assert!(!target.exists(), "the symlink was followed");
        let error = PidFile::lock(&dir).err().expect("a directory refused");
        assert!(
            error.to_string().contains("unable to open pidfile"),
            "{error:#}"
        );

        // A holder's file content reaches the error line escaped.
        let path = dir.join("held.pid");
        let held = PidFile::lock(&path).unwrap();
        std::fs::write(&path, "1\n<0>FAKE\n").unwrap();
        let error = PidFile::lock(&path).err().unwrap().to_string();
        assert!(error.contains("(pid 1\\x0a<0>FAKE)"), "{error}");
        drop(held);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
