//! PP-YOLOE head loss with its gradient: varifocal (on probabilities, weight not detached),
//! GIoU and DFL over positives weighted by their soft score, all divided by the normaliser
//! `max(Σ soft targets averaged over ranks, 1)`; L1 is computed for logging only.
//! Total = 1.0·cls + 2.5·iou + 0.5·dfl.

use ringdet_kernels::Cpu;
use ringdet_kernels::arena::Pooled;
use ringdet_kernels::backend::{DflOps, LossOps};
use ringdet_kernels::dfl::DflParams;
use ringdet_kernels::loss::{BoxLossParams, VarifocalParams};

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
    /// Regression logits `[batch, anchors, 4, bins]`.
    pub reg_logits: &'a [f32],
    /// Predicted boxes in grid units `[batch, anchors]`.
    pub boxes_grid: &'a [Box4],
}

/// Gradients of the total loss.
pub struct LossGrads {
    /// d loss / d probability `[batch, anchors, classes]`.
    pub dscores: Pooled<f32>,
    /// d loss / d regression logit `[batch, anchors, 4, bins]`.
    pub dreg_logits: Pooled<f32>,
}

/// Loss values and gradients for a batch given its assignments (boxes in input pixels). The three
/// losses are the kernels' `varifocal_loss_*`, `giou_loss_*` and `dfl_loss_*`; this function
/// gathers the positives, weights and targets and routes the box gradient through the DFL
/// expectation.
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
        || pred.reg_logits.len() != b * l * 4 * bins
    {
        return Err(DetectError::Input(format!(
            "head_loss: {} assignments, {} scores, {} softmax values for batch {b}, {l} anchors, {c} classes",
            assignments.len(),
            pred.scores.len(),
            pred.softmax.len()
        )));
    }
    let kerr = |op: &'static str| {
        move |e: ringdet_kernels::KernelError| DetectError::Kernel {
            op,
            message: e.to_string(),
        }
    };
    let s = normalizer as f64;
    let mut v = LossValues {
        normalizer,
        ..Default::default()
    };
    // Classification targets over every (anchor, class).
    let mut target = Pooled::<f32>::zeroed(b * l * c);
    let mut label = Pooled::<f32>::zeroed(b * l * c);
    // Positives, gathered.
    let (mut pos, mut pboxes, mut gboxes, mut pweights, mut ptargets, mut plogits) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    let reg_max = (bins - 1) as f32;
    for (img, asg) in assignments.iter().enumerate() {
        v.score_sum += asg.score_sum();
        target[img * l * c..(img + 1) * l * c].copy_from_slice(&asg.scores);
        for a in 0..l {
            if !asg.is_positive(a) {
                continue;
            }
            label[(img * l + a) * c + asg.labels[a]] = 1.0;
            let weight: f32 = asg.scores[a * c..(a + 1) * c].iter().sum();
            let stride = anchors.strides[a];
            let gt = asg.bboxes[a].map(|x| x / stride);
            let [ax, ay] = anchors.points_grid[a];
            pos.push(img * l + a);
            pboxes.extend_from_slice(&pred.boxes_grid[img * l + a]);
            gboxes.extend_from_slice(&gt);
            pweights.push(weight);
            ptargets.extend(
                [ax - gt[0], ay - gt[1], gt[2] - ax, gt[3] - ay]
                    .map(|t| t.clamp(0.0, reg_max - 0.01)),
            );
            let off = (img * l + a) * 4 * bins;
            plogits.extend_from_slice(&pred.reg_logits[off..off + 4 * bins]);
        }
    }
    v.num_pos = pos.len();
    let vp = VarifocalParams {
        normalizer: s,
        ..VarifocalParams::default()
    };
    // The losses run on the host: assignment and the positive gather above are host logic.
    let mut out = [0.0f32];
    Cpu.varifocal_loss_forward(&mut out, pred.scores, &target, &label, &vp)
        .map_err(kerr("varifocal_loss_forward"))?;
    v.cls = out[0];
    let mut dscores = Pooled::<f32>::zeroed(b * l * c);
    Cpu.varifocal_loss_backward(
        &mut dscores,
        pred.scores,
        &target,
        &label,
        weights.class,
        &vp,
    )
    .map_err(kerr("varifocal_loss_backward"))?;
    let mut dreg = Pooled::<f32>::zeroed(b * l * 4 * bins);
    if !pos.is_empty() {
        let bp = BoxLossParams {
            bins,
            normalizer: s,
        };
        Cpu.giou_loss_forward(&mut out, &pboxes, &gboxes, &pweights, &bp)
            .map_err(kerr("giou_loss_forward"))?;
        v.iou = out[0];
        Cpu.dfl_loss_forward(&mut out, &plogits, &ptargets, &pweights, &bp)
            .map_err(kerr("dfl_loss_forward"))?;
        v.dfl = out[0];
        let mut dbox = vec![0.0f32; pboxes.len()];
        Cpu.giou_loss_backward(&mut dbox, &pboxes, &gboxes, &pweights, weights.iou, &bp)
            .map_err(kerr("giou_loss_backward"))?;
        let mut dlog = vec![0.0f32; plogits.len()];
        Cpu.dfl_loss_backward(&mut dlog, &plogits, &ptargets, &pweights, weights.dfl, &bp)
            .map_err(kerr("dfl_loss_backward"))?;
        // Box gradient → distances (x1 = ax − l, y1 = ay − t, x2 = ax + r, y2 = ay + b) → logits
        // through the expectation Σ k·p_k.
        let ddist: Vec<f32> = dbox
            .chunks_exact(4)
            .flat_map(|g| [-g[0], -g[1], g[2], g[3]])
            .collect();
        let mut probs = Vec::with_capacity(plogits.len());
        for &a in &pos {
            probs.extend_from_slice(&pred.softmax[a * 4 * bins..(a + 1) * 4 * bins]);
        }
        let dp = DflParams {
            outer: pos.len(),
            sides: 4,
            bins,
            inner: 1,
        };
        let mut dist = vec![0.0f32; pos.len() * 4];
        Cpu.dfl_integral_forward(&mut dist, &probs, &dp)
            .map_err(kerr("dfl_integral_forward"))?;
        Cpu.dfl_decode_backward(&mut dlog, &ddist, &probs, &dist, &dp)
            .map_err(kerr("dfl_decode_backward"))?;
        for (i, &a) in pos.iter().enumerate() {
            dreg[a * 4 * bins..(a + 1) * 4 * bins]
                .copy_from_slice(&dlog[i * 4 * bins..(i + 1) * 4 * bins]);
        }
        let l1: f64 = pboxes
            .iter()
            .zip(&gboxes)
            .map(|(x, y)| (x - y).abs() as f64)
            .sum();
        v.l1 = (l1 / pboxes.len() as f64) as f32;
    }
    v.loss = weights.class * v.cls + weights.iou * v.iou + weights.dfl * v.dfl;
    Ok((
        v,
        LossGrads {
            dscores,
            dreg_logits: dreg,
        },
    ))
}
