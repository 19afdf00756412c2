//! Batch normalisation over NCHW (per channel), split in two steps so that SyncBN works.
//!
//! Training forward: [`cpu::batchnorm_stats_forward`] gives this rank's per-channel sums
//! `[Σx (C), Σx² (C)]` and its element count; the caller may add them up across ranks; then
//! [`cpu::batchnorm_forward_train`] normalises with the combined sums and updates the running
//! statistics. Backward is split the same way: [`cpu::batchnorm_stats_backward`] gives
//! `[Σdy (C), Σdy·x̂ (C)]`, which may be summed across ranks, and [`cpu::batchnorm_backward`]
//! finishes. On one rank pass the local sums as the combined ones.

pub mod cpu;

/// Shapes and constants of one batch-norm layer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchNormParams {
    /// Images in this rank's batch (N).
    pub batch: usize,
    /// Channels (C).
    pub channels: usize,
    /// H·W of this rank's input.
    pub spatial: usize,
    /// Added to the variance (Paddle: 1e-5).
    pub eps: f64,
    /// Running-statistics momentum, Paddle convention: `running = m·running + (1−m)·batch` (0.9).
    pub momentum: f64,
}

impl BatchNormParams {
    /// Paddle's defaults (eps 1e-5, momentum 0.9) for an `[N, C, H·W]` input.
    pub fn new(batch: usize, channels: usize, spatial: usize) -> Self {
        Self {
            batch,
            channels,
            spatial,
            eps: 1e-5,
            momentum: 0.9,
        }
    }

    /// Elements per channel on this rank (N·H·W); sum it across ranks for SyncBN.
    pub fn count(&self) -> usize {
        self.batch * self.spatial
    }

    /// The input shape `[N, C, H·W]`.
    pub fn x_shape(&self) -> [usize; 3] {
        [self.batch, self.channels, self.spatial]
    }
}
