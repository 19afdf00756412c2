//! Varifocal loss (spec §7.2): `Σ w·BCE(p, q) / S`, `w = α·p^γ·(1 − y) + q·y`, with the weight
//! **not** detached: its `p` term carries gradient, as in Paddle. `pred`, `target` (soft scores q)
//! and `label` (one-hot y) share any layout, e.g. `[B, L, classes]`.

use rayon::prelude::*;

use super::VarifocalParams;
use super::bce::{bce, bce_grad};
use crate::error::{KernelError, check_len};
use crate::real::Real;

/// The loss `Σ w·BCE(p, q) / S`.
pub fn varifocal_loss_forward<T: Real>(
    pred: &[T],
    target: &[T],
    label: &[T],
    p: &VarifocalParams,
) -> Result<T, KernelError> {
    const OP: &str = "varifocal_loss_forward";
    super::check_varifocal(OP, pred.len(), target.len(), label.len(), p)?;
    let (alpha, gamma) = (T::from_f64(p.alpha), T::from_f64(p.gamma));
    let sum: f64 = pred
        .par_iter()
        .zip(target.par_iter().zip(label.par_iter()))
        .map(|(&x, (&q, &y))| {
            let w = alpha * x.powf(gamma) * (T::ONE - y) + q * y;
            (w * bce(x, q)).to_f64()
        })
        .sum();
    Ok(T::from_f64(sum / p.normalizer))
}

/// `dpred += dloss / S · (dw/dp · BCE + w · dBCE/dp)`, `dw/dp = α·γ·p^(γ−1)·(1 − y)`.
pub fn varifocal_loss_backward<T: Real>(
    dpred: &mut [T],
    pred: &[T],
    target: &[T],
    label: &[T],
    dloss: T,
    p: &VarifocalParams,
) -> Result<(), KernelError> {
    const OP: &str = "varifocal_loss_backward";
    check_len(OP, "pred", pred.len(), &[dpred.len()])?;
    super::check_varifocal(OP, pred.len(), target.len(), label.len(), p)?;
    let (alpha, gamma) = (T::from_f64(p.alpha), T::from_f64(p.gamma));
    let scale = dloss / T::from_f64(p.normalizer);
    dpred
        .par_iter_mut()
        .zip(pred.par_iter().zip(target.par_iter().zip(label.par_iter())))
        .for_each(|(d, (&x, (&q, &y)))| {
            let neg = T::ONE - y;
            let w = alpha * x.powf(gamma) * neg + q * y;
            let dw = alpha * gamma * x.powf(gamma - T::ONE) * neg;
            *d += scale * (dw * bce(x, q) + w * bce_grad(x, q));
        });
    Ok(())
}
