//! Other stalld instances that boost on this host (ours, or the C stalld).
//!
//! Two boosting instances fight: each turns RT throttling off and the first to exit puts it
//! back under the other, which goes on boosting with throttling on; each may boost a task the
//! other boosted, and restore it while the other still counts on the boost. So a boosting
//! daemon refuses to start next to another one, unless told otherwise
//! (`--allow_other_instances`), or stands aside (`--stand_aside`: a Kubernetes pod with the
//! host's PID namespace beside a stalld the host runs); `stalld check` names them too.
//!
//! Found by their processes (`/proc/PID/comm` or argv[0] named `stalld`, alive) and by the
//! pid files the C stalld's unit and ours use; what each was started with tells whether it
//! boosts: `-l`, the subcommands (`stalld status`, `check`, `restore`, ...) and `throttlectl`
//! do not, nor does the guardian (`stalld-guardian`). A command line that cannot be read as
//! stalld's counts as boosting unless it says `-l`.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::cli::{self, Command};
use crate::procfs::{self, ThreadStat};
use crate::task::{escape_name, Pid};

/// The exit status of a daemon that refuses to start because another one boosts (EBUSY; a
/// second instance refused by the pid file's lock exits with it too).
pub const EXIT_ANOTHER_INSTANCE: u8 = 16;

/// The pid files of a stalld run by a unit: ours and the C stalld's (`PF` in the sysconfig
/// file), and the C stalld's older default.
pub const PID_FILES: [&str; 2] = ["/run/stalld/stalld.pid", "/run/stalld.pid"];

const NAME: &str = "stalld";

/// The guardian's `argv[0]` and `/proc/PID/comm` (see `restore::guardian`): a process of that
/// name is never a boosting stalld.
pub const GUARDIAN_NAME: &str = "stalld-guardian";

/// How another instance was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FoundBy {
    Process,
    PidFile(PathBuf),
}

/// A stalld that boosts, other than the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtherInstance {
    pub pid: Pid,
    pub found_by: FoundBy,
    /// Its command line, escaped (anyone may start a process named stalld).
    pub command: String,
}

impl std::fmt::Display for OtherInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {}: {}", self.pid, self.command)?;
        if let FoundBy::PidFile(path) = &self.found_by {
            write!(f, ", named by {}", path.display())?;
        }
        Ok(())
    }
}

/// Why a daemon did not start: another one boosts (or holds its pid file).
#[derive(Debug)]
pub struct AnotherInstance(pub String);

impl std::fmt::Display for AnotherInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for AnotherInstance {}

/// The process's exit status for an error of `run`: [`EXIT_ANOTHER_INSTANCE`] when another
/// stalld was in the way, 1 otherwise.
pub fn exit_code(error: &anyhow::Error) -> u8 {
    if error.downcast_ref::<AnotherInstance>().is_some() {
        EXIT_ANOTHER_INSTANCE
    } else {
        1
    }
}

/// The daemon's refusal when `others` boost.
pub fn refusal(others: &[OtherInstance]) -> AnotherInstance {
    AnotherInstance(format!(
        "another stalld boosts on this host ({}): two would fight over RT throttling and over the boosts; stop it, or start this one with --allow_other_instances",
        describe(others)
    ))
}

/// `others`, each with its pid, command line and how it was found, in one line.
pub fn describe(others: &[OtherInstance]) -> String {
    let list: Vec<String> = others.iter().map(ToString::to_string).collect();
    list.join("; ")
}

/// Every stalld that boosts on this host, except this process, its ancestors (a wrapper
/// named stalld) and `ignore`.
pub fn boosting_instances(ignore: &[Pid]) -> Vec<OtherInstance> {
    let mut skip: Vec<Pid> = ignore.to_vec();
    skip.extend(ancestors_and_self());
    let mut found = Vec::new();
    let pids = std::fs::read_dir("/proc")
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<Pid>().ok())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    for pid in pids {
        let named = std::fs::read(format!("/proc/{pid}/comm"))
            .is_ok_and(|comm| comm.strip_suffix(b"\n").unwrap_or(&comm) == NAME.as_bytes());
        if named && !skip.contains(&pid) {
            if let Some(instance) = examine(pid, FoundBy::Process) {
                found.push(instance);
            }
        }
    }
    for path in PID_FILES {
        let Some(pid) = pid_in(Path::new(path)) else {
            continue;
        };
        if skip.contains(&pid) || found.iter().any(|other| other.pid == pid) {
            continue;
        }
        if let Some(instance) = examine(pid, FoundBy::PidFile(path.into())) {
            found.push(instance);
        }
    }
    found
}

/// `pid` as another instance, if it is a live stalld that boosts.
fn examine(pid: Pid, found_by: FoundBy) -> Option<OtherInstance> {
    let stat = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    let state = ThreadStat::parse(&stat)?.field(3)?.to_owned();
    if matches!(state.as_str(), "Z" | "X" | "x") || !could_boost(pid) {
        return None;
    }
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    // Empty: a process on its way out (its memory, where the command line lives, is gone
    // before it is a zombie), e.g. a `stalld -h` of a test that ends right now; read as no
    // arguments it would pass for a boosting daemon.
    if cmdline.is_empty() {
        return None;
    }
    let argv: Vec<&[u8]> = cmdline
        .strip_suffix(b"\0")
        .unwrap_or(&cmdline)
        .split(|&b| b == 0)
        .collect();
    let comm = std::fs::read(format!("/proc/{pid}/comm")).ok()?;
    let program = argv.first().map(|arg0| basename(arg0)).unwrap_or_default();
    if comm.strip_suffix(b"\n").unwrap_or(&comm) != NAME.as_bytes() && program != NAME.as_bytes() {
        // A pid file naming a pid that another program has by now.
        return None;
    }
    if !boosts(program, argv.get(1..).unwrap_or_default()) {
        return None;
    }
    let command: Vec<String> = argv.iter().map(|arg| escape_name(arg)).collect();
    Some(OtherInstance {
        pid,
        found_by,
        command: command.join(" "),
    })
}

/// Whether process `pid` holds the privilege boosting needs: it is root as this process's user
/// namespace sees it, or has CAP_SYS_NICE in this very user namespace. Any user can start a
/// process named stalld, and give it uid 0 and every capability inside a user namespace of
/// its own; such a process can change no other task's policy, and must not keep the real
/// stalld from starting.
fn could_boost(pid: Pid) -> bool {
    const CAP_SYS_NICE: u64 = 1 << 23;
    let Ok(status) = std::fs::read(format!("/proc/{pid}/status")) else {
        return false;
    };
    if procfs::status_effective_uid(&status) == Some(0) {
        return true;
    }
    let identity = |path: String| std::fs::metadata(path).map(|m| (m.dev(), m.ino())).ok();
    let same_user_namespace = identity(format!("/proc/{pid}/ns/user"))
        .is_some_and(|theirs| identity("/proc/self/ns/user".into()) == Some(theirs));
    same_user_namespace
        && procfs::status_effective_capabilities(&status)
            .is_some_and(|caps| caps & CAP_SYS_NICE != 0)
}

/// Whether a process run as `program` with `args` boosts.
fn boosts(program: &[u8], args: &[&[u8]]) -> bool {
    if program == b"throttlectl" || program == GUARDIAN_NAME.as_bytes() {
        return false;
    }
    let args: Vec<OsString> = args
        .iter()
        .map(|arg| OsString::from_vec(arg.to_vec()))
        .collect();
    match cli::parse(args.clone()) {
        Ok(Command::Run(config)) => config.boosting().is_some(),
        Ok(_) => false,
        // Not a command line of ours: boosting unless it clearly says -l.
        Err(_) => !args.iter().any(|arg| {
            let arg = arg.to_string_lossy();
            arg == "--log_only"
                || (arg.starts_with('-') && !arg.starts_with("--") && arg[1..].contains('l'))
        }),
    }
}

fn basename(path: &[u8]) -> &[u8] {
    path.rsplit(|&b| b == b'/').next().unwrap_or(path)
}

/// The pid written in the pid file at `path`, if any.
fn pid_in(path: &Path) -> Option<Pid> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut text = String::new();
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .ok()?
        .take(32)
        .read_to_string(&mut text)
        .ok()?;
    text.trim().parse().ok().filter(|&pid| pid > 0)
}

/// This process and every process it descends from.
fn ancestors_and_self() -> Vec<Pid> {
    let mut pids = vec![std::process::id() as Pid];
    let mut pid = std::process::id() as Pid;
    while pid > 1 && pids.len() < 4096 {
        let Some(parent) = std::fs::read(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| ThreadStat::parse(&stat)?.field(4)?.parse::<Pid>().ok())
        else {
            break;
        };
        if parent <= 0 {
            break;
        }
        pids.push(parent);
        pid = parent;
    }
    pids
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<Vec<u8>> {
        list.iter().map(|arg| arg.as_bytes().to_vec()).collect()
    }

    fn boosting(program: &str, list: &[&str]) -> bool {
        let owned = args(list);
        let borrowed: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
        boosts(program.as_bytes(), &borrowed)
    }

    #[test]
    fn what_a_command_line_says_about_boosting() {
        // The C stalld's unit, and ours.
        assert!(boosting(
            "stalld",
            &[
                "--systemd",
                "-t",
                "20",
                "--log_syslog",
                "--foreground",
                "--pidfile",
                "/run/stalld/stalld.pid"
            ]
        ));
        assert!(boosting("stalld", &[]));
        assert!(boosting("stalld", &["-f", "-v", "-F"]));
        for log_only in [&["-l"][..], &["-f", "--log_only"], &["-fvl"]] {
            assert!(!boosting("stalld", log_only), "{log_only:?}");
        }
        for tool in [
            &["status"][..],
            &["check", "-t", "5"],
            &["restore"],
            &["throttle", "on"],
            &["-h"],
        ] {
            assert!(!boosting("stalld", tool), "{tool:?}");
        }
        assert!(!boosting("throttlectl", &["on"]));
        assert!(!boosting("stalld-guardian", &["/run/stalld/instance.1.2"]));
        // Options of some other version: boosting, unless they say -l.
        assert!(boosting("stalld", &["--unknown-option"]));
        assert!(!boosting("stalld", &["--unknown-option", "-l"]));
    }

    #[test]
    fn a_pid_file_names_a_pid_or_nothing() {
        let dir = crate::daemon::process::shared_dir::scratch("instances-pid-file");
        for (text, pid) in [
            ("42\n", Some(42)),
            ("42", Some(42)),
            ("", None),
            ("-3\n", None),
            ("x", None),
        ] {
            std::fs::write(dir.join("p"), text).unwrap();
            assert_eq!(pid_in(&dir.join("p")), pid, "{text:?}");
        }
        assert_eq!(pid_in(&dir.join("missing")), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A process named stalld (a shell script of that name, waiting on its stdin) is found,
    /// with what it was started with, when it runs as root; run with `-l` it is not (it only
    /// logs); nor is one any user could start (an unprivileged user's, also when it is root with
    /// every capability in a user namespace of its own: it could boost nothing, and must not
    /// keep stalld from starting); this process and its ancestors never are.
    #[test]
    fn a_privileged_process_named_stalld_is_found_unless_it_only_logs() {
        use std::os::unix::fs::PermissionsExt;
        let dir = crate::daemon::process::shared_dir::scratch("instances-process");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let fake = dir.join("stalld");
        std::fs::write(&fake, "#!/bin/sh\nread line\n").unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        // `launcher` runs the fake with `args`; None once it has run as stalld (exec done).
        let start = |launcher: &[&str], args: &[&str]| {
            let mut command = match launcher.split_first() {
                Some((program, rest)) => {
                    let mut command = std::process::Command::new(program);
                    command.args(rest).arg(&fake);
                    command
                }
                None => std::process::Command::new(&fake),
            };
            let child = command
                .args(args)
                .stdin(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while std::fs::read_to_string(format!("/proc/{}/comm", child.id())).unwrap_or_default()
                != "stalld\n"
            {
                assert!(
                    std::time::Instant::now() < deadline,
                    "{launcher:?} never ran the fake stalld"
                );
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            child
        };
        let is_found = |child: &std::process::Child| {
            boosting_instances(&[])
                .iter()
                .any(|other| other.pid == child.id() as Pid)
        };
        let stop = |mut child: std::process::Child| {
            let _ = child.kill();
            let _ = child.wait();
        };
        let unprivileged: &[&str] = &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ];
        if crate::sys::is_root() {
            let boosting = start(&[], &["-t", "20"]);
            let found = boosting_instances(&[]);
            let ours = found.iter().find(|other| other.pid == boosting.id() as Pid);
            assert!(ours.is_some(), "{found:?}");
            assert!(ours.unwrap().command.ends_with("/stalld -t 20"), "{ours:?}");
            assert_eq!(ours.unwrap().found_by, FoundBy::Process);
            assert!(!boosting_instances(&[boosting.id() as Pid])
                .iter()
                .any(|other| other.pid == boosting.id() as Pid));
            stop(boosting);
            let logging = start(&[], &["-t", "20", "-l"]);
            assert!(!is_found(&logging), "a -l instance counted as boosting");
            stop(logging);
            let nobody = start(unprivileged, &["-t", "20"]);
            assert!(!is_found(&nobody), "an unprivileged user's process counted");
            stop(nobody);
            let in_own_namespace =
                [unprivileged, &["unshare", "--user", "--map-root-user"]].concat();
            // A chroot (a distribution's build root: the .deb's dh_auto_test) may create no
            // user namespace at all; CI's scripts/test runs this case.
            let namespaces_allowed = std::process::Command::new(in_own_namespace[0])
                .args(&in_own_namespace[1..])
                .arg("true")
                .status()
                .is_ok_and(|status| status.success());
            if namespaces_allowed {
                let namespaced = start(&in_own_namespace, &["-t", "20"]);
                assert!(
                    !is_found(&namespaced),
                    "root of a user namespace of its own counted"
                );
                stop(namespaced);
            } else {
                eprintln!(
                    "SKIPPED: the root-of-its-own-user-namespace case (unshare --user is refused here)"
                );
            }
        } else {
            eprintln!(
                "SKIPPED (not root): a root process named stalld being found; only an unprivileged one being ignored is checked"
            );
            let mine = start(&[], &["-t", "20"]);
            assert!(!is_found(&mine), "an unprivileged user's process counted");
            stop(mine);
        }
        assert!(!boosting_instances(&[])
            .iter()
            .any(|other| other.pid == std::process::id() as Pid));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
