//! stalld: finds threads starving on a CPU run queue and gives them a short, bounded boost.
//!
//! The data flows one way: a [`backend`] snapshots the run queues, the pure [`detect`]or
//! decides who is starving, the [`boost`]er lends them SCHED_DEADLINE for a while, and the
//! [`daemon`] shell drives the loop. [`sys`] holds the system-call wrappers.

pub mod backend;
pub mod boost;
pub mod check;
pub mod cli;
pub mod clock;
pub mod config;
pub mod cpuset;
pub mod daemon;
pub mod detect;
pub mod event;
pub mod mounts;
pub mod procfs;
pub mod rt_runtime;
pub mod sys;
pub mod task;
