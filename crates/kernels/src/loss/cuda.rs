//! The losses on a CUDA device (kernels in `loss.cu`), f32. Same contracts as the CPU modules,
//! except that a scalar loss is written to a one-element device buffer (output first) and is
//! summed in f64 over per-block partials in a fixed order. The DFL target range is not checked
//! on the device (it would need a copy to the host); out-of-range targets are clamped to the
//! first/last bin pair instead of being reported.

use super::{
    BoxLossParams, VarifocalParams, check_bce, check_boxes, check_dfl, check_dfl_targets,
    check_giou_per_box, check_varifocal,
};
use crate::KernelError;
use crate::error::{check_len, param};
use crate::grid::{THREADS, grid_1d, launch, ll, scratch};
use crate::runtime::{KernelRuntime, KernelSource};
use cudarc::driver::{CudaSlice, CudaView, CudaViewMut, LaunchConfig};

/// The embedded `.cu` source of this module's kernels (compiled by NVRTC on first use).
pub static SOURCE: KernelSource = crate::kernel_source!("loss/loss.cu");

/// Blocks of a partial-sum launch (at most this many partials).
const MAX_PARTS: usize = 1024;

fn partial_cfg(n: usize) -> LaunchConfig {
    let mut cfg = grid_1d(n);
    cfg.grid_dim.0 = cfg.grid_dim.0.min(MAX_PARTS as u32);
    cfg
}

/// `out[0] = Σ partials / normalizer`.
fn finish(
    rt: &KernelRuntime,
    out: &mut CudaViewMut<'_, f32>,
    partials: &CudaSlice<f64>,
    parts: u32,
    normalizer: f64,
) -> Result<(), KernelError> {
    let cfg = LaunchConfig {
        grid_dim: (1, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    let nparts = parts as i32;
    launch!(
        rt,
        SOURCE,
        "finish_sum",
        cfg,
        out,
        partials,
        &nparts,
        &normalizer
    )
}

fn scalar_out(op: &'static str, loss: &CudaViewMut<'_, f32>) -> Result<(), KernelError> {
    check_len(op, "loss", loss.len(), &[1])
}

/// Elementwise `loss = bce(pred, target)`.
pub fn bce_forward(
    rt: &KernelRuntime,
    loss: &mut CudaViewMut<'_, f32>,
    pred: &CudaView<'_, f32>,
    target: &CudaView<'_, f32>,
) -> Result<(), KernelError> {
    const OP: &str = "bce_forward";
    check_bce(
        OP,
        loss.len(),
        &[("pred", pred.len()), ("target", target.len())],
    )?;
    if loss.is_empty() {
        return Ok(());
    }
    let n = ll(loss.len());
    launch!(
        rt,
        SOURCE,
        "bce_forward_f32",
        grid_1d(loss.len()),
        loss,
        pred,
        target,
        &n
    )
}

/// `dpred += dloss · d bce / d pred`.
pub fn bce_backward(
    rt: &KernelRuntime,
    dpred: &mut CudaViewMut<'_, f32>,
    dloss: &CudaView<'_, f32>,
    pred: &CudaView<'_, f32>,
    target: &CudaView<'_, f32>,
) -> Result<(), KernelError> {
    const OP: &str = "bce_backward";
    let lens = [
        ("dloss", dloss.len()),
        ("pred", pred.len()),
        ("target", target.len()),
    ];
    check_bce(OP, dpred.len(), &lens)?;
    if dpred.is_empty() {
        return Ok(());
    }
    let n = ll(dpred.len());
    launch!(
        rt,
        SOURCE,
        "bce_backward_f32",
        grid_1d(dpred.len()),
        dpred,
        dloss,
        pred,
        target,
        &n
    )
}

/// `loss[0] = Σ w·BCE(p, q) / S`.
pub fn varifocal_loss_forward(
    rt: &KernelRuntime,
    loss: &mut CudaViewMut<'_, f32>,
    pred: &CudaView<'_, f32>,
    target: &CudaView<'_, f32>,
    label: &CudaView<'_, f32>,
    p: &VarifocalParams,
) -> Result<(), KernelError> {
    const OP: &str = "varifocal_loss_forward";
    scalar_out(OP, loss)?;
    check_varifocal(OP, pred.len(), target.len(), label.len(), p)?;
    let cfg = partial_cfg(pred.len());
    let mut parts = scratch::<f64>(rt, OP, cfg.grid_dim.0 as usize)?;
    let (a, g, n) = (p.alpha as f32, p.gamma as f32, ll(pred.len()));
    launch!(
        rt,
        SOURCE,
        "varifocal_partial_f32",
        cfg,
        &mut parts,
        pred,
        target,
        label,
        &a,
        &g,
        &n
    )?;
    finish(rt, loss, &parts, cfg.grid_dim.0, p.normalizer)
}

/// `dpred += dloss / S · (dw/dp · BCE + w · dBCE/dp)`.
pub fn varifocal_loss_backward(
    rt: &KernelRuntime,
    dpred: &mut CudaViewMut<'_, f32>,
    pred: &CudaView<'_, f32>,
    target: &CudaView<'_, f32>,
    label: &CudaView<'_, f32>,
    dloss: f32,
    p: &VarifocalParams,
) -> Result<(), KernelError> {
    const OP: &str = "varifocal_loss_backward";
    check_len(OP, "pred", pred.len(), &[dpred.len()])?;
    check_varifocal(OP, pred.len(), target.len(), label.len(), p)?;
    if dpred.is_empty() {
        return Ok(());
    }
    let (a, g, n) = (p.alpha as f32, p.gamma as f32, ll(pred.len()));
    let scale = dloss / p.normalizer as f32;
    launch!(
        rt,
        SOURCE,
        "varifocal_backward_f32",
        grid_1d(pred.len()),
        dpred,
        pred,
        target,
        label,
        &a,
        &g,
        &scale,
        &n
    )
}

/// Per-box `1 − GIoU` into `loss` `[P]`.
pub fn giou_per_box(
    rt: &KernelRuntime,
    loss: &mut CudaViewMut<'_, f32>,
    pred: &CudaView<'_, f32>,
    target: &CudaView<'_, f32>,
) -> Result<(), KernelError> {
    const OP: &str = "giou_per_box";
    check_giou_per_box(OP, loss.len(), pred.len(), target.len())?;
    if loss.is_empty() {
        return Ok(());
    }
    let n = ll(loss.len());
    launch!(
        rt,
        SOURCE,
        "giou_per_box_f32",
        grid_1d(loss.len()),
        loss,
        pred,
        target,
        &n
    )
}

/// `loss[0] = Σ (1 − GIoU)·weight / S`.
pub fn giou_loss_forward(
    rt: &KernelRuntime,
    loss: &mut CudaViewMut<'_, f32>,
    pred: &CudaView<'_, f32>,
    target: &CudaView<'_, f32>,
    weight: &CudaView<'_, f32>,
    p: &BoxLossParams,
) -> Result<(), KernelError> {
    const OP: &str = "giou_loss_forward";
    scalar_out(OP, loss)?;
    check_boxes(OP, pred.len(), target.len(), weight.len(), p)?;
    let cfg = partial_cfg(weight.len());
    let mut parts = scratch::<f64>(rt, OP, cfg.grid_dim.0 as usize)?;
    let n = ll(weight.len());
    launch!(
        rt,
        SOURCE,
        "giou_partial_f32",
        cfg,
        &mut parts,
        pred,
        target,
        weight,
        &n
    )?;
    finish(rt, loss, &parts, cfg.grid_dim.0, p.normalizer)
}

/// `dpred += dloss · weight / S · d(1 − GIoU)/d pred`.
pub fn giou_loss_backward(
    rt: &KernelRuntime,
    dpred: &mut CudaViewMut<'_, f32>,
    pred: &CudaView<'_, f32>,
    target: &CudaView<'_, f32>,
    weight: &CudaView<'_, f32>,
    dloss: f32,
    p: &BoxLossParams,
) -> Result<(), KernelError> {
    const OP: &str = "giou_loss_backward";
    check_boxes(OP, pred.len(), target.len(), weight.len(), p)?;
    check_len(OP, "dpred", dpred.len(), &[weight.len(), 4])?;
    if weight.is_empty() {
        return Ok(());
    }
    let (scale, n) = (dloss / p.normalizer as f32, ll(weight.len()));
    launch!(
        rt,
        SOURCE,
        "giou_backward_f32",
        grid_1d(weight.len()),
        dpred,
        pred,
        target,
        weight,
        &scale,
        &n
    )
}

/// DFL targets `(ax − x1, ay − y1, x2 − ax, y2 − ay)` clipped to `[0, reg_max − 0.01]`.
pub fn dfl_targets(
    rt: &KernelRuntime,
    target: &mut CudaViewMut<'_, f32>,
    anchor_points: &CudaView<'_, f32>,
    boxes: &CudaView<'_, f32>,
    reg_max: usize,
) -> Result<(), KernelError> {
    const OP: &str = "dfl_targets";
    let n = check_dfl_targets(OP, target.len(), anchor_points.len(), boxes.len())?;
    if n == 0 {
        return Ok(());
    }
    let (hi, nl) = ((reg_max as f64 - 0.01) as f32, ll(n));
    launch!(
        rt,
        SOURCE,
        "dfl_targets_f32",
        grid_1d(n),
        target,
        anchor_points,
        boxes,
        &hi,
        &nl
    )
}

/// `loss[0] = Σ_a weight_a · mean_sides(dfl_side) / S`.
pub fn dfl_loss_forward(
    rt: &KernelRuntime,
    loss: &mut CudaViewMut<'_, f32>,
    logits: &CudaView<'_, f32>,
    target: &CudaView<'_, f32>,
    weight: &CudaView<'_, f32>,
    p: &BoxLossParams,
) -> Result<(), KernelError> {
    const OP: &str = "dfl_loss_forward";
    scalar_out(OP, loss)?;
    check_dfl(OP, logits.len(), target.len(), weight.len(), p)?;
    let bins = i32::try_from(p.bins).map_err(|_| param(OP, "bins exceeds i32"))?;
    let cfg = partial_cfg(weight.len());
    let mut parts = scratch::<f64>(rt, OP, cfg.grid_dim.0 as usize)?;
    let n = ll(weight.len());
    launch!(
        rt,
        SOURCE,
        "dfl_loss_partial_f32",
        cfg,
        &mut parts,
        logits,
        target,
        weight,
        &bins,
        &n
    )?;
    finish(rt, loss, &parts, cfg.grid_dim.0, p.normalizer)
}

/// `dlogits += dloss · weight / (4·S) · (softmax − w_left·e_left − w_right·e_right)`.
#[allow(clippy::too_many_arguments)]
pub fn dfl_loss_backward(
    rt: &KernelRuntime,
    dlogits: &mut CudaViewMut<'_, f32>,
    logits: &CudaView<'_, f32>,
    target: &CudaView<'_, f32>,
    weight: &CudaView<'_, f32>,
    dloss: f32,
    p: &BoxLossParams,
) -> Result<(), KernelError> {
    const OP: &str = "dfl_loss_backward";
    check_dfl(OP, logits.len(), target.len(), weight.len(), p)?;
    let bins = i32::try_from(p.bins).map_err(|_| param(OP, "bins exceeds i32"))?;
    check_len(OP, "dlogits", dlogits.len(), &[weight.len(), 4, p.bins])?;
    if weight.is_empty() {
        return Ok(());
    }
    let (scale, n) = (dloss / (4.0 * p.normalizer) as f32, ll(4 * weight.len()));
    launch!(
        rt,
        SOURCE,
        "dfl_loss_backward_f32",
        grid_1d(4 * weight.len()),
        dlogits,
        logits,
        target,
        weight,
        &scale,
        &bins,
        &n
    )
}
