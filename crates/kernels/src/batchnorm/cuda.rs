//! Batch norm on a CUDA device (kernels in `batchnorm.cu`), f32, the same SyncBN split and
//! contracts as [`super::cpu`]: the `[2, C]` sums stay on the device, ready for an all-reduce.

use super::{
    BatchNormParams, check_backward, check_forward_inference, check_forward_train,
    check_stats_backward, check_stats_forward,
};
use crate::KernelError;
use crate::grid::{block_rows, grid_1d, launch, ll};
use crate::runtime::{KernelRuntime, KernelSource};
use cudarc::driver::{CudaView, CudaViewMut};

/// The embedded `.cu` source of this module's kernels (compiled by NVRTC on first use).
pub static SOURCE: KernelSource = crate::kernel_source!("batchnorm/batchnorm.cu");

fn dims(p: &BatchNormParams) -> (i64, i64, i64) {
    (ll(p.batch), ll(p.channels), ll(p.spatial.max(1)))
}

/// This rank's per-channel `[Σx, Σx²]` into `stats` `[2, C]` (overwritten).
pub fn batchnorm_stats_forward(
    rt: &KernelRuntime,
    stats: &mut CudaViewMut<'_, f32>,
    x: &CudaView<'_, f32>,
    p: &BatchNormParams,
) -> Result<(), KernelError> {
    const OP: &str = "batchnorm_stats_forward";
    check_stats_forward(OP, p, stats.len(), x.len())?;
    if p.channels == 0 {
        return Ok(());
    }
    let (n, c, s) = dims(p);
    launch!(
        rt,
        SOURCE,
        "bn_stats_forward_f32",
        block_rows(p.channels),
        stats,
        x,
        &n,
        &c,
        &s
    )
}

/// Training forward with the combined `stats` over `count` elements per channel: writes `y`,
/// `saved` (mean, inverse std) and updates the running statistics.
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_forward_train(
    rt: &KernelRuntime,
    y: &mut CudaViewMut<'_, f32>,
    saved: &mut CudaViewMut<'_, f32>,
    running_mean: &mut CudaViewMut<'_, f32>,
    running_var: &mut CudaViewMut<'_, f32>,
    x: &CudaView<'_, f32>,
    gamma: &CudaView<'_, f32>,
    beta: &CudaView<'_, f32>,
    stats: &CudaView<'_, f32>,
    count: usize,
    p: &BatchNormParams,
) -> Result<(), KernelError> {
    const OP: &str = "batchnorm_forward_train";
    let ch = p.channels;
    check_forward_train(
        OP,
        p,
        [y.len(), saved.len(), running_mean.len(), running_var.len()],
        [x.len(), gamma.len(), beta.len(), stats.len()],
        count,
    )?;
    if ch == 0 {
        return Ok(());
    }
    let (_, c, s) = dims(p);
    let (inv_count, eps, m) = (1.0 / count as f64, p.eps, p.momentum);
    launch!(
        rt,
        SOURCE,
        "bn_finish_stats_f32",
        grid_1d(ch),
        &mut *saved,
        running_mean,
        running_var,
        stats,
        &c,
        &inv_count,
        &eps,
        &m
    )?;
    if y.is_empty() {
        return Ok(());
    }
    let (train, epsf, n) = (1i32, p.eps as f32, ll(y.len()));
    let (mean, invstd) = (saved.slice(..ch), saved.slice(ch..));
    launch!(
        rt,
        SOURCE,
        "bn_normalise_f32",
        grid_1d(y.len()),
        y,
        x,
        gamma,
        beta,
        &mean,
        &invstd,
        &train,
        &epsf,
        &c,
        &s,
        &n
    )
}

/// Inference forward with the running statistics.
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_forward_inference(
    rt: &KernelRuntime,
    y: &mut CudaViewMut<'_, f32>,
    x: &CudaView<'_, f32>,
    gamma: &CudaView<'_, f32>,
    beta: &CudaView<'_, f32>,
    running_mean: &CudaView<'_, f32>,
    running_var: &CudaView<'_, f32>,
    p: &BatchNormParams,
) -> Result<(), KernelError> {
    const OP: &str = "batchnorm_forward_inference";
    check_forward_inference(
        OP,
        p,
        y.len(),
        [
            x.len(),
            gamma.len(),
            beta.len(),
            running_mean.len(),
            running_var.len(),
        ],
    )?;
    if y.is_empty() {
        return Ok(());
    }
    let (_, c, s) = dims(p);
    let (train, eps, n) = (0i32, p.eps as f32, ll(y.len()));
    launch!(
        rt,
        SOURCE,
        "bn_normalise_f32",
        grid_1d(y.len()),
        y,
        x,
        gamma,
        beta,
        running_mean,
        running_var,
        &train,
        &eps,
        &c,
        &s,
        &n
    )
}

/// This rank's per-channel `[Σdy, Σdy·x̂]` into `dstats` `[2, C]` (overwritten).
pub fn batchnorm_stats_backward(
    rt: &KernelRuntime,
    dstats: &mut CudaViewMut<'_, f32>,
    dy: &CudaView<'_, f32>,
    x: &CudaView<'_, f32>,
    saved: &CudaView<'_, f32>,
    p: &BatchNormParams,
) -> Result<(), KernelError> {
    const OP: &str = "batchnorm_stats_backward";
    check_stats_backward(OP, p, dstats.len(), [dy.len(), x.len(), saved.len()], &[])?;
    if p.channels == 0 {
        return Ok(());
    }
    let (n, c, s) = dims(p);
    launch!(
        rt,
        SOURCE,
        "bn_stats_backward_f32",
        block_rows(p.channels),
        dstats,
        dy,
        x,
        saved,
        &n,
        &c,
        &s
    )
}

/// Backward finish: `dgamma += local Σdy·x̂`, `dbeta += local Σdy`, and
/// `dx = γ·invstd·(dy − Σdy/M − x̂·Σdy·x̂/M)` with the combined sums over `count` = M
/// (`dx` overwritten).
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_backward(
    rt: &KernelRuntime,
    dx: &mut CudaViewMut<'_, f32>,
    dgamma: &mut CudaViewMut<'_, f32>,
    dbeta: &mut CudaViewMut<'_, f32>,
    dy: &CudaView<'_, f32>,
    x: &CudaView<'_, f32>,
    saved: &CudaView<'_, f32>,
    gamma: &CudaView<'_, f32>,
    dstats_local: &CudaView<'_, f32>,
    dstats: &CudaView<'_, f32>,
    count: usize,
    p: &BatchNormParams,
) -> Result<(), KernelError> {
    const OP: &str = "batchnorm_backward";
    let ch = p.channels;
    check_backward(
        OP,
        p,
        [dx.len(), dy.len(), x.len()],
        [saved.len(), dstats_local.len(), dstats.len()],
        &[
            ("dgamma", dgamma.len()),
            ("dbeta", dbeta.len()),
            ("gamma", gamma.len()),
        ],
        count,
    )?;
    if ch == 0 {
        return Ok(());
    }
    let (_, c, s) = dims(p);
    launch!(
        rt,
        SOURCE,
        "bn_param_grads_f32",
        grid_1d(ch),
        dgamma,
        dbeta,
        dstats_local,
        &c
    )?;
    if dx.is_empty() {
        return Ok(());
    }
    let (inv_m, n) = ((1.0 / count as f64) as f32, ll(dx.len()));
    launch!(
        rt,
        SOURCE,
        "bn_backward_dx_f32",
        grid_1d(dx.len()),
        dx,
        dy,
        x,
        saved,
        gamma,
        dstats,
        &inv_m,
        &c,
        &s,
        &n
    )
}
