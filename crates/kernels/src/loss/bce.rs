//! Binary cross-entropy on probabilities, Paddle's `F.binary_cross_entropy`: each log clamped
//! at −100 in the forward; the backward is Paddle's `(p − q) / max(p·(1 − p), 1e-12)`.

use super::check_bce;
use crate::error::KernelError;
use crate::real::Real;

const LOG_CLAMP: f64 = -100.0;
const GRAD_EPS: f64 = 1e-12;

/// `−(q·max(ln p, −100) + (1 − q)·max(ln(1 − p), −100))` for one element.
#[inline(always)]
pub fn bce<T: Real>(p: T, q: T) -> T {
    let clamp = T::from_f64(LOG_CLAMP);
    -(q * p.ln_vectorisable().max(clamp) + (T::ONE - q) * (T::ONE - p).ln_vectorisable().max(clamp))
}

/// d bce / d p for one element (Paddle's formula).
#[inline(always)]
pub fn bce_grad<T: Real>(p: T, q: T) -> T {
    (p - q) / (p * (T::ONE - p)).max(T::from_f64(GRAD_EPS))
}

/// Elementwise `loss = bce(pred, target)` (no reduction).
pub fn bce_forward<T: Real>(loss: &mut [T], pred: &[T], target: &[T]) -> Result<(), KernelError> {
    const OP: &str = "bce_forward";
    check_bce(
        OP,
        loss.len(),
        &[("pred", pred.len()), ("target", target.len())],
    )?;
    for ((l, &p), &q) in loss.iter_mut().zip(pred).zip(target) {
        *l = bce(p, q);
    }
    Ok(())
}

/// `dpred += dloss · d bce / d pred`.
pub fn bce_backward<T: Real>(
    dpred: &mut [T],
    dloss: &[T],
    pred: &[T],
    target: &[T],
) -> Result<(), KernelError> {
    const OP: &str = "bce_backward";
    let lens = [
        ("dloss", dloss.len()),
        ("pred", pred.len()),
        ("target", target.len()),
    ];
    check_bce(OP, dpred.len(), &lens)?;
    for (((d, &g), &p), &q) in dpred.iter_mut().zip(dloss).zip(pred).zip(target) {
        *d += g * bce_grad(p, q);
    }
    Ok(())
}
