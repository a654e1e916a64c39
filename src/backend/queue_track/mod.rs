//! The `queue_track` backend: a BPF task iterator that lists, at each check, which task runs
//! on each monitored CPU and who waits there since when (see `bpf/stalld.bpf.c`). This file
//! owns choosing the stamp source, loading, attaching and reading.
//!
//! The enqueue times come from the kernel's own `sched_info.last_queued` where the kernel's
//! BTF has it (CONFIG_SCHED_INFO, every major distribution) and that scan loads: then nothing
//! is attached to any scheduler tracepoint and the scheduler's hot path pays nothing.
//! Otherwise (and the daemon says why when it did not load), or when
//! [`STAMPS_ENV`](crate::backend::STAMPS_ENV) forces it, programs on the scheduler
//! tracepoints stamp every enqueue themselves (the previous design). Times reach the detector
//! as CLOCK_MONOTONIC either way (kernel stamps converted by `rq_clock.rs`).
//!
//! Reading costs the same few system calls whatever the number of tasks: create an iterator,
//! read its (small) output, close it.
//!
//! Needs kernel BTF and a kernel that loads the task iterator program: the kernel's stamps load
//! from 5.10 on (Debian 11's 5.10 is the oldest proven); the tracepoint source also needs BPF
//! task storage in tracing programs, which came with 5.13 (the map type with 5.11, for BPF LSM
//! programs only). Without them, [`QueueTrack::new`] fails with the reason and the daemon
//! falls back to sched_debug. No program calls a helper that a JIT inlines (see `bpf/stalld.bpf.c`),
//! so they also load where the kernel runs BPF in its interpreter (riscv64's default). There
//! is no raw_tp variant:
//! every kernel with task storage has tp_btf (5.5), and raw_tp pointers cannot be passed to
//! bpf_task_storage_get() nor read without bpf_probe_read_kernel(), which
//! lockdown=confidentiality forbids.

mod libbpf_log;
mod records;
mod rq_clock;

#[allow(clippy::all, clippy::pedantic, dead_code, unused_imports)]
mod skel {
    include!(concat!(env!("OUT_DIR"), "/stalld.skel.rs"));
}

use std::ffi::OsStr;
use std::io::{ErrorKind, Read};
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::Path;

use anyhow::{bail, Context};
use libbpf_rs::btf::{types, BtfType};
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{Btf, Iter, Link, MapCore, MapFlags, MapType, OpenObject};

use crate::backend::stamps::{StampChoice, StampSource};
use crate::backend::Backend;
use crate::clock;
use crate::cpuset::CpuSet;
use crate::sys;
use crate::task::{Pid, RunQueue};
use records::Stamps;
use rq_clock::StableStamps;
use skel::{StalldSkel, StalldSkelBuilder};

pub use libbpf_log::set_libbpf_verbose;

const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";
/// One read normally takes all records (56 bytes each); the kernel hands out at most its
/// seq_file buffer (8 pages: 32 KiB, or 512 KiB with 64 KiB pages) per read, and the reading
/// loop grows the buffer for whatever comes.
const READ_CHUNK: usize = 64 * 1024;
/// Long enough that the sleep really blocks (its timer cannot fire before schedule()), short
/// enough not to matter for a check.
const FRESH_ARRIVAL_SLEEP: std::time::Duration = std::time::Duration::from_micros(50);

/// The stamp source `choice` resolves to on the running kernel, without loading anything.
/// (Under `Auto`, [`QueueTrack::new`] goes on to the tracepoint stamps if this one does not
/// load.)
pub fn stamp_source(choice: StampChoice) -> anyhow::Result<StampSource> {
    choice.resolve(kernel_has_last_queued()?)
}

/// Whether the running kernel's BTF has `task_struct.sched_info.last_queued`: the field the
/// sched_info scan relocates against (CO-RE), looked up the same way before choosing it.
fn kernel_has_last_queued() -> anyhow::Result<bool> {
    if !Path::new(VMLINUX_BTF).exists() {
        bail!("BTF not available at {VMLINUX_BTF} (kernel built without CONFIG_DEBUG_INFO_BTF)");
    }
    let btf = Btf::from_path(VMLINUX_BTF).context("reading the kernel's BTF")?;
    let member_type = |owner: types::Struct<'_>, name: &str| {
        owner
            .iter()
            .find(|member| member.name == Some(OsStr::new(name)))
            .map(|member| member.ty)
    };
    let has = (|| {
        let task: types::Struct<'_> = btf.type_by_name("task_struct")?;
        let info = btf.type_by_id::<BtfType<'_>>(member_type(task, "sched_info")?)?;
        let info = types::Struct::try_from(info.skip_mods_and_typedefs()).ok()?;
        member_type(info, "last_queued")
    })();
    Ok(has.is_some())
}

pub struct QueueTrack {
    // Dropped first: detaching the programs before the object that owns them goes away.
    // Empty with the kernel's stamps.
    _hooks: Vec<Link>,
    scan: Link,
    skel: StalldSkel<'static>,
    monitored: CpuSet,
    /// Also says the stamp source: [`Stamps::source`].
    stamps: Stamps,
    /// The source tried first and why it did not load, when `Auto` went on to this one.
    fallback: Option<(StampSource, String)>,
    buf: Vec<u8>,
}

impl QueueTrack {
    /// Loads the programs of the stamp source `choice` resolves to, for the CPUs in
    /// `monitored`; under `Auto`, the tracepoint stamps if the kernel's do not load (a kernel
    /// that lacks BPF task storage has neither: then the first error is the answer). Tasks
    /// already waiting are found by the first [`snapshot`](Backend::snapshot): with the
    /// kernel's stamps since they were queued, with the tracepoint stamps from that first
    /// snapshot.
    pub fn new(monitored: CpuSet, choice: StampChoice) -> anyhow::Result<QueueTrack> {
        libbpf_log::install();
        if monitored.is_empty() {
            bail!("queue_track: no CPU to monitor");
        }
        let source = stamp_source(choice)?;
        let first = match QueueTrack::load(&monitored, source) {
            Ok(backend) => return Ok(backend),
            Err(error) => error,
        };
        let Some(next) = choice.after_failure(source) else {
            return Err(first);
        };
        if MapType::TaskStorage.is_supported().ok() == Some(false) {
            return Err(first);
        }
        match QueueTrack::load(&monitored, next) {
            Ok(mut backend) => {
                backend.fallback = Some((source, format!("{first:#}")));
                Ok(backend)
            }
            Err(second) => Err(anyhow::anyhow!(
                "{first:#}; {} did not load either: {second:#}",
                next.describe()
            )),
        }
    }

    /// Loads and attaches the programs of `source`.
    fn load(monitored: &CpuSet, source: StampSource) -> anyhow::Result<QueueTrack> {
        libbpf_log::clear();

        // The skeleton borrows the storage of its object handle for as long as it lives. The
        // handle is one pointer; leaking it per load (one or two per daemon) is cheaper in
        // clarity than a self-referential struct.
        let object: &'static mut MaybeUninit<OpenObject> =
            Box::leak(Box::new(MaybeUninit::uninit()));
        let mut open = StalldSkelBuilder::default()
            .open(object)
            .map_err(|err| load_error("opening the BPF object failed", source, &err))?;

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

        // Only the chosen source's programs are loaded (and CO-RE-relocated: the sched_info
        // scan would not relocate on a kernel without the field); the tracepoint source's
        // task storage is not even created for the kernel's stamps.
        let tracepoints = source == StampSource::Tracepoints;
        let progs = &mut open.progs;
        progs.qt_scan_sched_info.set_autoload(!tracepoints);
        for prog in [
            &mut progs.qt_scan_tracepoints,
            &mut progs.qt_wakeup,
            &mut progs.qt_wakeup_new,
            &mut progs.qt_switch,
            &mut progs.qt_migrate,
            &mut progs.qt_exit,
        ] {
            prog.set_autoload(tracepoints);
        }
        open.maps
            .stamps
            .set_autocreate(tracepoints)
            .map_err(|err| load_error("configuring the BPF object failed", source, &err))?;

        let skel = open
            .load()
            .map_err(|err| load_error("BPF program load failed", source, &err))?;

        let progs = &skel.progs;
        let mut hooks = Vec::new();
        if tracepoints {
            for (prog, tracepoint) in [
                (&progs.qt_wakeup, "sched_wakeup"),
                (&progs.qt_wakeup_new, "sched_wakeup_new"),
                (&progs.qt_switch, "sched_switch"),
                (&progs.qt_migrate, "sched_migrate_task"),
                (&progs.qt_exit, "sched_process_exit"),
            ] {
                let link = prog.attach().map_err(|err| {
                    load_error(&format!("attaching to {tracepoint} failed"), source, &err)
                })?;
                hooks.push(link);
            }
        }
        if tracepoints {
            check_stamps_storable(&skel)?;
        }
        let (scan, stamps) = if tracepoints {
            (&progs.qt_scan_tracepoints, Stamps::Monotonic)
        } else {
            (
                &progs.qt_scan_sched_info,
                Stamps::RqClock(StableStamps::default()),
            )
        };
        let scan = scan
            .attach()
            .map_err(|err| load_error("attaching the task iterator failed", source, &err))?;

        Ok(QueueTrack {
            _hooks: hooks,
            scan,
            skel,
            monitored: monitored.clone(),
            stamps,
            fallback: None,
            buf: vec![0; READ_CHUNK],
        })
    }

    /// Whether the task behind `pidfd` carries one of stalld's tracepoint stamps. For tests:
    /// a task that exited must not (its stamp is deleted at exit, even while it lingers as a
    /// zombie). The kernel's stamps need no such care: they live in the task itself.
    #[doc(hidden)]
    pub fn has_stamp(&self, pidfd: BorrowedFd<'_>) -> anyhow::Result<bool> {
        if self.stamps.source() != StampSource::Tracepoints {
            bail!("only the tracepoint source keeps stamps of its own");
        }
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

    fn stamps(&self) -> Option<StampSource> {
        Some(self.stamps.source())
    }

    fn stamps_fallback(&self) -> Option<(StampSource, &str)> {
        self.fallback
            .as_ref()
            .map(|(failed, why)| (*failed, why.as_str()))
    }

    fn snapshot(&mut self, out: &mut Vec<RunQueue>) -> anyhow::Result<()> {
        let mut reader_switches = None;
        if matches!(self.stamps, Stamps::RqClock(_)) {
            // The scan pairs the clocks with this thread's last switch-in (rq_clock.rs): a
            // short sleep makes that switch-in now, whatever ran since the last one (start-up
            // work, BPF loading, boost bookkeeping), so the pairing is microseconds old. The
            // switch count then tells the scan's records whether it stayed the last one.
            std::thread::sleep(FRESH_ARRIVAL_SLEEP);
            reader_switches = sys::thread_context_switches().ok();
        }
        let len = self.scan()?;
        let read_at = clock::now();
        records::fill(
            &self.buf[..len],
            &self.monitored,
            &mut self.stamps,
            reader_switches,
            read_at,
            out,
        );
        Ok(())
    }
}

/// `what: <libbpf error>`, plus libbpf's own last word and a hint at the usual causes, so the
/// one line the daemon prints on fallback says why.
fn load_error(what: &str, source: StampSource, err: &libbpf_rs::Error) -> anyhow::Error {
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
    if source == StampSource::Tracepoints && lacks_task_storage_for_tracing() {
        msg.push_str(TASK_STORAGE_HINT);
    } else if err.kind() == libbpf_rs::ErrorKind::PermissionDenied {
        msg.push_str("; the verifier rejected it (-v shows its log)");
    }
    anyhow::anyhow!(msg)
}

/// Stores one stamp through the map, for stalld itself, and deletes it again. The map exists
/// once loaded, but each task's storage is allocated at its first stamp, and where that cannot
/// succeed for any task every `bpf_task_storage_get()` of the programs returns NULL: each wait
/// would then count from the first scan that saw the task, up to a threshold late, while
/// stalld said it used exact stamps. User space allocates with the same allocator.
fn check_stamps_storable(skel: &StalldSkel<'_>) -> anyhow::Result<()> {
    let own = sys::pidfd_open(std::process::id() as Pid).context("pidfd_open of stalld itself")?;
    let key = own.as_raw_fd().to_ne_bytes();
    // All zeroes: a stamp that is never valid, harmless if the delete below fails.
    let stamp = vec![0u8; skel.maps.stamps.value_size() as usize];
    if let Err(err) = skel.maps.stamps.update(&key, &stamp, MapFlags::ANY) {
        let hint = if err.kind() == libbpf_rs::ErrorKind::OutOfMemory {
            NOLOCK_ALLOCATION_HINT
        } else {
            ""
        };
        bail!("BPF task storage cannot hold stalld's tracepoint stamps on this kernel: storing one failed: {err}{hint}");
    }
    // Best effort: a leftover all-zero stamp is never taken for a real one.
    let _ = skel.maps.stamps.delete(&key);
    Ok(())
}

/// Why storing a stamp fails with ENOMEM whatever the memory: since Linux 6.19 (commit
/// f484f4a3e058) BPF local storage allocates with kmalloc_nolock(), which always fails on
/// architectures without CONFIG_HAVE_CMPXCHG_DOUBLE (ppc64le and riscv64 among them).
const NOLOCK_ALLOCATION_HINT: &str = "; since Linux 6.19 (commit f484f4a3e058) BPF local \
    storage is allocated with kmalloc_nolock(), which always fails on architectures without \
    CONFIG_HAVE_CMPXCHG_DOUBLE, such as ppc64le and riscv64 (the kernel's stamps, the default, \
    need no task storage)";

/// Why the tracepoint stamps cannot load on kernels before 5.13: the task storage map type came
/// with 5.11 (commit 4cf1bc1f1045) for BPF LSM programs only; tracing programs such as the
/// tp_btf stampers may call bpf_task_storage_get() from 5.13 (a10787e6d58c, in the 5.13
/// networking pull). The kernel's stamps need neither.
const TASK_STORAGE_HINT: &str = "; stalld's tracepoint stamps need BPF task storage in tracing \
    programs, which this kernel lacks: Linux 5.13 or later (the kernel's stamps, the default, \
    load without it)";

/// The map type unknown (before 5.11), or known but refused to tracing programs (5.11, 5.12:
/// the verifier's "unknown func bpf_task_storage_get").
fn lacks_task_storage_for_tracing() -> bool {
    MapType::TaskStorage.is_supported().ok() == Some(false)
        || libbpf_log::any_line_contains("unknown func bpf_task_storage")
}

/// Whether the effective capabilities allow loading tracing programs: CAP_SYS_ADMIN alone, or
/// CAP_BPF (39) with CAP_PERFMON (38). Unknown (no /proc) counts as yes: no hint beats a wrong one.
fn has_bpf_capabilities() -> bool {
    const SYS_ADMIN: u64 = 1 << 21;
    const BPF_AND_PERFMON: u64 = (1 << 39) | (1 << 38);
    std::fs::read("/proc/self/status")
        .ok()
        .and_then(|status| crate::procfs::status_effective_capabilities(&status))
        .is_none_or(|eff| eff & SYS_ADMIN != 0 || eff & BPF_AND_PERFMON == BPF_AND_PERFMON)
}
