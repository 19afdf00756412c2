//! Pointwise activations: SiLU (swish), sigmoid, hardsigmoid. Shapes are whatever the caller has:
//! every function works on flat slices of equal length.

pub mod cpu;

/// Paddle's `F.hardsigmoid` default slope (used by the backbone ESE gates).
pub const HARDSIGMOID_SLOPE: f64 = 0.1666667;
/// Paddle's `F.hardsigmoid` default offset.
pub const HARDSIGMOID_OFFSET: f64 = 0.5;
