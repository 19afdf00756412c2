//! The error type of every kernel: shape errors name the op and both shapes.

/// Errors of `ringdet-kernels`.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// Two shapes that must agree do not.
    #[error("{op}: shape mismatch: {lhs:?} vs {rhs:?}")]
    Shape {
        op: &'static str,
        lhs: Vec<usize>,
        rhs: Vec<usize>,
    },
    /// The kernel runtime (NVRTC, driver, device) failed.
    #[error(transparent)]
    Runtime(#[from] crate::runtime::RuntimeError),
    /// A kernel launch failed.
    #[error("launch of {kernel} failed: {msg}")]
    Launch { kernel: &'static str, msg: String },
}

impl KernelError {
    /// A shape mismatch of `op`.
    pub fn shape(op: &'static str, lhs: &[usize], rhs: &[usize]) -> Self {
        KernelError::Shape {
            op,
            lhs: lhs.to_vec(),
            rhs: rhs.to_vec(),
        }
    }
    /// A failed launch of `kernel`.
    pub fn launch(kernel: &'static str, e: cudarc::driver::DriverError) -> Self {
        KernelError::Launch {
            kernel,
            msg: e.to_string(),
        }
    }
}
