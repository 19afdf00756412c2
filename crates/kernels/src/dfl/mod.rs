//! The DFL head decode: softmax over the 17 bins of each side, then the integral Σ k·p_k
//! (what Paddle's frozen `proj_conv` computes), giving the l, t, r, b distances in grid units.
//!
//! Layout `[outer, sides, bins, inner]`: `inner = H·W` reads the `[N, 4·17, H, W]` conv output
//! in place; `inner = 1` reads a `[L, 4, 17]` anchor-major buffer.

pub mod cpu;
pub mod cuda;

/// Layout of the regression logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DflParams {
    /// Outer count (N for NCHW conv output, anchors for anchor-major buffers).
    pub outer: usize,
    /// Sides per anchor (4: l, t, r, b).
    pub sides: usize,
    /// Bins per side (`reg_max + 1` = 17).
    pub bins: usize,
    /// Inner stride (H·W for NCHW, 1 for anchor-major).
    pub inner: usize,
}

impl DflParams {
    /// PP-YOLOE's NCHW head output `[N, 68, H·W]`.
    pub fn nchw(batch: usize, spatial: usize) -> Self {
        Self {
            outer: batch,
            sides: 4,
            bins: 17,
            inner: spatial,
        }
    }
    /// Shape of the logits / probabilities.
    pub fn logits_shape(&self) -> [usize; 4] {
        [self.outer, self.sides, self.bins, self.inner]
    }
    /// Shape of the distances.
    pub fn dist_shape(&self) -> [usize; 3] {
        [self.outer, self.sides, self.inner]
    }
}

/// Checks the logits-shaped and distance-shaped buffers of a DFL call; shared by the CPU and
/// CUDA versions.
pub(crate) fn check_dfl_buffers(
    op: &'static str,
    p: &DflParams,
    logits_like: &[(&'static str, usize)],
    dist_like: &[(&'static str, usize)],
) -> Result<(), crate::KernelError> {
    crate::error::check_lens(op, &p.logits_shape(), logits_like)?;
    crate::error::check_lens(op, &p.dist_shape(), dist_like)
}
