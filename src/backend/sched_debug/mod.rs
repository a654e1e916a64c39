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
        out.clear();
        for cpu in self.parsed.cpus.iter().filter(|c| self.monitored.contains(c.cpu)) {
            out.push(RunQueue {
                cpu: cpu.cpu,
                current: cpu.current_pid,
                waiting: cpu
                    .waiting
                    .iter()
                    .map(|task| WaitingTask {
                        pid: task.pid,
                        tgid: None,
                        comm: task.comm,
                        prio: task.prio,
                        switches: task.switches,
                        queued_at: None,
                    })
                    .collect(),
            });
        }
        Ok(())
    }
}

/// debugfs's `sched/debug` (5.13+), else the older `/proc/sched_debug`.
fn locate() -> Result<PathBuf> {
    let debugfs = match debugfs_mount()? {
        Some(mount) => Some(mount),
        None => mount_debugfs(),
    };
    if let Some(mount) = debugfs {
        let path = mount.join("sched/debug");
        if path.exists() {
            return Ok(path);
        }
    }
    let proc_path = PathBuf::from("/proc/sched_debug");
    if proc_path.exists() {
        return Ok(proc_path);
    }
    bail!("stalld could not find the sched_debug file (is debugfs available? kernel lockdown=confidentiality closes it)")
}

fn debugfs_mount() -> Result<Option<PathBuf>> {
    let mounts = std::fs::read_to_string("/proc/mounts").context("reading /proc/mounts")?;
    Ok(mounts.lines().find_map(|line| {
        let mut fields = line.split_ascii_whitespace();
        let mount_point = fields.nth(1)?;
        (fields.next()? == "debugfs").then(|| PathBuf::from(unescape_mount_path(mount_point)))
    }))
}

/// /proc/mounts writes blanks and a few other bytes as octal escapes (`\040`).
fn unescape_mount_path(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match (bytes[i], octal) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn mount_debugfs() -> Option<PathBuf> {
    let target = Path::new(DEBUGFS_MOUNT_POINT);
    crate::sys::mount_debugfs(target).ok()?;
    Some(target.to_path_buf())
}
