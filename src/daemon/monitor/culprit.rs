//! Who held the CPU when a task starved there: the run queue's current task at that check,
//! read from /proc at once (it may exit any moment; then there is no culprit to name).

use crate::event::Culprit;
use crate::sys;
use crate::task::{Pid, RunQueue};

/// Who holds `run_queue`'s CPU while `victim` starves there. Normally the running task; but
/// when that is stalld itself (the fair server lets it run there now and then, and its own
/// scan may be what runs), the hog is the waiting task of best priority other than the victim.
pub fn on(run_queue: &RunQueue, victim: Pid) -> Option<Culprit> {
    pick(run_queue, victim, is_own_thread).and_then(describe)
}

fn pick(run_queue: &RunQueue, victim: Pid, is_own: impl Fn(Pid) -> bool) -> Option<Pid> {
    match run_queue.current {
        Some(pid) if pid > 0 && !is_own(pid) => Some(pid),
        _ => run_queue
            .waiting
            .iter()
            .filter(|task| task.pid != victim && !is_own(task.pid))
            .min_by_key(|task| task.prio)
            .map(|task| task.pid),
    }
}

fn is_own_thread(pid: Pid) -> bool {
    std::path::Path::new(&format!("/proc/self/task/{pid}")).exists()
}

/// The task `pid` as a culprit; `None` when it is gone or is no task (pid 0: idle).
pub fn describe(pid: Pid) -> Option<Culprit> {
    if pid <= 0 {
        return None;
    }
    let comm = crate::procfs::read_comm(pid)?;
    let attr = sys::sched_getattr(pid).ok()?;
    let priority = match attr.policy {
        sys::SCHED_FIFO | sys::SCHED_RR => attr.rt_priority as i32,
        _ => attr.nice,
    };
    Some(Culprit {
        pid,
        comm,
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
    use crate::task::Comm;

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
    fn the_running_task_unless_it_is_stalld_then_the_best_waiter() {
        use crate::task::WaitingTask;
        let waiter = |pid, prio| WaitingTask {
            pid,
            tgid: None,
            comm: Comm::new(b"t"),
            prio,
            switches: 0,
            queued_at: None,
        };
        let run_queue = RunQueue {
            cpu: 1,
            current: Some(7),
            nr_rt_running: 3,
            // The victim (FIFO 5 = prio 94), the preempted hog (FIFO 10 = 89), a fair task.
            waiting: vec![waiter(3, 94), waiter(4, 89), waiter(5, 120)],
        };
        assert_eq!(pick(&run_queue, 3, |_| false), Some(7));
        assert_eq!(pick(&run_queue, 3, |pid| pid == 7), Some(4));
        let idle = RunQueue {
            current: None,
            waiting: vec![waiter(3, 94)],
            ..run_queue
        };
        assert_eq!(pick(&idle, 3, |_| false), None);
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
