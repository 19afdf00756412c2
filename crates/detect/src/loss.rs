//! PP-YOLOE head loss with its gradient: varifocal (on probabilities, weight not detached),
//! GIoU and DFL over positives weighted by their soft score, all divided by the normaliser
//! `max(Σ soft targets averaged over ranks, 1)`; L1 is computed for logging only.
//! Total = 1.0·cls + 2.5·iou + 0.5·dfl.

use crate::anchors::Anchors;
use crate::assign::Assignment;
use crate::boxes::Box4;
use crate::error::{DetectError, Result};

/// Loss weights.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossWeights {
    /// Varifocal.
    pub class: f32,
    /// GIoU.
    pub iou: f32,
    /// DFL.
    pub dfl: f32,
}

impl Default for LossWeights {
    fn default() -> Self {
        Self {
            class: 1.0,
            iou: 2.5,
            dfl: 0.5,
        }
    }
}

/// Loss values of one step (this rank).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LossValues {
    /// Weighted total (back-propagated).
    pub loss: f32,
    /// Varifocal / normaliser.
    pub cls: f32,
    /// Weighted GIoU / normaliser.
    pub iou: f32,
    /// Weighted DFL / normaliser.
    pub dfl: f32,
    /// Mean L1 between positive predicted and target boxes (grid units), logged only.
    pub l1: f32,
    /// Positive anchors.
    pub num_pos: usize,
    /// This rank's Σ soft targets.
    pub score_sum: f32,
    /// The normaliser used.
    pub normalizer: f32,
}

/// Predictions of a batch in anchor-major layout.
pub struct Predictions<'a> {
    /// Images.
    pub batch: usize,
    /// Classes.
    pub classes: usize,
    /// Bins per side.
    pub bins: usize,
    /// Probabilities `[batch, anchors, classes]`.
    pub scores: &'a [f32],
    /// DFL softmax `[batch, anchors, 4, bins]`.
    pub softmax: &'a [f32],
    /// Predicted boxes in grid units `[batch, anchors]`.
    pub boxes_grid: &'a [Box4],
}

/// Gradients of the total loss.
pub struct LossGrads {
    /// d loss / d probability `[batch, anchors, classes]`.
    pub dscores: Vec<f32>,
    /// d loss / d regression logit `[batch, anchors, 4, bins]`.
    pub dreg_logits: Vec<f32>,
}

const VFL_ALPHA: f32 = 0.75;

/// Varifocal loss of one (anchor, class) entry and its derivative w.r.t. the probability `p`
/// (`q` soft target, `y` 1 for the assigned class).
pub fn vfl(p: f32, q: f32, y: f32) -> (f32, f32) {
    // weight = α p² (1 − y) + q y ; bce with logs clamped at −100 (Paddle).
    let w = VFL_ALPHA * p * p * (1.0 - y) + q * y;
    let bce = -(q * p.ln().max(-100.0) + (1.0 - q) * (1.0 - p).ln().max(-100.0));
    let dw = 2.0 * VFL_ALPHA * p * (1.0 - y);
    let dbce = (p - q) / ((1.0 - p) * p).max(1e-12);
    (w * bce, dw * bce + w * dbce)
}

/// GIoU loss `1 − GIoU` (PaddleDetection's GIoULoss, eps 1e-10) and its gradient w.r.t. `p`.
pub fn giou_loss(p: &Box4, g: &Box4) -> (f32, [f32; 4]) {
    const EPS: f32 = 1e-10;
    let (ix1, ix2) = (p[0].max(g[0]), p[2].min(g[2]));
    let (iy1, iy2) = (p[1].max(g[1]), p[3].min(g[3]));
    let (wi_raw, hi_raw) = (ix2 - ix1, iy2 - iy1);
    let (wi, hi) = (wi_raw.max(0.0), hi_raw.max(0.0));
    let overlap = wi * hi;
    let area_p = (p[2] - p[0]) * (p[3] - p[1]);
    let area_g = (g[2] - g[0]) * (g[3] - g[1]);
    let union = area_p + area_g - overlap + EPS;
    let iou = overlap / union;
    let (cx1, cx2) = (p[0].min(g[0]), p[2].max(g[2]));
    let (cy1, cy2) = (p[1].min(g[1]), p[3].max(g[3]));
    let area_c = (cx2 - cx1) * (cy2 - cy1) + EPS;
    let loss = 1.0 - (iou - (area_c - union) / area_c);
    // loss = 1 − overlap/union + 1 − union/area_c
    let dl_doverlap = -1.0 / union;
    let dl_dunion = overlap / (union * union) - 1.0 / area_c;
    let dl_dareac = union / (area_c * area_c);
    let d_overlap = dl_doverlap - dl_dunion; // union contains −overlap
    let d_areap = dl_dunion;
    let mut grad = [0.0f32; 4];
    // overlap = relu(ix2 − ix1) · relu(iy2 − iy1); Paddle routes max/min ties to the second operand.
    let dwi = if wi_raw > 0.0 { d_overlap * hi } else { 0.0 };
    let dhi = if hi_raw > 0.0 { d_overlap * wi } else { 0.0 };
    if p[2] < g[2] {
        grad[2] += dwi;
    }
    if p[0] > g[0] {
        grad[0] -= dwi;
    }
    if p[3] < g[3] {
        grad[3] += dhi;
    }
    if p[1] > g[1] {
        grad[1] -= dhi;
    }
    // area_p = (x2 − x1)(y2 − y1)
    grad[2] += d_areap * (p[3] - p[1]);
    grad[0] -= d_areap * (p[3] - p[1]);
    grad[3] += d_areap * (p[2] - p[0]);
    grad[1] -= d_areap * (p[2] - p[0]);
    // area_c = (cx2 − cx1)(cy2 − cy1)
    let (cw, ch) = (cx2 - cx1, cy2 - cy1);
    if p[2] > g[2] {
        grad[2] += dl_dareac * ch;
    }
    if p[0] < g[0] {
        grad[0] -= dl_dareac * ch;
    }
    if p[3] > g[3] {
        grad[3] += dl_dareac * cw;
    }
    if p[1] < g[1] {
        grad[1] -= dl_dareac * cw;
    }
    (loss, grad)
}

/// DFL of one side from its softmax: `ce(left)·w_left + ce(right)·w_right` and d/d logits.
fn dfl_side(probs: &[f32], target: f32, grad: &mut [f32], scale: f32) -> f32 {
    let left = target.floor().max(0.0);
    let li = left as usize;
    let ri = (li + 1).min(probs.len() - 1);
    let wl = (left + 1.0) - target;
    let wr = 1.0 - wl;
    let ce = |k: usize| -(probs[k].max(f32::MIN_POSITIVE)).ln();
    let loss = ce(li) * wl + ce(ri) * wr;
    for (k, g) in grad.iter_mut().enumerate() {
        *g += scale * probs[k] * (wl + wr);
    }
    grad[li] -= scale * wl;
    grad[ri] -= scale * wr;
    loss
}

/// DFL of one box: mean over the 4 sides of `[4 × bins]` logits against distance targets
/// (already clipped to `[0, reg_max − 0.01]`), with d/d logits.
pub fn dfl_box(logits: &[f32], targets: [f32; 4]) -> (f32, Vec<f32>) {
    let bins = logits.len() / 4;
    let mut grad = vec![0.0f32; logits.len()];
    let mut total = 0.0;
    for side in 0..4 {
        let z = &logits[side * bins..(side + 1) * bins];
        let m = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let e: Vec<f32> = z.iter().map(|v| (v - m).exp()).collect();
        let sum: f32 = e.iter().sum();
        let probs: Vec<f32> = e.iter().map(|v| v / sum).collect();
        total += dfl_side(
            &probs,
            targets[side],
            &mut grad[side * bins..(side + 1) * bins],
            0.25,
        );
    }
    (total / 4.0, grad)
}

/// Loss values and gradients for a batch given its assignments (boxes in input pixels).
pub fn head_loss(
    pred: &Predictions,
    anchors: &Anchors,
    assignments: &[Assignment],
    normalizer: f32,
    weights: &LossWeights,
) -> Result<(LossValues, LossGrads)> {
    let (b, c, bins) = (pred.batch, pred.classes, pred.bins);
    let l = anchors.len();
    if assignments.len() != b
        || pred.scores.len() != b * l * c
        || pred.softmax.len() != b * l * 4 * bins
    {
        return Err(DetectError::Input(format!(
            "head_loss: {} assignments, {} scores, {} softmax values for batch {b}, {l} anchors, {c} classes",
            assignments.len(),
            pred.scores.len(),
            pred.softmax.len()
        )));
    }
    let s = normalizer;
    let mut v = LossValues {
        normalizer: s,
        ..Default::default()
    };
    let mut dscores = vec![0.0f32; b * l * c];
    let mut dreg = vec![0.0f32; b * l * 4 * bins];
    let reg_max = (bins - 1) as f32;
    let mut cls_sum = 0.0f64;
    let (mut iou_sum, mut dfl_sum, mut l1_sum) = (0.0f64, 0.0f64, 0.0f64);
    for (img, asg) in assignments.iter().enumerate() {
        v.score_sum += asg.score_sum();
        for a in 0..l {
            let row = (img * l + a) * c;
            let label = asg.labels[a];
            for k in 0..c {
                let y = if label == k { 1.0 } else { 0.0 };
                let (lv, dp) = vfl(pred.scores[row + k], asg.scores[a * c + k], y);
                cls_sum += lv as f64;
                dscores[row + k] = weights.class * dp / s;
            }
            if !asg.is_positive(a) {
                continue;
            }
            v.num_pos += 1;
            let weight: f32 = asg.scores[a * c..(a + 1) * c].iter().sum();
            let stride = anchors.strides[a];
            let gt = asg.bboxes[a].map(|x| x / stride);
            let pb = pred.boxes_grid[img * l + a];
            let (giou, gbox) = giou_loss(&pb, &gt);
            iou_sum += (giou * weight) as f64;
            l1_sum += pb
                .iter()
                .zip(&gt)
                .map(|(x, y)| (x - y).abs() as f64)
                .sum::<f64>();
            let [ax, ay] = anchors.points_grid[a];
            let targets = [ax - gt[0], ay - gt[1], gt[2] - ax, gt[3] - ay]
                .map(|t| t.clamp(0.0, reg_max - 0.01));
            // d box / d distance: x1 = ax − l, y1 = ay − t, x2 = ax + r, y2 = ay + b.
            let ddist =
                [-gbox[0], -gbox[1], gbox[2], gbox[3]].map(|g| g * weights.iou * weight / s);
            let mut side_loss = 0.0f32;
            for side in 0..4 {
                let off = ((img * l + a) * 4 + side) * bins;
                let probs = &pred.softmax[off..off + bins];
                let grad = &mut dreg[off..off + bins];
                side_loss += dfl_side(probs, targets[side], grad, weights.dfl * weight / (4.0 * s));
                // Expectation E = Σ k p_k: dE/dlogit_k = p_k (k − E).
                let e: f32 = probs.iter().enumerate().map(|(k, p)| k as f32 * p).sum();
                for (k, g) in grad.iter_mut().enumerate() {
                    *g += ddist[side] * probs[k] * (k as f32 - e);
                }
            }
            dfl_sum += (side_loss / 4.0 * weight) as f64;
        }
    }
    v.cls = (cls_sum / s as f64) as f32;
    v.iou = (iou_sum / s as f64) as f32;
    v.dfl = (dfl_sum / s as f64) as f32;
    v.l1 = if v.num_pos > 0 {
        (l1_sum / (4 * v.num_pos) as f64) as f32
    } else {
        0.0
    };
    v.loss = weights.class * v.cls + weights.iou * v.iou + weights.dfl * v.dfl;
    Ok((
        v,
        LossGrads {
            dscores,
            dreg_logits: dreg,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn giou_gradient_matches_finite_differences() {
        let p = [1.0f32, 1.5, 5.0, 6.0];
        let g = [2.0f32, 0.0, 6.5, 5.0];
        let (_, grad) = giou_loss(&p, &g);
        for i in 0..4 {
            let h = 1e-3f32;
            let (mut a, mut b) = (p, p);
            a[i] += h;
            b[i] -= h;
            let fd = (giou_loss(&a, &g).0 - giou_loss(&b, &g).0) / (2.0 * h);
            assert!((fd - grad[i]).abs() < 2e-3, "{i}: {fd} vs {}", grad[i]);
        }
    }
}
