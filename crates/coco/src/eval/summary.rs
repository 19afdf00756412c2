//! pycocotools' `summarize`: the 12 stats, per-category AP and the 12-line text.

use super::Evaluation;
use super::params::{AREA_LABELS, MAX_DETS, NUM_IOU, NUM_RECALL};

/// Names of the 12 stats, in pycocotools' order.
pub const STAT_NAMES: [&str; 12] = [
    "AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl",
];

/// (is AP, IoU threshold or None for all, area index, maxDets index) of each stat.
const STAT_SLICES: [(bool, Option<f64>, usize, usize); 12] = [
    (true, None, 0, 2),
    (true, Some(0.5), 0, 2),
    (true, Some(0.75), 0, 2),
    (true, None, 1, 2),
    (true, None, 2, 2),
    (true, None, 3, 2),
    (false, None, 0, 0),
    (false, None, 0, 1),
    (false, None, 0, 2),
    (false, None, 1, 2),
    (false, None, 2, 2),
    (false, None, 3, 2),
];

/// Mean of the values > -1 (Neumaier-compensated), or -1 when there are none.
fn mean_defined(values: impl Iterator<Item = f64>) -> f64 {
    let (mut sum, mut comp, mut n) = (0.0f64, 0.0f64, 0usize);
    for v in values.filter(|&v| v > -1.0) {
        let t = sum + v;
        comp += if sum.abs() >= v.abs() {
            (sum - t) + v
        } else {
            (v - t) + sum
        };
        sum = t;
        n += 1;
    }
    if n == 0 {
        -1.0
    } else {
        (sum + comp) / n as f64
    }
}

impl Evaluation {
    /// IoU threshold indices selected by `iou` (all when None; none when no threshold equals it).
    fn iou_indices(&self, iou: Option<f64>) -> Vec<usize> {
        (0..NUM_IOU)
            .filter(|&t| iou.is_none_or(|v| self.iou_thresholds[t] == v))
            .collect()
    }

    /// The 12 numbers of `COCOeval.stats`: AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs,
    /// ARm, ARl; -1 where undefined.
    pub fn stats(&self) -> [f64; 12] {
        let k_all = 0..self.category_ids.len();
        STAT_SLICES.map(|(is_ap, iou, a, m)| {
            let ts = self.iou_indices(iou);
            if is_ap {
                mean_defined(k_all.clone().flat_map(|k| {
                    ts.iter().flat_map(move |&t| {
                        (0..NUM_RECALL).map(move |r| self.precision(t, r, k, a, m))
                    })
                }))
            } else {
                mean_defined(
                    k_all
                        .clone()
                        .flat_map(|k| ts.iter().map(move |&t| self.recall(t, k, a, m))),
                )
            }
        })
    }

    /// AP of each category (ascending category id): the mean of its precision over IoU and recall
    /// thresholds at area "all" and maxDets 100, or -1 when undefined (no non-ignored GT).
    pub fn per_category_ap(&self) -> Vec<(i64, f64)> {
        self.category_ids
            .iter()
            .enumerate()
            .map(|(k, &id)| {
                let values = (0..NUM_IOU)
                    .flat_map(move |t| (0..NUM_RECALL).map(move |r| (t, r)))
                    .map(|(t, r)| self.precision(t, r, k, 0, 2));
                (id, mean_defined(values))
            })
            .collect()
    }

    /// pycocotools' 12-line summary (as printed by `COCOeval.summarize()`).
    pub fn summary(&self) -> String {
        let stats = self.stats();
        let mut out = String::new();
        for (i, &(is_ap, iou, a, m)) in STAT_SLICES.iter().enumerate() {
            let (title, kind) = if is_ap {
                ("Average Precision", "(AP)")
            } else {
                ("Average Recall", "(AR)")
            };
            let iou = match iou {
                Some(v) => format!("{v:.2}"),
                None => format!(
                    "{:.2}:{:.2}",
                    self.iou_thresholds[0],
                    self.iou_thresholds[NUM_IOU - 1]
                ),
            };
            out.push_str(&format!(
                " {title:<18} {kind} @[ IoU={iou:<9} | area={:>6} | maxDets={:>3} ] = {:.3}\n",
                AREA_LABELS[a], MAX_DETS[m], stats[i]
            ));
        }
        out
    }
}
