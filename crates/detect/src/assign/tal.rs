//! Task-aligned assignment: top-k anchors over all levels by `score^α · IoU^β` (anchor point inside the
//! gt), soft targets rescaled per gt by (best IoU / best metric) of its positives.

use super::common::{gather, resolve_multiple, topk};
use super::{Assignment, GroundTruth};
use crate::anchors::Anchors;
use crate::boxes::{Box4, iou, point_inside};
use crate::error::{DetectError, Result};

/// TAL settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TalParams {
    /// Candidates per gt over all levels (13).
    pub topk: usize,
    /// Exponent of the class score (1).
    pub alpha: f32,
    /// Exponent of the IoU (6).
    pub beta: f32,
    /// Number of classes (also the background index).
    pub num_classes: usize,
}

/// Assign one image with TAL from detached predicted scores `[anchors × classes]` (probabilities) and
/// predicted boxes in pixels.
pub fn tal_assign(
    anchors: &Anchors,
    gt: &GroundTruth,
    pred_scores: &[f32],
    pred_boxes_px: &[Box4],
    p: &TalParams,
) -> Result<Assignment> {
    gt.validate(p.num_classes)?;
    let l = anchors.len();
    let c = p.num_classes;
    if pred_boxes_px.len() != l || pred_scores.len() != l * c {
        return Err(DetectError::Input(format!(
            "{} predicted boxes and {} scores for {l} anchors × {c} classes",
            pred_boxes_px.len(),
            pred_scores.len()
        )));
    }
    let n = gt.len();
    let mut ious = vec![0.0f32; n * l];
    let mut metric = vec![0.0f32; n * l];
    let mut mask = vec![0.0f32; n * l];
    for g in 0..n {
        let gb = &gt.boxes[g];
        // Padded rows carry label 0 in Paddle; any valid index gives the same (masked) result.
        let label = gt.labels[g].min(c - 1);
        let mut masked = vec![0.0f32; l];
        for a in 0..l {
            let v = iou(gb, &pred_boxes_px[a], 1e-9);
            ious[g * l + a] = v;
            let t = pred_scores[a * c + label].powf(p.alpha) * v.powf(p.beta);
            metric[g * l + a] = t;
            if point_inside(anchors.points_px[a], gb) {
                masked[a] = t;
            }
        }
        if gt.pad_mask[g] > 0.0 {
            for a in topk(&masked, p.topk, true) {
                if point_inside(anchors.points_px[a], gb) {
                    mask[g * l + a] = 1.0;
                }
            }
        }
    }
    resolve_multiple(&mut mask, &ious, n, l);
    let (mut out, _) = gather(mask, gt, c, l);
    // Normalised alignment metric.
    let mut norm = vec![0.0f32; l];
    for g in 0..n {
        let row = g * l..(g + 1) * l;
        let m = &out.mask_positive[row.clone()];
        let max_t = metric[row.clone()]
            .iter()
            .zip(m)
            .map(|(t, m)| t * m)
            .fold(0.0f32, f32::max);
        let max_iou = ious[row.clone()]
            .iter()
            .zip(m)
            .map(|(v, m)| v * m)
            .fold(0.0f32, f32::max);
        for a in 0..l {
            let t = metric[g * l + a] * m[a] / (max_t + 1e-9) * max_iou;
            norm[a] = norm[a].max(t);
        }
    }
    for (a, &s) in norm.iter().enumerate() {
        if out.is_positive(a) {
            out.scores[a * c + out.labels[a]] = s;
        }
    }
    Ok(out)
}
