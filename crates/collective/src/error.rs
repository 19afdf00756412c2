//! One error type for every failure a collective can meet, each naming the rank, address and
//! operation involved so that a user can tell which machine to look at.

use std::time::Duration;

/// What went wrong. Every variant is `Clone` so a failed communicator can hand the same error to
/// every pending and later operation.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CommError {
    /// A neighbour closed, reset or stopped answering on a link during an operation.
    #[error("{op}: rank {rank} ({addr}) {what}")]
    Peer {
        /// Operation and its number, e.g. `all_reduce #812`.
        op: String,
        /// Rank at the other end of the link.
        rank: usize,
        /// Its address.
        addr: String,
        /// What it did, e.g. `closed the connection`.
        what: String,
    },
    /// Another rank saw a failure and told us about it.
    #[error("{op}: {cause} (reported by rank {reported_by})")]
    Remote {
        /// Operation and its number.
        op: String,
        /// The failure as the reporting rank described it (it names the failed rank).
        cause: String,
        /// Rank the failed rank's number, when the reporter knew it.
        failed_rank: Option<usize>,
        /// Neighbour that forwarded the report.
        reported_by: usize,
    },
    /// A frame did not match the protocol (bad magic, wrong operation, oversized...).
    #[error("{op}: rank {rank} ({addr}) sent a bad frame: {detail}")]
    Protocol {
        /// Operation and its number.
        op: String,
        /// Rank that sent the frame.
        rank: usize,
        /// Its address.
        addr: String,
        /// What was wrong.
        detail: String,
    },
    /// Nothing moved on a link for longer than the data deadline.
    #[error("{op}: timed out after {waited:?} waiting for rank {rank} ({addr})")]
    Timeout {
        /// Operation and its number.
        op: String,
        /// Rank we were waiting for.
        rank: usize,
        /// Its address.
        addr: String,
        /// How long we waited without progress.
        waited: Duration,
    },
    /// `abort()` was called on this communicator.
    #[error("{op}: aborted by this process")]
    Aborted {
        /// Operation that was running or submitted.
        op: String,
    },
    /// Setting up the job failed: ranks missing, refused handshakes, ports in use.
    #[error("rendezvous: {0}")]
    Rendezvous(String),
    /// The arguments of a call do not fit the communicator (root out of range...).
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// An environment variable set by the launcher is missing or malformed.
    #[error("environment variable {var}: {detail}")]
    Env {
        /// Variable name.
        var: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The rank variables a launcher sets are missing, malformed or inconsistent.
    #[error(transparent)]
    WorkerEnv(#[from] crate::worker_env::WorkerEnvError),
    /// A local system call failed (shared memory, sockets).
    #[error("{0}")]
    Local(String),
}

impl CommError {
    /// The failed rank this error names, when it names one.
    pub fn failed_rank(&self) -> Option<usize> {
        match self {
            CommError::Peer { rank, .. }
            | CommError::Protocol { rank, .. }
            | CommError::Timeout { rank, .. } => Some(*rank),
            CommError::Remote { failed_rank, .. } => *failed_rank,
            _ => None,
        }
    }

    /// The failure without its operation prefix, as forwarded to other ranks.
    pub(crate) fn cause(&self) -> String {
        match self {
            CommError::Peer {
                rank, addr, what, ..
            } => format!("rank {rank} ({addr}) {what}"),
            CommError::Protocol {
                rank, addr, detail, ..
            } => format!("rank {rank} ({addr}) sent a bad frame: {detail}"),
            CommError::Timeout {
                rank, addr, waited, ..
            } => format!("rank {rank} ({addr}) sent nothing for {waited:?}"),
            CommError::Remote { cause, .. } => cause.clone(),
            other => other.to_string(),
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, CommError>;
