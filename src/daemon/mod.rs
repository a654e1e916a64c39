//! The daemon shell, by concern; each layer imports only those below it (checked by
//! `tests/imports.rs`):
//!
//! - `run`: the daemon's life (set-up in order, the loop, the way out);
//! - `monitor/`: the loop that checks the run queues and hands what starves to the booster;
//! - `observe/` (what the operator and systemd see: telemetry, metrics, `stalld status`,
//!   the health of the checks, sd_notify) and `restore/` (what stalld changes on the machine,
//!   written down and put back: the ledger, the guardian, RT throttling, HRTICK), which never
//!   import each other;
//! - `log/`: the logger and its sinks, which everything above uses;
//! - `process/`: the daemon as a process among others (pid file, other instances, signals,
//!   /run/stalld, files in directories others can write).

mod log;
mod monitor;
mod observe;
mod process;
mod restore;
mod run;

pub use log::journal::{Journal, SOCKET_ENV as JOURNAL_SOCKET_ENV};
pub use log::{Delivery, Logger, Sinks, SYSLOG_SOCKET_ENV};
pub use observe::status::{
    client as status_client, socket_path as status_socket_path, EXIT_NOT_RUNNING, EXIT_REFUSED,
    SOCKET_ENV as STATUS_SOCKET_ENV,
};
pub use process::instances::{
    boosting_instances, exit_code, FoundBy, OtherInstance, EXIT_ANOTHER_INSTANCE,
};
pub use restore::guardian::main as guardian_main;
pub use restore::guardian::NAME as GUARDIAN_NAME;
pub use restore::rt_throttle::{restore_leftovers, throttlectl};
pub use restore::sched_features::hrtick_state;
pub use run::run;
