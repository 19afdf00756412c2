//! The one error type of every kernel: bad shapes and bad parameters are reported, never panicked on.

use thiserror::Error;

/// What went wrong when a kernel was called. Every variant names the op.
#[derive(Debug, Error)]
pub enum KernelError {
    /// A slice does not hold as many elements as the shape in the params struct needs.
    #[error("{op}: `{what}` holds {got} elements, but its shape {expected:?} needs {}", expected.iter().product::<usize>())]
    Length {
        /// The op that was called.
        op: &'static str,
        /// The argument at fault.
        what: &'static str,
        /// The shape the params struct implies.
        expected: Vec<usize>,
        /// The slice length that was passed.
        got: usize,
    },
    /// Two shapes that must agree do not.
    #[error("{op}: `{a}` has shape {a_shape:?}, which does not fit `{b}` with shape {b_shape:?}")]
    Mismatch {
        /// The op that was called.
        op: &'static str,
        /// First argument.
        a: &'static str,
        /// Its shape.
        a_shape: Vec<usize>,
        /// Second argument.
        b: &'static str,
        /// Its shape.
        b_shape: Vec<usize>,
    },
    /// A parameter value the op cannot work with.
    #[error("{op}: {reason}")]
    Param {
        /// The op that was called.
        op: &'static str,
        /// Why the parameters were rejected.
        reason: String,
    },
    /// Two shapes that must agree do not (flat lengths or dimensions).
    #[error("{op}: shape mismatch: {lhs:?} vs {rhs:?}")]
    Shape {
        /// The op that was called.
        op: &'static str,
        /// First shape.
        lhs: Vec<usize>,
        /// Second shape.
        rhs: Vec<usize>,
    },
    /// The kernel runtime (NVRTC, driver, device) failed.
    #[error(transparent)]
    Runtime(#[from] crate::runtime::RuntimeError),
    /// A kernel launch or a device allocation failed.
    #[error("launch of {kernel} failed: {msg}")]
    Launch {
        /// The kernel (or device call) at fault.
        kernel: &'static str,
        /// The driver's message.
        msg: String,
    },
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

/// Checks that `len` equals the product of `shape`.
pub(crate) fn check_len(
    op: &'static str,
    what: &'static str,
    len: usize,
    shape: &[usize],
) -> Result<(), KernelError> {
    if len == shape.iter().product::<usize>() {
        Ok(())
    } else {
        Err(KernelError::Length {
            op,
            what,
            expected: shape.to_vec(),
            got: len,
        })
    }
}

/// Checks that every named length equals the product of `shape`.
pub(crate) fn check_lens(
    op: &'static str,
    shape: &[usize],
    lens: &[(&'static str, usize)],
) -> Result<(), KernelError> {
    lens.iter()
        .try_for_each(|&(what, len)| check_len(op, what, len, shape))
}

/// Checks that the workspace slice has at least `need` elements.
pub(crate) fn check_min_len(
    op: &'static str,
    what: &'static str,
    len: usize,
    need: usize,
) -> Result<(), KernelError> {
    if len >= need {
        Ok(())
    } else {
        Err(KernelError::Length {
            op,
            what,
            expected: vec![need],
            got: len,
        })
    }
}

/// Builds a [`KernelError::Param`].
pub(crate) fn param(op: &'static str, reason: impl Into<String>) -> KernelError {
    KernelError::Param {
        op,
        reason: reason.into(),
    }
}
