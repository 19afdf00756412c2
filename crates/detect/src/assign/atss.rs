//! ATSS (adaptive training sample selection): per level the `topk` anchors nearest each gt centre,
//! IoU threshold mean + unbiased std over those candidates, centre strictly inside the gt.

use super::common::{gather, resolve_multiple, topk};
use super::{Assignment, GroundTruth};
use crate::anchors::Anchors;
use crate::boxes::{Box4, center, iou, point_inside};
use crate::error::{DetectError, Result};

/// ATSS settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AtssParams {
    /// Candidates per level (9).
    pub topk: usize,
    /// Number of classes (also the background index).
    pub num_classes: usize,
}

/// Assign one image with ATSS. `pred_boxes_px` are the detached predicted boxes in pixels; the soft
/// target of a positive is its IoU with the assigned gt.
pub fn atss_assign(
    anchors: &Anchors,
    gt: &GroundTruth,
    pred_boxes_px: &[Box4],
    p: &AtssParams,
) -> Result<Assignment> {
    gt.validate(p.num_classes)?;
    let l = anchors.len();
    if pred_boxes_px.len() != l {
        return Err(DetectError::Input(format!(
            "{} predicted boxes for {l} anchors",
            pred_boxes_px.len()
        )));
    }
    let n = gt.len();
    let mut ious = vec![0.0f32; n * l];
    let mut mask = vec![0.0f32; n * l];
    for g in 0..n {
        let gb = &gt.boxes[g];
        let gc = center(gb);
        let row = &mut ious[g * l..(g + 1) * l];
        for (a, v) in row.iter_mut().enumerate() {
            *v = iou(gb, &anchors.boxes_px[a], 1e-10);
        }
        // Per level: the topk nearest anchor centres.
        let mut candidates = Vec::new();
        let mut start = 0;
        for &count in &anchors.num_per_level {
            let dist: Vec<f32> = (start..start + count)
                .map(|a| {
                    let ac = center(&anchors.boxes_px[a]);
                    let (dx, dy) = (gc[0] - ac[0], gc[1] - ac[1]);
                    (dx * dx + dy * dy).sqrt()
                })
                .collect();
            candidates.extend(topk(&dist, p.topk, false).into_iter().map(|i| i + start));
            start += count;
        }
        // Threshold: mean + unbiased std of the candidates' IoUs (float32 like Paddle).
        let vals: Vec<f32> = candidates.iter().map(|&a| row[a]).collect();
        let k = vals.len() as f32;
        let mean = vals.iter().sum::<f32>() / k;
        let var = vals.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / (k - 1.0).max(1.0);
        let threshold = mean + var.sqrt();
        for &a in &candidates {
            let inside = point_inside(center(&anchors.boxes_px[a]), gb);
            if row[a] > threshold && inside && gt.pad_mask[g] > 0.0 {
                mask[g * l + a] = 1.0;
            }
        }
    }
    resolve_multiple(&mut mask, &ious, n, l);
    let (mut out, _) = gather(mask, gt, p.num_classes, l);
    // Soft target: max over gts of IoU(gt, predicted box) · mask.
    for a in 0..l {
        if !out.is_positive(a) {
            continue;
        }
        let mut best = 0.0f32;
        for g in 0..n {
            let m = out.mask_positive[g * l + a];
            best = best.max(iou(&gt.boxes[g], &pred_boxes_px[a], 1e-9) * m);
        }
        out.scores[a * p.num_classes + out.labels[a]] = best;
    }
    Ok(out)
}
