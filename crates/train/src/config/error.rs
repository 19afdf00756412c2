//! Config errors: each names the file, or the key and the file that set it.

use std::path::PathBuf;

/// Why a config could not be read or turned into a recipe.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The system's error (already in the message, so not chained as a source).
        error: std::io::Error,
    },
    /// A `_BASE_` include could not be read.
    #[error("{including}: _BASE_ {base}: cannot read {resolved}: {error}")]
    Base {
        /// The file whose `_BASE_` names it.
        including: PathBuf,
        /// The name as written in `_BASE_`.
        base: String,
        /// The path it resolves to, relative to the including file's folder.
        resolved: PathBuf,
        /// The system's error (already in the message, so not chained as a source).
        error: std::io::Error,
    },
    /// A tag that would make PaddleDetection build a Python object (`!!python/object:...`);
    /// refused rather than dropped.
    #[error(
        "{path}:{line}: the tag {tag} is not supported (only PaddleDetection's own `!Name` tags and YAML's core tags are)"
    )]
    Tag {
        /// The file.
        path: PathBuf,
        /// Its line, from 1.
        line: usize,
        /// The tag as written.
        tag: String,
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
