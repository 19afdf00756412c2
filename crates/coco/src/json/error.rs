//! The error of JSON loading: which file, which record and field, what was wrong, and where.

use std::fmt;

/// Loading a COCO JSON file failed.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// The file could not be opened or read.
    #[error("{file}: {error}")]
    Io {
        /// The path as given.
        file: String,
        /// The operating-system error (in the message, not chained as a source: printed once).
        error: std::io::Error,
    },
    /// The file is not valid JSON, or a record lacks a field or holds a wrong value.
    #[error("{0}")]
    Invalid(InvalidJson),
}

/// Where and why a file's content was rejected, e.g.
/// `val.json: annotations[1532].bbox: expected 4 numbers, got 3 (line 1, column 9120)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidJson {
    /// The file (or the name given to in-memory bytes).
    pub file: String,
    /// The record and field, e.g. `annotations[1532].bbox`; empty for the top level.
    pub location: String,
    /// What was wrong.
    pub message: String,
    /// 1-based line of the error in the file.
    pub line: usize,
    /// 1-based column of the error in that line.
    pub column: usize,
}

impl fmt::Display for InvalidJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.file)?;
        if !self.location.is_empty() {
            write!(f, "{}: ", self.location)?;
        }
        write!(
            f,
            "{} (line {}, column {})",
            self.message, self.line, self.column
        )
    }
}

/// Line and column (both 1-based) of byte `offset`.
pub(crate) fn line_column(bytes: &[u8], offset: usize) -> (usize, usize) {
    let head = &bytes[..offset.min(bytes.len())];
    let line = 1 + head.iter().filter(|&&b| b == b'\n').count();
    let line_start = head.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
    (line, head.len() - line_start + 1)
}

/// The message of a serde_json error without its " at line L column C" suffix.
pub(crate) fn bare_message(err: &serde_json::Error) -> String {
    let text = err.to_string();
    if err.line() == 0 {
        return text;
    }
    let suffix = format!(" at line {} column {}", err.line(), err.column());
    text.strip_suffix(&suffix).unwrap_or(&text).to_string()
}

/// Builds an [`InvalidJson`] at byte `offset` of `bytes`.
pub(crate) fn invalid(
    file: &str,
    bytes: &[u8],
    offset: usize,
    location: String,
    message: String,
) -> JsonError {
    let (line, column) = line_column(bytes, offset);
    JsonError::Invalid(InvalidJson {
        file: file.to_string(),
        location,
        message,
        line,
        column,
    })
}
