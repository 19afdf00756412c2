//! Pointwise activations: SiLU (swish), sigmoid, hardsigmoid. Shapes are whatever the caller has:
//! every function works on flat slices of equal length.

pub mod cpu;
pub mod cuda;

/// Paddle's `F.hardsigmoid` default slope (used by the backbone ESE gates).
pub const HARDSIGMOID_SLOPE: f64 = 0.1666667;
/// Paddle's `F.hardsigmoid` default offset.
pub const HARDSIGMOID_OFFSET: f64 = 0.5;

/// Checks that two buffers of an elementwise activation hold as many elements (the error names
/// both arguments); shared by the CPU and CUDA versions.
pub(crate) fn same(
    op: &'static str,
    names: [&'static str; 2],
    a: usize,
    b: usize,
) -> Result<(), crate::KernelError> {
    if a == b {
        Ok(())
    } else {
        Err(crate::KernelError::Mismatch {
            op,
            a: names[0],
            a_shape: vec![a],
            b: names[1],
            b_shape: vec![b],
        })
    }
}
