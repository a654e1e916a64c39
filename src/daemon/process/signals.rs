//! SIGINT and SIGTERM end the daemon: they are turned into bytes on a socket pair that the
//! main loop waits on, so a sleeping loop wakes at once and shuts down in order.
//!
//! SIGHUP (the terminal of a `-f` stalld closed) is ignored, as the C stalld does by blocking
//! it: a daemon that keeps machines from stalling has no reason to stop with a terminal, and
//! dying with boosts outstanding would leave them to the guardian. (Restore-and-exit would
//! leave the CPUs unwatched instead.) Writes to the dead terminal fail harmlessly.

use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

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
        sys::ignore_signal(SIGHUP)?;
        Ok(Shutdown {
            wake,
            requested: false,
        })
    }

    pub fn requested(&self) -> bool {
        self.requested
    }

    /// Sleeps until `deadline` or a shutdown signal, whichever comes first, or until `watched`
    /// reports an error or hang-up (the pipe of a process that died): then returns true.
    pub fn sleep_until_or(&mut self, deadline: MonoTime, watched: Option<BorrowedFd<'_>>) -> bool {
        while !self.requested {
            let left = deadline.saturating_since(clock::now());
            if left.is_zero() {
                return false;
            }
            let fds = [(Some(self.wake.as_fd()), libc::POLLIN), (watched, 0)];
            // A timeout or EINTR re-checks the deadline.
            match sys::wait_any(fds, left) {
                Ok(Some(0)) => {
                    let mut byte = [0u8; 1];
                    let _ = self.wake.read(&mut byte);
                    self.requested = true;
                }
                Ok(Some(_)) => return true,
                Ok(None) => {}
                // Cannot poll (EBADF, ENOMEM): sleep plainly rather than spin.
                Err(_) => sys::sleep_until(deadline),
            }
        }
        false
    }
}
