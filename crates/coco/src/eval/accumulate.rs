//! pycocotools' `accumulate`: per category, area range and maxDets, the precision envelope sampled at
//! the 101 recall thresholds, and the final recall, for every IoU threshold.

use super::match_image::{IGNORED_SHIFT, ImageResult, MatchedDet, by_score_desc};
use super::params::{AREA_RANGES, MAX_DETS, NUM_IOU, NUM_RECALL, recall_thresholds};
use rayon::prelude::*;

/// Entries of one category's precision block: `[area][maxDets][iou][recall]`.
pub(crate) const PRECISION_BLOCK: usize = AREA_RANGES.len() * MAX_DETS.len() * NUM_IOU * NUM_RECALL;
/// Entries of one category's recall block: `[area][maxDets][iou]`.
pub(crate) const RECALL_BLOCK: usize = AREA_RANGES.len() * MAX_DETS.len() * NUM_IOU;

/// `np.spacing(1)`, added to the precision denominator.
const EPS: f64 = f64::EPSILON;

/// Precision blocks and recall blocks of every category, -1 where undefined.
pub(crate) fn accumulate(images: &[ImageResult], n_categories: usize) -> (Vec<f64>, Vec<f64>) {
    let mut present = vec![false; n_categories];
    let mut npig = vec![[0u32; 4]; n_categories];
    let mut start = vec![0usize; n_categories + 1];
    for image in images {
        for &(k, counts) in &image.categories {
            present[k as usize] = true;
            for a in 0..4 {
                npig[k as usize][a] += counts[a];
            }
        }
        for d in &image.dets {
            start[d.category as usize + 1] += 1;
        }
    }
    for k in 0..n_categories {
        start[k + 1] += start[k];
    }
    // Per category, detections in (ascending image id, rank) order: the concatenation order of E.
    let mut fill = start.clone();
    let mut by_category = vec![
        MatchedDet {
            score: 0.0,
            category: 0,
            rank: 0,
            flags: [0; 4]
        };
        start[n_categories]
    ];
    for image in images {
        for d in &image.dets {
            let slot = &mut fill[d.category as usize];
            by_category[*slot] = *d;
            *slot += 1;
        }
    }
    let mut slices = Vec::with_capacity(n_categories);
    let mut rest = by_category.as_mut_slice();
    for k in 0..n_categories {
        let (head, tail) = rest.split_at_mut(start[k + 1] - start[k]);
        slices.push(head);
        rest = tail;
    }
    let mut precision = vec![-1.0; n_categories * PRECISION_BLOCK];
    let mut recall = vec![-1.0; n_categories * RECALL_BLOCK];
    slices
        .into_par_iter()
        .zip(precision.par_chunks_mut(PRECISION_BLOCK))
        .zip(recall.par_chunks_mut(RECALL_BLOCK))
        .enumerate()
        .for_each(|(k, ((dets, p), r))| {
            if present[k] {
                accumulate_category(dets, &npig[k], p, r);
            }
        });
    (precision, recall)
}

/// Fills one category's blocks. `dets` are in concatenation order and get sorted here.
fn accumulate_category(
    dets: &mut [MatchedDet],
    npig: &[u32; 4],
    precision: &mut [f64],
    recall: &mut [f64],
) {
    // Stable: ties keep ascending image id, then within-image order.
    dets.sort_by(|a, b| by_score_desc(a.score, b.score));
    let thresholds = recall_thresholds();
    let mut words: Vec<u32> = Vec::with_capacity(dets.len());
    let mut pr: Vec<f64> = Vec::with_capacity(dets.len());
    let mut rc: Vec<f64> = Vec::with_capacity(dets.len());
    for (a, &n_pos) in npig.iter().enumerate() {
        if n_pos == 0 {
            continue; // no non-ignored GT: stays -1
        }
        let n_pos = f64::from(n_pos);
        for (m, &max_det) in MAX_DETS.iter().enumerate() {
            words.clear();
            words.extend(
                dets.iter()
                    .filter(|d| (d.rank as usize) < max_det)
                    .map(|d| d.flags[a]),
            );
            for t in 0..NUM_IOU {
                pr.clear();
                rc.clear();
                let (mut tp, mut fp) = (0u32, 0u32);
                for &w in &words {
                    if w >> (IGNORED_SHIFT + t as u32) & 1 == 1 {
                        continue; // ignored detections change neither tp nor fp
                    }
                    if w >> t & 1 == 1 {
                        tp += 1;
                    } else {
                        fp += 1;
                    }
                    let (tp, fp) = (f64::from(tp), f64::from(fp));
                    rc.push(tp / n_pos);
                    pr.push(tp / (fp + tp + EPS));
                }
                let block = (a * MAX_DETS.len() + m) * NUM_IOU + t;
                recall[block] = rc.last().copied().unwrap_or(0.0);
                for i in (1..pr.len()).rev() {
                    if pr[i] > pr[i - 1] {
                        pr[i - 1] = pr[i];
                    }
                }
                // searchsorted(rc, thr, 'left'): first index with rc >= thr; unreached -> 0.
                let q = &mut precision[block * NUM_RECALL..(block + 1) * NUM_RECALL];
                let mut i = 0;
                for (r, &thr) in thresholds.iter().enumerate() {
                    while i < rc.len() && rc[i] < thr {
                        i += 1;
                    }
                    q[r] = if i < rc.len() { pr[i] } else { 0.0 };
                }
            }
        }
    }
}
