//! The `sched_debug` backend: reads the kernel's scheduler debug text and reports, for each
//! monitored CPU, the runnable tasks that are not running.
//!
//! It cannot know when a task was queued, only that it is queued now; the detector therefore
//! counts from the first snapshot that shows a task waiting with an unchanged switch count.

pub mod parse;
mod proc_check;

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::Backend;
use crate::cpuset::CpuSet;
use crate::mounts;
use crate::task::{RunQueue, WaitingTask};
use parse::{ParsedTask, SchedDebug as Parsed};
use proc_check::ProcTask;

const DEBUGFS_MOUNT_POINT: &str = crate::mounts::DEBUGFS;

pub struct SchedDebug {
    path: PathBuf,
    monitored: CpuSet,
    buffer: Vec<u8>,
    parsed: Parsed,
}

impl SchedDebug {
    /// Finds the file (mounting debugfs if it is not mounted) and checks that it parses.
    pub fn new(monitored: CpuSet) -> Result<SchedDebug> {
        let path = locate()?;
        let mut backend = SchedDebug {
            path,
            monitored,
            buffer: Vec::with_capacity(64 * 1024),
            parsed: Parsed::default(),
        };
        backend.read_and_parse()?;
        Ok(backend)
    }

    fn read_and_parse(&mut self) -> Result<()> {
        self.buffer.clear();
        File::open(&self.path)
            .and_then(|mut file| file.read_to_end(&mut self.buffer))
            .with_context(|| format!("reading {}", self.path.display()))?;
        parse::parse_into(&self.buffer, &mut self.parsed)?;
        Ok(())
    }
}

impl Backend for SchedDebug {
    fn name(&self) -> &'static str {
        "sched_debug"
    }

    fn knows_queue_times(&self) -> bool {
        false
    }

    fn snapshot(&mut self, out: &mut Vec<RunQueue>) -> Result<()> {
        self.read_and_parse()?;
        // Before 3.13's state column (F0/F1) the table lists sleeping tasks too.
        let confirm_running = !self.parsed.format.has_state_column();
        let monitored = self
            .parsed
            .cpus
            .iter()
            .filter(|c| self.monitored.contains(c.cpu));
        // Reuses the run queues and their task vectors from the previous poll.
        out.resize_with(monitored.clone().count(), RunQueue::default);
        for (run_queue, cpu) in out.iter_mut().zip(monitored) {
            run_queue.cpu = cpu.cpu;
            run_queue.current = cpu.current_pid;
            // Absent in no family stalld reads; 0 keeps the -v line printable if it ever is.
            run_queue.nr_rt_running = cpu
                .rt_nr_running
                .map_or(0, |n| n.min(u32::MAX.into()) as u32);
            run_queue.waiting.clear();
            run_queue.waiting.extend(
                cpu.waiting
                    .iter()
                    .filter_map(|task| believed(task, cpu.cpu, confirm_running)),
            );
        }
        Ok(())
    }
}

/// The waiting task a parsed line says, once believed: a line that did not stand alone
/// ([`ParsedTask::verify`]) only if `/proc` confirms it is runnable on `cpu` with the same
/// switch count (name and prio then come from `/proc`); on F0/F1 (`confirm_running`) only if
/// `/proc` shows it runnable.
fn believed(task: &ParsedTask, cpu: u32, confirm_running: bool) -> Option<WaitingTask> {
    let mut waiting = WaitingTask {
        pid: task.pid,
        tgid: None,
        comm: task.comm,
        prio: task.prio,
        switches: task.switches,
        queued_at: None,
    };
    if task.verify {
        let seen = ProcTask::read(task.pid)?;
        if !confirms(task, cpu, &seen) {
            return None;
        }
        waiting.comm = seen.comm;
        waiting.prio = seen.prio;
    } else if confirm_running && ProcTask::read_state(task.pid)? != b'R' {
        return None;
    }
    Some(waiting)
}

/// Whether `/proc` agrees with what the line claims: runnable, on that CPU, with exactly the
/// switch count the line shows (a task that ran since is not waiting anyway).
fn confirms(task: &ParsedTask, cpu: u32, seen: &ProcTask) -> bool {
    seen.state == b'R' && seen.cpu == cpu && seen.switches == task.switches
}

/// debugfs's `sched/debug` (5.13+), else the older `/proc/sched_debug`.
fn locate() -> Result<PathBuf> {
    if let Some(mount) = mounts::find_or_mount("debugfs", Path::new(DEBUGFS_MOUNT_POINT)) {
        let path = mount.join("sched/debug");
        if path.exists() {
            return Ok(path);
        }
    }
    let proc_path = PathBuf::from("/proc/sched_debug");
    if proc_path.exists() {
        return Ok(proc_path);
    }
    bail!("stalld could not find the sched_debug file: debugfs is not mounted and could not be mounted at {DEBUGFS_MOUNT_POINT}, and there is no /proc/sched_debug")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::Comm;

    fn parsed(pid: i32, switches: u64, verify: bool) -> ParsedTask {
        ParsedTask {
            pid,
            comm: Comm::new(b"forged"),
            prio: 0,
            switches,
            state: b'R',
            verify,
        }
    }

    #[test]
    fn a_line_that_does_not_stand_alone_is_believed_only_as_proc_confirms_it() {
        let seen = ProcTask {
            comm: Comm::new(b"x\n<0>FAKE"),
            state: b'R',
            prio: 94,
            cpu: 1,
            switches: 42,
        };
        assert!(confirms(&parsed(7, 42, true), 1, &seen));
        // Sleeping, on another CPU, or with another switch count: not waiting there now.
        assert!(!confirms(
            &parsed(7, 42, true),
            1,
            &ProcTask {
                state: b'S',
                ..seen
            }
        ));
        assert!(!confirms(&parsed(7, 42, true), 0, &seen));
        assert!(!confirms(&parsed(7, 41, true), 1, &seen));
    }

    #[test]
    fn believed_takes_name_and_prio_from_proc_and_drops_what_proc_denies() {
        let me = crate::sys::gettid();
        let mine = ProcTask::read(me).unwrap();
        // Our own thread runs (state R) on some CPU with some switch count; a line claiming
        // exactly that is believed, with /proc's name and prio, whatever the line said.
        let claim = ParsedTask {
            switches: mine.switches,
            ..parsed(me, 0, true)
        };
        match believed(&claim, mine.cpu, false) {
            // The switch count moved between the two reads: dropped, which is also right.
            None => assert_ne!(ProcTask::read(me).unwrap().switches, mine.switches),
            Some(task) => {
                assert_eq!((task.pid, task.comm, task.prio), (me, mine.comm, mine.prio));
            }
        }
        // A line naming a pid that does not exist is dropped; one that stands alone is kept.
        assert_eq!(believed(&parsed(i32::MAX, 1, true), 0, false), None);
        let kept = believed(&parsed(i32::MAX, 1, false), 0, false).unwrap();
        assert_eq!((kept.pid, kept.comm), (i32::MAX, Comm::new(b"forged")));
        // F0/F1 (no state column): a listed task must be runnable per /proc.
        assert_eq!(believed(&parsed(i32::MAX, 1, false), 0, true), None);
    }
}
