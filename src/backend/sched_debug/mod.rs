//! The `sched_debug` backend: reads the kernel's scheduler debug text and reports, for each
//! monitored CPU, the runnable tasks that are not running.
//!
//! It cannot know when a task was queued, only that it is queued now; the detector therefore
//! counts from the first snapshot that shows a task waiting with an unchanged switch count.

pub mod parse;

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::Backend;
use crate::cpuset::CpuSet;
use crate::mounts;
use crate::task::{RunQueue, WaitingTask};
use parse::SchedDebug as Parsed;

const DEBUGFS_MOUNT_POINT: &str = "/sys/kernel/debug";

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
                    .filter(|task| !confirm_running || is_running(task.pid))
                    .map(|task| WaitingTask {
                        pid: task.pid,
                        tgid: None,
                        comm: task.comm,
                        prio: task.prio,
                        switches: task.switches,
                        queued_at: None,
                    }),
            );
        }
        Ok(())
    }
}

/// Whether /proc/PID/stat shows the task runnable (state `R`).
fn is_running(pid: crate::task::Pid) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rfind(')').and_then(|end| {
                stat[end + 1..]
                    .split_ascii_whitespace()
                    .next()
                    .map(|s| s == "R")
            })
        })
        .unwrap_or(false)
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
