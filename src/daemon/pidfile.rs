//! The pid file: written with a newline once the daemon has its final pid, locked so a second
//! instance refuses to start, removed at exit.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

pub struct PidFile {
    path: PathBuf,
    // Holding the file keeps the lock.
    _file: File,
}

impl PidFile {
    pub fn create(path: &Path) -> Result<PidFile> {
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .read(true)
            .open(path)
            .with_context(|| format!("unable to open pidfile {}", path.display()))?;
        if file.try_lock().is_err() {
            let other = std::fs::read_to_string(path).unwrap_or_default();
            bail!(
                "another stalld (pid {}) holds the pidfile {}",
                other.trim(),
                path.display()
            );
        }
        file.set_len(0)?;
        writeln!(file, "{}", std::process::id())?;
        Ok(PidFile {
            path: path.to_path_buf(),
            _file: file,
        })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
