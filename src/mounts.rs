//! Finding (and, where the caller allows it, mounting) the kernel's pseudo file systems.

use std::path::{Path, PathBuf};

/// Where stalld mounts debugfs and securityfs when they are mounted nowhere.
pub const DEBUGFS: &str = "/sys/kernel/debug";
pub const SECURITYFS: &str = "/sys/kernel/security";

/// securityfs's `lockdown` file, if it can be read: `none [integrity] confidentiality`.
pub fn read_lockdown(securityfs: &Path) -> Option<String> {
    std::fs::read_to_string(securityfs.join("lockdown")).ok()
}

/// The kernel's lockdown mode in the text of that file: its bracketed word.
pub fn lockdown_mode(text: &str) -> Option<&str> {
    text.split_ascii_whitespace()
        .find_map(|word| word.strip_prefix('[')?.strip_suffix(']'))
}

/// The first mount point of file-system type `fstype` in /proc/mounts.
pub fn find(fstype: &str) -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    mounts.lines().find_map(|line| {
        let mut fields = line.split_ascii_whitespace();
        let mount_point = fields.nth(1)?;
        (fields.next()? == fstype).then(|| PathBuf::from(unescape(mount_point)))
    })
}

/// Where `fstype` is mounted, mounting it at `default` first if it is nowhere.
pub fn find_or_mount(fstype: &str, default: &Path) -> Option<PathBuf> {
    find(fstype).or_else(|| {
        crate::sys::mount_pseudo_fs(fstype, default).ok()?;
        Some(default.to_path_buf())
    })
}

/// /proc/mounts writes blanks and a few other bytes as octal escapes (`\040`).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|digits| digits.iter().all(|b| (b'0'..=b'7').contains(b)));
        match (bytes[i], octal) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lockdown_mode_is_the_bracketed_word() {
        assert_eq!(
            lockdown_mode("none [integrity] confidentiality\n"),
            Some("integrity")
        );
        assert_eq!(
            lockdown_mode("[none] integrity confidentiality\n"),
            Some("none")
        );
        assert_eq!(lockdown_mode("none integrity\n"), None);
    }

    #[test]
    fn octal_escapes_are_decoded() {
        assert_eq!(unescape(r"/mnt/with\040blank"), "/mnt/with blank");
        assert_eq!(unescape(r"/plain\04"), r"/plain\04");
    }

    #[test]
    fn proc_is_mounted() {
        assert_eq!(find("proc"), Some(PathBuf::from("/proc")));
    }
}
