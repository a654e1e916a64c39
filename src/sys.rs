//! The thin layer over Linux system calls that std and libc do not wrap safely.
//!
//! Every `unsafe` block of the user-space code lives here (the BPF skeleton aside), each with
//! the reason it is sound. Callers get `io::Result`s and plain Rust types.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
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
    // SAFETY: geteuid has no arguments and cannot fail.
    unsafe { libc::geteuid() == 0 }
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

/// Waits until `fd` is readable or `timeout` has passed (`Ok(false)`). Unlike socket receive
/// timeouts, which ride the timer wheel and fire up to an eighth of a long timeout late,
/// ppoll sleeps on a high-resolution timer.
pub fn wait_readable(fd: &impl AsRawFd, timeout: Duration) -> io::Result<bool> {
    let mut pollfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: one valid pollfd, a valid timespec, no signal mask; all outlive the call.
    let ready =
        check(unsafe { libc::ppoll(&mut pollfd, 1, &ts, std::ptr::null()) } as libc::c_long);
    match ready {
        Ok(n) => Ok(n > 0),
        Err(error) if error.kind() == io::ErrorKind::Interrupted => Ok(false),
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

/// Closes every file descriptor of the process except stdio and `keep`.
pub fn close_fds_except(keep: RawFd) -> io::Result<()> {
    let fds: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&fd| fd > 2 && fd != keep)
        .collect();
    for fd in fds {
        // SAFETY: closing a descriptor number is memory-safe; nothing in this process uses these
        // descriptors afterwards (the caller is a freshly forked child that owns none of them).
        unsafe { libc::close(fd) };
    }
    Ok(())
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

/// `kill(2)`: sends `signal` to `pid`; a negative pid addresses that process group.
pub fn kill(pid: Pid, signal: i32) -> io::Result<()> {
    // SAFETY: kill takes plain integers and has no memory-safety preconditions.
    check(unsafe { libc::kill(pid, signal) } as libc::c_long)?;
    Ok(())
}

/// A sealed memfd holding `data`: journald's way to take an entry too large for a datagram
/// (sealed, so the receiver may map it knowing it cannot change).
pub fn sealed_memfd(name: &str, data: &[u8]) -> io::Result<std::fs::File> {
    use std::io::Write;
    use std::os::fd::FromRawFd;
    let name = CString::new(name).map_err(|_| io::ErrorKind::InvalidInput)?;
    // SAFETY: `name` is NUL-terminated and outlives the call; the flags are valid.
    let fd = check(unsafe {
        libc::memfd_create(name.as_ptr(), libc::MFD_ALLOW_SEALING | libc::MFD_CLOEXEC)
    } as libc::c_long)?;
    // SAFETY: memfd_create just returned this descriptor, owned by nobody else.
    let mut file = unsafe { std::fs::File::from_raw_fd(fd as RawFd) };
    file.write_all(data)?;
    let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE | libc::F_SEAL_SEAL;
    // SAFETY: F_ADD_SEALS takes an int argument and touches no memory of ours.
    check(unsafe { libc::fcntl(file.as_raw_fd(), libc::F_ADD_SEALS, seals) } as libc::c_long)?;
    Ok(file)
}

/// Sends descriptor `fd` with an empty payload to the datagram socket at `path`, without
/// blocking (`WouldBlock` when the receiver's queue is full).
pub fn send_fd_nonblocking(
    socket: &std::os::unix::net::UnixDatagram,
    path: &Path,
    fd: std::os::fd::BorrowedFd<'_>,
) -> io::Result<()> {
    use std::os::fd::AsRawFd as _;
    // SAFETY: an all-zero sockaddr_un is valid (AF_UNSPEC, empty path) before we fill it.
    let mut address: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    address.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_bytes();
    if bytes.len() >= address.sun_path.len() {
        return Err(io::ErrorKind::InvalidInput.into());
    }
    for (slot, byte) in address.sun_path.iter_mut().zip(bytes) {
        *slot = *byte as libc::c_char;
    }
    let raw_fd: RawFd = fd.as_raw_fd();
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
    // u64 storage keeps the control buffer aligned for cmsghdr.
    let mut control = vec![0u64; space.div_ceil(8)];
    // SAFETY: an all-zero msghdr is valid (no name, no data, no control) before we fill it.
    let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
    message.msg_name = &mut address as *mut libc::sockaddr_un as *mut libc::c_void;
    message.msg_namelen = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    message.msg_control = control.as_mut_ptr() as *mut libc::c_void;
    message.msg_controllen = space as _;
    // SAFETY: msg_control points at `space` writable, aligned bytes, enough for one header
    // carrying one descriptor, so CMSG_FIRSTHDR is non-null and CMSG_DATA lies inside it.
    unsafe {
        let header = libc::CMSG_FIRSTHDR(&message);
        (*header).cmsg_level = libc::SOL_SOCKET;
        (*header).cmsg_type = libc::SCM_RIGHTS;
        (*header).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(header) as *mut RawFd, raw_fd);
    }
    // SAFETY: `message` and everything it points to (address, control) live across the call.
    check(unsafe {
        libc::sendmsg(
            socket.as_raw_fd(),
            &message,
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    } as libc::c_long)?;
    Ok(())
}

/// The user id of the process at the other end of a unix stream socket (SO_PEERCRED): who
/// connected, as the kernel recorded it, not as the client claims.
pub fn peer_uid(stream: &std::os::unix::net::UnixStream) -> io::Result<u32> {
    let mut credentials = libc::ucred {
        pid: 0,
        uid: u32::MAX,
        gid: u32::MAX,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `credentials` is a writable ucred and `len` says its exact size.
    check(unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            &mut credentials as *mut libc::ucred as *mut libc::c_void,
            &mut len,
        )
    } as libc::c_long)?;
    Ok(credentials.uid)
}

/// Moves the calling process into a mount namespace of its own, with every mount private, so
/// that what it mounts next is seen by nobody else and vanishes when it exits.
pub fn private_mount_namespace() -> io::Result<()> {
    // SAFETY: unshare takes a flag and touches no memory of ours.
    check(unsafe { libc::unshare(libc::CLONE_NEWNS) } as libc::c_long)?;
    let root = CString::new("/").expect("no NUL");
    // SAFETY: `root` is NUL-terminated; source, type and data may be NULL for a propagation
    // change.
    check(unsafe {
        libc::mount(
            std::ptr::null(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    } as libc::c_long)?;
    Ok(())
}

/// The calling thread becomes SCHED_OTHER (nice 0), whatever the process runs with: for
/// helper threads that must never compete with the detect-and-boost loop.
pub fn become_sched_other() -> io::Result<()> {
    sched_setattr(0, &SchedAttr::new(SCHED_OTHER))
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
