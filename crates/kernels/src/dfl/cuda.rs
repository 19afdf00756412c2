//! DFL decode on a CUDA device (kernels in `dfl.cu`), f32, same contracts as [`super::cpu`].

use super::{DflParams, check_dfl_buffers};
use crate::KernelError;
use crate::error::param;
use crate::grid::{grid_1d, launch, ll};
use crate::runtime::{KernelRuntime, KernelSource};
use cudarc::driver::{CudaView, CudaViewMut};

/// The embedded `.cu` source of this module's kernels (compiled by NVRTC on first use).
pub static SOURCE: KernelSource = crate::kernel_source!("dfl/dfl.cu");

/// (groups, bins, inner, columns) of the layout, or `None` when there is nothing to do.
fn dims(op: &'static str, p: &DflParams) -> Result<Option<(i64, i32, i64, usize)>, KernelError> {
    let bins = i32::try_from(p.bins).map_err(|_| param(op, "bins exceeds i32"))?;
    let groups = p.outer * p.sides;
    let cols = groups * p.inner;
    Ok((cols > 0 && p.bins > 0).then(|| (ll(groups), bins, ll(p.inner), cols)))
}

/// Stable softmax over the bins.
pub fn softmax_bins_forward(
    rt: &KernelRuntime,
    prob: &mut CudaViewMut<'_, f32>,
    logits: &CudaView<'_, f32>,
    p: &DflParams,
) -> Result<(), KernelError> {
    const OP: &str = "softmax_bins_forward";
    check_dfl_buffers(
        OP,
        p,
        &[("prob", prob.len()), ("logits", logits.len())],
        &[],
    )?;
    let Some((g, b, i, cols)) = dims(OP, p)? else {
        return Ok(());
    };
    launch!(
        rt,
        SOURCE,
        "softmax_bins_forward_f32",
        grid_1d(cols),
        prob,
        logits,
        &g,
        &b,
        &i
    )
}

/// `dlogits += prob·(dprob − Σ_k prob·dprob)`.
pub fn softmax_bins_backward(
    rt: &KernelRuntime,
    dlogits: &mut CudaViewMut<'_, f32>,
    dprob: &CudaView<'_, f32>,
    prob: &CudaView<'_, f32>,
    p: &DflParams,
) -> Result<(), KernelError> {
    const OP: &str = "softmax_bins_backward";
    let logits_like = [
        ("dlogits", dlogits.len()),
        ("dprob", dprob.len()),
        ("prob", prob.len()),
    ];
    check_dfl_buffers(OP, p, &logits_like, &[])?;
    let Some((g, b, i, cols)) = dims(OP, p)? else {
        return Ok(());
    };
    let cfg = grid_1d(cols);
    launch!(
        rt,
        SOURCE,
        "softmax_bins_backward_f32",
        cfg,
        dlogits,
        dprob,
        prob,
        &g,
        &b,
        &i
    )
}

/// `dist = Σ_k k·prob_k`.
pub fn dfl_integral_forward(
    rt: &KernelRuntime,
    dist: &mut CudaViewMut<'_, f32>,
    prob: &CudaView<'_, f32>,
    p: &DflParams,
) -> Result<(), KernelError> {
    const OP: &str = "dfl_integral_forward";
    check_dfl_buffers(OP, p, &[("prob", prob.len())], &[("dist", dist.len())])?;
    let Some((g, b, i, cols)) = dims(OP, p)? else {
        return Ok(());
    };
    launch!(
        rt,
        SOURCE,
        "dfl_integral_forward_f32",
        grid_1d(cols),
        dist,
        prob,
        &g,
        &b,
        &i
    )
}

/// `dprob_k += k·ddist`.
pub fn dfl_integral_backward(
    rt: &KernelRuntime,
    dprob: &mut CudaViewMut<'_, f32>,
    ddist: &CudaView<'_, f32>,
    p: &DflParams,
) -> Result<(), KernelError> {
    const OP: &str = "dfl_integral_backward";
    check_dfl_buffers(OP, p, &[("dprob", dprob.len())], &[("ddist", ddist.len())])?;
    let Some((g, b, i, cols)) = dims(OP, p)? else {
        return Ok(());
    };
    launch!(
        rt,
        SOURCE,
        "dfl_integral_backward_f32",
        grid_1d(cols),
        dprob,
        ddist,
        &g,
        &b,
        &i
    )
}

/// Fused decode backward: `dlogits_k += prob_k·(k − dist)·ddist`.
pub fn dfl_decode_backward(
    rt: &KernelRuntime,
    dlogits: &mut CudaViewMut<'_, f32>,
    ddist: &CudaView<'_, f32>,
    prob: &CudaView<'_, f32>,
    dist: &CudaView<'_, f32>,
    p: &DflParams,
) -> Result<(), KernelError> {
    const OP: &str = "dfl_decode_backward";
    let logits_like = [("dlogits", dlogits.len()), ("prob", prob.len())];
    check_dfl_buffers(
        OP,
        p,
        &logits_like,
        &[("ddist", ddist.len()), ("dist", dist.len())],
    )?;
    let Some((g, b, i, cols)) = dims(OP, p)? else {
        return Ok(());
    };
    let cfg = grid_1d(cols);
    launch!(
        rt,
        SOURCE,
        "dfl_decode_backward_f32",
        cfg,
        dlogits,
        ddist,
        prob,
        dist,
        &g,
        &b,
        &i
    )
}
