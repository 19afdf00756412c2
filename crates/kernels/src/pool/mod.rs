//! Pooling: global average pooling (the ESE squeeze) and max pooling with stride 1 and padding
//! k/2 (the SPP block, k = 5, 9, 13), which keeps the spatial size.

pub mod cpu;
pub mod cuda;

/// Shape of a pooled NCHW input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolParams {
    /// Images (N).
    pub batch: usize,
    /// Channels (C).
    pub channels: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Max-pool window side (odd); ignored by global average pooling.
    pub kernel: usize,
}

impl PoolParams {
    /// The input shape `[N, C, H, W]`.
    pub fn x_shape(&self) -> [usize; 4] {
        [self.batch, self.channels, self.h, self.w]
    }
}

/// Rejects an even max-pool window (stride 1, padding `k/2` need an odd one); shared by the CPU
/// and CUDA versions.
pub(crate) fn check_max(op: &'static str, p: &PoolParams) -> Result<(), crate::KernelError> {
    if p.kernel.is_multiple_of(2) {
        return Err(crate::error::param(
            op,
            format!(
                "kernel must be odd (stride 1, padding k/2), got {}",
                p.kernel
            ),
        ));
    }
    Ok(())
}

/// Checks the input-sized and `[N, C]` buffers of a global average pool (named as the caller
/// names them); shared by the CPU and CUDA versions.
pub(crate) fn check_gap(
    op: &'static str,
    p: &PoolParams,
    (x_name, x): (&'static str, usize),
    (y_name, y): (&'static str, usize),
) -> Result<(), crate::KernelError> {
    crate::error::check_len(op, x_name, x, &p.x_shape())?;
    crate::error::check_len(op, y_name, y, &[p.batch, p.channels])
}

/// Checks the window and the (all input-sized) buffers of a max pool; shared by the CPU and
/// CUDA versions.
pub(crate) fn check_max_pool(
    op: &'static str,
    p: &PoolParams,
    lens: &[(&'static str, usize)],
) -> Result<(), crate::KernelError> {
    check_max(op, p)?;
    crate::error::check_lens(op, &p.x_shape(), lens)
}
