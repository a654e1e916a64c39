//! CLOCK_MONOTONIC, the one time base of stalld (and of `bpf_ktime_get_ns()`).

use crate::task::MonoTime;

pub fn now() -> MonoTime {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec and CLOCK_MONOTONIC always exists on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    debug_assert_eq!(rc, 0);
    MonoTime(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

/// Where the daemon's loop reads the time: [`Monotonic`], or a fake one in tests.
pub trait Clock {
    fn now(&self) -> MonoTime;
}

/// CLOCK_MONOTONIC.
pub struct Monotonic;

impl Clock for Monotonic {
    fn now(&self) -> MonoTime {
        now()
    }
}
