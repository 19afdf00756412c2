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

/// Lengths of one call's buffers by shape, each with its argument name: NCHW-sized, `[2, C]`
/// pairs and `[C]` vectors. The CPU and CUDA versions of every op check through this, so a shape
/// rule is written once.
pub(crate) struct BufferLens<'a> {
    /// Buffers of `N·C·H·W` elements.
    pub elems: &'a [(&'static str, usize)],
    /// Buffers of `2·C` elements.
    pub pairs: &'a [(&'static str, usize)],
    /// Buffers of `C` elements.
    pub channels: &'a [(&'static str, usize)],
    /// The combined element count, for the ops that take one (must be positive).
    pub count: Option<usize>,
}

/// Checks every buffer of a batch-norm call against `p`.
pub(crate) fn check_buffers(
    op: &'static str,
    p: &BatchNormParams,
    lens: BufferLens<'_>,
) -> Result<(), crate::KernelError> {
    use crate::error::check_len;
    for &(what, len) in lens.elems {
        check_len(op, what, len, &p.x_shape())?;
    }
    for &(what, len) in lens.pairs {
        check_len(op, what, len, &[2, p.channels])?;
    }
    for &(what, len) in lens.channels {
        check_len(op, what, len, &[p.channels])?;
    }
    if lens.count == Some(0) {
        return Err(crate::error::param(op, "the combined element count is 0"));
    }
    Ok(())
}

/// Buffers of [`cpu::batchnorm_stats_forward`] and its CUDA twin.
pub(crate) fn check_stats_forward(
    op: &'static str,
    p: &BatchNormParams,
    stats: usize,
    x: usize,
) -> Result<(), crate::KernelError> {
    let (elems, pairs) = ([("x", x)], [("stats", stats)]);
    check_buffers(
        op,
        p,
        BufferLens {
            elems: &elems,
            pairs: &pairs,
            channels: &[],
            count: None,
        },
    )
}

/// Buffers of [`cpu::batchnorm_forward_train`], its CUDA twin and the fused BN + SiLU forward.
#[allow(clippy::too_many_arguments)]
pub(crate) fn check_forward_train(
    op: &'static str,
    p: &BatchNormParams,
    [y, saved, running_mean, running_var]: [usize; 4],
    [x, gamma, beta, stats]: [usize; 4],
    count: usize,
) -> Result<(), crate::KernelError> {
    let elems = [("x", x), ("y", y)];
    let pairs = [("saved", saved), ("stats", stats)];
    let channels = [
        ("running_mean", running_mean),
        ("running_var", running_var),
        ("gamma", gamma),
        ("beta", beta),
    ];
    check_buffers(
        op,
        p,
        BufferLens {
            elems: &elems,
            pairs: &pairs,
            channels: &channels,
            count: Some(count),
        },
    )
}

/// Buffers of [`cpu::batchnorm_forward_inference`] and its CUDA twin.
pub(crate) fn check_forward_inference(
    op: &'static str,
    p: &BatchNormParams,
    y: usize,
    [x, gamma, beta, running_mean, running_var]: [usize; 5],
) -> Result<(), crate::KernelError> {
    let elems = [("x", x), ("y", y)];
    let channels = [
        ("running_mean", running_mean),
        ("running_var", running_var),
        ("gamma", gamma),
        ("beta", beta),
    ];
    check_buffers(
        op,
        p,
        BufferLens {
            elems: &elems,
            pairs: &[],
            channels: &channels,
            count: None,
        },
    )
}

/// Buffers of [`cpu::batchnorm_stats_backward`], its CUDA twin and (with `gamma`, `beta`) the
/// fused BN + SiLU one.
pub(crate) fn check_stats_backward(
    op: &'static str,
    p: &BatchNormParams,
    dstats: usize,
    [dy, x, saved]: [usize; 3],
    channel_vecs: &[(&'static str, usize)],
) -> Result<(), crate::KernelError> {
    let elems = [("x", x), ("dy", dy)];
    let pairs = [("saved", saved), ("dstats", dstats)];
    check_buffers(
        op,
        p,
        BufferLens {
            elems: &elems,
            pairs: &pairs,
            channels: channel_vecs,
            count: None,
        },
    )
}

/// Buffers of [`cpu::batchnorm_backward`], its CUDA twin and (with `beta` among `channel_vecs`)
/// the fused BN + SiLU one; `channel_vecs` holds `dgamma`, `dbeta`, `gamma` (and `beta`).
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
    check_buffers(
        op,
        p,
        BufferLens {
            elems: &elems,
            pairs: &pairs,
            channels: channel_vecs,
            count: Some(count),
        },
    )
}
