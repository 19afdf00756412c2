//! Pooling on a CUDA device (kernels in `pool.cu`), f32, same contracts as [`super::cpu`].
//! Max-pool backward adds with atomics, so the order of additions (not the set) may vary.

use super::{PoolParams, check_gap, check_max, check_max_pool};
use crate::KernelError;
use crate::error::{check_min_len, param};
use crate::grid::{grid_1d, launch, ll, warp_rows};
use crate::runtime::{KernelRuntime, KernelSource};
use cudarc::driver::{CudaView, CudaViewMut};

/// The embedded `.cu` source of this module's kernels (compiled by NVRTC on first use).
pub static SOURCE: KernelSource = crate::kernel_source!("pool/pool.cu");

/// `y[n, c] = mean over H·W of x[n, c]`.
pub fn global_avg_pool_forward(
    rt: &KernelRuntime,
    y: &mut CudaViewMut<'_, f32>,
    x: &CudaView<'_, f32>,
    p: &PoolParams,
) -> Result<(), KernelError> {
    const OP: &str = "global_avg_pool_forward";
    check_gap(OP, p, ("x", x.len()), ("y", y.len()))?;
    if y.is_empty() {
        return Ok(());
    }
    let hw = (p.h * p.w).max(1);
    let (planes, hwl, inv) = (ll(y.len()), ll(hw), (1.0 / hw as f64) as f32);
    let cfg = warp_rows(y.len());
    launch!(
        rt,
        SOURCE,
        "global_avg_pool_forward_f32",
        cfg,
        y,
        x,
        &planes,
        &hwl,
        &inv
    )
}

/// `dx[n, c, :, :] += dy[n, c] / (H·W)`.
pub fn global_avg_pool_backward(
    rt: &KernelRuntime,
    dx: &mut CudaViewMut<'_, f32>,
    dy: &CudaView<'_, f32>,
    p: &PoolParams,
) -> Result<(), KernelError> {
    const OP: &str = "global_avg_pool_backward";
    check_gap(OP, p, ("dx", dx.len()), ("dy", dy.len()))?;
    if dx.is_empty() {
        return Ok(());
    }
    let hw = (p.h * p.w).max(1);
    let (hwl, inv, n) = (ll(hw), (1.0 / hw as f64) as f32, ll(dx.len()));
    let cfg = grid_1d(dx.len());
    launch!(
        rt,
        SOURCE,
        "global_avg_pool_backward_f32",
        cfg,
        dx,
        dy,
        &hwl,
        &inv,
        &n
    )
}

fn geometry(op: &'static str, p: &PoolParams) -> Result<(i32, i32, i32), KernelError> {
    check_max(op, p)?;
    let int = |v: usize| i32::try_from(v).map_err(|_| param(op, format!("{v} exceeds i32")));
    Ok((int(p.h)?, int(p.w)?, int(p.kernel / 2)?))
}

/// Max pool `k×k`, stride 1, padding `k/2`; `workspace` holds at least `x.len()` elements.
pub fn max_pool_forward(
    rt: &KernelRuntime,
    y: &mut CudaViewMut<'_, f32>,
    workspace: &mut CudaViewMut<'_, f32>,
    x: &CudaView<'_, f32>,
    p: &PoolParams,
) -> Result<(), KernelError> {
    const OP: &str = "max_pool_forward";
    let (h, w, r) = geometry(OP, p)?;
    check_max_pool(OP, p, &[("x", x.len()), ("y", y.len())])?;
    check_min_len(OP, "workspace", workspace.len(), x.len())?;
    if x.is_empty() {
        return Ok(());
    }
    let (n, cfg) = (ll(x.len()), grid_1d(x.len()));
    let (rows, cols) = (0i32, 1i32);
    launch!(
        rt,
        SOURCE,
        "max_pool_pass_f32",
        cfg,
        &mut *workspace,
        x,
        &h,
        &w,
        &r,
        &rows,
        &n
    )?;
    let workspace_view = workspace.as_view();
    launch!(
        rt,
        SOURCE,
        "max_pool_pass_f32",
        cfg,
        y,
        &workspace_view,
        &h,
        &w,
        &r,
        &cols,
        &n
    )
}

/// Max-pool backward: each output's gradient goes to the first input of its window equal to it.
pub fn max_pool_backward(
    rt: &KernelRuntime,
    dx: &mut CudaViewMut<'_, f32>,
    dy: &CudaView<'_, f32>,
    x: &CudaView<'_, f32>,
    y: &CudaView<'_, f32>,
    p: &PoolParams,
) -> Result<(), KernelError> {
    const OP: &str = "max_pool_backward";
    let (h, w, r) = geometry(OP, p)?;
    check_max_pool(
        OP,
        p,
        &[
            ("dx", dx.len()),
            ("dy", dy.len()),
            ("x", x.len()),
            ("y", y.len()),
        ],
    )?;
    if x.is_empty() {
        return Ok(());
    }
    let n = ll(x.len());
    launch!(
        rt,
        SOURCE,
        "max_pool_backward_f32",
        grid_1d(x.len()),
        dx,
        dy,
        x,
        y,
        &h,
        &w,
        &r,
        &n
    )
}
