//! `/run/stalld`: the daemon's root-only runtime directory (status socket, pid file in the
//! unit, the crash-safety ledger). systemd creates it for the unit (RuntimeDirectory=,
//! mode 0700); a stalld started by hand creates it the same way.

use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

pub const RUNTIME_DIR: &str = "/run/stalld";

/// Creates `dir` (0700, and its parents: an initramfs may have no /run) if it is missing and
/// checks what is there: a real directory (a symlink is refused, O_NOFOLLOW), owned by us
/// (root, for the daemon); access for others is taken away.
pub fn ensure(dir: &Path) -> io::Result<File> {
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent)?;
    }
    match DirBuilder::new().mode(0o700).create(dir) {
        Err(error) if error.kind() != io::ErrorKind::AlreadyExists => return Err(error),
        _ => {}
    }
    let handle = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(dir)
        .map_err(|error| io::Error::new(error.kind(), format!("{}: {error}", dir.display())))?;
    let metadata = handle.metadata()?;
    if metadata.uid() != crate::sys::euid() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} is owned by uid {}, not by us (uid {})",
                dir.display(),
                metadata.uid(),
                crate::sys::euid()
            ),
        ));
    }
    if metadata.mode() & 0o077 != 0 {
        handle.set_permissions(Permissions::from_mode(0o700))?;
    }
    Ok(handle)
}
