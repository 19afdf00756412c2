//! CPU SGD, AdamW and EMA over flat buffers, split across the rayon pool.

use rayon::prelude::*;

use crate::simd::widest;

use super::{AdamwParams, EmaParams, SgdParams, check_adamw, check_sgd};
use crate::error::{KernelError, check_len};
use crate::par::CHUNK;
use crate::real::Real;

/// One SGD step, in place: `g' = g + wd·θ` where `decay_mask != 0`, `v = m·v + g'`, `θ −= lr·v`.
pub fn sgd_momentum_step<T: Real>(
    params: &mut [T],
    velocity: &mut [T],
    grads: &[T],
    decay_mask: &[u8],
    p: &SgdParams,
) -> Result<(), KernelError> {
    const OP: &str = "sgd_momentum_step";
    let n = params.len();
    check_sgd(OP, n, velocity.len(), grads.len(), decay_mask.len())?;
    let (lr, m, wd) = (
        T::from_f64(p.lr),
        T::from_f64(p.momentum),
        T::from_f64(p.weight_decay),
    );
    params
        .par_chunks_mut(CHUNK)
        .zip(velocity.par_chunks_mut(CHUNK))
        .zip(grads.par_chunks(CHUNK).zip(decay_mask.par_chunks(CHUNK)))
        .for_each(|((th, v), (g, mask))| {
            widest(
                #[inline(always)]
                || {
                    for i in 0..th.len() {
                        let gi = if mask[i] != 0 {
                            g[i] + wd * th[i]
                        } else {
                            g[i]
                        };
                        v[i] = m * v[i] + gi;
                        th[i] -= lr * v[i];
                    }
                },
            )
        });
    Ok(())
}

/// One AdamW step, in place (Paddle's order): `θ ← θ·(1 − lr·wd)` where `decay_mask != 0`,
/// `m ← β₁m + (1 − β₁)g`, `v ← β₂v + (1 − β₂)g²`, `θ ← θ − lr_t·m/(√v + ε_t)` with the
/// bias corrections of [`AdamwParams::corrected`].
pub fn adamw_step<T: Real>(
    params: &mut [T],
    moment1: &mut [T],
    moment2: &mut [T],
    grads: &[T],
    decay_mask: &[u8],
    p: &AdamwParams,
) -> Result<(), KernelError> {
    const OP: &str = "adamw_step";
    let n = params.len();
    check_adamw(
        OP,
        n,
        [moment1.len(), moment2.len()],
        grads.len(),
        decay_mask.len(),
    )?;
    let (lr_t, eps_t) = p.corrected();
    let (b1, b2) = (T::from_f64(p.beta1), T::from_f64(p.beta2));
    let (one, keep) = (T::from_f64(1.0), T::from_f64(1.0 - p.lr * p.weight_decay));
    let (lr_t, eps_t) = (T::from_f64(lr_t), T::from_f64(eps_t));
    params
        .par_chunks_mut(CHUNK)
        .zip(
            moment1
                .par_chunks_mut(CHUNK)
                .zip(moment2.par_chunks_mut(CHUNK)),
        )
        .zip(grads.par_chunks(CHUNK).zip(decay_mask.par_chunks(CHUNK)))
        .for_each(|((th, (m, v)), (g, mask))| {
            widest(
                #[inline(always)]
                || {
                    for i in 0..th.len() {
                        if mask[i] != 0 {
                            th[i] *= keep;
                        }
                        m[i] = b1 * m[i] + (one - b1) * g[i];
                        v[i] = b2 * v[i] + (one - b2) * g[i] * g[i];
                        th[i] -= lr_t * m[i] / (v[i].sqrt() + eps_t);
                    }
                },
            )
        });
    Ok(())
}

/// EMA update number `step` (0-based): `ema = d·ema + (1 − d)·θ` with the threshold decay `d`,
/// which is returned (keep the last one for [`ema_apply`]).
pub fn ema_update<T: Real>(
    ema: &mut [T],
    params: &[T],
    step: u64,
    p: &EmaParams,
) -> Result<f64, KernelError> {
    check_len("ema_update", "params", params.len(), &[ema.len()])?;
    let d = p.threshold_decay(step);
    let (a, b) = (T::from_f64(d), T::from_f64(1.0 - d));
    crate::par::update2(ema, params, params, |e, t, _| a * e + b * t);
    Ok(d)
}

/// The bias-corrected EMA weights `out = ema / (1 − d_last^steps)`; `out = ema` before any update.
pub fn ema_apply<T: Real>(
    out: &mut [T],
    ema: &[T],
    last_decay: f64,
    steps: u64,
) -> Result<(), KernelError> {
    check_len("ema_apply", "ema", ema.len(), &[out.len()])?;
    let scale = if steps == 0 {
        1.0
    } else {
        1.0 / (1.0 - last_decay.powf(steps as f64))
    };
    let s = T::from_f64(scale);
    crate::par::map1(out, ema, |e| e * s);
    Ok(())
}
