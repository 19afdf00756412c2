//! What can go wrong saving or loading a checkpoint; every variant names the file.

use std::path::PathBuf;

/// A checkpoint error. Each names the file (and the tensor or field) it is about.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Reading, writing, renaming or syncing a file failed.
    #[error("{path}: {error}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error (in the message, not chained as a source: printed once).
        error: std::io::Error,
    },
    /// A file's content is not what a checkpoint writes (truncated, corrupt, wrong tensor or
    /// field).
    #[error("{path}: {msg}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the tensor or field.
        msg: String,
    },
    /// The set was never committed (no `.state.json`: a crash during its save) or its companions
    /// belong to different saves.
    #[error("{path}: incomplete checkpoint: {msg}")]
    Incomplete {
        /// The file that is missing or does not belong.
        path: PathBuf,
        /// Why.
        msg: String,
    },
    /// The checkpoint was written by a run whose setup differs from this one.
    #[error("{path}: cannot resume: the checkpoint was written with another setup: {}", differences.join("; "))]
    Incompatible {
        /// The `.state.json` holding the fingerprint.
        path: PathBuf,
        /// One line per differing setting: `key: checkpoint X, now Y`.
        differences: Vec<String>,
    },
    /// What was handed to `save` cannot be saved (buffer lengths that disagree with the layout).
    #[error("{path}: cannot save: {msg}")]
    Invalid {
        /// The file that would have held it.
        path: PathBuf,
        /// What disagrees.
        msg: String,
    },
    /// A checkpoint name or `-r` path that cannot name a checkpoint.
    #[error("checkpoint name {name:?}: {msg}")]
    BadName {
        /// The name or path as given.
        name: String,
        /// Why it is refused.
        msg: String,
    },
}

/// Result of the checkpoint module.
pub type Result<T> = std::result::Result<T, CheckpointError>;
