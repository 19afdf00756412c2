//! The one error type of the tensor crate: every failure names what was asked and what was found.

use crate::DType;
use std::path::PathBuf;

/// Everything that can go wrong in `ringdet-tensor`.
#[derive(Debug, thiserror::Error)]
pub enum TensorError {
    /// Two shapes that had to agree did not.
    #[error("{op}: shape mismatch: {lhs:?} vs {rhs:?}")]
    ShapeMismatch {
        op: &'static str,
        lhs: Vec<usize>,
        rhs: Vec<usize>,
    },
    /// A shape or argument is invalid for the operation.
    #[error("{op}: {msg} (shape {shape:?})")]
    InvalidShape {
        op: &'static str,
        shape: Vec<usize>,
        msg: String,
    },
    /// The element type asked for differs from the tensor's.
    #[error("{op}: dtype mismatch: tensor holds {actual}, asked for {expected}")]
    DTypeMismatch {
        op: &'static str,
        expected: DType,
        actual: DType,
    },
    /// CUDA was asked for but cannot be used here.
    #[error("CUDA unavailable: {0}")]
    CudaUnavailable(String),
    /// A CUDA driver call failed.
    #[error("CUDA error in {op}: {msg}")]
    Cuda { op: &'static str, msg: String },
    /// A safetensors file is malformed, or does not hold what was asked.
    #[error("{path}: {msg}")]
    SafeTensors { path: PathBuf, msg: String },
    /// An I/O error, with the path it concerns.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, TensorError>;
