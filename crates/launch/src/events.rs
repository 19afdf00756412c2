//! Everything the launcher's main loop reacts to, funnelled into one channel: worker exits (from
//! the reaper), signals (from the self-pipe) and control-channel messages (from reader threads).

use super::failure::ExitKind;
use super::wire::Msg;

/// One thing that happened.
#[derive(Debug)]
pub enum Event {
    /// A local worker ended.
    WorkerExited {
        /// Its pid (0: it could not be started).
        pid: u32,
        /// How it ended.
        kind: ExitKind,
        /// When, in ms since the Unix epoch.
        at_ms: u64,
    },
    /// The launcher received SIGINT, SIGTERM or SIGHUP.
    Signal(i32),
    /// (first host) A message from node `node`'s launcher.
    FromNode(usize, Msg),
    /// (first host) Node `node`'s launcher disconnected or went silent.
    NodeLost(usize, String),
    /// (other hosts) A message from the first host's launcher.
    FromCoordinator(Msg),
    /// (other hosts) The first host's launcher disconnected or went silent.
    CoordinatorLost(String),
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
