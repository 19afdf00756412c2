//! Nearest-neighbour upsampling by 2 (the FPN routes): each input pixel becomes a 2×2 block.

pub mod cpu;
pub mod cuda;

/// Shape of the input `[N, C, H, W]`; the output is `[N, C, 2H, 2W]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpsampleParams {
    /// Images (N).
    pub batch: usize,
    /// Channels (C).
    pub channels: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
}

impl UpsampleParams {
    /// Input shape.
    pub fn x_shape(&self) -> [usize; 4] {
        [self.batch, self.channels, self.h, self.w]
    }
    /// Output shape.
    pub fn y_shape(&self) -> [usize; 4] {
        [self.batch, self.channels, 2 * self.h, 2 * self.w]
    }
}

/// Checks the input-sized and output-sized buffers of an upsample call (named as the caller
/// names them); shared by the CPU and CUDA versions.
pub(crate) fn check_resize(
    op: &'static str,
    p: &UpsampleParams,
    (x_name, x): (&'static str, usize),
    (y_name, y): (&'static str, usize),
) -> Result<(), crate::KernelError> {
    crate::error::check_len(op, x_name, x, &p.x_shape())?;
    crate::error::check_len(op, y_name, y, &p.y_shape())
}
