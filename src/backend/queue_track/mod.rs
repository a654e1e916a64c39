//! The `queue_track` backend: BPF CO-RE programs stamp each task with the moment it became
//! runnable on a monitored CPU, and a task iterator lists, at each check, who is waiting where
//! and since when (see `bpf/stalld.bpf.c`). This file owns loading, attaching and reading them.
//!
//! Reading costs the same few system calls whatever the number of tasks: create an iterator,
//! read its (small) output, close it. Times are `bpf_ktime_get_ns()`, i.e. CLOCK_MONOTONIC.

mod libbpf_log;
mod records;

#[allow(clippy::all, clippy::pedantic, dead_code, unused_imports)]
mod skel {
    include!(concat!(env!("OUT_DIR"), "/stalld.skel.rs"));
}

use std::io::{ErrorKind, Read};
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::Path;

use anyhow::{bail, Context};
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{Iter, Link, MapCore, MapFlags, MapType, OpenObject};

use crate::backend::Backend;
use crate::cpuset::CpuSet;
use crate::task::RunQueue;
use skel::{StalldSkel, StalldSkelBuilder};

pub use libbpf_log::set_libbpf_verbose;

const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";
/// One read normally takes all records (64 bytes each); the kernel hands out at most its
/// seq_file buffer (32 KiB) per read anyway.
const READ_CHUNK: usize = 64 * 1024;

pub struct QueueTrack {
    // Dropped first: detaching the programs before the object that owns them goes away.
    _hooks: Vec<Link>,
    scan: Link,
    skel: StalldSkel<'static>,
    monitored: CpuSet,
    buf: Vec<u8>,
}

impl QueueTrack {
    /// Loads and attaches the programs for the CPUs in `monitored`. Tasks already waiting
    /// are found by the first [`snapshot`](Backend::snapshot), their wait counting from then.
    pub fn new(monitored: CpuSet) -> anyhow::Result<QueueTrack> {
        libbpf_log::install();
        if monitored.is_empty() {
            bail!("queue_track: no CPU to monitor");
        }
        if !Path::new(VMLINUX_BTF).exists() {
            bail!(
                "BTF not available at {VMLINUX_BTF} (kernel built without CONFIG_DEBUG_INFO_BTF)"
            );
        }
        libbpf_log::clear();

        // The skeleton borrows the storage of its object handle for as long as it lives. The
        // handle is one pointer; leaking it per backend instance (one per daemon) is cheaper in
        // clarity than a self-referential struct.
        let object: &'static mut MaybeUninit<OpenObject> =
            Box::leak(Box::new(MaybeUninit::uninit()));
        let mut open = StalldSkelBuilder::default()
            .open(object)
            .map_err(|err| load_error("opening the BPF object failed", &err))?;

        let rodata = open
            .maps
            .rodata_data
            .as_deref_mut()
            .context("BPF object has no .rodata (build problem)")?;
        let capacity = rodata.monitored.len() * 64;
        for cpu in monitored.iter() {
            let cpu = usize::try_from(cpu).unwrap_or(usize::MAX);
            if cpu >= capacity {
                bail!("queue_track supports CPUs below {capacity}, not {cpu}");
            }
            rodata.monitored[cpu / 64] |= 1 << (cpu % 64);
        }

        let skel = open
            .load()
            .map_err(|err| load_error("BPF program load failed", &err))?;

        let progs = &skel.progs;
        let mut hooks = Vec::with_capacity(5);
        for (prog, tracepoint) in [
            (&progs.qt_wakeup, "sched_wakeup"),
            (&progs.qt_wakeup_new, "sched_wakeup_new"),
            (&progs.qt_switch, "sched_switch"),
            (&progs.qt_migrate, "sched_migrate_task"),
            (&progs.qt_exit, "sched_process_exit"),
        ] {
            let link = prog
                .attach()
                .map_err(|err| load_error(&format!("attaching to {tracepoint} failed"), &err))?;
            hooks.push(link);
        }
        let scan = progs
            .qt_scan
            .attach()
            .map_err(|err| load_error("attaching the task iterator failed", &err))?;

        Ok(QueueTrack {
            _hooks: hooks,
            scan,
            skel,
            monitored,
            buf: vec![0; READ_CHUNK],
        })
    }

    /// Whether the task behind `pidfd` carries a queue stamp. For tests: a task that exited
    /// must not (its stamp is deleted at exit, even while it lingers as a zombie).
    #[doc(hidden)]
    pub fn has_stamp(&self, pidfd: BorrowedFd<'_>) -> anyhow::Result<bool> {
        let key = pidfd.as_raw_fd().to_ne_bytes();
        let value = self
            .skel
            .maps
            .stamps
            .lookup(&key, MapFlags::ANY)
            .context("looking up a task's stamp")?;
        Ok(value.is_some())
    }

    /// Runs the iterator once and leaves its output in `self.buf[..len]`.
    fn scan(&mut self) -> anyhow::Result<usize> {
        let mut iter = Iter::new(&self.scan).context("creating the task iterator")?;
        let mut len = 0;
        loop {
            if self.buf.len() - len < READ_CHUNK {
                self.buf.resize(len + READ_CHUNK, 0);
            }
            match iter.read(&mut self.buf[len..]) {
                Ok(0) => return Ok(len),
                Ok(n) => len += n,
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) => return Err(err).context("reading the task iterator"),
            }
        }
    }
}

impl Backend for QueueTrack {
    fn name(&self) -> &'static str {
        "queue_track"
    }

    fn knows_queue_times(&self) -> bool {
        true
    }

    fn snapshot(&mut self, out: &mut Vec<RunQueue>) -> anyhow::Result<()> {
        let len = self.scan()?;
        records::fill(&self.buf[..len], &self.monitored, out);
        Ok(())
    }
}

/// `what: <libbpf error>`, plus libbpf's own last word and a hint at the usual causes, so the
/// one line the daemon prints on fallback says why.
fn load_error(what: &str, err: &libbpf_rs::Error) -> anyhow::Error {
    // Without the capabilities libbpf's own words (it blames RLIMIT_MEMLOCK) only mislead.
    if !has_bpf_capabilities() {
        return anyhow::anyhow!(
            "{what}: {err}; stalld lacks CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN)"
        );
    }
    let mut msg = format!("{what}: {err}");
    if let Some(detail) = libbpf_log::last_warning() {
        msg.push_str(&format!(" (libbpf: {detail})"));
    }
    if MapType::TaskStorage.is_supported().ok() == Some(false) {
        msg.push_str("; the kernel lacks BPF task storage (needs Linux 5.11 or later)");
    } else if err.kind() == libbpf_rs::ErrorKind::PermissionDenied {
        msg.push_str("; the verifier rejected it (-v shows its log)");
    }
    anyhow::anyhow!(msg)
}

/// Whether the effective capabilities allow loading tracing programs: CAP_SYS_ADMIN alone, or
/// CAP_BPF (39) with CAP_PERFMON (38). Unknown (no /proc) counts as yes: no hint beats a wrong one.
fn has_bpf_capabilities() -> bool {
    const SYS_ADMIN: u64 = 1 << 21;
    const BPF_AND_PERFMON: u64 = (1 << 39) | (1 << 38);
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return true;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_none_or(|eff| eff & SYS_ADMIN != 0 || eff & BPF_AND_PERFMON == BPF_AND_PERFMON)
}
