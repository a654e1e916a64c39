//! The guardian: a small child process that puts the machine back if the daemon dies without
//! doing it itself (SIGKILL, a crash, the OOM killer).
//!
//! The daemon tells it, over a pipe, each change it makes: RT throttling turned off, a task
//! boosted, a boost ended. The guardian does nothing but read. When the pipe reaches end of
//! file the daemon is gone. Whatever the daemon did not undo itself (a task still holding a
//! boost, checked to be the same task; RT throttling still off), the guardian undoes.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, PipeReader, PipeWriter, Write};
use std::os::fd::AsRawFd;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

use crate::boost::{Booster, Restore};
use crate::config::BoostParams;
use crate::rt_runtime;
use crate::sys::{self, SchedAttr};
use crate::task::Pid;

pub struct Guardian {
    pipe: PipeWriter,
}

impl Guardian {
    /// Forks the guardian. Must be called while the process is single-threaded.
    pub fn spawn(boost: BoostParams) -> std::io::Result<Guardian> {
        let (reader, writer) = std::io::pipe()?;
        match sys::fork()? {
            None => {
                drop(writer);
                watch(reader, boost)
            }
            Some(_) => Ok(Guardian { pipe: writer }),
        }
    }

    pub fn rt_throttle_disabled(&mut self, saved_runtime: i64) {
        self.send(&format!("throttle {saved_runtime}"));
    }

    pub fn boosted(&mut self, pid: Pid, saved: &SchedAttr) {
        if let Some(start) = start_time(pid) {
            let a = saved;
            self.send(&format!(
                "boost {pid} {start} {} {} {} {} {} {} {} {} {}",
                a.policy,
                a.flags,
                a.nice,
                a.rt_priority,
                a.runtime,
                a.deadline,
                a.period,
                a.util_min,
                a.util_max
            ));
        }
    }

    pub fn boost_ended(&mut self, pid: Pid) {
        self.send(&format!("ended {pid}"));
    }

    fn send(&mut self, line: &str) {
        // Lines are far below PIPE_BUF, so each write is atomic.
        let _ = self.pipe.write_all(format!("{line}\n").as_bytes());
    }
}

/// The guardian's whole life. Never returns: it must not run the destructors of the daemon's
/// guards it inherited.
fn watch(reader: PipeReader, boost: BoostParams) -> ! {
    let _ = sys::close_fds_except(reader.as_raw_fd());
    // Out of the daemon's process group: a signal to the whole group must not take it too.
    let _ = sys::new_session();
    let _ = std::fs::write("/proc/self/comm", "stalld-guardian");
    // It must outlive the daemon: terminal and service-stop signals are for the daemon.
    let ignored = Arc::new(AtomicBool::new(false));
    for signal in [SIGHUP, SIGINT, SIGTERM] {
        let _ = signal_hook::flag::register(signal, ignored.clone());
    }
    let mut boosts: HashMap<Pid, (u64, SchedAttr)> = HashMap::new();
    let mut throttle: Option<i64> = None;
    for line in BufReader::new(reader).lines() {
        let Ok(line) = line else { break };
        let words: Vec<&str> = line.split_ascii_whitespace().collect();
        match words.as_slice() {
            ["throttle", saved] => throttle = saved.parse().ok(),
            ["ended", pid] => {
                pid.parse().map(|pid| boosts.remove(&pid)).ok();
            }
            ["boost", pid, start, attr @ ..] => {
                if let (Ok(pid), Ok(start), Some(saved)) =
                    (pid.parse(), start.parse(), parse_attr(attr))
                {
                    boosts.insert(pid, (start, saved));
                }
            }
            _ => {}
        }
    }
    let booster = Booster::new(boost);
    for (pid, (start, saved)) in boosts {
        if start_time(pid) != Some(start) {
            continue; // exited, and the pid may name another task by now
        }
        if let Restore::Restored = booster.restore_orphan(pid, saved) {
            eprintln!(
                "stalld-guardian: stalld died: restored pid {pid} to {}",
                sys::policy_name(saved.policy)
            );
        }
    }
    // Still off means the daemon did not get to restore it.
    if let (Some(runtime), Ok(-1)) = (throttle, rt_runtime::read()) {
        if rt_runtime::write(runtime).is_ok() {
            eprintln!("stalld-guardian: stalld died: RT Throttling runtime restored to {runtime}");
        }
    }
    sys::exit_immediately(0)
}

fn parse_attr(words: &[&str]) -> Option<SchedAttr> {
    // Every field fits an i64; nice is the only signed one.
    let numbers: Vec<i64> = words
        .iter()
        .map(|w| w.parse().ok())
        .collect::<Option<_>>()?;
    let [policy, flags, nice, rt_priority, runtime, deadline, period, util_min, util_max] =
        numbers[..]
    else {
        return None;
    };
    Some(SchedAttr {
        flags: flags as u64,
        nice: nice as i32,
        rt_priority: rt_priority as u32,
        runtime: runtime as u64,
        deadline: deadline as u64,
        period: period as u64,
        util_min: util_min as u32,
        util_max: util_max as u32,
        ..SchedAttr::new(policy as u32)
    })
}

/// The task's start time (field 22 of /proc/PID/stat): with the pid, it names one task for
/// the life of the system.
fn start_time(pid: Pid) -> Option<u64> {
    // The thread's own entry: `/proc/PID/stat` walks every thread of the process (about a
    // millisecond per boost in a process with 10,000 threads).
    let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/stat")).ok()?;
    // The command name may contain blanks and parentheses: fields start after the last ')'.
    let after_comm = &stat[stat.rfind(')')? + 1..];
    after_comm.split_ascii_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_survive_the_wire_format() {
        let attr = SchedAttr {
            flags: 1,
            nice: -5,
            rt_priority: 0,
            runtime: 2_800_000,
            util_max: 1024,
            ..SchedAttr::new(sys::SCHED_OTHER)
        };
        let words = format!(
            "{} {} {} {} {} {} {} {} {}",
            attr.policy,
            attr.flags,
            attr.nice,
            attr.rt_priority,
            attr.runtime,
            attr.deadline,
            attr.period,
            attr.util_min,
            attr.util_max
        );
        let words: Vec<&str> = words.split(' ').collect();
        assert_eq!(parse_attr(&words), Some(attr));
        assert_eq!(parse_attr(&words[1..]), None);
    }

    #[test]
    fn start_time_identifies_a_live_task() {
        let me = std::process::id() as Pid;
        assert!(start_time(me).is_some_and(|t| t > 0));
        assert_eq!(start_time(me), start_time(me));
        assert_eq!(start_time(-1), None);
    }
}
