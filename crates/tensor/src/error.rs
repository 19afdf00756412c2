//! The one error type of the tensor crate: every failure names what was asked and what was found.

use crate::DType;
use std::path::PathBuf;

/// Everything that can go wrong in `ringdet-tensor`.
#[derive(Debug, thiserror::Error)]
pub enum TensorError {
    /// Two shapes that had to agree did not.
    #[error("{op}: shape mismatch: {lhs:?} vs {rhs:?}")]
    ShapeMismatch {
        /// The operation that compared the shapes.
        op: &'static str,
        /// The first operand's shape.
        lhs: Vec<usize>,
        /// The second operand's shape.
        rhs: Vec<usize>,
    },
    /// A shape or argument is invalid for the operation.
    #[error("{op}: {msg} (shape {shape:?})")]
    InvalidShape {
        /// The operation that refused the shape.
        op: &'static str,
        /// The shape it was given.
        shape: Vec<usize>,
        /// What is wrong with it.
        msg: String,
    },
    /// The element type asked for differs from the tensor's.
    #[error("{op}: dtype mismatch: tensor holds {actual}, asked for {expected}")]
    DTypeMismatch {
        /// The operation that checked the dtype.
        op: &'static str,
        /// The dtype the caller asked for.
        expected: DType,
        /// The dtype the tensor holds.
        actual: DType,
    },
    /// A safetensors file is malformed, or does not hold what was asked.
    #[error("{path}: {msg}")]
    SafeTensors {
        /// The file.
        path: PathBuf,
        /// What is wrong with it, naming the tensor or header field.
        msg: String,
    },
    /// A Paddle `.pdparams` / `.pdopt` / `.pdema` pickle is malformed, truncated, or asks for an
    /// opcode or a global outside the allow-list (loading weights never runs code).
    #[error("{path}: {}{msg}", at_byte(.offset))]
    Pickle {
        /// The file.
        path: PathBuf,
        /// Byte offset of the opcode at fault, when the fault has one.
        offset: Option<usize>,
        /// What is wrong, naming the opcode, global, key or field.
        msg: String,
    },
    /// An I/O error, with the path it concerns.
    #[error("{path}: {error}")]
    Io {
        /// The file or directory the I/O was on.
        path: PathBuf,
        /// The operating system's error (in the message, not chained as a source: printed once).
        error: std::io::Error,
    },
}

fn at_byte(offset: &Option<usize>) -> String {
    offset.map(|o| format!("byte {o}: ")).unwrap_or_default()
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, TensorError>;
