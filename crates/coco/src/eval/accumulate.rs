//! pycocotools' `accumulate`: per category, area range and maxDets, the precision envelope sampled at
//! the 101 recall thresholds, and the final recall, for every IoU threshold.

use super::match_image::{IGNORED_ALL, IGNORED_SHIFT, ImageResult, MatchedDet};
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

/// Counts a detection that is a true positive or ignored at some thresholds, and records the
/// precision at each threshold where it is a true positive. Kept out of line so the caller's loop
/// over the common cases stays in registers.
#[inline(never)]
fn record(
    w: u32,
    seen: u32,
    tp: &mut [u32; NUM_IOU],
    ignored: &mut [u32; NUM_IOU],
    tp_precision: &mut [Vec<f64>; NUM_IOU],
) {
    for t in 0..NUM_IOU {
        if w >> (IGNORED_SHIFT + t as u32) & 1 == 1 {
            ignored[t] += 1;
        } else if w >> t & 1 == 1 {
            tp[t] += 1;
            let fp = f64::from(seen - tp[t] - ignored[t]);
            let tp = f64::from(tp[t]);
            tp_precision[t].push(tp / (fp + tp + EPS));
        }
    }
}

/// A key whose ascending order is numpy's order of `-score`: descending, -0.0 equal to 0.0, NaN last.
#[inline]
fn descending_key(score: f64) -> u64 {
    if score.is_nan() {
        return u64::MAX;
    }
    let bits = (score + 0.0).to_bits(); // -0.0 + 0.0 = +0.0
    let ascending = if bits >> 63 == 1 {
        !bits
    } else {
        bits | 1 << 63
    };
    !ascending
}

/// Fills one category's blocks. `dets` are in concatenation order and get sorted here.
///
/// pycocotools computes precision and recall at every detection, takes the right-to-left running
/// maximum of precision, and samples it at the first detection whose recall reaches each threshold.
/// Recall only rises at a true positive, and precision only rises there too, so the same numbers
/// (bit for bit: the same formulas on the same counts) come from the true positives alone: the
/// running maximum over positions >= a true positive equals the maximum over true positives from
/// there on, and the first position reaching a recall threshold is a true positive.
fn accumulate_category(
    dets: &[MatchedDet],
    npig: &[u32; 4],
    precision: &mut [f64],
    recall: &mut [f64],
) {
    // Ties keep ascending image id, then within-image order: the key ends with the position.
    let mut keys: Vec<(u64, u32)> = dets
        .iter()
        .enumerate()
        .map(|(i, d)| (descending_key(d.score), i as u32))
        .collect();
    keys.sort_unstable();
    // Columns in sorted order: each pass below reads one flags column and the ranks.
    let ranks: Vec<u32> = keys.iter().map(|&(_, i)| dets[i as usize].rank).collect();
    let columns: [Vec<u32>; 4] = std::array::from_fn(|a| {
        keys.iter()
            .map(|&(_, i)| dets[i as usize].flags[a])
            .collect()
    });
    let thresholds = recall_thresholds();
    let mut tp_precision: [Vec<f64>; NUM_IOU] = Default::default();
    for (a, &n_pos) in npig.iter().enumerate() {
        if n_pos == 0 {
            continue; // no non-ignored GT: stays -1
        }
        let n_pos = f64::from(n_pos);
        for (m, &max_det) in MAX_DETS.iter().enumerate() {
            for p in tp_precision.iter_mut() {
                p.clear();
            }
            let (mut seen, mut tp, mut ignored) = (0u32, [0u32; NUM_IOU], [0u32; NUM_IOU]);
            for (&rank, &flags) in ranks.iter().zip(&columns[a]) {
                // Branch-free for the common cases: beyond maxDets or ignored everywhere (no effect
                // on any count), and false positive everywhere (only counted).
                let w = if (rank as usize) < max_det {
                    flags
                } else {
                    IGNORED_ALL
                };
                seen += u32::from(w != IGNORED_ALL);
                if w == 0 || w == IGNORED_ALL {
                    continue;
                }
                record(w, seen, &mut tp, &mut ignored, &mut tp_precision);
            }
            for t in 0..NUM_IOU {
                let block = (a * MAX_DETS.len() + m) * NUM_IOU + t;
                recall[block] = f64::from(tp[t]) / n_pos;
                let pr = &mut tp_precision[t];
                for i in (1..pr.len()).rev() {
                    if pr[i] > pr[i - 1] {
                        pr[i - 1] = pr[i];
                    }
                }
                // The first true positive j (1-based) with recall j / n_pos >= threshold; none -> 0.
                let q = &mut precision[block * NUM_RECALL..(block + 1) * NUM_RECALL];
                let mut j = 1usize;
                for (r, &thr) in thresholds.iter().enumerate() {
                    while j <= pr.len() && (j as f64) / n_pos < thr {
                        j += 1;
                    }
                    q[r] = if j <= pr.len() { pr[j - 1] } else { 0.0 };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::descending_key;

    #[test]
    fn key_orders_like_numpy_negated_scores() {
        let sorted = [
            f64::INFINITY,
            1.0,
            0.5,
            1e-300,
            0.0,
            -1e-300,
            -2.5,
            f64::NEG_INFINITY,
            f64::NAN,
        ];
        let keys: Vec<u64> = sorted.iter().map(|&s| descending_key(s)).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "{keys:?}");
        assert_eq!(descending_key(-0.0), descending_key(0.0));
    }
}
