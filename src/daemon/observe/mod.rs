//! What the operator and systemd see of the running daemon: the telemetry the loop owns and
//! publishes, the metrics and `stalld status` listeners that read what it publishes, whether
//! the checks are healthy, and sd_notify. Nothing here changes the machine or runs the loop.

pub mod health;
pub mod listen;
pub mod metrics;
pub mod notify;
pub mod status;
pub mod telemetry;
