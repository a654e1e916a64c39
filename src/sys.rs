//! The thin layer over Linux system calls that std and libc do not wrap safely.
//!
//! Every `unsafe` block of the user-space code lives here (the BPF skeleton aside), each with
//! the reason it is sound. Callers get `io::Result`s and plain Rust types.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
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

/// `struct sched_attr` as of SCHED_ATTR_SIZE_VER1 (with utilization clamps): 56 bytes, the
/// same on every architecture (all `__u32`/`__u64`/`__s32`, laid out without padding, so
/// i686's 4-byte alignment of 64-bit integers changes nothing; checked below).
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
const _: () = {
    use std::mem::offset_of;
    assert!(SCHED_ATTR_SIZE == 56);
    assert!(offset_of!(SchedAttr, flags) == 8 && offset_of!(SchedAttr, nice) == 16);
    assert!(offset_of!(SchedAttr, runtime) == 24 && offset_of!(SchedAttr, util_min) == 48);
};

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
///
/// The mask is sized for the highest CPU in the set, so CPUs at or above libc's
/// `CPU_SETSIZE` (1024) work on machines that have them; the kernel ignores bits beyond its
/// own CPU count, and a set with no CPU the machine has is refused with EINVAL.
pub fn set_affinity(pid: Pid, cpus: &CpuSet) -> io::Result<()> {
    set_affinity_words(pid, &affinity_mask(cpus))
}

/// Pins thread `pid` to the CPUs of a kernel bitmap (as [`affinity_words`] reads one).
pub fn set_affinity_words(pid: Pid, mask: &[libc::c_ulong]) -> io::Result<()> {
    // SAFETY: `mask` is a live, initialised buffer of exactly the byte length we pass; the
    // kernel only reads from it.
    check(unsafe {
        libc::sched_setaffinity(
            pid,
            std::mem::size_of_val(mask),
            mask.as_ptr().cast::<libc::cpu_set_t>(),
        ) as libc::c_long
    })?;
    Ok(())
}

/// The kernel's CPU bitmap for `cpus`: bit `n % 64` of word `n / 64`, in words of the
/// kernel's `unsigned long`, never shorter than a `cpu_set_t`.
fn affinity_mask(cpus: &CpuSet) -> Vec<libc::c_ulong> {
    const BITS: usize = libc::c_ulong::BITS as usize;
    let min_words = std::mem::size_of::<libc::cpu_set_t>() / std::mem::size_of::<libc::c_ulong>();
    let words = cpus
        .max()
        .map_or(0, |max| max as usize / BITS + 1)
        .max(min_words);
    let mut mask = vec![0; words];
    for cpu in cpus.iter() {
        let cpu = cpu as usize;
        mask[cpu / BITS] |= 1 << (cpu % BITS);
    }
    mask
}

/// Renames the calling thread (`PR_SET_NAME`): the kernel keeps the first 15 bytes, and any
/// byte but NUL, so a name may hold a newline. Unprivileged: every user can do it, which is
/// why names are hostile input everywhere else.
pub fn set_thread_name(name: &[u8]) -> io::Result<()> {
    let name = CString::new(name).map_err(|_| io::ErrorKind::InvalidInput)?;
    // SAFETY: PR_SET_NAME reads a NUL-terminated string (at most 16 bytes) from a pointer
    // that stays valid for the call; the other arguments are unused.
    check(unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr(), 0, 0, 0) } as libc::c_long)?;
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

/// How many times the calling thread has been switched out (voluntarily or not): the
/// kernel's `nvcsw + nivcsw` of this thread, through `getrusage(RUSAGE_THREAD)`.
pub fn thread_context_switches() -> io::Result<u64> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: getrusage writes one struct rusage through the pointer, which points to storage
    // of that type that lives across the call.
    check(unsafe { libc::getrusage(libc::RUSAGE_THREAD, usage.as_mut_ptr()) } as libc::c_long)?;
    // SAFETY: getrusage succeeded, so it filled the whole struct.
    let usage = unsafe { usage.assume_init() };
    Ok(usage.ru_nvcsw as u64 + usage.ru_nivcsw as u64)
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
/// timeout or a signal. An absent fd (`None`) keeps its index and is never ready. ppoll sleeps
/// on a high-resolution timer (socket receive timeouts ride the timer wheel and fire up to an
/// eighth of a long timeout late). The fds live on the stack: the main loop sleeps here at
/// every check.
pub fn wait_any<const N: usize>(
    fds: [(Option<BorrowedFd<'_>>, i16); N],
    timeout: Duration,
) -> io::Result<Option<usize>> {
    // poll ignores an entry whose fd is negative and leaves its revents 0.
    let mut pollfds = fds.map(|(fd, events)| libc::pollfd {
        fd: fd.map_or(-1, |fd| fd.as_raw_fd()),
        events,
        revents: 0,
    });
    match poll(&mut pollfds, timeout)? {
        0 => Ok(None),
        _ => Ok(pollfds.iter().position(|p| p.revents != 0)),
    }
}

/// `ppoll(2)` of `fds` for at most `timeout`: how many have `revents` set (0 after the timeout
/// or a signal). An entry whose fd is negative is ignored; one that is not open reports
/// `POLLNVAL`.
pub fn poll(fds: &mut [libc::pollfd], timeout: Duration) -> io::Result<usize> {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i32::MAX as u64) as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `fds` holds `fds.len()` valid pollfd structs the kernel may write `revents`
    // into, and the timespec is valid; no signal mask. All outlive the call.
    let ready = check(unsafe {
        libc::ppoll(
            fds.as_mut_ptr(),
            fds.len() as libc::nfds_t,
            &ts,
            std::ptr::null(),
        )
    } as libc::c_long);
    match ready {
        Ok(n) => Ok(n as usize),
        Err(error) if error.kind() == io::ErrorKind::Interrupted => Ok(0),
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
///
/// The process that was started waits until the daemon says it is up ([`Ready::done`]) and
/// exits 0, or exits 1 if the daemon ends first (its error is on the same terminal): so once
/// `stalld` returns, its pid file holds the daemon's pid, and a daemon that could not start
/// is a non-zero exit. Everything open (a pid file's lock, say) passes to the daemon: the
/// parents leave with `_exit`, closing nothing a destructor owns.
pub fn daemonize() -> io::Result<Ready> {
    let (mut reader, writer) = std::io::pipe()?;
    if fork()?.is_some() {
        drop(writer);
        let mut byte = [0u8; 1];
        let up = matches!(std::io::Read::read(&mut reader, &mut byte), Ok(1));
        exit_immediately(if up { 0 } else { 1 });
    }
    drop(reader);
    new_session()?;
    if fork()?.is_some() {
        exit_immediately(0);
    }
    // SAFETY: umask cannot fail and touches no memory.
    unsafe { libc::umask(0o022) };
    std::env::set_current_dir("/")?;
    Ok(Ready { pipe: Some(writer) })
}

/// The daemon's side of [`daemonize`]'s handshake. Dropped unsent (the daemon failed), its
/// pipe stays open until the process exits, so the started process exits 1 only after every
/// clean-up of the daemon (RT throttling restored, say) is done.
pub struct Ready {
    pipe: Option<std::io::PipeWriter>,
}

impl Ready {
    /// Tells the process that was started that the daemon is up, so it exits 0.
    pub fn done(mut self) {
        if let Some(mut pipe) = self.pipe.take() {
            let _ = std::io::Write::write_all(&mut pipe, b"1");
        }
    }
}

impl Drop for Ready {
    fn drop(&mut self) {
        // Closed by the kernel when the process exits, after the remaining destructors.
        std::mem::forget(self.pipe.take());
    }
}

/// `memfd_create(2)`: an anonymous file named `name` (shown as `/memfd:NAME` in
/// `/proc/PID/exe` of a process executed from it), close-on-exec, sealable. `exec` asks for an
/// executable file (MFD_EXEC), otherwise for one sealed against ever becoming executable
/// (MFD_NOEXEC_SEAL): 6.3+ warns when a memfd is created with neither. Kernels before 6.3 know
/// neither flag (EINVAL) and get the same request without it.
pub fn memfd_create(name: &str, exec: bool) -> io::Result<File> {
    let flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    let exec_flag = if exec {
        libc::MFD_EXEC
    } else {
        libc::MFD_NOEXEC_SEAL
    };
    match memfd_create_with(name, flags | exec_flag) {
        Err(error) if error.raw_os_error() == Some(libc::EINVAL) => memfd_create_with(name, flags),
        other => other,
    }
}

/// A pidfd for process `pid` (`pidfd_open(2)`, Linux 5.3): the key of a BPF task storage map
/// when user space reads or writes it.
pub fn pidfd_open(pid: Pid) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes two integers and touches no memory of ours.
    let fd = check(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })?;
    // SAFETY: the call succeeded, so `fd` is a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Seals a memfd against any change of its contents or size, and against further seals.
pub fn seal_contents(file: &File) -> io::Result<()> {
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: fcntl(F_ADD_SEALS) takes an int argument and touches no memory of ours.
    check(unsafe { libc::fcntl(file.as_raw_fd(), libc::F_ADD_SEALS, seals) } as libc::c_long)?;
    Ok(())
}

/// The CPU affinity bitmap of thread `pid` (0 = the caller), in the kernel's words; sized to
/// whatever the kernel needs (more than 1024 CPUs included).
pub fn affinity_words(pid: Pid) -> io::Result<Vec<libc::c_ulong>> {
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

/// A sealed memfd holding `data`: journald's way to take an entry too large for a datagram
/// (sealed, so the receiver may map it knowing it cannot change).
pub fn sealed_memfd(name: &str, data: &[u8]) -> io::Result<std::fs::File> {
    use std::io::Write;
    let mut file = memfd_create(name, false)?;
    file.write_all(data)?;
    seal_contents(&file)?;
    Ok(file)
}

fn memfd_create_with(name: &str, flags: libc::c_uint) -> io::Result<File> {
    let name = CString::new(name).map_err(|_| io::ErrorKind::InvalidInput)?;
    // SAFETY: `name` is NUL-terminated and outlives the call; the flags are plain bits.
    let fd = check(unsafe { libc::memfd_create(name.as_ptr(), flags) } as libc::c_long)?;
    // SAFETY: memfd_create just returned this descriptor, owned by nobody else.
    Ok(unsafe { File::from_raw_fd(fd as RawFd) })
}

/// `path` as a unix socket address (`InvalidInput` when it is too long for one).
fn unix_address(path: &Path) -> io::Result<libc::sockaddr_un> {
    // SAFETY: an all-zero sockaddr_un is valid (AF_UNSPEC, empty path) before we fill it.
    let mut address: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    address.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_bytes();
    if bytes.is_empty() || bytes.len() >= address.sun_path.len() {
        return Err(io::ErrorKind::InvalidInput.into());
    }
    for (slot, byte) in address.sun_path.iter_mut().zip(bytes) {
        *slot = *byte as libc::c_char;
    }
    Ok(address)
}

/// A listening unix stream socket bound at `path`, whose file is created with `mode` (less
/// the umask's bits): the socket's own mode is set (`fchmod`) before `bind` creates the file
/// from it, so nothing is ever changed through the path, where a symbolic link could have
/// been planted meanwhile. `bind` itself never follows a link (`EADDRINUSE` if anything is
/// at the path).
pub fn bind_unix_listener(path: &Path, mode: u32) -> io::Result<std::os::unix::net::UnixListener> {
    use std::os::fd::AsRawFd as _;
    let address = unix_address(path)?;
    // SAFETY: socket takes plain integers and returns a new descriptor or -1.
    let fd = check(
        unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) }
            as libc::c_long,
    )?;
    // SAFETY: socket just returned this descriptor, owned by nobody else.
    let socket = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    // SAFETY: fchmod takes a descriptor of ours and a mode; it touches no memory.
    check(unsafe { libc::fchmod(socket.as_raw_fd(), mode as libc::mode_t) } as libc::c_long)?;
    // SAFETY: `address` is a valid sockaddr_un of the size given, alive across the call.
    check(unsafe {
        libc::bind(
            socket.as_raw_fd(),
            &address as *const libc::sockaddr_un as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
        )
    } as libc::c_long)?;
    // SAFETY: listen takes a descriptor of ours and a backlog.
    check(unsafe { libc::listen(socket.as_raw_fd(), 128) } as libc::c_long)?;
    Ok(std::os::unix::net::UnixListener::from(socket))
}

/// `send(2)` of `data` on socket `fd` without blocking and without SIGPIPE: how many bytes
/// went (`WouldBlock` when none could).
pub fn send_nonblocking(fd: BorrowedFd<'_>, data: &[u8]) -> io::Result<usize> {
    // SAFETY: `data` is readable for its length during the call.
    let sent = check(unsafe {
        libc::send(
            fd.as_raw_fd(),
            data.as_ptr() as *const libc::c_void,
            data.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    } as libc::c_long)?;
    Ok(sent as usize)
}

/// Sends descriptor `fd` with an empty payload to the datagram socket at `path`, without
/// blocking (`WouldBlock` when the receiver's queue is full).
pub fn send_fd_nonblocking(
    socket: &std::os::unix::net::UnixDatagram,
    path: &Path,
    fd: std::os::fd::BorrowedFd<'_>,
) -> io::Result<()> {
    use std::os::fd::AsRawFd as _;
    let mut address = unix_address(path)?;
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

/// The calling thread's timer slack (`PR_SET_TIMERSLACK`): how late the kernel may fire its
/// sleeps' timers to batch wakeups (50 µs by default for a SCHED_OTHER thread, none for a
/// real-time one).
pub fn set_timer_slack(slack: Duration) -> io::Result<()> {
    let nanos = libc::c_ulong::try_from(slack.as_nanos())
        .unwrap_or(libc::c_ulong::MAX)
        .max(1);
    // SAFETY: PR_SET_TIMERSLACK takes the slack by value; no memory is passed.
    check(unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, nanos, 0, 0, 0) } as libc::c_long)?;
    Ok(())
}

/// The resource limits the booster reads of a task (see [`rlimit_of`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rlimit {
    /// RLIMIT_RTPRIO: the highest real-time priority it may set itself.
    RtPriority,
    /// RLIMIT_NICE: how far it may lower its own nice value (as 20 - nice).
    Nice,
}

/// The soft limit `which` of the process of thread `pid` (`prlimit(2)`, reading only; root
/// may read anyone's).
pub fn rlimit_of(pid: Pid, which: Rlimit) -> io::Result<u64> {
    let resource = match which {
        Rlimit::RtPriority => libc::RLIMIT_RTPRIO as libc::c_long,
        Rlimit::Nice => libc::RLIMIT_NICE as libc::c_long,
    };
    // The kernel's `struct rlimit64`: the soft limit, then the hard one.
    let mut limit = [0u64; 2];
    // SAFETY: a null new limit makes prlimit64 only read; `limit` is a writable pair of u64,
    // the layout of struct rlimit64, that outlives the call.
    check(unsafe {
        libc::syscall(
            libc::SYS_prlimit64,
            pid as libc::c_long,
            resource,
            std::ptr::null::<u64>(),
            limit.as_mut_ptr(),
        )
    })?;
    Ok(limit[0])
}

/// The calling thread alone (not its process, as glibc's `setresuid` would make it) takes
/// user and group `id`, losing root's capabilities: how `stalld-starve` makes an
/// unprivileged victim.
pub fn become_user_in_this_thread(id: u32) -> io::Result<()> {
    // SAFETY: the raw system calls take three ids by value and change only the calling
    // thread's credentials; no memory is passed.
    unsafe {
        check(libc::syscall(
            libc::SYS_setresgid,
            id as libc::c_long,
            id as libc::c_long,
            id as libc::c_long,
        ))?;
        check(libc::syscall(
            libc::SYS_setresuid,
            id as libc::c_long,
            id as libc::c_long,
            id as libc::c_long,
        ))?;
    }
    Ok(())
}

/// The calling thread becomes SCHED_OTHER (nice 0), whatever the process runs with: for
/// helper threads that must never compete with the detect-and-boost loop.
pub fn become_sched_other() -> io::Result<()> {
    sched_setattr(0, &SchedAttr::new(SCHED_OTHER))
}

/// For tests: the names in directory `dir` whose attributes (mode, owner) were changed while
/// `during` ran, as inotify reports them (`IN_ATTRIB`): whether something was changed through
/// a path, where a link could have been planted.
#[cfg(test)]
pub fn attributes_changed_during<T>(dir: &Path, during: impl FnOnce() -> T) -> (T, Vec<String>) {
    let dir = CString::new(dir.as_os_str().as_bytes()).expect("no NUL in a test path");
    // SAFETY: inotify_init1 takes flags and returns a new descriptor or -1.
    let fd =
        check(unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) } as libc::c_long)
            .expect("inotify_init1");
    // SAFETY: inotify_init1 just returned this descriptor, owned by nobody else.
    let inotify = unsafe { File::from_raw_fd(fd as RawFd) };
    // SAFETY: `dir` is NUL-terminated and outlives the call.
    check(
        unsafe { libc::inotify_add_watch(inotify.as_raw_fd(), dir.as_ptr(), libc::IN_ATTRIB) }
            as libc::c_long,
    )
    .expect("inotify_add_watch");
    let result = during();
    let mut names = Vec::new();
    let mut buffer = vec![0u8; 64 * 1024];
    let n = std::io::Read::read(&mut &inotify, &mut buffer).unwrap_or(0);
    let header = std::mem::size_of::<libc::inotify_event>();
    let mut at = 0;
    while at + header <= n {
        // SAFETY: the kernel wrote a whole inotify_event header at `at` (checked in bounds);
        // read_unaligned copes with the byte buffer's alignment.
        let event: libc::inotify_event = unsafe {
            std::ptr::read_unaligned(buffer[at..].as_ptr() as *const libc::inotify_event)
        };
        let name = &buffer[at + header..(at + header + event.len as usize).min(n)];
        let name = name.split(|&b| b == 0).next().unwrap_or_default();
        names.push(String::from_utf8_lossy(name).into_owned());
        at += header + event.len as usize;
    }
    (result, names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sched_attr_has_the_kernel_ver1_layout() {
        assert_eq!(std::mem::size_of::<SchedAttr>(), 56);
    }

    #[test]
    fn affinity_masks_reach_beyond_cpu_setsize() {
        let set = |list: &str| CpuSet::parse_list(list, u32::MAX).unwrap();
        let small = affinity_mask(&set("0,3"));
        assert_eq!(
            std::mem::size_of_val(small.as_slice()),
            std::mem::size_of::<libc::cpu_set_t>()
        );
        assert_eq!(small[0], 0b1001);
        // In the kernel's `unsigned long` words: 32 bits on i686, 64 elsewhere.
        let bits = libc::c_ulong::BITS as usize;
        let big = affinity_mask(&set("1,1024,4095"));
        assert_eq!(big.len(), 4096 / bits);
        assert_eq!(
            (big[0], big[1024 / bits], big[4095 / bits]),
            (2, 1, 1 << (4095 % bits))
        );
    }

    #[test]
    fn affinity_beyond_1024_cpus_is_an_error_or_works_never_a_panic() {
        let set = |list: &str| CpuSet::parse_list(list, u32::MAX).unwrap();
        let before = std::fs::read_to_string("/proc/thread-self/status").unwrap();
        let allowed = |status: &str| {
            status
                .lines()
                .find(|l| l.starts_with("Cpus_allowed_list:"))
                .unwrap()
                .to_string()
        };
        // Run in a thread of its own, so the test thread's affinity is left alone.
        std::thread::spawn(move || {
            // No CPU this machine has (it has fewer than 5000): refused.
            let error = set_affinity(0, &set("5000")).unwrap_err();
            assert_eq!(error.raw_os_error(), Some(libc::EINVAL), "{error}");
            // A CPU it has plus ones it has not: the real one is used.
            set_affinity(0, &set("0,1500,4095")).unwrap();
            let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
            assert_eq!(allowed(&status), "Cpus_allowed_list:\t0");
        })
        .join()
        .unwrap();
        let after = std::fs::read_to_string("/proc/thread-self/status").unwrap();
        assert_eq!(allowed(&before), allowed(&after));
    }

    #[test]
    fn getattr_reads_our_own_policy() {
        let attr = sched_getattr(0).expect("sched_getattr on ourselves");
        assert_eq!(attr.size, 56);
        assert!(policy_name(attr.policy) != "unknown policy");
    }

    #[test]
    fn memfd_is_executable_only_when_asked() {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |file: File| file.metadata().unwrap().permissions().mode() & 0o111;
        assert_ne!(mode(memfd_create("stalld-test", true).unwrap()), 0);
        let knows_noexec = memfd_create_with("stalld-test", libc::MFD_NOEXEC_SEAL).is_ok();
        if knows_noexec {
            assert_eq!(mode(memfd_create("stalld-test", false).unwrap()), 0);
        } else {
            eprintln!("SKIPPED: the kernel has no MFD_NOEXEC_SEAL (before 6.3)");
        }
    }

    #[test]
    fn wait_any_names_the_ready_fd_by_its_index_and_skips_absent_ones() {
        use std::io::Write as _;
        use std::os::fd::AsFd as _;
        let (quiet, _quiet_peer) = std::os::unix::net::UnixStream::pair().unwrap();
        let (ready, mut ready_peer) = std::os::unix::net::UnixStream::pair().unwrap();
        let short = Duration::from_millis(10);
        let watch = |second| {
            [
                (None, libc::POLLIN),
                (Some(quiet.as_fd()), libc::POLLIN),
                second,
            ]
        };
        assert_eq!(wait_any(watch((None, libc::POLLIN)), short).unwrap(), None);
        ready_peer.write_all(b"x").unwrap();
        assert_eq!(
            wait_any(watch((Some(ready.as_fd()), libc::POLLIN)), short).unwrap(),
            Some(2)
        );
    }
}
