//! Varifocal loss (spec §7.2): `Σ w·BCE(p, q) / S`, `w = α·p^γ·(1 − y) + q·y`, with the weight
//! **not** detached: its `p` term carries gradient, as in Paddle. `pred`, `target` (soft scores q)
//! and `label` (one-hot y) share any layout, e.g. `[B, L, classes]`.

use rayon::prelude::*;

use super::VarifocalParams;
use super::bce::{bce, bce_grad};
use crate::error::{KernelError, check_len};
use crate::real::Real;
use crate::simd::widest;

/// Elements per parallel task.
const CHUNK: usize = 4096;

/// x^γ, with PP-YOLOE's γ = 2 (and its γ − 1 = 1 in the gradient) as products, which
/// vectorise and equal `powf`'s correctly rounded result; other exponents call `powf`.
#[inline(always)]
fn pow_gamma<T: Real>(x: T, gamma: T) -> T {
    if gamma == T::from_f64(2.0) {
        x * x
    } else if gamma == T::ONE {
        x
    } else {
        x.powf(gamma)
    }
}

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
        .par_chunks(CHUNK)
        .zip(target.par_chunks(CHUNK).zip(label.par_chunks(CHUNK)))
        .map(|(x, (q, y))| {
            widest(
                #[inline(always)]
                || {
                    let mut s = [0.0f64; 8];
                    for (i, ((&x, &q), &y)) in x.iter().zip(q).zip(y).enumerate() {
                        let w = alpha * pow_gamma(x, gamma) * (T::ONE - y) + q * y;
                        s[i % 8] += (w * bce(x, q)).to_f64();
                    }
                    s.iter().sum::<f64>()
                },
            )
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
        .par_chunks_mut(CHUNK)
        .zip(
            pred.par_chunks(CHUNK)
                .zip(target.par_chunks(CHUNK).zip(label.par_chunks(CHUNK))),
        )
        .for_each(|(d, (x, (q, y)))| {
            widest(
                #[inline(always)]
                || {
                    for (d, ((&x, &q), &y)) in d.iter_mut().zip(x.iter().zip(q).zip(y)) {
                        let neg = T::ONE - y;
                        let w = alpha * pow_gamma(x, gamma) * neg + q * y;
                        let dw = alpha * gamma * pow_gamma(x, gamma - T::ONE) * neg;
                        *d += scale * (dw * bce(x, q) + w * bce_grad(x, q));
                    }
                },
            )
        });
    Ok(())
}
