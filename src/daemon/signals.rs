//! SIGINT and SIGTERM end the daemon: they are turned into bytes on a socket pair that the
//! main loop waits on, so a sleeping loop wakes at once and shuts down in order.

use std::io::{self, Read};
use std::os::unix::net::UnixStream;

use signal_hook::consts::{SIGINT, SIGTERM};

use crate::clock;
use crate::sys;
use crate::task::MonoTime;

pub struct Shutdown {
    wake: UnixStream,
    requested: bool,
}

impl Shutdown {
    pub fn install() -> io::Result<Shutdown> {
        let (wake, notify) = UnixStream::pair()?;
        for signal in [SIGINT, SIGTERM] {
            signal_hook::low_level::pipe::register(signal, notify.try_clone()?)?;
        }
        Ok(Shutdown {
            wake,
            requested: false,
        })
    }

    pub fn requested(&self) -> bool {
        self.requested
    }

    /// Sleeps until `deadline` or a shutdown signal, whichever comes first.
    pub fn sleep_until(&mut self, deadline: MonoTime) {
        while !self.requested {
            let left = deadline.saturating_since(clock::now());
            if left.is_zero() {
                return;
            }
            // Readable means a signal arrived; a timeout or EINTR re-checks the deadline.
            if let Ok(true) = sys::wait_readable(&self.wake, left) {
                let mut byte = [0u8; 1];
                let _ = self.wake.read(&mut byte);
                self.requested = true;
            }
        }
    }
}
