//! The thin layer over Linux system calls that std and libc do not wrap safely.
//!
//! Every `unsafe` block of the user-space code lives here (the BPF skeleton aside), each with
//! the reason it is sound. Callers get `io::Result`s and plain Rust types.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

use crate::cpuset::CpuSet;
use crate::task::{MonoTime, Pid};

pub const SCHED_OTHER: u32 = 0;
pub const SCHED_FIFO: u32 = 1;
pub const SCHED_RR: u32 = 2;
pub const SCHED_BATCH: u32 = 3;
pub const SCHED_IDLE: u32 = 5;
pub const SCHED_DEADLINE: u32 = 6;

/// The child of a fork does not inherit the boost (and a DEADLINE task may fork at all).
pub const SCHED_FLAG_RESET_ON_FORK: u64 = 0x01;

/// `struct sched_attr` as of SCHED_ATTR_SIZE_VER1 (with utilization clamps): 56 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedAttr {
    pub size: u32,
    pub policy: u32,
    pub flags: u64,
    pub nice: i32,
    pub rt_priority: u32,
    pub runtime: u64,
    pub deadline: u64,
    pub period: u64,
    pub util_min: u32,
    pub util_max: u32,
}

const SCHED_ATTR_SIZE: u32 = std::mem::size_of::<SchedAttr>() as u32;

impl SchedAttr {
    pub fn new(policy: u32) -> SchedAttr {
        SchedAttr {
            size: SCHED_ATTR_SIZE,
            policy,
            ..SchedAttr::default()
        }
    }

    pub fn is_fair(&self) -> bool {
        matches!(self.policy, SCHED_OTHER | SCHED_BATCH | SCHED_IDLE)
    }
}

pub fn policy_name(policy: u32) -> &'static str {
    match policy {
        SCHED_OTHER => "SCHED_OTHER",
        SCHED_FIFO => "SCHED_FIFO",
        SCHED_RR => "SCHED_RR",
        SCHED_BATCH => "SCHED_BATCH",
        SCHED_IDLE => "SCHED_IDLE",
        SCHED_DEADLINE => "SCHED_DEADLINE",
        _ => "unknown policy",
    }
}

fn check(rc: libc::c_long) -> io::Result<libc::c_long> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// `sched_getattr(2)` for thread `pid`.
pub fn sched_getattr(pid: Pid) -> io::Result<SchedAttr> {
    let mut attr = SchedAttr::new(0);
    // SAFETY: `attr` is a writable `repr(C)` sched_attr of exactly the size we pass; the kernel
    // writes at most that many bytes.
    check(unsafe {
        libc::syscall(
            libc::SYS_sched_getattr,
            pid as libc::c_long,
            &mut attr as *mut SchedAttr,
            SCHED_ATTR_SIZE as libc::c_long,
            0 as libc::c_long,
        )
    })?;
    attr.size = SCHED_ATTR_SIZE;
    Ok(attr)
}

/// `sched_setattr(2)` for thread `pid`.
pub fn sched_setattr(pid: Pid, attr: &SchedAttr) -> io::Result<()> {
    let mut attr = *attr;
    attr.size = SCHED_ATTR_SIZE;
    // SAFETY: `attr` is a valid `repr(C)` sched_attr whose `size` field says how much the
    // kernel may read; the kernel only reads it.
    check(unsafe {
        libc::syscall(
            libc::SYS_sched_setattr,
            pid as libc::c_long,
            &attr as *const SchedAttr,
            0 as libc::c_long,
        )
    })?;
    Ok(())
}

/// Pins thread `pid` (0 = the caller) to `cpus`.
pub fn set_affinity(pid: Pid, cpus: &CpuSet) -> io::Result<()> {
    // SAFETY: an all-zero cpu_set_t is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for cpu in cpus.iter() {
        // SAFETY: CPU_SET only writes inside `set`; it ignores CPUs beyond CPU_SETSIZE.
        unsafe { libc::CPU_SET(cpu as usize, &mut set) };
    }
    // SAFETY: `set` is a valid cpu_set_t and we pass its exact size.
    check(unsafe {
        libc::sched_setaffinity(pid, std::mem::size_of::<libc::cpu_set_t>(), &set) as libc::c_long
    })?;
    Ok(())
}

/// Whether the effective user is root.
pub fn is_root() -> bool {
    euid() == 0
}

/// The effective user id.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no arguments and cannot fail.
    unsafe { libc::geteuid() }
}

/// The calling thread's id.
pub fn gettid() -> Pid {
    // SAFETY: gettid has no arguments and cannot fail.
    unsafe { libc::gettid() }
}

/// `mount -t <fstype> none <target>`.
pub fn mount_pseudo_fs(fstype: &str, target: &Path) -> io::Result<()> {
    let source = CString::new("none").expect("no NUL");
    let fstype = CString::new(fstype).map_err(|_| io::ErrorKind::InvalidInput)?;
    let target =
        CString::new(target.as_os_str().as_bytes()).map_err(|_| io::ErrorKind::InvalidInput)?;
    // SAFETY: all three strings are NUL-terminated and live across the call; data is NULL.
    check(unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        ) as libc::c_long
    })?;
    Ok(())
}

pub fn mount_debugfs(target: &Path) -> io::Result<()> {
    mount_pseudo_fs("debugfs", target)
}

/// Sleeps until CLOCK_MONOTONIC reaches `deadline` (restarting after signals).
pub fn sleep_until(deadline: MonoTime) {
    let ts = libc::timespec {
        tv_sec: (deadline.0 / 1_000_000_000) as libc::time_t,
        tv_nsec: (deadline.0 % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: `ts` is a valid timespec; the remaining-time pointer may be NULL with TIMER_ABSTIME.
    while unsafe {
        libc::clock_nanosleep(
            libc::CLOCK_MONOTONIC,
            libc::TIMER_ABSTIME,
            &ts,
            std::ptr::null_mut(),
        )
    } == libc::EINTR
    {}
}

/// Waits until one of `fds` reports one of its `events` (or an error or hang-up, which poll
/// always reports) or `timeout` has passed: the index of the first such fd, `None` after the
/// timeout or a signal. ppoll sleeps on a high-resolution timer (socket receive timeouts ride
/// the timer wheel and fire up to an eighth of a long timeout late).
pub fn wait_any(fds: &[(BorrowedFd<'_>, i16)], timeout: Duration) -> io::Result<Option<usize>> {
    let mut pollfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|(fd, events)| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: *events,
            revents: 0,
        })
        .collect();
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `pollfds` holds `len` valid pollfd structs the kernel may write `revents` into, and
    // the timespec is valid; no signal mask. All outlive the call.
    let ready = check(unsafe {
        libc::ppoll(
            pollfds.as_mut_ptr(),
            pollfds.len() as libc::nfds_t,
            &ts,
            std::ptr::null(),
        )
    } as libc::c_long);
    match ready {
        Ok(0) => Ok(None),
        Ok(_) => Ok(pollfds.iter().position(|p| p.revents != 0)),
        Err(error) if error.kind() == io::ErrorKind::Interrupted => Ok(None),
        Err(error) => Err(error),
    }
}

/// Forks the process. `Ok(None)` in the child, `Ok(Some(pid))` in the parent. Refused when
/// the process has more than one thread: the child of a threaded process may deadlock on a lock
/// another thread held.
pub fn fork() -> io::Result<Option<Pid>> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    if !status
        .lines()
        .any(|line| line.split_ascii_whitespace().eq(["Threads:", "1"]))
    {
        return Err(io::Error::other(
            "refusing to fork a multi-threaded process",
        ));
    }
    // SAFETY: the process is single-threaded (checked above), so the child inherits no lock
    // held by another thread and may run arbitrary code.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(None),
        child => Ok(Some(child)),
    }
}

/// Leaves the process at once, without running destructors or atexit handlers: for a forked
/// child whose copies of the parent's guards must not act.
pub fn exit_immediately(code: i32) -> ! {
    // SAFETY: _exit never returns and has no preconditions.
    unsafe { libc::_exit(code) }
}

/// Makes the caller the leader of a new session and process group, so that signals sent to
/// its former group (a terminal's Ctrl-C, `kill -- -PGID`) no longer reach it.
pub fn new_session() -> io::Result<()> {
    // SAFETY: setsid has no memory-safety preconditions.
    check(unsafe { libc::setsid() } as libc::c_long)?;
    Ok(())
}

/// Detaches from the terminal the classic way: fork, setsid, fork; umask 022; chdir /.
/// Returns in the grandchild only. Must run before any thread is started.
pub fn daemonize() -> io::Result<()> {
    for step in 0..2 {
        // The parent leaves without running destructors: the child owns everything now.
        if fork()?.is_some() {
            exit_immediately(0);
        }
        if step == 0 {
            new_session()?;
        }
    }
    // SAFETY: umask cannot fail and touches no memory.
    unsafe { libc::umask(0o022) };
    std::env::set_current_dir("/")
}

/// `memfd_create(2)`: an anonymous file named `name` (shown as `/memfd:NAME` in
/// `/proc/PID/exe` of a process executed from it), close-on-exec, sealable. Asks for an
/// executable one (MFD_EXEC, 6.3+), and without that flag on kernels that do not know it.
pub fn memfd_create_executable(name: &str) -> io::Result<File> {
    const MFD_EXEC: libc::c_uint = 0x10;
    let name = CString::new(name).map_err(|_| io::ErrorKind::InvalidInput)?;
    let base = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    let create = |flags: libc::c_uint| {
        // SAFETY: `name` is NUL-terminated and lives across the call.
        check(unsafe { libc::memfd_create(name.as_ptr(), flags) } as libc::c_long)
    };
    let fd = match create(base | MFD_EXEC) {
        Err(error) if error.raw_os_error() == Some(libc::EINVAL) => create(base)?,
        other => other?,
    };
    // SAFETY: memfd_create just returned this descriptor; nothing else owns it.
    Ok(unsafe { File::from_raw_fd(fd as RawFd) })
}

/// Seals a memfd against any change of its contents or size, and against further seals.
pub fn seal_contents(file: &File) -> io::Result<()> {
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: fcntl(F_ADD_SEALS) takes an int argument and touches no memory of ours.
    check(unsafe { libc::fcntl(file.as_raw_fd(), libc::F_ADD_SEALS, seals) } as libc::c_long)?;
    Ok(())
}

/// The CPU affinity mask of thread `pid` (0 = the caller), as the kernel's words; sized to
/// whatever the kernel needs (more than 1024 CPUs included).
pub fn affinity_mask(pid: Pid) -> io::Result<Vec<libc::c_ulong>> {
    let mut words = 16usize;
    loop {
        let mut mask: Vec<libc::c_ulong> = vec![0; words];
        let bytes = words * std::mem::size_of::<libc::c_ulong>();
        // SAFETY: `mask` is writable for `bytes` bytes; the raw system call writes at most that
        // many and returns how many it wrote.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_sched_getaffinity,
                pid as libc::c_long,
                bytes,
                mask.as_mut_ptr(),
            )
        };
        match check(rc) {
            Ok(written) => {
                mask.truncate((written as usize).div_ceil(std::mem::size_of::<libc::c_ulong>()));
                return Ok(mask);
            }
            Err(error) if error.raw_os_error() == Some(libc::EINVAL) && words < 1 << 16 => {
                words *= 4
            }
            Err(error) => return Err(error),
        }
    }
}

/// Sets thread `pid`'s CPU affinity to `mask` (from [`affinity_mask`]).
pub fn set_affinity_mask(pid: Pid, mask: &[libc::c_ulong]) -> io::Result<()> {
    let bytes = std::mem::size_of_val(mask);
    // SAFETY: the kernel reads `bytes` bytes from `mask`, which holds exactly that many.
    check(unsafe {
        libc::syscall(
            libc::SYS_sched_setaffinity,
            pid as libc::c_long,
            bytes,
            mask.as_ptr(),
        )
    })?;
    Ok(())
}

/// Sets `signal` to be ignored (inherited across exec, like the kernel's default actions).
pub fn ignore_signal(signal: i32) -> io::Result<()> {
    // SAFETY: SIG_IGN installs no handler, so no code of ours runs in signal context.
    if unsafe { libc::signal(signal, libc::SIG_IGN) } == libc::SIG_ERR {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `kill(2)`: sends `signal` to `pid`; a negative pid addresses that process group.
pub fn kill(pid: Pid, signal: i32) -> io::Result<()> {
    // SAFETY: kill takes plain integers and has no memory-safety preconditions.
    check(unsafe { libc::kill(pid, signal) } as libc::c_long)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sched_attr_has_the_kernel_ver1_layout() {
        assert_eq!(std::mem::size_of::<SchedAttr>(), 56);
    }

    #[test]
    fn getattr_reads_our_own_policy() {
        let attr = sched_getattr(0).expect("sched_getattr on ourselves");
        assert_eq!(attr.size, 56);
        assert!(policy_name(attr.policy) != "unknown policy");
    }
}
