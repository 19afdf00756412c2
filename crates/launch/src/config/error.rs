//! Config errors: each names the file, or the key and the file that set it.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: invalid YAML: {msg}")]
    Yaml { path: PathBuf, msg: String },
    #[error("{path}: {msg}")]
    Structure { path: PathBuf, msg: String },
    #[error("{path}: _BASE_ include cycle: {chain}")]
    Cycle { path: PathBuf, chain: String },
    #[error("-o {arg}: {msg}")]
    Override { arg: String, msg: String },
    #[error("{key} (set in {origin}): {msg}")]
    Value {
        key: String,
        origin: String,
        msg: String,
    },
    #[error("{key}: missing from the config (and its _BASE_ files)")]
    Missing { key: String },
}
