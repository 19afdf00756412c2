//! Config errors: each names the file, or the key and the file that set it.

use std::path::PathBuf;

/// Why a config could not be read or turned into a recipe.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// A file is not YAML.
    #[error("{path}: invalid YAML: {msg}")]
    Yaml {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        msg: String,
    },
    /// A file is YAML but not a config (a list at the top, a map key that is a list, ...).
    #[error("{path}: {msg}")]
    Structure {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// `_BASE_` includes form a cycle.
    #[error("{path}: _BASE_ include cycle: {chain}")]
    Cycle {
        /// The file that closes the cycle.
        path: PathBuf,
        /// Every file of the cycle, `a -> b -> a`.
        chain: String,
    },
    /// A `-o key=value` override is malformed.
    #[error("-o {arg}: {msg}")]
    Override {
        /// The override as given.
        arg: String,
        /// What is wrong.
        msg: String,
    },
    /// A value has the wrong type or is not supported.
    #[error("{key} (set in {origin}): {msg}")]
    Value {
        /// Dotted key.
        key: String,
        /// The file or override that set it.
        origin: String,
        /// What is wrong.
        msg: String,
    },
    /// A value the recipe needs is not set.
    #[error("{key}: missing from the config (and its _BASE_ files)")]
    Missing {
        /// Dotted key.
        key: String,
    },
    /// The recipe's values cannot build what was asked (a model, a schedule).
    #[error("{what}: {msg}")]
    Recipe {
        /// What was being built, with the keys it comes from.
        what: &'static str,
        /// What is wrong.
        msg: String,
    },
}
