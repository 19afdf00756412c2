//! SGD, AdamW and EMA over flat buffers on a CUDA device (kernels in `optimizer.cu`), f32, same
//! contracts as [`super::cpu`].

use super::{AdamwParams, EmaParams, SgdParams, check_adamw, check_sgd};
use crate::KernelError;
use crate::error::check_len;
use crate::grid::{grid_1d, launch, ll};
use crate::runtime::{KernelRuntime, KernelSource};
use cudarc::driver::{CudaView, CudaViewMut};

/// The embedded `.cu` source of this module's kernels (compiled by NVRTC on first use).
pub static SOURCE: KernelSource = crate::kernel_source!("optimizer/optimizer.cu");

/// One SGD step, in place: `g' = g + wd·θ` where `decay_mask != 0`, `v = m·v + g'`, `θ −= lr·v`.
pub fn sgd_momentum_step(
    rt: &KernelRuntime,
    params: &mut CudaViewMut<'_, f32>,
    velocity: &mut CudaViewMut<'_, f32>,
    grads: &CudaView<'_, f32>,
    decay_mask: &CudaView<'_, u8>,
    p: &SgdParams,
) -> Result<(), KernelError> {
    const OP: &str = "sgd_momentum_step";
    let n = params.len();
    check_sgd(OP, n, velocity.len(), grads.len(), decay_mask.len())?;
    if n == 0 {
        return Ok(());
    }
    let (lr, m, wd, nl) = (p.lr as f32, p.momentum as f32, p.weight_decay as f32, ll(n));
    launch!(
        rt,
        SOURCE,
        "sgd_momentum_step_f32",
        grid_1d(n),
        params,
        velocity,
        grads,
        decay_mask,
        &lr,
        &m,
        &wd,
        &nl
    )
}

/// One AdamW step, in place; the contract of [`super::cpu::adamw_step`].
pub fn adamw_step(
    rt: &KernelRuntime,
    params: &mut CudaViewMut<'_, f32>,
    moments: [&mut CudaViewMut<'_, f32>; 2],
    grads: &CudaView<'_, f32>,
    decay_mask: &CudaView<'_, u8>,
    p: &AdamwParams,
) -> Result<(), KernelError> {
    const OP: &str = "adamw_step";
    let n = params.len();
    let [moment1, moment2] = moments;
    check_adamw(
        OP,
        n,
        [moment1.len(), moment2.len()],
        grads.len(),
        decay_mask.len(),
    )?;
    if n == 0 {
        return Ok(());
    }
    let (lr_t, eps_t) = p.corrected();
    let (keep, b1, b2) = (
        (1.0 - p.lr * p.weight_decay) as f32,
        p.beta1 as f32,
        p.beta2 as f32,
    );
    let (lr_t, eps_t, nl) = (lr_t as f32, eps_t as f32, ll(n));
    launch!(
        rt,
        SOURCE,
        "adamw_step_f32",
        grid_1d(n),
        params,
        moment1,
        moment2,
        grads,
        decay_mask,
        &keep,
        &b1,
        &b2,
        &lr_t,
        &eps_t,
        &nl
    )
}

/// EMA update number `step` (0-based): `ema = d·ema + (1 − d)·θ`; returns `d`.
pub fn ema_update(
    rt: &KernelRuntime,
    ema: &mut CudaViewMut<'_, f32>,
    params: &CudaView<'_, f32>,
    step: u64,
    p: &EmaParams,
) -> Result<f64, KernelError> {
    check_len("ema_update", "params", params.len(), &[ema.len()])?;
    let d = p.threshold_decay(step);
    if !ema.is_empty() {
        let (a, b, n) = (d as f32, (1.0 - d) as f32, ll(ema.len()));
        launch!(
            rt,
            SOURCE,
            "ema_update_f32",
            grid_1d(ema.len()),
            ema,
            params,
            &a,
            &b,
            &n
        )?;
    }
    Ok(d)
}

/// The bias-corrected EMA weights `out = ema / (1 − d_last^steps)`; `out = ema` before any update.
pub fn ema_apply(
    rt: &KernelRuntime,
    out: &mut CudaViewMut<'_, f32>,
    ema: &CudaView<'_, f32>,
    last_decay: f64,
    steps: u64,
) -> Result<(), KernelError> {
    check_len("ema_apply", "ema", ema.len(), &[out.len()])?;
    if out.is_empty() {
        return Ok(());
    }
    let scale = if steps == 0 {
        1.0
    } else {
        1.0 / (1.0 - last_decay.powf(steps as f64))
    };
    let (s, n) = (scale as f32, ll(out.len()));
    launch!(
        rt,
        SOURCE,
        "scale_into_f32",
        grid_1d(out.len()),
        out,
        ema,
        &s,
        &n
    )
}
