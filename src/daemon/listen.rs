//! What the metrics and status listeners share: their threads (SCHED_OTHER whatever the daemon
//! runs with, so a flood of clients competes with other ordinary tasks, never with the
//! detect-and-boost loop), unix sockets that replace a dead daemon's but never a live one's,
//! and the bounds every client gets.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
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

/// Binds a unix stream socket at `path` with `mode`. A socket file nobody answers on (left by
/// a daemon that died) is replaced; one a live process answers on is not (`AddrInUse`).
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
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(listener)
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
