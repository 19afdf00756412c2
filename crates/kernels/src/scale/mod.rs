//! `out = alpha * x`: the smallest op, used to average gradients after an all-reduce, and the one
//! that proves the CPU/CUDA path end to end.

pub mod cpu;
pub mod cuda;

/// Parameters of [`cpu::scale`] and [`cuda::scale`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScaleParams {
    /// The factor every element is multiplied by.
    pub alpha: f32,
}
