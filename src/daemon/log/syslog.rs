//! `-s`: syslog datagrams (ident `stalld`, facility daemon) to /dev/log, sent non-blocking.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

use super::{Delivery, Record, Sink};

const SOCKET: &str = "/dev/log";
/// For tests only: the syslog socket to send to instead of /dev/log.
pub const SOCKET_ENV: &str = "STALLD_SYSLOG_SOCKET";
/// Where systemd-journald receives syslog datagrams.
const JOURNALD_SOCKET: &str = "/run/systemd/journal/dev-log";
const LOG_DAEMON: u8 = 3 << 3;

pub struct Syslog {
    socket: UnixDatagram,
    path: PathBuf,
}

impl Syslog {
    pub fn open() -> io::Result<Syslog> {
        let path =
            std::env::var_os(SOCKET_ENV).map_or_else(|| PathBuf::from(SOCKET), PathBuf::from);
        let socket = UnixDatagram::unbound()?;
        socket.set_nonblocking(true)?;
        Ok(Syslog { socket, path })
    }

    /// Whether the socket is journald's own (systemd links /dev/log to it).
    pub fn is_journald(&self) -> bool {
        super::same_file(&self.path, Path::new(JOURNALD_SOCKET))
    }
}

impl Sink for Syslog {
    fn name(&self) -> &'static str {
        "syslog"
    }

    fn takes(&self, record: &Record) -> bool {
        record.is_logged()
    }

    fn write(&self, record: &Record) -> Delivery {
        // Sent by path every time, so a syslog daemon (re)started later is found.
        let packet = format!(
            "<{}>stalld[{}]: {}",
            LOG_DAEMON | record.severity as u8,
            std::process::id(),
            record.message
        );
        Delivery::of(self.socket.send_to(packet.as_bytes(), &self.path).map(drop))
    }
}
