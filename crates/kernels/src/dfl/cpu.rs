//! CPU DFL decode. Forward overwrites; backward accumulates.

use rayon::prelude::*;

use super::{DflParams, check_dfl_buffers};
use crate::error::KernelError;
use crate::real::Real;

/// Stable softmax over the bins: `prob = softmax(logits)`.
pub fn softmax_bins_forward<T: Real>(
    prob: &mut [T],
    logits: &[T],
    p: &DflParams,
) -> Result<(), KernelError> {
    const OP: &str = "softmax_bins_forward";
    check_dfl_buffers(
        OP,
        p,
        &[("prob", prob.len()), ("logits", logits.len())],
        &[],
    )?;
    let (block, inner) = (p.bins * p.inner, p.inner);
    if block == 0 {
        return Ok(());
    }
    prob.par_chunks_mut(block)
        .zip(logits.par_chunks(block))
        .for_each(|(pr, lg)| {
            for i in 0..inner {
                let mut m = T::MIN;
                for k in 0..p.bins {
                    m = m.max(lg[k * inner + i]);
                }
                let mut s = T::ZERO;
                for k in 0..p.bins {
                    let e = (lg[k * inner + i] - m).exp();
                    pr[k * inner + i] = e;
                    s += e;
                }
                let inv = T::ONE / s;
                for k in 0..p.bins {
                    pr[k * inner + i] *= inv;
                }
            }
        });
    Ok(())
}

/// `dlogits += prob·(dprob − Σ_k prob·dprob)`.
pub fn softmax_bins_backward<T: Real>(
    dlogits: &mut [T],
    dprob: &[T],
    prob: &[T],
    p: &DflParams,
) -> Result<(), KernelError> {
    const OP: &str = "softmax_bins_backward";
    let logits_like = [
        ("dlogits", dlogits.len()),
        ("dprob", dprob.len()),
        ("prob", prob.len()),
    ];
    check_dfl_buffers(OP, p, &logits_like, &[])?;
    let (block, inner) = (p.bins * p.inner, p.inner);
    if block == 0 {
        return Ok(());
    }
    dlogits
        .par_chunks_mut(block)
        .zip(dprob.par_chunks(block).zip(prob.par_chunks(block)))
        .for_each(|(dl, (dp, pr))| {
            for i in 0..inner {
                let dot: T = (0..p.bins)
                    .map(|k| pr[k * inner + i] * dp[k * inner + i])
                    .sum();
                for k in 0..p.bins {
                    let j = k * inner + i;
                    dl[j] += pr[j] * (dp[j] - dot);
                }
            }
        });
    Ok(())
}

/// `dist = Σ_k k·prob_k`.
pub fn dfl_integral_forward<T: Real>(
    dist: &mut [T],
    prob: &[T],
    p: &DflParams,
) -> Result<(), KernelError> {
    const OP: &str = "dfl_integral_forward";
    check_dfl_buffers(OP, p, &[("prob", prob.len())], &[("dist", dist.len())])?;
    let (block, inner) = (p.bins * p.inner, p.inner);
    if block == 0 {
        return Ok(());
    }
    dist.par_chunks_mut(inner)
        .zip(prob.par_chunks(block))
        .for_each(|(d, pr)| {
            for (i, o) in d.iter_mut().enumerate() {
                *o = (0..p.bins)
                    .map(|k| T::from_usize(k) * pr[k * inner + i])
                    .sum();
            }
        });
    Ok(())
}

/// `dprob_k += k·ddist`.
pub fn dfl_integral_backward<T: Real>(
    dprob: &mut [T],
    ddist: &[T],
    p: &DflParams,
) -> Result<(), KernelError> {
    const OP: &str = "dfl_integral_backward";
    check_dfl_buffers(OP, p, &[("dprob", dprob.len())], &[("ddist", ddist.len())])?;
    let (block, inner) = (p.bins * p.inner, p.inner);
    if block == 0 {
        return Ok(());
    }
    dprob
        .par_chunks_mut(block)
        .zip(ddist.par_chunks(inner))
        .for_each(|(dp, dd)| {
            for k in 0..p.bins {
                let kk = T::from_usize(k);
                for (o, &g) in dp[k * inner..(k + 1) * inner].iter_mut().zip(dd) {
                    *o += kk * g;
                }
            }
        });
    Ok(())
}

/// Fused decode backward: `dlogits_k += prob_k·(k − dist)·ddist`.
pub fn dfl_decode_backward<T: Real>(
    dlogits: &mut [T],
    ddist: &[T],
    prob: &[T],
    dist: &[T],
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
    let (block, inner) = (p.bins * p.inner, p.inner);
    if block == 0 {
        return Ok(());
    }
    dlogits
        .par_chunks_mut(block)
        .zip(
            prob.par_chunks(block)
                .zip(ddist.par_chunks(inner).zip(dist.par_chunks(inner))),
        )
        .for_each(|(dl, (pr, (dd, d)))| {
            for k in 0..p.bins {
                let kk = T::from_usize(k);
                for i in 0..inner {
                    let j = k * inner + i;
                    dl[j] += pr[j] * (kk - d[i]) * dd[i];
                }
            }
        });
    Ok(())
}
