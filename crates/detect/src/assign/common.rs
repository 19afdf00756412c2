//! Steps shared by ATSS and TAL: resolving anchors claimed by several gts, gathering labels and boxes.

use super::{Assignment, GroundTruth};

/// Indices of the `k` largest (or smallest) values, ties to the lower index.
pub(crate) fn topk(values: &[f32], k: usize, largest: bool) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    idx.sort_by(|&a, &b| {
        let o = values[a]
            .partial_cmp(&values[b])
            .unwrap_or(std::cmp::Ordering::Equal);
        let o = if largest { o.reverse() } else { o };
        o.then(a.cmp(&b))
    });
    idx.truncate(k.min(values.len()));
    idx
}

/// Where an anchor is positive for more than one gt, replace its column by a one-hot of the argmax
/// over **all** gts of `ious[g][a]` (first index on ties).
pub(crate) fn resolve_multiple(mask: &mut [f32], ious: &[f32], n: usize, l: usize) {
    for a in 0..l {
        let sum: f32 = (0..n).map(|g| mask[g * l + a]).sum();
        if sum > 1.0 {
            let mut best = 0;
            for g in 1..n {
                if ious[g * l + a] > ious[best * l + a] {
                    best = g;
                }
            }
            for g in 0..n {
                mask[g * l + a] = if g == best { 1.0 } else { 0.0 };
            }
        }
    }
}

/// Labels and boxes from the final mask: gt = argmax over gts of the mask (0 if none); background
/// where the anchor has no positive. Scores are left at zero for the caller to fill.
pub(crate) fn gather(
    mask: Vec<f32>,
    gt: &GroundTruth,
    num_classes: usize,
    l: usize,
) -> (Assignment, Vec<usize>) {
    let n = gt.len();
    let mut labels = vec![num_classes; l];
    let mut bboxes = vec![[0.0f32; 4]; l];
    let mut gt_index = vec![0usize; l];
    for a in 0..l {
        let mut best = 0;
        let mut sum = 0.0;
        for g in 0..n {
            let v = mask[g * l + a];
            sum += v;
            if v > mask[best * l + a] {
                best = g;
            }
        }
        if n > 0 {
            gt_index[a] = best;
            bboxes[a] = gt.boxes[best];
            if sum > 0.0 {
                labels[a] = gt.labels[best];
            }
        }
    }
    let scores = vec![0.0; l * num_classes];
    (
        Assignment {
            labels,
            bboxes,
            scores,
            mask_positive: mask,
            num_classes,
        },
        gt_index,
    )
}
