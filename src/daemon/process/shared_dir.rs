//! Files at paths the operator names (`-P FILE`, `--events FILE`), opened by root in
//! directories that other users may write (/tmp): the class of the C stalld's CVE-2024-54159,
//! where a symbolic link planted in /tmp made root write where its owner chose.
//!
//! Nothing here follows a symbolic link (the path is first opened with `O_PATH|O_NOFOLLOW`,
//! which opens nothing but names the inode; the file is then reopened through that very inode),
//! nothing but the kind of file asked for is opened (a FIFO only when asked for, so opening
//! cannot block or wake a reader), a new file is created with `O_EXCL` (never one that
//! appeared meanwhile), and a file is not taken for the operator's when another user could
//! have planted it: owned by someone else in a directory others can write (unless that someone
//! owns the directory, the rule of the kernel's `protected_regular`), or with other hard links
//! (a link to a file elsewhere, where `protected_hardlinks` is off).

use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// What a file at such a path is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    /// A regular file with no other hard link, that no other user can have planted.
    Usable,
    /// A symbolic link (never followed).
    Symlink,
    /// A FIFO.
    Fifo,
    /// Anything else that is not a regular file (a directory, a socket, a device).
    OtherType,
    /// A regular file with other hard links.
    Linked,
    /// Owned by `uid` (not us) in a directory others can write.
    Foreign { uid: u32 },
}

impl Found {
    /// What it is, for a message: `a symbolic link`, `a file of uid 1000`.
    pub fn describe(self) -> String {
        match self {
            Found::Usable => "a regular file".into(),
            Found::Symlink => "a symbolic link".into(),
            Found::Fifo => "a FIFO".into(),
            Found::OtherType => "not a regular file".into(),
            Found::Linked => "a file with other hard links".into(),
            Found::Foreign { uid } => format!(
                "a file of uid {uid} in a directory others can write (anyone could have put it there)"
            ),
        }
    }

    /// Why it is not opened: `it is a symbolic link (refused)`.
    pub fn refusal(self) -> String {
        format!("it is {} (refused)", self.describe())
    }
}

/// The file at `path`, opened without following anything (`O_PATH`: no access, no side
/// effect), with what it is; `None` when there is none.
pub fn inspect(path: &Path) -> io::Result<Option<(File, Found)>> {
    let handle = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(handle) => handle,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    let metadata = handle.metadata()?;
    let directory = std::fs::metadata(parent(path))?;
    Ok(Some((handle, classify(&metadata, &directory))))
}

fn classify(file: &Metadata, directory: &Metadata) -> Found {
    let kind = file.file_type();
    let foreign =
        file.uid() != crate::sys::euid() && shared(directory) && file.uid() != directory.uid();
    use std::os::unix::fs::FileTypeExt;
    if foreign {
        Found::Foreign { uid: file.uid() }
    } else if kind.is_symlink() {
        Found::Symlink
    } else if kind.is_fifo() {
        Found::Fifo
    } else if !kind.is_file() {
        Found::OtherType
    } else if file.nlink() > 1 {
        Found::Linked
    } else {
        Found::Usable
    }
}

/// Whether users other than the directory's owner may add or remove names in it.
pub fn shared(directory: &Metadata) -> bool {
    directory.mode() & (libc::S_IWGRP | libc::S_IWOTH) != 0
}

/// Whether only a name's owner (or the directory's) may remove or replace it (the sticky bit
/// of /tmp).
pub fn sticky(directory: &Metadata) -> bool {
    directory.mode() & libc::S_ISVTX != 0
}

/// The directory `path` is in.
pub fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// Opens the file `handle` (from [`inspect`]) names, with `options`: through the handle's own
/// inode (`/proc/self/fd/N`), so the path cannot be swapped in between.
pub fn reopen(handle: &File, options: &OpenOptions) -> io::Result<File> {
    options.open(format!("/proc/self/fd/{}", handle.as_raw_fd()))
}

/// Creates a new file at `path` with `options` (which must ask for write access) and `mode`:
/// `O_CREAT|O_EXCL|O_NOFOLLOW`, so it fails if anything appeared there meanwhile.
pub fn create_new(path: &Path, options: &mut OpenOptions, mode: u32) -> io::Result<File> {
    options
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(path)
}

/// Whether `path` still names `file` (the same inode), without following a link.
pub fn still_names(path: &Path, file: &File) -> bool {
    let (Ok(at_path), Ok(ours)) = (std::fs::symlink_metadata(path), file.metadata()) else {
        return false;
    };
    at_path.dev() == ours.dev() && at_path.ino() == ours.ino()
}

/// For tests: an empty directory of this process's own under the temporary directory (the
/// caller removes it).
#[cfg(test)]
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("stalld-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).unwrap();
    dir
}

/// For tests: a scratch directory others can write (mode 1777, as /tmp) holding `file`, a
/// file of `nobody` (uid 65534) with `content`; `None` (the test skipped, loudly) without the
/// root needed to give a file away.
#[cfg(test)]
pub fn planted_by_another_user(
    name: &str,
    file: &str,
    content: &str,
) -> Option<(PathBuf, PathBuf)> {
    use std::os::unix::fs::PermissionsExt;
    if !crate::sys::is_root() {
        eprintln!("SKIPPED: planting another user's file needs root");
        return None;
    }
    let dir = scratch(name);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let planted = dir.join(file);
    std::fs::write(&planted, content).unwrap();
    std::os::unix::fs::chown(&planted, Some(65534), Some(65534)).unwrap();
    Some((dir, planted))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_path_holds_is_told_without_opening_it() {
        let dir = scratch("shared-dir-inspect");
        let found = |name: &str| inspect(&dir.join(name)).unwrap().map(|(_, found)| found);
        assert_eq!(found("missing"), None);
        std::fs::write(dir.join("file"), "x").unwrap();
        assert_eq!(found("file"), Some(Found::Usable));
        std::os::unix::fs::symlink(dir.join("file"), dir.join("link")).unwrap();
        assert_eq!(found("link"), Some(Found::Symlink));
        std::fs::hard_link(dir.join("file"), dir.join("hard")).unwrap();
        assert_eq!(found("hard"), Some(Found::Linked));
        std::fs::create_dir(dir.join("sub")).unwrap();
        assert_eq!(found("sub"), Some(Found::OtherType));
        let fifo = dir.join("fifo");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        // No reader: opening it for writing would fail or, blocking, hang. It is only named.
        assert_eq!(found("fifo"), Some(Found::Fifo));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_file_of_another_user_counts_as_planted_only_where_others_can_write() {
        let dir = scratch("shared-dir-classify");
        let file = dir.join("file");
        std::fs::write(&file, "x").unwrap();
        let mut metadata = std::fs::metadata(&file).unwrap();
        let directory = std::fs::metadata(&dir).unwrap();
        if crate::sys::is_root() {
            std::os::unix::fs::chown(&file, Some(65534), None).unwrap();
            metadata = std::fs::metadata(&file).unwrap();
            // A 0755 directory: only its owner could have put it there.
            assert_eq!(classify(&metadata, &directory), Found::Usable);
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let directory = std::fs::metadata(&dir).unwrap();
        assert!(shared(&directory) && sticky(&directory));
        let expected = if metadata.uid() == crate::sys::euid() {
            Found::Usable
        } else {
            Found::Foreign {
                uid: metadata.uid(),
            }
        };
        assert_eq!(classify(&metadata, &directory), expected);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
