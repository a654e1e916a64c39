//! What stalld changes on the machine beside the boosts, and how all of it is put back
//! whatever kills the daemon: the ledger in /run/stalld (every change written down before it
//! is made), the guardian that replays it, RT throttling, and HRTICK.

pub mod guardian;
pub mod ledger;
pub mod rt_throttle;
pub mod sched_features;
