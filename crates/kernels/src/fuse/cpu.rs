//! CPU folding (runs once at export; plain loops).

use super::{FoldParams, RepVggParams};
use crate::error::{KernelError, check_len};
use crate::real::Real;

/// `w' = w·γ/σ`, `b' = β + (b − μ)·γ/σ` with `σ = sqrt(var + eps)` (`b = 0` without a conv bias).
#[allow(clippy::too_many_arguments)]
pub fn fold_conv_bn<T: Real>(
    w_out: &mut [T],
    b_out: &mut [T],
    w: &[T],
    bias: Option<&[T]>,
    gamma: &[T],
    beta: &[T],
    mean: &[T],
    var: &[T],
    p: &FoldParams,
) -> Result<(), KernelError> {
    const OP: &str = "fold_conv_bn";
    let k = p.out_channels;
    check_len(OP, "w", w.len(), &[k, p.per_out])?;
    check_len(OP, "w_out", w_out.len(), &[k, p.per_out])?;
    let vecs = [
        ("b_out", &*b_out),
        ("gamma", gamma),
        ("beta", beta),
        ("mean", mean),
        ("var", var),
    ];
    for (what, v) in vecs {
        check_len(OP, what, v.len(), &[k])?;
    }
    if let Some(b) = bias {
        check_len(OP, "bias", b.len(), &[k])?;
    }
    for c in 0..k {
        let scale = gamma[c] / (var[c] + T::from_f64(p.eps)).sqrt();
        for (o, &v) in w_out[c * p.per_out..(c + 1) * p.per_out]
            .iter_mut()
            .zip(&w[c * p.per_out..])
        {
            *o = v * scale;
        }
        let b = bias.map_or(T::ZERO, |b| b[c]);
        b_out[c] = beta[c] + (b - mean[c]) * scale;
    }
    Ok(())
}

/// `w = w3 + α·pad(w1)` (the 1×1 weight in the centre of a zero 3×3), `b = b3 + α·b1`, from the
/// already BN-folded branches.
pub fn repvgg_fuse<T: Real>(
    w_out: &mut [T],
    b_out: &mut [T],
    w3: &[T],
    b3: &[T],
    w1: &[T],
    b1: &[T],
    p: &RepVggParams,
) -> Result<(), KernelError> {
    const OP: &str = "repvgg_fuse";
    let (k, c) = (p.out_channels, p.in_channels);
    check_len(OP, "w3", w3.len(), &[k, c, 3, 3])?;
    check_len(OP, "w_out", w_out.len(), &[k, c, 3, 3])?;
    check_len(OP, "w1", w1.len(), &[k, c, 1, 1])?;
    for (what, len) in [("b3", b3.len()), ("b1", b1.len()), ("b_out", b_out.len())] {
        check_len(OP, what, len, &[k])?;
    }
    let a = T::from_f64(p.alpha);
    w_out.copy_from_slice(w3);
    for (i, &v) in w1.iter().enumerate() {
        w_out[i * 9 + 4] += a * v;
    }
    for ((o, &x), &y) in b_out.iter_mut().zip(b3).zip(b1) {
        *o = x + a * y;
    }
    Ok(())
}
