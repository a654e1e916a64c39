//! What the metrics and status listeners share: their threads (SCHED_OTHER whatever the daemon
//! runs with, so a flood of clients competes with other ordinary tasks, never with the
//! detect-and-boost loop), unix sockets that replace a dead daemon's but never a live one's,
//! and one loop that serves every client without waiting for any of them: a client that sends
//! its request a byte at a time, or never reads its answer, holds nothing but its own
//! connection, and only until its time is up.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::daemon::log::Sinks;
use crate::sys;

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
pub fn spawn(name: &str, logger: Sinks, serve: impl FnOnce() + Send + 'static) -> io::Result<()> {
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

/// A listening socket: its connections are served without blocking, by one thread.
pub trait Listen: AsFd + Send + 'static {
    type Stream: Read + Write + AsFd;
    fn set_nonblocking(&self) -> io::Result<()>;
    /// A connection waiting in the backlog (`WouldBlock` when there is none), non-blocking.
    fn accept_nonblocking(&self) -> io::Result<Self::Stream>;
}

impl Listen for TcpListener {
    type Stream = TcpStream;
    fn set_nonblocking(&self) -> io::Result<()> {
        TcpListener::set_nonblocking(self, true)
    }
    fn accept_nonblocking(&self) -> io::Result<TcpStream> {
        let (stream, _) = self.accept()?;
        stream.set_nonblocking(true)?;
        Ok(stream)
    }
}

impl Listen for UnixListener {
    type Stream = UnixStream;
    fn set_nonblocking(&self) -> io::Result<()> {
        UnixListener::set_nonblocking(self, true)
    }
    fn accept_nonblocking(&self) -> io::Result<UnixStream> {
        let (stream, _) = self.accept()?;
        stream.set_nonblocking(true)?;
        Ok(stream)
    }
}

/// How long a client has, from its connection, to send its whole request: a client that
/// sends a byte now and then (slowloris) is closed then, whatever it sends.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a client has, from its connection, to take its whole answer.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections served at once. A new one beyond that closes the oldest still sending its
/// request (or else the oldest), so clients that hold connections cannot keep a scrape or a
/// liveness probe out: a real one sends its request at once and is answered at once.
pub const MAX_CLIENTS: usize = 64;

/// A request larger than this is not one: it is answered as it stands.
const MAX_REQUEST: usize = 8 * 1024;

/// What a listener answers: given the request read so far and whether the client has closed
/// its side, the whole answer once the request is complete (or can grow no more), `None`
/// while more is needed.
pub trait Answer<S>: Send + 'static {
    fn answer(&mut self, request: &[u8], ended: bool, stream: &S) -> Option<Vec<u8>>;
}

impl<S, F> Answer<S> for F
where
    F: FnMut(&[u8], bool, &S) -> Option<Vec<u8>> + Send + 'static,
{
    fn answer(&mut self, request: &[u8], ended: bool, stream: &S) -> Option<Vec<u8>> {
        self(request, ended, stream)
    }
}

/// One connection: its request as it arrives, then its answer as the client takes it.
struct Client<S> {
    stream: S,
    accepted: Instant,
    request: Vec<u8>,
    answer: Option<(Vec<u8>, usize)>,
}

impl<S: Read + Write + AsFd> Client<S> {
    fn deadline(&self) -> Instant {
        self.accepted
            + if self.answer.is_none() {
                REQUEST_TIMEOUT
            } else {
                EXCHANGE_TIMEOUT
            }
    }

    fn events(&self) -> i16 {
        if self.answer.is_none() {
            libc::POLLIN
        } else {
            libc::POLLOUT
        }
    }

    /// Reads what arrived, answers when the request is complete, writes what the client
    /// takes: true once the exchange is over (answered in full, or failed).
    fn progress(&mut self, answer: &mut impl Answer<S>) -> bool {
        if self.answer.is_none() {
            let mut ended = false;
            let mut chunk = [0u8; 1024];
            while self.request.len() <= MAX_REQUEST {
                match self.stream.read(&mut chunk) {
                    Ok(0) => {
                        ended = true;
                        break;
                    }
                    Ok(n) => self.request.extend_from_slice(&chunk[..n]),
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => return true,
                }
            }
            let full = ended || self.request.len() > MAX_REQUEST;
            match answer.answer(&self.request, full, &self.stream) {
                Some(text) => self.answer = Some((text, 0)),
                None if full => return true,
                None => return false,
            }
        }
        let Some((text, sent)) = &mut self.answer else {
            return true;
        };
        while *sent < text.len() {
            match self.stream.write(&text[*sent..]) {
                Ok(0) => return true,
                Ok(n) => *sent += n,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return false,
                Err(_) => return true,
            }
        }
        true
    }
}

/// Serves every connection of `listener` with `answer`, in this one thread, until the process
/// ends. Nothing here waits for a client: sockets are non-blocking and `poll` says which can
/// make progress; each client gets [`REQUEST_TIMEOUT`] for its request and
/// [`EXCHANGE_TIMEOUT`] for the whole exchange, and at most [`MAX_CLIENTS`] are kept.
pub fn serve_forever<L: Listen>(listener: L, mut answer: impl Answer<L::Stream>) -> ! {
    let mut clients: Vec<Client<L::Stream>> = Vec::new();
    let mut pollfds: Vec<libc::pollfd> = Vec::new();
    let mut accept_again = Instant::now();
    // Should it fail, an accept after a connection that vanished meanwhile would wait for the
    // next one: never for long on a port anyone scrapes.
    let _ = listener.set_nonblocking();
    loop {
        let now = Instant::now();
        clients.retain(|client| client.deadline() > now);
        let accepting = now >= accept_again;
        pollfds.clear();
        pollfds.extend(clients.iter().map(|client| libc::pollfd {
            fd: client.stream.as_fd().as_raw_fd(),
            events: client.events(),
            revents: 0,
        }));
        pollfds.push(libc::pollfd {
            fd: if accepting {
                listener.as_fd().as_raw_fd()
            } else {
                -1
            },
            events: libc::POLLIN,
            revents: 0,
        });
        let wake = clients
            .iter()
            .map(Client::deadline)
            .chain((!accepting).then_some(accept_again))
            .min()
            .map_or(Duration::from_secs(3600), |at| {
                at.saturating_duration_since(now)
            });
        if sys::poll(&mut pollfds, wake).is_err() {
            std::thread::sleep(ACCEPT_BACKOFF);
            continue;
        }
        let ready: Vec<bool> = pollfds.iter().map(|p| p.revents != 0).collect();
        let mut index = 0;
        clients.retain_mut(|client| {
            let done = ready[index] && client.progress(&mut answer);
            index += 1;
            !done
        });
        if ready.last() == Some(&true) {
            // Room is made only from clients that had their chance to speak: the rest of a
            // burst waits in the backlog for the next round.
            let round = Instant::now();
            loop {
                let full = clients.len() >= MAX_CLIENTS;
                if full && evictable(&clients, round).is_none() {
                    break;
                }
                match listener.accept_nonblocking() {
                    Ok(stream) => {
                        if let Some(index) = evictable(&clients, round).filter(|_| full) {
                            clients.remove(index);
                        }
                        clients.push(Client {
                            stream,
                            accepted: Instant::now(),
                            request: Vec::new(),
                            answer: None,
                        });
                    }
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                    // Out of descriptors under a flood, say: a pause, not a spin.
                    Err(_) => {
                        accept_again = Instant::now() + ACCEPT_BACKOFF;
                        break;
                    }
                }
            }
        }
    }
}

/// Which client makes room for a new one: the oldest accepted before `round` that is still
/// sending its request, else the oldest accepted before `round`; none when every client came
/// in this round (none has been read yet).
fn evictable<S>(clients: &[Client<S>], round: Instant) -> Option<usize> {
    let oldest = |sending_only: bool| {
        clients
            .iter()
            .enumerate()
            .filter(|(_, client)| client.accepted < round)
            .filter(|(_, client)| !sending_only || client.answer.is_none())
            .min_by_key(|(_, client)| client.accepted)
            .map(|(index, _)| index)
    };
    oldest(true).or_else(|| oldest(false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::process::shared_dir::scratch;
    use std::os::unix::fs::MetadataExt;

    /// A listener answering `ok` to any request ending in a blank line, in a thread of its own
    /// for the rest of the test process: its address.
    fn serving() -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            serve_forever(listener, |request: &[u8], ended, _: &TcpStream| {
                (ended || request.ends_with(b"\r\n\r\n")).then(|| b"ok\n".to_vec())
            })
        });
        address
    }

    /// A scrape (or a liveness probe): connect, ask, read the answer, within `limit`.
    fn scrape(address: std::net::SocketAddr, limit: Duration) -> io::Result<String> {
        let mut stream = TcpStream::connect_timeout(&address, limit)?;
        stream.set_read_timeout(Some(limit))?;
        stream.write_all(b"GET /metrics HTTP/1.1\r\n\r\n")?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        Ok(answer)
    }

    /// Slow clients take no slot from the others: 8 clients sending a byte every 0.5 s (which
    /// held every slot for as long as they went on, each read bounded alone) and more idle
    /// connections than there are slots; every scrape still answered at once, and each slow
    /// client closed once its time for a request is up.
    #[test]
    fn slow_clients_do_not_keep_scrapes_out() {
        let address = serving();
        let started = Instant::now();
        let slow: Vec<_> = (0..8)
            .map(|_| {
                std::thread::spawn(move || {
                    let mut stream = TcpStream::connect(address).unwrap();
                    while started.elapsed() < Duration::from_secs(6) {
                        if stream.write_all(b"G").is_err() {
                            return Some(started.elapsed());
                        }
                        std::thread::sleep(Duration::from_millis(500));
                    }
                    None
                })
            })
            .collect();
        let idle: Vec<_> = (0..MAX_CLIENTS + 16)
            .map(|_| TcpStream::connect(address).unwrap())
            .collect();
        let mut slowest = Duration::ZERO;
        while started.elapsed() < Duration::from_secs(4) {
            let asked = Instant::now();
            let answer = scrape(address, Duration::from_secs(2)).expect("scrape answered");
            assert_eq!(answer, "ok\n");
            slowest = slowest.max(asked.elapsed());
            std::thread::sleep(Duration::from_millis(200));
        }
        assert!(
            slowest < Duration::from_secs(1),
            "a scrape took {slowest:?}"
        );
        for client in slow {
            let closed = client.join().unwrap();
            // Its second and third bytes are still taken; writes fail once it is closed
            // (the first failing one may come a send later).
            assert!(
                closed.is_some_and(|at| at < REQUEST_TIMEOUT + Duration::from_secs(3)),
                "a slow client stayed connected: {closed:?}"
            );
        }
        drop(idle);
    }

    /// The socket file is created with its mode: nothing is changed through its path
    /// afterwards (a chmod there would follow a link planted in between to any file).
    #[test]
    fn a_unix_socket_gets_its_mode_without_a_chmod_through_its_path() {
        let dir = scratch("listen-mode");
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
