//! The crate's error type: every failure names the tensor, field or value at fault.

use thiserror::Error;

/// Errors from building, loading or running the detector.
#[derive(Debug, Error)]
pub enum DetectError {
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A named tensor is missing from a state dict.
    #[error("missing tensor `{0}`")]
    MissingTensor(String),
    /// A named tensor has the wrong shape.
    #[error("tensor `{name}` has shape {found:?}, expected {expected:?}")]
    ShapeMismatch {
        /// State-dict name.
        name: String,
        /// Shape found.
        found: Vec<usize>,
        /// Shape the model needs.
        expected: Vec<usize>,
    },
    /// A tensor is not known to the model.
    #[error("unknown tensor `{0}`")]
    UnknownTensor(String),
    /// Inputs of an operation disagree with each other.
    #[error("bad input: {0}")]
    Input(String),
    /// A kernel reported a failure.
    #[error("kernel `{op}` failed: {message}")]
    Kernel {
        /// Which operation.
        op: &'static str,
        /// What the kernel said.
        message: String,
    },
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, DetectError>;

/// Maps a kernel's error to [`DetectError::Kernel`] naming `op`: `.map_err(kernel_error("op"))`.
pub fn kernel_error(op: &'static str) -> impl Fn(ringdet_kernels::KernelError) -> DetectError {
    move |e| DetectError::Kernel {
        op,
        message: e.to_string(),
    }
}
