//! Distribution focal loss over positive anchors (spec §7.4): logits `[P, 4, bins]` (anchor-major),
//! target distances `[P, 4]` in grid units (see [`dfl_targets`]), weights `[P]`.
//! Per side `CE(left)·(right − t) + CE(right)·(t − left)` with `left = floor(t)`; per anchor the
//! mean over the 4 sides times the weight; summed and divided by `S`.

use super::{BoxLossParams, check_dfl_targets};
use crate::error::{KernelError, check_len, param};
use crate::real::Real;

/// Targets `(ax − x1, ay − y1, x2 − ax, y2 − ay)` clipped to `[0, reg_max − 0.01]`, from anchor
/// points `[P, 2]` and boxes `[P, 4]`, all in grid units.
pub fn dfl_targets<T: Real>(
    target: &mut [T],
    anchor_points: &[T],
    boxes: &[T],
    reg_max: usize,
) -> Result<(), KernelError> {
    const OP: &str = "dfl_targets";
    let n = check_dfl_targets(OP, target.len(), anchor_points.len(), boxes.len())?;
    let hi = T::from_f64(reg_max as f64 - 0.01);
    for i in 0..n {
        let (ax, ay) = (anchor_points[2 * i], anchor_points[2 * i + 1]);
        let b = &boxes[4 * i..4 * i + 4];
        let t = [ax - b[0], ay - b[1], b[2] - ax, b[3] - ay];
        for (o, v) in target[4 * i..4 * i + 4].iter_mut().zip(t) {
            *o = v.max(T::ZERO).min(hi);
        }
    }
    Ok(())
}

fn check<T: Real>(
    op: &'static str,
    logits: &[T],
    target: &[T],
    weight: &[T],
    p: &BoxLossParams,
) -> Result<(), KernelError> {
    super::check_dfl(op, logits.len(), target.len(), weight.len(), p)?;
    // The host also checks the target values (a device kernel would clamp them silently).
    let hi = T::from_usize(p.bins.saturating_sub(1));
    if let Some(t) = target.iter().find(|&&t| !(t >= T::ZERO && t < hi)) {
        return Err(param(
            op,
            format!(
                "target distance {t:?} is outside [0, {})",
                p.bins.saturating_sub(1)
            ),
        ));
    }
    Ok(())
}

/// Log-sum-exp of one side's logits.
fn lse<T: Real>(l: &[T]) -> T {
    let m = l.iter().copied().fold(T::MIN, T::max);
    m + l.iter().map(|&v| (v - m).exp()).sum::<T>().ln()
}

/// Splits a target into `(left, right, w_left, w_right)` like Paddle.
fn split<T: Real>(t: T) -> (usize, usize, T, T) {
    let left = t.floor();
    let wl = left + T::ONE - t;
    (
        left.to_f64() as usize,
        left.to_f64() as usize + 1,
        wl,
        T::ONE - wl,
    )
}

/// The loss `Σ_a weight_a · mean_sides(dfl_side) / S`.
pub fn dfl_loss_forward<T: Real>(
    logits: &[T],
    target: &[T],
    weight: &[T],
    p: &BoxLossParams,
) -> Result<T, KernelError> {
    check("dfl_loss_forward", logits, target, weight, p)?;
    let mut sum = T::ZERO;
    for (a, &w) in weight.iter().enumerate() {
        let mut side_sum = T::ZERO;
        for s in 0..4 {
            let l = &logits[(4 * a + s) * p.bins..(4 * a + s + 1) * p.bins];
            let (left, right, wl, wr) = split(target[4 * a + s]);
            let z = lse(l);
            side_sum += (z - l[left]) * wl + (z - l[right]) * wr;
        }
        sum += side_sum / T::from_f64(4.0) * w;
    }
    Ok(sum / T::from_f64(p.normalizer))
}

/// `dlogits += dloss · weight / (4·S) · (softmax − w_left·e_left − w_right·e_right)`.
pub fn dfl_loss_backward<T: Real>(
    dlogits: &mut [T],
    logits: &[T],
    target: &[T],
    weight: &[T],
    dloss: T,
    p: &BoxLossParams,
) -> Result<(), KernelError> {
    const OP: &str = "dfl_loss_backward";
    check(OP, logits, target, weight, p)?;
    check_len(OP, "dlogits", dlogits.len(), &[weight.len(), 4, p.bins])?;
    let scale = dloss / T::from_f64(4.0 * p.normalizer);
    for (a, &w) in weight.iter().enumerate() {
        for s in 0..4 {
            let range = (4 * a + s) * p.bins..(4 * a + s + 1) * p.bins;
            let (l, d) = (&logits[range.clone()], &mut dlogits[range]);
            let (left, right, wl, wr) = split(target[4 * a + s]);
            let z = lse(l);
            let k = scale * w;
            for (j, (dv, &lv)) in d.iter_mut().zip(l).enumerate() {
                let mut g = (lv - z).exp() * (wl + wr);
                if j == left {
                    g -= wl;
                }
                if j == right {
                    g -= wr;
                }
                *dv += k * g;
            }
        }
    }
    Ok(())
}
