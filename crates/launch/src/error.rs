//! The launcher library's one error type, so that the binary (or any other caller) can report a
//! failed start the same way whichever step failed. Every message names the flag, variable, file
//! or host involved.

use std::io;

/// Why the launcher could not plan or start a job.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// A flag, variable or file says something the launcher cannot do; the message names it.
    #[error("{0}")]
    Setting(String),
    /// An operating-system call or file operation failed.
    #[error("{what}: {error}")]
    Io {
        /// What the launcher was doing (`cannot open worker log log/workerlog.0`).
        what: String,
        /// The system's error.
        error: io::Error,
    },
    /// Another host's launcher could not be reached, or answered out of turn.
    #[error("{0}")]
    Control(String),
}

impl LaunchError {
    /// Wraps an I/O error with what was being done, for `map_err`.
    pub fn io(what: impl Into<String>) -> impl FnOnce(io::Error) -> LaunchError {
        let what = what.into();
        move |error| LaunchError::Io { what, error }
    }
}

/// The launcher's result type.
pub type Result<T> = std::result::Result<T, LaunchError>;
