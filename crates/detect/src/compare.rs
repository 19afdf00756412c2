//! Comparisons used by parity checks: relative L2 error and NMS results matched as sets.

use crate::nms::Detection;

/// ‖a − b‖₂ / ‖b‖₂ in f64; the absolute ‖a − b‖₂ when `b` is all zero. `None` if the lengths differ.
pub fn rel_l2(a: &[f32], b: &[f32]) -> Option<f64> {
    if a.len() != b.len() {
        return None;
    }
    let num = a
        .iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
        .sum::<f64>()
        .sqrt();
    let den = b.iter().map(|y| (*y as f64).powi(2)).sum::<f64>().sqrt();
    Some(if den == 0.0 { num } else { num / den })
}

/// One NMS output row of a reference: image, class, score, box and (when known) candidate index.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RefRow {
    /// Image in the batch.
    pub image: usize,
    /// Class.
    pub class: usize,
    /// Score.
    pub score: f32,
    /// Box.
    pub bbox: [f32; 4],
    /// Candidate index inside the image, if the reference stores it.
    pub index: Option<usize>,
}

/// How two NMS results differ when matched as sets.
#[derive(Clone, Debug, PartialEq)]
pub struct NmsMatch {
    /// Rows of the reference with no partner in ours.
    pub unmatched: usize,
    /// Our row count minus the reference row count.
    pub count_difference: i64,
    /// Largest |score difference| of matched rows.
    pub max_score_diff: f32,
    /// Largest |coordinate difference| of matched rows.
    pub max_box_diff: f32,
}

/// Match reference rows to ours (per image): by (class, index) when the reference has indices,
/// otherwise by class with the nearest unused box. Order inside the output does not matter.
pub fn match_nms(ours: &[Vec<Detection>], reference: &[RefRow]) -> NmsMatch {
    let mut used: Vec<Vec<bool>> = ours.iter().map(|d| vec![false; d.len()]).collect();
    let mut m = NmsMatch {
        unmatched: 0,
        count_difference: ours.iter().map(Vec::len).sum::<usize>() as i64 - reference.len() as i64,
        max_score_diff: 0.0,
        max_box_diff: 0.0,
    };
    let box_diff = |a: &[f32; 4], b: &[f32; 4]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max)
    };
    for r in reference {
        let Some(dets) = ours.get(r.image) else {
            m.unmatched += 1;
            continue;
        };
        let mut best: Option<(usize, f32)> = None;
        for (j, d) in dets.iter().enumerate() {
            if used[r.image][j] || d.class != r.class || r.index.is_some_and(|i| i != d.index) {
                continue;
            }
            let diff = box_diff(&d.bbox, &r.bbox) + (d.score - r.score).abs();
            if best.is_none_or(|(_, bd)| diff < bd) {
                best = Some((j, diff));
            }
        }
        match best {
            Some((j, _)) => {
                used[r.image][j] = true;
                let d = &dets[j];
                m.max_score_diff = m.max_score_diff.max((d.score - r.score).abs());
                m.max_box_diff = m.max_box_diff.max(box_diff(&d.bbox, &r.bbox));
            }
            None => m.unmatched += 1,
        }
    }
    m
}
