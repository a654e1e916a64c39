//! Who held the CPU when a task starved there: the run queue's current task at that check,
//! read from /proc at once (it may exit any moment; then there is no culprit to name).

use crate::event::Culprit;
use crate::sys;
use crate::task::{Comm, Pid};

/// The task `pid` as a culprit; `None` when it is gone or is no task (pid 0: idle).
pub fn describe(pid: Pid) -> Option<Culprit> {
    if pid <= 0 {
        return None;
    }
    let comm = std::fs::read(format!("/proc/{pid}/comm")).ok()?;
    let attr = sys::sched_getattr(pid).ok()?;
    let priority = match attr.policy {
        sys::SCHED_FIFO | sys::SCHED_RR => attr.rt_priority as i32,
        _ => attr.nice,
    };
    Some(Culprit {
        pid,
        // The kernel ends the name with a newline; the name itself may hold one.
        comm: Comm::new(comm.strip_suffix(b"\n").unwrap_or(&comm)),
        policy: attr.policy,
        priority,
        cgroup: std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
            .ok()
            .and_then(|text| cgroup_path(&text)),
    })
}

/// The unified (v2) hierarchy's path (`0::/path`), else the first controller's path.
fn cgroup_path(text: &str) -> Option<String> {
    let paths = text.lines().filter_map(|line| {
        let mut fields = line.splitn(3, ':');
        let id = fields.next()?;
        let _controllers = fields.next()?;
        Some((id, fields.next()?))
    });
    let mut first = None;
    for (id, path) in paths {
        if id == "0" {
            return Some(path.to_owned());
        }
        first.get_or_insert_with(|| path.to_owned());
    }
    first
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_prefers_the_unified_hierarchy() {
        assert_eq!(
            cgroup_path("0::/system.slice/x.service\n").as_deref(),
            Some("/system.slice/x.service")
        );
        assert_eq!(
            cgroup_path("12:cpu,cpuacct:/a\n0::/b\n").as_deref(),
            Some("/b")
        );
        assert_eq!(cgroup_path("4:memory:/m\n").as_deref(), Some("/m"));
        assert_eq!(cgroup_path(""), None);
    }

    #[test]
    fn ourselves_as_a_culprit() {
        let me = sys::gettid();
        let culprit = describe(me).expect("we are a task");
        assert_eq!(culprit.pid, me);
        assert!(!culprit.comm.as_bytes().is_empty());
        assert_eq!(describe(0), None);
        assert_eq!(describe(-3), None);
    }
}
