//! What the metrics and status listeners share: their threads (SCHED_OTHER whatever the daemon
//! runs with, so a flood of clients competes with other ordinary tasks, never with the
//! detect-and-boost loop), unix sockets that replace a dead daemon's but never a live one's,
//! and the bounds every client gets.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use super::Logger;
use crate::sys;

/// How long a client may take to send its request or read the answer.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(1);

/// After a failed accept (out of descriptors under a flood, say): a pause, not a spin.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Binds a unix stream socket at `path` with `mode` (set on the socket before the file
/// exists: nothing is changed through the path, see [`sys::bind_unix_listener`]). A socket
/// file nobody answers on (left by a daemon that died) is replaced; one a live process answers
/// on is not (`AddrInUse`), nor is anything else.
pub fn bind_unix(path: &Path, mode: u32) -> io::Result<UnixListener> {
    if let Ok(metadata) = std::fs::symlink_metadata(path) {
        if !metadata.file_type().is_socket() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ));
        }
        if UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!(
                    "another process (a running stalld?) answers on {}",
                    path.display()
                ),
            ));
        }
        std::fs::remove_file(path)?;
    }
    sys::bind_unix_listener(path, mode)
}

/// Starts a listener thread named `name`, SCHED_OTHER before it does anything.
pub fn spawn(name: &str, logger: Logger, serve: impl FnOnce() + Send + 'static) -> io::Result<()> {
    let thread_name = name.to_owned();
    std::thread::Builder::new()
        .name(thread_name.clone())
        .spawn(move || {
            if let Err(error) = sys::become_sched_other() {
                logger.warn(&format!(
                    "{thread_name}: cannot become SCHED_OTHER: {error}"
                ));
            }
            serve();
        })
        .map(drop)
}

/// A listening socket whose connections get [`CLIENT_TIMEOUT`] both ways.
pub trait Accept: Send + 'static {
    type Stream: Read + Write;
    fn accept_bounded(&self) -> io::Result<Self::Stream>;
}

impl Accept for TcpListener {
    type Stream = TcpStream;
    fn accept_bounded(&self) -> io::Result<TcpStream> {
        let (stream, _) = self.accept()?;
        stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
        stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
        Ok(stream)
    }
}

impl Accept for UnixListener {
    type Stream = UnixStream;
    fn accept_bounded(&self) -> io::Result<UnixStream> {
        let (stream, _) = self.accept()?;
        stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
        stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
        Ok(stream)
    }
}

/// Clients served at once by one listener; more wait in the kernel's backlog. Slow clients
/// (each bounded by [`CLIENT_TIMEOUT`]) then cannot keep a scrape out for long.
pub const MAX_CLIENTS: usize = 8;

/// Hands each connection to `handle` in a thread of its own (SCHED_OTHER, as this one), at
/// most [`MAX_CLIENTS`] at a time, until the process ends.
pub fn serve_forever<L: Accept>(
    listener: L,
    handle: impl Fn(L::Stream) + Clone + Send + 'static,
) -> !
where
    L::Stream: Send + 'static,
{
    let busy = Arc::new((Mutex::new(0usize), Condvar::new()));
    loop {
        {
            let (count, freed) = &*busy;
            let mut count = count.lock().unwrap_or_else(|p| p.into_inner());
            while *count >= MAX_CLIENTS {
                count = freed.wait(count).unwrap_or_else(|p| p.into_inner());
            }
            *count += 1;
        }
        let release = Release(Arc::clone(&busy));
        match listener.accept_bounded() {
            Ok(stream) => {
                let handle = handle.clone();
                // Should the thread not start, `release` is dropped with the closure.
                let _ = std::thread::Builder::new().spawn(move || {
                    let _release = release;
                    handle(stream);
                });
            }
            Err(_) => {
                drop(release);
                std::thread::sleep(ACCEPT_BACKOFF);
            }
        }
    }
}

/// Gives a client slot back when dropped.
struct Release(Arc<(Mutex<usize>, Condvar)>);

impl Drop for Release {
    fn drop(&mut self) {
        let (count, freed) = &*self.0;
        *count.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
        freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("stalld-listen-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        dir
    }

    /// The socket file is created with its mode: nothing is changed through its path
    /// afterwards (a chmod there would follow a link planted in between to any file).
    #[test]
    fn a_unix_socket_gets_its_mode_without_a_chmod_through_its_path() {
        let dir = scratch("mode");
        let path = dir.join("metrics.sock");
        let (listener, changed) = sys::attributes_changed_during(&dir, || bind_unix(&path, 0o600));
        let _listener = listener.unwrap();
        assert!(changed.is_empty(), "changed through the path: {changed:?}");
        let metadata = std::fs::symlink_metadata(&path).unwrap();
        assert!(metadata.file_type().is_socket());
        // 0600 less the umask's bits: never more.
        assert_eq!(metadata.mode() & 0o7777 & !0o600, 0);
        assert_eq!(metadata.mode() & 0o077, 0);
        // A second bind while it answers is refused; a link planted at a path is refused, and
        // its target left alone.
        assert_eq!(
            bind_unix(&path, 0o600).unwrap_err().kind(),
            io::ErrorKind::AddrInUse
        );
        let target = dir.join("target");
        std::fs::write(&target, "x").unwrap();
        let mode = |path: &Path| std::fs::metadata(path).unwrap().mode();
        let before = mode(&target);
        let link = dir.join("link.sock");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(bind_unix(&link, 0o600).is_err());
        assert_eq!(mode(&target), before);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
