//! `/proc/sys/kernel/sched_rt_runtime_us`: the RT throttling knob (−1 = off). Shared by the
//! daemon, the guardian, the starvation generator and the tests, so all of them get the same
//! handling of the kernel's transient refusal.

use std::fs;
use std::io;
use std::time::{Duration, Instant};

pub const PATH: &str = "/proc/sys/kernel/sched_rt_runtime_us";

/// How long a refused write is retried (see [`write`]).
const BUSY_RETRY: Duration = Duration::from_secs(5);

pub fn read() -> io::Result<i64> {
    let text = fs::read_to_string(PATH)?;
    text.trim()
        .parse()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("{PATH} holds {text:?}")))
}

/// Writes the runtime. The kernel refuses (EBUSY) a limit below the SCHED_DEADLINE bandwidth
/// in use, and a task that just left SCHED_DEADLINE (a restored boost) keeps its bandwidth
/// until its zero-lag time, up to about a boost period later: so EBUSY is retried for a while.
pub fn write(value: i64) -> io::Result<()> {
    let give_up = Instant::now() + BUSY_RETRY;
    loop {
        match fs::write(PATH, value.to_string()) {
            Err(error) if error.raw_os_error() == Some(libc::EBUSY) && Instant::now() < give_up => {
                std::thread::sleep(Duration::from_millis(50));
            }
            result => return result,
        }
    }
}
