//! The daemon as a process among others: its pid file, the other stalld instances on the
//! host, its signals, its run directory, and files at paths in directories others can write.
//! Below everything else in the daemon: nothing here logs, observes or restores.

pub mod instances;
pub mod pidfile;
pub mod rundir;
pub mod shared_dir;
pub mod signals;
