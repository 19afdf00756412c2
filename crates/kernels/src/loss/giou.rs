//! Weighted GIoU loss over positive anchors (spec §7.3): boxes `[P, 4]` as x1, y1, x2, y2 in grid
//! units, weights `[P]` (each positive's soft score). Loss per box `1 − GIoU` with Paddle's
//! `GIoULoss` eps 1e-10 in the union and the enclosing area. Gradients of min/max/clip follow
//! Paddle's rules (the predicted box gets the gradient only where it strictly wins).

use super::{BoxLossParams, check_giou_per_box};
use crate::error::{KernelError, check_len};
use crate::real::Real;

const EPS: f64 = 1e-10;

/// `1 − GIoU(pred, gt)` and its gradient with respect to `pred`.
fn giou_box<T: Real>(b: &[T], g: &[T]) -> (T, [T; 4]) {
    let eps = T::from_f64(EPS);
    let (x1, y1, x2, y2) = (b[0], b[1], b[2], b[3]);
    let (gx1, gy1, gx2, gy2) = (g[0], g[1], g[2], g[3]);
    let (ix1, iy1, ix2, iy2) = (x1.max(gx1), y1.max(gy1), x2.min(gx2), y2.min(gy2));
    let (iw_raw, ih_raw) = (ix2 - ix1, iy2 - iy1);
    let (iw, ih) = (iw_raw.max(T::ZERO), ih_raw.max(T::ZERO));
    let inter = iw * ih;
    let (w1, h1) = (x2 - x1, y2 - y1);
    let area1 = w1 * h1;
    let area2 = (gx2 - gx1) * (gy2 - gy1);
    let union = area1 + area2 - inter + eps;
    let iou = inter / union;
    let (cx1, cy1, cx2, cy2) = (x1.min(gx1), y1.min(gy1), x2.max(gx2), y2.max(gy2));
    let (cw, ch) = (cx2 - cx1, cy2 - cy1);
    let area_c = cw * ch + eps;
    let loss = T::ONE - (iou - (area_c - union) / area_c);
    // loss = 2 − I/U − U/C
    let d_union = inter / (union * union) - T::ONE / area_c;
    let d_inter = -T::ONE / union - d_union;
    let d_c = union / (area_c * area_c);
    let (d_iw, d_ih) = (
        if iw_raw > T::ZERO {
            d_inter * ih
        } else {
            T::ZERO
        },
        if ih_raw > T::ZERO {
            d_inter * iw
        } else {
            T::ZERO
        },
    );
    let ind = |c: bool| if c { T::ONE } else { T::ZERO };
    let mut grad = [T::ZERO; 4];
    // area1 terms
    grad[0] += -d_union * h1;
    grad[2] += d_union * h1;
    grad[1] += -d_union * w1;
    grad[3] += d_union * w1;
    // intersection: ix1 = max(x1, gx1), ix2 = min(x2, gx2)
    grad[0] += -d_iw * ind(x1 > gx1);
    grad[2] += d_iw * ind(x2 < gx2);
    grad[1] += -d_ih * ind(y1 > gy1);
    grad[3] += d_ih * ind(y2 < gy2);
    // enclosing box: cx1 = min(x1, gx1), cx2 = max(x2, gx2)
    grad[0] += -d_c * ch * ind(x1 < gx1);
    grad[2] += d_c * ch * ind(x2 > gx2);
    grad[1] += -d_c * cw * ind(y1 < gy1);
    grad[3] += d_c * cw * ind(y2 > gy2);
    (loss, grad)
}

/// Per-box `1 − GIoU` (unweighted) into `loss` `[P]`.
pub fn giou_per_box<T: Real>(loss: &mut [T], pred: &[T], target: &[T]) -> Result<(), KernelError> {
    const OP: &str = "giou_per_box";
    check_giou_per_box(OP, loss.len(), pred.len(), target.len())?;
    for (i, l) in loss.iter_mut().enumerate() {
        *l = giou_box(&pred[4 * i..4 * i + 4], &target[4 * i..4 * i + 4]).0;
    }
    Ok(())
}

/// `Σ (1 − GIoU)·weight / S` (0 when there are no positives).
pub fn giou_loss_forward<T: Real>(
    pred: &[T],
    target: &[T],
    weight: &[T],
    p: &BoxLossParams,
) -> Result<T, KernelError> {
    super::check_boxes(
        "giou_loss_forward",
        pred.len(),
        target.len(),
        weight.len(),
        p,
    )?;
    let s: T = (0..weight.len())
        .map(|i| giou_box(&pred[4 * i..4 * i + 4], &target[4 * i..4 * i + 4]).0 * weight[i])
        .sum();
    Ok(s / T::from_f64(p.normalizer))
}

/// `dpred += dloss · weight / S · d(1 − GIoU)/d pred`.
pub fn giou_loss_backward<T: Real>(
    dpred: &mut [T],
    pred: &[T],
    target: &[T],
    weight: &[T],
    dloss: T,
    p: &BoxLossParams,
) -> Result<(), KernelError> {
    const OP: &str = "giou_loss_backward";
    super::check_boxes(OP, pred.len(), target.len(), weight.len(), p)?;
    check_len(OP, "dpred", dpred.len(), &[weight.len(), 4])?;
    let scale = dloss / T::from_f64(p.normalizer);
    for i in 0..weight.len() {
        let (_, g) = giou_box(&pred[4 * i..4 * i + 4], &target[4 * i..4 * i + 4]);
        for (d, gv) in dpred[4 * i..4 * i + 4].iter_mut().zip(g) {
            *d += scale * weight[i] * gv;
        }
    }
    Ok(())
}
