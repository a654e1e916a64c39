//! Whether a starving task is boosted: one pure rule over what is known of the task and the
//! configuration, so every reason a task is left alone is named, in one place, and tested
//! without root. The daemon gathers the facts (the booster's [`Standing`] of the task, its
//! process name when a rule needs it), asks [`decide`], and either applies the boost or
//! reports the [`Skip`].
//!
//! The order of the rules is the order of the C stalld's checks, and it decides what is said:
//! a task that is not a starving task at all (the idle task, stalld itself, a task holding our
//! boost) is not even reported starving; in log-only mode nothing more is said; a denylisted
//! task is said to be ignored before anything about its policy is.

use crate::config::{BoostMode, Config, Denylist};
use crate::event::Ignored;
use crate::sys::SCHED_DEADLINE;
use crate::task::{Comm, Pid};

/// What the configuration says about boosting.
#[derive(Clone, Copy, Debug)]
pub struct Rules<'a> {
    /// stalld's own pid: it never boosts itself.
    pub own_pid: Pid,
    /// Boost, or (`-l`) report and never boost.
    pub boost_mode: BoostMode,
    /// `-i`: thread names never boosted.
    pub ignore_threads: &'a Denylist,
    /// `-I`: process names whose threads are never boosted.
    pub ignore_processes: &'a Denylist,
}

impl<'a> Rules<'a> {
    /// The rules `config` sets, for the daemon whose pid is `own_pid`: a new rule's option
    /// comes in here and in [`decide`], nowhere else in the daemon.
    pub fn of(config: &'a Config, own_pid: Pid) -> Rules<'a> {
        Rules {
            own_pid,
            boost_mode: config.boost_mode,
            ignore_threads: &config.ignore_threads,
            ignore_processes: &config.ignore_processes,
        }
    }

    /// Whether [`decide`] needs the task's process name (it costs a /proc read).
    pub fn needs_process(&self) -> bool {
        self.boost_mode == BoostMode::Boost && !self.ignore_processes.is_empty()
    }
}

/// What the booster knows of a task (see [`super::Booster::inspect`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Standing {
    /// It holds one of our boosts now, or its restore is being retried.
    pub boosted: bool,
    /// Our ledger keeps a record of it that a replay could not undo: it may still hold the
    /// boost of a stalld that is gone, whose attributes the record keeps.
    pub kept: bool,
    /// Its scheduling policy, when it could be read (else the boost will fail and say why).
    pub policy: Option<u32>,
}

/// A starving task, as the rule sees it.
#[derive(Clone, Copy, Debug)]
pub struct Candidate<'a> {
    pub pid: Pid,
    pub comm: Comm,
    /// Its process's name: `None` when the rules do not need it or it cannot be read.
    pub process: Option<&'a Comm>,
    pub standing: Standing,
}

/// Why a starving task is not boosted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Skip {
    /// The idle task (pid 0), or stalld itself: not a task to report.
    NotATask,
    /// It holds our boost already (or its restore is retried): not reported again.
    AlreadyBoosted,
    /// `-l`: reported, never boosted.
    LogOnly,
    /// A denylist names it.
    Ignored(Ignored),
    /// The ledger keeps a record of it a replay could not undo: boosting it again would
    /// record the boost's attributes as its own.
    Kept,
    /// It runs with SCHED_DEADLINE already: a boost would only shrink its reservation.
    AlreadyDeadline,
}

impl Skip {
    /// Whether the task is still reported starving: everything but what is not a starving
    /// task of its own.
    pub fn reports_starvation(&self) -> bool {
        !matches!(self, Skip::NotATask | Skip::AlreadyBoosted)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Boost,
    Skip(Skip),
}

/// The rule: whether `task` is boosted under `rules`, or why not.
pub fn decide(task: &Candidate<'_>, rules: &Rules<'_>) -> Decision {
    let skip = if task.pid == 0 || task.pid == rules.own_pid {
        Skip::NotATask
    } else if task.standing.boosted {
        Skip::AlreadyBoosted
    } else if rules.boost_mode == BoostMode::LogOnly {
        Skip::LogOnly
    } else if rules.ignore_threads.matches(&task.comm.to_str_lossy()) {
        Skip::Ignored(Ignored::Thread)
    } else if let Some(process) = task
        .process
        .filter(|process| rules.ignore_processes.matches(&process.to_str_lossy()))
    {
        Skip::Ignored(Ignored::Process(*process))
    } else if task.standing.kept {
        Skip::Kept
    } else if task.standing.policy == Some(SCHED_DEADLINE) {
        Skip::AlreadyDeadline
    } else {
        return Decision::Boost;
    };
    Decision::Skip(skip)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::{SCHED_FIFO, SCHED_OTHER};
    use regex::Regex;

    fn denylist(patterns: &[&str]) -> Denylist {
        Denylist(patterns.iter().map(|p| Regex::new(p).unwrap()).collect())
    }

    const FREE: Standing = Standing {
        boosted: false,
        kept: false,
        policy: Some(SCHED_FIFO),
    };

    fn candidate<'a>(pid: Pid, comm: &[u8], process: Option<&'a Comm>) -> Candidate<'a> {
        Candidate {
            pid,
            comm: Comm::new(comm),
            process,
            standing: FREE,
        }
    }

    #[test]
    fn a_free_starving_task_is_boosted_and_each_rule_names_its_skip() {
        let none = Denylist::default();
        let threads = denylist(&["^ksoftirqd"]);
        let processes = denylist(&["^starve"]);
        let rules = Rules {
            own_pid: 100,
            boost_mode: BoostMode::Boost,
            ignore_threads: &threads,
            ignore_processes: &processes,
        };
        let starver = Comm::new(b"starve-app");
        let other = Comm::new(b"app");
        let decide_for = |task: Candidate<'_>| decide(&task, &rules);
        assert_eq!(
            decide_for(candidate(7, b"kworker/1:2", Some(&other))),
            Decision::Boost
        );
        assert_eq!(
            decide_for(candidate(0, b"swapper/1", None)),
            Decision::Skip(Skip::NotATask)
        );
        assert_eq!(
            decide_for(candidate(100, b"stalld", None)),
            Decision::Skip(Skip::NotATask)
        );
        assert_eq!(
            decide_for(candidate(7, b"ksoftirqd/1", Some(&starver))),
            Decision::Skip(Skip::Ignored(Ignored::Thread)),
            "the thread's name is matched first"
        );
        assert_eq!(
            decide_for(candidate(7, b"worker", Some(&starver))),
            Decision::Skip(Skip::Ignored(Ignored::Process(starver)))
        );
        // A process name that could not be read matches no -I pattern.
        assert_eq!(decide_for(candidate(7, b"worker", None)), Decision::Boost);
        let with = |standing: Standing| Candidate {
            standing,
            ..candidate(7, b"worker", Some(&other))
        };
        assert_eq!(
            decide_for(with(Standing {
                boosted: true,
                ..FREE
            })),
            Decision::Skip(Skip::AlreadyBoosted)
        );
        assert_eq!(
            decide_for(with(Standing { kept: true, ..FREE })),
            Decision::Skip(Skip::Kept)
        );
        assert_eq!(
            decide_for(with(Standing {
                policy: Some(SCHED_DEADLINE),
                ..FREE
            })),
            Decision::Skip(Skip::AlreadyDeadline)
        );
        // Unreadable: the boost is tried, and its failure says why.
        assert_eq!(
            decide_for(with(Standing {
                policy: None,
                ..FREE
            })),
            Decision::Boost
        );
        let plain = Rules {
            ignore_threads: &none,
            ignore_processes: &none,
            ..rules
        };
        assert!(!plain.needs_process());
        assert!(rules.needs_process());
        assert_eq!(
            decide(&candidate(7, b"ksoftirqd/1", None), &plain),
            Decision::Boost
        );
    }

    #[test]
    fn the_rules_are_the_configurations() {
        let config = match crate::cli::parse(["-l", "-i", "^kw", "-I", "^app"]) {
            Ok(crate::cli::Command::Run(config)) => *config,
            other => panic!("{other:?}"),
        };
        let rules = Rules::of(&config, 42);
        assert_eq!(rules.boost_mode, BoostMode::LogOnly);
        assert_eq!(rules.own_pid, 42);
        assert!(rules.ignore_threads.matches("kworker/1:2"));
        assert!(rules.ignore_processes.matches("app-main"));
        assert!(!rules.ignore_processes.matches("kworker/1:2"));
    }

    /// Log-only reports every starving task (as the C stalld's -l) and boosts none, whatever
    /// the denylists or the policy say; what is not a starving task is not reported at all.
    #[test]
    fn log_only_skips_every_task_but_still_reports_it() {
        let threads = denylist(&[".*"]);
        let rules = Rules {
            own_pid: 100,
            boost_mode: BoostMode::LogOnly,
            ignore_threads: &threads,
            ignore_processes: &threads,
        };
        assert!(!rules.needs_process());
        for policy in [Some(SCHED_OTHER), Some(SCHED_DEADLINE), None] {
            let task = Candidate {
                standing: Standing { policy, ..FREE },
                ..candidate(7, b"worker", None)
            };
            let decision = decide(&task, &rules);
            assert_eq!(decision, Decision::Skip(Skip::LogOnly));
        }
        assert!(Skip::LogOnly.reports_starvation());
        assert!(Skip::Ignored(Ignored::Thread).reports_starvation());
        assert!(!Skip::NotATask.reports_starvation());
        assert!(!Skip::AlreadyBoosted.reports_starvation());
        let ours = Candidate {
            standing: Standing {
                boosted: true,
                ..FREE
            },
            ..candidate(7, b"worker", None)
        };
        assert_eq!(decide(&ours, &rules), Decision::Skip(Skip::AlreadyBoosted));
    }
}
