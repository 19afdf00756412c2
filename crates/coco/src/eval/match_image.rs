//! pycocotools' `computeIoU` + `evaluateImg` for all categories of one image: greedy matching per
//! area range and IoU threshold, producing per-detection TP / ignore bits.

use super::iou::bbox_iou;
use super::params::{AREA_RANGES, MAX_DETS, NUM_IOU, iou_thresholds};
use crate::json::{Annotation, DetectionRecord};
use std::cmp::Ordering;

/// One kept detection (top 100 of its image and category) after matching.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MatchedDet {
    pub(crate) score: f64,
    /// Category rank.
    pub(crate) category: u32,
    /// Position within its (image, category) after the stable score sort; compared with maxDets.
    pub(crate) rank: u32,
    /// Per area range: bit t = true positive at threshold t; bit 16 + t = ignored at threshold t.
    pub(crate) flags: [u32; 4],
}

/// Bit of "ignored at threshold t" in [`MatchedDet::flags`].
pub(crate) const IGNORED_SHIFT: u32 = 16;
/// Flags of a detection ignored at every threshold.
pub(crate) const IGNORED_ALL: u32 = ((1 << NUM_IOU) - 1) << IGNORED_SHIFT;

/// The matching result of one image.
#[derive(Default)]
pub(crate) struct ImageResult {
    pub(crate) dets: Vec<MatchedDet>,
    /// Every category with a GT or a detection on this image, with its count of non-ignored GTs per
    /// area range.
    pub(crate) categories: Vec<(u32, [u32; 4])>,
}

/// Reusable buffers of one worker thread.
#[derive(Default)]
pub(crate) struct Scratch {
    gts: Vec<(u32, u32)>,
    dts: Vec<(u32, u32)>,
    ious: Vec<f64>,
    order: Vec<usize>,
    ignored: Vec<bool>,
    taken: Vec<u16>,
}

/// numpy's order for `argsort(-score, kind='mergesort')`: descending, equal scores (and ±0) tied.
#[inline]
pub(crate) fn by_score_desc(a: f64, b: f64) -> Ordering {
    b.partial_cmp(&a)
        .unwrap_or_else(|| a.is_nan().cmp(&b.is_nan()))
}

/// Matches the ground truths `gt_items` and detections `dt_items` (index, category rank) of one image.
pub(crate) fn match_image(
    annotations: &[Annotation],
    detections: &[DetectionRecord],
    gt_items: &[(u32, u32)],
    dt_items: &[(u32, u32)],
    scratch: &mut Scratch,
) -> ImageResult {
    let mut out = ImageResult::default();
    let Scratch { gts, dts, .. } = scratch;
    gts.clear();
    gts.extend_from_slice(gt_items);
    gts.sort_by_key(|&(_, k)| k);
    dts.clear();
    dts.extend_from_slice(dt_items);
    dts.sort_by(|a, b| {
        a.1.cmp(&b.1).then_with(|| {
            by_score_desc(
                detections[a.0 as usize].score,
                detections[b.0 as usize].score,
            )
        })
    });
    let (gts, dts) = (std::mem::take(gts), std::mem::take(dts));
    let (mut gi, mut di) = (0, 0);
    while gi < gts.len() || di < dts.len() {
        let k = match (gts.get(gi), dts.get(di)) {
            (Some(g), Some(d)) => g.1.min(d.1),
            (Some(g), None) => g.1,
            (None, Some(d)) => d.1,
            (None, None) => break,
        };
        let g_end = gi + gts[gi..].iter().take_while(|g| g.1 == k).count();
        let d_end = di + dts[di..].iter().take_while(|d| d.1 == k).count();
        let max_det = MAX_DETS[MAX_DETS.len() - 1];
        let cat = Category {
            annotations,
            detections,
            gts: &gts[gi..g_end],
            dts: &dts[di..d_end.min(di + max_det)],
            category: k,
        };
        let npig = match_category(&cat, scratch, &mut out.dets);
        out.categories.push((k, npig));
        gi = g_end;
        di = d_end;
    }
    scratch.gts = gts;
    scratch.dts = dts;
    out
}

/// The GTs and the top detections (sorted by score) of one (image, category).
struct Category<'a> {
    annotations: &'a [Annotation],
    detections: &'a [DetectionRecord],
    gts: &'a [(u32, u32)],
    dts: &'a [(u32, u32)],
    category: u32,
}

impl Category<'_> {
    #[inline]
    fn gt(&self, g: usize) -> &Annotation {
        &self.annotations[self.gts[g].0 as usize]
    }
    #[inline]
    fn dt(&self, d: usize) -> &DetectionRecord {
        &self.detections[self.dts[d].0 as usize]
    }
}

/// `evaluateImg` for one (image, category) and every area range; appends the detections to `out`
/// and returns the number of non-ignored GTs per area range.
fn match_category(cat: &Category, scratch: &mut Scratch, out: &mut Vec<MatchedDet>) -> [u32; 4] {
    let thresholds = iou_thresholds();
    let (n_g, n_d) = (cat.gts.len(), cat.dts.len());
    let Scratch {
        ious,
        order,
        ignored,
        taken,
        ..
    } = scratch;
    ious.clear();
    for d in 0..n_d {
        for g in 0..n_g {
            let gt = cat.gt(g);
            ious.push(bbox_iou(&cat.dt(d).bbox, &gt.bbox, gt.iscrowd));
        }
    }
    let first = out.len();
    out.extend((0..n_d).map(|rank| MatchedDet {
        score: cat.dt(rank).score,
        category: cat.category,
        rank: rank as u32,
        flags: [0; 4],
    }));
    let mut npig = [0u32; 4];
    for (a, &[lo, hi]) in AREA_RANGES.iter().enumerate() {
        // GT ignore uses the `area` field and a closed interval; crowd is always ignored.
        ignored.clear();
        ignored.extend((0..n_g).map(|g| {
            let gt = cat.gt(g);
            gt.iscrowd || gt.area < lo || gt.area > hi
        }));
        npig[a] = ignored.iter().filter(|&&ig| !ig).count() as u32;
        if n_d == 0 {
            continue;
        }
        // Non-ignored GTs first, each group in original order (stable argsort).
        order.clear();
        order.extend((0..n_g).filter(|&g| !ignored[g]));
        order.extend((0..n_g).filter(|&g| ignored[g]));
        taken.clear();
        taken.resize(n_g, 0);
        for d in 0..n_d {
            let det = cat.dt(d);
            let area = det.bbox[2] * det.bbox[3];
            let out_of_range = area < lo || area > hi;
            // No GT reaches the lowest threshold: unmatched everywhere.
            if ious[d * n_g..(d + 1) * n_g]
                .iter()
                .all(|&iou| iou < thresholds[0])
            {
                out[first + d].flags[a] = if out_of_range { IGNORED_ALL } else { 0 };
                continue;
            }
            let mut flags = 0u32;
            for (t, &thr) in thresholds.iter().enumerate() {
                let mut best = thr.min(1.0 - 1e-10);
                let mut m: Option<usize> = None;
                for &g in order.iter() {
                    if taken[g] >> t & 1 == 1 && !cat.gt(g).iscrowd {
                        continue;
                    }
                    if let Some(mm) = m
                        && !ignored[mm]
                        && ignored[g]
                    {
                        break;
                    }
                    let iou = ious[d * n_g + g];
                    if iou < best {
                        continue;
                    }
                    best = iou;
                    m = Some(g);
                }
                // pycocotools stores the matched GT *id* and reads 0 as "unmatched" (the id-0 quirk).
                let matched_id = match m {
                    Some(g) => {
                        taken[g] |= 1 << t;
                        if ignored[g] {
                            flags |= 1 << (IGNORED_SHIFT + t as u32);
                            continue;
                        }
                        cat.gt(g).id
                    }
                    None => 0,
                };
                if matched_id != 0 {
                    flags |= 1 << t;
                } else if out_of_range {
                    flags |= 1 << (IGNORED_SHIFT + t as u32);
                }
            }
            out[first + d].flags[a] = flags;
        }
    }
    const { assert!(NUM_IOU <= 16) };
    npig
}
