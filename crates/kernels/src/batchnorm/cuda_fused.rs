//! Fused batch norm + SiLU on a CUDA device (kernels in `batchnorm.cu`): the normalised
//! pre-activation `z` is never written; the backward recomputes it from `x` and `saved`.
//! Per element this moves 2 accesses instead of 4 in the forward (read x, write y versus
//! BN then SiLU), and 5 instead of 8 in the backward. The SyncBN split is kept: the `[2, C]`
//! sums are those of `dz = dy·silu'(z)`, to be all-reduced between the two backward calls.
//! The reference is the composition of the CPU ops (BN then SiLU).

use super::{BatchNormParams, check_backward, check_forward_train, check_stats_backward};
use crate::KernelError;
use crate::grid::{block_rows, grid_1d, launch, ll};
use crate::runtime::KernelRuntime;
use cudarc::driver::{CudaView, CudaViewMut};

use super::cuda::SOURCE;

/// Training forward `y = silu(BN(x))` with the combined `stats`; writes `saved` and updates
/// the running statistics exactly as [`super::cuda::batchnorm_forward_train`].
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_silu_forward_train(
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
    const OP: &str = "batchnorm_silu_forward_train";
    check_forward_train(
        OP,
        p,
        [y.len(), saved.len(), running_mean.len(), running_var.len()],
        [x.len(), gamma.len(), beta.len(), stats.len()],
        count,
    )?;
    if p.channels == 0 {
        return Ok(());
    }
    let (c, s) = (ll(p.channels), ll(p.spatial.max(1)));
    let (inv_count, eps, m) = (1.0 / count as f64, p.eps, p.momentum);
    launch!(
        rt,
        SOURCE,
        "bn_finish_stats_f32",
        grid_1d(p.channels),
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
    let n = ll(y.len());
    let saved_view = saved.as_view();
    launch!(
        rt,
        SOURCE,
        "bn_silu_normalise_f32",
        grid_1d(y.len()),
        y,
        x,
        gamma,
        beta,
        &saved_view,
        &c,
        &s,
        &n
    )
}

/// This rank's per-channel `[Σdz, Σdz·x̂]` (`dz = dy·silu'(z)`) into `dstats` `[2, C]`.
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_silu_stats_backward(
    rt: &KernelRuntime,
    dstats: &mut CudaViewMut<'_, f32>,
    dy: &CudaView<'_, f32>,
    x: &CudaView<'_, f32>,
    saved: &CudaView<'_, f32>,
    gamma: &CudaView<'_, f32>,
    beta: &CudaView<'_, f32>,
    p: &BatchNormParams,
) -> Result<(), KernelError> {
    const OP: &str = "batchnorm_silu_stats_backward";
    check_stats_backward(
        OP,
        p,
        dstats.len(),
        [dy.len(), x.len(), saved.len()],
        &[("gamma", gamma.len()), ("beta", beta.len())],
    )?;
    if p.channels == 0 {
        return Ok(());
    }
    let (n, c, s) = (ll(p.batch), ll(p.channels), ll(p.spatial.max(1)));
    launch!(
        rt,
        SOURCE,
        "bn_silu_stats_backward_f32",
        block_rows(p.channels),
        dstats,
        dy,
        x,
        saved,
        gamma,
        beta,
        &n,
        &c,
        &s
    )
}

/// Backward finish: `dgamma += local Σdz·x̂`, `dbeta += local Σdz`, and
/// `dx = γ·invstd·(dz − Σdz/M − x̂·Σdz·x̂/M)` with the combined sums over `count` = M
/// (`dx` overwritten).
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_silu_backward(
    rt: &KernelRuntime,
    dx: &mut CudaViewMut<'_, f32>,
    dgamma: &mut CudaViewMut<'_, f32>,
    dbeta: &mut CudaViewMut<'_, f32>,
    dy: &CudaView<'_, f32>,
    x: &CudaView<'_, f32>,
    saved: &CudaView<'_, f32>,
    gamma: &CudaView<'_, f32>,
    beta: &CudaView<'_, f32>,
    dstats_local: &CudaView<'_, f32>,
    dstats: &CudaView<'_, f32>,
    count: usize,
    p: &BatchNormParams,
) -> Result<(), KernelError> {
    const OP: &str = "batchnorm_silu_backward";
    check_backward(
        OP,
        p,
        [dx.len(), dy.len(), x.len()],
        [saved.len(), dstats_local.len(), dstats.len()],
        &[
            ("dgamma", dgamma.len()),
            ("dbeta", dbeta.len()),
            ("gamma", gamma.len()),
            ("beta", beta.len()),
        ],
        count,
    )?;
    if p.channels == 0 {
        return Ok(());
    }
    let (c, s) = (ll(p.channels), ll(p.spatial.max(1)));
    launch!(
        rt,
        SOURCE,
        "bn_param_grads_f32",
        grid_1d(p.channels),
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
        "bn_silu_backward_dx_f32",
        grid_1d(dx.len()),
        dx,
        dy,
        x,
        saved,
        gamma,
        beta,
        dstats,
        &inv_m,
        &c,
        &s,
        &n
    )
}
