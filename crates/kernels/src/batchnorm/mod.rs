//! Batch normalisation over NCHW (per channel), split in two steps so that SyncBN works.
//!
//! Training forward: [`cpu::batchnorm_stats_forward`] gives this rank's per-channel sums
//! `[Σx (C), Σx² (C)]` and its element count; the caller may add them up across ranks; then
//! [`cpu::batchnorm_forward_train`] normalises with the combined sums and updates the running
//! statistics. Backward is split the same way: [`cpu::batchnorm_stats_backward`] gives
//! `[Σdy (C), Σdy·x̂ (C)]`, which may be summed across ranks, and [`cpu::batchnorm_backward`]
//! finishes. On one rank pass the local sums as the combined ones.

pub mod cpu;
pub mod cuda;
pub mod cuda_fused;

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

/// Checks every buffer of a batch-norm call against `p`: NCHW-sized `elems`, `[2, C]` `pairs`
/// and `[C]` `channels`, each with its argument name and length, and the combined element
/// `count` of the ops that take one (must be positive). The CPU and CUDA versions of every op
/// check through this (by way of the per-op functions below), so a shape rule is written once.
pub(crate) fn check_buffers(
    op: &'static str,
    p: &BatchNormParams,
    elems: &[(&'static str, usize)],
    pairs: &[(&'static str, usize)],
    channels: &[(&'static str, usize)],
    count: Option<usize>,
) -> Result<(), crate::KernelError> {
    use crate::error::check_len;
    for &(what, len) in elems {
        check_len(op, what, len, &p.x_shape())?;
    }
    for &(what, len) in pairs {
        check_len(op, what, len, &[2, p.channels])?;
    }
    for &(what, len) in channels {
        check_len(op, what, len, &[p.channels])?;
    }
    if count == Some(0) {
        return Err(crate::error::param(op, "the combined element count is 0"));
    }
    Ok(())
}

/// The running statistics and the affine parameters, named (`[C]` each).
fn running_and_affine(
    [running_mean, running_var, gamma, beta]: [usize; 4],
) -> [(&'static str, usize); 4] {
    [
        ("running_mean", running_mean),
        ("running_var", running_var),
        ("gamma", gamma),
        ("beta", beta),
    ]
}

/// Buffers of [`cpu::batchnorm_stats_forward`] and its CUDA twin.
pub(crate) fn check_stats_forward(
    op: &'static str,
    p: &BatchNormParams,
    stats: usize,
    x: usize,
) -> Result<(), crate::KernelError> {
    check_buffers(op, p, &[("x", x)], &[("stats", stats)], &[], None)
}

/// Buffers of [`cpu::batchnorm_forward_train`], its CUDA twin and the fused BN + SiLU forward.
pub(crate) fn check_forward_train(
    op: &'static str,
    p: &BatchNormParams,
    [y, saved, running_mean, running_var]: [usize; 4],
    [x, gamma, beta, stats]: [usize; 4],
    count: usize,
) -> Result<(), crate::KernelError> {
    let channels = running_and_affine([running_mean, running_var, gamma, beta]);
    let pairs = [("saved", saved), ("stats", stats)];
    check_buffers(op, p, &[("x", x), ("y", y)], &pairs, &channels, Some(count))
}

/// Buffers of [`cpu::batchnorm_forward_inference`] and its CUDA twin.
pub(crate) fn check_forward_inference(
    op: &'static str,
    p: &BatchNormParams,
    y: usize,
    [x, gamma, beta, running_mean, running_var]: [usize; 5],
) -> Result<(), crate::KernelError> {
    let channels = running_and_affine([running_mean, running_var, gamma, beta]);
    check_buffers(op, p, &[("x", x), ("y", y)], &[], &channels, None)
}

/// Buffers of [`cpu::batchnorm_stats_backward`], its CUDA twin and (with `gamma`, `beta` in
/// `channel_vecs`) the fused BN + SiLU one.
pub(crate) fn check_stats_backward(
    op: &'static str,
    p: &BatchNormParams,
    dstats: usize,
    [dy, x, saved]: [usize; 3],
    channel_vecs: &[(&'static str, usize)],
) -> Result<(), crate::KernelError> {
    let pairs = [("saved", saved), ("dstats", dstats)];
    check_buffers(op, p, &[("x", x), ("dy", dy)], &pairs, channel_vecs, None)
}

/// Buffers of [`cpu::batchnorm_backward`], its CUDA twin and the fused BN + SiLU one;
/// `channel_vecs` holds `dgamma`, `dbeta`, `gamma` (and `beta` for the fused one).
pub(crate) fn check_backward(
    op: &'static str,
    p: &BatchNormParams,
    [dx, dy, x]: [usize; 3],
    [saved, dstats_local, dstats]: [usize; 3],
    channel_vecs: &[(&'static str, usize)],
    count: usize,
) -> Result<(), crate::KernelError> {
    let elems = [("dx", dx), ("dy", dy), ("x", x)];
    let pairs = [
        ("saved", saved),
        ("dstats_local", dstats_local),
        ("dstats", dstats),
    ];
    check_buffers(op, p, &elems, &pairs, channel_vecs, Some(count))
}
