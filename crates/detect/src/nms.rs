//! Class-aware multiclass NMS with Paddle `multiclass_nms3` semantics (normalized boxes, no "+1"):
//! per class keep scores strictly above the threshold, top-k by score (stable), greedy keep while
//! IoU ≤ threshold; then keep_top_k across classes by score (stable); rows grouped by class ascending.

use crate::boxes::Box4;
use crate::error::{DetectError, Result};

/// NMS settings (PaddleDetection's `MultiClassNMS`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NmsParams {
    /// Keep candidates with score strictly above this.
    pub score_threshold: f32,
    /// Candidates per class before NMS (−1: all).
    pub nms_top_k: i64,
    /// Detections per image after NMS (−1: all).
    pub keep_top_k: i64,
    /// Suppress when IoU is strictly above this.
    pub nms_threshold: f32,
}

impl Default for NmsParams {
    /// The PP-YOLOE config: 0.01, 1000, 300, 0.7.
    fn default() -> Self {
        Self {
            score_threshold: 0.01,
            nms_top_k: 1000,
            keep_top_k: 300,
            nms_threshold: 0.7,
        }
    }
}

/// One kept detection.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Detection {
    /// Class index.
    pub class: usize,
    /// Score.
    pub score: f32,
    /// Box in the coordinates given.
    pub bbox: Box4,
    /// Index of the box among the image's candidates.
    pub index: usize,
}

fn area(b: &Box4) -> f32 {
    if b[2] < b[0] || b[3] < b[1] {
        0.0
    } else {
        (b[2] - b[0]) * (b[3] - b[1])
    }
}

/// Paddle's `JaccardOverlap` with `normalized = true`.
pub fn jaccard(a: &Box4, b: &Box4) -> f32 {
    if b[0] > a[2] || b[2] < a[0] || b[1] > a[3] || b[3] < a[1] {
        return 0.0;
    }
    let iw = a[2].min(b[2]) - a[0].max(b[0]);
    let ih = a[3].min(b[3]) - a[1].max(b[1]);
    let inter = iw * ih;
    inter / (area(a) + area(b) - inter)
}

fn sort_desc_stable(pairs: &mut [(f32, usize)]) {
    pairs.sort_by(|x, y| y.0.partial_cmp(&x.0).unwrap_or(std::cmp::Ordering::Equal));
}

/// NMS of one image: `boxes` `[M]`, `scores` `[classes × M]` (class-major, as the head emits them).
pub fn multiclass_nms(
    boxes: &[Box4],
    scores: &[f32],
    num_classes: usize,
    p: &NmsParams,
) -> Result<Vec<Detection>> {
    let m = boxes.len();
    if scores.len() != num_classes * m {
        return Err(DetectError::Input(format!(
            "{} scores for {num_classes} classes × {m} boxes",
            scores.len()
        )));
    }
    let mut per_class: Vec<Vec<usize>> = Vec::with_capacity(num_classes);
    for c in 0..num_classes {
        let s = &scores[c * m..(c + 1) * m];
        let mut cand: Vec<(f32, usize)> = s
            .iter()
            .enumerate()
            .filter(|(_, v)| **v > p.score_threshold)
            .map(|(i, v)| (*v, i))
            .collect();
        sort_desc_stable(&mut cand);
        if p.nms_top_k > -1 && (p.nms_top_k as usize) < cand.len() {
            cand.truncate(p.nms_top_k as usize);
        }
        let mut kept: Vec<usize> = Vec::new();
        for &(_, i) in &cand {
            // NaN overlaps (zero-area unions) never suppress, as in Paddle.
            if kept.iter().all(|&k| {
                jaccard(&boxes[i], &boxes[k]).partial_cmp(&p.nms_threshold)
                    != Some(std::cmp::Ordering::Greater)
            }) {
                kept.push(i);
            }
        }
        per_class.push(kept);
    }
    let total: usize = per_class.iter().map(Vec::len).sum();
    if p.keep_top_k > -1 && total > p.keep_top_k as usize {
        let mut all: Vec<(f32, usize)> = Vec::with_capacity(total);
        let mut owner = Vec::with_capacity(total);
        for (c, kept) in per_class.iter().enumerate() {
            for &i in kept {
                all.push((scores[c * m + i], owner.len()));
                owner.push((c, i));
            }
        }
        sort_desc_stable(&mut all);
        all.truncate(p.keep_top_k as usize);
        let mut fresh: Vec<Vec<usize>> = vec![Vec::new(); num_classes];
        for &(_, k) in &all {
            let (c, i) = owner[k];
            fresh[c].push(i);
        }
        per_class = fresh;
    }
    let mut out = Vec::new();
    for (c, kept) in per_class.iter().enumerate() {
        for &i in kept {
            out.push(Detection {
                class: c,
                score: scores[c * m + i],
                bbox: boxes[i],
                index: i,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semantics() {
        let boxes = [
            [0.0, 0.0, 10.0, 10.0],
            [0.0, 0.0, 10.0, 10.0],
            [0.0, 0.0, 10.0, 7.0],
            [20.0, 20.0, 30.0, 30.0],
        ];
        // class 0: box1 duplicates box0; box2 has IoU exactly 0.7 with box0 and is kept (≤ threshold).
        let scores = [0.9, 0.8, 0.7, 0.01, /* class 1 */ 0.02, 0.0, 0.0, 0.95];
        let p = NmsParams {
            score_threshold: 0.01,
            nms_top_k: 1000,
            keep_top_k: 3,
            nms_threshold: 0.7,
        };
        let d = multiclass_nms(&boxes, &scores, 2, &p).unwrap();
        let got: Vec<(usize, usize)> = d.iter().map(|d| (d.class, d.index)).collect();
        // Kept before keep_top_k: (0,0) .9, (0,2) .7, (1,3) .95, (1,0) .02 → top 3 grouped by class.
        assert_eq!(got, vec![(0, 0), (0, 2), (1, 3)]);
        let p1 = NmsParams {
            nms_top_k: 1,
            keep_top_k: -1,
            ..p
        };
        let d = multiclass_nms(&boxes, &scores, 2, &p1).unwrap();
        assert_eq!(d.len(), 2);
    }
}
