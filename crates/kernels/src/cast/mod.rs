//! bf16 ⇄ f32 conversion of flat buffers (mixed-precision copies of weights and activations):
//! round to nearest, ties to even; NaN stays NaN.

pub mod cpu;
pub mod cuda;
